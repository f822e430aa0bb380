#!/usr/bin/env python3
"""`bpfsession tui` with 500 live sessions, side by side with the discovery it displays.

Set-up: N (default 500) `tc exec bpf imp UDS run sleep 600` sessions sharing 4 maps.
Measured in one run, in this process unless said otherwise:

  bpfsession list -j         the CLI over the same sessions, whole process (median)
  discover.scan()            the discovery alone, in this process (median)
  first full render          BpfSessionApp headless at 120x40: from entering the app to
                             the table holding every session, drawn (median of a few)
  refresh: worker            per refresh, in the worker thread: scan + row formatting
                             (wall clock, and the thread's CPU time: the wall clock also
                             counts waiting for the GIL while the UI thread draws)
  refresh: UI thread         per refresh, on the UI thread: diffing and updating the table
                             (ages of young sessions change every second: every row
                             gets a cell update, the worst case)
  key press while refreshing the app refreshing back to back (interval 0): the time from
                             a Down key to the cursor's RowHighlighted handled

Goals (issue 5): the UI thread's share of a refresh at most 20% of the discovery it
displays; a key answered within 100 ms while refreshing.
Usage (as root): .venv/bin/python bench/bench_tui.py [--sessions N] [--rounds N]
Everything it starts is ended (by process group) and removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PY, ROOT, end, start_receivers, timed, workspace  # noqa: E402
from bpfsession import discover  # noqa: E402
from bpfsession.kernel import bpf  # noqa: E402


def start_sessions(n: int, tmp: str, maps: list[int]) -> list[subprocess.Popen]:
    socks = [os.path.join(tmp, f"u{i}") for i in range(n)]
    return start_receivers({uds: ["tc", "exec", "bpf", "imp", uds, "run", "sleep", "600"]
                            for uds in socks}, maps, stderr=subprocess.DEVNULL)


def progress(text: str) -> None:
    print(f"  ({text})", file=sys.stderr, flush=True)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def time_list(runs: int) -> float:
    return median_ms([timed([PY, "-m", "bpfsession", "list", "-j"]) for _ in range(runs)])


def time_scan(runs: int) -> tuple[float, float, int]:
    """(wall ms, CPU ms, sessions) of discover.scan() in this process, medians."""
    walls, cpus, count = [], [], 0
    for _ in range(runs):
        t, c = time.perf_counter(), time.thread_time()
        count = len(discover.scan())
        walls.append(time.perf_counter() - t)
        cpus.append(time.thread_time() - c)
    return median_ms(walls), median_ms(cpus), count


async def first_render() -> float:
    from tui.app import BpfSessionApp
    from tui.widgets import SessionsTable

    t = time.perf_counter()
    app = BpfSessionApp(interval=None)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.main.query_one(SessionsTable)
        while not app.stats.scans or table.row_count < app.stats.sessions:
            await asyncio.sleep(0.001)
        await pilot.pause()  # the frame with every row is drawn
        return time.perf_counter() - t


async def refreshes(rounds: int) -> tuple[list[float], list[float], list[float]]:
    from tui.app import BpfSessionApp

    app = BpfSessionApp(interval=1.0)
    async with app.run_test(size=(120, 40)) as pilot:
        while app.stats.scans < rounds + 1:
            await pilot.pause(0.05)
        st = app.stats
        return list(st.scan_history)[1:], list(st.cpu_history)[1:], list(st.apply_history)[1:]


async def key_latency(presses: int) -> list[float]:
    from textual.widgets import DataTable

    from tui.app import BpfSessionApp
    from tui.widgets import SessionsTable

    handled: list[float] = []

    class Timed(BpfSessionApp):
        CSS_PATH = str(ROOT / "tui" / "app.tcss")

        def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
            handled.append(time.perf_counter())

    app = Timed(interval=0)  # refresh back to back: the UI thread is always contended
    samples = []
    async with app.run_test(size=(120, 40)) as pilot:
        while app.stats.scans < 2:
            await pilot.pause(0.05)
        table = app.main.query_one(SessionsTable)
        down = True
        for _ in range(presses):
            if table.cursor_row >= table.row_count - 1 or table.cursor_row >= 30:
                down = False
            elif table.cursor_row <= 0:
                down = True
            before = len(handled)
            t = time.perf_counter()
            await pilot.press("down" if down else "up")
            while len(handled) == before and time.perf_counter() - t < 2:
                await asyncio.sleep(0.0005)
            samples.append(handled[-1] - t if len(handled) > before else float("inf"))
            await asyncio.sleep(0.02)
    return samples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=10, help="refreshes measured")
    ap.add_argument("--runs", type=int, default=5, help="runs of list -j / scan / render")
    ap.add_argument("--presses", type=int, default=60)
    args = ap.parse_args()

    maps = [bpf.map_create("hash", 4, 8, 64, "bench_h"), bpf.map_create("array", 4, 8, 4,
            "bench_a"), bpf.map_create("hash", 8, 16, 256, "bench_f"),
            bpf.map_create("array", 4, 4, 1, "bench_t")]
    with workspace("bsbtui", maps) as tmp:
        procs: list[subprocess.Popen] = []
        try:
            t = time.perf_counter()
            procs = start_sessions(args.sessions, tmp, maps)
            print(f"set-up: {args.sessions} tc exec sessions in {time.perf_counter() - t:.1f} s")
            time.sleep(0.5)
            list_ms = time_list(args.runs)
            scan_ms, scan_cpu_ms, count = time_scan(args.runs)
            progress(f"list -j {list_ms:.0f} ms, scan {scan_ms:.0f} ms")
            renders = [asyncio.run(first_render()) for _ in range(3)]
            progress(f"first render {median_ms(renders):.0f} ms")
            scans, cpus, applies = asyncio.run(refreshes(args.rounds))
            progress("refreshes")
            keys = asyncio.run(key_latency(args.presses))
        finally:
            end(procs, signal.SIGKILL)

    worker_ms, worker_cpu_ms, ui_ms = median_ms(scans), median_ms(cpus), median_ms(applies)
    keys_ms = sorted(k * 1000 for k in keys)
    p95 = keys_ms[int(len(keys_ms) * 0.95) - 1]
    print(f"sessions seen: {count} (this machine's others included)")
    print(f"{'bpfsession list -j (process)':34} {list_ms:8.1f} ms")
    print(f"{'discover.scan() (in process)':34} {scan_ms:8.1f} ms   1.00   "
          f"(CPU {scan_cpu_ms:.1f} ms)")
    print(f"{'first full render (headless)':34} {median_ms(renders):8.1f} ms   "
          f"{median_ms(renders) / list_ms:.2f}x list -j")
    print(f"{'refresh: worker (scan + rows)':34} {worker_ms:8.1f} ms   "
          f"{worker_ms / scan_ms:.2f}x scan   (CPU {worker_cpu_ms:.1f} ms, "
          f"{worker_cpu_ms / scan_cpu_ms:.2f}x the scan's CPU)")
    print(f"{'refresh: UI thread (table update)':34} {ui_ms:8.1f} ms   "
          f"{ui_ms / scan_ms:.2f}x scan   (goal <= 0.20)")
    print(f"{'key press while refreshing':34} p50 {statistics.median(keys_ms):.1f} ms  "
          f"p95 {p95:.1f} ms  max {keys_ms[-1]:.1f} ms   (goal <= 100 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
