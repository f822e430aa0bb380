"""bpftool's JSON, written in one place (its json_writer.c): compact for `-j`, its pretty
layout for `-p` and for the text form of BTF maps.

A node is a str (a token already written: `5`, `"RED"`, `0x1`), a list (a JSON array) or
an Obj (a JSON object as ordered (name, node) pairs: anonymous members may repeat "").
Tokens are written once, by whoever knows their type (btf.dump, mapfmt); this module only
lays them out.
"""

from __future__ import annotations


class Obj(list):
    """A JSON object as ordered (name, node) pairs."""


def json_string(text: str) -> str:
    """A JSON string the way bpftool's jsonw_puts writes it, but always valid JSON
    (bpftool escapes ' as \\' which JSON parsers reject)."""
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    if any(ord(c) < 0x20 for c in out):
        out = (out.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
               .replace("\f", "\\f").replace("\b", "\\b"))
        out = "".join(c if ord(c) >= 0x20 else f"\\u{ord(c):04x}" for c in out)
    return f'"{out}"'


def token(value) -> str:
    """A Python scalar (bool, int, str, None) as a JSON token."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json_string(value) if isinstance(value, str) else str(value)


def compact(node) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, Obj):
        return "{" + ",".join(f"{json_string(k)}:{compact(v)}" for k, v in node) + "}"
    return "[" + ",".join(compact(v) for v in node) + "]"


def pretty(node, depth: int = 0) -> str:
    """json_writer's pretty mode: members on their own lines, array items not, and the
    closing bracket of a non-empty container on a new line (`[1,2,3\\n    ]`)."""
    out: list[str] = []
    _pretty(node, depth, out)
    return "".join(out)


def _pretty(node, depth: int, out: list[str]) -> None:
    if isinstance(node, str):
        out.append(node)
        return
    if isinstance(node, Obj):
        out.append("{")
        pad = "\n" + "    " * (depth + 1)
        for i, (k, v) in enumerate(node):
            out.append(("," if i else "") + pad + json_string(k) + ": ")
            _pretty(v, depth + 1, out)
        out.append(("\n" + "    " * depth if node else "") + "}")
        return
    out.append("[")
    for i, v in enumerate(node):
        if i:
            out.append(",")
        _pretty(v, depth + 1, out)
    out.append(("\n" + "    " * depth if node else "") + "]")


def render(node, pretty_json: bool) -> str:
    """One document as `-j` (compact) or `-p` (pretty) prints it, newline-terminated."""
    return (pretty(node) if pretty_json else compact(node)) + "\n"


def node(value):
    """A parsed JSON value (json.loads) as a node, to be written again in bpftool's layout."""
    if isinstance(value, dict):
        return Obj((k, node(v)) for k, v in value.items())
    if isinstance(value, list):
        return [node(v) for v in value]
    return repr(value) if isinstance(value, float) else token(value)
