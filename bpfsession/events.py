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
from bpfsession.jsonw import compact
from bpfsession.kernel import bpf
from bpfsession.mapfmt import hex_node
from bpfsession.maps import OpenMap, possible_cpus

PERF_PAGES = 64  # per CPU (256 KiB with 4 KiB pages); a power of two, as perf requires


class Lost(int):
    """A perf buffer's count of records the kernel dropped (it was full)."""


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

    def read(self, fd: int) -> tuple[int | None, list]:
        """(None: no CPU, the records: bytes, or (n, length) arrays of many)."""
        return None, self.ring.read()

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
                                          f"{err.strerror} (a CPU-wide event needs root, "
                                          "CAP_PERFMON, or kernel.perf_event_paranoid <= 0)")\
                        from None
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

    def read(self, fd: int) -> tuple[int | None, list]:
        """(the buffer's CPU, its records: bytes, or arrays of many, or Lost counts)."""
        buf = self.buffers[fd]
        return buf.cpu, [Lost(data) if kind == "lost" else data for kind, data in buf.read()]

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
        self.typed = self.scalars = None
        self.fixed: dict[tuple[int | None, int], FixedLines] = {}
        if type_spec:
            from bpfsession.btf.dump import Dumper
            from bpfsession.btf.parse import Btf, BtfError

            try:
                btf, tid = Btf.from_layout(type_spec)
            except BtfError as err:
                raise BpfSessionError(f"--type {type_spec}: {err}") from None
            self.typed = (Dumper(btf, plain=False), tid, btf.size_of(tid))
            self.scalars = _scalar_template(btf, tid)

    def render(self, cpu: int | None, items: list) -> bytes:
        """The lines of one read: records (bytes), runs of records (arrays), Lost counts."""
        parts, lines = [], []
        for item in items:
            if isinstance(item, (bytes, Lost)):
                lines.append(self.line(cpu, item))
                continue
            if self.typed and (self.scalars is None or item.shape[1] < self.typed[2]):
                lines.extend(self.line(cpu, row.tobytes()) for row in item)  # one by one
                continue
            if lines:
                parts.append("".join(lines).encode())
                lines = []
            parts.append(self._run(cpu, item))
        if lines:
            parts.append("".join(lines).encode())
        return b"".join(parts)

    def _run(self, cpu: int | None, rows) -> bytes:
        """A run of records of one length: the hex from a line template (FixedLines), the
        `--type` fields (plain integers only) unpacked for the whole run at once."""
        key = (cpu, rows.shape[1])
        if key not in self.fixed:
            plain = Formatter(self.as_json) if self.typed else self
            self.fixed[key] = FixedLines(plain, cpu, rows.shape[1])
        hexed = self.fixed[key].format(rows)
        if not self.typed:
            return hexed
        import struct

        code, template = self.scalars
        size = self.typed[2]
        values = struct.iter_unpack(code, rows[:, :size].tobytes())
        if not self.as_json:
            return b"".join([template % v + b"\n" for v in values])
        width = len(hexed) // len(rows)  # each line ends in ]}\n: the fields go before }
        tail = b',"formatted":' + template + b"}\n"
        return b"".join([hexed[i * width:(i + 1) * width - 2] + tail % v
                         for i, v in enumerate(values)])

    def line(self, cpu: int | None, data: bytes | Lost) -> str:
        if isinstance(data, Lost):
            if self.as_json:
                return f'{{"cpu":{cpu},"lost":{int(data)}}}\n'
            return f"lost {int(data)} records on cpu {cpu}\n"
        formatted = None
        if self.typed and len(data) >= self.typed[2]:
            dumper, tid, size = self.typed
            formatted = compact(dumper.dump(tid, data[:size]))
        if not self.as_json:
            return (formatted or data.hex(" ")) + "\n"
        head = "" if cpu is None else f'"cpu":{cpu},'
        tail = "" if formatted is None else f',"formatted":{formatted}'
        return f'{{{head}"data":[{",".join(hex_node(data))}]{tail}}}\n'


def _scalar_template(btf, tid: int) -> tuple[str, bytes] | None:
    """For a layout of plain integers only (the common `u32,u64,...`): the struct format
    that unpacks a record and the %-template of its `formatted` JSON; None otherwise."""
    from bpfsession.btf.parse import KIND_STRUCT, int_code
    from bpfsession.jsonw import json_string

    t = btf.types[btf.resolve(tid)]
    if t.kind != KIND_STRUCT:
        code = int_code(btf, tid)
        return None if code is None else ("<" + code, b"%d")
    fmt, fields, at = "<", [], 0
    for m in t.members:
        code = int_code(btf, m.type)
        if code is None or m.bitfield_size or m.bit_offset % 8:
            return None
        fmt += "x" * (m.bit_offset // 8 - at) + code
        at = m.bit_offset // 8 + btf.size_of(m.type)
        fields.append(f"{json_string(m.name)}:%d")
    fmt += "x" * (t.size - at)
    return fmt, ("{" + ",".join(fields) + "}").encode()


class FixedLines:
    """The lines of many records of one length at once (numpy): every such line is the
    same template with two hex digits to fill per byte. The template is Formatter.line's
    own output for an all-0x00 record, the digits' places where it differs from the line
    of an all-0xff record: one way of writing a record, two speeds."""

    def __init__(self, fmt: Formatter, cpu: int | None, length: int):
        import numpy as np

        zeros = np.frombuffer(fmt.line(cpu, bytes(length)).encode(), np.uint8)
        ones = np.frombuffer(fmt.line(cpu, b"\xff" * length).encode(), np.uint8)
        diff = np.flatnonzero(zeros != ones)
        self.np, self.template, self.hi = np, zeros, diff[0::2]
        if zeros.size != ones.size or self.hi.size != length or \
                not np.array_equal(diff[1::2], self.hi + 1):
            raise AssertionError("record lines are not fixed-width")  # a bug, not input
        self.digits = np.frombuffer(b"0123456789abcdef", np.uint8)

    def format(self, rows) -> bytes:
        np = self.np
        out = np.empty((len(rows), self.template.size), np.uint8)
        out[:] = self.template
        out[:, self.hi] = self.digits[rows >> 4]
        out[:, self.hi + 1] = self.digits[rows & 15]
        return out.tobytes()


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


# After a round that found records, wait this long before polling again. Under load the
# kernel wakes a perf reader for every sample (wakeup_events=1, as libbpf does) and the
# ring's reader nearly so; handling each wakeup alone spends the CPU on wakeups, not
# records. Letting records gather for a millisecond turns many wakeups into one batch;
# a record that comes alone is still shown at once (the wait follows records, never
# precedes them).
GATHER = 0.001


def _pump(reader, fmt: Formatter, out) -> None:
    import time

    ep = select.epoll()
    try:
        for fd in reader.fds:
            ep.register(fd, select.EPOLLIN)
        # Records written before we started are read first, without waiting.
        ready = list(reader.fds)
        while True:
            for fd in ready:
                cpu, items = reader.read(fd)
                while items:
                    out.write(fmt.render(cpu, items))
                    out.flush()
                    cpu, items = reader.read(fd)
            time.sleep(GATHER)
            ready = [fd for fd, _ in ep.poll()]
    finally:
        ep.close()
