"""Helpers shared by the benchmarks under bench/ (one implementation each).

The scripts run as `.venv/bin/python bench/bench_X.py`: each puts the checkout's root on
sys.path first, then imports this module as `bench.common`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from bpfsession import wire
from bpfsession.kernel import bpf

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")


BPF_CFLAGS = ["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu",
              "-I/usr/include/aarch64-linux-gnu"]


def compile_bpf(source, obj: str, *defines: str) -> str:
    """`clang -target bpf` of one BPF C file (with BTF) into `obj`; returns `obj`."""
    subprocess.run(["clang", *BPF_CFLAGS, *defines, "-c", str(source), "-o", obj], check=True)
    return obj


def machine() -> str:
    """The machine a result was taken on; ratios travel, absolute times do not."""
    return f"{os.cpu_count()} CPUs, Linux {os.uname().release}"


def installed_env(**extra: str) -> dict[str, str]:
    """This environment plus `extra`, without PYTHONDONTWRITEBYTECODE: an installed package
    is byte-compiled (pip does it), while a checkout run with PYTHONDONTWRITEBYTECODE=1
    would compile every module on every start, and that would be measured."""
    env = {**os.environ, **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def session_env(tmp: str) -> dict[str, str]:
    """installed_env() for session benchmarks: their own run directory under `tmp`, so that
    the machine's other sessions (tests running alongside) stay out of what is measured,
    and the checkout byte-compiled up front, as pip does at install time, so that no
    measured start pays for compiling."""
    env = installed_env(BPFSESSION_RUN_DIR=os.path.join(tmp, "run"))
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "bpfsession")], env=env,
                   check=True)
    return env


def plain_install(tmp: str) -> str:
    """An interpreter that finds bpfsession through a plain .pth path entry, as a regular
    (non-editable) install would: the dev venv's editable-install finder costs every
    start about 10 ms (`python -X importtime`), which users of an installed package never
    pay. Only the standard library is needed for the commands measured here."""
    venv = os.path.join(tmp, "plain")
    base = os.path.realpath(PY)
    subprocess.run([base, "-m", "venv", "--without-pip", venv], check=True)
    site = Path(venv, "lib", f"python{sys.version_info.major}.{sys.version_info.minor}",
                "site-packages")
    (site / "bpfsession-checkout.pth").write_text(f"{ROOT}\n")
    return os.path.join(venv, "bin", "python")


def demo_maps() -> list[int]:
    """The two maps of the documentation's examples (a hash and a one-slot array), so
    that every session benchmark hands off the same thing."""
    return [bpf.map_create("hash", 4, 8, 256, "proto_stats"),
            bpf.map_create("array", 4, 8, 1, "total_pkts")]


@contextmanager
def workspace(prefix: str, maps: list[int], netns: str | None = None) -> Iterator[str]:
    """A private directory under /tmp (for sockets, the run directory, a plain install),
    and the named network namespace if one is asked for; however the benchmark ends,
    `maps` are closed and the namespace and the directory removed, so that nothing is
    left behind on a shared machine. End the receivers (end()) inside the block."""
    tmp = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    added = False
    try:
        if netns is not None:
            subprocess.run(["ip", "netns", "add", netns], check=True)
            added = True
        yield tmp
    finally:
        for fd in maps:
            os.close(fd)
        if added:
            subprocess.run(["ip", "netns", "del", netns])
        shutil.rmtree(tmp, ignore_errors=True)


def wait_bound(path: str, proc: subprocess.Popen | None = None, timeout: float = 30,
               interval: float = 0.002) -> None:
    """Wait until a receiver has bound its unix datagram socket at `path`: a probe that
    connects is the only reliable sign (maps sent earlier would be refused). Fails when
    `proc` (the receiver) exits first or after `timeout` seconds. `interval` is the poll
    period; keep it small where the wait itself is measured."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        while True:
            try:
                probe.connect(path)
                return
            except OSError:
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"receiver exited early: {proc.args}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no receiver on {path}") from None
                time.sleep(interval)


def send_maps(path: str, maps: list[int]) -> None:
    """Hand `maps` to the receiver bound at `path`, as a loader would (ids 0, 1, ...)."""
    wire.send_maps(path, "bench", [(wire.MapEntry(id=i), fd) for i, fd in enumerate(maps)])


def start_receivers(receivers: Mapping[str, list[str]], maps: list[int],
                    env: dict[str, str] | None = None,
                    stderr: int | None = None) -> list[subprocess.Popen]:
    """Start long-lived receivers ({socket path: argv}), each in its own process group
    (so end() takes their commands too), all at once, then feed each `maps`. On failure
    the ones already started are ended before the error propagates."""
    procs: list[subprocess.Popen] = []
    try:
        for argv in receivers.values():
            procs.append(subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=stderr,
                                          start_new_session=True))
        for path, proc in zip(receivers, procs, strict=True):
            wait_bound(path, proc)
            send_maps(path, maps)
    except BaseException:
        end(procs)
        raise
    return procs


def end(procs: list[subprocess.Popen], sig: int = signal.SIGTERM) -> None:
    """Signal each process's group (each was started as its own), then reap them all;
    a group still there after 10 s is killed."""
    for p in procs:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


# The core benchmark's floor (bench_new.py, and issue 3's anchor for attach): the venv's
# interpreter binding the socket and receiving one datagram, nothing else.
RECEIVE_FLOOR = ("import socket,sys;s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM);"
                 "s.bind(sys.argv[1]);s.recvmsg(4096,socket.CMSG_SPACE(64*4))")


def receive_once(argv: list[str], path: str, maps: list[int], env: dict[str, str]) -> float:
    """One receiver run end to end ("{uds}" in argv stands for `path`): start, wait until
    bound, send `maps`, wait for the exit. Seconds; the socket file is removed after."""
    argv = [a.replace("{uds}", path) for a in argv]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    wait_bound(path, proc, interval=0.0002)  # measured: poll finely
    send_maps(path, maps)
    status = proc.wait()
    took = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{argv} exited {status}")
    if os.path.exists(path):  # tc exec and the floor leave their socket behind
        os.unlink(path)
    return took


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Wall-clock seconds of one whole process, output discarded; it must succeed."""
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def round_robin(variants: Mapping[str, Callable[[], float]], runs: int,
                unwarmed: Collection[str] = ()) -> dict[str, list[float]]:
    """Samples (seconds) of each variant: one unmeasured call each first to warm caches
    (except those in `unwarmed`), then `runs` rounds interleaved, so that noise on a
    shared machine hits every variant alike and their ratios stay comparable."""
    for name, measure in variants.items():
        if name not in unwarmed:
            measure()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, measure in variants.items():
            times[name].append(measure())
    return times


def print_ratios(title: str, times: dict[str, list[float]], base: str) -> None:
    """The table every session benchmark prints: median and p90 per variant, and the
    ratio of its median to `base`'s (compare ratios: the machine is shared)."""
    floor = statistics.median(times[base])
    print(title)
    print(f"{'variant':30} {'median ms':>10} {'p90 ms':>8} {'ratio':>6}")
    for name, samples in times.items():
        med = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(f"{name:30} {med * 1e3:10.1f} {p90 * 1e3:8.1f} {med / floor:6.2f}")
