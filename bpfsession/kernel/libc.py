"""The C library, loaded once for the whole kernel layer (bpf, ns, pidfd).

Each user binds the functions it needs through function(): every call returns a new
foreign-function object over the one loaded library, so one module's prototype
(argtypes, restype) never changes another's. check() turns a -1 return into
KernelError(errno, name) through one path.
"""

from __future__ import annotations

import ctypes

from bpfsession.errors import KernelError

LIBC = ctypes.CDLL(None, use_errno=True)


def function(name: str, restype, *argtypes):
    """A fresh prototype of libc's `name`; argtypes empty: the caller passes ctypes values."""
    func = LIBC[name]  # indexing, unlike attribute access, never hands out a shared object
    func.restype = restype
    if argtypes:
        func.argtypes = list(argtypes)
    return func


def check(ret: int, name: str, detail: str = "") -> int:
    """`ret`, or KernelError(errno, name, detail) when the call returned < 0."""
    if ret < 0:
        raise KernelError(ctypes.get_errno(), name, detail)
    return ret
