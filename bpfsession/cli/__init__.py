"""The command line: arguments in, one result out (text or -j JSON), errors as one line.

Each verb lives in its own module with `register(subparsers)` (the grammar is assembled in
cli/parser.py); heavy imports happen inside the handlers, so calls start fast.

Global options, as bpftool's: `-j` (JSON, compact), `-p` (pretty JSON, implies -j) and `-q`
(quiet) are accepted anywhere on the line, before or after the verb, by every verb, up to
`run` or `--`: what follows those belongs to the command. They are taken out of the line
here, before any parser sees it (split_globals), and every parsed Namespace carries
`json`, `pretty` and `quiet`.
"""

from __future__ import annotations

import sys

from bpfsession.errors import BpfSessionError

# Verbs whose plain argument forms are parsed without argparse (see fast_parse there).
_FAST = {"new": "bpfsession.cli.new", "list": "bpfsession.cli.sessions",
         "show": "bpfsession.cli.sessions", "attach": "bpfsession.cli.sessions",
         "map": "bpfsession.cli.map"}

# The global options: word -> Namespace attribute. `-jp`-style bundles of the short ones
# are accepted too, as getopt does for bpftool.
GLOBAL_OPTIONS = {"-j": "json", "--json": "json", "-p": "pretty", "--pretty": "pretty",
                  "-q": "quiet", "--quiet": "quiet"}
_GLOBAL_LETTERS = {"j": "json", "p": "pretty", "q": "quiet"}
# Where global options end: the command's own words follow.
_END_OF_OPTIONS = ("run", "--")


def split_globals(argv: list[str]) -> tuple[list[str], dict[str, bool]]:
    """(argv without the global options, {"json": .., "pretty": .., "quiet": ..})."""
    flags = {"json": False, "pretty": False, "quiet": False}
    words: list[str] = []
    for i, word in enumerate(argv):
        if word in _END_OF_OPTIONS:
            words += argv[i:]
            break
        if word in GLOBAL_OPTIONS:
            flags[GLOBAL_OPTIONS[word]] = True
        elif len(word) > 2 and word[0] == "-" and set(word[1:]) <= _GLOBAL_LETTERS.keys():
            for letter in word[1:]:
                flags[_GLOBAL_LETTERS[letter]] = True
        else:
            words.append(word)
    if flags["pretty"]:
        flags["json"] = True
    return words, flags


def seconds(text: str) -> float:
    """A number of seconds given on the command line: positive, `inf` for no limit.

    The one check of every SECONDS option (the argparse type and the fast paths), so that
    `--timeout 0` and `--timeout soon` fail with the same words. ValueError otherwise.
    """
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:  # also false for nan
        raise ValueError(f"give a positive number of seconds, not {text!r}")
    return value


def build_parser(verb: str | None = None):
    """The whole grammar (argparse); also the source of the man page and completion."""
    from bpfsession.cli.parser import build_parser as build

    return build(verb)


def parse_args(argv: list[str], fast: bool = True):
    """The Namespace of a command line; `fast=False` skips the argparse-free fast paths
    (tests compare the two)."""
    words, flags = split_globals(argv)
    args = None
    if fast and words and words[0] in _FAST:
        # __import__, not importlib: importlib's package pulls in `warnings` (~0.8 ms).
        module = __import__(_FAST[words[0]], fromlist=["fast_parse"])
        args = module.fast_parse(words[0], words[1:])
    if args is None:
        args = build_parser(words[0] if words else None).parse_args(words)
    # A verb's own -j (as argparse parsed it after `run`-free words) only adds to them.
    args.json = flags["json"] or getattr(args, "json", False)
    args.pretty = flags["pretty"] or getattr(args, "pretty", False)
    args.quiet = flags["quiet"] or getattr(args, "quiet", False)
    if args.pretty:
        args.json = True
    return args


def print_json(doc, args) -> None:
    """One JSON document on stdout: compact under -j, indented under -p (as bpftool)."""
    import json

    if getattr(args, "pretty", False):
        print(json.dumps(doc, indent=4))
    else:
        print(json.dumps(doc, separators=(",", ":")))


def report_error(err: BpfSessionError, as_json: bool) -> None:
    """One line on stderr; under -j also bpftool's `{"error": ...}` on stdout."""
    if as_json:
        import json

        print(json.dumps({"error": err.hint}, separators=(",", ":")))
    from bpfsession.printable import printable  # hints quote names from outside

    sys.stderr.write(f"bpfsession: {printable(err.hint)}\n")


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
