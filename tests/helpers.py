"""Plain helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BPFSESSION = [sys.executable, "-m", "bpfsession"]
_counter = itertools.count()


def uniq(prefix: str = "bs") -> str:
    """A short unique name (fits IFNAMSIZ and BPF_OBJ_NAME_LEN): prefix + pid + counter."""
    # Four digits of the pid: a 6-letter prefix and a 4-digit counter still fit the
    # kernel's 15-character object names (a longer name is cut, and then not found by it).
    return f"{prefix}{os.getpid() % 10000}x{next(_counter)}"


def run(cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    res = subprocess.run(cmd, **kw)
    if check and res.returncode != 0:
        raise AssertionError(f"{cmd} failed ({res.returncode}): {res.stderr}{res.stdout}")
    return res


def bpfsession(*args: str, check: bool = False, **kw) -> subprocess.CompletedProcess:
    """Run the real CLI in a child process."""
    return run([*BPFSESSION, *args], check=check, **kw)


def open_fds(pid: int | str = "self") -> set[int]:
    """The process's open fds, without the one listdir itself held while reading them."""
    base = f"/proc/{pid}/fd"
    fds = set()
    for n in os.listdir(base):
        try:
            os.readlink(f"{base}/{n}")
        except OSError:
            continue  # closed meanwhile: listdir's own fd, or a vanished one
        fds.add(int(n))
    return fds


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_socket(path: str | os.PathLike, timeout: float = 10.0) -> None:
    """Wait until a receiver is bound at `path` (a connect succeeds)."""

    def bound() -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            try:
                s.connect(str(path))
            except OSError:
                return False
            return True

    wait_for(bound, timeout, what=f"a receiver on {path}")


def fdinfo(pid: int | str, fd: int) -> dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key.strip()] = value.strip()
    return out


def map_ids_of(pid: int | str) -> dict[int, int]:
    """fd -> kernel map id for every BPF map fd the process holds."""
    ids = {}
    for fd in open_fds(pid):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:bpf-map":
                ids[fd] = int(fdinfo(pid, fd)["map_id"])
        except (OSError, KeyError):
            continue
    return ids


def send_udp(addr: str, count: int = 5, port: int = 9) -> None:
    """A few UDP datagrams towards a test host (a veth peer inside a test netns)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(count):
            s.sendto(b"bpfsession-test", (addr, port))


# A child script that prints "BPF_MAP<id> <kernel map id>" for each map it was handed, plus
# BPF_NUM_MAPS and BPF_OBJ: what any receiver's command sees, read from its own fdinfo.
SHOW_MAPS = (
    'echo "NUM $BPF_NUM_MAPS"; echo "OBJ ${BPF_OBJ:-}"; '
    'for v in $(env | grep "^BPF_MAP[0-9]*=" | sort); do n=${v%%=*}; fd=${v#*=}; '
    'echo "$n $(grep ^map_id: /proc/self/fdinfo/$fd | cut -f2)"; done'
)


def parse_show_maps(out: str) -> tuple[int, dict[str, int]]:
    """(BPF_NUM_MAPS, {"BPF_MAP0": kernel id, ...}) from SHOW_MAPS output."""
    num, ids = -1, {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        if key == "NUM":
            num = int(value)
        elif key.startswith("BPF_MAP"):
            ids[key] = int(value)
    return num, ids


def tc_exec_receiver(uds: str, script: str = SHOW_MAPS, netns: str | None = None):
    """Start iproute2's real receiver, `tc exec bpf imp UDS run sh -c SCRIPT`, bound."""
    cmd = ["tc", "exec", "bpf", "imp", uds, "run", "sh", "-c", script]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_socket(uds)
    except AssertionError:
        proc.kill()
        proc.communicate()
        raise
    return proc


NOBODY = 65534


def send_as_nobody(uds: str, obj: str, fd: int) -> int:
    """Send one map from a forked child running as uid/gid 65534; the child's pid.

    The receiver's socket is 0600 and its directory private: the caller opens both up
    first, so that the datagram arrives at all and the receiver has to refuse it.
    """
    from bpfsession import wire

    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        status = 1
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            wire.send_maps(uds, obj, [(wire.MapEntry(id=0), fd)])
            status = 0
        finally:
            os._exit(status)
    assert os.waitpid(pid, 0)[1] == 0, "the uid-65534 sender could not send"
    return pid


def in_foreground(pid: int) -> bool:
    """Whether `pid` leads its terminal's foreground process group (stat: pgrp == tpgid),
    what a Ctrl-C must find before it is sent: a shell hands over the terminal only some
    time after it echoed the job's command line."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return False
    # fields[0] is state (field 3): pgrp is field 5, tpgid field 8.
    return int(fields[2]) == int(fields[5]) and fields[0] != b"T"


def foreground_child(sid: int, comm: str) -> int | None:
    """The pid of a process named `comm` in session `sid` that holds the foreground."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        head, _, tail = data.rpartition(b")")
        fields = tail.split()
        if head.partition(b"(")[2] == comm.encode() and int(fields[3]) == sid \
                and in_foreground(int(name)):
            return int(name)
    return None
