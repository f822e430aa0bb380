#!/usr/bin/env python3
"""`bpfsession list -j` on a busy machine, side by side with `ps -eo pid,args`, as ratios.

Set-up: 2,000 unrelated processes (`sleep`, children of one shell) and 50 sessions (25
`tc exec bpf imp ... run sleep`, 25 `bpfsession new ... run sleep`, 2 maps each).
Variants, interleaved round-robin so noise hits all alike, whole processes, output to
/dev/null:

  bpfsession list -j     the CLI, every session with its maps and processes
    same, plain install  the CLI through a plain .pth path (no editable-install finder)
  ps -eo pid,args        procps over the same /proc
  discover.scan()        the same work in this process (no interpreter start)

Goal (issue 3): list within 0.5x of ps, i.e. at least 2x faster.
Usage (as root): .venv/bin/python bench/bench_list.py [-n RUNS] [--procs N] [--sessions N]
Everything it starts is ended (by process group) and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bpfsession import discover, wire  # noqa: E402
from bpfsession.kernel import bpf  # noqa: E402

PY = str(ROOT / ".venv" / "bin" / "python")


def wait_bound(path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        while True:
            try:
                probe.connect(path)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no receiver on {path}") from None
                time.sleep(0.002)


def start_sessions(n: int, tmp: str, env: dict, maps: list[int]) -> list[subprocess.Popen]:
    procs = []
    for i in range(n):
        uds = os.path.join(tmp, f"u{i}")
        if i % 2:
            argv = ["tc", "exec", "bpf", "imp", uds, "run", "sleep", "600"]
        else:
            argv = [PY, "-m", "bpfsession", "new", "imp", uds, "run", "sleep", "600"]
        procs.append(subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
    for i in range(n):
        uds = os.path.join(tmp, f"u{i}")
        wait_bound(uds)
        wire.send_maps(uds, "bench", [(wire.MapEntry(id=j), fd) for j, fd in enumerate(maps)])
    return procs


def plain_install(tmp: str) -> str:
    """An interpreter that finds bpfsession through a plain .pth path entry, as a regular
    (non-editable) install would: the dev venv's editable-install finder costs every
    start about 10 ms (`python -X importtime`). Only the standard library is needed for
    the commands measured here."""
    venv = os.path.join(tmp, "plain")
    base = os.path.realpath(PY)
    subprocess.run([base, "-m", "venv", "--without-pip", venv], check=True)
    site = Path(venv, "lib", f"python{sys.version_info.major}.{sys.version_info.minor}",
                "site-packages")
    (site / "bpfsession-checkout.pth").write_text(f"{ROOT}\n")
    return os.path.join(venv, "bin", "python")


def timed(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def end(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)  # each was started as its own group
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=20)
    parser.add_argument("--procs", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=50)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bsl", dir="/tmp")
    run_dir = os.path.join(tmp, "run")
    env = {**os.environ, "BPFSESSION_RUN_DIR": run_dir}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: byte-compiled
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "bpfsession")], check=True)
    maps = [bpf.map_create("hash", 4, 8, 256, "proto_stats"),
            bpf.map_create("array", 4, 8, 1, "total_pkts")]
    crowd = subprocess.Popen(["sh", "-c", f"i=0; while [ $i -lt {args.procs} ]; do "
                              "sleep 600 & i=$((i+1)); done; wait"],
                             stdout=subprocess.DEVNULL, start_new_session=True)
    procs: list[subprocess.Popen] = []
    times: dict[str, list[float]] = {}
    try:
        procs = start_sessions(args.sessions, tmp, env, maps)
        nproc = sum(1 for d in os.listdir("/proc") if d.isdigit())
        while nproc < args.procs + 2 * args.sessions:
            time.sleep(0.2)
            nproc = sum(1 for d in os.listdir("/proc") if d.isdigit())
        time.sleep(1)  # the last sessions start their commands
        found = json.loads(subprocess.run([PY, "-m", "bpfsession", "list", "-j"], env=env,
                                          capture_output=True, check=True).stdout)
        ours = {p.pid for p in procs}
        mine = [s for s in found if s["pid"] in ours or s["supervisor"] in ours]
        if len(mine) != args.sessions:
            raise RuntimeError(f"list found {len(mine)} of our {args.sessions} sessions")
        plain = plain_install(tmp)
        table = {
            "bpfsession list -j": [PY, "-m", "bpfsession", "list", "-j"],
            "  same, plain install": [plain, "-m", "bpfsession", "list", "-j"],
            "ps -eo pid,args": ["ps", "-eo", "pid,args"],
        }
        for argv in table.values():  # warm caches once, unmeasured
            timed(argv, env)
        for _ in range(args.runs):
            for name, argv in table.items():
                times.setdefault(name, []).append(timed(argv, env))
            start = time.perf_counter()
            discover.scan(run_dir=run_dir)
            times.setdefault("discover.scan() in-process", []).append(
                time.perf_counter() - start)
        nproc = sum(1 for d in os.listdir("/proc") if d.isdigit())
    finally:
        end(procs)
        end([crowd])
        for fd in maps:
            os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)
    ps = statistics.median(times["ps -eo pid,args"])
    print(f"{nproc} processes, {len(found)} sessions listed ({args.sessions} ours); "
          f"median of {args.runs} runs (ratio to ps)")
    print(f"{'variant':30} {'median ms':>10} {'p90 ms':>8} {'ratio':>6}")
    for name, samples in times.items():
        med = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(f"{name:30} {med * 1e3:10.1f} {p90 * 1e3:8.1f} {med / ps:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
