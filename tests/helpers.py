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
    return f"{prefix}{os.getpid() % 100000}x{next(_counter)}"


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
    return {int(n) for n in os.listdir(f"/proc/{pid}/fd")}


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
