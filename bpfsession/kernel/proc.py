"""/proc, parsed in one place: a process's stat line, boot time, mount table, whole files.

Readers above use these and never split a /proc line themselves. A process that exits
while it is read, or a file that is not ours to read, is an answer (None), never an
error: /proc changes under every reader.
"""

from __future__ import annotations

import os

_O_READ = os.O_RDONLY | os.O_CLOEXEC
_CHUNK = 8192


def read(path: str) -> bytes | None:
    """A whole /proc file, or None when it is gone or not ours to read.

    os.open/os.read rather than open(): no buffered file object per file, and a small
    first read (a big one allocates its whole size each time); together a third less
    time over /proc/*/environ (bench/bench_list.py).
    """
    try:
        fd = os.open(path, _O_READ)
    except OSError:
        return None
    try:
        data = os.read(fd, _CHUNK)
        if len(data) == _CHUNK:
            parts = [data]
            while more := os.read(fd, 65536):
                parts.append(more)
            data = b"".join(parts)
        return data
    except OSError:  # ESRCH, EACCES...: the process went, or its memory is not ours
        return None
    finally:
        os.close(fd)


class Stat:
    """The fields of /proc/PID/stat we use (proc(5))."""

    __slots__ = ("raw_comm", "ppid", "starttime")

    def __init__(self, raw_comm: bytes, ppid: int, starttime: int):
        self.raw_comm = raw_comm  # field 2, as the kernel has it
        self.ppid = ppid  # field 4
        self.starttime = starttime  # field 22: clock ticks after boot

    @property
    def comm(self) -> str:
        # printable (and its regex) only for readers that show names: not `new`'s start-up
        from bpfsession.printable import decode

        return decode(self.raw_comm)


def parse_stat(data: bytes) -> Stat:
    """/proc/PID/stat's line; ValueError when it is not one.

    comm (field 2) may hold spaces and parentheses: everything up to the LAST ')' is it.
    """
    head, paren, tail = data.rpartition(b")")
    fields = tail.split()
    if not paren or len(fields) < 20:
        raise ValueError("not a /proc/PID/stat line")
    # fields[0] is state (field 3); ppid is field 4, starttime field 22.
    return Stat(head.partition(b"(")[2], int(fields[1]), int(fields[19]))


def stat(pid: int | str, proc: str = "/proc") -> Stat | None:
    """The process's stat fields, or None when it is gone."""
    data = read(f"{proc}/{pid}/stat")
    if data is None:
        return None
    try:
        return parse_stat(data)
    except ValueError:
        return None


def start_time(pid: int, proc: str = "/proc") -> int | None:
    """starttime of `pid` (with the pid, it names one process across pid reuse), or None."""
    st = stat(pid, proc)
    return st.starttime if st else None


def set_cmdline(title: str) -> bool:
    """Show `title` as this process's command line (ps, /proc/self/cmdline), as
    setproctitle does: the argument area the kernel set up at exec (arg_start..arg_end,
    /proc/self/stat fields 48-49) is overwritten in place through /proc/self/mem, NUL
    padded, never grown. CPython keeps its own copies of argv, so nothing reads that area
    again. (python-prctl's set_proctitle writes from its own argv copy to the end of the
    last argument's copy, which on 3.11 spans unrelated heap: a long command line crashed
    the supervisor.) False where the kernel does not let us."""
    data = read("/proc/self/stat")
    if data is None:
        return False
    fields = data.rpartition(b")")[2].split()
    try:  # fields[0] is field 3 (state): arg_start, arg_end are fields 48, 49
        start, end = int(fields[45]), int(fields[46])
    except (IndexError, ValueError):
        return False
    raw = title.encode(errors="replace")[: max(end - start - 1, 0)]
    try:
        fd = os.open("/proc/self/mem", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        os.pwrite(fd, raw + b"\0" * (end - start - len(raw)), start)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def boot_time(proc: str = "/proc") -> int | None:
    """The `btime` line of /proc/stat: seconds since the epoch at boot."""
    for line in (read(f"{proc}/stat") or b"").splitlines():
        if line.startswith(b"btime "):
            return int(line.split()[1])
    return None


def pids(proc: str = "/proc") -> list[str]:
    """The numeric entries of /proc (OSError when it cannot be listed)."""
    return [n for n in os.listdir(proc) if n.isdigit()]


def mounts(mountinfo: str = "/proc/self/mountinfo") -> list[tuple[str, str]]:
    """(mount point, filesystem type) for every line of a mountinfo file, in order."""
    found = []
    with open(mountinfo, "rb") as f:
        for line in f:
            fields = line.split()
            try:
                fstype = fields[fields.index(b"-") + 1]
            except (ValueError, IndexError):
                continue
            found.append((_unescape(os.fsdecode(fields[4])), os.fsdecode(fstype)))
    return found


def _unescape(field: str) -> str:
    """proc_pid_mountinfo(5): space, tab, newline and backslash are written as octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field
