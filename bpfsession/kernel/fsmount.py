"""fsopen(2), fsconfig(2), fsmount(2): a file system mounted nowhere, reached by its fd.

`debug` needs tracefs, which these machines do not mount, and which a `--netns`
session's fresh /sys hides anyway. A detached mount (fsmount without move_mount) is
visible to no other process, needs no mount point and goes away with its last fd: there
is nothing to unmount afterwards. Paths are then opened relative to the fd (dir_fd=).

Constants follow include/uapi/linux/mount.h. The syscall numbers (Linux 5.2) are the same
on every architecture (asm-generic/unistd.h, added after the tables were unified).
"""

from __future__ import annotations

import ctypes
import os

from bpfsession.kernel import libc

_NR_FSOPEN = 430
_NR_FSCONFIG = 431
_NR_FSMOUNT = 432

FSOPEN_CLOEXEC = 0x00000001
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x00000001
MOUNT_ATTR_NOSUID = 0x00000002
MOUNT_ATTR_NODEV = 0x00000004
MOUNT_ATTR_NOEXEC = 0x00000008

_syscall = libc.function("syscall", ctypes.c_long)
_check = libc.check


def fsopen(fstype: str) -> int:
    """A file system context fd for `fstype` (ENODEV: the kernel lacks it; EPERM: no
    CAP_SYS_ADMIN; ENOSYS: before Linux 5.2)."""
    ret = _syscall(ctypes.c_long(_NR_FSOPEN), ctypes.c_char_p(fstype.encode()),
                   ctypes.c_uint(FSOPEN_CLOEXEC))
    return _check(ret, "fsopen", fstype)


def fsconfig_create(fs_fd: int) -> None:
    """FSCONFIG_CMD_CREATE: make (or, for single-instance file systems, find) the superblock."""
    ret = _syscall(ctypes.c_long(_NR_FSCONFIG), ctypes.c_int(fs_fd),
                   ctypes.c_uint(FSCONFIG_CMD_CREATE), ctypes.c_void_p(None),
                   ctypes.c_void_p(None), ctypes.c_int(0))
    _check(ret, "fsconfig")


def fsmount(fs_fd: int, attr_flags: int = 0) -> int:
    """A detached mount of the context's superblock; its fd is the mount's root directory."""
    ret = _syscall(ctypes.c_long(_NR_FSMOUNT), ctypes.c_int(fs_fd),
                   ctypes.c_uint(FSMOUNT_CLOEXEC), ctypes.c_uint(attr_flags))
    return _check(ret, "fsmount")


def detached_mount(fstype: str) -> int:
    """fsopen + fsconfig(CREATE) + fsmount: the root directory fd of a mount of `fstype`
    attached nowhere (nosuid, nodev, noexec). The caller owns the fd; closing it is the
    unmount."""
    fs_fd = fsopen(fstype)
    try:
        fsconfig_create(fs_fd)
        return fsmount(fs_fd, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)
    finally:
        os.close(fs_fd)
