#!/usr/bin/env python3
"""`bpfsession attach SESSION run true` latency, side by side with a bare-Python floor.

Sessions (2 maps each): a `bpfsession new` session on the host, one in a netns, and a
`tc exec bpf imp` session. Variants, interleaved round-robin, whole processes:

  attach (control socket)      bpfsession attach NEW run true
    same, plain install        through a plain .pth path (no editable-install finder)
  attach --netns session       bpfsession attach NEW-IN-NETNS run true (enters the netns)
  attach tc (pidfd_getfd)      bpfsession attach tc-PID run true
  python floor                 the venv's interpreter: connect to NEW's control socket, ask,
                               recvmsg the maps, posix_spawn `true` with them, wait
    floor, plain install       the same from the plain-install interpreter
  core floor (bind+recvmsg)    bench_new.py's floor: bind, receive the maps, exit

Goal (issue 3): attach within 1.5x of "the bare-Python floor from the core issue's
benchmark", i.e. the core floor; the ratios to the stricter connect floor are printed too.
Usage (as root): .venv/bin/python bench/bench_attach.py [-n RUNS]
Everything it starts is ended and removed afterwards.
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
    RECEIVE_FLOOR,
    ROOT,
    demo_maps,
    end,
    plain_install,
    print_ratios,
    receive_once,
    round_robin,
    session_env,
    start_receivers,
    timed,
    workspace,
)

CORE_FLOOR = "core floor (bind+recvmsg)"
FLOOR = ("import os,socket,sys;s=socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET);"
         "s.connect(sys.argv[1]);s.send(b'{\"v\": 1, \"op\": \"attach\"}');"
         "s.recvmsg(4096);s.recvmsg(1,socket.CMSG_SPACE(64*4));"
         "os.waitpid(os.posix_spawnp('true',['true'],os.environ),0)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=30)
    args = parser.parse_args()
    ns = f"bsbencha{os.getpid()}"
    maps = demo_maps()
    with workspace("bsa", maps, netns=ns) as tmp:
        env = session_env(tmp)
        new = [PY, "-m", "bpfsession", "new"]
        u1, u2, u3 = (f"{tmp}/u{i}" for i in (1, 2, 3))
        procs = []
        try:
            procs = start_receivers({
                u1: [*new, "--name", "bench-host", "imp", u1, "run", "sleep", "600"],
                u2: [*new, "--name", "bench-ns", "--netns", ns, "imp", u2, "run", "sleep", "600"],
                u3: ["tc", "exec", "bpf", "imp", u3, "run", "sleep", "600"],
            }, maps, env)
            time.sleep(1)
            listing = json.loads(subprocess.run([PY, "-m", "bpfsession", "list", "-j"], env=env,
                                                capture_output=True, check=True).stdout)
            control = next(s["control"] for s in listing if s["name"] == "bench-host")
            tc_id = next(s["id"] for s in listing if s["pid"] == procs[2].pid)
            attach = [str(ROOT / ".venv" / "bin" / "bpfsession"), "attach"]  # what users run
            plain = plain_install(tmp)
            table = {
                "attach (control socket)": [*attach, "bench-host", "run", "true"],
                "  same, plain install": [plain, "-m", "bpfsession", "attach", "bench-host",
                                          "run", "true"],
                "attach --netns session": [*attach, "bench-ns", "run", "true"],
                "attach tc (pidfd_getfd)": [*attach, tc_id, "run", "true"],
                "python floor": [PY, "-c", FLOOR, control],
                "  floor, plain install": [plain, "-c", FLOOR, control],
            }
            variants = {name: partial(timed, argv, env) for name, argv in table.items()}
            variants[CORE_FLOOR] = partial(receive_once, [PY, "-c", RECEIVE_FLOOR, "{uds}"],
                                           f"{tmp}/floor", maps, env)
            times = round_robin(variants, args.runs)
        finally:
            end(procs)
    title = f"attach ... run true, 2 maps, median of {args.runs} runs"
    print_ratios(f"{title} (ratio to the connect floor)", times, "python floor")
    print()
    print_ratios(f"{title} (ratio to the core benchmark's floor, issue 3's anchor)", times,
                 CORE_FLOOR)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
