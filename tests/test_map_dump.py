"""The dump walk: batch lookups, their traps, the get_next_key fallback, streaming, memory."""

from __future__ import annotations

import io
import json

from bpfsession import maps
from bpfsession.kernel import bpf
from bpfsession.mapdump import write_dump
from tests.helpers import BPFSESSION, run

pytest_plugins = ["tests.map_fixtures"]


def fill(fd: int, n: int, start: int = 0) -> None:
    keys = b"".join(i.to_bytes(4, "little") for i in range(start, start + n))
    values = b"".join((i * 3).to_bytes(8, "little") for i in range(start, start + n))
    bpf.map_update_batch(fd, keys, values, n)


def entries(m: maps.OpenMap, lay, walker) -> set[tuple[bytes, bytes]]:
    out = set()
    ks, vs = lay.key_size, lay.value_buf_size
    for keys, values, n in walker:
        for i in range(n):
            out.add((bytes(keys[i * ks:(i + 1) * ks]), bytes(values[i * vs:(i + 1) * vs])))
    return out


def test_batch_walk_equals_key_walk_and_survives_tiny_batches(make_map):
    """first=1 forces ENOSPC on every bucket holding two or more entries: grow and retry."""
    fd = make_map("hash", 4, 8, 1000)
    fill(fd, 1000)
    m = maps.OpenMap(fd, bpf.map_info(fd), "test", owned=False)
    lay = maps.codec(m).layout
    by_key = entries(m, lay, maps._walk_keys(m, lay))
    assert len(by_key) == 1000
    assert entries(m, lay, maps.walk(m, lay, first=1)) == by_key
    assert entries(m, lay, maps.prefetch(maps.walk(m, lay, first=7))) == by_key


def test_fallback_for_maps_without_batch_lookup(typed_maps):
    """prog_array answers ENOTSUPP to batch lookups; we walk it key by key instead."""
    with maps.open_map(typed_maps.pin("t_progs")) as m:
        lay = maps.codec(m).layout
        keys = bytearray(4)
        try:
            bpf.map_lookup_batch(m.fd, None, bytearray(8), keys, bytearray(4), 1)
            raise AssertionError("prog_array batch lookup unexpectedly supported")
        except bpf.KernelError as err:
            assert err.errno == maps.ENOTSUPP
    run(["bpftool", "map", "update", *typed_maps.pin("t_progs"), "key", "2", "0", "0", "0",
         "value", "pinned", typed_maps.prog_pin])
    with maps.open_map(typed_maps.pin("t_progs")) as m:
        got = entries(m, lay, maps.walk(m, lay))
    assert got == {(b"\2\0\0\0", typed_maps.prog_id.to_bytes(4, "little"))}


class Recorder(io.BytesIO):
    """A binary file that notes how many batches the walk had produced at each write."""

    def __init__(self, produced: list[int]):
        super().__init__()
        self.produced = produced
        self.at: list[int] = []

    def write(self, b) -> int:
        self.at.append(self.produced[0])
        return super().write(b)


def test_dump_streams_batch_by_batch(make_map):
    fd = make_map("hash", 4, 8, 200_000)
    fill(fd, 200_000)
    m = maps.OpenMap(fd, bpf.map_info(fd), "test", owned=False)
    lay = maps.codec(m).layout
    produced = [0]

    def counted():
        for batch in maps.walk(m, lay):
            produced[0] += 1
            yield batch

    for as_json in (False, True):
        produced[0] = 0
        out = Recorder(produced)
        assert write_dump(out, counted(), lay, as_json, big=True) == 200_000
        data_writes = out.at[1:] if as_json else out.at  # JSON opens with "["
        # the first entries went out after the first (small) batch, long before the end
        assert data_writes[0] == 1 and produced[0] >= 4
        assert data_writes == sorted(data_writes) and len(set(data_writes)) >= 4
        text = out.getvalue()
        if as_json:
            doc = json.loads(text)
            assert len(doc) == 200_000 and doc[0].keys() == {"key", "value"}
        else:
            assert text.endswith(b"Found 200000 elements\n")
            assert text.count(b"\n") == 200_001


def test_big_dump_equals_bpftool_and_memory_stays_flat(pinned_map, short_tmp):
    n = 300_000
    fd, path = pinned_map("hash", 4, 8, n)
    fill(fd, n)
    rss_file = short_tmp / "rss"
    for flag in ([], ["-j"]):
        # Peak RSS through /usr/bin/time: a child's ru_maxrss from wait4 here would count
        # the forking pytest's pages too.
        res = run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *BPFSESSION, "map",
                   "dump", "pinned", path, *flag], text=False)
        theirs = run(["bpftool", *flag, "map", "dump", "pinned", path], text=False).stdout
        assert res.stdout == theirs
        # one batch at a time: well below the 12-25 MB this map prints
        assert int(rss_file.read_text()) < 100 * 1024
