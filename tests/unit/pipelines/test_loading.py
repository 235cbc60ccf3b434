"""One loader for ``module:attr`` and ``file.py:attr`` references."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from loopml.errors import InvalidInput
from loopml.pipelines.loading import load_object


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_a_file_is_run_as_its_module_and_can_import_its_neighbours(tmp_path: Path) -> None:
    helper, main = _unique("helper"), _unique("defs")
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / f"{helper}.py").write_text("VALUE = 41\n")
    (folder / f"{main}.py").write_text(
        f"from {helper} import VALUE\n\nclass Box:\n    answer = VALUE + 1\n"
    )
    assert load_object(f"project/{main}.py:Box.answer", field="thing") == 42
    # Importable by reference afterwards, as a stored policy names its functions.
    assert load_object(f"{main}:Box.answer", field="thing") == 42
    assert str(folder) not in sys.path
    # Edits are picked up on the next load.
    (folder / f"{main}.py").write_text("class Box:\n    answer = 7\n")
    assert load_object(str(folder / f"{main}.py") + ":Box.answer", field="thing") == 7


def test_modules_are_found_from_the_base_folder_only_while_loading(tmp_path: Path) -> None:
    name = _unique("flows")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / f"{name}.py").write_text("def train():\n    return 'ok'\n")
    assert load_object(f"{name}:train", field="pipeline", base_dir=tmp_path / "elsewhere")() == "ok"
    assert str(tmp_path / "elsewhere") not in sys.path
    assert load_object(f"elsewhere/{name}.py:train", field="pipeline", base_dir=tmp_path)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "must look like module:policy or path/to/file.py:policy"),
        ("module:", "must look like"),
        (":attr", "must look like"),
        ("mod:a..b", "must look like"),
        ("missing_dir/none.py:policy", "missing_dir/none.py does not exist"),
        ("loopml_no_such_module_xyz:policy", "cannot load policy"),
        ("json:no_such_attr", "cannot import name 'no_such_attr' from 'json'"),
    ],
)
def test_bad_references_name_the_field(spec: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace(".", r"\.")) as caught:
        load_object(spec, field="policy")
    assert caught.value.field == "policy"


def test_errors_raised_by_the_user_code_become_invalid_input(tmp_path: Path) -> None:
    name = _unique("broken")
    (tmp_path / f"{name}.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(InvalidInput, match="RuntimeError: boom") as caught:
        load_object(f"{name}.py:x", field="definitions")
    assert caught.value.field == "definitions"
    # A file that failed leaves nothing importable behind.
    assert name not in sys.modules


def test_a_file_named_like_an_imported_module_is_refused(tmp_path: Path) -> None:
    (tmp_path / "json.py").write_text("x = 1\n")
    with pytest.raises(InvalidInput, match="already taken") as caught:
        load_object("json.py:x", field="pipeline", what="pipeline")
    assert caught.value.field == "pipeline"
    assert sys.modules["json"].__name__ == "json" and hasattr(sys.modules["json"], "dumps")
