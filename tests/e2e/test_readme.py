"""The README's Python example runs and prints what the README says it prints."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_setup_is_the_two_make_commands() -> None:
    setup = _blocks("bash")[0]
    commands = [line.split("#")[0].strip() for line in setup.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_readme_python_example_prints_what_it_says() -> None:
    code = _blocks("python")[0]
    after = README.read_text().split(code, 1)[1]
    expected = re.search(r"prints\s*```\n(.*?)```", after, flags=re.S).group(1)  # type: ignore[union-attr]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(code, "README.md", "exec"), {})
    assert output.getvalue().split() == expected.split()
