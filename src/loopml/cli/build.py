"""``loopml build``: a deployable serving bundle of one registered model version."""

from __future__ import annotations

from typing import Annotated

import typer

from loopml.cli._common import JsonOption
from loopml.cli._output import print_json, print_note, print_success, render_pairs


def build(
    spec: Annotated[
        str,
        typer.Argument(
            metavar="MODEL",
            help="The model: churn@champion (the alias is resolved now and pinned) or churn/3.",
        ),
    ],
    output: Annotated[
        str, typer.Argument(metavar="OUTDIR", help="The bundle folder (must be new or empty).")
    ],
    port: Annotated[
        int, typer.Option("--port", "-p", min=1, max=65535, help="Port the container serves on.")
    ] = 8080,
    replicas: Annotated[
        int,
        typer.Option("--replicas", min=1, help="Deployment replicas (the autoscaler's minimum)."),
    ] = 2,
    max_replicas: Annotated[
        int | None,
        typer.Option(
            "--max-replicas", min=1, help="The autoscaler's maximum [default: 5 x replicas]."
        ),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option("--image", help="Image name in the manifests [default: <model>:<version>]."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace OUTDIR when it is not empty.")
    ] = False,
    loopml_wheel: Annotated[
        str | None,
        typer.Option(
            "--loopml-wheel",
            metavar="PATH",
            help="A loopml wheel to bundle. By default the installed release is pinned, or a "
            "wheel is built when loopml was installed from a source folder.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write a serving bundle of MODEL to OUTDIR: model files, Dockerfile, k8s manifests."""
    from loopml.serving.bundle import build_bundle

    result = build_bundle(
        spec,
        output,
        port=port,
        replicas=replicas,
        max_replicas=max_replicas,
        image=image,
        force=force,
        loopml_wheel=loopml_wheel,
    )
    if as_json:
        print_json(result.to_dict())
        return
    print_success(
        f"built a bundle of {result.model}/{result.version} ({result.flavor}) in {result.path}"
    )
    pairs = [("image", result.image)]
    if result.loopml is not None:
        pairs.append(("loopml", result.loopml.describe()))
    render_pairs([*pairs, ("files", ", ".join(result.files))])
    print_note(f"next: docker build -t {result.image} {result.path}")
