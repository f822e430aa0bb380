"""`bpfsession send` from real loaded objects into iproute2's real receiver (tc exec)."""

from __future__ import annotations

import json
import os

import pytest

from bpfsession.kernel import bpf
from tests.conftest import attach_tc
from tests.helpers import bpfsession, parse_show_maps, run, tc_exec_receiver, uniq

pytest_plugins = ["tests.sessions_fixtures"]


def _send_into_tc_exec(uds: str, *args: str) -> tuple[int, dict[str, int], str]:
    proc = tc_exec_receiver(uds)
    res = bpfsession("send", uds, *args)
    if res.returncode != 0:
        proc.kill()
        proc.communicate()
        raise AssertionError(res.stderr)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    num, ids = parse_show_maps(out)
    return num, ids, out


def test_send_map_ids_in_order(uds, make_map):
    a, b = make_map("hash"), make_map("array", value_size=4)
    ida, idb = bpf.map_info(a).id, bpf.map_info(b).id
    num, ids, out = _send_into_tc_exec(uds, "--map-id", str(idb), "--map-id", str(ida),
                                       "--obj", "byid")
    assert num == 2
    assert ids == {"BPF_MAP0": idb, "BPF_MAP1": ida}


def test_send_pinned_and_dedup(uds, make_map):
    fd = make_map("lru_hash", name="pinme")
    map_id = bpf.map_info(fd).id
    path = f"/sys/fs/bpf/{uniq('pin')}"
    bpf.obj_pin(fd, path)
    try:
        num, ids, _ = _send_into_tc_exec(uds, "--pinned", path, "--map-id", str(map_id))
    finally:
        os.unlink(path)
    assert num == 1  # the same map named twice is sent once
    assert ids == {"BPF_MAP0": map_id}


def test_send_prog_id(uds, tc_counter):
    num, ids, out = _send_into_tc_exec(uds, "--prog-id", str(tc_counter.prog_id))
    assert num == 2
    assert sorted(ids.values()) == sorted(tc_counter.map_ids.values())


def test_send_dev_in_netns(uds, tc_counter):
    v = tc_counter.veth
    num, ids, out = _send_into_tc_exec(uds, "--netns", v.netns, "--dev", v.ns_if, "--ingress")
    assert num == 2
    assert sorted(ids.values()) == sorted(tc_counter.map_ids.values())


@pytest.mark.parametrize("source, obj", [("prog", "count_proto"), ("dev", "counter.bpf.o")])
def test_send_announces_the_object_name(uds, tc_counter, source, obj):
    v = tc_counter.veth
    args = ["--prog-id", str(tc_counter.prog_id)] if source == "prog" else \
        ["--netns", v.netns, "--dev", v.ns_if, "--ingress"]
    proc = tc_exec_receiver(uds, "true")
    res = bpfsession("send", uds, "-j", *args)
    proc.communicate(timeout=10)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["obj"] == obj


def test_send_dev_egress_and_ingress_both(uds, veth, counter_obj):
    ingress = attach_tc(veth, counter_obj, "ingress")
    egress = attach_tc(veth, counter_obj, "egress")
    num, ids, _ = _send_into_tc_exec(uds, "--netns", veth.netns,
                                     "--dev", veth.ns_if, "--egress",
                                     "--dev", veth.ns_if, "--ingress")
    assert num == 4
    # Sources in the order given; within a program, the kernel's map order (prog_info).
    assert [ids[f"BPF_MAP{i}"] for i in range(4)] == \
        [*egress.map_ids.values(), *ingress.map_ids.values()]


def test_send_json_report(uds, make_map):
    fd = make_map("hash", name="jsonmap")
    proc = tc_exec_receiver(uds, "true")
    res = bpfsession("send", uds, "-j", "--map-id", str(bpf.map_info(fd).id))
    proc.communicate(timeout=10)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["maps"] == [{"env": "BPF_MAP0", "id": bpf.map_info(fd).id, "name": "jsonmap",
                            "type": "hash"}]


@pytest.mark.parametrize("args, message", [
    (["--map-id", "999999999"], "map id 999999999 does not exist"),
    (["--prog-id", "999999999"], "prog id 999999999 does not exist"),
    (["--pinned", "/sys/fs/bpf/no-such-pin"], "nothing pinned at /sys/fs/bpf/no-such-pin"),
    (["--pinned", "/etc/hostname"], "is not a pinned BPF object"),
    (["--dev", "lo"], "--dev lo needs --ingress or --egress"),
    (["--dev", "nosuchdev0", "--ingress"], "no device nosuchdev0"),
    (["--dev", "lo", "--ingress"], "no BPF filter on lo ingress"),
    (["--map-id", "x1"], "--map-id x1: not a number"),
    ([], "no SOURCE given"),
    (["--ingress"], "--ingress must follow --dev IFACE"),
])
def test_send_errors_are_one_line(uds, args, message):
    proc = tc_exec_receiver(uds, "true")
    try:
        res = bpfsession("send", uds, *args)
    finally:
        proc.kill()
        proc.communicate()
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bpfsession: "), res.stderr
    assert message in lines[0]


def test_send_pinned_prog_is_not_a_map(uds, tc_counter):
    path = f"/sys/fs/bpf/{uniq('prog')}"
    run(["bpftool", "prog", "pin", "id", str(tc_counter.prog_id), path])
    try:
        res = bpfsession("send", uds, "--pinned", path)
    finally:
        os.unlink(path)
    assert res.returncode != 0
    assert "is a pinned bpf-prog, not a map; use --prog-id" in res.stderr


def test_send_without_receiver(uds, make_map):
    res = bpfsession("send", uds, "--map-id", str(bpf.map_info(make_map()).id))
    assert res.returncode == 1
    assert res.stderr.startswith("bpfsession: no socket at ")


def test_send_unknown_netns(uds):
    res = bpfsession("send", uds, "--netns", "no-such-ns-x", "--dev", "lo", "--ingress")
    assert res.returncode != 0
    assert "no-such-ns-x" in res.stderr
    assert not os.path.exists("/run/netns/no-such-ns-x")  # never created


@pytest.mark.parametrize("kind", ["new", "tc"])
def test_send_session_reexports_into_tc_exec(uds, sessions, two_maps, kind):
    """A live session's maps, taken from it (control socket or pidfd_getfd), handed on."""
    started = sessions.new(two_maps, obj="reexp") if kind == "new" else sessions.tc(two_maps)
    proc = tc_exec_receiver(uds)
    res = sessions.cli("send", uds, "-j", "--session", started.id)
    out, err = proc.communicate(timeout=10)
    assert res.returncode == 0, res.stderr
    num, ids = parse_show_maps(out)
    assert num == 2
    assert ids == {"BPF_MAP0": started.map_ids[0], "BPF_MAP1": started.map_ids[1]}
    if kind == "new":
        assert json.loads(res.stdout)["obj"] == "reexp"
