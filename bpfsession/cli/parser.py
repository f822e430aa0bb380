"""The argparse grammar of every command (also the source of the man page and completion).

Kept out of bpfsession.cli itself so that `bpfsession new`'s fast path (cli/new.py:
fast_parse) never imports argparse (with re, gettext and locale: ~4 ms of a start that
is measured against a bare-Python receiver).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# verb -> module providing register(); like bpftool's literal command table.
COMMANDS = {
    "new": "bpfsession.cli.new",
    "send": "bpfsession.cli.send",
    "list": "bpfsession.cli.sessions",
    "show": "bpfsession.cli.sessions",
    "attach": "bpfsession.cli.sessions",
    "map": "bpfsession.cli.map",
    "batch": "bpfsession.cli.batch",
    "tui": "bpfsession.cli.tui",
}
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


class Formatter(argparse.HelpFormatter):
    """argparse's formatter without its `import shutil` (bz2, lzma, fnmatch: ~2 ms of every
    start, since add_argument builds a formatter): the width from $COLUMNS or the tty."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        if width is None:
            try:
                width = int(os.environ["COLUMNS"])
            except (KeyError, ValueError):
                try:
                    width = os.get_terminal_size().columns
                except OSError:
                    width = 80
            width -= 2
        super().__init__(prog, indent_increment, max_help_position, width)


class RawFormatter(Formatter, argparse.RawDescriptionHelpFormatter):
    """Formatter for epilogs with examples laid out by hand."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line `bpfsession: ...` errors (exit 2) instead of a usage dump."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        prog = self.prog.replace("bpfsession", "").strip()
        hint = f" (see 'bpfsession {prog} --help')" if prog else " (see 'bpfsession --help')"
        sys.stderr.write(f"bpfsession: {message}{hint}\n")
        raise SystemExit(2)


def build_parser(verb: str | None = None) -> Parser:
    """The whole grammar.

    With `verb`, only the module of that verb registers: the same grammar for that
    command, without building every other one on a start-up path that is measured.
    """
    from bpfsession import __version__

    parser = Parser(prog="bpfsession",
                    description="Hand eBPF map fds to supervised shells and agents.")
    parser.add_argument("--version", action="version", version=f"bpfsession {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    modules = (COMMANDS[verb],) if verb in COMMANDS else COMMAND_MODULES
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser
