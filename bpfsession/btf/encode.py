"""Typed input -> bytes in a BTF layout: JSON values (the shape `formatted` prints) or
positional tokens, one per field; and C's way of reading numbers.
"""

from __future__ import annotations

from bpfsession.btf.parse import (
    INT_BOOL,
    INT_CHAR,
    KIND_ARRAY,
    KIND_DATASEC,
    KIND_ENUM,
    KIND_ENUM64,
    KIND_INT,
    KIND_PTR,
    KIND_STRUCT,
    KIND_UNION,
    KIND_VAR,
    MODIFIERS,
    Btf,
    Type,
)
from bpfsession.cnum import EncodeError, c_int  # noqa: F401  (c_int: re-exported)


def _at(path: str) -> str:
    return f"{path}: " if path else ""


class Encoder:
    """Writes Python values into a bytearray following BTF types.

    Accepted values: ints or numeric strings for ints, bitfields and pointers; enum
    names or numbers; dicts by member name or lists by position for structs (a union
    takes one member); lists for arrays; strings for char arrays; and for a DATASEC a
    dict of its variables.
    """

    def __init__(self, btf: Btf):
        self.btf = btf

    def encode(self, tid: int, value) -> bytes:
        buf = bytearray(self.btf.size_of(tid))
        self.put(tid, value, buf, 0, 0, "")
        return bytes(buf)

    def put(self, tid: int, value, buf: bytearray, off: int, bit_offset: int, path: str):
        t = self.btf.types[tid]
        kind = t.kind
        if kind in MODIFIERS:
            return self.put(self.btf.resolve(tid), value, buf, off, bit_offset, path)
        if kind == KIND_INT:
            if t.encoding == INT_BOOL and isinstance(value, str) and value in ("true", "false"):
                value = value == "true"
            if (t.bits == 8 and isinstance(value, str) and len(value) == 1
                    and not value.isdigit()):
                value = ord(value)
            total = bit_offset + t.bit_offset
            return self._bits(buf, off + total // 8, total % 8, t.bits,
                              self._number(value, path), path)
        if kind in (KIND_ENUM, KIND_ENUM64):
            if isinstance(value, str):
                for name, val in t.values:
                    if name == value:
                        value = val
                        break
            return self._bits(buf, off, 0, t.size * 8, self._number(value, path), path)
        if kind == KIND_PTR:
            return self._bits(buf, off, 0, 64, self._number(value, path), path)
        if kind in (KIND_STRUCT, KIND_UNION):
            return self._struct(t, value, buf, off, path)
        if kind == KIND_ARRAY:
            return self._array(t, value, buf, off, path)
        if kind == KIND_DATASEC:
            return self._datasec(t, value, buf, off, path)
        if kind == KIND_VAR:
            return self.put(t.ref, value, buf, off, bit_offset, path)
        raise EncodeError(f"{_at(path)}cannot write this type from typed input; "
                          "give the bytes instead (hex ...)")

    def _number(self, value, path: str) -> int:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return c_int(value)
            except EncodeError:
                pass
        raise EncodeError(f"{_at(path)}expected a number, got {value!r}")

    @staticmethod
    def _bits(buf: bytearray, off: int, bit_offset: int, nbits: int, value: int, path: str):
        if not -(1 << (nbits - 1)) <= value < (1 << nbits):
            raise EncodeError(f"{_at(path)}{value} does not fit in {nbits} bits")
        value &= (1 << nbits) - 1
        nbytes = (bit_offset + nbits + 7) // 8
        mask = ((1 << nbits) - 1) << bit_offset
        old = int.from_bytes(buf[off: off + nbytes], "little")
        new = (old & ~mask) | (value << bit_offset)
        buf[off: off + nbytes] = new.to_bytes(nbytes, "little")

    def _struct(self, t: Type, value, buf: bytearray, off: int, path: str):
        members = t.members
        if isinstance(value, dict):
            by_name = {m.name: m for m in members}
            unknown = [k for k in value if k not in by_name]
            if unknown:
                raise EncodeError(f"{_at(path)}no member {unknown[0]!r} (members: "
                                  f"{', '.join(m.name for m in members)})")
            pairs = [(by_name[k], v) for k, v in value.items()]
        elif isinstance(value, list):
            if t.kind == KIND_UNION:
                members = members[:1]
            if len(value) != len(members):
                raise EncodeError(f"{_at(path)}expected {len(members)} members "
                                  f"({', '.join(m.name for m in members)}), got {len(value)}")
            pairs = list(zip(members, value, strict=True))
        else:
            raise EncodeError(f"{_at(path)}expected an object or a list of members, "
                              f"got {value!r}")
        for m, v in pairs:
            sub = f"{path}.{m.name}" if path else m.name
            moff = off + m.bit_offset // 8
            if m.bitfield_size:
                self._bits(buf, moff, m.bit_offset % 8, m.bitfield_size, self._number(v, sub),
                           sub)
            else:
                self.put(m.type, v, buf, moff, m.bit_offset % 8, sub)

    def _array(self, t: Type, value, buf: bytearray, off: int, path: str):
        elem = self.btf.types[self.btf.resolve(t.ref)]
        if isinstance(value, str) and elem.kind == KIND_INT and elem.size == 1:
            raw = value.encode()
            if len(raw) > t.nelems:
                raise EncodeError(f"{_at(path)}{value!r} is longer than {t.nelems} bytes")
            buf[off: off + len(raw)] = raw
            return
        if not isinstance(value, list) or len(value) != t.nelems:
            raise EncodeError(f"{_at(path)}expected a list of {t.nelems} elements, "
                              f"got {value!r}")
        step = self.btf.size_of(t.ref)
        for i, v in enumerate(value):
            self.put(t.ref, v, buf, off + i * step, 0, f"{path}[{i}]")

    def _datasec(self, t: Type, value, buf: bytearray, off: int, path: str):
        # bpftool prints {"<sec>": [{"var": v}, ...]}; accept that, or {"var": v, ...}.
        if isinstance(value, dict) and list(value) == [t.name]:
            value = value[t.name]
        if isinstance(value, list):
            merged = {}
            for item in value:
                if not isinstance(item, dict):
                    raise EncodeError(f"{t.name}: expected {{\"var\": value}} items")
                merged.update(item)
            value = merged
        if not isinstance(value, dict):
            raise EncodeError(f"{t.name}: expected an object of variables")
        by_name = {self.btf.types[v].name: (v, voff) for v, voff, _ in t.vars}
        for name, v in value.items():
            if name not in by_name:
                raise EncodeError(f"{t.name}: no variable {name!r} (variables: "
                                  f"{', '.join(by_name)})")
            vid, voff = by_name[name]
            self.put(vid, v, buf, off + voff, 0, name)

    # Positional tokens: one per leaf (int, enum, bitfield, pointer, char string).

    def leaves(self, tid: int, path: str = "") -> list[str]:
        """Leaf names in order, e.g. ['id', 'color', 'ports[0][0]', ...]."""
        t = self.btf.types[self.btf.resolve(tid)]
        if t.kind in (KIND_STRUCT, KIND_UNION):
            members = t.members[:1] if t.kind == KIND_UNION else t.members
            out = []
            for m in members:
                sub = f"{path}.{m.name}" if path else m.name
                out += [sub] if m.bitfield_size else self.leaves(m.type, sub)
            return out
        if t.kind == KIND_ARRAY:
            if self._is_char(t.ref):
                return [path or "string"]
            out = []
            for i in range(t.nelems):
                out += self.leaves(t.ref, f"{path}[{i}]")
            return out
        if t.kind == KIND_DATASEC:
            out = []
            for v, _, _ in t.vars:
                out += self.leaves(v, self.btf.types[v].name)
            return out
        if t.kind == KIND_VAR:
            return self.leaves(t.ref, path)
        return [path or "value"]

    def shape(self, tid: int, tokens: list[str], pos: int = 0):
        """Positional tokens -> the nested value `put` takes; returns (value, next pos)."""
        t = self.btf.types[self.btf.resolve(tid)]
        if t.kind in (KIND_STRUCT, KIND_UNION):
            members = t.members[:1] if t.kind == KIND_UNION else t.members
            out = []
            for m in members:
                if m.bitfield_size:
                    out.append(tokens[pos])
                    pos += 1
                else:
                    v, pos = self.shape(m.type, tokens, pos)
                    out.append(v)
            return out, pos
        if t.kind == KIND_ARRAY and not self._is_char(t.ref):
            out = []
            for _ in range(t.nelems):
                v, pos = self.shape(t.ref, tokens, pos)
                out.append(v)
            return out, pos
        if t.kind == KIND_DATASEC:
            out = {}
            for v, _, _ in t.vars:
                out[self.btf.types[v].name], pos = self.shape(v, tokens, pos)
            return out, pos
        if t.kind == KIND_VAR:
            return self.shape(t.ref, tokens, pos)
        return tokens[pos], pos + 1

    def _is_char(self, tid: int) -> bool:
        t = self.btf.types[self.btf.resolve(tid)]
        return t.kind == KIND_INT and t.size == 1 and (t.encoding == INT_CHAR or t.name == "char")
