"""Strings from outside (senders, /proc, registry files) made safe to show.

An obj name, a session name, a command line or an environment value is data: it may
hold terminal controls (ESC[2J, CR, LF) or bytes that are not UTF-8. Text output shows
it through `printable()`, as `ls -b` and systemd's cescape do; JSON carries the string
itself (json escapes controls on its own). Bytes are decoded once, with `decode()`:
invalid UTF-8 becomes the four characters `\\xNN`, so text and JSON agree and a
round trip through JSON loses nothing a user could tell apart.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, and the Unicode line/paragraph separators and bidi
# overrides that can reorder or break a terminal line.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: str) -> str:
    """`text` with every control character shown as \\xNN (\\uNNNN above 0xff)."""
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def decode(raw: bytes) -> str:
    """Bytes from outside as a str: UTF-8, invalid bytes as the text `\\xNN`."""
    return raw.decode("utf-8", errors="backslashreplace")
