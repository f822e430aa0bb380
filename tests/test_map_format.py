"""Pure formatting and parsing (no kernel): bpftool's writer, hex, layouts, DATA, BTF blobs."""

from __future__ import annotations

import random
import struct

import pytest

from bpfsession.btf.dump import Dumper
from bpfsession.btf.encode import EncodeError, c_int
from bpfsession.btf.parse import Btf, BtfError
from bpfsession.errors import BpfSessionError
from bpfsession.jsonw import Obj, compact, pretty
from bpfsession.mapdump import FixedFormatter
from bpfsession.mapfmt import EntryFormatter, Layout, TypedSlot, fprint_hex, parse_data

# Recorded from `bpftool map lookup` of tests/bpf/typed.bpf.c's t_array (bpftool 7.1).
BPFTOOL_BTF_TEXT = """{
    "key": 1,
    "value": {
        "id": 67305985,
        "color": "BLUE",
        "ports": [[1,2,3
            ],[4,5,6
            ]
        ],
        "flag": 0x1,
        "w": {},
        "name": "hi"
    }
}"""


def test_pretty_writer_matches_bpftools_json_writer():
    node = Obj([("key", "1"), ("value", Obj([
        ("id", "67305985"), ("color", '"BLUE"'), ("ports", [["1", "2", "3"], ["4", "5", "6"]]),
        ("flag", "0x1"), ("w", Obj()), ("name", '"hi"')]))])
    assert pretty(node) == BPFTOOL_BTF_TEXT
    assert compact(node) == ('{"key":1,"value":{"id":67305985,"color":"BLUE","ports":'
                             '[[1,2,3],[4,5,6]],"flag":0x1,"w":{},"name":"hi"}}')
    assert pretty([]) == "[]"


def test_fprint_hex_groups_like_bpftool():
    assert fprint_hex(bytes(range(4))) == "00 01 02 03"
    assert fprint_hex(bytes(range(17))) == \
        "00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f\n10"


def test_plain_entry_line_breaking_rules():
    fmt = EntryFormatter(Layout("hash", 4, 8), as_json=False)
    assert fmt.plain(b"\x01\0\0\0", bytes(8)) == \
        "key: 01 00 00 00  value: 00 00 00 00 00 00 00 00\n"
    wide = EntryFormatter(Layout("hash", 4, 24), as_json=False)
    assert wide.plain(bytes(4), bytes(24)).startswith("key:\n00 00 00 00\nvalue:\n00")
    mid = EntryFormatter(Layout("hash", 12, 16), as_json=False)
    assert mid.plain(bytes(12), bytes(16)).startswith("key: 00 00 00 00 00 00 00 00  00 00 00 "
                                                       "00\nvalue: 00")
    pc = EntryFormatter(Layout("percpu_hash", 2, 4, ncpus=2), as_json=False)
    assert pc.plain(b"\xff\xff", b"\x01\x02\x03\x04" + bytes(4) + b"\x05" + bytes(7)) == \
        "key:\nff ff\nvalue (CPU 00): 01 02 03 04\nvalue (CPU 01): 05 00 00 00\n"


@pytest.mark.parametrize("lay", [
    Layout("hash", 4, 8), Layout("array", 4, 56), Layout("hash", 12, 16),
    Layout("lru_hash", 1, 1), Layout("percpu_hash", 4, 12, ncpus=3),
    Layout("percpu_array", 2, 4, ncpus=2), Layout("hash", 32, 4),
])
@pytest.mark.parametrize("as_json", [False, True])
def test_fixed_formatter_equals_the_per_entry_formatter(lay, as_json):
    rng = random.Random(7)
    n = 50
    vbuf = lay.value_buf_size
    keys = bytes(rng.randrange(256) for _ in range(n * lay.key_size))
    values = bytes(rng.randrange(256) for _ in range(n * vbuf))
    fmt = EntryFormatter(lay, as_json)
    want = "".join(
        ("," + compact(fmt.json_node(keys[i * lay.key_size:(i + 1) * lay.key_size],
                                     values[i * vbuf:(i + 1) * vbuf])))
        if as_json else fmt.plain(keys[i * lay.key_size:(i + 1) * lay.key_size],
                                  values[i * vbuf:(i + 1) * vbuf])
        for i in range(n))
    assert FixedFormatter(lay, as_json).format(keys, values, n).tobytes().decode() == want


def test_c_int_reads_like_strtoul():
    assert [c_int(x) for x in ("10", "0x10", "010", "-1", "0", "+7")] == [10, 16, 8, -1, 0, 7]
    assert c_int("ff", 16) == 255 and c_int("0x1f", 16) == 31
    for bad in ("", "1_0", "08", "0x", "1e3", "zz"):
        with pytest.raises(EncodeError):
            c_int(bad)


def test_layouts_use_c_alignment():
    btf, tid = Btf.from_layout("u8,u32,s64")
    assert btf.size_of(tid) == 16
    assert [m.bit_offset // 8 for m in btf.types[tid].members] == [0, 4, 8]
    btf, tid = Btf.from_layout("u32,u16,u16")
    assert btf.size_of(tid) == 8
    btf, tid = Btf.from_layout("u8[3],u16")
    assert btf.size_of(tid) == 6
    btf, tid = Btf.from_layout("u64")
    assert btf.size_of(tid) == 8
    for bad in ("", "u7", "u8[x]", "char", "u32,,u8"):
        with pytest.raises(BtfError):
            Btf.from_layout(bad)


def slot(spec: str) -> TypedSlot:
    btf, tid = Btf.from_layout(spec)
    return TypedSlot(btf, tid, f"--value-type {spec}")


def test_parse_data_bytes_first_then_typed():
    assert parse_data(["1", "0", "0", "0"], 4, "key", None) == b"\x01\0\0\0"
    assert parse_data(["hex", "0a", "ff"], 2, "key", None) == b"\x0a\xff"
    assert parse_data(["0x01", "0", "0", "0"], 4, "key", slot("u32")) == b"\x01\0\0\0"
    assert parse_data(["258"], 4, "key", slot("u32")) == struct.pack("<I", 258)
    assert parse_data(["-1"], 2, "key", slot("s16")) == b"\xff\xff"
    assert parse_data(["1", "2", "3"], 8, "key", slot("u32,u16,u16")) == \
        struct.pack("<IHH", 1, 2, 3)
    assert parse_data(['{"f0": 5}'], 8, "key", slot("u32,u16,u16")) == \
        struct.pack("<IHH", 5, 0, 0)
    assert parse_data(["[1,2,3]"], 8, "key", slot("u32,u16,u16")) == \
        struct.pack("<IHH", 1, 2, 3)
    assert parse_data(["abc"], 4, "key", slot("char[4]")) == b"abc\0"


def test_parse_data_errors_say_what_to_give():
    with pytest.raises(BpfSessionError, match=r"key expects 4 bytes, got 1; give 4 bytes like "
                                              r"`0x01 0 0 0`.*--key-type u32"):
        parse_data(["1"], 4, "key", None)
    with pytest.raises(BpfSessionError, match="does not fit in 16 bits"):
        parse_data(["70000"], 2, "value", slot("u16"))
    with pytest.raises(BpfSessionError, match=r"expected 3 field value\(s\) \(f0 f1 f2\)"):
        parse_data(["1", "2"], 8, "value", slot("u32,u16,u16"))
    with pytest.raises(BpfSessionError, match="needs data"):
        parse_data([], 4, "key", None)


def _blob(types: bytes, strings: bytes) -> bytes:
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return hdr + types + strings


def test_btf_blob_parse_and_dump():
    strings = b"\0int\0e\0A\0B\0s\0x\0y\0"
    types = (
        struct.pack("<III", 1, 1 << 24, 4) + struct.pack("<I", (1 << 24) | 32)  # [1] int
        + struct.pack("<III", 5, (6 << 24) | 2, 4) + struct.pack("<Ii", 7, 0)  # [2] enum e
        + struct.pack("<Ii", 9, -1)
        + struct.pack("<III", 11, (4 << 24) | (1 << 31) | 2, 4)  # [3] struct s, kflag
        + struct.pack("<III", 13, 1, 0) + struct.pack("<III", 15, 1, (3 << 24) | 8)
    )
    btf = Btf.parse(_blob(types, strings))
    d = Dumper(btf, plain=False)
    assert d.dump(1, struct.pack("<i", -5)) == "-5"
    assert d.dump(2, struct.pack("<i", -1)) == '"B"' and d.dump(2, struct.pack("<i", 3)) == "3"
    assert compact(d.dump(3, bytes([0xFF, 0x05, 0, 0]))) == '{"x":1535,"y":"0x5"}'
    assert Dumper(btf, plain=True).dump(3, bytes([0, 0x05, 0, 0]))[1] == ("y", "0x5")
    with pytest.raises(BtfError):
        Btf.parse(b"\0" * 24)
    with pytest.raises(BtfError):
        Btf.parse(_blob(types[:-3], strings))
