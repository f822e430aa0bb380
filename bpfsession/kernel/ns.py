"""setns(2), unshare(2), mount(2), umount2(2), open_tree(2), move_mount(2) through ctypes.

Python 3.11 has no os.setns / os.unshare, and no binding at all for the mount API.
Prototypes are declared once here; each wrapper is named after its syscall, takes
Python types and raises KernelError(errno, "<syscall>") on failure.

Constants follow include/uapi/linux/sched.h, include/uapi/linux/mount.h and
include/uapi/linux/nsfs.h.
"""

from __future__ import annotations

import ctypes
import fcntl
import os

from bpfsession.kernel import libc

# include/uapi/linux/sched.h
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000

# include/uapi/linux/mount.h (the classic mount(2) flags)
MS_RDONLY = 1
MS_BIND = 4096
MS_REC = 16384
MS_SLAVE = 1 << 19
MNT_DETACH = 2

# open_tree(2) / move_mount(2), Linux 5.2. Syscall numbers are the same on every
# architecture: they were added after the tables were unified (asm-generic/unistd.h).
_NR_OPEN_TREE = 428
_NR_MOVE_MOUNT = 429
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_RECURSIVE = 0x8000
AT_FDCWD = -100
MOVE_MOUNT_F_EMPTY_PATH = 0x00000004

# include/uapi/linux/nsfs.h: _IO(0xb7, 0x3), answers the CLONE_NEW* type of an nsfs fd.
NS_GET_NSTYPE = 0xB703

_setns = libc.function("setns", ctypes.c_int, ctypes.c_int, ctypes.c_int)
_unshare = libc.function("unshare", ctypes.c_int, ctypes.c_int)
_mount = libc.function("mount", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                       ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p)
_umount2 = libc.function("umount2", ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
_syscall = libc.function("syscall", ctypes.c_long)  # variadic: callers pass ctypes values
_check = libc.check


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def setns(fd: int, nstype: int) -> None:
    _check(_setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    """EINVAL when the process has more than one thread (CLONE_NEWNS needs one)."""
    _check(_unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0) -> None:
    _check(_mount(_b(source), _b(target), _b(fstype), flags, None), "mount", target)


def umount2(target: str, flags: int = 0) -> None:
    _check(_umount2(_b(target), flags), "umount2", target)


def open_tree(path: str, flags: int) -> int:
    """A new fd for (a detached clone of, with OPEN_TREE_CLONE) the mount at `path`.

    ENOSYS before Linux 5.2.
    """
    ret = _syscall(ctypes.c_long(_NR_OPEN_TREE), ctypes.c_int(AT_FDCWD),
                   ctypes.c_char_p(os.fsencode(path)), ctypes.c_uint(flags))
    return _check(ret, "open_tree", path)


def move_mount(from_fd: int, to_path: str) -> None:
    """Attach the detached mount `from_fd` at `to_path`."""
    ret = _syscall(ctypes.c_long(_NR_MOVE_MOUNT), ctypes.c_int(from_fd), ctypes.c_char_p(b""),
                   ctypes.c_int(AT_FDCWD), ctypes.c_char_p(os.fsencode(to_path)),
                   ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH))
    _check(ret, "move_mount", to_path)


def ns_type(fd: int) -> int | None:
    """The CLONE_NEW* type of namespace file `fd`, or None when it is no nsfs file."""
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        return None
