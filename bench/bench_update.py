"""N single `map update` calls from a shell loop: bpfsession vs bpftool (start-up cost).

Run as root from the checkout: `.venv/bin/python bench/bench_update.py [--calls N]`
(default 10,000, as in issue 4). Each tool runs the same `sh` loop, side by side in
one run, against the same pinned hash map; a third loop runs the bare interpreter
(`python -c pass`) as the floor any Python CLI pays per call. Bytecode is compiled into
a private cache first, as an installed package would have it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PY, installed_env, machine  # noqa: E402
from bpfsession.kernel import bpf  # noqa: E402


def loop(body: str, calls: int, env: dict[str, str]) -> float:
    script = f'i=0; while [ $i -lt {calls} ]; do k=$((i % 256)); {body} || exit 1; ' \
             f'i=$((i + 1)); done'
    start = time.perf_counter()
    subprocess.run(["sh", "-c", script], check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=10_000)
    opts = ap.parse_args()

    cache = tempfile.mkdtemp(prefix="bsbench-pyc")
    env = installed_env(PYTHONPYCACHEPREFIX=cache)
    fd = bpf.map_create("hash", 4, 8, 256, "bench_update")
    pin = f"/sys/fs/bpf/bsbenchu{os.getpid()}"
    try:
        bpf.obj_pin(fd, pin)
        cases = {
            "bpftool map update": f"bpftool map update pinned {pin} key $k 0 0 0 "
                                  "value $k 0 0 0 0 0 0 0",
            "bpfsession map update": f"{PY} -m bpfsession map update pinned {pin} key $k 0 0 0 "
                                     "value $k 0 0 0 0 0 0 0",
            "bpfsession (typed)": f"{PY} -m bpfsession map update pinned {pin} --key-type u32 "
                                  "--value-type u64 key $k value $k",
            "floor: python -c pass": f"{PY} -c pass",
        }
        for body in cases.values():  # warm up (and compile bytecode)
            loop(body, 3, env)
        took = {name: loop(body, opts.calls, env) for name, body in cases.items()}
        value = bytearray(8)
        assert bpf.map_lookup_elem(fd, ((opts.calls - 1) % 256).to_bytes(4, "little"), value)
    finally:
        os.unlink(pin)
        os.close(fd)
        subprocess.run(["rm", "-rf", cache])

    print(f"{opts.calls} single updates from a sh loop ({machine()})")
    for name, t in took.items():
        print(f"{name:26} {t:8.2f} s  {t / opts.calls * 1000:7.2f} ms/call")
    base = took["bpftool map update"]
    print(f"\nbpfsession / bpftool       = {took['bpfsession map update'] / base:.1f}x slower")
    print(f"bpfsession / python floor  = "
          f"{took['bpfsession map update'] / took['floor: python -c pass']:.2f}x")


if __name__ == "__main__":
    main()
