"""The argparse-free fast paths (new, list, show, attach) parse exactly as the grammar does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfsession import cli
from bpfsession.cli import build_parser, parse_args, sessions, split_globals
from bpfsession.cli.new import _FAST_OPTIONS, fast_parse
from bpfsession.cli.parser import is_global


def both(argv: list[str]) -> tuple[dict, dict]:
    """The Namespace of `bpfsession ARGV` through the fast path and through argparse."""
    return vars(parse_args(argv)), vars(parse_args(argv, fast=False))

SAME = [
    ["imp", "/tmp/u"],
    ["import", "/tmp/u", "run", "sh", "-c", "echo --name x"],
    ["--netns", "blue", "imp", "/tmp/u", "run", "true"],
    ["--name=n1", "--timeout", "2.5", "--allow-uid", "7", "--allow-uid=8", "imp", "/u"],
    ["--exec", "--init", "--no-new-privs", "--keep-caps", "cap_net_admin", "imp", "/u"],
    ["--timeout=inf", "run", "true"],
    [],
    ["imp", "/u", "--timeout", "3"],  # options after the positionals stay in `rest`
    ["--allow-uid", "7:ro", "--allow-uid=8", "--read-only", "imp", "/u"],
]
FALLBACK = [
    ["-h"], ["--help"], ["--net", "blue", "imp", "/u"], ["--", "imp", "/u"],
    ["--timeout", "soon", "imp", "/u"], ["--allow-uid", "-1", "imp", "/u"],
    ["--name"], ["--exec=yes"], ["--bogus"], ["--allow-uid", "7:rw", "imp", "/u"],
    ["--read-only=1", "imp", "/u"],
]


@pytest.mark.parametrize("argv", SAME)
def test_fast_path_equals_argparse(argv):
    assert fast_parse("new", argv) is not None
    fast, slow = both(["new", *argv])
    assert fast == slow


@pytest.mark.parametrize("argv", FALLBACK)
def test_anything_unusual_goes_to_argparse(argv):
    assert fast_parse("new", argv) is None


def test_fast_options_are_the_grammars_options():
    new = build_parser("new")._subparsers._group_actions[0].choices["new"]
    grammar = {opt: action.dest for action in new._actions for opt in action.option_strings
               if opt.startswith("--") and opt != "--help" and not is_global(opt)}
    assert grammar == {opt: dest for opt, (dest, _) in _FAST_OPTIONS.items()}


SESSIONS_SAME = [
    ["list"], ["list", "-j"], ["list", "--json"], ["show", "s1"], ["show", "-j", "42"],
    ["show", "s1", "--json"], ["attach", "s1"], ["attach", "tc-9", "run", "sh", "-c", "x -j"],
    ["list", "netns", "blue", "name", "a*"], ["list", "x"], ["-p", "list", "-q"],
    ["attach", "--read-only", "s1"], ["attach", "--maps", "a,b", "s1", "run", "x", "--maps"],
    ["attach", "--maps", "a", "--read-only", "s1", "run", "sh"],
    ["attach", "--read-only", "--maps", "BPF_MAP0", "-j", "s1"],
]
SESSIONS_FALLBACK = [
    ["list", "--watch"], ["list", "--watch", "2", "-j"], ["list", "--no-headers"], ["show"],
    ["show", "a", "b"], ["show", "-h"], ["attach"], ["attach", "-h"], ["attach", "s", "-x"],
    ["attach", "--read-only", "--read-only", "s"], ["attach", "--maps", "s"],
    ["attach", "--maps", "-x", "s"], ["attach", "--maps=a", "s"],
    ["attach", "--maps", "a", "--maps", "b", "s"], ["attach", "--keep-caps", "", "s"],
]


@pytest.mark.parametrize("argv", SESSIONS_SAME)
def test_sessions_fast_path_equals_argparse(argv):
    words, _ = split_globals(argv)
    assert sessions.fast_parse(words[0], words[1:]) is not None
    fast, slow = both(argv)
    assert fast == slow


@pytest.mark.parametrize("argv", SESSIONS_FALLBACK)
def test_sessions_unusual_goes_to_argparse(argv):
    assert sessions.fast_parse(argv[0], argv[1:]) is None


# ---- the global options: -j, -p, -q anywhere up to `run` -----------------------------------


@pytest.mark.parametrize("argv, words, flags", [
    (["-j", "list"], ["list"], (True, False, False)),
    (["map", "-j", "show", "id", "5"], ["map", "show", "id", "5"], (True, False, False)),
    (["list", "-j", "-p"], ["list"], (True, True, False)),
    (["-p", "show", "x"], ["show", "x"], (True, True, False)),
    (["-jq", "list"], ["list"], (True, False, True)),
    (["attach", "s", "-q", "run", "ls", "-j", "-q"], ["attach", "s", "run", "ls", "-j", "-q"],
     (False, False, True)),
    (["new", "imp", "/u", "run", "-p"], ["new", "imp", "/u", "run", "-p"], (False,) * 3),
    (["show", "--", "-j"], ["show", "--", "-j"], (False,) * 3),
    (["map", "update", "id", "1", "key", "-1", "value", "-2"],
     ["map", "update", "id", "1", "key", "-1", "value", "-2"], (False,) * 3),
])
def test_split_globals(argv, words, flags):
    got_words, got = split_globals(argv)
    assert (got_words, (got["json"], got["pretty"], got["quiet"])) == (words, flags)


@pytest.mark.parametrize("argv", [
    ["-j", "list"], ["list", "-p"], ["-q", "new", "--name", "x", "imp", "/u", "-j"],
    ["map", "-j", "show", "id", "5"], ["map", "dump", "-p", "id", "5"], ["send", "/u", "-j"],
    ["tui", "-q"], ["-p", "map", "lookup", "id", "5", "key", "0", "0", "0", "0"],
])
def test_every_verb_takes_the_global_options_anywhere(argv):
    args = parse_args(argv, fast=False)
    assert (args.json, args.pretty, args.quiet) == \
        ("-j" in argv or "-p" in argv, "-p" in argv, "-q" in argv)


def test_every_namespace_carries_the_global_options():
    for argv in (["list"], ["show", "x"], ["attach", "x"], ["new", "imp", "/u"], ["tui"],
                 ["map", "show"], ["send", "/u", "--map-id", "1"]):
        for fast in (True, False):
            args = vars(parse_args(argv, fast=fast))
            assert (args["json"], args["pretty"], args["quiet"]) == (False, False, False)


def test_watch_takes_only_a_number():
    assert parse_args(["list", "--watch", "name", "a*"]).watch == 1.0
    assert parse_args(["list", "--watch", "name", "a*"]).filters == ["name", "a*"]
    assert parse_args(["list", "--watch", "2.5", "netns", "x"]).watch == 2.5
    assert parse_args(["list", "netns", "x", "--watch"]).watch == 1.0


@pytest.mark.parametrize("argv, verb", [
    (["list", "--watch", "0"], "list"), (["list", "--watch", "-1"], "list"),
    (["list", "--bogus"], "list"), (["new", "--timeout", "0", "imp", "/u"], "new"),
    (["new", "--timeout", "soon", "imp", "/u"], "new"), (["map", "dump", "--bogus"], "map dump"),
    (["-j", "show"], "show"),
])
def test_a_usage_error_points_to_the_verbs_help(argv, verb, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("bpfsession: ") and err.count("\n") == 1
    assert err.endswith(f"(see 'bpfsession {verb} --help')\n"), err


def test_timeout_zero_and_soon_fail_the_same_way(capsys):
    lines = []
    for value in ("0", "soon"):
        with pytest.raises(SystemExit):
            parse_args(["new", "--timeout", value, "imp", "/u"])
        lines.append(capsys.readouterr().err.replace(repr(value), "V"))
    assert lines[0] == lines[1]
    assert cli.seconds("inf") == float("inf")
    for bad in ("nan", "-1", "0", "", "soon"):
        with pytest.raises(ValueError):
            cli.seconds(bad)


_GLOBAL_WORDS = st.sampled_from(["-j", "--json", "-p", "--pretty", "-q", "--quiet", "-jq"])
_PLAIN = [["list"], ["list", "name", "x*"], ["show", "s1"], ["attach", "s1"],
          ["attach", "s1", "run", "sh", "-c", "x"], ["new", "imp", "/u"],
          ["new", "--name", "n", "imp", "/u", "run", "true"]]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_PLAIN), st.lists(st.tuples(st.integers(0, 8), _GLOBAL_WORDS),
                                         max_size=4))
def test_global_options_sprinkled_anywhere_parse_the_same_both_ways(plain, inserts):
    argv = list(plain)
    end = argv.index("run") if "run" in argv else len(argv)
    for at, word in inserts:
        argv.insert(min(at, end), word)
        end += 1
    fast, slow = both(argv)
    assert fast == slow
    words, _ = split_globals(argv)
    assert words == plain


def test_send_help_describes_each_source(capsys):
    with pytest.raises(SystemExit):
        parse_args(["send", "--help"])
    out = capsys.readouterr().out
    for source in ("--map-id ID", "--pinned PATH", "--prog-id ID", "--dev IFACE", "--ingress",
                   "--egress", "--session SESSION"):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(source))
        assert len(line.strip()) > len(source) + 10, line


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


# ---- random argument lists: wherever a fast path answers, argparse agrees -------------

_WORDS = ["-j", "--json", "-h", "--", "run", "imp", "import", "/tmp/u", "s1", "42", "tc-9",
          "--name", "--name=x", "--netns", "blue", "--timeout", "2.5", "--timeout=nan", "inf",
          "--allow-uid", "7", "--allow-uid=-1", "--exec", "--exec=1", "--init", "--keep-caps",
          "cap_bpf", "--no-new-privs", "--watch", "1", "-x", "--bogus", "", "-", "sh", "-c",
          "--read-only", "--maps", "a,b", "--allow-uid=7:ro", "--maps=a"]
_argv = st.lists(st.one_of(st.sampled_from(_WORDS), st.text(max_size=6)), max_size=8)


def _parsed(argv: list[str], fast: bool):
    """The Namespace of `bpfsession ARGV` (global options taken out first, as main does),
    or None where the grammar refuses it (argparse exits)."""
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return parse_args(argv, fast=fast)
        except SystemExit:
            return None


@settings(max_examples=1500, deadline=None)
@given(verb=st.sampled_from(["new", "list", "show", "attach"]), argv=_argv)
def test_fast_paths_agree_with_the_grammar(verb, argv):
    fast = _parsed([verb, *argv], fast=True)
    slow = _parsed([verb, *argv], fast=False)
    if fast is None:
        assert slow is None  # the fast path handed it to argparse, which refused it
        return
    assert slow is not None, f"the fast path accepted {argv!r}, argparse refuses it"
    assert repr(sorted(vars(fast).items())) == repr(sorted(vars(slow).items()))  # nan == nan
