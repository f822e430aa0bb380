"""Dump typed (BTF) maps of 1,000,000 entries: bpfsession vs bpftool, text and -j.

Three maps of bench/bpf/typed_bench.bpf.c (a 5-tuple struct key and a struct of counters):
a hash, an array of structs and a per-CPU hash, loaded with `bpftool prog loadall` into a
private bpffs directory and filled with BPF_MAP_UPDATE_BATCH. Run as root from the
checkout: `.venv/bin/python bench/bench_dump_typed.py [--entries N] [--rounds R]
[--maps b_hash,b_array,b_pcpu] [--modes text,-j]`.

A first, untimed pass checks that every bpfsession output is byte-identical to bpftool's
(CRC-32 of the whole stream). Then each command runs as its own process, rounds
interleaved; output goes to a pipe that is drained (as `| wc -c` would); wall time and
peak RSS (/usr/bin/time's %M) are recorded. Medians and ratios are printed: compare
ratios, the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PY, ROOT, compile_bpf, installed_env, machine  # noqa: E402
from bpfsession.kernel import bpf  # noqa: E402

SOURCE = ROOT / "bench" / "bpf" / "typed_bench.bpf.c"
MAPS = ("b_hash", "b_array", "b_pcpu")
FLOW = struct.Struct("<IIHHB3x")
COUNTERS = struct.Struct("<QQII")


def ncpus() -> int:
    from bpfsession.maps import possible_cpus

    return possible_cpus()


def fill(path: str, name: str, entries: int) -> None:
    fd = bpf.obj_get(path)
    cpus = ncpus() if name == "b_pcpu" else 1
    try:
        for start in range(0, entries, 65536):
            n = min(65536, entries - start)
            span = range(start, start + n)
            if name == "b_array":
                keys = b"".join(i.to_bytes(4, "little") for i in span)
            else:
                keys = b"".join(FLOW.pack(0x0A000000 + i, 0xC0A80001, 1024 + i % 60000, 443,
                                          6) for i in span)
            values = b"".join(COUNTERS.pack(i * 3 + c, i * 1500, 1_700_000_000 + i, c)
                              for i in span for c in range(cpus))
            bpf.map_update_batch(fd, keys, values, n)
    finally:
        os.close(fd)


def run(cmd: list[str], env: dict[str, str], crc: bool = False) -> tuple[float, int, int]:
    """(seconds, peak RSS in KiB, CRC-32 of the output or its size)."""
    rss_file = os.path.join(env["PYTHONPYCACHEPREFIX"], "rss")
    cmd = ["/usr/bin/time", "-f", "%M", "-o", rss_file, *cmd]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    check = 0
    while chunk := proc.stdout.read1(1 << 20):
        check = zlib.crc32(chunk, check) if crc else check + len(chunk)
    proc.stdout.close()
    status = proc.wait()
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{cmd} failed with status {status}")
    with open(rss_file) as f:
        rss = int(f.read().split()[-1])
    return elapsed, rss, check


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--maps", default=",".join(MAPS))
    ap.add_argument("--modes", default="text,-j", help="text, -j or both (bpftool's text "
                    "mode takes minutes at 1,000,000 entries)")
    opts = ap.parse_args()
    names = opts.maps.split(",")
    modes = [[] if m == "text" else [m] for m in opts.modes.split(",")]

    cache = tempfile.mkdtemp(prefix="bsbench-pyc")
    env = installed_env(PYTHONPYCACHEPREFIX=cache)
    base = f"/sys/fs/bpf/bsbench{os.getpid()}"
    results: dict[str, list[tuple[float, int, int]]] = {}
    try:
        obj = compile_bpf(SOURCE, os.path.join(cache, "typed_bench.bpf.o"),
                          f"-DENTRIES={opts.entries}")
        os.makedirs(base)
        subprocess.run(["bpftool", "prog", "loadall", obj, f"{base}/progs", "pinmaps",
                        f"{base}/maps"], check=True)
        cases = {}
        for name in names:
            pin = f"{base}/maps/{name}"
            fill(pin, name, opts.entries)
            bs = [PY, "-m", "bpfsession", "map", "dump", "pinned", pin]
            for mode in modes:
                tag = f"{name} {'-j' if mode else 'text'}"
                cases[f"{tag}: bpftool"] = ["bpftool", *mode, "map", "dump", "pinned", pin]
                cases[f"{tag}: bpfsession"] = bs + mode
        for tag in {k.split(":")[0] for k in cases}:  # identical output, and warm caches
            theirs = run(cases[f"{tag}: bpftool"], env, crc=True)[2]
            ours = run(cases[f"{tag}: bpfsession"], env, crc=True)[2]
            if ours != theirs:
                raise SystemExit(f"{tag}: bpfsession's output differs from bpftool's")
        results = {k: [] for k in cases}
        for _ in range(opts.rounds):
            for name, cmd in cases.items():
                results[name].append(run(cmd, env))
    finally:
        subprocess.run(["rm", "-rf", base, cache])

    med = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
    print(f"{opts.entries} entries per map, {opts.rounds} round(s), medians ({machine()}, "
          f"load average {os.getloadavg()[0]:.1f}); outputs identical to bpftool's")
    print(f"{'case':32} {'seconds':>8} {'peak RSS':>10} {'output':>10}")
    for name, v in results.items():
        rss = max(r[1] for r in v) / 1024
        print(f"{name:32} {med[name]:8.2f} {rss:8.1f}MB {v[0][2] / 1e6:8.1f}MB")
    print()
    for tag in dict.fromkeys(k.split(":")[0] for k in results):
        ratio = med[f"{tag}: bpftool"] / med[f"{tag}: bpfsession"]
        print(f"{tag:20} bpftool / bpfsession = {ratio:.1f}x")


if __name__ == "__main__":
    main()
