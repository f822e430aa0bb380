"""`map events MAP`: the records a program writes into a ring buffer or perf event array.

    BPF_MAP_TYPE_RINGBUF          one ring, mmapped (kernel/ringbuf.py), epoll on the map fd
    BPF_MAP_TYPE_PERF_EVENT_ARRAY a perf buffer per CPU (kernel/perf.py), its fd stored at
                                  the CPU's index; epoll on the perf fds

One record a line: its bytes in hex by default (`2a 00 00 00 ...`), `-j` JSON Lines
(`{"data": ["0x2a", ...]}`, perf records with their `cpu` first), and with `--type T` (the
`--value-type` layout syntax) the record's fields as well (`formatted`). Perf buffers
report records the kernel dropped while we were not reading (`lost`); ring buffers have
no such count (bpf_ringbuf_output fails in the program instead, which may count it).
"""

from __future__ import annotations

import errno
import select

from bpfsession.errors import BpfSessionError, KernelError
from bpfsession.kernel import bpf
from bpfsession.mapfmt import compact, hex_node
from bpfsession.maps import OpenMap, possible_cpus

PERF_PAGES = 64  # per CPU (256 KiB with 4 KiB pages); a power of two, as perf requires


class Record:
    """A sample (`data`) or a drop count (`lost`); `cpu` for perf buffers, else None."""

    __slots__ = ("cpu", "data", "lost")

    def __init__(self, cpu: int | None, data: bytes | None = None, lost: int = 0):
        self.cpu, self.data, self.lost = cpu, data, lost


class RingReader:
    def __init__(self, m: OpenMap):
        from bpfsession.kernel.ringbuf import RingBuf

        try:
            self.ring = RingBuf(m.fd, m.info.max_entries)
        except OSError as err:
            if err.errno in (errno.EACCES, errno.EPERM):
                raise BpfSessionError(f"{m.label} was opened read-only: reading a ring buffer "
                                      "needs a writable fd (its consumer position is "
                                      "written back); ask for a read-write hand-off") \
                    from None
            raise BpfSessionError(f"cannot map the ring buffer {m.label}: "
                                  f"{err.strerror}") from None
        self.fds = {m.fd: None}

    def read(self, fd: int) -> list[Record]:
        return [Record(None, bytes(d)) for d in self.ring.read()]

    def close(self) -> None:
        self.ring.close()


class PerfReader:
    def __init__(self, m: OpenMap, pages: int = PERF_PAGES):
        from bpfsession.kernel.perf import PerfBuffer

        self.m = m
        self.buffers: dict[int, PerfBuffer] = {}
        self.slots: list[int] = []
        try:
            for cpu in range(min(possible_cpus(), m.info.max_entries)):
                try:
                    buf = PerfBuffer(cpu, pages)
                except KernelError as err:
                    if err.errno == errno.ENODEV:
                        continue  # an offline CPU
                    raise BpfSessionError(f"cannot open a perf buffer on CPU {cpu}: "
                                          f"{err.strerror} (needs root or "
                                          "perf_event_paranoid <= 1)") from None
                self.buffers[buf.fd] = buf
                self._store(cpu, buf.fd)
        except BaseException:
            self.close()
            raise
        self.fds = {fd: b.cpu for fd, b in self.buffers.items()}

    def _store(self, cpu: int, fd: int) -> None:
        key = cpu.to_bytes(4, "little")
        try:
            bpf.map_update_elem(self.m.fd, key, fd.to_bytes(4, "little"))
        except KernelError as err:
            hint = (" (the fd is read-only: ask for a read-write hand-off)"
                    if err.errno == errno.EPERM else "")
            raise BpfSessionError(f"cannot attach a perf buffer to {self.m.label}: "
                                  f"{err.strerror}{hint}") from None
        self.slots.append(cpu)

    def read(self, fd: int) -> list[Record]:
        buf = self.buffers[fd]
        return [Record(buf.cpu, data) if kind == "sample" else Record(buf.cpu, lost=data)
                for kind, data in buf.read()]

    def close(self) -> None:
        # The map keeps a perf event alive while its slot holds it: empty ours first.
        for cpu in self.slots:
            try:
                bpf.map_delete_elem(self.m.fd, cpu.to_bytes(4, "little"))
            except KernelError:
                pass
        self.slots = []
        for buf in self.buffers.values():
            buf.close()
        self.buffers = {}


def open_reader(m: OpenMap):
    kind = m.info.type_name
    if kind == "ringbuf":
        return RingReader(m)
    if kind == "perf_event_array":
        return PerfReader(m)
    raise BpfSessionError(f"{m.label} is a {kind} map: `map events` reads ringbuf and "
                          "perf_event_array maps (`map dump` reads the others)")


class Formatter:
    """Records as lines: hex, or JSON (`-j`), with the `--type` layout's fields."""

    def __init__(self, as_json: bool, type_spec: str | None = None):
        self.as_json = as_json
        self.typed = None
        if type_spec:
            from bpfsession.btf import Btf, BtfError, Dumper

            try:
                btf, tid = Btf.from_layout(type_spec)
            except BtfError as err:
                raise BpfSessionError(f"--type {type_spec}: {err}") from None
            self.typed = (Dumper(btf, plain=False), tid, btf.size_of(tid))

    def line(self, r: Record) -> str:
        if r.data is None:
            if self.as_json:
                return f'{{"cpu":{r.cpu},"lost":{r.lost}}}\n'
            return f"lost {r.lost} records on cpu {r.cpu}\n"
        formatted = None
        if self.typed and len(r.data) >= self.typed[2]:
            dumper, tid, size = self.typed
            formatted = compact(dumper.dump(tid, r.data[:size]))
        if not self.as_json:
            return (formatted or r.data.hex(" ")) + "\n"
        head = "" if r.cpu is None else f'"cpu":{r.cpu},'
        tail = "" if formatted is None else f',"formatted":{formatted}'
        return f'{{{head}"data":[{",".join(hex_node(r.data))}]{tail}}}\n'


def run(m: OpenMap, out, as_json: bool, type_spec: str | None) -> None:
    """Stream `m`'s records to `out` (binary) until SIGINT, SIGTERM or SIGHUP."""
    from bpfsession.stopsignals import stop_on_signals

    fmt = Formatter(as_json, type_spec)
    with stop_on_signals():
        reader = open_reader(m)
        try:
            _pump(reader, fmt, out)
        finally:
            reader.close()


def _pump(reader, fmt: Formatter, out) -> None:
    ep = select.epoll()
    try:
        for fd in reader.fds:
            ep.register(fd, select.EPOLLIN)
        # Records written before we started are read first, without waiting.
        ready = list(reader.fds)
        while True:
            for fd in ready:
                records = reader.read(fd)
                while records:
                    out.write("".join(map(fmt.line, records)).encode())
                    records = reader.read(fd)
            out.flush()
            ready = [fd for fd, _ in ep.poll()]
    finally:
        ep.close()
