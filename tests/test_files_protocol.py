"""The files protocol's pure pieces: wire-path rules, entries, names of partial files, rates."""

from __future__ import annotations

import argparse
import asyncio
import errno
import os

import pytest

from synack.apps.files.cli import format_listing, parse_rate
from synack.apps.files.pacing import Pacer
from synack.apps.files.protocol import (
    Entry,
    ErrorCode,
    FilesError,
    Kind,
    ProtocolError,
    from_os_error,
    normalize,
    split_path,
)
from synack.apps.files.receiver import partial_name


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("", ()),
        ("a", ("a",)),
        ("a/b/c.txt", ("a", "b", "c.txt")),
        ("..hidden/x..y", ("..hidden", "x..y")),  # dots inside names are fine
        ("back\\slash", ("back\\slash",)),  # a legal character in a POSIX name
        ("ünïcødé/名前", ("ünïcødé", "名前")),
    ],
)
def test_valid_wire_paths(path: str, parts: tuple[str, ...]) -> None:
    assert split_path(path) == parts


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/etc/passwd",
        "..",
        "../x",
        "a/../b",
        "a/..",
        ".",
        "./a",
        "a/./b",
        "a//b",
        "a/",
        "a\0b",
        "\udcff",
        "x" * 4097,
    ],
)
def test_invalid_wire_paths(path: str) -> None:
    with pytest.raises(FilesError) as caught:
        split_path(path)
    assert caught.value.code is ErrorCode.BAD_PATH


def test_path_must_be_a_string() -> None:
    with pytest.raises(FilesError) as caught:
        split_path(["a"])
    assert caught.value.code is ErrorCode.BAD_REQUEST


@pytest.mark.parametrize(
    ("typed", "wire"),
    [(".", ""), ("/", ""), ("./a/b/", "a/b"), ("a///", "a"), ("../x", "../x"), ("/etc", "/etc")],
)
def test_normalize_trims_only_cosmetic_slashes(typed: str, wire: str) -> None:
    assert normalize(typed) == wire


def test_entry_round_trip_and_validation() -> None:
    entry = Entry("a/b", Kind.FILE, 12, 1_700_000_000_000_000_000)
    assert Entry.from_wire(entry.to_wire()) == entry
    bad: list[object] = [
        [],
        {"path": "a", "type": "file", "size": -1, "mtime_ns": 0},
        {"path": "a", "type": "file", "size": True, "mtime_ns": 0},
        {"path": "a", "type": "symlink", "size": 0, "mtime_ns": 0},
        {"path": 3, "type": "dir", "size": 0, "mtime_ns": 0},
        {"path": "a", "type": "dir", "size": 0},
    ]
    for raw in bad:
        with pytest.raises(ProtocolError):
            Entry.from_wire(raw)


def test_os_errors_become_typed_refusals() -> None:
    assert from_os_error(OSError(errno.ENOENT, "x"), "a").code is ErrorCode.NOT_FOUND
    assert from_os_error(OSError(errno.EACCES, "x"), "a").message == "a: permission denied"
    assert from_os_error(OSError(errno.ENOSPC, "x"), "a").code is ErrorCode.NO_SPACE
    assert from_os_error(OSError(errno.ELOOP, "x"), "a").code is ErrorCode.BAD_PATH
    assert from_os_error(OSError(errno.EIO, "Input/output error"), "a").code is ErrorCode.IO


def test_partial_names_fit_any_file_name() -> None:
    assert partial_name("report.pdf") == ".report.pdf.synack-part"
    long = "n" * 255  # the longest name a file system allows
    part = partial_name(long)
    assert len(os.fsencode(part)) <= 255 and part.endswith(".synack-part")
    assert partial_name(long) == part != partial_name("m" * 255)  # stable, and distinct


@pytest.mark.parametrize(
    ("text", "rate"),
    [("500", 500), ("500k", 500_000), ("2M", 2_000_000), ("1MiB", 1 << 20), ("3g", 3 * 10**9)],
)
def test_parse_rate(text: str, rate: int) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["0", "-1", "fast", "1.5M", "", "10 MB/s"])
def test_parse_rate_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_rate(text)


def test_pacer_holds_the_average_rate() -> None:
    async def go() -> float:
        pacer = Pacer(2_000_000)
        assert pacer.allowance(1 << 20) == 100_000  # 50 ms worth
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(4):
            await pacer.spend(100_000)
        return loop.time() - start

    # 400 kB at 2 MB/s: the fourth piece may start no sooner than 0.2 s after the first.
    assert asyncio.run(go()) >= 0.19
    assert Pacer().allowance(123) == 123


def test_listing_format() -> None:
    lines = format_listing(
        [
            Entry("d", Kind.DIR, 4096, 0),
            Entry("d/f", Kind.FILE, 1234, 0),
            Entry("p", Kind.OTHER, 0, 0),
        ]
    )
    assert [line.split()[0] for line in lines] == ["d", "-", "?"]
    assert lines[0].endswith("  d/") and lines[1].split()[1] == "1234"


def test_names_from_the_network_are_shown_without_terminal_escapes() -> None:
    from synack.apps.files.protocol import RemoteError, printable

    assert printable("plain name.txt") == "plain name.txt"
    assert printable("名前 ünï") == "名前 ünï"
    hostile = "a\x1b[2Jb\nc\u202ed\x7f"
    shown = printable(hostile)
    assert shown.isprintable() and "\x1b" not in shown and "\\x1b" in shown
    assert str(RemoteError(ErrorCode.NOT_FOUND, hostile)).isprintable()
    assert format_listing([Entry(hostile, Kind.FILE, 1, 0)])[0].isprintable()
