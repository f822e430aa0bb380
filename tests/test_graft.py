"""`bpfsession graft`: tail-call targets put into a session's prog array, seen by packets.

tests/bpf/tailcall.bpf.c runs on a veth's ingress: it counts every packet in
graft_hits[0] and tail-calls jmp_table[0]. tests/bpf/graft.bpf.c's programs count into
graft_hits[1] (graft_one, sec tc) and graft_hits[2] (graft_two, sec classifier). A
session holds jmp_table and graft_hits; the grafted programs must count into that very
graft_hits (reused by name at load time), or nothing would move.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from bpfsession.kernel import bpf
from tests.conftest import attach_tc, compile_bpf
from tests.helpers import BPFSESSION, ROOT, run, send_udp, uniq, wait_for

pytest_plugins = ["tests.sessions_fixtures"]


@pytest.fixture(scope="module")
def graft_obj(bpf_build_dir) -> str:
    return str(compile_bpf(ROOT / "tests" / "bpf" / "graft.bpf.c", bpf_build_dir))


@pytest.fixture
def tail(veth, bpf_build_dir, sessions):
    """The tail-calling program on the veth, and a session holding its two maps (its
    own fds closed: the session is the only user-space holder of the prog array)."""
    prog = attach_tc(veth, compile_bpf(ROOT / "tests" / "bpf" / "tailcall.bpf.c",
                                       bpf_build_dir))
    fds = [bpf.map_get_fd_by_id(prog.map_ids[n]) for n in ("jmp_table", "graft_hits")]
    try:
        s = sessions.new(fds, name=uniq("graft"))
    finally:
        for fd in fds:
            os.close(fd)
    return prog, s


def hits(prog) -> list[int]:
    fd = bpf.map_get_fd_by_id(prog.map_ids["graft_hits"])
    try:
        out = []
        for slot in range(3):
            value = bytearray(8)
            bpf.map_lookup_elem(fd, slot.to_bytes(4, "little"), value)
            out.append(int.from_bytes(value, "little"))
        return out
    finally:
        os.close(fd)


def packets_take(prog, veth, slot: int | None) -> None:
    """Send packets until graft_hits[0] (every packet) moved by 5; then only `slot` of the
    grafted programs' counters (1 or 2, None: neither) may have moved, by as much."""
    before = hits(prog)
    send_udp(veth.ns_ip, 5)
    after = wait_for(lambda: (h := hits(prog))[0] >= before[0] + 5 and h,
                     what="the packets to reach the tc program")
    moved = {i for i in (1, 2) if after[i] != before[i]}
    assert moved == ({slot} if slot else set()), (before, after)
    if slot:
        assert after[slot] - before[slot] == after[0] - before[0]


def bpffs_listing() -> set[str]:
    """/sys/fs/bpf's entries, less those of other test runs (uniq() names with another
    pid), which may come and go meanwhile."""
    mine = f"{os.getpid() % 10000}x"
    return {n for n in os.listdir("/sys/fs/bpf")
            if not re.fullmatch(r"[A-Za-z_]+\d+x\d+", n) or mine in n}


def test_graft_replace_delete(tail, veth, sessions, graft_obj):
    prog, s = tail
    pins = bpffs_listing()
    packets_take(prog, veth, None)  # an empty slot: the tail call falls through

    # Inside the session, by BPF_MAP<N>; the program by section.
    res = sessions.cli("attach", s.name, "run", *BPFSESSION, "graft", "BPF_MAP0", "key", "0",
                       "obj", graft_obj, "sec", "tc", "-j")
    assert res.returncode == 0, res.stderr
    first = json.loads(res.stdout)
    assert first["name"] == "graft_one" and first["key"] == 0
    assert first["map_id"] == prog.map_ids["jmp_table"]
    fd = bpf.prog_get_fd_by_id(first["prog_id"])
    try:  # the grafted program uses the session's graft_hits, not a fresh copy
        assert bpf.prog_info(fd).map_ids == (prog.map_ids["graft_hits"],)
    finally:
        os.close(fd)
    packets_take(prog, veth, 1)

    # From outside, by `session S NAME`; the program by its name.
    res = sessions.cli("graft", "session", s.name, "jmp_table", "key", "0", "obj", graft_obj,
                       "sec", "graft_two")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    packets_take(prog, veth, 2)

    res = sessions.cli("graft", "id", str(prog.map_ids["jmp_table"]), "key", "0x0", "delete")
    assert (res.returncode, res.stderr) == (0, "")
    packets_take(prog, veth, None)
    res = sessions.cli("graft", "session", s.name, "jmp_table", "key", "0", "delete")
    assert res.returncode == 254
    assert res.stderr == f"bpfsession: slot 0 of session {s.name} jmp_table is empty: " \
                         "nothing deleted\n"

    assert bpffs_listing() == pins  # loading pinned nothing where anyone can see it
    # The programs not grafted went with the private bpffs; the replaced one with its slot.
    wait_for(lambda: not _progs_named({"graft_one", "graft_two"}),
             what="the loaded but unused programs to be freed")


def _progs_named(names: set[str]) -> list[int]:
    found = []
    for prog_id in bpf.prog_ids():
        try:
            fd = bpf.prog_get_fd_by_id(prog_id)
        except OSError:
            continue
        try:
            if bpf.prog_info(fd).name in names:
                found.append(prog_id)
        finally:
            os.close(fd)
    return found


def test_graft_by_id_and_pinned(tail, veth, sessions, graft_obj):
    prog, s = tail
    res = sessions.cli("graft", "session", s.name, "jmp_table", "key", "1", "obj", graft_obj,
                       "sec", "classifier", "type", "cls", "-j")
    assert res.returncode == 0, res.stderr
    grafted = json.loads(res.stdout)
    assert grafted["name"] == "graft_two" and grafted["type"] == "sched_cls"
    res = sessions.cli("graft", "session", s.name, "jmp_table", "key", "0", "id",
                       str(grafted["prog_id"]))
    assert res.returncode == 0, res.stderr
    packets_take(prog, veth, 2)

    pin = f"/sys/fs/bpf/{uniq('bsgraft')}"
    fd = bpf.prog_get_fd_by_id(grafted["prog_id"])
    try:
        bpf.obj_pin(fd, pin)
    finally:
        os.close(fd)
    try:
        res = sessions.cli("graft", "session", s.name, "jmp_table", "key", "2", "pinned", pin,
                           "-j")
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["prog_id"] == grafted["prog_id"]
    finally:
        os.unlink(pin)
    dump = sessions.cli("map", "dump", "session", s.name, "jmp_table", "-j")
    assert [e["key"][0] for e in json.loads(dump.stdout)] == ["0x00", "0x01", "0x02"]


@pytest.mark.parametrize("words, hint", [
    (["key", "4", "delete"], "key 4 is out of range: {map} has 4 slots (0..3)"),
    (["key", "-1", "delete"], "KEY must be a slot number (a u32, as tc takes it), not '-1'"),
    (["key", "zero", "delete"], "KEY must be a slot number (a u32, as tc takes it), "
                                "not 'zero'"),
    (["key", "0"], "expected id ID, pinned PATH, obj FILE or delete after the key "
                   "(got nothing)"),
    (["0", "delete"], "expected `key KEY` after the map: graft MAP key KEY (id ID | "
                      "pinned PATH | obj FILE [sec NAME] [type TYPE] | delete)"),
    (["key", "0", "id", "x"], "program id must be a number (a u32), not 'x'"),
    (["key", "0", "id", "4294967297"], "program id must be a number (a u32), not "
                                       "'4294967297'"),
    (["key", "0", "id", "4000000000"], "no program id 4000000000: `bpftool prog show` "
                                       "lists them"),
    (["key", "0", "delete", "now"], "unexpected 'now' after delete"),
    (["key", "0", "id", "1", "sec", "tc"], "unexpected 'sec': only obj FILE takes sec NAME "
                                           "and type TYPE"),
    (["key", "0", "obj", "/nonexistent.o"], "cannot read /nonexistent.o: No such file or "
                                            "directory"),
    (["key", "0", "obj", "{graft}"], "{graft} has 2 programs (graft_one (sec tc), "
                                     "graft_two (sec classifier)): pick one with sec NAME"),
    (["key", "0", "obj", "{graft}", "sec", "xdp"],
     "{graft} has no section or program 'xdp' (its programs: graft_one (sec tc), "
     "graft_two (sec classifier))"),
    (["key", "0", "obj", "{graft}", "sec", "tc", "type", "xdp"],
     "program graft_one (id {prog}) is xdp, but {map} holds sched_cls programs: a tail "
     "call stays within one program type"),
])
def test_bad_requests_are_one_line(tail, sessions, graft_obj, words, hint):
    prog, s = tail
    words = [w.format(graft=graft_obj) for w in words]
    spec = ["session", s.name, "jmp_table"]
    res = sessions.cli("graft", *spec, *words)
    assert res.returncode != 0 and res.stdout == ""
    line = res.stderr.removeprefix("bpfsession: ").rstrip("\n")
    assert res.stderr.count("\n") == 1
    if "{prog}" in hint:
        prog_id = line.split("(id ")[1].split(")")[0]
        hint = hint.replace("{prog}", prog_id)
    assert line == hint.format(map=" ".join(spec), graft=graft_obj)


def test_not_a_prog_array(sessions, make_map):
    fd = make_map("array", 4, 8, 4)
    res = sessions.cli("graft", "id", str(bpf.map_info(fd).id), "key", "0", "delete")
    assert res.returncode == 1
    assert res.stderr == (f"bpfsession: id {bpf.map_info(fd).id} is not a prog_array (it is "
                          "a array map): graft puts programs into prog arrays\n")


def test_tc_exec_bpf_graft_counts_into_a_copy_and_ours_into_the_session_map(
        tail, veth, sessions, graft_obj):
    """iproute2's own graft (libbpf-built tc) fills the slot, but its program gets fresh
    copies of the object's maps: the session's counter stays still. Ours moves it."""
    prog, s = tail
    pin = f"/sys/fs/bpf/{uniq('bsjmp')}"
    fd = bpf.map_get_fd_by_id(prog.map_ids["jmp_table"])
    try:
        bpf.obj_pin(fd, pin)
        run(["tc", "exec", "bpf", "graft", pin, "key", "0", "obj", graft_obj, "sec", "tc"])
        slot = bytearray(4)
        assert bpf.map_lookup_elem(fd, bytes(4), slot)
        grafted = bpf.prog_get_fd_by_id(int.from_bytes(slot, "little"))
        try:
            info = bpf.prog_info(grafted)
        finally:
            os.close(grafted)
        assert info.name == "graft_one"
        assert info.map_ids != (prog.map_ids["graft_hits"],)  # a copy of graft_hits
        packets_take(prog, veth, None)  # graft_one runs, and counts where nobody reads

        res = sessions.cli("graft", "pinned", pin, "key", "0", "obj", graft_obj, "sec", "tc")
        assert res.returncode == 0, res.stderr
        packets_take(prog, veth, 1)
    finally:
        os.close(fd)
        if os.path.exists(pin):
            os.unlink(pin)


def test_a_map_the_session_lacks_is_a_fresh_copy_and_a_warning(sessions, make_map, graft_obj):
    jmp = make_map("prog_array", 4, 4, 2)  # no session, no program uses it yet
    res = sessions.cli("graft", "id", str(bpf.map_info(jmp).id), "key", "1", "obj", graft_obj,
                       "sec", "graft_one", "-j")
    assert res.returncode == 0
    assert res.stderr == (f"bpfsession: warning: map graft_hits of {graft_obj} is not one of "
                          "the session's: the grafted program gets a fresh copy of it\n")
    assert json.loads(res.stdout)["name"] == "graft_one"


def test_unprivileged_user_is_told_in_one_line(tail, sessions, graft_obj):
    from tests.sessions_helpers import as_user

    prog, _ = tail
    res = sessions.cli("graft", "id", str(prog.map_ids["jmp_table"]), "key", "0", "obj",
                       graft_obj, "sec", "tc", user=as_user(65534))
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("bpfsession: not allowed to open map id ")
    assert res.stderr.count("\n") == 1
