"""Enter a network namespace the way `ip netns exec` does, keeping bpffs visible.

`ip netns exec NAME` (iproute2 ip/ipnetns.c: netns_switch) does: setns(CLONE_NEWNET);
unshare(CLONE_NEWNS); mount / rslave; umount /sys and mount a fresh sysfs (so
/sys/class/net lists the namespace's devices); bind every file of /etc/netns/NAME over
/etc. The fresh /sys hides /sys/fs/bpf: a bpffs mount is its own instance, so mounting
bpf again would show an empty directory, not the host's pins. We clone each bpffs mount
under /sys (open_tree(OPEN_TREE_CLONE)) before the remount and attach the clones back
(move_mount) afterwards, so pinned maps stay at the same paths inside.

All of this changes the calling process's namespaces: call enter() only in the process
that is about to exec the session's command (a forked child, or the launcher with --exec).
"""

from __future__ import annotations

import errno
import os

from bpfsession.errors import BpfSessionError, KernelError, warn
from bpfsession.kernel import ns
from bpfsession.kernel import proc as procfs

NETNS_RUN_DIR = "/run/netns"  # where `ip netns add` bind-mounts named namespaces
NETNS_ETC_DIR = "/etc/netns"


class Netns:
    """A network namespace as the user named it: `arg` is what BPFSESSION_NETNS carries."""

    __slots__ = ("arg", "path", "name")

    def __init__(self, arg: str, path: str, name: str | None):
        self.arg = arg
        self.path = path
        self.name = name  # the `ip netns` name, None for a plain path like /proc/PID/ns/net


def available() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_RUN_DIR))
    except OSError:
        return []


def resolve(arg: str) -> Netns:
    """A name under /run/netns or a namespace file path; never creates anything."""
    if not arg:
        raise BpfSessionError("empty --netns: give a name from `ip netns list` or a path")
    if "/" not in arg and arg not in (".", ".."):
        path = os.path.join(NETNS_RUN_DIR, arg)
        if os.path.exists(path):
            return Netns(arg, path, arg)
        names = available()
        there = f"there are: {', '.join(names)}" if names else "there are none"
        raise BpfSessionError(f"network namespace '{arg}' not found in {NETNS_RUN_DIR} "
                              f"({there}); create it with `ip netns add {arg}` or give a path")
    try:
        os.stat(arg)
    except FileNotFoundError:
        raise BpfSessionError(f"network namespace file {arg} does not exist") from None
    except OSError as err:  # e.g. EACCES: /proc/PID/ns/* of a process we may not inspect
        raise BpfSessionError(f"cannot use network namespace file {arg}: {err.strerror} "
                              "(give a name from `ip netns list` or a path you may open)") \
            from None
    return Netns(arg, arg, None)


def open_netns(target: Netns) -> int:
    """An O_CLOEXEC fd of the namespace file, checked to be a network namespace."""
    try:
        fd = os.open(target.path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise BpfSessionError(f"cannot open network namespace {target.path}: "
                              f"{err.strerror}") from None
    if ns.ns_type(fd) != ns.CLONE_NEWNET:
        os.close(fd)
        raise BpfSessionError(f"{target.path} is not a network namespace file (expected a "
                              "name from `ip netns list` or a path like /proc/PID/ns/net)")
    return fd


def check_enter(fd: int, target: Netns) -> None:
    """Fail now, not after the maps arrived, when we may not enter the namespace.

    The steps of enter() that need privileges (setns, unshare of the mount namespace) are
    tried in a forked child, so that ours never move. Asking the kernel is the only sure
    test: capability bits (CapEff) say nothing about a namespace owned by another user
    namespace.
    """
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            ns.setns(fd, ns.CLONE_NEWNET)
            ns.unshare(ns.CLONE_NEWNS)
        except KernelError as err:
            code = err.errno or 1
        except BaseException:
            code = 255
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code:
        reason = os.strerror(code) if 0 < code < 255 else "the trial failed"
        raise BpfSessionError(f"cannot enter network namespace {target.arg}: {reason} "
                              "(entering a netns needs CAP_SYS_ADMIN over it: run as root)")


def enter(fd: int, target: Netns) -> None:
    """Switch the calling (single-threaded) process into the namespace, as ip netns exec."""
    try:
        ns.setns(fd, ns.CLONE_NEWNET)
        ns.unshare(ns.CLONE_NEWNS)
        # Don't let our mounts leak back to the host (ip netns exec does the same).
        ns.mount("none", "/", None, ns.MS_SLAVE | ns.MS_REC)
    except KernelError as err:
        raise BpfSessionError(f"cannot enter network namespace {target.arg}: "
                              f"{err.strerror}") from None
    _remount_sys(target)
    if target.name:
        _bind_etc(target.name)


def _remount_sys(target: Netns) -> None:
    kept = _clone_bpffs_mounts()
    try:
        try:
            read_only = bool(os.statvfs("/sys").f_flag & os.ST_RDONLY)
            ns.umount2("/sys", ns.MNT_DETACH)
        except (OSError, KernelError):
            read_only = False  # no sysfs was mounted: like ip netns exec, go on
        try:
            ns.mount(target.name or "sysfs", "/sys", "sysfs", ns.MS_RDONLY if read_only else 0)
        except KernelError as err:
            raise BpfSessionError(f"cannot mount sysfs for network namespace {target.arg}: "
                                  f"{err.strerror}") from None
        for path, tree in kept:
            try:
                ns.move_mount(tree, path)
            except KernelError as err:
                warn(f"cannot keep bpffs at {path} inside the namespace: {err.strerror}")
    finally:
        for _, tree in kept:
            os.close(tree)


def _clone_bpffs_mounts() -> list[tuple[str, int]]:
    """Detached clones of every bpffs mounted under /sys, outermost first."""
    kept: list[tuple[str, int]] = []
    for path in bpffs_mounts_under("/sys"):
        if any(path.startswith(p + "/") for p, _ in kept):
            continue  # cloned recursively with its parent
        try:
            tree = ns.open_tree(path, ns.OPEN_TREE_CLONE | ns.OPEN_TREE_CLOEXEC |
                                ns.AT_RECURSIVE)
        except KernelError as err:
            for _, fd in kept:
                os.close(fd)
            if err.errno == errno.ENOSYS:
                raise BpfSessionError("this kernel lacks open_tree(2) (Linux 5.2+), needed "
                                      "to keep /sys/fs/bpf inside --netns") from None
            raise BpfSessionError(f"cannot keep bpffs at {path}: {err.strerror}") from None
        kept.append((path, tree))
    return kept


def bpffs_mounts_under(prefix: str, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points of bpf filesystems at or below `prefix`, sorted (parents first)."""
    below = prefix.rstrip("/") + "/"
    return sorted({point for point, fstype in procfs.mounts(mountinfo)
                   if fstype == "bpf" and (point == prefix or point.startswith(below))})


def _bind_etc(name: str) -> None:
    """Bind /etc/netns/NAME/* over /etc/*, as ip netns exec (bind_etc) does."""
    src_dir = os.path.join(NETNS_ETC_DIR, name)
    try:
        entries = sorted(os.listdir(src_dir))
    except OSError:
        return
    for entry in entries:
        src, dst = os.path.join(src_dir, entry), os.path.join("/etc", entry)
        try:
            ns.mount(src, dst, "none", ns.MS_BIND)
        except KernelError as err:
            warn(f"bind {src} -> {dst} failed: {err.strerror}")


