"""tracefs, found or mounted privately, and a private trace instance for bpf_trace_printk.

`tc exec bpf debug` reads the global trace_pipe, and every read of a trace pipe consumes
what it returns: two readers each see half the lines. We make our own instance
(instances/NAME, its own ring buffer) with only events/bpf_trace/bpf_trace_printk enabled,
so that other readers of trace_pipe keep every line and we get a copy of each.

tracefs is not mounted on these machines, and inside a `--netns` session (or `ip netns
exec`) the fresh /sys hides it even where it is. If no tracefs is mounted in our mount
namespace we mount it detached (kernel/fsmount.py): the mount is reached only through
its fd and is gone when we exit, so there is nothing to unmount. tracefs has one
superblock: our instance is the same object the host's /sys/kernel/tracing shows, and we
remove it on the way out (and prune those of readers that died without doing so).
"""

from __future__ import annotations

import errno
import os

from bpfsession.errors import BpfSessionError, KernelError

PREFIX = "bpfsession-debug-"
EVENT = "events/bpf_trace/bpf_trace_printk"
MOUNT_HINT = "mount -t tracefs nodev /sys/kernel/tracing"


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Where tracefs is mounted in this mount namespace (debugfs's tracing automount too)."""
    from bpfsession.kernel import proc

    return [point for point, fstype in proc.mounts(mountinfo) if fstype == "tracefs"]


def open_root() -> tuple[int, str]:
    """A directory fd of tracefs and where it is: a mount point, or "a private mount"."""
    for point in mount_points():
        try:
            return os.open(point, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), point
        except OSError:
            continue  # over-mounted or gone: try the next, then our own
    from bpfsession.kernel import fsmount

    try:
        return fsmount.detached_mount("tracefs"), "a private mount"
    except KernelError as err:
        if err.errno in (errno.EPERM, errno.EACCES):
            raise BpfSessionError("reading the trace pipe needs root (tracefs is not "
                                  f"mounted and only root may mount it: {MOUNT_HINT})") \
                from None
        if err.errno == errno.ENODEV:
            raise BpfSessionError("this kernel has no tracefs (CONFIG_TRACING is off): "
                                  "bpf_printk output cannot be read") from None
        raise BpfSessionError(f"cannot mount tracefs ({err.strerror}): as root run "
                              f"`{MOUNT_HINT}`") from None


class Instance:
    """A trace instance of our own with the bpf_trace_printk event on; `pipe` is its
    trace_pipe, opened for reading. close() closes it and removes the instance."""

    def __init__(self):
        self.root, self.where = open_root()
        # The pid names the reader for prune(); the random part keeps two readers apart
        # whose pids are equal in different pid namespaces.
        self.name = f"{PREFIX}{os.getpid()}-{os.urandom(3).hex()}"
        self.path = f"instances/{self.name}"
        self.pipe = -1
        try:
            prune(self.root)
            self._create()
        except BaseException:
            self.close()
            raise

    def _create(self) -> None:
        try:
            os.mkdir(self.path, dir_fd=self.root)
        except OSError as err:
            self.path = ""
            if err.errno in (errno.EPERM, errno.EACCES):
                raise BpfSessionError("reading the trace pipe needs root (cannot create a "
                                      f"trace instance in {self.where})") from None
            raise BpfSessionError(f"cannot create a trace instance in {self.where}: "
                                  f"{err.strerror}") from None
        # Open the pipe first: an instance with an open file is busy (rmdir answers
        # EBUSY), so another reader's prune() cannot take it from under us.
        self.pipe = os.open(f"{self.path}/trace_pipe", os.O_RDONLY | os.O_CLOEXEC,
                            dir_fd=self.root)
        try:
            fd = os.open(f"{self.path}/{EVENT}/enable", os.O_WRONLY | os.O_CLOEXEC,
                         dir_fd=self.root)
        except FileNotFoundError:
            raise BpfSessionError("this kernel has no bpf_trace_printk trace event (Linux "
                                  "5.9+): read trace_pipe in tracefs instead") from None
        try:
            os.write(fd, b"1")
        finally:
            os.close(fd)

    def close(self) -> None:
        if self.pipe >= 0:
            os.close(self.pipe)
            self.pipe = -1
        if self.path and self.root >= 0:
            try:
                os.rmdir(self.path, dir_fd=self.root)
            except OSError:
                pass  # already gone; EBUSY: another reader holds it open (it prunes it)
            self.path = ""
        if self.root >= 0:
            os.close(self.root)
            self.root = -1

    def __enter__(self) -> Instance:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def prune(root: int) -> list[str]:
    """Remove the instances of readers that died without removing theirs; their names."""
    try:
        fd = os.open("instances", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=root)
    except OSError:
        return []
    try:
        names = os.listdir(fd)
    finally:
        os.close(fd)
    gone = []
    for name in names:
        pid = name[len(PREFIX):].partition("-")[0]
        # A live reader's instance is busy (its trace_pipe is open): rmdir answers EBUSY.
        if name.startswith(PREFIX) and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            try:
                os.rmdir(f"instances/{name}", dir_fd=root)
                gone.append(name)
            except OSError:
                continue
    return gone
