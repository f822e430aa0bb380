"""The command line: arguments in, one result out (text or -j JSON), errors as one line.

Each verb lives in its own module with `register(subparsers)` (the grammar is assembled in
cli/parser.py); heavy imports happen inside the handlers, so calls start fast.
"""

from __future__ import annotations

import sys

from bpfsession.errors import BpfSessionError

# Verbs whose plain argument forms are parsed without argparse (see fast_parse there).
_FAST = {"new": "bpfsession.cli.new", "list": "bpfsession.cli.sessions",
         "show": "bpfsession.cli.sessions", "attach": "bpfsession.cli.sessions",
         "map": "bpfsession.cli.map"}


def build_parser(verb: str | None = None):
    """The whole grammar (argparse); also the source of the man page and completion."""
    from bpfsession.cli.parser import build_parser as build

    return build(verb)


def parse_args(argv: list[str]):
    if argv and argv[0] in _FAST:
        # __import__, not importlib: importlib's package pulls in `warnings` (~0.8 ms).
        module = __import__(_FAST[argv[0]], fromlist=["fast_parse"])
        args = module.fast_parse(argv[0], argv[1:])
        if args is not None:
            return args
    return build_parser(argv[0] if argv else None).parse_args(argv)


def report_error(err: BpfSessionError, as_json: bool) -> None:
    """One line on stderr; under -j also bpftool's `{"error": ...}` on stdout."""
    if as_json:
        import json

        print(json.dumps({"error": err.hint}))
    sys.stderr.write(f"bpfsession: {err.hint}\n")


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    args = parse_args(argv)
    try:
        return args.func(args) or 0
    except BpfSessionError as err:
        report_error(err, getattr(args, "json", False))
        return err.status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `bpfsession map dump ... | head`: the reader left; not an error worth a line.
        sys.stderr.close()
        return 0
