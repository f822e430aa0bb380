"""BTF, parsed in pure Python from the raw blob the kernel hands back (kernel.bpf.btf_raw).

Only what map formatting needs: the type graph (ints, enums, structs, unions, arrays,
typedefs and modifiers, pointers, vars, datasecs) and the string table. Layout follows
include/uapi/linux/btf.h; the formatting rules follow bpftool's btf_dumper.c so that
`formatted` output is the same as `bpftool -j map dump`.

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


# ---------------------------------------------------------------------------------------
# Formatting: BTF-typed bytes -> a tree bpftool's json_writer would print.
#
# A node is a str (a token already formatted: `5`, `"RED"`, `0x1`), a list (JSON array)
# or an Obj (a JSON object kept as (name, node) pairs: anonymous members may repeat "").


class Obj(list):
    """A JSON object as ordered (name, node) pairs."""


def _is_print(c: int) -> bool:
    return 0x20 <= c < 0x7F


def json_string(text: str) -> str:
    """A JSON string the way bpftool's jsonw_puts writes it, but always valid JSON
    (bpftool escapes ' as \\' which JSON parsers reject)."""
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    if any(ord(c) < 0x20 for c in out):
        out = (out.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
               .replace("\f", "\\f").replace("\b", "\\b"))
        out = "".join(c if ord(c) >= 0x20 else f"\\u{ord(c):04x}" for c in out)
    return f'"{out}"'


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
        if not t.nelems:
            return False
        # bpftool skips const/volatile but not typedefs: a typedef of char is no string.
        elem = self.btf.types[t.ref]
        while elem.kind in (KIND_VOLATILE, KIND_CONST, KIND_RESTRICT):
            elem = self.btf.types[elem.ref]
        if elem.kind != KIND_INT or elem.size != 1:
            return False
        if elem.encoding != INT_CHAR and elem.name != "char":
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


# ---------------------------------------------------------------------------------------
# Parsing: typed input (JSON values or positional tokens) -> bytes in a BTF layout.


class EncodeError(ValueError):
    """Typed input that does not fit the type; the message says which part and why."""


def _at(path: str) -> str:
    return f"{path}: " if path else ""


def c_int(text: str, base: int = 0) -> int:
    """An integer the way C's strtol reads it: 0x.. hex, 0.. octal, else decimal."""
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
