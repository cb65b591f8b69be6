"""The package's layers, checked on the source: what each folder may import.

docs/architecture.md draws these layers; this test is what keeps the drawing true. It reads
every module of ``watcher/`` with :mod:`ast` (nothing is imported or run), so a violation
names the file, the line and the import that breaks the rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "watcher"

#: Layers, top to bottom; a module may import its own layer and the layers below it only.
#: The four top-level modules are layers too: ``logs`` (it reads the configuration's log
#: settings), ``clock`` (the wall clock, which ``core`` never reads), ``errors`` (raised by
#: every layer, ``core`` included) and ``redact`` at the very bottom (``errors`` masks
#: secrets in every message it carries).
ORDER = (
    "cli",
    "faces",
    "app",
    "engine",
    "notify",
    "store",
    "keb",
    "logs",
    "config",
    "clock",
    "core",
    "errors",
    "redact",
)
#: The arrows that may not skip a layer, each with the layers it may point to besides its
#: own. A face reaches the engine, KEB, the store and notifications only through ``app``
#: (the one composition root); beside it, the settings records, core's values and decisions,
#: the leaves (logs, clock, errors, redact) and the simulator (``sim``, ``demo``). The root
#: group reaches commands through ``faces`` and needs only the leaves besides.
NO_SKIPPING = {
    "cli": {"faces", "logs", "errors", "redact"},
    "faces": {"app", "config", "core", "logs", "clock", "errors", "redact", "sim"},
}
#: Third-party packages that do I/O, and the one layer that may import each.
OWNERS = {
    "sqlite3": {"store"},
    "sqlite_utils": {"store"},
    "httpx": {"keb"},
    "slack_sdk": {"notify"},
    "jinja2": {"notify"},
}
#: The simulator stands apart: it serves KEB's API with the standard library and shares
#: only the data model (and the duration format) with the watcher.
SIM_MAY_IMPORT = {"sim", "core", "errors"}


def modules() -> Iterator[tuple[Path, str]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        yield path, parts[0] if len(parts) > 1 or parts[0] not in ("__init__",) else "__init__"


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every imported module name, with its line (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                raise AssertionError(f"{path}:{node.lineno}: use absolute imports")
            yield node.lineno, node.module
            if node.module == "watcher":
                for alias in node.names:
                    yield node.lineno, f"watcher.{alias.name}"


def layer_of(name: str) -> str | None:
    """``watcher.store.outbox`` -> ``store``; ``watcher.app`` -> ``app``."""
    parts = name.split(".")
    if parts[0] != "watcher" or len(parts) < 2:
        return None
    module = PACKAGE / parts[1]
    # `from watcher import __version__` names the package root, which every layer may read.
    return parts[1] if module.is_dir() or module.with_suffix(".py").exists() else None


def test_layers_only_import_downwards() -> None:
    broken = []
    for path, layer in modules():
        if layer in ("sim", "__init__", "__main__"):
            continue
        for line, name in imports(path):
            target = layer_of(name)
            if target is None or target == layer:
                continue
            if target == "sim":
                if layer in ("faces", "cli"):
                    continue  # `watcher sim` and `watcher demo` serve the simulator
                broken.append(f"{path}:{line}: {layer} imports the simulator ({name})")
                continue
            if ORDER.index(target) < ORDER.index(layer):
                broken.append(f"{path}:{line}: {layer} imports {name}, a layer above it")
    assert broken == []


def test_faces_and_cli_skip_no_layer() -> None:
    broken = []
    for path, layer in modules():
        allowed = NO_SKIPPING.get(layer)
        if allowed is None:
            continue
        for line, name in imports(path):
            target = layer_of(name)
            if target is not None and target != layer and target not in allowed:
                broken.append(f"{path}:{line}: {layer} imports {name}, skipping a layer")
    assert broken == []


def test_core_is_pure() -> None:
    """core imports no I/O package and no other layer, and reads no clock."""
    broken = []
    for path, layer in modules():
        if layer != "core":
            continue
        for line, name in imports(path):
            top = name.split(".")[0]
            target = layer_of(name)
            if (
                top in OWNERS
                or top in ("rich", "apscheduler", "prometheus_client", "click")
                or (target is not None and target not in ("core", "errors"))
            ):
                broken.append(f"{path}:{line}: core imports {name}")
        source = path.read_text()
        for clock in ("datetime.now(", "time.time(", "time.monotonic(", ".utcnow("):
            if clock in source:
                broken.append(f"{path}: core reads the clock ({clock})")
    assert broken == []


@pytest.mark.parametrize("package", sorted(OWNERS))
def test_io_libraries_have_one_owner(package: str) -> None:
    broken = []
    for path, layer in modules():
        for line, name in imports(path):
            if name.split(".")[0] == package and layer not in OWNERS[package]:
                broken.append(f"{path}:{line}: {layer} imports {name}")
    assert broken == []


def test_the_simulator_stands_apart() -> None:
    broken = []
    for path, layer in modules():
        if layer != "sim":
            continue
        for line, name in imports(path):
            target = layer_of(name)
            if target is not None and target not in SIM_MAY_IMPORT:
                broken.append(f"{path}:{line}: the simulator imports {name}")
    assert broken == []


def test_no_sql_outside_the_store() -> None:
    """The store is sealed: nobody else touches its connection or runs SQL."""
    broken = []
    for path, layer in modules():
        if layer == "store":
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("conn", "db"):
                value = node.value
                owner = value.attr if isinstance(value, ast.Attribute) else getattr(value, "id", "")
                if "store" in str(owner):
                    broken.append(f"{path}:{node.lineno}: reaches into the store ({node.attr})")
    assert broken == []


def test_every_class_name_is_unique() -> None:
    seen: dict[str, str] = {}
    duplicates = []
    for path, _layer in modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                where = f"{path.relative_to(PACKAGE)}:{node.lineno}"
                if node.name in seen:
                    duplicates.append(f"{node.name}: {seen[node.name]} and {where}")
                seen.setdefault(node.name, where)
    assert duplicates == []


def test_modules_stay_small() -> None:
    """A module past about 500 lines is asking to be split along a concept."""
    large = {
        str(path.relative_to(PACKAGE)): n
        for path, _layer in modules()
        if (n := len(path.read_text().splitlines())) > 520
    }
    assert large == {}
