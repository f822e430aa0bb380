"""Text tables for people: the terminal's width, `--no-headers`, and `list`'s filters.

A table on a terminal fits its width: the widest columns are cut, with an ellipsis, until
the line fits (ps and systemctl do the same); piped output is never cut unless $COLUMNS
asks for a width. `-j` always carries every string whole. Cells are outside strings
(session names, obj names, command lines): they are shown through printable().
"""

from __future__ import annotations

import os
import sys

from bpfsession.errors import BpfSessionError
from bpfsession.printable import printable

ELLIPSIS = "…"
MIN_WIDTH = 4  # a cut column keeps this many characters, the ellipsis included
GAP = "  "

# `list`'s filters, as bpftool's keyword arguments: keyword -> what it matches.
LIST_FILTERS = {"netns": "NS", "name": "PATTERN"}


def terminal_width(stream=None) -> int | None:
    """$COLUMNS, else the width of `stream` (stdout) if it is a terminal, else None."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        fd = (stream or sys.stdout).fileno()
        return os.get_terminal_size(fd).columns if os.isatty(fd) else None
    except (OSError, ValueError):
        return None


def cut(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[:width - 1] + ELLIPSIS


def fit(rows: list[tuple[str, ...]], width: int | None, indent: str = "",
        cuttable: frozenset[int] | None = None) -> list[int]:
    """Column widths for `rows` within `width` (None: no limit): the widest of the
    `cuttable` columns (default: all) is narrowed first, down to MIN_WIDTH at most."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    if width is None:
        return widths
    room = width - len(indent) - len(GAP) * (len(widths) - 1)
    narrow = sorted(range(len(widths)) if cuttable is None else cuttable)
    while sum(widths) > room:
        widest = max(narrow, key=widths.__getitem__)
        if widths[widest] <= MIN_WIDTH:
            break  # nothing left to narrow: the terminal wraps what still does not fit
        second = max((widths[i] for i in narrow if i != widest), default=MIN_WIDTH)
        target = max(widths[widest] - (sum(widths) - room), second, MIN_WIDTH)
        widths[widest] = target if target < widths[widest] else widths[widest] - 1
    return widths


def fits(rows: list[tuple[str, ...]], width: int | None, indent: str = "",
         cuttable: frozenset[int] | None = None) -> bool:
    """Whether fit() can make the rows as narrow as `width` (None: always)."""
    widths = fit([tuple(printable(c) for c in r) for r in rows], width, indent, cuttable)
    return width is None or len(indent) + sum(widths) + len(GAP) * (len(widths) - 1) <= width


def render(rows: list[tuple[str, ...]], width: int | None = None, indent: str = "",
           headers: bool = True, cuttable: frozenset[int] | None = None) -> str:
    """The rows (the first one the headers) as aligned text lines, fitted to `width`."""
    rows = [tuple(printable(c) for c in r) for r in rows]
    widths = fit(rows, width, indent, cuttable)
    lines = []
    for r in rows[0 if headers else 1:]:
        cells = [cut(c, w) for c, w in zip(r, widths, strict=True)]
        cells = [c.ljust(w) for c, w in zip(cells[:-1], widths, strict=False)] + cells[-1:]
        lines.append((indent + GAP.join(cells)).rstrip())
    return "".join(line + "\n" for line in lines)


def parse_filters(words: list[str]) -> dict[str, str]:
    """`netns NS name PATTERN` -> {"netns": NS, "name": PATTERN}."""
    got: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word not in LIST_FILTERS:
            raise BpfSessionError(f"unexpected {word!r}: filter with `netns NS` or `name "
                                  "PATTERN` (see 'bpfsession list --help')")
        if i + 1 >= len(words):
            raise BpfSessionError(f"`{word}` needs a {LIST_FILTERS[word]} "
                                  "(see 'bpfsession list --help')")
        if word in got:
            raise BpfSessionError(f"`{word}` given twice")
        got[word] = words[i + 1]
        i += 2
    return got


def matches(session, filters: dict[str, str]) -> bool:
    """`name`: a shell glob over the session's name; `netns`: its netns name or path, or
    `-` for the host's."""
    if not filters:
        return True
    from fnmatch import fnmatchcase

    if "name" in filters and not fnmatchcase(session.name, filters["name"]):
        return False
    if "netns" in filters:
        wanted = filters["netns"]
        if wanted == "-":
            return session.netns is None
        shown = {session.netns, session.netns_path} - {None}
        if wanted not in shown and f"/run/netns/{wanted}" not in shown:
            return False
    return True
