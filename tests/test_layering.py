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

# For each part of the package (a subpackage, or a top-level module), the parts it may
# import besides itself. Every part must be listed, so a new one is placed on purpose.
ALLOWED = {
    "wire": set(),
    "tcp": {"wire"},
    "testing": {"wire", "tcp"},
    "drivers": {"wire", "tcp"},
    "errors": set(),
    # The standard library's interfaces on our TCP: drivers' peers, below the apps.
    "socket": {"wire", "tcp", "drivers", "errors"},
    "asyncio": {"wire", "tcp", "drivers", "errors"},
    "socketserver": {"socket"},
    "transport": {"wire", "tcp", "drivers", "errors"},
    "apps": {"wire", "tcp", "testing", "drivers", "errors", "transport", "__init__"},
    "cli": {"apps", "errors", "__init__"},
    "__main__": {"cli"},
    "__init__": set(),
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    return imports_in(path.read_text(), path)


def imports_in(source: str, path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of each import in `source`, the text of `path`;
    relative ones are resolved, and ``from synack import x`` counts as ``synack.x``."""
    tree = ast.parse(source, filename=str(path))
    package = ["synack", *path.resolve().relative_to(SRC).parts[:-1]]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if module == "synack":
                found.extend((node.lineno, f"synack.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, module))
    return found


def part_of(path: Path) -> str:
    """The part of the package a file belongs to: its subpackage, or its module."""
    parts = path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 else path.stem


def files_of(layer: str) -> list[Path]:
    return sorted(path for path in SRC.rglob("*.py") if part_of(path) == layer)


def test_every_part_of_the_package_has_a_place_in_the_layers() -> None:
    assert {part_of(path) for path in SRC.rglob("*.py")} == set(ALLOWED)


@pytest.mark.parametrize("layer", ["wire", "tcp"])
def test_core_does_no_io(layer: str) -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{line} imports {name}"
        for path in files_of(layer)
        for line, name in imports_of(path)
        if name.split(".")[0] in IO_MODULES
    ]
    assert not offenders, "the sans-IO core must not do I/O:\n" + "\n".join(offenders)


def upward(layer: str, imports: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The imports of a file of `layer` that reach a part it may not import."""
    found = []
    for line, name in imports:
        parts = name.split(".")
        if parts[0] != "synack" or len(parts) < 2:
            continue
        # A name that is no part of the package (__version__) is the package's own.
        target = parts[1] if parts[1] in ALLOWED else "__init__"
        if target != layer and target not in ALLOWED[layer]:
            found.append((line, name))
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_no_import_points_upward(layer: str) -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{line} imports {name}"
        for path in files_of(layer)
        for line, name in upward(layer, imports_of(path))
    ]
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


def test_the_checker_sees_a_violation() -> None:
    """Each way of writing an import is resolved (the path only places the text)."""
    source = "import time\nfrom synack.apps import chat\nfrom ..apps import files\n"
    source += "from synack import transport\nfrom . import udp\n"
    probe = SRC / "drivers" / "probe.py"
    names = [name for _line, name in imports_in(source, probe)]
    assert names == [
        "time",
        "synack.apps",
        "synack.apps",
        "synack.transport",
        "synack.drivers",
    ]
    assert [name for _line, name in upward("drivers", imports_in(source, probe))] == [
        "synack.apps",
        "synack.apps",
        "synack.transport",
    ]
