"""Bad input to `bpfsession map`: one clear line, a non-zero status, the map unchanged,
no fd left behind."""

from __future__ import annotations

import json
import os

import pytest

from bpfsession import maps
from bpfsession.errors import BpfSessionError
from bpfsession.kernel import bpf
from tests.helpers import BPFSESSION, bpfsession, run, uniq
from tests.new_helpers import live_fds

pytest_plugins = ["tests.map_fixtures"]


def one_line_error(res, status: int = 1) -> str:
    assert res.returncode == status, (res.returncode, res.stdout, res.stderr)
    assert res.stderr.startswith("bpfsession: ") and res.stderr.count("\n") == 1, res.stderr
    assert "Traceback" not in res.stderr
    return res.stderr


def dump(path: str) -> str:
    return run(["bpftool", "-j", "map", "dump", "pinned", path]).stdout


@pytest.fixture
def filled(pinned_map):
    fd, path = pinned_map("hash", 4, 8, 8)
    bpf.map_update_elem(fd, (1).to_bytes(4, "little"), (42).to_bytes(8, "little"))
    return fd, path


@pytest.mark.parametrize("words, says", [
    (["key", "1", "0", "0", "value", "1", "0", "0", "0", "0", "0", "0", "0"],
     "key expects 4 bytes, got 3"),
    (["key", "1", "0", "0", "0", "value", "1", "0", "0", "0", "0", "0", "0", "0", "0"],
     "value expects 8 bytes, got 9"),
    (["key", "1", "0", "0", "0", "value", "zz", "0", "0", "0", "0", "0", "0", "0"],
     "value: cannot read 'zz' as a byte"),
    (["key", "1", "0", "0", "0", "value", "256", "0", "0", "0", "0", "0", "0", "0"],
     "value: 256 is not a byte"),
    (["key", "hex", "1g", "0", "0", "0", "value", "1", "0", "0", "0", "0", "0", "0", "0"],
     "key: cannot read '1g' as a byte"),
    (["key", "1", "0", "0", "0"], "`map update` needs `value DATA`"),
    (["value", "1", "0", "0", "0", "0", "0", "0", "0"], "`map update` needs `key DATA`"),
    (["key", "1", "0", "0", "0", "value", "1", "0", "0", "0", "0", "0", "0", "0", "maybe"],
     "value: cannot read 'maybe' as a byte"),
])
def test_bad_data_is_one_line_and_changes_nothing(filled, words, says):
    _, path = filled
    before = dump(path)
    res = bpfsession("map", "update", "pinned", path, *words)
    assert says in one_line_error(res)
    assert res.stdout == ""
    assert dump(path) == before


def test_typed_input_errors_name_the_field(typed_maps):
    spec = typed_maps.pin("t_array")
    before = dump(typed_maps.pins["t_array"])
    cases = [
        (['{"nope": 1}'], "no member 'nope'"),
        (['{"id": "x"}'], "id: expected a number, got 'x'"),
        (['{"inner": {"a": 300}}'], "inner.a: 300 does not fit in 8 bits"),
        (['{"ports": [[1,2],[3,4]]}'], "ports[0]: expected a list of 3 elements"),
        (['{"id": 1'], "not valid JSON"),
        (["1", "2"], "expected 16 field value(s) (id color ports[0][0]"),
        (['{"name": "far too long"}'], "name: 'far too long' is longer than 8 bytes"),
    ]
    for value, says in cases:
        res = bpfsession("map", "update", *spec, "key", "0", "value", *value)
        assert says in one_line_error(res), (value, res.stderr)
    assert dump(typed_maps.pins["t_array"]) == before


@pytest.mark.parametrize("spec, says", [
    (["id", "4000000000"], "no map with id 4000000000"),
    (["id", "x1"], "map id must be a number"),
    (["pinned", "/sys/fs/bpf/bs-no-such-pin"], "nothing pinned at /sys/fs/bpf/bs-no-such-pin"),
    (["pinned", "/etc/hostname"], "/etc/hostname is not in a bpf file system (bpffs)"),
    (["name", "bs-no-such-map"], "no map named 'bs-no-such-map'"),
    (["BPF_MAP0"], "BPF_MAP0 is not set: this is not a bpfsession/tc exec session"),
    (["frob", "1"], "unknown map 'frob'"),
    ([], "which map?"),
])
def test_missing_maps(spec, says):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPF_")}
    res = bpfsession("map", "lookup", *spec, "key", "0", "0", "0", "0", env=env)
    assert says in one_line_error(res), res.stderr


def test_non_map_pinned_path(typed_maps):
    res = bpfsession("map", "dump", "pinned", typed_maps.prog_pin)
    assert f"{typed_maps.prog_pin} is a program, not a map" in one_line_error(res)


def test_frozen_map_refuses_writes_and_stays(pinned_map):
    fd, path = pinned_map("array", 4, 8, 2)
    bpf.map_update_elem(fd, (0).to_bytes(4, "little"), (7).to_bytes(8, "little"))
    bpf.map_freeze(fd)
    before = dump(path)
    for words in (["update", "pinned", path, "key", "0", "0", "0", "0", "value", "1", "0", "0",
                   "0", "0", "0", "0", "0"],):
        res = bpfsession("map", *words)
        assert "it is frozen (BPF_MAP_FREEZE), user space may only read it" in \
            one_line_error(res)
    assert dump(path) == before
    # reading still works
    assert bpfsession("map", "lookup", "pinned", path, "key", "0", "0", "0", "0").returncode == 0


def test_read_only_fd_from_the_session(make_map):
    fd = make_map("array", 4, 4, 2)
    ro = bpf.map_get_fd_by_id(bpf.map_info(fd).id, bpf.BPF_F_RDONLY)
    try:
        env = {**os.environ, "BPF_NUM_MAPS": "1", "BPF_MAP0": str(ro)}
        res = bpfsession("map", "update", "BPF_MAP0", "key", "0", "0", "0", "0", "value", "1",
                         "0", "0", "0", env=env, pass_fds=(ro,))
        assert "this fd was handed over read-only" in one_line_error(res)
        ok = bpfsession("map", "lookup", "0", "key", "0", "0", "0", "0", env=env, pass_fds=(ro,))
        assert ok.returncode == 0 and ok.stdout == "key: 00 00 00 00  value: 00 00 00 00\n"
    finally:
        os.close(ro)


def test_array_index_out_of_range_and_array_delete(pinned_map):
    _, path = pinned_map("array", 4, 4, 2)
    res = bpfsession("map", "update", "pinned", path, "key", "9", "0", "0", "0", "value", "1",
                     "0", "0", "0")
    assert "the index is past its max_entries (2)" in one_line_error(res)
    res = bpfsession("map", "delete", "pinned", path, "key", "1", "0", "0", "0")
    assert "array elements cannot be deleted" in one_line_error(res)


def test_full_hash(pinned_map):
    fd, path = pinned_map("hash", 4, 4, 1)
    bpf.map_update_elem(fd, bytes(4), bytes(4))
    res = bpfsession("map", "update", "pinned", path, "key", "1", "0", "0", "0", "value", "1",
                     "0", "0", "0")
    assert "it is full (max_entries 1)" in one_line_error(res)


def test_errors_under_json_are_json_too(filled):
    _, path = filled
    res = bpfsession("map", "lookup", "pinned", path, "key", "1", "-j")
    one_line_error(res)
    assert "error" in json.loads(res.stdout)


def test_bad_layout_messages(make_map):
    map_id = str(bpf.map_info(make_map("hash", 4, 8, 2)).id)
    for opt, says in (("u31", "unknown type 'u31'"), ("u8[0]", "bad array length"),
                      ("char", "char needs a length"), ("u16", "is 2 bytes but the map's key")):
        res = bpfsession("map", "dump", "id", map_id, "--key-type", opt)
        assert says in one_line_error(res), res.stderr


def test_no_fd_leaks_in_process(typed_maps, make_map):
    """Every spec, good or bad, leaves our fd table as it found it."""
    name = uniq("bsleak")
    make_map("array", 4, 4, 1, name=name)
    dup = uniq("bsdupe")
    make_map("array", 4, 4, 1, name=dup)
    make_map("array", 4, 4, 1, name=dup)
    before = live_fds()
    good = [["pinned", typed_maps.pins["t_array"]], ["id", str(typed_maps.ids["t_lru"])],
            ["name", name]]
    for spec in good:
        with maps.open_map(spec) as m:
            with maps.OpenMap(m.fd, m.info, "x", owned=False):
                pass
            codec = maps.codec(m)
            list(maps.walk(m, codec.layout))
    bad = [["pinned", typed_maps.prog_pin], ["pinned", "/etc/hostname"], ["name", dup],
           ["id", "4000000000"], ["name", "bs-nothing"]]
    for spec in bad:
        with pytest.raises(BpfSessionError):
            maps.open_map(spec)
    assert live_fds() == before


def test_hostile_map_input_is_one_line(filled, tmp_path):
    """Deep JSON, a bpffs directory as a pin, and the map walks that need CAP_SYS_ADMIN."""
    fd, path = filled
    before = dump(path)
    deep = "[" * 1000 + "]" * 1000
    for typed in (["--value-type", "u64"], ["--value-type", "u32,u32"]):
        res = bpfsession("map", "update", "pinned", path, *typed, "key", "1", "0", "0", "0",
                         "value", deep)
        assert "nested too deeply" in one_line_error(res)
    res = bpfsession("map", "load", "pinned", path, "-",
                     input='{"key": 1, "value": ' + deep + "}\n")
    one_line_error(res)
    assert dump(path) == before
    directory = f"/sys/fs/bpf/{uniq('bsdir')}"
    os.mkdir(directory)
    try:
        res = bpfsession("map", "dump", "pinned", directory)
        assert one_line_error(res) == f"bpfsession: {directory} is a directory, not a pinned " \
                                      f"map: `ls {directory}` shows what is pinned there\n"
    finally:
        os.rmdir(directory)


def test_map_walks_as_non_root_say_what_they_need():
    from tests.sessions_helpers import NOBODY, as_user

    env = {k: v for k, v in os.environ.items() if not k.startswith("BPF")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the checkout's __pycache__ is root's
    for words, says in ((["map", "show"], "`map show` without MAP outside a session needs "
                                          "CAP_SYS_ADMIN"),
                        (["map", "dump", "name", "whatever"], "finding the map named "
                                                              "'whatever' needs CAP_SYS_ADMIN")):
        res = run([*as_user(NOBODY), *BPFSESSION, *words], check=False, env=env)
        assert one_line_error(res).startswith(f"bpfsession: {says}"), words
