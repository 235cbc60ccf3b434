from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import loopml as lm
from loopml.errors import Conflict, InvalidInput, NotFound


def _artifact(run_id: str, path: str) -> bytes:
    return b"".join(lm.get_service().read_artifact(run_id, path))


def test_run_records_system_info_and_finishes() -> None:
    lm.set_experiment("fluent")
    with lm.start_run(run_name="first") as run:
        lm.log_param("C", 0.5)
        lm.log_params({"kernel": "rbf", "gamma": 2})
        lm.log_metric("acc", 0.8, step=1)
        lm.log_metrics({"acc": 0.9, "loss": 0.1}, step=2)
        lm.set_tag("stage", "dev")
        lm.set_tags({"team": "risk"})
    fetched = lm.get_run(run.run_id)
    assert fetched.status is lm.RunStatus.FINISHED
    assert fetched.end_time is not None and fetched.end_time >= fetched.start_time
    assert fetched.params == {"C": "0.5", "kernel": "rbf", "gamma": "2"}
    assert fetched.metrics == {"acc": 0.9, "loss": 0.1}
    for key in (
        "loopml.host",
        "loopml.user",
        "loopml.python",
        "loopml.command",
        "loopml.package.loopml",
        "loopml.package.pandas",
    ):
        assert key in fetched.tags
    assert fetched.tags["stage"] == "dev"
    assert lm.active_run() is None


def test_git_commit_and_dirty_flag_are_recorded(tmp_path: Path) -> None:
    import subprocess

    subprocess.run(["git", "init", "-q"], check=True)
    Path("f.txt").write_text("x")
    subprocess.run(["git", "add", "f.txt"], check=True)
    subprocess.run(
        ["git", "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x"], check=True
    )
    with lm.start_run() as run:
        pass
    tags = lm.get_run(run.run_id).tags
    assert len(tags["loopml.git.commit"]) == 40
    assert tags["loopml.git.dirty"] == "false"
    Path("f.txt").write_text("changed")
    with lm.start_run() as run:
        pass
    assert lm.get_run(run.run_id).tags["loopml.git.dirty"] == "true"


def test_exception_fails_and_interrupt_kills_the_run() -> None:
    with pytest.raises(ZeroDivisionError), lm.start_run() as failed:
        1 / 0  # noqa: B018
    assert lm.get_run(failed.run_id).status is lm.RunStatus.FAILED
    with pytest.raises(KeyboardInterrupt), lm.start_run() as killed:
        raise KeyboardInterrupt
    assert lm.get_run(killed.run_id).status is lm.RunStatus.KILLED


def test_nested_runs() -> None:
    with lm.start_run(run_name="parent") as parent:
        with pytest.raises(InvalidInput):
            lm.start_run()
        with lm.start_run(run_name="child", nested=True) as child:
            lm.log_metric("x", 1)
        assert lm.active_run() is parent
    assert lm.get_run(child.run_id).parent_run_id == parent.run_id


def test_param_logged_twice_with_another_value_conflicts() -> None:
    with lm.start_run() as run:
        lm.log_param("lr", 0.1)
        with pytest.raises(Conflict) as caught:
            lm.log_param("lr", 0.2)
        assert caught.value.field == "params.lr"
    assert lm.get_run(run.run_id).params == {"lr": "0.1"}


def test_bad_metric_leaves_the_store_unchanged() -> None:
    with lm.start_run() as run:
        with pytest.raises(InvalidInput):
            lm.log_metrics({"good": 1.0, "bad": "high"})
    assert lm.get_run(run.run_id).metrics == {}


def test_unknown_run_and_deleted_experiment() -> None:
    with pytest.raises(NotFound):
        lm.get_run("0" * 32)
    with pytest.raises(NotFound):
        lm.get_run("../../etc")
    experiment_id = lm.set_experiment("to-delete")
    lm.get_service().delete_experiment(experiment_id)
    with pytest.raises(InvalidInput):
        lm.set_experiment("to-delete")
    with pytest.raises(InvalidInput):
        lm.start_run(experiment_id=experiment_id)


def test_artifacts_dict_text_table_figures(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    source = tmp_path / "notes.txt"
    source.write_text("hello")
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("a")
    with lm.start_run() as run:
        lm.log_artifact(source)
        lm.log_artifact(source, "docs")
        lm.log_artifacts(folder, "bundle")
        lm.log_dict({"a": [1, 2]}, "config.json")
        lm.log_dict({"a": 1}, "config.yaml")
        lm.log_table(pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}), "table.parquet")
        figure, axis = plt.subplots()
        axis.plot([1, 2, 3])
        lm.log_figure(figure, "curve.png")
        plt.close(figure)
        lm.log_figure(go.Figure(go.Scatter(y=[1, 3, 2])), "curve.html")
        with pytest.raises(InvalidInput):
            lm.log_figure(object(), "x.png")
        with pytest.raises(InvalidInput):
            lm.log_table(pd.DataFrame({"x": [1]}), "table.csv")
    paths = [a.path for a in lm.get_service().list_artifacts(run.run_id)]
    assert paths == [
        "bundle/sub/a.txt",
        "config.json",
        "config.yaml",
        "curve.html",
        "curve.png",
        "docs/notes.txt",
        "notes.txt",
        "table.parquet",
    ]
    assert json.loads(_artifact(run.run_id, "config.json")) == {"a": [1, 2]}
    assert _artifact(run.run_id, "curve.png").startswith(b"\x89PNG")
    assert b"plotly" in _artifact(run.run_id, "curve.html")
    target = lm.get_service().download_artifacts(run.run_id, "table.parquet", tmp_path / "dl")
    assert pd.read_parquet(target)["y"].tolist() == ["a", "b"]
    folder_target = lm.get_service().download_artifacts(run.run_id, "bundle", tmp_path / "dl")
    assert (folder_target / "sub" / "a.txt").read_text() == "a"


def test_log_artifacts_refuses_symlinks_leaving_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "link.txt").symlink_to(outside)
    with lm.start_run() as run:
        with pytest.raises(InvalidInput):
            lm.log_artifacts(folder)
    assert lm.get_service().list_artifacts(run.run_id) == []


def test_search_runs_returns_a_frame() -> None:
    lm.set_experiment("search")
    for index, acc in enumerate([0.7, 0.9, 0.8]):
        with lm.start_run(run_name=f"r{index}"):
            lm.log_metric("acc", acc)
            lm.log_param("idx", index)
    frame = lm.search_runs(filter_string="metrics.acc > 0.75", order_by=["metrics.acc DESC"])
    assert frame["run_name"].tolist() == ["r1", "r2"]
    assert frame["metrics.acc"].tolist() == [0.9, 0.8]
    assert frame["params.idx"].tolist() == ["1", "2"]
    assert str(frame["start_time"].dtype).startswith("datetime64")
    assert lm.search_runs(experiment_names=["search"], filter_string="params.idx = '9'").empty
    with pytest.raises(InvalidInput) as caught:
        lm.search_runs(filter_string="metrics.acc >> 1")
    assert caught.value.field == "filter_string"


def test_delete_and_restore_run() -> None:
    with lm.start_run() as run:
        pass
    lm.delete_run(run.run_id)
    assert lm.search_runs().empty
    assert len(lm.search_runs(include_deleted=True)) == 1
    lm.restore_run(run.run_id)
    assert len(lm.search_runs()) == 1


def test_gc_marks_runs_without_heartbeat_killed() -> None:
    service = lm.get_service()
    experiment_id = service.get_or_create_experiment("gc").experiment_id
    stale = service.create_run(experiment_id, host="elsewhere", pid=1, start_time=1_000)
    fresh = service.create_run(experiment_id, host="elsewhere", pid=1)
    assert service.gc_runs(timeout=60) == [stale.run_id]
    assert service.get_run(stale.run_id).status is lm.RunStatus.KILLED
    assert service.get_run(fresh.run_id).status is lm.RunStatus.RUNNING
    with pytest.raises(InvalidInput):
        service.gc_runs(timeout=-1)
