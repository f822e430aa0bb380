"""The argparse-free fast paths (new, list, show, attach) parse exactly as the grammar does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# ---- random argument lists: wherever a fast path answers, argparse agrees -------------

_WORDS = ["-j", "--json", "-h", "--", "run", "imp", "import", "/tmp/u", "s1", "42", "tc-9",
          "--name", "--name=x", "--netns", "blue", "--timeout", "2.5", "--timeout=nan", "inf",
          "--allow-uid", "7", "--allow-uid=-1", "--exec", "--exec=1", "--init", "--keep-caps",
          "cap_bpf", "--no-new-privs", "--watch", "1", "-x", "--bogus", "", "-", "sh", "-c"]
_argv = st.lists(st.one_of(st.sampled_from(_WORDS), st.text(max_size=6)), max_size=8)


def _argparse(verb: str, argv: list[str]):
    """argparse's Namespace, or None where it refuses (it exits)."""
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return build_parser(verb).parse_args([verb, *argv])
        except SystemExit:
            return None


@settings(max_examples=1500, deadline=None)
@given(verb=st.sampled_from(["new", "list", "show", "attach"]), argv=_argv)
def test_fast_paths_agree_with_the_grammar(verb, argv):
    fast = (fast_parse if verb == "new" else sessions.fast_parse)(verb, argv)
    if fast is None:
        return  # argparse parses it, errors and all
    slow = _argparse(verb, argv)
    assert slow is not None, f"the fast path accepted {argv!r}, argparse refuses it"
    assert repr(sorted(vars(fast).items())) == repr(sorted(vars(slow).items()))  # nan == nan
