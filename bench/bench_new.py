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
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    PY,
    RECEIVE_FLOOR,
    ROOT,
    demo_maps,
    print_ratios,
    receive_once,
    round_robin,
    session_env,
    workspace,
)


def variants(ns: str) -> dict[str, list[str]]:
    new = [str(ROOT / ".venv" / "bin" / "bpfsession"), "new"]  # the console script users run
    return {
        "bpfsession new --netns": [*new, "--netns", ns, "imp", "{uds}", "run", "true"],
        "bpfsession new": [*new, "imp", "{uds}", "run", "true"],
        "ip netns exec + tc exec": ["ip", "netns", "exec", ns, "tc", "exec", "bpf", "imp",
                                    "{uds}", "run", "true"],
        "tc exec bpf imp": ["tc", "exec", "bpf", "imp", "{uds}", "run", "true"],
        "python floor (bind+recvmsg)": [PY, "-c", RECEIVE_FLOOR, "{uds}"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=30)
    args = parser.parse_args()
    ns = f"bsbench{os.getpid()}"
    maps = demo_maps()
    with workspace("bsb", maps, netns=ns) as tmp:
        env = session_env(tmp)
        uds = os.path.join(tmp, "uds")
        times = round_robin({name: partial(receive_once, argv, uds, maps, env)
                             for name, argv in variants(ns).items()}, args.runs)
    print_ratios(f"end to end, 2 maps, median of {args.runs} runs (ratio to the python floor)",
                 times, "python floor (bind+recvmsg)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
