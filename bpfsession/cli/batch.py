"""`bpfsession batch file FILE|-`: many map commands in one process (bpfsession.batch)."""

from __future__ import annotations

from bpfsession.cli.parser import RawFormatter

EPILOG = """\
Each line is a map command as it would follow `bpfsession`, e.g.
    map update BPF_MAP0 key 1 0 0 0 value 5 0 0 0 0 0 0 0
    map lookup name proto_stats key 6 0 0 0   # comments and \\ continuations as bpftool
The batch stops at the first failing command (the error names its line) and prints
`processed N commands` when all succeeded; -j prints bpftool's
[{"command": [...], "output": ...}, ...].
"""


def register(sub) -> None:
    p = sub.add_parser("batch", help="run map commands from a file or stdin, as bpftool batch",
                       description="Run map commands one a line, in one process.",
                       usage="bpfsession batch file FILE|- [-j] [-p]", epilog=EPILOG,
                       formatter_class=RawFormatter)
    p.add_argument("file_word", metavar="file", choices=["file"], help="the word `file`")
    p.add_argument("path", metavar="FILE", help="the commands; - reads stdin")
    p.add_argument("-j", "--json", action="store_true", help="JSON output, as bpftool -j")
    p.add_argument("-p", "--pretty", action="store_true", help="pretty JSON (implies -j)")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from bpfsession import batch
    from bpfsession.errors import BpfSessionError

    as_json = args.json or args.pretty
    out = sys.stdout.buffer
    # The JSON array already carries a failing command's {"error": ...}: the error
    # itself goes to stderr only.
    args.json = False
    try:
        if args.path == "-":
            return batch.run(sys.stdin, out, as_json, args.pretty)
        try:
            f = open(args.path, encoding="utf-8", errors="surrogateescape")
        except OSError as err:
            raise BpfSessionError(f"cannot read {args.path}: {err.strerror}") from None
        with f:
            return batch.run(f, out, as_json, args.pretty)
    finally:
        out.flush()
