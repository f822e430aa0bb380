"""Fixtures for the TUI tests; load with `pytest_plugins = ["tests.tui_fixtures"]`.

`tc_session` starts iproute2's own receiver, `tc exec bpf imp UDS run sh -c 'exec sleep
60'`, optionally inside a netns, and feeds it real maps through bpfsession.wire.send_maps:
a session exactly as a user of plain iproute2 would have one. Every process is killed and
reaped at teardown, the socket files go with short_tmp.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import pytest

from bpfsession import wire
from tests.helpers import map_ids_of, tc_exec_receiver, uniq, wait_for


@dataclass
class TcSession:
    proc: subprocess.Popen
    map_ids: dict[str, int]  # kernel map name -> id, in the order sent (BPF_MAP0, 1, ...)
    netns: str | None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def id(self) -> str:
        return f"tc-{self.proc.pid}"  # discovery's id for a session without a registry entry


def kernel_map_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("map_id:"):
                return int(line.split()[1])
    raise AssertionError(f"fd {fd} is no map")


@pytest.fixture
def tc_session(short_tmp):
    """Factory: tc_session({name: fd, ...}, netns=None) -> a live TcSession."""
    procs: list[subprocess.Popen] = []

    def start(maps: dict[str, int], netns: str | None = None,
              script: str = "exec sleep 60") -> TcSession:
        uds = str(short_tmp / uniq("u"))
        proc = tc_exec_receiver(uds, script, netns)
        procs.append(proc)
        wire.send_maps(uds, "tuiobj", [(wire.MapEntry(id=i), fd)
                                       for i, fd in enumerate(maps.values())])
        ids = {name: kernel_map_id(fd) for name, fd in maps.items()}
        wait_for(lambda: set(map_ids_of(proc.pid).values()) == set(ids.values()),
                 what="the receiver's command to hold the maps")
        return TcSession(proc, ids, netns)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


@pytest.fixture
def new_session(launch, run_dir, uds):
    """Factory: new_session(fds, name) -> (Popen, registry entry) of a live
    `bpfsession new --name NAME imp UDS run sleep 60`, ended with SIGTERM at teardown.

    SIGTERM to the supervisor ends its command too (it forwards the signal); the `launch`
    fixture's SIGKILL alone would leave the command running, holding the output pipes.
    """
    from tests.new_helpers import send, wait_entry

    started: list[subprocess.Popen] = []

    def start(fds: list[int], name: str, obj: str = "newobj"):
        proc = launch("--name", name, "imp", uds, "run", "sleep", "60")
        started.append(proc)
        send(uds, fds, obj=obj)
        return proc, wait_entry(run_dir)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
