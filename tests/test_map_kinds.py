"""`bpfsession map` on every map kind, with Debian's bpftool 7.1 as the oracle both ways."""

from __future__ import annotations

import json
import os

import pytest

from bpfsession.kernel import bpf
from tests.helpers import bpfsession, run, uniq

pytest_plugins = ["tests.map_fixtures"]

# struct rec (tests/bpf/typed.bpf.c): id, color=BLUE, ports {1..6}, flag 1 level 5,
# w "ABCD", name "hi", delta -2, inner {1, -1}; 56 bytes with padding.
REC = ("01 02 03 04 07 00 00 00 01 00 02 00 03 00 04 00 05 00 06 00 0b 00 00 00 41 42 43 44 "
       "68 69 00 00 00 00 00 00 00 00 00 00 fe ff ff ff ff ff ff ff 01 ff 00 00 00 00 00 00")
# The same with an enum value of no name (9), a non-string char array and spare bits set.
REC2 = ("01 02 03 04 09 00 00 00 01 00 02 00 03 00 04 00 05 00 06 00 0b 00 00 f0 41 42 43 44 "
        "68 01 00 00 00 00 00 00 00 00 00 00 fe ff ff ff ff ff ff ff 01 ff 00 00 00 00 00 00")


def bt(*args: str) -> str:
    return run(["bpftool", *args]).stdout


def bs(*args: str) -> str:
    res = bpfsession("map", *args)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    return res.stdout


def fill_with_bpftool(tm) -> None:
    """Entries in every data map, written by bpftool."""
    p = tm.pins
    bt("map", "update", "pinned", p["t_array"], "key", "1", "0", "0", "0", "value", "hex",
       *REC.split())
    bt("map", "update", "pinned", p["t_array"], "key", "2", "0", "0", "0", "value", "hex",
       *REC2.split())
    bt("map", "update", "pinned", p["t_hash"], "key", "10", "0", "0", "1", "0x50", "0", "6",
       "0", "value", "hex", *REC.split())
    bt("map", "update", "pinned", p["t_lru"], "key", "1", "0", "0", "0", "value", "1", "2",
       "3", "4", "5", "6", "7", "8")
    bt("map", "update", "pinned", p["t_pcpu_array"], "key", "1", "0", "0", "0", "value", "1",
       "2", "3", "4")
    bt("map", "update", "pinned", p["t_pcpu_hash"], "key", "0xff", "0xff", "value", "1", "2",
       "3", "0")
    bt("map", "update", "pinned", p["t_lpm"], "key", "24", "0", "0", "0", "10", "1", "2",
       "0", "value", "9", "0", "0", "0")
    bt("map", "update", "pinned", p["t_progs"], "key", "1", "0", "0", "0", "value", "pinned",
       tm.prog_pin)
    bt("map", "update", "pinned", p["t_outer"], "key", "2", "0", "0", "0", "value", "pinned",
       p["t_inner_b"])


ALL = ("t_array", "t_hash", "t_lru", "t_pcpu_array", "t_pcpu_hash", "t_lpm", "t_progs",
       "t_outer")


def _without_ids(doc):
    """Our -j adds prog_id / inner_map_id next to the value bytes of fd-holding maps."""
    for entry in doc:
        entry.pop("prog_id", None)
        entry.pop("inner_map_id", None)
    return doc


def test_dump_text_and_json_equal_bpftools_for_every_kind(typed_maps):
    fill_with_bpftool(typed_maps)
    for name in ALL:
        spec = typed_maps.pin(name)
        ours_j = json.loads(bs("dump", *spec, "-j"))
        theirs_j = json.loads(bt("-j", "map", "dump", *spec))
        assert _without_ids(ours_j) == theirs_j, name
        assert len(theirs_j) >= 1, name
        if name not in ("t_progs", "t_outer"):
            assert bs("dump", *spec) == bt("map", "dump", *spec), name


def test_btf_formatted_matches_bpftool_struct_enum_nested_array_bitfield_union(typed_maps):
    fill_with_bpftool(typed_maps)
    spec = typed_maps.pin("t_array")
    out = bs("dump", *spec, "-j")
    assert out == bt("-j", "map", "dump", *spec)  # byte for byte
    entry = json.loads(out)[1]["formatted"]
    assert entry == {"key": 1, "value": {
        "id": 67305985, "color": "BLUE", "ports": [[1, 2, 3], [4, 5, 6]], "flag": "0x1",
        "level": "0x5", "spare": "0x0", "w": {"as_u32": 1145258561, "bytes": [65, 66, 67, 68]},
        "name": "hi", "delta": -2, "inner": {"a": 1, "b": -1}}}
    odd = json.loads(out)[2]["formatted"]["value"]
    assert odd["color"] == 9 and odd["name"] == [104, 1, 0, 0, 0, 0, 0, 0]
    assert odd["spare"] == "0xf000000"
    # the pretty (-p) form and the BTF text form, byte for byte
    assert bs("dump", *spec, "-p") == bt("-p", "map", "dump", *spec)
    assert bs("lookup", *spec, "key", "1", "0", "0", "0") == \
        bt("map", "lookup", *spec, "key", "1", "0", "0", "0")


def test_lookup_equals_bpftool_for_every_kind(typed_maps):
    fill_with_bpftool(typed_maps)
    keys = {"t_array": "1 0 0 0", "t_hash": "10 0 0 1 0x50 0 6 0", "t_lru": "1 0 0 0",
            "t_pcpu_array": "1 0 0 0", "t_pcpu_hash": "0xff 0xff", "t_lpm": "24 0 0 0 10 1 2 0",
            "t_progs": "1 0 0 0", "t_outer": "2 0 0 0"}
    for name, key in keys.items():
        spec = typed_maps.pin(name)
        for flag in ([], ["-j"]):
            theirs = bt(*flag, "map", "lookup", *spec, "key", *key.split())
            ours = bs("lookup", *spec, "key", *key.split(), *flag)
            if name in ("t_progs", "t_outer"):
                doc = json.loads(ours) if flag else None
                if flag:
                    assert _without_ids([doc]) == [json.loads(theirs)]
                continue
            assert ours == theirs, (name, flag)


def test_filled_by_bpfsession_read_by_bpftool(typed_maps):
    p, tm = typed_maps.pins, typed_maps
    rec = ('{"id": 67305985, "color": "BLUE", "ports": [[1,2,3],[4,5,6]], "flag": 1, '
           '"level": 5, "w": {"bytes": [65,66,67,68]}, "name": "hi", "delta": -2, '
           '"inner": {"a": 1, "b": -1}}')
    bs("update", "pinned", p["t_array"], "key", "1", "value", rec)
    # positional typed key: addr port proto pad
    bs("update", "pinned", p["t_hash"], "key", "16777226", "80", "6", "0", "value", "hex",
       *REC.split())
    bs("update", "pinned", p["t_lru"], "key", "1", "value", "578437695752307201")
    bs("update", "pinned", p["t_pcpu_array"], "key", "1", "value", "67305985")
    bs("update", "pinned", p["t_pcpu_hash"], "key", "-1", "value", '{"a": 513, "b": 3}')
    bs("update", "pinned", p["t_lpm"], "key", '{"prefixlen": 24, "addr": [10,1,2,0]}',
       "value", "9")
    bs("update", "pinned", p["t_progs"], "key", "1", "0", "0", "0", "value", "id",
       str(tm.prog_id))
    bs("update", "pinned", p["t_outer"], "key", "2", "0", "0", "0", "value", "pinned",
       p["t_inner_b"])

    def theirs(name):
        return json.loads(bt("-j", "map", "dump", "pinned", p[name]))

    (a,) = [e for e in theirs("t_array") if e["formatted"]["key"] == 1]
    assert " ".join(b[2:] for b in a["value"]) == REC
    (h,) = theirs("t_hash")
    assert h["key"] == ["0x0a", "0x00", "0x00", "0x01", "0x50", "0x00", "0x06", "0x00"]
    assert theirs("t_lru")[0]["value"] == [f"0x0{i}" for i in range(1, 9)]
    pa = [e for e in theirs("t_pcpu_array") if e["formatted"]["key"] == 1][0]
    assert {v["value"] for v in pa["formatted"]["values"]} == {67305985}
    ph = theirs("t_pcpu_hash")[0]["formatted"]
    assert ph["key"] == -1
    assert all(v["value"] == {"a": 513, "b": 3} for v in ph["values"])
    assert theirs("t_lpm")[0]["formatted"] == {"key": {"prefixlen": 24, "addr": [10, 1, 2, 0]},
                                               "value": 9}
    (prog,) = theirs("t_progs")
    assert int.from_bytes(bytes(int(b, 16) for b in prog["value"]), "little") == tm.prog_id
    (outer,) = [e for e in theirs("t_outer") if e["key"][0] == "0x02"]
    assert int.from_bytes(bytes(int(b, 16) for b in outer["value"]), "little") == \
        tm.ids["t_inner_b"]
    ours = json.loads(bs("dump", "pinned", p["t_outer"], "-j"))
    assert {e["inner_map_id"] for e in ours} == {tm.ids["t_inner_a"], tm.ids["t_inner_b"]}
    assert f"prog_id {tm.prog_id}" in bs("dump", "pinned", p["t_progs"])


def test_typed_positional_fields_and_enum_names(typed_maps):
    spec = typed_maps.pin("t_array")
    # id color ports[6] flag level spare w.as_u32 name delta inner.a inner.b
    bs("update", *spec, "key", "3", "value", "7", "GREEN", "1", "2", "3", "4", "5", "6", "1",
       "3", "0", "0x44434241", "bob", "-5", "200", "-3")
    f = json.loads(bs("lookup", *spec, "key", "3", "-j"))["formatted"]["value"]
    assert f["id"] == 7 and f["color"] == "GREEN" and f["ports"] == [[1, 2, 3], [4, 5, 6]]
    assert (f["flag"], f["level"], f["name"], f["delta"]) == ("0x1", "0x3", "bob", -5)
    assert f["w"]["bytes"] == [65, 66, 67, 68] and f["inner"] == {"a": 200, "b": -3}


def test_missing_key_is_an_answer_like_bpftool(typed_maps):
    spec = typed_maps.pin("t_lru")
    key = ["key", "7", "0", "0", "0"]
    for flag in ([], ["-j"]):
        ours = bpfsession("map", "lookup", *spec, *key, *flag)
        theirs = run(["bpftool", *flag, "map", "lookup", *spec, *key], check=False)
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout) == \
            (254, ours.stdout)
        assert ours.stderr == ""
    assert bpfsession("map", "lookup", *spec, *key).stdout == "key:\n07 00 00 00\n\nNot found\n"
    gone = bpfsession("map", "delete", *spec, *key)
    assert gone.returncode == 254 and gone.stdout == ""
    assert gone.stderr.startswith("bpfsession: ") and gone.stderr.count("\n") == 1


def test_update_flags_and_delete(pinned_map):
    _, path = pinned_map("hash", 4, 8, 8)
    spec = ["pinned", path, "--key-type", "u32", "--value-type", "u64"]
    bs("update", *spec, "key", "5", "value", "10", "noexist")
    again = bpfsession("map", "update", *spec, "key", "5", "value", "11", "noexist")
    assert again.returncode == 1 and "exists" in again.stderr
    missing = bpfsession("map", "update", *spec, "key", "6", "value", "11", "exist")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    bs("update", *spec, "key", "5", "value", "12", "exist")
    assert json.loads(bs("lookup", *spec, "key", "5", "-j"))["formatted"] == \
        {"key": 5, "value": 12}
    assert bt("map", "lookup", "pinned", path, "key", "5", "0", "0", "0") == \
        "key: 05 00 00 00  value: 0c 00 00 00 00 00 00 00\n"
    assert bs("delete", "pinned", path, "key", "5", "0", "0", "0", "-j") == "null\n"
    assert json.loads(bt("-j", "map", "dump", "pinned", path)) == []


def test_struct_layouts_for_maps_without_btf(pinned_map):
    _, path = pinned_map("hash", 8, 16, 8)
    spec = ["pinned", path, "--key-type", "u32,u16,u16", "--value-type", "u8,u32,s64"]
    bs("update", *spec, "key", "1", "2", "3", "value", "255", "70000", "-1")
    assert bt("-j", "map", "dump", "pinned", path) == \
        ('[{"key":["0x01","0x00","0x00","0x00","0x02","0x00","0x03","0x00"],"value":["0xff",'
         '"0x00","0x00","0x00","0x70","0x11","0x01","0x00","0xff","0xff","0xff","0xff","0xff",'
         '"0xff","0xff","0xff"]}]\n')
    doc = json.loads(bs("dump", *spec, "-j"))
    assert doc[0]["formatted"] == {"key": {"f0": 1, "f1": 2, "f2": 3},
                                   "value": {"f0": 255, "f1": 70000, "f2": -1}}
    bad = bpfsession("map", "dump", "pinned", path, "--value-type", "u64")
    assert bad.returncode == 1 and "8 bytes but the map's value is 16" in bad.stderr


def test_show_equals_bpftool(typed_maps):
    for name in ("t_array", "t_progs", "t_lpm", "t_pcpu_hash"):
        spec = typed_maps.pin(name)
        assert bs("show", *spec) == bt("map", "show", *spec)
        assert bs("show", *spec, "-j") == bt("-j", "map", "show", *spec)
        assert bs("show", *spec, "-p") == bt("-p", "map", "show", *spec)


def test_show_frozen_map(pinned_map):
    fd, path = pinned_map("array", 4, 4, 2)
    bpf.map_freeze(fd)
    assert bs("show", "pinned", path) == bt("map", "show", "pinned", path)
    assert json.loads(bs("show", "pinned", path, "-j"))["frozen"] == 1


def test_pin(make_map):
    fd = make_map("array", 4, 4, 2)
    path = f"/sys/fs/bpf/{uniq('bspinned')}"
    try:
        assert bs("pin", "id", str(bpf.map_info(fd).id), path) == ""
        assert json.loads(bt("-j", "map", "show", "pinned", path))["id"] == bpf.map_info(fd).id
        again = bpfsession("map", "pin", "id", str(bpf.map_info(fd).id), path)
        assert again.returncode == 1 and "already exists" in again.stderr
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_map_specs_id_name_and_environment_fds(make_map):
    name = uniq("bsspec")
    fd = make_map("array", 4, 8, 4, name=name)
    map_id = bpf.map_info(fd).id
    bs("update", "id", str(map_id), "key", "1", "0", "0", "0", "value", "hex", "2a", "0", "0",
       "0", "0", "0", "0", "0")
    expect = bt("map", "lookup", "id", str(map_id), "key", "1", "0", "0", "0")
    assert bs("lookup", "name", name, "key", "1", "0", "0", "0") == expect
    # inside a session: BPF_MAP<N> and <N> name inherited fds; `name` prefers them
    env = {**os.environ, "BPF_NUM_MAPS": "1", "BPF_MAP3": str(fd)}
    for spec in (["BPF_MAP3"], ["3"], ["name", name]):
        res = bpfsession("map", "lookup", *spec, "key", "1", "0", "0", "0", env=env,
                         pass_fds=(fd,))
        assert res.stdout == expect and res.returncode == 0, res.stderr
    unset = bpfsession("map", "lookup", "BPF_MAP4", "key", "1", "0", "0", "0", env=env,
                       pass_fds=(fd,))
    assert unset.returncode == 1 and "BPF_MAP3" in unset.stderr
    # `map show` with no MAP inside a session lists the session's maps
    listed = json.loads(bpfsession("map", "show", "-j", env=env, pass_fds=(fd,)).stdout)
    assert [m["id"] for m in listed] == [map_id]


def test_ambiguous_name_lists_ids(make_map):
    name = uniq("bsdup")
    ids = sorted(bpf.map_info(make_map("array", 4, 4, 1, name=name)).id for _ in range(2))
    res = bpfsession("map", "show", "name", name)
    assert res.returncode == 1
    assert res.stderr == f"bpfsession: 2 maps are named '{name}' (ids {ids[0]}, {ids[1]}): " \
                         "use id ID\n"


@pytest.mark.parametrize("kind", ["hash", "lru_hash", "percpu_hash", "array", "percpu_array"])
def test_big_ish_dump_through_the_fast_path_equals_bpftool(kind, pinned_map):
    """Over FAST_MIN entries, so batches go through numpy: still bpftool's bytes."""
    n = 6000
    fd, path = pinned_map(kind, 4, 12, n)
    per = (12 + 7) // 8 * 8
    ncpus = int(open("/sys/devices/system/cpu/possible").read().strip().split("-")[-1]) + 1
    keys = b"".join(i.to_bytes(4, "little") for i in range(n))
    one = [os.urandom(12) for _ in range(n)]
    if "percpu" in kind:
        values = b"".join((v + bytes(per - 12)) * ncpus for v in one)
    else:
        values = b"".join(one)
    bpf.map_update_batch(fd, keys, values, n)
    assert bs("dump", "pinned", path, "-j") == bt("-j", "map", "dump", "pinned", path)
    assert bs("dump", "pinned", path) == bt("map", "dump", "pinned", path)


def test_big_btf_counter_map_equals_bpftool(typed_maps):
    """A BTF u32 -> s64 map past FAST_MIN entries: the batch formatter's template path (the
    second batch, 6976 entries, is formatted at once for -j too)."""
    n = 8000
    fd = bpf.obj_get(typed_maps.pins["t_counts"])
    try:
        keys = b"".join(i.to_bytes(4, "little") for i in range(n))
        values = b"".join((i * 1000 - 2_000_000).to_bytes(8, "little", signed=True)
                          for i in range(n))
        bpf.map_update_batch(fd, keys, values, n)
    finally:
        os.close(fd)
    spec = typed_maps.pin("t_counts")
    assert bs("dump", *spec, "-j") == bt("-j", "map", "dump", *spec)
    assert bs("dump", *spec) == bt("map", "dump", *spec)
