"""BPF_MAP_TYPE_RINGBUF from user space: the consumer side of the kernel's ring, by mmap.

Layout (kernel/bpf/ringbuf.c, include/uapi/linux/bpf.h; libbpf's ringbuf.c reads it the
same way): page 0 of the map fd is the consumer page, `consumer_pos` (u64) at offset 0,
mapped writable; from page 1 on, the producer page (`producer_pos` at offset 0, read-only)
and then the data area, mapped twice in a row so a record that wraps is contiguous.
Each record has an 8-byte header: u32 length with BUSY (1<<31: being written) and DISCARD
(1<<30) bits, u32 page offset; its data follows, and the next record starts at the
8-byte aligned end. Positions grow forever and are masked by (data size - 1).

Only the consumer page is writable, and only through a writable fd: a map fd opened
read-only (BPF_F_RDONLY, or a read-only hand-off) gets EACCES/EPERM on that mmap.

Ordering: the producer publishes with smp_store_release and we read the position before
the data. Python's unpack of an aligned u64 is one load; on x86-64 (TSO) load->load and
load->store order holds without fences, which is what this relies on.
"""

from __future__ import annotations

import mmap
import struct

BUSY = 1 << 31
DISCARD = 1 << 30
HDR_SIZE = 8
# From this many records waiting on, a run of records of one length is taken in one go as
# an (n, length) numpy array (imported then, not before): ~20x fewer Python steps.
RUN_MIN = 64
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


class RingBuf:
    """The consumer of one ring buffer map; `read()` returns what is there and frees it."""

    def __init__(self, map_fd: int, max_entries: int):
        page = mmap.PAGESIZE
        self.page = page
        self.mask = max_entries - 1
        # OSError EACCES / EPERM here: the fd is read-only.
        self.consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        try:
            self.data = mmap.mmap(map_fd, page + 2 * max_entries, mmap.MAP_SHARED,
                                  mmap.PROT_READ, offset=page)
        except BaseException:
            self.consumer.close()
            raise

    def read(self, limit: int = 1 << 16) -> list:
        """Up to about `limit` committed records (discarded ones skipped), oldest first:
        each item is one record (bytes) or a run of records of one length (an (n, length)
        uint8 numpy array, copied out of the ring)."""
        data, out, count = self.data, [], 0
        cons = _U64.unpack_from(self.consumer, 0)[0]
        prod = _U64.unpack_from(data, 0)[0]
        base, mask = self.page, self.mask
        while cons < prod and count < limit:
            off = base + (cons & mask)
            hdr = _U32.unpack_from(data, off)[0]
            if hdr & BUSY:
                break  # reserved, not yet submitted: later records wait for it
            length = hdr & ~(BUSY | DISCARD)
            stride = (length + HDR_SIZE + 7) & ~7
            if not hdr & DISCARD and prod - cons >= RUN_MIN * stride:
                run = self._run(off, hdr, stride, min((prod - cons) // stride, limit - count))
                out.append(run)
                count += len(run)
                cons += len(run) * stride
                continue
            if not hdr & DISCARD:
                out.append(data[off + HDR_SIZE:off + HDR_SIZE + length])
                count += 1
            cons += stride
        _U64.pack_into(self.consumer, 0, cons)
        return out

    def _run(self, off: int, hdr: int, stride: int, n: int):
        """The records from `off` on whose header equals `hdr` (same length, committed), at
        most `n` of them (the data area is mapped twice: they are contiguous)."""
        import numpy as np

        heads = np.ndarray((n,), dtype="<u4", buffer=self.data, offset=off, strides=(stride,))
        differ = np.flatnonzero(heads != hdr)
        k = int(differ[0]) if differ.size else n
        rows = np.ndarray((k, stride), dtype=np.uint8, buffer=self.data, offset=off)
        return rows[:, HDR_SIZE:HDR_SIZE + hdr].copy()

    def close(self) -> None:
        self.data.close()
        self.consumer.close()
