"""BTF, parsed in pure Python from the raw blob the kernel hands back (kernel.bpf.btf_raw).

Only what map formatting needs: the type graph (ints, enums, structs, unions, arrays,
typedefs and modifiers, pointers, vars, datasecs) and the string table. Layout follows
include/uapi/linux/btf.h.

Types can also be built by hand (`Btf.from_layout`), which is how `--key-type u32,u16,u16`
layouts for maps without BTF reuse the same formatter and parser.
"""

from __future__ import annotations

import struct

BTF_MAGIC = 0xEB9F

# enum btf_kind (include/uapi/linux/btf.h)
KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM = 1, 2, 3, 4, 5, 6
KIND_FWD, KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT = 7, 8, 9, 10, 11
KIND_FUNC, KIND_FUNC_PROTO, KIND_VAR, KIND_DATASEC, KIND_FLOAT = 12, 13, 14, 15, 16
KIND_DECL_TAG, KIND_TYPE_TAG, KIND_ENUM64 = 17, 18, 19

MODIFIERS = (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG)

# BTF_INT_ENCODING bits
INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4


class BtfError(ValueError):
    """The blob is not BTF we can read (bad magic, truncated, unknown kind)."""


# Plain classes, not dataclasses: `bpfsession map` starts thousands of times from shell
# loops and dataclass creation costs milliseconds at import.


class Member:
    __slots__ = ("name", "type", "bit_offset", "bitfield_size")

    def __init__(self, name: str, type: int, bit_offset: int, bitfield_size: int = 0):
        self.name, self.type = name, type
        self.bit_offset, self.bitfield_size = bit_offset, bitfield_size


class Type:
    """One BTF type. `size` is the byte size for sized kinds, `ref` the referenced type id
    for modifiers, pointers, arrays (element) and vars. INT: encoding, bits, bit_offset;
    ARRAY: nelems; STRUCT/UNION: members; ENUM/ENUM64: values as (name, value);
    DATASEC: vars as (var type id, offset, size)."""

    __slots__ = ("kind", "name", "size", "ref", "kflag", "encoding", "bits", "bit_offset",
                 "nelems", "members", "values", "vars")

    def __init__(self, kind: int, name: str = "", size: int = 0, ref: int = 0,
                 kflag: bool = False, encoding: int = 0, bits: int = 0, nelems: int = 0,
                 members: list[Member] | None = None):
        self.kind, self.name, self.size, self.ref, self.kflag = kind, name, size, ref, kflag
        self.encoding, self.bits, self.bit_offset = encoding, bits, 0
        self.nelems = nelems
        self.members: list[Member] = members if members is not None else []
        self.values: list[tuple[str, int]] = []
        self.vars: list[tuple[int, int, int]] = []


class Btf:
    """A parsed BTF object: `types[id]` (id 0 is void)."""

    def __init__(self, types: list[Type]):
        self.types = types

    @classmethod
    def parse(cls, blob: bytes) -> Btf:
        if len(blob) < 24:
            raise BtfError("BTF blob too short")
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", blob, 0)
        if magic != BTF_MAGIC:
            raise BtfError(f"bad BTF magic {magic:#x}")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", blob, 8)
        types_data = blob[hdr_len + type_off: hdr_len + type_off + type_len]
        strings = blob[hdr_len + str_off: hdr_len + str_off + str_len]
        return cls([Type(0, "void")] + list(_parse_types(types_data, strings)))

    @classmethod
    def from_layout(cls, spec: str) -> tuple[Btf, int]:
        """A struct built from `u32,u16,u16` (C alignment), or one int for `u64`.

        Elements: u8 u16 u32 u64 s8 s16 s32 s64, each optionally `[N]`; `char[N]` is a
        string. Returns (btf, type id of the whole layout).
        """
        types = [Type(0, "void")]
        fields = [f.strip() for f in spec.split(",")]
        if not spec.strip() or not all(fields):
            raise BtfError(f"empty type layout {spec!r}")
        ids = [_layout_field(types, f) for f in fields]
        if len(ids) == 1:
            return cls(types), ids[0]
        members, offset, align = [], 0, 1
        for i, tid in enumerate(ids):
            size, a = _size_align(types, tid)
            offset = -(-offset // a) * a
            members.append(Member(f"f{i}", tid, offset * 8))
            offset += size
            align = max(align, a)
        size = -(-offset // align) * align
        types.append(Type(KIND_STRUCT, "", size, members=members))
        return cls(types), len(types) - 1

    def resolve(self, tid: int) -> int:
        """Skip typedefs and modifiers."""
        seen = 0
        while self.types[tid].kind in MODIFIERS:
            tid = self.types[tid].ref
            seen += 1
            if seen > 64:
                raise BtfError("BTF modifier loop")
        return tid

    def size_of(self, tid: int) -> int:
        t = self.types[self.resolve(tid)]
        if t.kind == KIND_ARRAY:
            return t.nelems * self.size_of(t.ref)
        if t.kind == KIND_PTR:
            return 8
        if t.kind == KIND_VAR:
            return self.size_of(t.ref)
        return t.size


_LAYOUT_INTS = {
    "u8": (1, 0), "u16": (2, 0), "u32": (4, 0), "u64": (8, 0),
    "s8": (1, INT_SIGNED), "s16": (2, INT_SIGNED), "s32": (4, INT_SIGNED),
    "s64": (8, INT_SIGNED), "char": (1, INT_SIGNED),
}


def _layout_field(types: list[Type], text: str) -> int:
    name, _, rest = text.partition("[")
    name = name.strip()
    if name.startswith("__"):
        name = name[2:]
    if name not in _LAYOUT_INTS:
        raise BtfError(f"unknown type {name!r} (use u8 u16 u32 u64 s8 s16 s32 s64, "
                       "optionally with [N], or char[N])")
    size, enc = _LAYOUT_INTS[name]
    types.append(Type(KIND_INT, name, size, encoding=enc, bits=size * 8))
    tid = len(types) - 1
    if rest:
        count = rest.rstrip("]").strip()
        if not rest.endswith("]") or not count.isdigit() or int(count) == 0:
            raise BtfError(f"bad array length in {text!r}")
        types.append(Type(KIND_ARRAY, ref=tid, nelems=int(count)))
        tid = len(types) - 1
    elif name == "char":
        raise BtfError("char needs a length, e.g. char[16]")
    return tid


def _size_align(types: list[Type], tid: int) -> tuple[int, int]:
    t = types[tid]
    if t.kind == KIND_ARRAY:
        size, align = _size_align(types, t.ref)
        return size * t.nelems, align
    return t.size, t.size


def _str(strings: bytes, off: int) -> str:
    end = strings.find(b"\0", off)
    return strings[off: end if end >= 0 else len(strings)].decode(errors="replace")


def _parse_types(data: bytes, strings: bytes):
    pos, n = 0, len(data)
    try:
        while pos < n:
            name_off, info, size_or_type = struct.unpack_from("<III", data, pos)
            pos += 12
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            kflag = bool(info >> 31)
            t = Type(kind, _str(strings, name_off), kflag=kflag)
            if kind in (KIND_INT, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_DATASEC,
                        KIND_FLOAT, KIND_ENUM64):
                t.size = size_or_type
            else:
                t.ref = size_or_type
            if kind == KIND_INT:
                (word,) = struct.unpack_from("<I", data, pos)
                pos += 4
                t.encoding = (word >> 24) & 0xF
                t.bit_offset, t.bits = (word >> 16) & 0xFF, word & 0xFF
            elif kind == KIND_ARRAY:
                t.ref, _index, t.nelems = struct.unpack_from("<III", data, pos)
                pos += 12
            elif kind in (KIND_STRUCT, KIND_UNION):
                for _ in range(vlen):
                    m_name, m_type, m_off = struct.unpack_from("<III", data, pos)
                    pos += 12
                    # kind_flag: offset holds bitfield size (top 8 bits) and bit offset.
                    if kflag:
                        t.members.append(Member(_str(strings, m_name), m_type,
                                                m_off & 0xFFFFFF, m_off >> 24))
                    else:
                        t.members.append(Member(_str(strings, m_name), m_type, m_off))
            elif kind == KIND_ENUM:
                for _ in range(vlen):
                    e_name, e_val = struct.unpack_from("<Ii", data, pos)
                    pos += 8
                    t.values.append((_str(strings, e_name), e_val))
            elif kind == KIND_ENUM64:
                for _ in range(vlen):
                    e_name, lo, hi = struct.unpack_from("<III", data, pos)
                    pos += 12
                    t.values.append((_str(strings, e_name), hi << 32 | lo))
            elif kind == KIND_FUNC_PROTO:
                pos += 8 * vlen
            elif kind in (KIND_VAR, KIND_DECL_TAG):
                pos += 4
            elif kind == KIND_DATASEC:
                for _ in range(vlen):
                    t.vars.append(struct.unpack_from("<III", data, pos))
                    pos += 12
            elif kind not in (KIND_PTR, KIND_FWD, KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST,
                              KIND_RESTRICT, KIND_FUNC, KIND_FLOAT, KIND_TYPE_TAG):
                raise BtfError(f"unknown BTF kind {kind}")
            yield t
    except struct.error as err:
        raise BtfError("truncated BTF type section") from err
