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
    "graft": "bpfsession.cli.graft",
    "debug": "bpfsession.cli.debug",
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


def seconds(text: str) -> float:
    """argparse type of every SECONDS option: bpfsession.cli.seconds, argparse's error."""
    from bpfsession.cli import seconds as check

    try:
        return check(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


class Parser(argparse.ArgumentParser):
    """argparse with one-line `bpfsession: ...` errors (exit 2) instead of a usage dump,
    each pointing to the `--help` of the command it is about.

    An option with an optional number (`--watch [SECONDS]`, nargs="?" and a type) takes
    the next word only if it is a number: `list --watch name 'x*'` watches with the
    default; `list --watch 0` is an error.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        if args is not None:
            args = self._optional_values_only_if_valid(list(args))
        return super().parse_known_args(args, namespace)

    def parse_args(self, args=None, namespace=None):
        args, extras = self.parse_known_args(args, namespace)
        if extras:
            self.command_parser(args).error(f"unrecognized arguments: {' '.join(extras)}")
        return args

    def command_parser(self, args: argparse.Namespace) -> Parser:
        """The parser of the (sub-)command that `args` were parsed for."""
        parser = self
        while True:
            sub = next((a for a in parser._actions
                        if isinstance(a, argparse._SubParsersAction)), None)
            chosen = getattr(args, sub.dest, None) if sub else None
            if chosen not in (sub.choices if sub else ()):
                return parser
            parser = sub.choices[chosen]

    def _optional_values_only_if_valid(self, args: list[str]) -> list[str]:
        optional = {o: a for a in self._actions if a.nargs == "?" and a.type is not None
                    for o in a.option_strings}
        for i, word in enumerate(args[:-1]):
            if word == "--":
                break
            action = optional.get(word)
            if action is None or args[i + 1].startswith("-"):
                continue
            try:
                float(args[i + 1])  # a number, valid or not: the option's type judges it
            except ValueError:
                args[i] = f"{word}={action.const!r}"
        return args

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
    _add_global_options(parser)
    return parser


# The global options (taken out of the line by bpfsession.cli.split_globals before any
# parser runs: declared here for --help, the man page and completion).
GLOBAL_OPTIONS = (
    (("-j", "--json"), "JSON output (compact)"),
    (("-p", "--pretty"), "pretty JSON output (implies -j)"),
    (("-q", "--quiet"), "no banner or notes on stderr"),
)


def _add_global_options(parser: argparse.ArgumentParser) -> None:
    """Every command gets the global options it does not declare itself."""
    taken = {o for a in parser._actions for o in a.option_strings}
    group = None
    for options, text in GLOBAL_OPTIONS:
        if taken.isdisjoint(options):
            group = group or parser.add_argument_group("global options (anywhere up to `run`)")
            group.add_argument(*options, action="store_true", help=text)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                _add_global_options(sub)


def is_global(option: str) -> bool:
    return any(option in options for options, _ in GLOBAL_OPTIONS)
