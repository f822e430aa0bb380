"""Is bpf(2) blocked by a seccomp filter? Asked by `new` before it binds anything.

Without a filter (`Seccomp: 0` in /proc/self/status, every host process) the answer is no,
from one small read and no ctypes: the start-up of `new` is measured. With one (`Seccomp:
2`, every container), bpf(2) is probed (kernel/bpf.py: refused()).
"""

from __future__ import annotations


def filtered(status: str = "/proc/self/status") -> bool:
    """True when a seccomp filter is installed on this process (SECCOMP_MODE_FILTER, 2)."""
    with open(status, "rb") as f:
        for line in f:
            if line.startswith(b"Seccomp:"):
                return line.split()[1:] == [b"2"]
    return False  # kernels without CONFIG_SECCOMP have no such line and no filters


def blocks_bpf() -> bool:
    """True when a seccomp filter refuses bpf(2) to this process."""
    if not filtered():
        return False
    from bpfsession.kernel import bpf

    return bpf.refused()
