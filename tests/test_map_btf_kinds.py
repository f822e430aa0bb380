"""Typed dumps of every BTF kind, byte for byte against bpftool 7.1, through the batch
formatters (one template per layout, and the forked second core) on thousands of random
entries: ints of every size and sign, char, bool, 128-bit, enums, typedef/const/volatile,
bitfields, char arrays (strings or not), unions, nested structs and arrays, pointers,
per-CPU values and global data (DATASEC)."""

from __future__ import annotations

import random
import re
import tempfile

import pytest

from bpfsession import maps
from bpfsession.btf.dump import Dumper
from bpfsession.btf.parse import KIND_ENUM64, Btf, Member, Type
from bpfsession.kernel import bpf
from bpfsession.mapdump import CHUNK, FAST_MIN, write_dump
from bpfsession.mapfmt import Layout
from tests.helpers import bpfsession, run

pytest_plugins = ["tests.map_fixtures"]

MODES = ([], ["-j"], ["-p"])


def bpftool(*args: str) -> str:
    """bpftool's output, with its json_writer's two invalid escapes made valid JSON, as
    bpfsession writes them (docs/maps.md): a backslash comes out as `\\n` (which reads
    back as a newline) and `'` as `\\'`. Nothing else in a dump has a backslash."""
    out = run(["bpftool", *args]).stdout
    return re.sub(r"\\([n'])", lambda m: "\\\\" if m[1] == "n" else "'", out)


def same(ours: str | bytes, theirs: str | bytes, what) -> None:
    """Equal, or fail showing where they part (pytest's diff of megabytes takes minutes)."""
    if ours == theirs:
        return
    at = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
              min(len(ours), len(theirs)))
    pytest.fail(f"{what}: differ at {at} of {len(ours)}/{len(theirs)}:\n"
                f"ours   {ours[max(0, at - 300):at + 80]!r}\n"
                f"theirs {theirs[max(0, at - 300):at + 80]!r}")


def noisy_bytes(rnd: random.Random, n: int) -> bytearray:
    """Random bytes with many NULs, letters, quotes and backslashes, so that char arrays
    are sometimes strings and sometimes not, and enums sometimes match a name."""
    pool = [0, 0, 0, 1, 5, 7, 200, 0xFB, 0xFF, ord("A"), ord("z"), ord('"'), ord("\\")]
    data = bytearray(rnd.getrandbits(8) for _ in range(n))
    for i in range(0, n, 2):
        data[i] = rnd.choice(pool)
    return data


def fill(path: str, count: int, seed: int) -> tuple[int, Layout]:
    """`count` random entries written with BPF_MAP_UPDATE_BATCH; (max_entries, layout)."""
    rnd = random.Random(seed)
    with maps.open_map(["pinned", path]) as m:
        lay = maps.codec(m).layout
        ks, vs = lay.key_size, lay.value_buf_size
        if lay.type_name.endswith("array"):
            keys = b"".join(i.to_bytes(4, "little") for i in range(count))
        else:
            keys = bytes(noisy_bytes(rnd, ks * count))
            keys = b"".join({keys[i * ks:(i + 1) * ks]: 0 for i in range(count)})
        n = len(keys) // ks
        bpf.map_update_batch(m.fd, keys, bytes(noisy_bytes(rnd, vs * n)), n)
        return m.info.max_entries, lay


@pytest.mark.parametrize("name,count", [("k_hash", 5000), ("k_pcpu", 4500),
                                        ("k_pcpu_enum", 4096)])
def test_typed_dump_equals_bpftool_byte_for_byte(kinds_maps, name, count):
    max_entries, lay = fill(kinds_maps[name], count, seed=len(name))
    assert max_entries >= FAST_MIN and lay.formatted  # the batch formatter's path
    for mode in MODES:
        ours = bpfsession("map", "dump", "pinned", kinds_maps[name], *mode)
        theirs = bpftool(*mode, "map", "dump", "pinned", kinds_maps[name])
        assert ours.returncode == 0 and ours.stderr == ""
        same(ours.stdout, theirs, (name, mode))


def test_two_cores_on_a_huge_array_equal_bpftool(kinds_maps):
    """k_array has 65,536 entries: formatted on both cores, written in order."""
    fill(kinds_maps["k_array"], 65536, seed=3)
    ours = bpfsession("map", "dump", "pinned", kinds_maps["k_array"], "-j")
    same(ours.stdout, bpftool("-j", "map", "dump", "pinned", kinds_maps["k_array"]),
         "k_array -j")


def test_global_data_and_small_maps_one_entry_at_a_time(kinds_maps):
    (data,) = [p for n, p in kinds_maps.items() if n.endswith("data")]
    for mode in MODES:
        ours = bpfsession("map", "dump", "pinned", data, *mode)
        same(ours.stdout, bpftool(*mode, "map", "dump", "pinned", data), mode)


def _batch_outputs(lay: Layout, keys: bytes, values: bytes, n: int, paths=(False, True)):
    """The same batch through write_dump with `big` in `paths` (False: one entry at a
    time; True: the template; "huge": the template on two cores), in all three modes."""
    for as_json, pretty_json in ((False, False), (True, False), (True, True)):
        outs = []
        for big in paths:
            with tempfile.TemporaryFile() as out:  # a file: the worker writes to its fd
                write_dump(out, iter([(keys[:n * lay.key_size], values, n)]), lay, as_json,
                           pretty_json, big)
                out.seek(0)
                outs.append(out.read())
        for other, big in zip(outs[1:], paths[1:], strict=True):
            same(other, outs[0], (big, as_json, pretty_json))


def test_global_data_and_two_cores_in_every_mode(kinds_maps):
    """DATASEC values (global data) through the template, and the worker's chunks (every
    other one of several) in text, -j and -p."""
    rnd = random.Random(7)
    (data,) = [p for n, p in kinds_maps.items() if n.endswith("data")]
    for path, paths, n in ((data, (False, True), FAST_MIN),
                           (kinds_maps["k_hash"], (True, "huge"), 3 * CHUNK + 5)):
        with maps.open_map(["pinned", path]) as m:
            lay = maps.codec(m).layout
        _batch_outputs(lay, bytes(noisy_bytes(rnd, n * lay.key_size)),
                       bytes(noisy_bytes(rnd, n * lay.value_buf_size)), n, paths)


def test_enum64_signed_and_unsigned():
    """ENUM64 (which clang 14 cannot emit): names, and values of either sign."""
    types = [Type(0, "void"), Type(KIND_ENUM64, "e64u", 8), Type(KIND_ENUM64, "e64s", 8,
                                                                  kflag=True)]
    types[1].values = [("BIG", 1 << 40), ("MAX", (1 << 64) - 1)]
    types[2].values = [("MINUS", -(1 << 40) & ((1 << 64) - 1))]
    types.append(Type(4, "pair", 16, members=[Member("u", 1, 0), Member("s", 2, 64)]))
    btf = Btf(types)
    lay = Layout("hash", 4, 16)
    lay.value_btf, lay.value_type = btf, 3
    rnd = random.Random(1)
    picks = [1 << 40, (1 << 64) - 1, -(1 << 40) & ((1 << 64) - 1), 5, (1 << 63) + 3]
    values = b"".join(rnd.choice(picks).to_bytes(8, "little") for _ in range(2 * 5000))
    _batch_outputs(lay, bytes(4 * 5000), values, 5000)
    _batch_outputs(lay, bytes(4 * 5000), values, 5000, (True, "huge"))
    node = Dumper(btf, plain=False).dump(3, values[:16])
    assert len(node) == 2
    sample = (1 << 64) - (1 << 40)
    assert Dumper(btf, False).dump(2, sample.to_bytes(8, "little")) == '"MINUS"'
    assert Dumper(btf, False).dump(1, ((1 << 63) + 3).to_bytes(8, "little")) == \
        str((1 << 63) + 3)
