"""printable() and decode(): the one escaping of outside strings for text output."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bpfsession.printable import decode, printable


def test_controls_are_escaped_and_the_rest_is_kept():
    assert printable("plain name-1.o") == "plain name-1.o"
    assert printable("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert printable("line\nfake row\r") == "line\\x0afake row\\x0d"
    assert printable("tab\there\x7f\x9b") == "tab\\x09here\\x7f\\x9b"
    assert printable("[/x] [bold]markup[/]") == "[/x] [bold]markup[/]"  # not markup here
    assert printable("bidi\u202eevil\u2028") == "bidi\\u202eevil\\u2028"
    assert printable("ünïcödé ✓") == "ünïcödé ✓"


def test_invalid_utf8_becomes_backslash_x():
    assert decode(b"ok\xff\xfeok") == "ok\\xff\\xfeok"
    assert decode("ü".encode()) == "ü"


@given(st.text())
def test_no_control_character_survives(text):
    out = printable(text)
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in out)


@given(st.binary())
def test_decode_never_fails_and_is_printable_after_escaping(raw):
    out = printable(decode(raw))
    assert "\x1b" not in out and "\n" not in out
