"""`map events` throughput: a ring buffer drained, and perf buffers beside bpftool's.

Run as root from the checkout: `.venv/bin/python bench/bench_events.py [--records N]
[--rounds R]`. bench/events.bpf.c (clang) is loaded with `bpftool prog loadall` and run
with `bpftool prog run ... repeat N` (BPF_PROG_TEST_RUN, on CPU 0), each run writing one
12-byte record.

- ring: N records are written into the (64 MiB) ring first, then `bpfsession map events`
  starts and its output pipe is drained; the rate is N / (last line - first byte), text
  and -j. The goal is 1,000,000 records a second.
- perf: the reader runs first (on CPU 1); the producer writes N records at full speed,
  far faster than anyone reads, so both readers drop most of them. The rate compared is
  records delivered per second of the reader's CPU time (utime+stime from /proc), side
  by side with `bpftool -j map event_pipe` (the anchor), rounds interleaved.
Medians and ratios are printed; compare ratios, the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PY, compile_bpf, installed_env, machine  # noqa: E402
from bpfsession.kernel import bpf  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Loaded:
    def __init__(self, tmp: str):
        obj = compile_bpf(ROOT / "bench" / "events.bpf.c", os.path.join(tmp, "events.o"))
        self.base = f"/sys/fs/bpf/bsbench{os.getpid()}"
        os.makedirs(f"{self.base}/maps")
        subprocess.run(["bpftool", "prog", "loadall", obj, f"{self.base}/progs", "pinmaps",
                        f"{self.base}/maps"], check=True)
        self.pkt = os.path.join(tmp, "pkt")
        Path(self.pkt).write_bytes(bytes(64))

    def map(self, name: str) -> str:
        return f"{self.base}/maps/{name}"

    def mode(self, perf: bool) -> None:
        fd = bpf.obj_get(self.map("bench_mode"))
        try:
            bpf.map_update_elem(fd, bytes(4), int(perf).to_bytes(4, "little"))
        finally:
            os.close(fd)

    def produce(self, n: int) -> None:
        subprocess.run(["taskset", "-c", "0", "bpftool", "prog", "run", "pinned",
                        f"{self.base}/progs/bench_emit", "data_in", self.pkt, "repeat",
                        str(n)], check=True, capture_output=True)

    def close(self) -> None:
        subprocess.run(["rm", "-rf", self.base])


class Drain:
    """A reader process with its stdout drained, counting records as `marker`s."""

    def __init__(self, argv: list[str], marker: bytes):
        self.proc = subprocess.Popen(["taskset", "-c", "1", *argv], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=installed_env())
        self.marker, self.count, self.first, self.last = marker, 0, None, None
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        tail = b""
        while chunk := self.proc.stdout.read1(1 << 20):
            now = time.monotonic()
            if self.first is None:
                self.first = now
            data = tail + chunk
            self.count += data.count(self.marker)
            tail = data[-(len(self.marker) - 1):] if len(self.marker) > 1 else b""
            self.last = now

    def cpu(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def wait_count(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.count < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.count} of {n} records")
            time.sleep(0.005)

    def quiet(self, seconds: float = 0.5) -> None:
        """Until no output came for `seconds` (the producer has stopped)."""
        while True:
            last = self.last
            time.sleep(seconds)
            if self.last == last:
                return

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def ring_round(lp: Loaded, n: int, as_json: bool) -> float:
    lp.mode(False)
    lp.produce(n)
    argv = [PY, "-m", "bpfsession", "map", "events", "pinned", lp.map("bench_ring")]
    d = Drain(argv + (["-j"] if as_json else []), b"\n")
    try:
        d.wait_count(n)
    finally:
        d.stop()
    return n / (d.last - d.first)


def perf_round(lp: Loaded, n: int, argv: list[str], marker: bytes) -> tuple[int, float, float]:
    """(records delivered, the reader's CPU seconds, the producer's seconds)."""
    lp.mode(True)
    d = Drain(argv, marker)
    try:
        while d.count == 0:  # the reader is up once it delivers a record
            lp.produce(1)
            time.sleep(0.05)
        d.quiet(0.3)
        before, cpu0, start = d.count, d.cpu(), time.monotonic()
        lp.produce(n)
        produced = time.monotonic() - start
        d.quiet()
        delivered, cpu = d.count - before, d.cpu() - cpu0
    finally:
        d.stop()
    return delivered, cpu, produced


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(f"# {machine()}; {args.records} records of 12 bytes; {args.rounds} rounds")
    with tempfile.TemporaryDirectory(prefix="bsbench") as tmp:
        lp = Loaded(tmp)
        try:
            text, js = [], []
            for _ in range(args.rounds):
                text.append(ring_round(lp, args.records, False))
                js.append(ring_round(lp, args.records, True))
            print(f"ring, text: {statistics.median(text) / 1e6:.2f} M records/s "
                  f"(goal 1.00)")
            print(f"ring, -j:   {statistics.median(js) / 1e6:.2f} M records/s")
            ours_argv = [PY, "-m", "bpfsession", "map", "events", "pinned",
                         lp.map("bench_perf"), "-j"]
            bpftool_argv = ["bpftool", "-j", "map", "event_pipe", "pinned",
                            lp.map("bench_perf")]
            runs: dict[str, list[tuple[int, float, float]]] = {"bpfsession": [], "bpftool": []}
            for _ in range(args.rounds):
                runs["bpfsession"].append(perf_round(lp, args.records, ours_argv, b"\n"))
                runs["bpftool"].append(perf_round(lp, args.records, bpftool_argv,
                                                  b'"type":9,'))
            summary = {}
            for name, rs in runs.items():
                delivered = statistics.median(r[0] for r in rs)
                per_m = statistics.median(r[1] / max(r[0], 1) * 1e6 for r in rs)
                produced = statistics.median(r[2] for r in rs)
                summary[name] = (delivered, per_m)
                print(f"perf, -j, {name}: {delivered / args.records:.0%} of the records "
                      f"delivered, {per_m:.2f} CPU s per million, producer {produced:.1f} s")
            (od, oc), (td, tc) = summary["bpfsession"], summary["bpftool"]
            print(f"perf ratios bpfsession/bpftool: delivered {od / td:.2f}x, CPU per record "
                  f"{oc / tc:.2f}x")
        finally:
            lp.close()


if __name__ == "__main__":
    main()
