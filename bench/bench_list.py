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
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    PY,
    demo_maps,
    end,
    plain_install,
    print_ratios,
    round_robin,
    session_env,
    start_receivers,
    timed,
    workspace,
)
from bpfsession import discover  # noqa: E402


def sessions(n: int, tmp: str) -> dict[str, list[str]]:
    """n receivers ({socket path: argv}), alternately `bpfsession new` and `tc exec`."""
    receivers = {}
    for i in range(n):
        uds = os.path.join(tmp, f"u{i}")
        if i % 2:
            receivers[uds] = ["tc", "exec", "bpf", "imp", uds, "run", "sleep", "600"]
        else:
            receivers[uds] = [PY, "-m", "bpfsession", "new", "imp", uds, "run", "sleep", "600"]
    return receivers


def time_scan(run_dir: str) -> float:
    start = time.perf_counter()
    discover.scan(run_dir=run_dir)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=20)
    parser.add_argument("--procs", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=50)
    args = parser.parse_args()
    maps = demo_maps()
    with workspace("bsl", maps) as tmp:
        env = session_env(tmp)
        run_dir = env["BPFSESSION_RUN_DIR"]
        crowd = subprocess.Popen(["sh", "-c", f"i=0; while [ $i -lt {args.procs} ]; do "
                                  "sleep 600 & i=$((i+1)); done; wait"],
                                 stdout=subprocess.DEVNULL, start_new_session=True)
        procs: list[subprocess.Popen] = []
        try:
            procs = start_receivers(sessions(args.sessions, tmp), maps, env,
                                    stderr=subprocess.DEVNULL)
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
            variants = {name: partial(timed, argv, env) for name, argv in table.items()}
            scan = "discover.scan() in-process"  # measured after them in each round
            variants[scan] = partial(time_scan, run_dir)
            times = round_robin(variants, args.runs, unwarmed={scan})
            nproc = sum(1 for d in os.listdir("/proc") if d.isdigit())
        finally:
            end(procs)
            end([crowd])
    print_ratios(f"{nproc} processes, {len(found)} sessions listed ({args.sessions} ours); "
                 f"median of {args.runs} runs (ratio to ps)", times, "ps -eo pid,args")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
