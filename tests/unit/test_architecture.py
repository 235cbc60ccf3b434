"""House rules: the public API is curated, and imports flow one way."""

from __future__ import annotations

import ast
from pathlib import Path

import loopml

SRC = Path(loopml.__file__).parent
# Which loopml packages each layer may import; "*" = any.
LAYERS: dict[str, set[str]] = {
    "entities": {"entities"},
    "errors": set(),
    "config": {"errors"},
    "store": {"entities", "errors", "config", "store"},
    "tracking": {"entities", "errors", "config", "store", "tracking"},
    "auth": {"entities", "errors", "config", "store", "auth"},
    "stats": {"errors", "stats"},
    "models": {"entities", "errors", "config", "store", "tracking", "models", "registry"},
    "registry": {
        "entities",
        "errors",
        "config",
        "store",
        "tracking",
        "models",
        "registry",
        "training",
    },
    # The model server is an HTTP shell like server/ and shares its error handling.
    "serving": {
        "entities",
        "errors",
        "config",
        "store",
        "tracking",
        "models",
        "registry",
        "serving",
        "data",
        "server",
        "monitoring",
        "features",
    },
    # Alerts record drift/degradation events for the scheduler's triggers (pipelines).
    "monitoring": {
        "entities",
        "errors",
        "config",
        "store",
        "tracking",
        "stats",
        "data",
        "models",
        "registry",
        "monitoring",
        "pipelines",
    },
    "pipelines": {"entities", "errors", "config", "store", "tracking", "pipelines", "data"},
    "training": {
        "entities",
        "errors",
        "config",
        "store",
        "tracking",
        "training",
        "models",
        "registry",
        "stats",
        "data",
    },
    "data": {"entities", "errors", "config", "store", "tracking", "stats", "data"},
    # Continuous training drives everything below it, but never the CLI or the HTTP server.
    "loop": {
        "entities",
        "errors",
        "config",
        "store",
        "tracking",
        "stats",
        "data",
        "models",
        "registry",
        "training",
        "serving",
        "monitoring",
        "pipelines",
        "datasets",
        "loop",
    },
    # The feature store reads dataset versions and keeps its definitions in the store.
    "features": {
        "entities",
        "errors",
        "config",
        "store",
        "tracking",
        "data",
        "datasets",
        "features",
    },
    "server": {"*"},
    "cli": {"*"},
}
FORBIDDEN_THIRD_PARTY = {
    "entities": {"sqlalchemy", "fastapi", "typer", "httpx"},
    "tracking": {"sqlalchemy", "fastapi", "typer", "starlette"},
    "auth": {"sqlalchemy", "fastapi", "typer"},
    "stats": {"sqlalchemy", "fastapi", "typer", "starlette"},
    "data": {"sqlalchemy", "fastapi", "typer", "starlette"},
    "server": {"sqlalchemy", "typer"},
    "cli": {"sqlalchemy", "fastapi"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_public_api_is_sorted_and_complete() -> None:
    assert loopml.__all__ == sorted(loopml.__all__)
    public = {name for name in vars(loopml) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(loopml, name)).__name__ == "module"}
    assert public - modules - set(loopml.__all__) == set()
    assert all(hasattr(loopml, name) for name in loopml.__all__)


def test_imports_flow_one_way() -> None:
    wrong = []
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC)
        if relative.name == "__init__.py" and len(relative.parts) == 1:
            continue
        layer = relative.parts[0].removesuffix(".py")
        allowed = LAYERS.get(layer)
        if allowed is None:
            continue
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "loopml" and len(parts) > 1:
                target = parts[1]
                if "*" not in allowed and target not in allowed and target != layer:
                    wrong.append(f"{relative} imports {name}")
            elif parts[0] in FORBIDDEN_THIRD_PARTY.get(layer, set()):
                wrong.append(f"{relative} imports {name}")
    assert wrong == []


def test_modules_stay_reviewable() -> None:
    too_long = [
        f"{path.relative_to(SRC)}: {count} lines"
        for path in SRC.rglob("*.py")
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > 800
    ]
    assert too_long == []
