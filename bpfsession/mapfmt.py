"""Map keys and values in and out, in bpftool's words.

Out: the text bpftool prints (`key: 01 00 00 00  value: ...`, or for maps with BTF its
pretty JSON-like form) and its `-j` JSON (`key`/`value` arrays of "0x.." strings,
`values` per CPU, `formatted` from BTF), reproduced from bpftool's map.c, json_writer.c
and btf_dumper.c so scripts written against bpftool read ours unchanged.

In: bpftool's byte syntax (`0x01 0 0 0`, `hex 01 00 00 00`), or typed values where BTF
or a `--key-type/--value-type` layout says what the bytes are.

Big dumps without BTF take the numpy path (FixedFormatter): every record of such a map
has the same length, so a whole batch is formatted as one uint8 matrix.
"""

from __future__ import annotations

from bpfsession.btf import Btf, Dumper, EncodeError, Encoder, Obj, c_int, json_string
from bpfsession.errors import BpfSessionError

_HEX_JSON = [f'"0x{b:02x}"' for b in range(256)]
_HEX = [f"{b:02x}" for b in range(256)]


def hex_node(data: bytes) -> list[str]:
    """bpftool's print_hex_data_json: ["0x01","0x00",...]."""
    return [_HEX_JSON[b] for b in data]


def fprint_hex(data: bytes) -> str:
    """bpftool's fprint_hex(.., " "): bytes by spaces, 8 a group, 16 a line."""
    parts = []
    for i, b in enumerate(data):
        if i:
            parts.append("\n" if i % 16 == 0 else "  " if i % 8 == 0 else " ")
        parts.append(_HEX[b])
    return "".join(parts)


# --- rendering nodes the way bpftool's json_writer does --------------------------------


def compact(node) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, Obj):
        return "{" + ",".join(f'{_name(k)}:{compact(v)}' for k, v in node) + "}"
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
            out.append(("," if i else "") + pad + _name(k) + ": ")
            _pretty(v, depth + 1, out)
        out.append(("\n" + "    " * depth if node else "") + "}")
        return
    out.append("[")
    for i, v in enumerate(node):
        if i:
            out.append(",")
        _pretty(v, depth + 1, out)
    out.append(("\n" + "    " * depth if node else "") + "]")


def _name(name: str) -> str:
    return json_string(name)


# --- how one map's entries look ---------------------------------------------------------

PERCPU_TYPES = frozenset({"percpu_hash", "percpu_array", "lru_percpu_hash",
                          "percpu_cgroup_storage"})
ID_VALUE_TYPES = {"prog_array": "prog_id", "array_of_maps": "inner_map_id",
                  "hash_of_maps": "inner_map_id"}


class Layout:
    """Everything needed to show or parse one map's keys and values: `key_type` and
    `value_type` are type ids (0: unknown) in `key_btf` / `value_btf` (the map's BTF, or
    a --key-type/--value-type layout)."""

    def __init__(self, type_name: str, key_size: int, value_size: int, ncpus: int = 1):
        self.type_name, self.key_size, self.value_size = type_name, key_size, value_size
        self.ncpus = ncpus
        self.key_type = self.value_type = 0
        self.key_btf: Btf | None = None
        self.value_btf: Btf | None = None

    @property
    def percpu(self) -> bool:
        return self.type_name in PERCPU_TYPES

    @property
    def stride(self) -> int:
        """Bytes per CPU in a per-CPU value: round_up(value_size, 8)."""
        return (self.value_size + 7) // 8 * 8

    @property
    def value_buf_size(self) -> int:
        return self.stride * self.ncpus if self.percpu else self.value_size

    @property
    def formatted(self) -> bool:
        return bool(self.key_type or self.value_type)

    def cpu_values(self, value: bytes) -> list[bytes]:
        step, size = self.stride, self.value_size
        return [value[i * step: i * step + size] for i in range(self.ncpus)]


class EntryFormatter:
    """One entry at a time, as bpftool prints it (text, BTF text, or -j)."""

    def __init__(self, layout: Layout, as_json: bool):
        self.layout = layout
        self.as_json = as_json
        self.plain_btf = not as_json and layout.formatted
        self.id_field = ID_VALUE_TYPES.get(layout.type_name)
        if layout.formatted:
            self.key_dumper = Dumper(layout.key_btf, plain=not as_json) if layout.key_type \
                else None
            self.value_dumper = Dumper(layout.value_btf, plain=not as_json) \
                if layout.value_type else None

    def btf_node(self, key: bytes, value: bytes) -> Obj:
        """bpftool's do_dump_btf: {key, value} or {key, values: [{cpu, value}]}."""
        lay = self.layout
        node = Obj()
        if lay.key_type:
            node.append(("key", self.key_dumper.dump(lay.key_type, key)))
        if lay.value_type:
            vd = self.value_dumper
            if lay.percpu:
                cpus = [Obj([("cpu", str(i)), ("value", vd.dump(lay.value_type, v))])
                        for i, v in enumerate(lay.cpu_values(value))]
                node.append(("values", cpus))
            else:
                node.append(("value", vd.dump(lay.value_type, value)))
        return node

    def json_node(self, key: bytes, value: bytes) -> Obj:
        """bpftool's print_entry_json, plus prog_id/inner_map_id for fd-holding maps."""
        lay = self.layout
        node = Obj([("key", hex_node(key))])
        if lay.percpu:
            node.append(("values", [Obj([("cpu", str(i)), ("value", hex_node(v))])
                                    for i, v in enumerate(lay.cpu_values(value))]))
        else:
            node.append(("value", hex_node(value)))
            if self.id_field:
                node.append((self.id_field, str(int.from_bytes(value[:4], "little"))))
        if lay.formatted:
            node.append(("formatted", self.btf_node(key, value)))
        return node

    def node(self, key: bytes, value: bytes) -> Obj:
        return self.json_node(key, value) if self.as_json else self.btf_node(key, value)

    def plain(self, key: bytes, value: bytes) -> str:
        """bpftool's print_entry_plain (maps without BTF), one entry, newline-terminated."""
        lay = self.layout
        ks, vs = lay.key_size, lay.value_size
        if lay.percpu:
            out = f"key:\n{fprint_hex(key)}\n" if ks else ""
            sep = "\n" if vs > 16 else " "
            for i, v in enumerate(lay.cpu_values(value)):
                out += f"value (CPU {i:02d}):{sep}{fprint_hex(v)}\n"
            return out
        break_names = ks > 16 or vs > 16
        single_line = ks + vs <= 24 and not break_names
        out = ""
        if ks:
            out += ("key:\n" if break_names else "key: ") + fprint_hex(key)
            out += "  " if single_line else "\n"
        if vs:
            out += ("value:\n" if break_names else "value: ") + fprint_hex(value)
        if self.id_field:
            out += f"  {self.id_field} {int.from_bytes(value[:4], 'little')}"
        return out + "\n"


# --- parsing DATA -------------------------------------------------------------------------

KEYWORDS = ("key", "value", "any", "noexist", "exist")


class TypedSlot:
    """A typed layout for one side (key or value): BTF (or a --key-type layout) + type id;
    `origin` ("BTF", "--key-type u32") names it in messages."""

    def __init__(self, btf: Btf, type_id: int, origin: str):
        self.btf, self.type_id, self.origin = btf, type_id, origin


def parse_data(tokens: list[str], size: int, what: str, typed: TypedSlot | None) -> bytes:
    """DATA -> exactly `size` bytes.

    bpftool's bytes win whenever they fit: `hex 01 02 ..`, or as many C numbers 0..255 as
    the size (`0x01 0 0 0`). Otherwise, with a typed layout: one JSON value
    (`'{"packets": 1}'`, `[1,2]`), or one token per field in order (`5 RED 1`).
    """
    if not tokens:
        raise BpfSessionError(f"{what} needs data: {_bytes_hint(what, size, typed)}")
    if "hex".startswith(tokens[0]) and tokens[0]:
        return _bytes(tokens[1:], size, what, 16, typed)
    as_bytes = _try_bytes(tokens, size)
    if as_bytes is not None:
        return as_bytes
    if typed is None:
        return _bytes(tokens, size, what, 0, typed)  # raises the precise byte error
    return _typed(tokens, size, what, typed)


def _try_bytes(tokens: list[str], size: int) -> bytes | None:
    if len(tokens) != size:
        return None
    out = bytearray()
    for tok in tokens:
        try:
            b = c_int(tok)
        except EncodeError:
            return None
        if not 0 <= b <= 255:
            return None
        out.append(b)
    return bytes(out)


def _bytes(tokens: list[str], size: int, what: str, base: int, typed) -> bytes:
    out = bytearray()
    for tok in tokens:
        try:
            b = c_int(tok, base)
        except EncodeError:
            raise BpfSessionError(
                f"{what}: cannot read {tok!r} as a byte; {_bytes_hint(what, size, typed)}"
            ) from None
        if not 0 <= b <= 255:
            raise BpfSessionError(f"{what}: {tok} is not a byte (0..255); "
                                  f"{_bytes_hint(what, size, typed)}")
        out.append(b)
    if len(out) != size:
        raise BpfSessionError(f"{what} expects {size} bytes, got {len(out)}; "
                              f"{_bytes_hint(what, size, typed)}")
    return bytes(out)


def _bytes_hint(what: str, size: int, typed: TypedSlot | None) -> str:
    sample = " ".join(["0x01"] + ["0"] * (size - 1)) if size else ""
    hint = f"give {size} bytes like `{sample}` or `hex {' '.join(['01'] + ['00'] * (size - 1))}`"
    if typed is not None:
        enc = Encoder(typed.btf)
        names = enc.leaves(typed.type_id)
        hint += f", or typed ({typed.origin}): one value per field ({' '.join(names)})"
    elif size in (1, 2, 4, 8):
        hint += f", or add --{what}-type u{size * 8}"
    return hint


def _typed(tokens: list[str], size: int, what: str, typed: TypedSlot) -> bytes:
    enc = Encoder(typed.btf)
    try:
        if len(tokens) == 1 and tokens[0][:1] in ("{", "[", '"'):
            import json

            try:
                value = json.loads(tokens[0])
            except ValueError as err:
                raise EncodeError(f"not valid JSON ({err.msg})") from None
        else:
            names = enc.leaves(typed.type_id)
            if len(tokens) != len(names):
                raise EncodeError(f"expected {len(names)} field value(s) "
                                  f"({' '.join(names)}) or {size} bytes, got {len(tokens)}")
            value, _ = enc.shape(typed.type_id, tokens)
        data = enc.encode(typed.type_id, value)
    except EncodeError as err:
        raise BpfSessionError(f"{what} ({typed.origin}): {err}") from None
    if len(data) != size:
        raise BpfSessionError(f"{what} ({typed.origin}) is {len(data)} bytes but the map's "
                              f"{what} is {size}: fix the layout")
    return data


# --- the fast path: whole batches of fixed-width records ---------------------------------


class FixedFormatter:
    """Formats a batch of entries of a map without `formatted` output in one go.

    Every record (text line, or JSON object) of such a map has the same length, so a
    record is a template with two hex digits to fill per byte: a batch becomes an
    (n, record) uint8 matrix filled column-wise from the key/value bytes. numpy is
    imported here only; small dumps never get here.
    """

    def __init__(self, layout: Layout, as_json: bool, open_end: bool = False):
        """`open_end`: JSON records without the closing "}" (and without `formatted`),
        for a caller that appends the formatted part itself."""
        import numpy as np

        self.np = np
        if open_end:
            layout = Layout(layout.type_name, layout.key_size, layout.value_size,
                            layout.ncpus)
        fmt = EntryFormatter(layout, as_json)
        self.layout = layout
        ks, vbuf = layout.key_size, layout.value_buf_size

        def render(byte: int) -> bytes:
            key, value = bytes([byte]) * ks, bytes([byte]) * vbuf
            if as_json:
                text = "," + compact(fmt.json_node(key, value))
                return (text[:-1] if open_end else text).encode()
            return fmt.plain(key, value).encode()

        # Render all-0x00 and all-0xff records: the literal text is the same in both, and
        # the places that differ are the hex digits, two per byte, in output order.
        zeros, ones = render(0), render(0xFF)
        if len(zeros) != len(ones) or fmt.id_field or layout.formatted:
            raise ValueError("records of this map are not fixed-width")
        diff = np.flatnonzero(np.frombuffer(zeros, np.uint8) != np.frombuffer(ones, np.uint8))
        self.hi = diff[0::2]
        self.cols = np.array(self._columns_in_output_order(ks + vbuf), dtype=np.intp)
        if self.hi.size != self.cols.size or not np.all(diff[1::2] == self.hi + 1):
            raise ValueError("unexpected record template")
        self.template = np.frombuffer(zeros, dtype=np.uint8)
        self.hexdigits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)

    def _columns_in_output_order(self, width: int) -> list[int]:
        lay = self.layout
        ks = lay.key_size
        if not lay.percpu:
            return list(range(width))
        cols = list(range(ks))
        for cpu in range(lay.ncpus):
            base = ks + cpu * lay.stride
            cols += list(range(base, base + lay.value_size))
        return cols

    def format(self, keys: bytes | bytearray, values: bytes | bytearray, n: int):
        """The batch's records as one contiguous uint8 array (a buffer for write())."""
        np = self.np
        lay = self.layout
        ks, vbuf = lay.key_size, lay.value_buf_size
        src = np.empty((n, ks + vbuf), dtype=np.uint8)
        src[:, :ks] = np.frombuffer(keys, dtype=np.uint8, count=n * ks).reshape(n, ks)
        src[:, ks:] = np.frombuffer(values, dtype=np.uint8, count=n * vbuf).reshape(n, vbuf)
        sel = src[:, self.cols]
        out = np.empty((n, self.template.size), dtype=np.uint8)
        out[:] = self.template
        out[:, self.hi] = self.hexdigits[sel >> 4]
        out[:, self.hi + 1] = self.hexdigits[sel & 15]
        return out.reshape(-1)


# --- whole dumps --------------------------------------------------------------------------

_SCALAR_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
                 (4, False): "I", (4, True): "i", (8, False): "Q", (8, True): "q"}


def _scalar_code(btf, tid: int) -> str | None:
    """The struct code of a plain integer type (no bitfield, char or bool), else None."""
    from bpfsession.btf import INT_SIGNED, KIND_INT

    if btf is None or not tid:
        return None
    t = btf.types[btf.resolve(tid)]
    if t.kind != KIND_INT or t.bit_offset or t.bits != t.size * 8 or t.encoding not in (
            0, INT_SIGNED):
        return None
    return _SCALAR_CODES.get((t.size, t.encoding == INT_SIGNED))


class ScalarFormatter:
    """Batches of a BTF map whose key and value are plain integers (the common u32 ->
    u64 counter map): `formatted` is two numbers, unpacked for a whole batch at once
    with struct.iter_unpack; the hex arrays of -j come from FixedFormatter."""

    def __init__(self, lay: Layout, as_json: bool):
        import struct

        self.struct = struct
        self.as_json = as_json
        self.kfmt = "<" + _scalar_code(lay.key_btf, lay.key_type)
        self.vfmt = "<" + _scalar_code(lay.value_btf, lay.value_type)
        self.lay = lay
        self.fixed: FixedFormatter | None = None

    @staticmethod
    def applies(lay: Layout, fmt: EntryFormatter) -> bool:
        return (not lay.percpu and not fmt.id_field
                and _scalar_code(lay.key_btf, lay.key_type) is not None
                and _scalar_code(lay.value_btf, lay.value_type) is not None)

    SUB = 16384  # entries formatted at once: keeps the -j buffers to a few MB

    def format(self, keys, values, n: int, first: bool):
        """The batch as a list of byte strings to write in order."""
        lay = self.lay
        kv, vv = memoryview(keys), memoryview(values)
        ksz, vsz = lay.key_size, lay.value_size
        parts = []
        for lo in range(0, n, self.SUB):
            hi = min(n, lo + self.SUB)
            parts.append(self._part(kv[lo * ksz:hi * ksz], vv[lo * vsz:hi * vsz], hi - lo,
                                    first and lo == 0))
        return parts

    def _part(self, keys, values, n: int, first: bool) -> bytes:
        it = self.struct.iter_unpack
        ks = [k for (k,) in it(self.kfmt, keys)]
        vs = [v for (v,) in it(self.vfmt, values)]
        if not self.as_json:
            text = ",".join(f'{{\n        "key": {k},\n        "value": {v}\n    }}'
                            for k, v in zip(ks, vs, strict=True))
            return (text if first else "," + text).encode()
        if self.fixed is None:
            self.fixed = FixedFormatter(self.lay, True, open_end=True)
        head = self.fixed.format(keys, values, n).tobytes()
        size = len(head) // n
        tail = b',"formatted":{"key":%d,"value":%d}}'
        out = b"".join([head[i * size:(i + 1) * size] + tail % kv
                        for i, kv in enumerate(zip(ks, vs, strict=True))])
        return out[1:] if first else out



FAST_MIN = 4096  # batches at least this big go through numpy (its import costs ~60 ms)


def write_dump(out, batches, lay: Layout, as_json: bool, pretty_json: bool = False,
               big: bool = False) -> int:
    """Stream a dump to the binary file `out` as bpftool prints it; returns the count.

    `batches` yields (keys, values, n) with fixed-size records. Each batch is written as
    soon as it is formatted, so output starts before the walk ends and memory stays at
    one batch. `big` says the map may hold FAST_MIN entries or more.
    """
    fmt = EntryFormatter(lay, as_json)
    bracketed = as_json or lay.formatted
    fast_ok = not lay.formatted and not fmt.id_field and not pretty_json
    fixed: FixedFormatter | None = None
    scalar = ScalarFormatter(lay, as_json) \
        if lay.formatted and not pretty_json and ScalarFormatter.applies(lay, fmt) else None
    total = 0
    ks, vs = lay.key_size, lay.value_buf_size
    if fast_ok and big:
        # numpy takes ~60 ms to import: start now, while the first batches are walked.
        import importlib
        import threading

        threading.Thread(target=importlib.import_module, args=("numpy",), daemon=True).start()
    if bracketed:
        out.write(b"[")
    for keys, values, n in batches:
        if scalar is not None and (n >= FAST_MIN or not as_json):
            for part in scalar.format(keys, values, n, first=not total):
                out.write(part)
            total += n
            continue
        if fast_ok and n >= FAST_MIN and ks + vs <= 4096:
            if fixed is None:
                fixed = FixedFormatter(lay, as_json)
            buf = fixed.format(keys, values, n)
            out.write(memoryview(buf)[1:] if as_json and not total else buf)
            total += n
            continue
        parts = []
        for i in range(n):
            key = bytes(keys[i * ks:(i + 1) * ks])
            value = bytes(values[i * vs:(i + 1) * vs])
            if not bracketed:
                parts.append(fmt.plain(key, value))
                continue
            sep = "," if total + i else ""
            if as_json and not pretty_json:
                parts.append(sep + compact(fmt.json_node(key, value)))
            else:
                parts.append(sep + pretty(fmt.node(key, value), 1))
        out.write("".join(parts).encode())
        total += n
    if not bracketed:
        out.write(f"Found {total} element{'' if total == 1 else 's'}\n".encode())
    elif as_json and not pretty_json:
        out.write(b"]\n")
    else:
        out.write(b"\n]\n" if total else b"]\n")
    return total


def lookup_text(fmt: EntryFormatter, key: bytes, value: bytes | None,
                pretty_json: bool = False) -> str:
    """`map lookup` output: the entry, or bpftool's "Not found" / null for a miss."""
    if value is None:
        return "null\n" if fmt.as_json else f"key:\n{fprint_hex(key)}\n\nNot found\n"
    if fmt.as_json:
        node = fmt.json_node(key, value)
        return (pretty(node) if pretty_json else compact(node)) + "\n"
    if fmt.layout.formatted:
        return pretty(fmt.btf_node(key, value)) + "\n"
    return fmt.plain(key, value)
