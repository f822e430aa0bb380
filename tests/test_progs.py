"""progs.using(): the programs that use a session's maps, and where they are attached.

The real thing: bpf/counter.bpf.c built with clang and loaded by `tc filter add` on a veth
inside a test netns; `bpftool prog show`, `bpftool net show` and `tc filter show` are the
oracles. Parsing is also checked against hand-built netlink bytes.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
import sys

import pytest

from bpfsession import progs
from bpfsession.kernel import rtnl
from tests.conftest import attach_tc
from tests.helpers import BPFSESSION, NOBODY, ROOT, open_fds, run, wait_for

pytest_plugins = ["tests.sessions_fixtures"]


def _bpftool_prog(prog_id: int) -> dict:
    return json.loads(run(["bpftool", "-j", "prog", "show", "id", str(prog_id)]).stdout)


def _tc_pref(netns: str | None, dev: str, direction: str) -> int:
    cmd = ["tc", "filter", "show", "dev", dev, direction]
    out = run(["ip", "netns", "exec", netns, *cmd] if netns else cmd).stdout
    return int(re.search(r"pref (\d+) bpf", out).group(1))


def _tc_entries(prog: dict) -> list[dict]:
    return [a for a in prog["attached"] if a["kind"] == "tc"]


# ---- the real kernel ----------------------------------------------------------------------


def test_tc_program_in_a_netns_named_with_its_hook(tc_counter):
    """count_proto on the veth inside the netns: name, type and tag as bpftool prints
    them, and its ingress hook as `bpftool net` and `tc filter show` see it."""
    v = tc_counter.veth
    got = progs.using(tc_counter.map_ids.values())
    assert set(got) == set(tc_counter.map_ids.values())
    oracle = _bpftool_prog(tc_counter.prog_id)
    net = json.loads(run(["ip", "netns", "exec", v.netns, "bpftool", "-j", "net",
                          "show"]).stdout)[0]
    hooks = [t for t in net["tc"] if t["id"] == tc_counter.prog_id]
    assert [(t["devname"], t["kind"]) for t in hooks] == [(v.ns_if, "clsact/ingress")]
    for map_id, found in got.items():
        assert [p["id"] for p in found] == [tc_counter.prog_id]
        prog = found[0]
        assert prog["name"] == oracle["name"] == "count_proto"
        assert prog["type"] == oracle["type"] == "sched_cls"
        assert prog["tag"] == oracle["tag"]
        assert map_id in oracle["map_ids"]
        assert prog["attached"] == [{"kind": "tc", "dev": v.ns_if, "direction": "ingress",
                                     "netns": v.netns,
                                     "pref": _tc_pref(v.netns, v.ns_if, "ingress"),
                                     "handle": 1}]
        assert list(prog["attached"][0])[:4] == ["kind", "dev", "direction", "netns"]
        assert progs.describe(prog["attached"][0]) == \
            f"tc {v.ns_if} ingress netns {v.netns} pref {prog['attached'][0]['pref']}"


def test_egress_and_the_host_side(veth, counter_obj):
    """An egress filter inside the netns, and one on the host's end of the veth: netns null
    (the host's, as a session's netns), direction egress."""
    inside = attach_tc(veth, counter_obj, "egress")
    run(["tc", "qdisc", "add", "dev", veth.host_if, "clsact"])
    run(["tc", "filter", "add", "dev", veth.host_if, "ingress", "bpf", "da", "obj",
         str(counter_obj), "sec", "tc"])
    out = run(["tc", "filter", "show", "dev", veth.host_if, "ingress"]).stdout
    host_prog = int(re.search(r" id (\d+)", out).group(1))
    host_maps = _bpftool_prog(host_prog)["map_ids"]

    got = progs.using([*inside.map_ids.values(), *host_maps])
    for map_id in inside.map_ids.values():
        (prog,) = got[map_id]
        assert prog["id"] == inside.prog_id
        assert [(a["dev"], a["direction"], a["netns"]) for a in _tc_entries(prog)] == \
            [(veth.ns_if, "egress", veth.netns)]
    for map_id in host_maps:
        (prog,) = got[map_id]
        assert prog["id"] == host_prog
        assert [(a["dev"], a["direction"], a["netns"]) for a in _tc_entries(prog)] == \
            [(veth.host_if, "ingress", None)]
        assert progs.describe(prog["attached"][0]).startswith(f"tc {veth.host_if} ingress pref")


def test_map_no_program_uses(make_map, tc_counter):
    fd = make_map()
    from bpfsession.kernel import bpf

    lonely = bpf.map_info(fd).id
    got = progs.using([lonely, tc_counter.map_ids["total_pkts"]])
    assert got[lonely] == []
    assert [p["name"] for p in got[tc_counter.map_ids["total_pkts"]]] == ["count_proto"]
    assert progs.using([]) == {}


def test_unnamed_netns_found_through_a_process(tc_counter):
    """A namespace whose `ip netns` name was removed but that a process still holds: found
    through /proc/PID/ns/net, named by that path."""
    v = tc_counter.veth
    holder = subprocess.Popen(["ip", "netns", "exec", v.netns, "sleep", "600"])
    try:
        ino = os.stat(f"/run/netns/{v.netns}").st_ino
        wait_for(lambda: _net_ino(holder.pid) == ino, what="the holder inside the netns")
        run(["ip", "netns", "del", v.netns])
        (prog,) = progs.using([tc_counter.map_ids["proto_stats"]])[
            tc_counter.map_ids["proto_stats"]]
        (hook,) = _tc_entries(prog)
        assert hook["dev"] == v.ns_if
        assert re.fullmatch(r"/proc/\d+/ns/net", hook["netns"])
        assert os.stat(hook["netns"]).st_ino == ino
    finally:
        holder.kill()
        holder.wait()


def _net_ino(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def test_caller_namespace_and_fds_unchanged(tc_counter):
    """The namespaces are entered by a worker thread: this thread's netns never moves, and
    no fd (netlink sockets, namespace files, prog and link fds) is left open."""
    before_ns = os.readlink("/proc/thread-self/ns/net")
    before_fds = open_fds()
    assert progs.using(tc_counter.map_ids.values())
    assert os.readlink("/proc/thread-self/ns/net") == before_ns
    assert os.readlink("/proc/self/ns/net") == before_ns
    assert open_fds() == before_fds


def test_unprivileged_answer_is_unknown(tc_counter):
    """uid 65534 may not walk programs: None (unknown) for every map, never []."""
    ids = list(tc_counter.map_ids.values())
    code = ("import json, sys; from bpfsession import progs; "
            "print(json.dumps(progs.using(int(a) for a in sys.argv[1:])))")
    out = run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
               sys.executable, "-c", code, *map(str, ids)], cwd=ROOT).stdout
    assert json.loads(out) == {str(i): None for i in ids}


def test_no_pyroute2_on_the_path(tc_counter):
    """`show` must not pay for pyroute2: progs and its kernel modules do not import it."""
    code = ("import sys; from bpfsession import progs; progs.using(int(a) for a in "
            "sys.argv[1:]); print(sorted(m for m in sys.modules if 'pyroute2' in m))")
    out = run([sys.executable, "-c", code, *map(str, tc_counter.map_ids.values())],
              cwd=ROOT).stdout
    assert out.strip() == "[]"


# ---- parsing, against hand-built netlink bytes ---------------------------------------------


def _nla(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def test_attrs_nested_and_padded():
    opts = _nla(rtnl.TCA_BPF_NAME, b"counter.o:[tc]\0") + _nla(rtnl.TCA_BPF_ID,
                                                                struct.pack("=I", 77))
    body = _nla(rtnl.TCA_KIND, b"bpf\0") + _nla(rtnl.TCA_OPTIONS | 0x8000, opts)
    a = rtnl.attrs(body)
    assert bytes(a[rtnl.TCA_KIND]) == b"bpf\0"
    inner = rtnl.attrs(a[rtnl.TCA_OPTIONS])  # NLA_F_NESTED masked off
    assert struct.unpack("=I", inner[rtnl.TCA_BPF_ID])[0] == 77
    assert bytes(inner[rtnl.TCA_BPF_NAME]).rstrip(b"\0") == b"counter.o:[tc]"
    # A length running past the end stops the walk instead of misreading.
    assert rtnl.attrs(body + struct.pack("=HH", 64, 9)) .keys() == {1, 2}


def test_xdp_modes_and_tc_hooks():
    per_mode = _nla(2, b"\x04") + _nla(5, struct.pack("=I", 10)) + _nla(6, struct.pack("=I", 11))
    assert rtnl._xdp(memoryview(per_mode)) == (("driver", 10), ("generic", 11))
    single = _nla(2, b"\x02") + _nla(rtnl.IFLA_XDP_PROG_ID, struct.pack("=I", 12))
    assert rtnl._xdp(memoryview(single)) == (("xdp", 12),)
    assert rtnl._xdp(None) == ()
    assert rtnl.tc_hooks([(3, "clsact"), (4, "ingress"), (5, "pfifo_fast")]) == \
        [(3, 0xFFFFFFF2), (3, 0xFFFFFFF3), (4, 0xFFFFFFF1)]


def test_rtnl_devices_match_the_kernel():
    """The RTM_GETLINK dump names every device socket.if_nameindex() knows."""
    with rtnl.Rtnl() as nl:
        got = {(d.ifindex, d.name) for d in nl.devices()}
    assert got == set(socket.if_nameindex())


def test_link_entry_from_fdinfo_fields():
    from bpfsession.kernel import links

    lk = links.Link(5, "cgroup", 9, {"cgroup_id": "1234", "attach_type": "2"})
    assert progs._link_entry(lk) == {"kind": "cgroup", "link": 5, "cgroup_id": 1234,
                                     "attach_type": "cgroup_inet_sock_create"}
    tcx = progs._link_entry(links.Link(6, "tcx", 9, {"ifindex": "3", "attach_type": "46"}))
    assert tcx == {"kind": "tcx", "link": 6, "ifindex": 3, "attach_type": "tcx_ingress",
                   "dev": None, "netns": None, "netns_known": False}
    assert progs.describe(tcx) == "tcx ifindex 3 netns ? link 6 attach_type tcx_ingress"


@pytest.mark.parametrize("name", ["bad\x1b[31mname"])
def test_describe_escapes_outside_strings(name):
    text = progs.describe({"kind": "tc", "dev": name, "direction": "ingress", "netns": name})
    assert "\x1b" not in text


# ---- end to end: `bpfsession show` ---------------------------------------------------------

def test_show_names_the_program_and_its_hook(sessions, tc_counter, counter_fds):
    """A session holding count_proto's maps in the program's netns: `show -j` lists, per
    map, the program and its tc hook; `show` prints them in a programs table."""
    from tests.sessions_helpers import as_user

    v = tc_counter.veth
    s = sessions.new(counter_fds, netns=v.netns)
    res = sessions.cli("show", s.id, "-j")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert {m["id"] for m in doc["maps"]} == set(tc_counter.map_ids.values())
    for m in doc["maps"]:
        (prog,) = m["progs"]
        assert (prog["id"], prog["name"], prog["type"]) == \
            (tc_counter.prog_id, "count_proto", "sched_cls")
        assert [(a["kind"], a["dev"], a["direction"], a["netns"]) for a in prog["attached"]] \
            == [("tc", v.ns_if, "ingress", v.netns)]
    # `show`'s start-up path stays free of pyroute2 (its import alone is ~145 ms).
    res = run([*BPFSESSION, "show", s.id, "-j"], cwd=ROOT,
              env={**sessions.env, "PYTHONPROFILEIMPORTTIME": "1"})
    assert res.returncode == 0 and "bpfsession.progs" in res.stderr, res.stderr
    assert "pyroute2" not in res.stderr
    res = sessions.cli("show", s.id)
    assert res.returncode == 0, res.stderr
    text = res.stdout[res.stdout.index("programs:"):]
    for name in ("proto_stats", "total_pkts"):
        assert re.search(rf"{name}\s+{tc_counter.prog_id}\s+count_proto\s+sched_cls\s+\w{{16}}"
                         rf"\s+tc {v.ns_if} ingress netns {v.netns} pref \d+", text), text

    # A session of uid 65534, looked at by uid 65534: unknown, not "none".
    mine = sessions.tc(counter_fds, user=as_user(NOBODY))
    res = sessions.cli("show", mine.id, "-j", user=as_user(NOBODY))
    assert res.returncode == 0, res.stderr
    assert [m["progs"] for m in json.loads(res.stdout)["maps"]] == [None, None]
    res = sessions.cli("show", mine.id, user=as_user(NOBODY))
    assert "programs: unknown" in res.stdout


# ---- links: tcx on a device in a netns, a flow dissector linked to a netns -----------------

BPF_PROG_TYPE_SCHED_CLS = 3
BPF_PROG_TYPE_FLOW_DISSECTOR = 22
BPF_FLOW_DISSECTOR = 17


def _insns_using(map_fd: int, ret: int = 0) -> bytes:
    """r1 = the map (ld_imm64, BPF_PSEUDO_MAP_FD); r0 = ret; exit: a program that holds
    the map, so that its map_ids name it."""
    return (struct.pack("=BBhi", 0x18, 0x11, 0, map_fd) + struct.pack("=BBhi", 0, 0, 0, 0)
            + struct.pack("=BBhi", 0xB7, 0, 0, ret) + struct.pack("=BBhi", 0x95, 0, 0, 0))


def _in_netns(netns: str, func):
    """func() run by a thread inside `netns` (setns is per thread); its result."""
    import threading

    from bpfsession.kernel import ns

    out = []

    def work():
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            ns.setns(fd, ns.CLONE_NEWNET)
        finally:
            os.close(fd)
        out.append(func())

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert out, "the worker inside the netns failed"
    return out[0]


@pytest.fixture
def linked_progs(veth, make_map):
    """A map used by two raw-instruction programs: one on the tcx ingress hook of the veth
    end inside the netns (a tcx link), one linked to the netns as its flow dissector."""
    from bpfsession.kernel import bpf, links

    map_fd = make_map("array", 4, 8, 1)
    fds = []
    try:
        tcx_prog = links.prog_load(BPF_PROG_TYPE_SCHED_CLS, _insns_using(map_fd), "bs_tcx")
        fds.append(tcx_prog)
        fds.append(_in_netns(veth.netns, lambda: links.link_create(
            tcx_prog, socket.if_nametoindex(veth.ns_if), links.BPF_TCX_INGRESS)))
        fd_prog = links.prog_load(BPF_PROG_TYPE_FLOW_DISSECTOR, _insns_using(map_fd), "bs_flow",
                                  expected_attach_type=BPF_FLOW_DISSECTOR)
        fds.append(fd_prog)
        ns_fd = os.open(f"/run/netns/{veth.netns}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            fds.append(links.link_create(fd_prog, ns_fd, BPF_FLOW_DISSECTOR))
        finally:
            os.close(ns_fd)
        yield {"map": bpf.map_info(map_fd).id, "tcx": bpf.prog_info(tcx_prog).id,
               "flow": bpf.prog_info(fd_prog).id, "netns_ino": os.stat(
                   f"/run/netns/{veth.netns}").st_ino}
    finally:
        for fd in reversed(fds):
            os.close(fd)


def test_links_as_the_kernel_reports_them(linked_progs, veth):
    got = progs.using([linked_progs["map"]])[linked_progs["map"]]
    by_id = {p["id"]: p for p in got}
    assert set(by_id) == {linked_progs["tcx"], linked_progs["flow"]}
    tcx_links = json.loads(run(["bpftool", "-j", "link", "show"]).stdout)
    link_of = {lk["prog_id"]: lk["id"] for lk in tcx_links}

    tcx = by_id[linked_progs["tcx"]]
    assert (tcx["name"], tcx["type"]) == ("bs_tcx", "sched_cls")
    # Found on the device in its namespace, once (not again from the link walk).
    assert tcx["attached"] == [{"kind": "tcx", "dev": veth.ns_if, "direction": "ingress",
                                "netns": veth.netns, "link": link_of[linked_progs["tcx"]]}]

    flow = by_id[linked_progs["flow"]]
    assert (flow["name"], flow["type"]) == ("bs_flow", "flow_dissector")
    assert flow["attached"] == [{"kind": "netns", "link": link_of[linked_progs["flow"]],
                                 "netns_ino": linked_progs["netns_ino"],
                                 "attach_type": "flow_dissector"}]
    assert progs.describe(flow["attached"][0]) == (
        f"netns link {link_of[linked_progs['flow']]} netns_ino {linked_progs['netns_ino']} "
        "attach_type flow_dissector")


def test_xdp_on_a_netns_device(veth, make_map):
    """An XDP program linked in generic mode: found through the device's IFLA_XDP in its
    namespace, mode as `ip link` names it, and not listed a second time from its link."""
    from bpfsession.kernel import bpf, links

    map_fd = make_map("array", 4, 8, 1)
    prog = links.prog_load(6, _insns_using(map_fd, ret=2), "bs_xdp")  # XDP, returns XDP_PASS
    try:
        link = _in_netns(veth.netns, lambda: links.link_create(
            prog, socket.if_nametoindex(veth.ns_if), 37))  # BPF_XDP (generic on a veth
        try:                                              # without a driver program)
            map_id = bpf.map_info(map_fd).id
            (found,) = progs.using([map_id])[map_id]
            out = run(["ip", "-n", veth.netns, "link", "show", "dev", veth.ns_if]).stdout
            mode = "generic" if "xdpgeneric" in out else "driver"
            assert found["attached"] == [{"kind": "xdp", "dev": veth.ns_if, "mode": mode,
                                          "netns": veth.netns}]
            assert f"prog/xdp id {found['id']}" in out
        finally:
            os.close(link)
    finally:
        os.close(prog)


def test_tcx_query_grows_its_buffer(veth, make_map):
    """Two programs on one tcx hook, asked with room for one: ENOSPC, asked again."""
    from bpfsession.kernel import bpf, links

    map_fd = make_map("array", 4, 8, 1)
    fds = [links.prog_load(BPF_PROG_TYPE_SCHED_CLS, _insns_using(map_fd), f"bs_q{i}")
           for i in range(2)]
    try:
        ifindex = socket.if_nametoindex(veth.host_if)
        fds += [links.link_create(fd, ifindex, links.BPF_TCX_EGRESS) for fd in fds[:2]]
        got = links.prog_query_ifindex(ifindex, links.BPF_TCX_EGRESS, room=1)
        assert sorted(p for p, _ in got) == sorted(bpf.prog_info(fd).id for fd in fds[:2])
        assert all(link for _, link in got)
    finally:
        for fd in reversed(fds):
            os.close(fd)
