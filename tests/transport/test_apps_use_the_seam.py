"""Apps reach streams only through their public API: whatever a transport may not have
(private asyncio attributes, OS socket objects) is the seam's business, not theirs."""

from __future__ import annotations

import ast
from pathlib import Path

APPS = Path(__file__).resolve().parents[2] / "src" / "synack" / "apps"


def own_private_names(tree: ast.AST) -> set[str]:
    """Private names a module defines itself (methods, functions, attributes it assigns)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return {name for name in names if name.startswith("_")}


# Modules whose private parts are stream internals (another module's, e.g. argparse's, are not).
STREAM_MODULES = ("asyncio", "socket", "ssl", "selectors")


def other_modules(tree: ast.AST) -> set[str]:
    """Names the module binds to imported modules that are not stream internals."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound.update((a.asname or a.name.split(".")[0], a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            bound.update((a.asname or a.name, f"{node.module}.{a.name}") for a in node.names)
    return {name for name, module in bound.items() if not module.startswith(STREAM_MODULES)}


def reaches_past_the_seam(source: str, filename: str) -> list[str]:
    """Private attributes of objects the module does not define, and OS socket objects."""
    tree = ast.parse(source, filename=filename)
    own = own_private_names(tree)
    allowed_bases = {"self", "cls"} | other_modules(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            name = node.attr
            base = node.value
            if (
                name.startswith("_")
                and not name.startswith("__")
                and not (isinstance(base, ast.Name) and base.id in allowed_bases)
                and name not in own
            ):
                found.append(f"{filename}:{node.lineno} uses .{name}")
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            texts = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
            if called == "get_extra_info" and texts[:1] == ["socket"]:
                found.append(f"{filename}:{node.lineno} takes the OS socket")
            elif called in {"getattr", "hasattr", "setattr"} and len(texts) > 1:
                text = texts[1]
                if isinstance(text, str) and text.startswith("_") and text not in own:
                    found.append(f"{filename}:{node.lineno} uses {text} by name")
    return found


def test_apps_touch_no_private_stream_attributes_or_sockets() -> None:
    offenders = [
        line
        for path in sorted(APPS.rglob("*.py"))
        for line in reaches_past_the_seam(path.read_text(), str(path.relative_to(APPS)))
    ]
    assert not offenders, "apps reach past the transport seam:\n" + "\n".join(offenders)


def test_the_checker_sees_each_kind_of_reach() -> None:
    source = (
        "import argparse\n"
        "from asyncio import selector_events\n"
        "class C:\n"
        "    def _mine(self):\n"
        "        self.partner._mine()\n"  # a private name this module defines: allowed
        "        self.writer.transport.abort()\n"  # public asyncio API: allowed
        "        self.reader._buffer\n"
        "        self.writer.transport._sock\n"
        "        getattr(self.reader, '_transport', None)\n"
        "        self.writer.get_extra_info('socket')\n"
        "        self.writer.get_extra_info('peername')\n"  # public and transport-neutral
        "        argparse._SubParsersAction\n"  # not a stream's: not the seam's business
        "        selector_events._SelectorSocketTransport\n"
    )
    assert reaches_past_the_seam(source, "x.py") == [
        "x.py:7 uses ._buffer",
        "x.py:8 uses ._sock",
        "x.py:9 uses _transport by name",
        "x.py:10 takes the OS socket",
        "x.py:13 uses ._SelectorSocketTransport",
    ]
