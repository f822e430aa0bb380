"""A map's entries for the map view and for a dump to a file (worker threads only).

The map helper does the work (bpfsession/maps.py, mapfmt.py): it opens the map by id, finds
its BTF, walks it in batches (get_next_key + lookup where batches are not offered) and
formats entries the way bpftool does. The view shows each entry's key and value on one
line: BTF-typed where the map has BTF (`{"packets":3,"bytes":180}`), else bytes in hex.
"""

from __future__ import annotations

from bpfsession import maps
from bpfsession.errors import BpfSessionError
from bpfsession.mapfmt import EntryFormatter, Layout, compact, fprint_hex, write_dump
from tui.rows import MapRows

# Entries counted per read at most (the batches past the shown ones are only counted).
COUNT_LIMIT = 100_000

# Map types that hold no keys to walk (the kernel answers get_next_key with EINVAL).
KEYLESS = frozenset({"queue", "stack", "ringbuf", "user_ringbuf", "bloom_filter", "arena",
                     "struct_ops", "perf_event_array"})


def _hex_line(data: bytes) -> str:
    return fprint_hex(data).replace("\n", " ").replace("  ", " ")


def entry_texts(fmt: EntryFormatter, key: bytes, value: bytes) -> tuple[str, str]:
    """(key, value) as one line each: BTF-typed where the layout has a type, else hex."""
    lay = fmt.layout
    node = dict(fmt.btf_node(key, value)) if lay.formatted else {}
    key_text = compact(node["key"]) if "key" in node else _hex_line(key)
    if "value" in node:
        return key_text, compact(node["value"])
    if "values" in node:  # per-CPU: [{"cpu":"0","value":...},...]
        return key_text, " ".join(f"cpu{c}: {compact(v)}" for c, v in
                                  ((dict(x)["cpu"], dict(x)["value"]) for x in node["values"]))
    if lay.percpu:
        return key_text, " ".join(f"cpu{i}: {_hex_line(v)}"
                                  for i, v in enumerate(lay.cpu_values(value)))
    return key_text, _hex_line(value)


def first_entries(map_id: int, limit: int, title: str) -> MapRows:
    """The first `limit` entries in the kernel's order; `more` when the map holds more."""
    with maps.open_map(["id", str(map_id)]) as m:
        lay: Layout = maps.codec(m).layout
        if lay.type_name in KEYLESS:
            return MapRows(title, {}, more=False, typed=False,
                           notes=[f"a {lay.type_name} map has no keys to list"])
        fmt = EntryFormatter(lay, as_json=False)
        ks, vs = lay.key_size, lay.value_buf_size
        entries: dict[str, tuple[str, str]] = {}
        total = 0
        for keys, values, n in maps.walk(m, lay):
            for i in range(min(n, limit - len(entries))):
                k, v = entry_texts(fmt, bytes(keys[i * ks:(i + 1) * ks]),
                                   bytes(values[i * vs:(i + 1) * vs]))
                entries[k] = (k, v)
            total += n
            if total >= COUNT_LIMIT:
                break
        return MapRows(title, entries, more=total > len(entries), typed=lay.formatted,
                       total=total if total < COUNT_LIMIT else None)


def dump_json(map_id: int, path: str) -> int:
    """Every entry into a new file at `path`: `bpfsession map dump id ID -j`'s output
    (bpftool's `-j map dump` shape, `formatted` where the map has BTF)."""
    with maps.open_map(["id", str(map_id)]) as m:
        lay = maps.codec(m).layout
        if lay.type_name in KEYLESS:
            raise BpfSessionError(f"a {lay.type_name} map has no keys to dump")
        try:
            out = open(path, "xb")
        except FileExistsError:
            raise BpfSessionError(f"{path} exists: give another file name") from None
        except OSError as err:
            raise BpfSessionError(f"cannot write {path}: {err.strerror}") from None
        with out:
            return write_dump(out, maps.walk(m, lay), lay, as_json=True)
