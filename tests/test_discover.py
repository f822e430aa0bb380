"""Discovery, `list` and `show` against real sessions: `tc exec bpf imp` and `bpfsession new`
side by side, with bpftool as the oracle for kernel map ids."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from datetime import datetime

import pytest

from bpfsession import discover, model
from bpfsession.errors import BpfSessionError
from tests.helpers import BPFSESSION, open_fds, run, uniq, wait_for
from tests.sessions_helpers import NOBODY, as_user, by_pid

pytest_plugins = ["tests.sessions_fixtures"]


def _bpftool_maps() -> dict[int, dict]:
    return {m["id"]: m for m in json.loads(run(["bpftool", "-j", "map", "show"]).stdout)}


def test_tc_and_new_side_by_side(sessions, tc_counter, counter_fds, two_maps):
    ns = tc_counter.veth.netns
    new = sessions.new(counter_fds, netns=ns, name=uniq("demo"), obj="counter",
                       cmd=("sh", "-c", "sleep 300 & wait"))
    tc = sessions.tc(two_maps)
    listing = sessions.list_json()
    oracle = _bpftool_maps()

    got_new = by_pid(listing, new.root)
    assert got_new is not None, listing
    assert got_new["id"] == new.id and got_new["name"] == new.entry["name"]
    assert got_new["netns"] == ns and got_new["obj"] == "counter"
    assert got_new["supervisor"] == new.supervisor and got_new["registered"]
    assert got_new["command"] == ["sh", "-c", "sleep 300 & wait"]
    datetime.fromisoformat(got_new["started"])
    assert [m["id"] for m in got_new["maps"]] == new.map_ids
    assert [m["name"] for m in got_new["maps"]] == ["proto_stats", "total_pkts"]
    assert [m["env"] for m in got_new["maps"]] == ["BPF_MAP0", "BPF_MAP1"]
    assert [m["fd"] for m in got_new["maps"]] == [3, 4]
    # The sh root and its sleep child, both holding the maps.
    assert {p["comm"] for p in got_new["processes"]} == {"sh", "sleep"}

    got_tc = by_pid(listing, tc.root)
    assert got_tc is not None and got_tc["id"] == f"tc-{tc.root}" and got_tc["netns"] is None
    assert not got_tc["registered"] and got_tc["supervisor"] is None
    assert got_tc["command"] == ["sleep", "300"]
    assert [m["id"] for m in got_tc["maps"]] == tc.map_ids
    assert [m["env"] for m in got_tc["maps"]] == ["BPF_MAP0", "BPF_MAP1"]

    for s in (got_new, got_tc):
        for m in s["maps"]:
            kernel = oracle[m["id"]]
            assert (m["name"], m["type"]) == (kernel["name"], kernel["type"])
            assert (m["key_size"], m["value_size"], m["max_entries"]) == \
                (kernel["bytes_key"], kernel["bytes_value"], kernel["max_entries"])
            assert m["memlock"] == int(kernel["bytes_memlock"])
            assert m["frozen"] is bool(kernel.get("frozen", 0))


def test_show_by_name_id_and_any_pid(sessions, two_maps):
    name = uniq("show")
    s = sessions.new(two_maps, name=name, cmd=("sh", "-c", "sleep 300 & wait"))
    child = wait_for(lambda: [p for p in _children(s.root)], what="the sleep child")[0]
    for spec in (name, s.id, str(s.root), str(child), str(s.supervisor)):
        res = sessions.cli("show", spec, "-j")
        assert res.returncode == 0, (spec, res.stderr)
        assert json.loads(res.stdout)["id"] == s.id
    text = sessions.cli("show", name)
    assert text.returncode == 0
    assert f"session {s.id}  name {name}" in text.stdout
    for m in s.map_ids:
        assert f" {m} " in text.stdout
    assert "BPF_MAP0" in text.stdout and str(child) in text.stdout


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


def test_list_text_is_a_table(sessions, two_maps, netns):
    tc = sessions.tc(two_maps, netns=netns)
    res = sessions.cli("list")
    assert res.returncode == 0
    header, *rows = res.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "STATE", "PID", "SUPERVISOR", "NETNS", "OBJ",
                              "MAPS", "PROCS", "STARTED"]
    row = next(r.split() for r in rows if r.split()[3] == str(tc.root))
    assert row[:8] == [tc.id, tc.id, "running", str(tc.root), "-", netns, "-", "2"]


@pytest.mark.parametrize("args", [("show", "nosuchsession"), ("show", "999999999"),
                                  ("attach", "nosuchsession", "run", "true")])
def test_unknown_session_is_one_line(sessions, args):
    res = sessions.cli(*args)
    assert res.returncode == 1
    assert res.stderr.startswith("bpfsession: ") and res.stderr.count("\n") == 1
    assert "Traceback" not in res.stderr


def test_show_json_error_is_json(sessions):
    res = sessions.cli("show", "nosuchsession", "-j")
    assert res.returncode == 1 and "no session" in json.loads(res.stdout)["error"]


def test_descendants_closers_and_odd_comms(sessions, two_maps, sess_tmp):
    """Children holding the maps are listed under the root; a child that closed them is
    not; a comm with spaces and parentheses is read right."""
    odd = sess_tmp / "a) b (c"
    shutil.copy("/bin/sleep", odd)
    script = (f'"{odd}" 300 & '
              'sh -c "exec ${BPF_MAP0}>&- ${BPF_MAP1}>&-; exec sleep 301" & wait')
    s = sessions.tc(two_maps, cmd=("sh", "-c", script))

    def settled():  # both children started; the closer has exec'd sleep without maps
        got = by_pid(discover_list(sessions), s.root)
        pids = {p["pid"] for p in got["processes"]} if got else set()
        kids = _children(s.root)
        if len(kids) != 2 or any(_comm(k) == "sh" for k in kids):
            return None
        return got if pids == {s.root, *kids} - {_closer(kids)} else None

    got = wait_for(settled, what="root and its map-holding child")
    comms = sorted(p["comm"] for p in got["processes"])
    assert comms == ["a) b (c", "sh"]
    for p in got["processes"]:
        assert set(p["maps"].values()) == set(s.map_ids)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _closer(kids: list[int]) -> int | None:
    return next((k for k in kids if _comm(k) == "sleep"), None)


def discover_list(sessions) -> list[dict]:
    return [model.session_json(x) for x in discover.scan(run_dir=sessions.run_dir)]


def test_supervisor_sigkill_keeps_session_prunes_entry(sessions, two_maps):
    name = uniq("kill")
    s = sessions.new(two_maps, name=name)
    entry_file = os.path.join(sessions.run_dir, f"{s.id}.json")
    control = s.entry["control"]
    assert os.path.exists(entry_file) and os.path.exists(control)

    os.kill(s.supervisor, signal.SIGKILL)
    s.launcher.wait(10)
    got = by_pid(sessions.list_json(), s.root)
    # The shell still holds the maps: listed, with id and name from its environment.
    assert got is not None and got["id"] == s.id and got["name"] == name
    assert not got["registered"] and got["supervisor"] is None and got["control"] is None
    assert [m["id"] for m in got["maps"]] == s.map_ids
    assert not os.path.exists(entry_file) and not os.path.exists(control)

    os.kill(s.root, signal.SIGKILL)
    wait_for(lambda: by_pid(sessions.list_json(), s.root) is None, what="the session to go")


def test_garbled_and_stale_registry_entries(sessions, two_maps):
    s = sessions.new(two_maps, name=uniq("ok"))
    rd = sessions.run_dir
    with open(os.path.join(rd, "half.json"), "w") as f:
        f.write('{"id": "deadbeef", "pid": ')
    with open(os.path.join(rd, "list.json"), "w") as f:
        f.write("[1, 2]")
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = {**s.entry, "id": "0badc0de", "supervisor": dead.pid, "pid": dead.pid,
             "control": os.path.join(rd, "0badc0de.ctl")}
    with open(os.path.join(rd, "0badc0de.json"), "w") as f:
        json.dump(stale, f)
    listing = sessions.list_json()
    assert by_pid(listing, s.root)["id"] == s.id
    assert all(x["id"] != "0badc0de" for x in listing)
    assert not os.path.exists(os.path.join(rd, "0badc0de.json"))
    os.unlink(os.path.join(rd, "half.json"))
    os.unlink(os.path.join(rd, "list.json"))


def test_unprivileged_list_skips_what_it_cannot_read(sessions, two_maps):
    """As nobody: root's tc session is invisible (its environ is not ours to read), the
    registered session is listed from the registry; no error either way."""
    tc = sessions.tc(two_maps)
    new = sessions.new(two_maps, name=uniq("reg"))
    res = sessions.cli("list", "-j", user=as_user(NOBODY))
    assert res.returncode == 0, res.stderr
    listing = json.loads(res.stdout)
    assert by_pid(listing, tc.root) is None
    got = by_pid(listing, new.root)
    assert got is not None and got["id"] == new.id
    assert [m["id"] for m in got["maps"]] == new.map_ids


def test_watch_json_lines_until_interrupted(sessions, two_maps):
    s = sessions.tc(two_maps)
    proc = subprocess.Popen([*BPFSESSION, "list", "-j", "--watch", "0.1"],
                            env=sessions.env, stdout=subprocess.PIPE, text=True)
    try:
        docs = [json.loads(proc.stdout.readline()) for _ in range(3)]
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    for doc in docs:
        assert by_pid(doc, s.root) is not None
    for line in rest.splitlines():
        json.loads(line)


def test_watch_rejects_bad_interval(sessions):
    for bad in ("0", "-1", "nan"):
        res = sessions.cli("list", "--watch", bad)  # a usage error, as argparse's: status 2
        assert res.returncode == 2 and res.stderr.startswith("bpfsession: argument --watch")


def test_scan_leaks_no_fds_and_ignores_vanishing(sessions, two_maps):
    s = sessions.tc(two_maps, cmd=("sh", "-c", "while :; do sleep 0.01; done"))
    before = open_fds()
    deadline = time.monotonic() + 1.5
    n = 0
    while time.monotonic() < deadline:  # short-lived sleeps come and go mid-scan
        got = [x for x in discover.scan(run_dir=sessions.run_dir) if x.pid == s.root]
        assert len(got) == 1 and got[0].map_ids == set(s.map_ids)
        n += 1
    assert n > 5 and open_fds() == before


def test_find_rules():
    def mk(sid, name, pid, procs=()):
        return model.Session(
            id=sid, name=name, pid=pid, supervisor=None, uid=0, netns=None, netns_path=None,
            obj=None, command=[], started=None, maps=[],
            processes=[model.SessionProcess(p, pid, "x", [], {}) for p in (pid, *procs)],
            registered=False, control=None, allow_uids=[])

    a, b, c = mk("aaaa0001", "web", 10, (11,)), mk("aaaa0002", "web", 20), mk("tc-30", "tc-30", 30)
    ss = [a, b, c]
    assert discover.find("aaaa0002", ss) is b
    assert discover.find("11", ss) is a and discover.find("tc-30", ss) is c
    with pytest.raises(BpfSessionError, match="2 sessions are named 'web'"):
        discover.find("web", ss)
    with pytest.raises(BpfSessionError, match="process 99 is in no session"):
        discover.find("99", ss)
    b.registered = True  # a killed supervisor's orphan and a new session share the name
    assert discover.find("web", ss) is b


def test_quick_find_agrees_with_the_scan(sessions, two_maps):
    new = sessions.new(two_maps, name=uniq("q"), cmd=("sh", "-c", "sleep 300 & wait"))
    tc = sessions.tc(two_maps, cmd=("sh", "-c", "sleep 300 & wait"))

    def both():  # tc exec holds the maps before it execs; BPF_NUM_MAPS comes with the exec
        found = discover.scan(run_dir=sessions.run_dir)
        return found if {new.id, tc.id} <= {x.id for x in found} else None

    full = wait_for(both, what="both sessions in a scan")
    env = {"BPFSESSION_RUN_DIR": sessions.run_dir}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for spec in (new.id, new.name, tc.id):
            quick = discover.find(spec, quick=True)
            whole = discover.find(spec, full)
            assert (quick.id, quick.pid, quick.maps, quick.netns, quick.control) == \
                (whole.id, whole.pid, whole.maps, whole.netns, whole.control)
            assert [p.pid for p in quick.processes] == [whole.pid]
        child = _children(tc.root)[0]
        with pytest.raises(BpfSessionError, match="no session 'tc-"):
            discover.find(f"tc-{child}", quick=True)  # a descendant is no session's root
        assert discover.find(str(child), quick=True).id == tc.id
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v


def test_netns_unnamed_is_a_path(sessions, two_maps):
    """A session in a netns that has no /run/netns name shows /proc/PID/ns/net."""
    s = sessions.tc(two_maps, cmd=("unshare", "--net", "sleep", "300"))
    # unshare execs sleep in place: same pid, a fresh anonymous netns.
    def moved():
        got = by_pid(sessions.list_json(), s.root)
        return got if got and got["netns"] else None

    got = wait_for(moved, what="the session to enter its netns")
    assert got["netns"] == f"/proc/{s.root}/ns/net" == got["netns_path"]


def test_two_thread_environ_scan_equals_one_thread(sessions, two_maps, monkeypatch):
    """The split read of /proc/*/environ (used above 512 processes on 2+ CPUs) finds what
    the single loop finds; here forced on whatever this machine runs."""
    s = sessions.tc(two_maps)
    wait_for(lambda: s.root in discover._environ_hits("/proc"), what="the tc session")
    monkeypatch.setattr(discover, "_SPLIT_AT", 1)
    monkeypatch.setattr(discover.os, "sched_getaffinity", lambda pid: {0, 1})
    for _ in range(5):
        names = [n for n in os.listdir("/proc") if n.isdigit()]
        single = discover._hits("/proc", names)
        split = discover._environ_hits("/proc")
        assert s.root in single and s.root in split
        assert split[s.root] == single[s.root]
        if set(split) == set(single):  # the machine's sessions did not change in between
            return
    raise AssertionError(f"split {sorted(split)} != single {sorted(single)}")


def test_two_thread_environ_scan_raises_the_workers_error(monkeypatch):
    import threading

    monkeypatch.setattr(discover, "_SPLIT_AT", 1)
    monkeypatch.setattr(discover.os, "sched_getaffinity", lambda pid: {0, 1})

    def failing_in_the_worker(proc, names):
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("worker failed")
        return {}

    monkeypatch.setattr(discover, "_hits", failing_in_the_worker)
    with pytest.raises(RuntimeError, match="worker failed"):
        discover._environ_hits("/proc")
