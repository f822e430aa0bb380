"""`bpfsession batch file FILE|-`: map commands one a line, in one process, as
`bpftool batch file` runs them.

As bpftool: `#` starts a comment, a line ending in `\\` continues on the next, words are
split as a shell would (quotes, backslashes), blank lines are skipped; the batch stops at
the first command that fails (a lookup that finds nothing included, status 254), and
prints `processed N commands` when all succeeded. Under -j the output is one array of
`{"command": [...], "output": ...}`, the failing command's output being
`{"error": "..."}`. Unlike bpftool, errors name their line, and the maps a batch names
stay open (with their BTF parsed) from one command to the next.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

from bpfsession.errors import BpfSessionError

STATUS_NOT_FOUND = 254


def commands(lines: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """(line number where the command starts, its words), comments and blank lines left
    out."""
    pending, start = "", 0
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not pending:
            start = number
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending += line[:-1] + " "
            continue
        text, pending = pending + line, ""
        if not any(c in text for c in "'\"\\#"):
            words = text.split()  # nothing to unquote: shlex reads 10x slower
        else:
            import shlex

            try:
                words = shlex.split(text, comments=True)
            except ValueError as err:  # "No closing quotation", "No escaped character"
                raise BpfSessionError(f"line {start}: {str(err).lower()}") from None
        if words:
            yield start, words
    if pending:
        raise BpfSessionError(f"line {start}: the file ends after a continuation `\\`")


def run(lines: Iterable[str], out, as_json: bool, pretty_json: bool) -> int:
    """Run every command; returns the exit status (0, or the failing command's)."""
    from bpfsession.cli.map import execute

    opened: dict = {}
    done = 0
    results = []  # -j: (command words, output node)
    try:
        for number, words in commands(lines):
            buf = io.BytesIO() if as_json else out
            try:
                status = _one(execute, words, as_json, buf, opened)
            except BpfSessionError as err:
                err.hint = f"line {number}: {err.hint}"
                if as_json:
                    results.append((words, _error(err.hint)))
                    _write_json(out, results, pretty_json)
                raise
            if as_json:
                results.append((words, _output(buf.getvalue())))
            if status:
                if as_json:
                    _write_json(out, results, pretty_json)
                raise BpfSessionError(f"line {number}: {' '.join(words[:2])} found no entry: "
                                      "batch stopped", status=status)
            done += 1
    finally:
        for m in opened.values():
            if hasattr(m, "close"):
                m.close()
    if as_json:
        _write_json(out, results, pretty_json)
    else:
        out.write(f"processed {done} commands\n".encode())
    return 0


def _one(execute, words: list[str], as_json: bool, out, opened: dict) -> int:
    if words[0] != "map" or len(words) < 2:
        what = "batch" if words[0] == "batch" else repr(words[0])
        raise BpfSessionError(f"{what}: a batch runs map commands (map show|dump|lookup|"
                              "update|delete|pin|load ...)")
    return execute(words[1], words[2:], as_json, False, out, opened)


def _output(data: bytes):
    """A command's -j output (one compact document) as a node of the JSON writer."""
    import json

    from bpfsession.jsonw import node

    text = data.decode("utf-8", "surrogateescape").strip()
    return node(json.loads(text)) if text else "null"


def _error(hint: str):
    from bpfsession.jsonw import Obj, json_string

    return Obj([("error", json_string(hint))])


def _write_json(out, results, pretty_json: bool) -> None:
    from bpfsession.jsonw import Obj, json_string, render

    doc = [Obj([("command", [json_string(w) for w in words]), ("output", output)])
           for words, output in results]
    out.write(render(doc, pretty_json).encode())
