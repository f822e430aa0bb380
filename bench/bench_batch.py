"""10,000 updates: `bpfsession batch file` and `map load` vs 10,000 `bpftool map update`.

Run as root from the checkout: `.venv/bin/python bench/bench_batch.py [--updates N]
[--rounds R]`. The same updates (u32 key -> u64 value on a pinned hash map) four ways, side
by side, rounds interleaved: a `sh` loop calling `bpftool map update` once per entry (what
scripts do today), `bpftool batch file`, `bpfsession batch file` (the same file) and
`bpfsession map load` (JSON Lines, BPF_MAP_UPDATE_BATCH). Bytecode is compiled first, as an
installed package has it. Medians and the ratio to the bpftool loop are printed.
"""

from __future__ import annotations

import argparse
import json
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


def timed(cmd: list[str], env: dict[str, str], stdin: str | None = None) -> float:
    start = time.perf_counter()
    with open(stdin or os.devnull, "rb") as f:
        subprocess.run(cmd, env=env, stdin=f, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    opts = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bsbench-batch")
    env = installed_env(PYTHONPYCACHEPREFIX=os.path.join(tmp, "pyc"))
    fd = bpf.map_create("hash", 4, 8, opts.updates, "bench_batch")
    pin = f"/sys/fs/bpf/bsbenchb{os.getpid()}"
    n = opts.updates
    try:
        bpf.obj_pin(fd, pin)

        def words(i: int) -> str:
            key = " ".join(str(b) for b in i.to_bytes(4, "little"))
            value = " ".join(str(b) for b in (i * 7).to_bytes(8, "little"))
            return f"key {key} value {value}"

        batch = os.path.join(tmp, "batch.txt")
        with open(batch, "w") as f:
            f.writelines(f"map update pinned {pin} {words(i)}\n" for i in range(n))
        loop = os.path.join(tmp, "loop.sh")
        with open(loop, "w") as f:
            f.writelines(f"bpftool map update pinned {pin} {words(i)}\n" for i in range(n))
        lines = os.path.join(tmp, "entries.jsonl")
        with open(lines, "w") as f:
            f.writelines(json.dumps({"key": i, "value": i * 7}) + "\n" for i in range(n))
        bs = [PY, "-m", "bpfsession"]
        cases = {
            "bpftool map update x N (sh)": lambda: timed(["sh", loop], env),
            "bpftool batch file": lambda: timed(["bpftool", "batch", "file", batch], env),
            "bpfsession batch file": lambda: timed([*bs, "batch", "file", batch], env),
            "bpfsession map load (JSONL)": lambda: timed(
                [*bs, "map", "load", "pinned", pin, "--key-type", "u32", "--value-type",
                 "u64", "-"], env, stdin=lines),
        }
        for name, measure in cases.items():
            if name != "bpftool map update x N (sh)":
                measure()  # warm up (and compile bytecode)
        took: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(opts.rounds):
            for name, measure in cases.items():
                took[name].append(measure())
        value = bytearray(8)
        assert bpf.map_lookup_elem(fd, (n - 1).to_bytes(4, "little"), value)
        assert int.from_bytes(value, "little") == (n - 1) * 7
    finally:
        os.unlink(pin)
        os.close(fd)
        subprocess.run(["rm", "-rf", tmp])
    med = {k: statistics.median(v) for k, v in took.items()}
    base = med["bpftool map update x N (sh)"]
    print(f"{n} updates, {opts.rounds} round(s), medians ({machine()}, load average "
          f"{os.getloadavg()[0]:.1f})")
    for name, t in med.items():
        print(f"{name:30} {t:8.3f} s   bpftool loop / this = {base / t:6.1f}x")


if __name__ == "__main__":
    main()
