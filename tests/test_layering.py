"""The layers of docs/ARCHITECTURE.md, checked on the source: no import points upward,
and the sans-IO core (wire, tcp) reaches for no socket, thread or clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "synack"

# Standard-library modules that do I/O, start threads or read clocks.
IO_MODULES = {
    "socket",
    "ssl",
    "select",
    "selectors",
    "asyncio",
    "threading",
    "_thread",
    "multiprocessing",
    "concurrent",
    "subprocess",
    "signal",
    "time",
    "datetime",
    "os",
    "io",
    "sched",
    "queue",
}

# For each layer, the synack packages it may import (besides itself).
ALLOWED = {
    "wire": set(),
    "tcp": {"wire"},
    "testing": {"wire", "tcp"},
    "drivers": {"wire", "tcp"},
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def files_of(layer: str) -> list[Path]:
    return sorted((SRC / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", ["wire", "tcp"])
def test_core_does_no_io(layer: str) -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{line} imports {name}"
        for path in files_of(layer)
        for line, name in imports_of(path)
        if name.split(".")[0] in IO_MODULES
    ]
    assert not offenders, "the sans-IO core must not do I/O:\n" + "\n".join(offenders)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_no_import_points_upward(layer: str) -> None:
    offenders = []
    for path in files_of(layer):
        for line, name in imports_of(path):
            parts = name.split(".")
            if parts[0] != "synack" or len(parts) < 2:
                continue
            target = parts[1]
            if target != layer and target not in ALLOWED[layer]:
                offenders.append(f"{path.relative_to(SRC)}:{line} imports {name}")
    assert not offenders, "imports pointing up the layers:\n" + "\n".join(offenders)


def test_apps_use_streams_not_sockets() -> None:
    """Apps reach the network only through synack.transport (docs/ARCHITECTURE.md)."""
    offenders = [
        f"{path.relative_to(SRC)}:{line} imports {name}"
        for path in sorted((SRC / "apps").rglob("*.py"))
        for line, name in imports_of(path)
        if name.split(".")[0] in {"socket", "selectors", "select", "socketserver"}
    ]
    assert not offenders, "apps must use synack.transport:\n" + "\n".join(offenders)


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom synack.apps import chat\n")
    names = [name for _line, name in imports_of(bad)]
    assert names == ["time", "synack.apps"]
