"""perf_event_open(2) buffers for BPF_MAP_TYPE_PERF_EVENT_ARRAY (bpf_perf_event_output).

One software event (PERF_COUNT_SW_BPF_OUTPUT) per CPU, its ring mmapped, its fd stored
in the map at that CPU's index: what libbpf's perf_buffer and `bpftool map event_pipe`
do. Layouts follow include/uapi/linux/perf_event.h: `struct perf_event_attr` (we pass
PERF_ATTR_SIZE_VER1, 72 bytes: the kernel zero-fills the rest), and the mmap'd `struct
perf_event_mmap_page` with data_head at 1024 and data_tail at 1032; the data pages follow
the first page. Records: `struct perf_event_header` {u32 type; u16 misc; u16 size}, then
PERF_RECORD_SAMPLE {u32 size; raw bytes (padded so that the record is 8-aligned)} or
PERF_RECORD_LOST {u64 id; u64 lost}.
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import struct

from bpfsession.errors import KernelError
from bpfsession.kernel import libc

_NR_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "arm64": 241, "riscv64": 241,
                       "ppc64le": 319, "s390x": 331}
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_SAMPLE_RAW = 1 << 10
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_EVENT_IOC_ENABLE = 0x2400  # _IO('$', 0)
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
_DATA_HEAD = 1024
_DATA_TAIL = 1032
RUN_MIN = 64  # as kernel/ringbuf.py: runs of same-size samples taken as one numpy array


class _Attr(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),  # the bitfield word: disabled, inherit, ... (all 0)
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),
        ("config2", ctypes.c_uint64),
    ]


_syscall = libc.function("syscall", ctypes.c_long)
_HEADER = struct.Struct("<IHH")
_U64 = struct.Struct("<Q")


def perf_event_open_bpf_output(cpu: int) -> int:
    """A PERF_COUNT_SW_BPF_OUTPUT event on `cpu` that wakes its reader on every sample."""
    nr = _NR_PERF_EVENT_OPEN.get(os.uname().machine)
    if nr is None:
        raise KernelError(38, "perf_event_open", f"no syscall number for {os.uname().machine}")
    attr = _Attr()
    attr.type = PERF_TYPE_SOFTWARE
    attr.size = ctypes.sizeof(_Attr)
    attr.config = PERF_COUNT_SW_BPF_OUTPUT
    attr.sample_period = 1
    attr.sample_type = PERF_SAMPLE_RAW
    attr.wakeup_events = 1
    ret = _syscall(ctypes.c_long(nr), ctypes.byref(attr), ctypes.c_int(-1), ctypes.c_int(cpu),
                   ctypes.c_int(-1), ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if ret < 0:
        raise KernelError(ctypes.get_errno(), "perf_event_open", f"cpu {cpu}")
    return ret


class PerfBuffer:
    """One CPU's event and ring; `read()` returns ("sample", bytes) / ("lost", count)."""

    def __init__(self, cpu: int, pages: int = 64):
        self.cpu = cpu
        self.fd = perf_event_open_bpf_output(cpu)
        page = mmap.PAGESIZE
        self.size = pages * page  # a power of two pages, as the kernel requires
        try:
            self.ring = mmap.mmap(self.fd, page + self.size, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
            fcntl.ioctl(self.fd, PERF_EVENT_IOC_ENABLE, 0)
        except BaseException:
            os.close(self.fd)
            raise
        self.base = page

    def read(self, limit: int = 1 << 16) -> list[tuple[str, object]]:
        """("sample", bytes), ("samples", (n, size) uint8 array of a run of same-size
        samples), ("lost", count), oldest first."""
        ring, out, count = self.ring, [], 0
        head = _U64.unpack_from(ring, _DATA_HEAD)[0]
        tail = _U64.unpack_from(ring, _DATA_TAIL)[0]
        size, base = self.size, self.base
        while tail < head and count < limit:
            off = tail % size
            if off + 8 <= size:
                rtype, _, rsize = _HEADER.unpack_from(ring, base + off)
            else:
                rtype, _, rsize = _HEADER.unpack(self._copy(off, 8))
            if rsize < 8:
                break  # a corrupt header: never expected; stop rather than spin
            n = min(head - tail, size - off) // rsize
            if rtype == PERF_RECORD_SAMPLE and n >= RUN_MIN:
                run = self._run(base + off, rsize, min(n, limit - count))
                out.append(("samples", run))
                count += len(run)
                tail += len(run) * rsize
                continue
            count += 1
            body = (ring[base + off + 8:base + off + rsize] if off + rsize <= size
                    else self._copy(off, rsize)[8:])
            if rtype == PERF_RECORD_SAMPLE:
                n = int.from_bytes(body[:4], "little")
                out.append(("sample", bytes(body[4:4 + n])))
            elif rtype == PERF_RECORD_LOST:
                out.append(("lost", int.from_bytes(body[8:16], "little")))
            tail += rsize
        _U64.pack_into(ring, _DATA_TAIL, tail)
        return out

    def _run(self, off: int, rsize: int, n: int):
        """The raw data of the samples from `off` on that have the first one's header and
        raw size (at most `n`, none past the ring's end)."""
        import numpy as np

        heads = np.ndarray((n,), dtype="<u8", buffer=self.ring, offset=off, strides=(rsize,))
        raws = np.ndarray((n,), dtype="<u4", buffer=self.ring, offset=off + 8,
                          strides=(rsize,))
        differ = np.flatnonzero((heads != heads[0]) | (raws != raws[0]))
        k = int(differ[0]) if differ.size else n
        rows = np.ndarray((k, rsize), dtype=np.uint8, buffer=self.ring, offset=off)
        return rows[:, 12:12 + int(raws[0])].copy()

    def _copy(self, off: int, n: int) -> bytes:
        """`n` bytes of the ring from offset `off`, across its end."""
        first = min(n, self.size - off)
        return self.ring[self.base + off:self.base + off + first] + \
            self.ring[self.base:self.base + n - first]

    def close(self) -> None:
        self.ring.close()
        os.close(self.fd)
