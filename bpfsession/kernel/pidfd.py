"""pidfd_open(2) and pidfd_getfd(2) through ctypes: take a copy of another process's fd.

Both syscalls were added after the syscall tables were unified, so they have the same
numbers everywhere (include/uapi/asm-generic/unistd.h: pidfd_open 434, pidfd_getfd 438).
Each wrapper raises KernelError(errno, "pidfd_...") through one helper; callers turn the
errnos they expect into answers or hints.
"""

from __future__ import annotations

import ctypes

from bpfsession.kernel import libc

NR_PIDFD_OPEN = 434
NR_PIDFD_GETFD = 438

_syscall = libc.function("syscall", ctypes.c_long, ctypes.c_long, ctypes.c_long, ctypes.c_long,
                         ctypes.c_long)


def _call(nr: int, name: str, detail: str, a: int, b: int = 0, c: int = 0) -> int:
    return libc.check(_syscall(nr, a, b, c), name, detail)


def pidfd_open(pid: int, flags: int = 0) -> int:
    """A pidfd (close-on-exec) for `pid`, owned by the caller.

    ESRCH: no such process (it exited, or it is a zombie's thread); EINVAL: not a thread
    group leader.
    """
    return _call(NR_PIDFD_OPEN, "pidfd_open", f"pid {pid}", pid, flags)


def pidfd_getfd(pidfd: int, targetfd: int, flags: int = 0) -> int:
    """A duplicate (close-on-exec, same open file) of fd `targetfd` of the pidfd's process.

    Needs PTRACE_MODE_ATTACH_REALCREDS over the target: EPERM when that is refused;
    EBADF when the target has no such fd; ESRCH when the process has exited.
    """
    return _call(NR_PIDFD_GETFD, "pidfd_getfd", f"fd {targetfd}", pidfd, targetfd, flags)
