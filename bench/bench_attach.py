#!/usr/bin/env python3
"""`bpfsession attach SESSION run true` latency, side by side with a bare-Python floor.

Sessions (2 maps each): a `bpfsession new` session on the host, one in a netns, and a
`tc exec bpf imp` session. Variants, interleaved round-robin, whole processes:

  attach (control socket)      bpfsession attach NEW run true
    same, plain install        through a plain .pth path (no editable-install finder)
  attach --netns session       bpfsession attach NEW-IN-NETNS run true (enters the netns)
  attach tc (pidfd_getfd)      bpfsession attach tc-PID run true
  python floor                 the venv's interpreter: connect to NEW's control socket,
                               recvmsg the maps, posix_spawn `true` with them, wait
    floor, plain install       the same from the plain-install interpreter

Goal (issue 3): attach within 1.5x of the floor.
Usage (as root): .venv/bin/python bench/bench_attach.py [-n RUNS]
Everything it starts is ended and removed afterwards.
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

from bpfsession import wire  # noqa: E402
from bpfsession.kernel import bpf  # noqa: E402

PY = str(ROOT / ".venv" / "bin" / "python")
FLOOR = ("import os,socket,sys;s=socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET);"
         "s.connect(sys.argv[1]);s.recvmsg(4096,socket.CMSG_SPACE(64*4));"
         "os.waitpid(os.posix_spawnp('true',['true'],os.environ),0)")


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


def start(argv: list[str], uds: str, maps: list[int], env: dict) -> subprocess.Popen:
    """A receiver (`UDS` in argv stands for the socket path), fed `maps`."""
    proc = subprocess.Popen([uds if a == "UDS" else a for a in argv], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            start_new_session=True)
    wait_bound(uds)
    wire.send_maps(uds, "bench", [(wire.MapEntry(id=i), fd) for i, fd in enumerate(maps)])
    return proc


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
    t = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=30)
    args = parser.parse_args()
    ns = f"bsbencha{os.getpid()}"
    tmp = tempfile.mkdtemp(prefix="bsa", dir="/tmp")
    env = {**os.environ, "BPFSESSION_RUN_DIR": os.path.join(tmp, "run")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: byte-compiled
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "bpfsession")], check=True)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    maps = [bpf.map_create("hash", 4, 8, 256, "proto_stats"),
            bpf.map_create("array", 4, 8, 1, "total_pkts")]
    new = [PY, "-m", "bpfsession", "new"]
    procs = []
    times: dict[str, list[float]] = {}
    try:
        procs.append(start([*new, "--name", "bench-host", "imp", "UDS", "run", "sleep", "600"],
                           f"{tmp}/u1", maps, env))
        procs.append(start([*new, "--name", "bench-ns", "--netns", ns, "imp", "UDS", "run",
                            "sleep", "600"], f"{tmp}/u2", maps, env))
        procs.append(start(["tc", "exec", "bpf", "imp", "UDS", "run", "sleep", "600"], f"{tmp}/u3",
                           maps, env))
        time.sleep(1)
        listing = json.loads(subprocess.run([PY, "-m", "bpfsession", "list", "-j"], env=env,
                                            capture_output=True, check=True).stdout)
        control = next(s["control"] for s in listing if s["name"] == "bench-host")
        tc_id = next(s["id"] for s in listing if s["pid"] == procs[2].pid)
        attach = [PY, "-m", "bpfsession", "attach"]
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
        for argv in table.values():  # warm caches once, unmeasured
            timed(argv, env)
        for _ in range(args.runs):
            for name, argv in table.items():
                times.setdefault(name, []).append(timed(argv, env))
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)  # each was started as its own group
        for p in procs:
            p.wait(10)
        for fd in maps:
            os.close(fd)
        subprocess.run(["ip", "netns", "del", ns])
        shutil.rmtree(tmp, ignore_errors=True)
    floor = statistics.median(times["python floor"])
    print(f"attach ... run true, 2 maps, median of {args.runs} runs (ratio to the floor)")
    print(f"{'variant':30} {'median ms':>10} {'p90 ms':>8} {'ratio':>6}")
    for name, samples in times.items():
        med = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(f"{name:30} {med * 1e3:10.1f} {p90 * 1e3:8.1f} {med / floor:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
