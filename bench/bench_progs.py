#!/usr/bin/env python3
"""`bpfsession show -j` with the programs that use each map, side by side with the bpftool
commands a user would run to find the same (there is no single tool that joins them).

Set-up: bpf/counter.bpf.c (clang) on clsact ingress of a veth end inside a named netns, a
`bpfsession new --netns` session holding its two maps, and N more named namespaces (each
with a veth end, so every namespace has a device to look at). Variants, interleaved
round-robin, whole processes, output to /dev/null:

  bpfsession show ID -j        the session, each map's programs and their hooks
  bpftool -j prog show         every program with its map ids (the first half of the join)
  bpftool -j net show (netns)  the hooks of one namespace (the user would run it per netns)
  progs.using() in process     the join alone (prog walk, namespaces, links)
  show's discovery in process  what show did before (discover.find + session_json)

Usage (as root): .venv/bin/python bench/bench_progs.py [-n RUNS] [--netns N]
Everything it starts or adds is ended and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    PY,
    ROOT,
    compile_bpf,
    end,
    print_ratios,
    round_robin,
    session_env,
    timed,
    wait_bound,
    workspace,
)
from bpfsession import progs  # noqa: E402
from bpfsession.kernel import bpf  # noqa: E402


def run(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=20)
    ap.add_argument("--netns", type=int, default=20, help="extra namespaces (default 20)")
    args = ap.parse_args()

    tag = f"bp{os.getpid() % 100000}"
    names = [f"{tag}n{i}" for i in range(args.netns + 1)]
    ns, dev = names[0], f"{tag}p0"
    procs: list[subprocess.Popen] = []
    with workspace("bsbench", [], netns=None) as tmp:
        try:
            obj = compile_bpf(ROOT / "bpf" / "counter.bpf.c", os.path.join(tmp, "counter.o"))
            for i, name in enumerate(names):
                run(["ip", "netns", "add", name])
                run(["ip", "link", "add", f"{tag}h{i}", "type", "veth", "peer", "name",
                     f"{tag}p{i}", "netns", name])
            run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "clsact"])
            run(["ip", "netns", "exec", ns, "tc", "filter", "add", "dev", dev, "ingress", "bpf",
                 "da", "obj", obj, "sec", "tc"])
            out = run(["ip", "netns", "exec", ns, "tc", "filter", "show", "dev", dev, "ingress"])
            prog_id = int(re.search(r" id (\d+)", out).group(1))
            fd = bpf.prog_get_fd_by_id(prog_id)
            map_ids = bpf.prog_info(fd).map_ids
            os.close(fd)
            maps = [bpf.map_get_fd_by_id(m) for m in map_ids]

            env = session_env(tmp)
            uds = os.path.join(tmp, "uds")
            procs.append(subprocess.Popen(
                [PY, "-m", "bpfsession", "new", "--name", tag, "--netns", ns, "imp", uds, "run",
                 "sleep", "600"], env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, start_new_session=True))
            wait_bound(uds, procs[0])
            from bpfsession import wire

            wire.send_maps(uds, "bench", [(wire.MapEntry(id=i), f) for i, f in enumerate(maps)])
            for f in maps:
                os.close(f)
            show = [PY, "-m", "bpfsession", "show", tag, "-j"]
            deadline = time.monotonic() + 30
            while True:
                res = subprocess.run(show, env=env, cwd=ROOT, capture_output=True, text=True)
                if res.returncode == 0 and json.loads(res.stdout)["maps"]:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the session did not come up: {res.stderr}")
                time.sleep(0.05)
            doc = json.loads(res.stdout)
            assert doc["maps"][0]["progs"][0]["attached"][0]["netns"] == ns, doc

            def in_process() -> float:
                start = time.perf_counter()
                progs.using(map_ids)
                return time.perf_counter() - start

            def discovery() -> float:
                from bpfsession import discover, model

                os.environ["BPFSESSION_RUN_DIR"] = env["BPFSESSION_RUN_DIR"]
                start = time.perf_counter()
                model.session_json(discover.find(tag))
                return time.perf_counter() - start

            variants = {
                "bpfsession show -j": lambda: timed(show, env),
                "bpftool -j prog show": lambda: timed(["bpftool", "-j", "prog", "show"]),
                "bpftool -j net show (1 ns)": lambda: timed(
                    ["ip", "netns", "exec", ns, "bpftool", "-j", "net", "show"]),
                "progs.using() in process": in_process,
                "show's discovery in process": discovery,
            }
            times = round_robin(variants, args.runs)
            n_procs = sum(1 for p in os.listdir("/proc") if p.isdigit())
            print_ratios(f"show -j with programs: {len(names)} named namespaces, {n_procs} "
                         f"processes, {len(bpf.prog_ids())} programs", times,
                         "bpftool -j prog show")
        finally:
            end(procs)
            for i, name in enumerate(names):
                subprocess.run(["ip", "link", "del", f"{tag}h{i}"], capture_output=True)
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
