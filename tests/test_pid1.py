"""bpfsession as PID 1 of a new pid namespace (`unshare --pid --fork --mount-proc`), the
container entrypoint case: the duties tini's own tests check, with real maps sent in."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.helpers import BPFSESSION, wait_for
from tests.new_helpers import children_of, finish, send, stop

pytest_plugins = ["tests.new_fixtures"]

UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]


@pytest.fixture
def as_pid1(run_dir):
    """Start `unshare ... bpfsession new ARGS`: a Popen whose pid is unshare's."""
    procs = []

    def start(*args: str, env: dict | None = None) -> subprocess.Popen:
        full_env = {**os.environ, "BPFSESSION_RUN_DIR": run_dir, **(env or {})}
        proc = subprocess.Popen([*UNSHARE, *BPFSESSION, "new", *args], env=full_env, text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        stop(proc)


def init_pid(proc) -> int:
    """The host pid of the namespace's PID 1 (unshare's only child)."""
    return wait_for(lambda: children_of(proc.pid) and children_of(proc.pid)[0],
                    what="pid 1 of the new namespace")


def test_runs_as_pid1_and_passes_exit_codes(as_pid1, make_map, short_tmp):
    for code in (0, 1, 77, 255):
        path = str(short_tmp / f"u{code}")
        proc = as_pid1("imp", path, "run", "sh", "-c", f"echo ppid=$PPID; exit {code}")
        send(path, [make_map()])
        status, out, err = finish(proc)
        assert (status, out) == (code, "ppid=1\n"), err
        assert not os.path.exists(path)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2])
def test_death_by_signal_gives_128_plus_n(sig, as_pid1, make_map, uds):
    proc = as_pid1("imp", uds, "run", "sh", "-c", f"kill -{sig.name.removeprefix('SIG')} $$")
    send(uds, [make_map()])
    assert finish(proc)[0] == 128 + sig


def test_sigterm_to_pid1_reaches_the_command(as_pid1, make_map, uds, short_tmp):
    ready = short_tmp / "ready"
    proc = as_pid1("imp", uds, "run", "sh", "-c",
                   f"trap 'echo got TERM; exit 42' TERM; touch {ready}; "
                   "while :; do sleep 0.05; done")
    send(uds, [make_map()])
    pid1 = init_pid(proc)
    wait_for(ready.exists, what="trap set")
    os.kill(pid1, signal.SIGTERM)  # PID 1 would ignore it without a handler
    status, out, _ = finish(proc)
    assert (status, out) == (42, "got TERM\n")


def test_hundred_orphans_are_reaped(as_pid1, make_map, uds):
    # Each `sh -c 'sleep 0.1 &'` exits at once: its sleep is orphaned to PID 1.
    # Wait (bounded) until no orphan is still running, give PID 1 a moment, count zombies.
    proc = as_pid1("imp", uds, "run", "sh", "-c",
                   "for i in $(seq 100); do sh -c 'sleep 0.1 &'; done; t=0; "
                   "while [ $t -lt 100 ] && grep -qsE '^State:\\s+[RSD]' "
                   "$(grep -lsE '^Name:\\s+sleep$' /proc/[0-9]*/status) /dev/null; "
                   "do sleep 0.1; t=$((t + 1)); done; sleep 0.3; "
                   "grep -lsE '^State:\\s+Z' /proc/[0-9]*/status | wc -l")
    send(uds, [make_map()])
    status, out, err = finish(proc, timeout=30)
    assert (status, out.strip()) == (0, "0"), err


def test_lingering_grandchildren_do_not_hang_the_exit(as_pid1, make_map, uds):
    proc = as_pid1("imp", uds, "run", "sh", "-c",
                   "sleep 100 >/dev/null 2>&1 & "
                   "(trap '' TERM; exec sleep 101) >/dev/null 2>&1 & exit 7",
                   env={"BPFSESSION_GRACE": "0.5"})
    send(uds, [make_map()])
    start = time.monotonic()
    status, _, err = finish(proc)
    assert status == 7, err
    assert time.monotonic() - start < 5


def test_command_gets_default_signal_state(as_pid1, make_map, uds):
    proc = as_pid1("imp", uds, "run", "grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status")
    send(uds, [make_map()])
    status, out, err = finish(proc)
    assert status == 0, err
    assert dict(line.split(":\t") for line in out.splitlines()) == \
        {"SigBlk": "0" * 16, "SigIgn": "0" * 16}

