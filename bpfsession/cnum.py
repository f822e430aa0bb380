"""Numbers as C reads them (strtol), shared by bpftool's byte syntax and typed input;
kept apart from the BTF modules so that a plain `map lookup` does not import them."""

from __future__ import annotations


class EncodeError(ValueError):
    """Typed input that does not fit the type; the message says which part and why."""


def c_int(text: str, base: int = 0) -> int:
    """An integer the way C's strtol reads it: 0x.. hex, 0.. octal, else decimal."""
    if base != 16 and text.isdigit() and text.isascii() and (text[0] != "0" or len(text) == 1):
        return int(text)  # plain decimal, the usual case (bytes of bpftool's syntax)
    s = text.strip()
    sign = 1
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    digits = "0123456789abcdefABCDEF"
    if base == 16 or (base == 0 and s[:2].lower() == "0x"):
        if s[:2].lower() == "0x":
            s = s[2:]
        base, allowed = 16, digits
    elif base == 0 and len(s) > 1 and s[0] == "0":
        base, allowed = 8, "01234567"
    else:
        base, allowed = 10, "0123456789"
    if not s or any(c not in allowed for c in s):
        raise EncodeError(f"{text!r} is not a number")
    return sign * int(s, base)
