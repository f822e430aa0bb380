"""The supervisor: signal forwarding, reaping, the control socket, the registry helpers."""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from bpfsession import registry
from bpfsession.errors import BpfSessionError
from bpfsession.kernel import bpf
from bpfsession.kernel import proc as procfs
from tests.helpers import wait_for
from tests.new_helpers import children_of, finish, gone, send, wait_entry

pytest_plugins = ["tests.new_fixtures"]

FORWARDED = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH]


def trapping(sig: signal.Signals, ready: Path) -> list[str]:
    """A command that exits 40+N when it gets `sig`, once `ready` exists."""
    name = sig.name.removeprefix("SIG")
    return ["sh", "-c", f"trap 'exit {40 + sig}' {name}; touch {ready}; "
                        "while :; do sleep 0.05; done"]


@pytest.mark.parametrize("sig", FORWARDED, ids=lambda s: s.name)
def test_signals_are_forwarded_to_the_command(sig, launch, make_map, uds, short_tmp):
    ready = short_tmp / "ready"
    proc = launch("imp", uds, "run", *trapping(sig, ready))
    send(uds, [make_map()])
    wait_for(ready.exists, what="trap set")
    os.kill(proc.pid, sig)
    assert finish(proc)[0] == 40 + sig


def test_orphans_are_reaped_by_the_subreaper(launch, make_map, uds, run_dir):
    # Twenty grandchildren are orphaned at once; each exits soon after: no zombie stays.
    proc = launch("imp", uds, "run", "sh", "-c",
                  "for i in $(seq 20); do sh -c 'sleep 0.2 &'; done; sleep 30")
    send(uds, [make_map()])
    entry = wait_entry(run_dir)
    wait_for(lambda: len(children_of(proc.pid)) >= 2, what="orphans re-parented")
    # Each orphan exits after 0.2 s; unreaped, it would stay our zombie child for good.
    wait_for(lambda: children_of(proc.pid) == [entry["pid"]], what="orphans reaped")
    os.kill(proc.pid, signal.SIGTERM)  # forwarded to the command's group: sh and its sleep
    assert finish(proc)[0] == 143


def test_lingering_grandchild_does_not_hold_the_exit(launch, make_map, uds):
    proc = launch("imp", uds, "run", "sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!; exit 6")
    send(uds, [make_map()])
    start = time.monotonic()
    status, out, _ = finish(proc)
    assert status == 6 and time.monotonic() - start < 5
    lingering = int(out)
    assert not gone(lingering)  # without --init it is left alone (it holds the maps)
    os.kill(lingering, signal.SIGKILL)


def test_init_ends_lingering_descendants_after_the_grace(launch, make_map, uds, short_tmp):
    ready = short_tmp / "ready"  # the stubborn one ignores SIGTERM before the command exits
    proc = launch("--init", "imp", uds, "run", "sh", "-c",
                  f"sleep 30 & echo $!; (trap '' TERM; touch {ready}; exec sleep 31) & "
                  f"echo $!; while [ ! -e {ready} ]; do sleep 0.01; done; exit 6",
                  env={"BPFSESSION_GRACE": "0.5"})
    send(uds, [make_map()])
    start = time.monotonic()
    status, out, _ = finish(proc)
    took = time.monotonic() - start
    polite, stubborn = (int(x) for x in out.split())
    assert status == 6
    assert 0.5 <= took < 5  # the stubborn one needed its SIGKILL
    assert gone(polite) and gone(stubborn)


def _request(path: str, request: bytes) -> tuple[list[bytes], list[int]]:
    """One raw exchange on a control socket: every message until the hang-up, and fds."""
    payloads, fds = [], []
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.connect(path)
        s.settimeout(5)
        s.send(request)
        while True:
            data, anc, _, _ = s.recvmsg(1 << 20, socket.CMSG_SPACE(253 * 4))
            if not data:
                return payloads, fds
            payloads.append(data)
            for level, kind, cdata in anc:
                if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                    fds.extend(array.array("i", cdata[: len(cdata) - len(cdata) % 4]))


def test_control_socket_hands_out_the_maps(launch, make_map, uds, run_dir):
    maps = [make_map("array", 4, 8, 1) for _ in range(300)]  # two fd messages
    ids = list(range(100, 400))
    proc = launch("imp", uds, "run", "sleep", "30")
    send(uds, maps, ids=ids, obj="ctlobj")
    entry = wait_entry(run_dir)
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    slow.connect(entry["control"])  # never asks: must not hold up the next client
    payloads, fds = _request(entry["control"], b'{"v": 1, "op": "attach"}')
    try:
        assert payloads[1:] == [b"F", b"F"]
        reply = json.loads(payloads[0])
        assert (reply["v"], reply["ok"], reply["obj"]) == (1, True, "ctlobj")
        got = reply["maps"]
        assert [m["id"] for m in got] == ids
        assert all((m["type"], m["size_key"], m["size_value"], m["max_elem"]) == (2, 4, 8, 1)
                   for m in got)
        assert [bpf.map_info(fd).id for fd in fds] == [bpf.map_info(fd).id for fd in maps]
    finally:
        for fd in fds:
            os.close(fd)
        slow.close()
    for bad, error in ((b'{"v": 2, "op": "attach"}', "request version 2 not understood"),
                       (b'{"v": 1, "op": "steal"}', "unknown request 'steal'"),
                       (b"[[[", "not a request")):
        payloads, fds = _request(entry["control"], bad)
        assert fds == [] and len(payloads) == 1
        reply = json.loads(payloads[0])
        assert reply["ok"] is False and reply["error"].startswith(error), reply
    os.kill(entry["pid"], signal.SIGTERM)
    assert finish(proc)[0] == 143
    assert not os.path.exists(entry["control"])


def test_control_socket_refuses_other_uids(launch, make_map, uds, run_dir):
    os.chmod(run_dir, 0o755)
    proc = launch("imp", uds, "run", "sleep", "30")
    send(uds, [make_map()])
    entry = wait_entry(run_dir)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(65534)
            os.setuid(65534)
            payloads, fds = _request(entry["control"], b'{"v": 1, "op": "attach"}')
            os.write(w, json.dumps([payloads[0].decode(), len(payloads), fds]).encode())
            os._exit(0)
        except BaseException as err:
            os.write(w, repr(err).encode())
            os._exit(1)
    os.close(w)
    answer = os.read(r, 4096).decode()
    os.close(r)
    assert os.waitpid(pid, 0)[1] == 0, answer
    reply, messages, fds = json.loads(answer)
    assert (messages, fds) == (1, [])
    assert json.loads(reply) == {"v": 1, "ok": False, "error": "uid 65534 may not attach: "
                                 "not root, the session's owner or an --allow-uid"}
    os.kill(entry["pid"], signal.SIGTERM)
    assert finish(proc)[0] == 143


def test_killed_supervisor_leaves_a_stale_entry_that_prune_removes(launch, make_map, uds,
                                                                   run_dir):
    proc = launch("imp", uds, "run", "sleep", "30")
    send(uds, [make_map()])
    entry = wait_entry(run_dir)
    assert [e["id"] for e in registry.live(run_dir)] == [entry["id"]]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_for(lambda: not registry.alive(entry), what="supervisor gone")
    assert registry.prune(run_dir) == [entry["id"]]
    assert os.listdir(run_dir) == []
    os.kill(entry["pid"], signal.SIGKILL)


def _entry(sid: str, name: str, supervisor: int, start: int | None, second: int) -> dict:
    return {"id": sid, "name": name, "pid": supervisor, "supervisor": supervisor,
            "supervisor_start": start, "uid": os.getuid(), "obj": "o", "command": ["sh"],
            "started": f"2026-01-01T00:00:0{second}+00:00", "maps": []}


def test_registry_write_read_prune(tmp_path):
    d = str(tmp_path)
    old = os.umask(0o077)
    try:
        registry.write(d, _entry("aaaa0001", "me", os.getpid(),
                                 procfs.start_time(os.getpid()), 0))
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "aaaa0001.json").st_mode & 0o777 == 0o644
    registry.write(d, {**_entry("bbbb0002", "dead", 2 ** 22 + 1, None, 1),
                       "control": registry.control_path(d, "bbbb0002")})
    (tmp_path / "bbbb0002.ctl").touch()
    registry.write(d, _entry("cccc0003", "reused", os.getpid(), 1, 2))
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "half.json.123.tmp").write_text("{}")
    assert [e["id"] for e in registry.read_all(d)] == ["aaaa0001", "bbbb0002", "cccc0003"]
    assert sorted(registry.prune(d)) == ["bbbb0002", "cccc0003"]
    assert sorted(os.listdir(d)) == ["aaaa0001.json", "half.json.123.tmp", "junk.json"]
    assert json.loads((tmp_path / "aaaa0001.json").read_text())["name"] == "me"


def test_name_claims(tmp_path):
    d = str(tmp_path)
    me = registry.claim(d, None, "me", os.getpid())
    assert me.name == "me" and registry.claim(d, None, "me", os.getpid()).name == "me-2"
    with pytest.raises(BpfSessionError, match="already named 'me'"):
        registry.claim(d, "me", "me", os.getpid())
    dead = subprocess.Popen(["true"])
    dead.wait()
    registry.claim(d, "gone", "gone", dead.pid)  # its claimant exits: the claim is stale
    assert registry.claim(d, "gone", "gone", os.getpid()).name == "gone"
    me.release()
    assert registry.claim(d, "me", "me", os.getpid()).name == "me"


def test_control_socket_path_too_long_warns_and_registers(launch, make_map, uds, short_tmp):
    deep = str(short_tmp / ("d" * 100))
    proc = launch("imp", uds, "run", "sleep", "30", env={"BPFSESSION_RUN_DIR": deep})
    send(uds, [make_map()])
    entry = wait_entry(deep)
    assert entry["control"] is None and entry["supervisor"] == proc.pid
    os.kill(proc.pid, signal.SIGTERM)
    status, _, err = finish(proc)
    assert status == 143
    assert err.startswith(f"bpfsession: warning: cannot create the control socket {deep}/")
    assert err.endswith("; `bpfsession attach` will have to use pidfd_getfd\n")
    assert os.listdir(deep) == []
