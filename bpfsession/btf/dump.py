"""BTF-typed bytes -> the tree bpftool's btf_dumper.c prints (one entry at a time).

The rules follow btf_dumper.c so that `formatted` output (and the text form of BTF maps)
is the same as bpftool's; the tree is written by bpfsession.jsonw. A node is a str (a
token already formatted: `5`, `"RED"`, `0x1`), a list (JSON array) or an Obj.
"""

from __future__ import annotations

import struct

from bpfsession.btf.parse import (
    INT_BOOL,
    INT_CHAR,
    INT_SIGNED,
    KIND_ARRAY,
    KIND_CONST,
    KIND_DATASEC,
    KIND_ENUM,
    KIND_ENUM64,
    KIND_FLOAT,
    KIND_FWD,
    KIND_INT,
    KIND_PTR,
    KIND_RESTRICT,
    KIND_STRUCT,
    KIND_UNION,
    KIND_VAR,
    KIND_VOLATILE,
    MODIFIERS,
    Btf,
    Type,
)
from bpfsession.jsonw import Obj, json_string


def _is_print(c: int) -> bool:
    return 0x20 <= c < 0x7F


def char_array(btf: Btf, t: Type) -> bool:
    """An array bpftool may print as a string (when its bytes are printable up to a NUL):
    elements of one byte, char-encoded or named `char`. bpftool skips const/volatile
    but not typedefs: a typedef of char is no string."""
    if not t.nelems:
        return False
    elem = btf.types[t.ref]
    while elem.kind in (KIND_VOLATILE, KIND_CONST, KIND_RESTRICT):
        elem = btf.types[elem.ref]
    return (elem.kind == KIND_INT and elem.size == 1
            and (elem.encoding == INT_CHAR or elem.name == "char"))


class Dumper:
    """bpftool's btf_dumper over Python bytes. `plain` is bpftool's is_plain_text (the text
    form of `map dump` for BTF maps), else the `formatted` member of `-j` output."""

    def __init__(self, btf: Btf, plain: bool):
        self.btf = btf
        self.plain = plain

    def dump(self, tid: int, data: bytes, off: int = 0, bit_offset: int = 0):
        t = self.btf.types[tid]
        kind = t.kind
        if kind == KIND_INT:
            return self._int(t, data, off, bit_offset)
        if kind in (KIND_STRUCT, KIND_UNION):
            return self._struct(t, data, off)
        if kind == KIND_ARRAY:
            return self._array(t, data, off)
        if kind == KIND_ENUM or kind == KIND_ENUM64:
            return self._enum(t, data, off)
        if kind in MODIFIERS:
            return self.dump(self.btf.resolve(tid), data, off, bit_offset)
        if kind == KIND_PTR:
            value = int.from_bytes(data[off: off + 8], "little")
            if self.plain:
                return f"{value:#x}" if value else "(nil)"
            return str(value)
        if kind == KIND_VAR:
            return Obj([(t.name, self.dump(t.ref, data, off, bit_offset))])
        if kind == KIND_DATASEC:
            return Obj([(t.name, [self.dump(v, data, off + voff) for v, voff, _ in t.vars])])
        if kind == KIND_FLOAT:
            # bpftool prints "(unsupported-kind" here; a number is more use to anyone.
            fmt = {2: "<e", 4: "<f", 8: "<d"}.get(t.size)
            return repr(struct.unpack_from(fmt, data, off)[0]) if fmt else "null"
        if kind == 0:
            return "(unknown)"
        if kind == KIND_FWD:
            return "(fwd-kind-invalid)"
        return "(unsupported-kind"

    def _bitfield(self, nr_bits: int, bit_offset: int, data: bytes, off: int) -> str:
        nbytes = (bit_offset + nr_bits + 7) // 8
        raw = int.from_bytes(data[off: off + nbytes], "little")
        value = (raw >> bit_offset) & ((1 << nr_bits) - 1)
        return f"{value:#x}" if self.plain else f'"{value:#x}"'

    def _int(self, t: Type, data: bytes, off: int, bit_offset: int) -> str:
        bits = t.bits
        if bit_offset or t.bit_offset or bits % 8 or bits not in (8, 16, 32, 64, 128):
            total = bit_offset + t.bit_offset
            return self._bitfield(bits, total % 8, data, off + total // 8)
        if bits == 128:
            value = int.from_bytes(data[off: off + 16], "little")
            return f"{value:#x}" if self.plain else f'"{value:#x}"'
        raw = data[off: off + bits // 8]
        enc = t.encoding
        if enc == 0:
            return str(int.from_bytes(raw, "little"))
        if enc == INT_SIGNED:
            return str(int.from_bytes(raw, "little", signed=True))
        if enc == INT_CHAR:
            c = raw[0]
            if _is_print(c):
                return json_string(chr(c))
            return f"{c:#x}" if self.plain else f'"\\u00{c:02x}"'
        if enc == INT_BOOL:
            return "true" if int.from_bytes(raw, "little") else "false"
        return "(unsupported-kind"

    def _struct(self, t: Type, data: bytes, off: int) -> Obj:
        out = Obj()
        for m in t.members:
            data_off = off + m.bit_offset // 8
            if m.bitfield_size:
                node = self._bitfield(m.bitfield_size, m.bit_offset % 8, data, data_off)
            else:
                node = self.dump(m.type, data, data_off, m.bit_offset % 8)
            out.append((m.name, node))
        return out

    def _is_str_array(self, t: Type, data: bytes, off: int) -> bool:
        if not char_array(self.btf, t):
            return False
        for c in data[off: off + t.nelems]:
            if c == 0:
                return True
            if not _is_print(c):
                return False
        return False

    def _array(self, t: Type, data: bytes, off: int):
        if self._is_str_array(t, data, off):
            end = data.index(0, off)
            return json_string(bytes(data[off:end]).decode("ascii"))
        step = self.btf.size_of(t.ref)
        return [self.dump(t.ref, data, off + i * step) for i in range(t.nelems)]

    def _enum(self, t: Type, data: bytes, off: int) -> str:
        if t.size not in (1, 2, 4, 8):
            return "(unsupported-kind"
        raw = data[off: off + t.size]
        if t.kind == KIND_ENUM:
            value = int.from_bytes(raw, "little", signed=True)
        else:
            value = int.from_bytes(raw, "little", signed=t.kflag)
        mask = (1 << 64) - 1
        for name, val in t.values:
            if (val & mask) == (value & mask):
                return json_string(name)
        return str(value)
