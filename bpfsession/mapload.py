"""`map load`: many entries of one map from JSON Lines, written with BPF_MAP_UPDATE_BATCH.

Each line is one entry in the form `map dump -j` prints it: `{"key": K, "value": V}` with
K and V either bytes (`["0x01","0x00",...]`, as in `key`/`value`) or typed values (as in
`formatted`: numbers, enum names, objects by member name, strings for char arrays);
per-CPU maps take `"values": [{"cpu": 0, "value": V}, ...]`, or one `value` for every
CPU. A whole `dump -j` document (one JSON array) is read the same way, so
`map dump -j A > f; map load B f` copies a map. Blank lines are skipped.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Iterator

from bpfsession.errors import BpfSessionError, KernelError
from bpfsession.kernel import bpf

GROUP = 4096  # entries per BPF_MAP_UPDATE_BATCH call
ENOTSUPP = 524


def entries(lines: Iterable[str]) -> Iterator[tuple[int, dict]]:
    """(line number, entry object) for each non-blank line. When the first non-blank
    line starts with `[`, the input is one JSON array (a whole `dump -j`) and every entry
    counts as that line."""
    import json

    it = iter(lines)
    first = True
    for number, line in enumerate(it, 1):
        text = line.strip()
        if not text:
            continue
        if first and text.startswith("["):
            for item in _whole(text, it):
                yield number, _entry(item, number)
            return
        first = False
        try:
            item = json.loads(text)
        except ValueError as err:
            raise BpfSessionError(f"line {number}: not valid JSON ({err.msg}); each line is "
                                  '{"key": ..., "value": ...}') from None
        except RecursionError:
            raise BpfSessionError(f"line {number}: nested too deeply") from None
        yield number, _entry(item, number)


def _whole(first: str, rest: Iterator[str]):
    import json

    try:
        doc = json.loads(first + "".join(rest))
    except ValueError as err:
        raise BpfSessionError(f"not valid JSON ({err.msg} at line {err.lineno})") from None
    except RecursionError:
        raise BpfSessionError("the JSON is nested too deeply") from None
    if not isinstance(doc, list):
        raise BpfSessionError("expected a JSON array of entries, as `map dump -j` prints")
    return doc


def _entry(item, number: int) -> dict:
    if not isinstance(item, dict) or "key" not in item or not (
            "value" in item or "values" in item):
        raise BpfSessionError(f"line {number}: expected an object with key and value "
                              '({"key": ..., "value": ...}, as `map dump -j` prints)')
    return item


def is_bytes(value, size: int) -> bool:
    """The byte form of `dump -j`: a list of `size` "0xNN" strings."""
    return (isinstance(value, list) and len(value) == size
            and all(isinstance(b, str) and b[:2] == "0x" and 3 <= len(b) <= 4 for b in value))


def encode(value, size: int, what: str, typed, number: int) -> bytes:
    """One key or value (bytes form or typed) -> exactly `size` bytes."""
    from bpfsession.btf.encode import EncodeError, Encoder

    if is_bytes(value, size):
        try:
            return bytes(int(b, 16) for b in value)
        except ValueError:
            raise BpfSessionError(f"line {number}: {what}: {value!r} is not bytes") from None
    if typed is None:
        raise BpfSessionError(f"line {number}: {what}: give {size} bytes as "
                              f'["0x01", ...] (the map has no BTF; or add --{what}-type)')
    try:
        data = Encoder(typed.btf).encode(typed.type_id, value)
    except EncodeError as err:
        raise BpfSessionError(f"line {number}: {what} ({typed.origin}): {err}") from None
    except RecursionError:
        raise BpfSessionError(f"line {number}: {what}: nested too deeply for its "
                              "type") from None
    if len(data) != size:
        raise BpfSessionError(f"line {number}: {what} ({typed.origin}) is {len(data)} "
                              f"bytes but the map's {what} is {size}")
    return data


def value_bytes(item: dict, lay, typed, number: int) -> bytes:
    """The value buffer the kernel takes: per-CPU maps get one slot per possible CPU."""
    if not lay.percpu:
        return encode(item.get("value"), lay.value_size, "value", typed, number)
    pad = bytes(lay.stride - lay.value_size)
    if "values" not in item:  # one value for every CPU, as `map update` does
        return (encode(item["value"], lay.value_size, "value", typed, number) + pad) \
            * lay.ncpus
    per = item["values"]
    if not isinstance(per, list) or len(per) != lay.ncpus or not all(
            isinstance(v, dict) and "value" in v for v in per):
        raise BpfSessionError(f"line {number}: values: expected {lay.ncpus} "
                              '{"cpu": N, "value": ...} objects, one per possible CPU')
    return b"".join(encode(v["value"], lay.value_size, "value", typed, number) + pad
                    for v in per)


def load(m, codec, lines: Iterable[str], flags: int = bpf.BPF_ANY) -> int:
    """Write every entry of `lines` to the open map `m`; returns how many. Stops at the
    first bad line or refused entry, naming its line; what came before is written."""
    lay = codec.layout
    keys, values, numbers = bytearray(), bytearray(), []
    total = 0
    for number, item in entries(lines):
        keys += encode(item["key"], lay.key_size, "key", codec.key, number)
        values += value_bytes(item, lay, codec.value, number)
        numbers.append(number)
        if len(numbers) == GROUP:
            total += _write(m, keys, values, numbers, flags)
            keys, values, numbers = bytearray(), bytearray(), []
    if numbers:
        total += _write(m, keys, values, numbers, flags)
    return total


def _write(m, keys: bytearray, values: bytearray, numbers: list[int], flags: int) -> int:
    n = len(numbers)
    try:
        bpf.map_update_batch(m.fd, bytes(keys), bytes(values), n, flags)
        return n
    except KernelError as err:
        if err.errno not in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP, errno.E2BIG,
                             errno.EEXIST, errno.ENOENT, errno.ENOSPC, errno.EPERM,
                             errno.EACCES):
            raise BpfSessionError(f"cannot load {m.label}: {err.strerror}") from None
    # No batch update for this map type, or one entry was refused: one at a time, so
    # that the error names its line.
    from bpfsession import maps

    ks, vs = len(keys) // n, len(values) // n
    for i, number in enumerate(numbers):
        try:
            maps.update(m, bytes(keys[i * ks:(i + 1) * ks]), bytes(values[i * vs:(i + 1) * vs]),
                        flags)
        except BpfSessionError as err:
            raise BpfSessionError(f"line {number}: {err.hint}") from None
    return n
