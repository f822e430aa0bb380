"""The argparse-free fast paths (new, list, show, attach) parse exactly as the grammar does."""

from __future__ import annotations

import pytest

from bpfsession.cli import build_parser, sessions
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
    fast = fast_parse("new", argv)
    assert fast is not None
    assert vars(fast) == vars(build_parser("new").parse_args(["new", *argv]))


@pytest.mark.parametrize("argv", FALLBACK)
def test_anything_unusual_goes_to_argparse(argv):
    assert fast_parse("new", argv) is None


def test_fast_options_are_the_grammars_options():
    new = build_parser("new")._subparsers._group_actions[0].choices["new"]
    grammar = {opt: action.dest for action in new._actions for opt in action.option_strings
               if opt.startswith("--") and opt != "--help"}
    assert grammar == {opt: dest for opt, (dest, _) in _FAST_OPTIONS.items()}


SESSIONS_SAME = [
    ["list"], ["list", "-j"], ["list", "--json"], ["show", "s1"], ["show", "-j", "42"],
    ["show", "s1", "--json"], ["attach", "s1"], ["attach", "tc-9", "run", "sh", "-c", "x -j"],
]
SESSIONS_FALLBACK = [
    ["list", "--watch"], ["list", "--watch", "2", "-j"], ["list", "x"], ["show"],
    ["show", "a", "b"], ["show", "-h"], ["attach"], ["attach", "-h"], ["attach", "s", "-x"],
]


@pytest.mark.parametrize("argv", SESSIONS_SAME)
def test_sessions_fast_path_equals_argparse(argv):
    fast = sessions.fast_parse(argv[0], argv[1:])
    assert fast is not None
    assert vars(fast) == vars(build_parser(argv[0]).parse_args(argv))


@pytest.mark.parametrize("argv", SESSIONS_FALLBACK)
def test_sessions_unusual_goes_to_argparse(argv):
    assert sessions.fast_parse(argv[0], argv[1:]) is None


MAP_SAME = [
    ["map", "lookup", "pinned", "/sys/fs/bpf/x", "key", "1", "0", "0", "0", "-j"],
    ["map", "update", "BPF_MAP0", "key", "1", "value", "2", "--value-type", "u64"],
    ["map", "show", "fd", "3"], ["map", "show"], ["map", "pin", "id", "5", "/sys/fs/bpf/p"],
    ["map", "dump", "BPF_MAP_PROTO_STATS", "-p"], ["map", "load", "id", "7", "-"],
]
MAP_FALLBACK = [["map"], ["map", "-h"], ["map", "lookup", "-j", "id", "5"],
                ["map", "frobnicate", "id", "5"], ["map", "dump", "--help"]]


@pytest.mark.parametrize("argv", MAP_SAME)
def test_map_fast_path_equals_argparse(argv):
    from bpfsession.cli import map as cli_map

    fast = cli_map.fast_parse(argv[0], argv[1:])
    assert fast is not None
    assert vars(fast) == vars(build_parser(argv[0]).parse_args(argv))


@pytest.mark.parametrize("argv", MAP_FALLBACK)
def test_map_unusual_goes_to_argparse(argv):
    from bpfsession.cli import map as cli_map

    assert cli_map.fast_parse(argv[0], argv[1:]) is None
