"""`bpfsession map events`: records of a real program, from a ring buffer and a perf event
array, in order, as hex, -j and --type; perf drops reported; read-only fds refused.

tests/bpf/events.bpf.c writes {u32 seq, u32 len, u32 magic} into both maps on every run;
`bpftool prog run ... repeat N` (BPF_PROG_TEST_RUN) runs it N times on the CPU taskset
picks, so the records' number, order and CPU are known.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time

import pytest

from bpfsession import events, maps
from bpfsession.errors import BpfSessionError
from bpfsession.kernel import bpf
from tests.conftest import compile_bpf
from tests.helpers import BPFSESSION, ROOT, run, uniq, wait_for

pytest_plugins = ["tests.sessions_fixtures"]

MAGIC = 0xB5E5B5E5
PKT_LEN = 64


class Prog:
    def __init__(self, base: str, pkt: str):
        self.base, self.pkt = base, pkt
        self.prog = f"{base}/progs/emit"

    def pin(self, name: str) -> str:
        return f"{base_maps(self.base)}/{name}"

    def produce(self, n: int, cpu: int = 0) -> None:
        run(["taskset", "-c", str(cpu), "bpftool", "prog", "run", "pinned", self.prog,
             "data_in", self.pkt, "repeat", str(n)])

    def seq(self) -> int:
        fd = bpf.obj_get(self.pin("ev_seq"))
        try:
            value = bytearray(8)
            bpf.map_lookup_elem(fd, bytes(4), value)
            return int.from_bytes(value, "little")
        finally:
            os.close(fd)


def base_maps(base: str) -> str:
    return f"{base}/maps"


@pytest.fixture
def prog(bpf_build_dir, short_tmp):
    obj = compile_bpf(ROOT / "tests" / "bpf" / "events.bpf.c", bpf_build_dir)
    base = f"/sys/fs/bpf/{uniq('bsev')}"
    os.makedirs(base_maps(base))
    pkt = short_tmp / "pkt"
    pkt.write_bytes(bytes(PKT_LEN))
    try:
        run(["bpftool", "prog", "loadall", str(obj), f"{base}/progs", "pinmaps",
             base_maps(base)])
        yield Prog(base, str(pkt))
    finally:
        subprocess.run(["rm", "-rf", base])


class Stream:
    """A running `map events`, its stdout lines on a queue."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([*BPFSESSION, "map", "events", *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def take(self, n: int, timeout: float = 30) -> list[str]:
        out, deadline = [], time.monotonic() + timeout
        while len(out) < n:
            try:
                out.append(self.lines.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"{len(out)} of {n} records within {timeout} s") \
                    from None
        return out

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, err


def seq_of(rec: dict) -> int:
    return int.from_bytes(bytes(int(b, 16) for b in rec["data"][:4]), "little")


def record(seq: int) -> list[str]:
    data = b"".join(n.to_bytes(4, "little") for n in (seq, PKT_LEN, MAGIC))
    return [f"0x{b:02x}" for b in data]


def test_ring_buffer_records_in_order_as_hex_json_and_typed(prog):
    prog.produce(100)  # before the reader: a ring keeps them until someone reads
    s = Stream("pinned", prog.pin("ev_ring"), "-j", "--type", "u32,u32,u32")
    try:
        first = [json.loads(x) for x in s.take(100)]
        prog.produce(50)
        more = [json.loads(x) for x in s.take(50)]
    finally:
        code, err = s.stop()
    assert (code, err) == (0, "")
    for seq, rec in enumerate(first + more):
        assert rec == {"data": record(seq),
                       "formatted": {"f0": seq, "f1": PKT_LEN, "f2": MAGIC}}
    assert s.lines.empty()

    prog.produce(3)
    text = Stream("pinned", prog.pin("ev_ring"))
    try:
        lines = text.take(3)
    finally:
        assert text.stop() == (0, "")
    assert lines == [" ".join(b[2:] for b in record(seq)) + "\n" for seq in (150, 151, 152)]


def test_perf_event_array_records_per_cpu_and_drops(prog):
    s = Stream("pinned", prog.pin("ev_perf"), "-j")
    try:
        # Records written before the reader stored its perf buffers are dropped by the
        # kernel, unseen: write one at a time until the reader shows one.
        def ready() -> bool:
            prog.produce(1, cpu=0)
            try:
                s.take(1, timeout=0.3)
            except AssertionError:
                return False
            return True

        wait_for(ready, timeout=30, what="the perf reader")
        start = prog.seq()
        prog.produce(200, cpu=0)
        got: list[dict] = []
        while len(got) < 200:  # a late warm-up record may come first: not one of these
            rec = json.loads(s.take(1)[0])
            if seq_of(rec) >= start:
                got.append(rec)
        assert got == [{"cpu": 0, "data": record(start + i)} for i in range(200)]

        # Stopped, the reader drops what does not fit in its buffer; the kernel says how
        # many with the next record it can write on that CPU.
        os.kill(s.proc.pid, signal.SIGSTOP)
        try:
            prog.produce(30000, cpu=0)
        finally:
            os.kill(s.proc.pid, signal.SIGCONT)
        wait_for(lambda: s.lines.qsize() > 1000, what="the buffered records")
        prog.produce(1, cpu=0)
        lost, samples = 0, 0
        deadline = time.monotonic() + 30
        while lost + samples < 30001:
            assert time.monotonic() < deadline, (lost, samples)
            rec = json.loads(s.take(1)[0])
            if "lost" in rec:
                assert rec["cpu"] == 0
                lost += rec["lost"]
            else:
                samples += 1
        assert lost > 0 and samples > 0
    finally:
        code, err = s.stop()
    assert (code, err) == (0, "")


def test_read_only_ring_buffer_fd_is_refused_in_one_line(prog):
    fd = bpf.obj_get(prog.pin("ev_ring"), bpf.BPF_F_RDONLY)
    m = maps.OpenMap(fd, bpf.map_info(fd), "BPF_MAP0")
    with m, pytest.raises(BpfSessionError) as err:
        events.open_reader(m)
    assert err.value.hint == ("BPF_MAP0 was opened read-only: reading a ring buffer needs a "
                              "writable fd (its consumer position is written back); ask for "
                              "a read-write hand-off")


def test_other_maps_and_bad_types_are_one_line(prog):
    res = run([*BPFSESSION, "map", "events", "pinned", prog.pin("ev_seq")], check=False,
              cwd=ROOT)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == (f"bpfsession: pinned {prog.pin('ev_seq')} is a array map: `map "
                          "events` reads ringbuf and perf_event_array maps (`map dump` reads "
                          "the others)\n")
    res = run([*BPFSESSION, "map", "events", "pinned", prog.pin("ev_ring"), "--type", "u33"],
              check=False, cwd=ROOT)
    assert res.returncode == 1 and res.stderr.startswith("bpfsession: --type u33: ")
    assert res.stderr.count("\n") == 1


def test_no_fd_left_behind_and_perf_slots_emptied(prog):
    from tests.helpers import open_fds

    before = open_fds()
    fd = bpf.obj_get(prog.pin("ev_perf"))
    m = maps.OpenMap(fd, bpf.map_info(fd), "ev_perf")
    with m:
        reader = events.open_reader(m)
        assert len(reader.fds) == maps.possible_cpus()
        reader.close()
        # Its slots are empty again: a record now has no buffer to go to (no error either).
        for cpu in range(maps.possible_cpus()):
            assert not bpf.map_delete_elem(m.fd, cpu.to_bytes(4, "little"))
    assert open_fds() == before


@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize("cpu", [None, 1])
@pytest.mark.parametrize("layout", [None, "u32,u32,u32", "u8,s32,u16", "s64", "u32,char[4]",
                                    "u8[2],u16"])
def test_runs_of_records_format_as_each_record_does(as_json, cpu, layout):
    import numpy as np

    rows = np.random.default_rng(7).integers(0, 256, (50, 13), dtype=np.uint8)
    fmt = events.Formatter(as_json, layout)
    items = [rows[:20], b"\x01\x02", events.Lost(3), rows[20:]]
    one_by_one = [fmt.line(cpu, r.tobytes()) for r in rows[:20]] + \
        [fmt.line(cpu, b"\x01\x02"), fmt.line(cpu, events.Lost(3))] + \
        [fmt.line(cpu, r.tobytes()) for r in rows[20:]]
    assert fmt.render(cpu, items) == "".join(one_by_one).encode()


def test_inside_a_session_by_env_name(prog, sessions, sess_tmp):
    out = sess_tmp / "events.jsonl"
    fd = bpf.obj_get(prog.pin("ev_ring"))
    try:
        sessions.new([fd], cmd=("sh", "-c", f"exec {' '.join(BPFSESSION)} map events "
                                           f"BPF_MAP0 -j > {out} 2>&1"))
    finally:
        os.close(fd)
    start = prog.seq()
    prog.produce(5)
    wait_for(lambda: out.exists() and out.read_text().count("\n") >= 5,
             what="the session's reader to write the records")
    lines = out.read_text().splitlines()
    assert [json.loads(x)["data"] for x in lines] == [record(start + i) for i in range(5)]


def test_unprivileged_user_is_told_in_one_line(prog):
    from tests.sessions_helpers import as_user

    res = run([*as_user(65534), *BPFSESSION, "map", "events", "pinned", prog.pin("ev_ring")],
              check=False, cwd=ROOT)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("bpfsession: ") and res.stderr.count("\n") == 1
