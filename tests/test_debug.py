"""`bpfsession debug`: bpf_printk lines of a real tc program, on the host and in a --netns
session, from a private trace instance that takes no line from other readers."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from bpfsession import debug, tracefs
from bpfsession.kernel import fsmount
from tests.conftest import attach_tc, compile_bpf
from tests.helpers import BPFSESSION, ROOT, uniq, wait_for
from tests.sessions_helpers import as_user

pytest_plugins = ["tests.sessions_fixtures"]

ETH_IP_UDP = 14 + 20 + 8  # what skb->len adds to a UDP payload on a veth
KEYS = {"task", "pid", "cpu", "flags", "timestamp", "message"}


def instances(*pids: int) -> list[str]:
    """bpfsession's trace instances (of readers `pids` only, if given), seen through a
    tracefs mount of our own."""
    root = fsmount.detached_mount("tracefs")
    try:
        fd = os.open("instances", os.O_RDONLY | os.O_DIRECTORY, dir_fd=root)
        try:
            names = [n for n in os.listdir(fd) if n.startswith(tracefs.PREFIX)]
        finally:
            os.close(fd)
    finally:
        os.close(root)
    if pids:
        names = [n for n in names if int(n[len(tracefs.PREFIX):].partition("-")[0]) in pids]
    return names


@pytest.fixture
def printk_prog(veth, bpf_build_dir):
    """tests/bpf/printk.bpf.c on ingress of the veth's netns end: one line per packet,
    with a token of this test's (prog.token) in it."""
    from bpfsession.kernel import bpf

    prog = attach_tc(veth, compile_bpf(ROOT / "tests" / "bpf" / "printk.bpf.c",
                                       bpf_build_dir))
    prog.token = int.from_bytes(os.urandom(4), "little")
    fd = bpf.map_get_fd_by_id(prog.map_ids["printk_token"])
    try:
        bpf.map_update_elem(fd, bytes(4), prog.token.to_bytes(4, "little"))
    finally:
        os.close(fd)
    return prog


def line_of(prog, length: int) -> str:
    """The message of a packet of skb->len `length` through `prog`."""
    return f"bpfsession-printk token={prog.token} len={length}"


class Reader:
    """Lines of a running `debug` (from its stdout or a file it writes), on a queue."""

    def __init__(self, source):
        self.lines: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._pump, args=(source,), daemon=True)
        self.thread.start()

    def _pump(self, source) -> None:
        for line in source:
            self.lines.put(line)

    def wait_line(self, text: str, timeout: float) -> str:
        """The first line that holds `text`, within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if text in line:
                return line
        raise AssertionError(f"no trace line {text!r} within {timeout} s")


def send_udp(addr: str, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(payload, (addr, 9))


def follow(path: Path):
    """The lines of a file another process writes, as they come."""
    with open(path) as f:
        while True:
            line = f.readline()
            if line.endswith("\n"):
                yield line
            else:
                time.sleep(0.01)
                f.seek(f.tell())


def warm_up(prog, readers: list[Reader], payload: int = 100) -> None:
    """Send until every reader has seen a line: the instance is set up and reading."""
    for r in readers:
        def seen(r=r) -> bool:
            send_udp(prog.veth.ns_ip, b"w" * payload)
            try:
                r.wait_line(line_of(prog, payload + ETH_IP_UDP), 0.2)
            except AssertionError:
                return False
            return True
        wait_for(seen, timeout=30, what="debug to come up")


def marker_within_a_second(prog, readers: list[Reader]) -> list[str]:
    size = 200 + os.getpid() % 500
    send_udp(prog.veth.ns_ip, b"m" * size)
    return [r.wait_line(line_of(prog, size + ETH_IP_UDP), 1.0) for r in readers]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*BPFSESSION, "debug", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def reading(proc: subprocess.Popen) -> None:
    """Wait until `proc` has its trace instance (its signal handlers are set by then)."""
    mine = f"{tracefs.PREFIX}{proc.pid}-"
    wait_for(lambda: any(n.startswith(mine) for n in instances(proc.pid)),
             what="debug to create its trace instance")


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    reading(proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    return proc.returncode, err


def test_two_readers_on_the_host_each_get_every_line(printk_prog):
    mounts = tracefs.mount_points()
    procs = [start("-j"), start()]
    try:
        readers = [Reader(p.stdout) for p in procs]
        warm_up(printk_prog, readers)
        as_json, as_text = marker_within_a_second(printk_prog, readers)
    finally:
        results = [stop(p) for p in procs]
    assert results == [(0, ""), (0, "")]  # Ctrl-C: a clean end, no traceback
    record = json.loads(as_json)
    assert set(record) == KEYS
    assert record["message"].startswith(f"bpfsession-printk token={printk_prog.token} len=")
    assert isinstance(record["pid"], int) and isinstance(record["cpu"], int)
    assert isinstance(record["timestamp"], float) and record["task"]
    assert f"bpf_trace_printk: {record['message']}" in as_text
    assert f"[{record['cpu']:03d}]" in as_text
    assert instances(*(p.pid for p in procs)) == []  # each removed its instance
    assert tracefs.mount_points() == mounts  # and mounted nothing anywhere


def test_tc_exec_bpf_debug_beside_us_gets_every_line_too(printk_prog):
    """iproute2's own reader of the global trace_pipe (in a mount namespace of its own,
    with tracefs mounted there: it needs a mounted tracefs; it copies the pipe to its
    stderr) and ours, at once."""
    tc = subprocess.Popen(["unshare", "-m", "sh", "-c", "mount --make-rprivate / && "
                           "mount -t tracefs nodev /sys/kernel/tracing && "
                           "exec tc exec bpf debug"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ours = start("-j")
    try:
        readers = [Reader(tc.stderr), Reader(ours.stdout)]
        warm_up(printk_prog, readers)
        theirs, mine = marker_within_a_second(printk_prog, readers)
    finally:
        tc.send_signal(signal.SIGINT)
        tc.wait(10)
        tc.stderr.close()
        code, err = stop(ours)
    assert (code, err) == (0, "")
    assert json.loads(mine)["message"] in theirs


def test_uses_a_mounted_tracefs(printk_prog):
    """Where tracefs is mounted (here in a mount namespace of the test's own), debug takes
    that mount (open_root's first branch): the lines come, its instance is under the mount
    point, and the namespace's mount table is as the test left it."""
    script = ("mount --make-rprivate / && mount -t tracefs nodev /sys/kernel/tracing && "
              f"exec {' '.join(BPFSESSION)} debug -j")
    proc = subprocess.Popen(["unshare", "-m", "sh", "-c", script], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        reader = Reader(proc.stdout)
        warm_up(printk_prog, [reader])
        marker_within_a_second(printk_prog, [reader])
        seen = os.listdir(f"/proc/{proc.pid}/root/sys/kernel/tracing/instances")
        assert any(n.startswith(f"{tracefs.PREFIX}{proc.pid}-") for n in seen)
        assert tracefs.mount_points(f"/proc/{proc.pid}/mountinfo") == ["/sys/kernel/tracing"]
    finally:
        code, err = stop(proc)
    assert (code, err) == (0, "")


def test_inside_a_netns_session(printk_prog, veth, sessions, make_map, sess_tmp):
    out = sess_tmp / "trace.jsonl"
    python = " ".join(BPFSESSION)
    s = sessions.new([make_map()], netns=veth.netns,
                     cmd=("sh", "-c", f"exec {python} debug -j > {out} 2>&1"))
    wait_for(out.exists, what="the session's debug to start")
    reader = Reader(follow(out))
    warm_up(printk_prog, [reader])
    line, = marker_within_a_second(printk_prog, [reader])
    assert set(json.loads(line)) == KEYS
    # Inside, /sys is the netns's own: tracefs came from a private mount, not a path.
    assert tracefs.mount_points(f"/proc/{s.root}/mountinfo") == []
    sessions.close()
    wait_for(lambda: instances(s.root) == [], what="the session's debug to remove its instance")


def test_session_argument_says_what_it_cannot_filter(printk_prog, sessions):
    from bpfsession.kernel import bpf

    rodata = bpf.map_get_fd_by_id(printk_prog.map_ids["printk.rodata"])
    try:
        s = sessions.new([rodata], name=uniq("dbg"))
    finally:
        os.close(rodata)
    proc = subprocess.Popen([*BPFSESSION, "debug", s.name], cwd=ROOT, env=sessions.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
    finally:
        code, rest = stop(proc)
    assert first.startswith("bpfsession: warning: trace lines do not say which program")
    assert f"session {s.name}'s programs: printk_len (id {printk_prog.prog_id})" in first
    assert (code, rest) == (0, "")
    assert instances(proc.pid) == []


def test_unknown_session_is_one_line(sessions):
    res = sessions.cli("debug", uniq("nosuch"))
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("bpfsession: no session") and res.stderr.count("\n") == 1


def test_unprivileged_user_is_told_in_one_line():
    res = subprocess.run([*as_user(65534), *BPFSESSION, "debug"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("bpfsession: reading the trace pipe needs root")
    assert res.stderr.count("\n") == 1


def test_stale_instances_of_dead_readers_are_pruned():
    root = fsmount.detached_mount("tracefs")
    try:
        dead = _dead_pid()
        os.mkdir(f"instances/{tracefs.PREFIX}{dead}-000000", dir_fd=root)
        assert f"{tracefs.PREFIX}{dead}-000000" in tracefs.prune(root)
    finally:
        os.close(root)
    assert instances(dead) == []


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("line, want", [
    ("          python-9228    [000] ..s2.  1131.702045: bpf_trace_printk: hello 42",
     {"task": "python", "pid": 9228, "cpu": 0, "flags": "..s2.", "timestamp": 1131.702045,
      "message": "hello 42"}),
    ("  kworker/u8:0-events-7467 [001] b..1. 5.5: bpf_trace_printk: a: b-1 [002]",
     {"task": "kworker/u8:0-events", "pid": 7467, "cpu": 1, "flags": "b..1.",
      "timestamp": 5.5, "message": "a: b-1 [002]"}),
    ("           <...>-12      [001] 99.000001: bpf_trace_printk: no irq-info",
     {"task": "<...>", "pid": 12, "cpu": 1, "flags": None, "timestamp": 99.000001,
      "message": "no irq-info"}),
    ("CPU:1 [LOST 12 EVENTS]", {"cpu": 1, "lost": 12}),
    ("something else", {"message": "something else"}),
])
def test_parse(line, want):
    assert debug.parse(line) == want


def test_text_output_escapes_controls():
    raw = b"  sh-1 [000] .... 1.000001: bpf_trace_printk: \x1b[2J\xff"
    assert debug.render(raw, False) == "  sh-1 [000] .... 1.000001: bpf_trace_printk: " \
                                       "\\x1b[2J\\xff\n"
    assert json.loads(debug.render(raw, True))["message"] == "\x1b[2J\\xff"


def test_tui_trace_view_shows_the_lines_and_removes_its_instance(printk_prog, veth):
    import asyncio

    from tui.app import BpfSessionApp
    from tui.source import FixedSource
    from tui.trace import TraceScreen

    async def drive() -> tuple[list[str], str]:
        app = BpfSessionApp(FixedSource([]), interval=None)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("t")
            screen = app.screen
            assert isinstance(screen, TraceScreen)
            size = 300 + os.getpid() % 300
            want = line_of(printk_prog, size + ETH_IP_UDP)
            deadline = time.monotonic() + 30
            while not any(want in line for line in screen.shown):
                assert time.monotonic() < deadline, "no trace line in the TUI"
                if "starting" not in screen.sub_title:
                    send_udp(veth.ns_ip, b"t" * size)
                await pilot.pause(0.1)
            mine = instances(os.getpid())
            await pilot.press("escape")
            assert not isinstance(app.screen, TraceScreen)
            return [*screen.shown], mine

    shown, mine = asyncio.run(drive())
    assert len(mine) == 1  # the worker's instance, named after this process
    assert all("\x1b" not in line for line in shown)
    wait_for(lambda: instances(os.getpid()) == [], what="the trace view's instance to go")
