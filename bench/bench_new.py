#!/usr/bin/env python3
"""End-to-end cost of receiving maps and running a command, side by side, as ratios.

Each run: launcher start -> socket bound -> 2 maps sent (wire.send_maps, from this
process) -> `run true` exited. Variants, interleaved round-robin so noise hits all alike:

  bpfsession --netns   bpfsession new --netns NS imp UDS run true
  bpfsession           bpfsession new imp UDS run true
  ip netns exec + tc   ip netns exec NS tc exec bpf imp UDS run true
  tc exec              tc exec bpf imp UDS run true
  python floor         the venv's interpreter: bind + recvmsg, nothing else

Usage (as root): .venv/bin/python bench/bench_new.py [-n RUNS]
It creates and removes its own netns, maps and sockets.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bpfsession import wire  # noqa: E402
from bpfsession.kernel import bpf  # noqa: E402

PY = str(ROOT / ".venv" / "bin" / "python")
FLOOR = ("import socket,sys;s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM);"
         "s.bind(sys.argv[1]);s.recvmsg(4096,socket.CMSG_SPACE(64*4))")


def variants(ns: str) -> dict[str, list[str]]:
    new = [str(ROOT / ".venv" / "bin" / "bpfsession"), "new"]  # the console script users run
    return {
        "bpfsession new --netns": [*new, "--netns", ns, "imp", "{uds}", "run", "true"],
        "bpfsession new": [*new, "imp", "{uds}", "run", "true"],
        "ip netns exec + tc exec": ["ip", "netns", "exec", ns, "tc", "exec", "bpf", "imp",
                                    "{uds}", "run", "true"],
        "tc exec bpf imp": ["tc", "exec", "bpf", "imp", "{uds}", "run", "true"],
        "python floor (bind+recvmsg)": [PY, "-c", FLOOR, "{uds}"],
    }


def wait_bound(path: str, proc: subprocess.Popen) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        while True:
            try:
                probe.connect(path)
                return
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"receiver exited early: {proc.args}") from None
                time.sleep(0.0002)


def one_run(argv: list[str], path: str, maps: list[int], env: dict) -> float:
    argv = [a.replace("{uds}", path) for a in argv]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    wait_bound(path, proc)
    wire.send_maps(path, "bench", [(wire.MapEntry(id=i), fd) for i, fd in enumerate(maps)])
    status = proc.wait()
    took = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{argv} exited {status}")
    if os.path.exists(path):  # tc exec and the floor leave their socket behind
        os.unlink(path)
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=30)
    args = parser.parse_args()
    ns = f"bsbench{os.getpid()}"
    tmp = tempfile.mkdtemp(prefix="bsb", dir="/tmp")
    subprocess.run(["ip", "netns", "add", ns], check=True)
    maps = [bpf.map_create("hash", 4, 8, 256, "proto_stats"),
            bpf.map_create("array", 4, 8, 1, "total_pkts")]
    env = {**os.environ, "BPFSESSION_RUN_DIR": os.path.join(tmp, "run")}
    # An installed package is byte-compiled (pip does it); a checkout run with
    # PYTHONDONTWRITEBYTECODE=1 would compile every module on every start instead.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "bpfsession")], env=env,
                   check=True)
    times: dict[str, list[float]] = {}
    try:
        table = variants(ns)
        for argv in table.values():  # warm caches once, unmeasured
            one_run(argv, os.path.join(tmp, "uds"), maps, env)
        for _ in range(args.runs):
            for name, argv in table.items():
                times.setdefault(name, []).append(
                    one_run(argv, os.path.join(tmp, "uds"), maps, env))
    finally:
        for fd in maps:
            os.close(fd)
        subprocess.run(["ip", "netns", "del", ns])
        shutil.rmtree(tmp, ignore_errors=True)
    floor = statistics.median(times["python floor (bind+recvmsg)"])
    print(f"end to end, 2 maps, median of {args.runs} runs (ratio to the python floor)")
    print(f"{'variant':30} {'median ms':>10} {'p90 ms':>8} {'ratio':>6}")
    for name, samples in times.items():
        med = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(f"{name:30} {med * 1e3:10.1f} {p90 * 1e3:8.1f} {med / floor:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
