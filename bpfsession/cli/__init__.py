"""The command line: arguments in, one result out (text or -j JSON), errors as one line.

Each verb lives in its own module with `register(subparsers)`; heavy imports happen
inside the handlers, so `bpfsession --help` and `map` calls start fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from bpfsession.errors import BpfSessionError

# verb -> module providing register(); like bpftool's literal command table.
COMMAND_MODULES = (
    "bpfsession.cli.new",
    "bpfsession.cli.send",
    "bpfsession.cli.sessions",
    "bpfsession.cli.map",
    "bpfsession.cli.tui",
)


class Parser(argparse.ArgumentParser):
    """argparse with one-line `bpfsession: ...` errors (exit 2) instead of a usage dump."""

    def error(self, message: str):
        prog = self.prog.replace("bpfsession", "").strip()
        hint = f" (see 'bpfsession {prog} --help')" if prog else " (see 'bpfsession --help')"
        sys.stderr.write(f"bpfsession: {message}{hint}\n")
        raise SystemExit(2)


def build_parser() -> Parser:
    """The whole grammar; also the source of the man page and completion."""
    parser = Parser(prog="bpfsession",
                    description="Hand eBPF map fds to supervised shells and agents.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _version() -> str:
    from bpfsession import __version__

    return f"bpfsession {__version__}"


def report_error(err: BpfSessionError, as_json: bool) -> None:
    """One line on stderr; under -j also bpftool's `{"error": ...}` on stdout."""
    if as_json:
        print(json.dumps({"error": err.hint}))
    sys.stderr.write(f"bpfsession: {err.hint}\n")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
