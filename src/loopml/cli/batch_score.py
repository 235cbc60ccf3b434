"""``loopml batch-score``: score a Parquet/CSV file with a registered model, resumably."""

from __future__ import annotations

from typing import Annotated

import typer

from loopml.cli._common import JsonOption, ModelSpecArgument
from loopml.cli._output import print_json, print_success, render_pairs


def batch_score(
    spec: ModelSpecArgument,
    source: Annotated[
        str,
        typer.Argument(metavar="INPUT", help="A .parquet or .csv file, local or a URL (s3://)."),
    ],
    output: Annotated[
        str,
        typer.Argument(
            metavar="OUTPUT", help="The output folder of Parquet part files, local or s3://."
        ),
    ],
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", min=1, help="Rows per chunk and part file.")
    ] = 65_536,
    executor: Annotated[
        str, typer.Option("--executor", help="Where chunks are scored: local or dask.")
    ] = "local",
    id_column: Annotated[
        str | None,
        typer.Option("--id-column", help="Copy only this input column next to the predictions."),
    ] = None,
    proba: Annotated[
        bool, typer.Option("--proba", help="Add proba_<class> columns for classifiers.")
    ] = False,
    log_predictions: Annotated[
        bool,
        typer.Option(
            "--log-predictions/--no-log-predictions",
            help="Log a sample of the scored rows to the prediction log, for monitoring.",
        ),
    ] = True,
    log_sample_rate: Annotated[
        float,
        typer.Option(
            "--log-sample-rate",
            min=0.0,
            max=1.0,
            help="Fraction of the rows logged (OUTPUT holds them all), in runs of 100 rows.",
        ),
    ] = 0.05,
    as_json: JsonOption = False,
) -> None:
    """Score INPUT with a model into OUTPUT; re-running resumes after the last written chunk."""
    from loopml.serving.batch import batch_score as run

    result = run(
        spec,
        source,
        output,
        chunk_rows=chunk_rows,
        executor=executor,
        id_column=id_column,
        proba=proba,
        progress=not as_json,
        log_predictions=log_predictions,
        log_sample_rate=log_sample_rate,
    )
    if as_json:
        print_json(result.to_dict())
        return
    version = f"{result.model}/{result.version}" if result.version is not None else result.model
    print_success(f"scored {result.rows} rows with {version} into {result.output}")
    render_pairs(
        [
            ("chunks written", str(result.chunks_written)),
            ("chunks skipped", str(result.chunks_skipped)),
            ("rows logged", str(result.rows_logged) if log_predictions else "off"),
        ]
    )
