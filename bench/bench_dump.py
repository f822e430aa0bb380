"""Dump a 1,000,000-entry hash map (u32 -> u64): bpfsession vs bpftool, text and -j.

Run as root from the checkout: `.venv/bin/python bench/bench_dump.py [--entries N]
[--rounds R]`. Every command runs as its own process, side by side in one run, rounds
interleaved; output goes to a pipe that is drained (as `| wc -c` would), and for each
run we record wall time, time to the first output byte and peak RSS (/usr/bin/time's
%M: wait4's ru_maxrss of our own child would include this script's pages at fork).
The floor is a process that only walks the map with BPF_MAP_LOOKUP_BATCH (64 Ki
entries a call) and formats nothing. Medians and ratios are
printed; compare ratios, the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PY, installed_env, machine  # noqa: E402
from bpfsession.kernel import bpf  # noqa: E402

FLOOR = r"""
import sys
from bpfsession.kernel import bpf
fd = bpf.obj_get(sys.argv[1])
n, batch = 0, 65536
keys, values = bytearray(4 * batch), bytearray(8 * batch)
cur_in, cur_out = bytearray(8), bytearray(8)
first = True
while True:
    got, end = bpf.map_lookup_batch(fd, None if first else cur_in, cur_out, keys, values, batch)
    n += got
    if end:
        break
    first = False
    cur_in[:] = cur_out
print(n)
"""


def fill(fd: int, entries: int) -> None:
    chunk = 65536
    for start in range(0, entries, chunk):
        n = min(chunk, entries - start)
        keys = b"".join(i.to_bytes(4, "little") for i in range(start, start + n))
        values = b"".join((i * 7 + 3).to_bytes(8, "little") for i in range(start, start + n))
        bpf.map_update_batch(fd, keys, values, n)


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int, int]:
    """(seconds, seconds to first byte, peak RSS in KiB, bytes of output)."""
    rss_file = os.path.join(env["PYTHONPYCACHEPREFIX"], "rss")
    cmd = ["/usr/bin/time", "-f", "%M", "-o", rss_file, *cmd]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    first = None
    size = 0
    while chunk := proc.stdout.read1(1 << 20):
        if first is None:
            first = time.perf_counter() - start
        size += len(chunk)
    proc.stdout.close()
    status = proc.wait()
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{cmd} failed with status {status}")
    with open(rss_file) as f:
        rss = int(f.read().split()[-1])
    return elapsed, first or elapsed, rss, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    opts = ap.parse_args()

    # Measure what users get from an installed package: compiled bytecode (into a
    # private cache, not the checkout).
    cache = tempfile.mkdtemp(prefix="bsbench-pyc")
    env = installed_env(PYTHONPYCACHEPREFIX=cache)

    fd = bpf.map_create("hash", 4, 8, opts.entries, "bench_dump")
    pin = f"/sys/fs/bpf/bsbench{os.getpid()}"
    try:
        fill(fd, opts.entries)
        bpf.obj_pin(fd, pin)
        bs = [PY, "-m", "bpfsession", "map", "dump", "pinned", pin]
        cases = {
            "bpftool map dump": ["bpftool", "map", "dump", "pinned", pin],
            "bpfsession map dump": bs,
            "bpftool -j map dump": ["bpftool", "-j", "map", "dump", "pinned", pin],
            "bpfsession map dump -j": bs + ["-j"],
            "floor: batch walk only": [PY, "-c", FLOOR, pin],
        }
        for cmd in cases.values():  # warm up caches (and bytecode)
            run(cmd, env)
        results: dict[str, list[tuple[float, float, int, int]]] = {k: [] for k in cases}
        for _ in range(opts.rounds):
            for name, cmd in cases.items():
                results[name].append(run(cmd, env))
    finally:
        if os.path.exists(pin):
            os.unlink(pin)
        os.close(fd)
        subprocess.run(["rm", "-rf", cache])

    med = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
    print(f"{opts.entries} entries, hash u32 -> u64, {opts.rounds} rounds, medians "
          f"({machine()})")
    print(f"{'case':28} {'seconds':>8} {'1st byte':>9} {'peak RSS':>10} {'output':>10}")
    for name, v in results.items():
        first = statistics.median(r[1] for r in v)
        rss = max(r[2] for r in v) / 1024
        print(f"{name:28} {med[name]:8.3f} {first:9.3f} {rss:8.1f}MB {v[0][3] / 1e6:8.1f}MB")
    floor = med["floor: batch walk only"]
    print()
    print(f"text: bpftool / bpfsession = "
          f"{med['bpftool map dump'] / med['bpfsession map dump']:.1f}x")
    print(f"-j:   bpftool / bpfsession = "
          f"{med['bpftool -j map dump'] / med['bpfsession map dump -j']:.1f}x")
    print(f"text: bpfsession / floor   = {med['bpfsession map dump'] / floor:.2f}x")
    print(f"-j:   bpfsession / floor   = {med['bpfsession map dump -j'] / floor:.2f}x")


if __name__ == "__main__":
    main()
