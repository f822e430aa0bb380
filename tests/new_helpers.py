"""Helpers for the `bpfsession new` tests (fixtures: tests/new_fixtures.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from bpfsession import wire
from tests.helpers import wait_for, wait_for_socket


def send(uds: str, fds: list[int], ids: list[int] | None = None, obj: str = "testobj") -> None:
    """Send real map fds the way iproute2 does (entry ids 0..n-1 unless given)."""
    ids = list(range(len(fds))) if ids is None else ids
    wait_for_socket(uds)
    # Whoever bound it (a test may run the receiver as another user) is meant to get them.
    wire.send_maps(uds, obj, [(wire.MapEntry(id=i), fd) for i, fd in zip(ids, fds, strict=True)],
                   to_uids=[os.stat(uds).st_uid])


def finish(proc: subprocess.Popen, timeout: float = 20) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def entries(run_dir: str) -> list[dict]:
    out = []
    if not os.path.isdir(run_dir):
        return out
    for name in sorted(os.listdir(run_dir)):
        if name.endswith(".json"):
            out.append(json.loads(Path(run_dir, name).read_text()))
    return out


def wait_entry(run_dir: str, timeout: float = 10) -> dict:
    """The one registry entry of a session that has started its command."""
    return wait_for(lambda: (e := running(run_dir)) and e[0], timeout,
                    what="a registry entry")


def waiting_entry(run_dir: str) -> dict | None:
    """The registry entry of a receiver still waiting for its maps, if there is one."""
    return next((e for e in entries(run_dir) if e.get("state") == "waiting"), None)


def running(run_dir: str) -> list[dict]:
    """The entries of sessions whose command runs (not receivers still waiting)."""
    return [e for e in entries(run_dir) if e.get("state") != "waiting"]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


def proc_status(pid: int | str) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` from /proc/PID/task/*/children."""
    kids: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        kids += [int(x) for x in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return kids


def live_fds() -> set[int]:
    """Our open fds, without the one os.listdir itself holds while reading /proc/self/fd
    (tests.helpers.open_fds includes it: its number moves when lower fds are closed)."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            continue
        out.add(int(fd))
    return out


def stop(proc: subprocess.Popen) -> None:
    """End a launcher and everything below it (the command has its own process group)."""
    if proc.poll() is None:
        from bpfsession.init import descendants

        for pid in [proc.pid, *descendants(proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    proc.communicate(timeout=10)
