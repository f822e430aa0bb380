"""Map keys and values in and out, in bpftool's words.

Out: the text bpftool prints (`key: 01 00 00 00  value: ...`, or for maps with BTF its
pretty JSON-like form) and its `-j` JSON (`key`/`value` arrays of "0x.." strings,
`values` per CPU, `formatted` from BTF), reproduced from bpftool's map.c, json_writer.c
and btf_dumper.c so scripts written against bpftool read ours unchanged.

In: bpftool's byte syntax (`0x01 0 0 0`, `hex 01 00 00 00`), or typed values where BTF
or a `--key-type/--value-type` layout says what the bytes are.

Whole dumps (the batch formatters, and the choice between them) are in bpfsession.mapdump.
"""

from __future__ import annotations

from bpfsession.cnum import EncodeError, c_int
from bpfsession.errors import BpfSessionError
from bpfsession.jsonw import Obj, compact, pretty  # noqa: F401  (compact: the TUI's)

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
        self.key_btf = self.value_btf = None  # btf.parse.Btf objects, when typed

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
            from bpfsession.btf.dump import Dumper

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

    def __init__(self, btf, type_id: int, origin: str):
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
        from bpfsession.btf.encode import Encoder

        enc = Encoder(typed.btf)
        names = enc.leaves(typed.type_id)
        hint += f", or typed ({typed.origin}): one value per field ({' '.join(names)})"
    elif size in (1, 2, 4, 8):
        hint += f", or add --{what}-type u{size * 8}"
    return hint


def _typed(tokens: list[str], size: int, what: str, typed: TypedSlot) -> bytes:
    from bpfsession.btf.encode import Encoder

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
    except RecursionError:  # json.loads and the encoder recurse once per nesting level
        raise BpfSessionError(f"{what} ({typed.origin}): the value is nested too deeply "
                              "for its type") from None
    if len(data) != size:
        raise BpfSessionError(f"{what} ({typed.origin}) is {len(data)} bytes but the map's "
                              f"{what} is {size}: fix the layout")
    return data


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


def write_dump(out, batches, lay: Layout, as_json: bool, pretty_json: bool = False,
               big: bool = False) -> int:
    """bpfsession.mapdump.write_dump, under the name the TUI imports."""
    from bpfsession.mapdump import write_dump as write

    return write(out, batches, lay, as_json, pretty_json, big)
