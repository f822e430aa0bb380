"""Session registry: one JSON file per live session under /run/bpfsession (or $BPFSESSION_RUN_DIR).

Written atomically (temporary file + rename, mode 0644) by the supervisor, removed by it
on every exit path. An entry whose supervisor is gone is stale: prune() removes it (a
supervisor killed with SIGKILL cannot clean up). Readers use read_all().

Entry keys: id, name, pid (the session's root process), supervisor, supervisor_start
(its start time in clock ticks, /proc/PID/stat field 22, to survive pid reuse), uid,
allow_uids, netns, netns_path, socket, control, obj, command, started, maps.
"""

from __future__ import annotations

import json
import os

from bpfsession.errors import BpfSessionError
from bpfsession.kernel import proc as procfs

DEFAULT_DIR = "/run/bpfsession"
SUFFIX = ".json"


def run_dir() -> str:
    return os.environ.get("BPFSESSION_RUN_DIR") or DEFAULT_DIR


def new_id() -> str:
    return os.urandom(4).hex()


def entry_path(directory: str, session_id: str) -> str:
    return os.path.join(directory, session_id + SUFFIX)


def control_path(directory: str, session_id: str) -> str:
    return os.path.join(directory, session_id + ".ctl")


def ensure_dir(directory: str) -> None:
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    except OSError as err:
        raise BpfSessionError(f"cannot create the session registry {directory}: "
                              f"{err.strerror} (set BPFSESSION_RUN_DIR to a writable "
                              "directory)") from None


def write(directory: str, entry: dict) -> str:
    """Atomically (re)write the entry for entry['id']; returns its path."""
    path = entry_path(directory, entry["id"])
    tmp = f"{path}.{os.getpid()}.tmp"
    data = json.dumps(entry, indent=1).encode() + b"\n"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.fchmod(fd, 0o644)  # whatever the umask
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError as err:
        _unlink(tmp)
        raise BpfSessionError(f"cannot write the session registry entry {path}: "
                              f"{err.strerror}") from None
    return path


def remove(directory: str, session_id: str) -> None:
    _unlink(entry_path(directory, session_id))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def read_all(directory: str | None = None) -> list[dict]:
    """Every readable entry, oldest first; unreadable or half-written files are skipped."""
    directory = directory or run_dir()
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    entries = []
    for name in names:
        if not name.endswith(SUFFIX):
            continue
        try:
            with open(os.path.join(directory, name), "rb") as f:
                entry = json.loads(f.read())
        except (OSError, ValueError):
            continue
        if isinstance(entry, dict) and "id" in entry:
            entries.append(entry)
    entries.sort(key=lambda e: (str(e.get("started", "")), str(e["id"])))
    return entries


def alive(entry: dict) -> bool:
    """True while the entry's supervisor (the same process, not a reused pid) runs."""
    pid = entry.get("supervisor")
    if not isinstance(pid, int) or pid <= 0:
        return False
    started = procfs.start_time(pid)
    if started is None:
        return False
    expected = entry.get("supervisor_start")
    return expected is None or expected == started


def prune(directory: str | None = None) -> list[str]:
    """Remove the entries (and control sockets) of dead supervisors; returns their ids."""
    directory = directory or run_dir()
    gone = []
    for entry in read_all(directory):
        if alive(entry):
            continue
        remove(directory, entry["id"])
        control = entry.get("control")
        if control == control_path(directory, entry["id"]):
            _unlink(control)
        gone.append(entry["id"])
    return gone


def live(directory: str | None = None) -> list[dict]:
    return [e for e in read_all(directory) if alive(e)]


def pick_name(directory: str, requested: str | None, derived: str) -> str:
    """`requested` if no live session has it (else an error); else `derived`, `-2`, `-3`..."""
    taken = {e.get("name") for e in live(directory)}
    if requested:
        if requested in taken:
            raise BpfSessionError(f"a live session is already named '{requested}' (see "
                                  "`bpfsession list`); choose another --name")
        return requested
    name, n = derived, 1
    while name in taken:
        n += 1
        name = f"{derived}-{n}"
    return name
