"""`new`'s argparse-free fast path parses exactly as the argparse grammar does."""

from __future__ import annotations

import pytest

from bpfsession.cli import build_parser
from bpfsession.cli.new import _FAST_OPTIONS, fast_parse

SAME = [
    ["imp", "/tmp/u"],
    ["import", "/tmp/u", "run", "sh", "-c", "echo --name x"],
    ["--netns", "blue", "imp", "/tmp/u", "run", "true"],
    ["--name=n1", "--timeout", "2.5", "--allow-uid", "7", "--allow-uid=8", "imp", "/u"],
    ["--exec", "--init", "--no-new-privs", "--keep-caps", "cap_net_admin", "imp", "/u"],
    ["--timeout=inf", "run", "true"],
    [],
    ["imp", "/u", "--timeout", "3"],  # options after the positionals stay in `rest`
]
FALLBACK = [
    ["-h"], ["--help"], ["--net", "blue", "imp", "/u"], ["--", "imp", "/u"],
    ["--timeout", "soon", "imp", "/u"], ["--allow-uid", "-1", "imp", "/u"],
    ["--name"], ["--exec=yes"], ["--bogus"],
]


@pytest.mark.parametrize("argv", SAME)
def test_fast_path_equals_argparse(argv):
    fast = fast_parse(argv)
    assert fast is not None
    assert vars(fast) == vars(build_parser("new").parse_args(["new", *argv]))


@pytest.mark.parametrize("argv", FALLBACK)
def test_anything_unusual_goes_to_argparse(argv):
    assert fast_parse(argv) is None


def test_fast_options_are_the_grammars_options():
    new = build_parser("new")._subparsers._group_actions[0].choices["new"]
    grammar = {opt: action.dest for action in new._actions for opt in action.option_strings
               if opt.startswith("--") and opt != "--help"}
    assert grammar == {opt: dest for opt, (dest, _) in _FAST_OPTIONS.items()}
