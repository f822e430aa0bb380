"""Helpers for the live-session tests (fixtures: tests/sessions_fixtures.py).

Sessions starts real sessions side by side: iproute2's own `tc exec bpf imp UDS run CMD`
(found from /proc alone) and `bpfsession new` (registered under a private
BPFSESSION_RUN_DIR), optionally in a netns or as another user, and feeds them real maps.
Teardown ends every process of every session (supervisor first, then the command's
process group, which a SIGKILLed supervisor leaves behind), removes the socket files and
checks that the registry directory holds no leftovers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bpfsession import wire
from bpfsession.kernel import bpf
from tests.helpers import BPFSESSION, ROOT, map_ids_of, uniq, wait_for, wait_for_socket

NOBODY = 65534


def as_user(uid: int, euid: int | None = None) -> list[str]:
    """A setpriv prefix: run as `uid` (real uid and gid), `euid` (effective uid and gid,
    default the same; the fs ids follow the effective ones)."""
    euid = uid if euid is None else euid
    return ["setpriv", f"--ruid={uid}", f"--euid={euid}", f"--rgid={uid}", f"--egid={euid}",
            "--clear-groups", "--"]


@dataclass
class Started:
    kind: str  # "tc" or "new"
    launcher: subprocess.Popen
    uds: str
    map_ids: list[int]  # kernel ids, in the order sent (entry ids 0, 1, ...)
    netns: str | None
    entry: dict = field(default_factory=dict)  # the registry entry (`new` only)

    @property
    def root(self) -> int:
        """The session's root process: tc execs the command; new forks it."""
        return self.entry["pid"] if self.kind == "new" else self.launcher.pid

    @property
    def supervisor(self) -> int | None:
        return self.launcher.pid if self.kind == "new" else None

    @property
    def name(self) -> str:
        return self.entry["name"] if self.kind == "new" else self.id

    @property
    def id(self) -> str:
        return self.entry["id"] if self.kind == "new" else f"tc-{self.launcher.pid}"


def kernel_id(fd: int) -> int:
    return bpf.map_info(fd).id


class Sessions:
    """Factory of live sessions; close() ends them all."""

    def __init__(self, tmp: Path, run_dir: str):
        self.tmp = tmp
        self.run_dir = run_dir
        self.started: list[Started] = []
        self.env = {**os.environ, "BPFSESSION_RUN_DIR": run_dir}

    def _uds(self) -> str:
        return str(self.tmp / uniq("u"))

    def tc(self, maps: list[int], cmd: tuple[str, ...] = ("sleep", "300"),
           netns: str | None = None, user: list[str] | None = None) -> Started:
        uds = self._uds()
        argv = ["tc", "exec", "bpf", "imp", uds, "run", *cmd]
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        proc = subprocess.Popen([*(user or []), *argv], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        s = Started("tc", proc, uds, [kernel_id(fd) for fd in maps], netns)
        self.started.append(s)
        self._feed(s, maps, "")
        return s

    def new(self, maps: list[int], cmd: tuple[str, ...] = ("sleep", "300"),
            netns: str | None = None, name: str | None = None, obj: str = "sessobj",
            flags: tuple[str, ...] = ()) -> Started:
        uds = self._uds()
        argv = [*BPFSESSION, "new", *flags]
        if name:
            argv += ["--name", name]
        if netns:
            argv += ["--netns", netns]
        proc = subprocess.Popen([*argv, "imp", uds, "run", *cmd], env=self.env, cwd=ROOT,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        s = Started("new", proc, uds, [kernel_id(fd) for fd in maps], netns)
        self.started.append(s)
        self._feed(s, maps, obj)
        s.entry = wait_for(lambda: self._entry_of(proc.pid), what="a registry entry")
        wait_for(lambda: set(map_ids_of(s.root).values()) == set(s.map_ids),
                 what="the session's command to hold the maps")
        return s

    def adopt(self, launcher: subprocess.Popen, uds: str, maps: list[int]) -> Started:
        """A `bpfsession new` the caller started and fed itself: wait for its entry."""
        s = Started("new", launcher, uds, [kernel_id(fd) for fd in maps], None)
        self.started.append(s)
        s.entry = wait_for(lambda: self._entry_of(launcher.pid), timeout=30,
                           what="a registry entry")
        return s

    def _feed(self, s: Started, maps: list[int], obj: str) -> None:
        try:
            wait_for_socket(s.uds)
        except AssertionError:
            s.launcher.kill()
            raise AssertionError(f"no receiver came up: {s.launcher.communicate()[1]}") \
                from None
        # the receiver may run as another user (`user=`): this test started it, trust it
        wire.send_maps(s.uds, obj, [(wire.MapEntry(id=i), fd) for i, fd in enumerate(maps)],
                       to_uids=[os.stat(s.uds).st_uid])
        if s.kind == "tc":
            wait_for(lambda: set(map_ids_of(s.root).values()) == set(s.map_ids),
                     what="the session's command to hold the maps")

    def _entry_of(self, supervisor: int) -> dict | None:
        for name in os.listdir(self.run_dir):
            if name.endswith(".json"):
                try:
                    entry = json.loads(Path(self.run_dir, name).read_text())
                except (OSError, ValueError):
                    continue
                if entry.get("supervisor") == supervisor and entry.get("state") != "waiting":
                    return entry
        return None

    def cli(self, *args: str, user: list[str] | None = None, timeout: float = 30,
            **kw) -> subprocess.CompletedProcess:
        """The real CLI with this run dir, optionally under a setpriv prefix."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run([*(user or []), *BPFSESSION, *args], env=self.env, cwd=ROOT,
                              timeout=timeout, **kw)

    def list_json(self, **kw) -> list[dict]:
        res = self.cli("list", "-j", **kw)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    def close(self) -> None:
        for s in self.started:
            if s.launcher.poll() is None:
                s.launcher.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for s in self.started:
            try:
                s.launcher.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(s.launcher.pid, signal.SIGKILL)
                s.launcher.wait(5)
            # A SIGKILLed supervisor leaves its command's process group behind.
            if s.entry.get("pid"):
                _killpg(s.entry["pid"])
            _killpg(s.launcher.pid)
            if s.launcher.stderr:
                s.launcher.stderr.close()


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def by_pid(listing: list[dict], pid: int) -> dict | None:
    return next((s for s in listing if s["pid"] == pid), None)
