"""Session registry: one JSON file per live session under /run/bpfsession (or $BPFSESSION_RUN_DIR).

This module owns the schema. The supervisor writes its entry (a temporary file created
with O_EXCL|O_NOFOLLOW, then renamed) and removes it on every way out; an entry whose
supervisor is gone is stale and prune() removes it (SIGKILL leaves no time to clean up).

What a reader may believe (docs/security.md):
- the directory must be owned by root or the caller and not writable by group or others,
  else nothing in it is read or written (one warning or error says why);
- an entry is believed only when its file belongs to root or to the uid the entry names:
  a user can describe only their own sessions;
- every field is validated on read (types, an 8-hex-digit id that is also the file name,
  the control socket inside the directory); a malformed entry is skipped with one warning,
  and removed when it is stale and the reader may remove it.

Entry keys: id, name, pid (the session's root process), supervisor, supervisor_start (its
start time in clock ticks, /proc/PID/stat field 22, to survive pid reuse), uid, allow_uids,
netns, netns_path, socket, control, obj, command, started, maps (env, fd, id, name, type,
key_size, value_size, max_entries, and optionally `sender`: the sender entry's flags,
pinning, inner_id, inner_idx); optionally obj_st ([st_dev, st_ino] as the sender's header
said), wire_layout (the entry size, 20/24/28/36), read_only (`new --read-only`: the
session holds read-only fds only) and read_only_uids (`--allow-uid UID:ro`: those uids are
handed read-only fds). Unknown keys are kept and ignored (newer writers).

`state` is "waiting" while `new` has bound its socket and waits for the maps, "running"
once the command runs (an entry without it is running: older writers). A waiting entry
is written by the receiver itself: pid and supervisor are its own pid, `since` (ISO 8601)
is when the wait began, `name` is null unless --name gave one, `obj` is "", `control` null
and `maps` empty; the same entry (same id) is rewritten as running when the maps arrive.

Names are claimed with one file per name, `<name>.name`, created with O_EXCL under an
flock of the directory: it holds the claimant's pid and start time, so a claim left by a
killed supervisor is recognised as stale and taken over. No fd stays open (the command's
fds are exactly 0-2 and the maps).
"""

from __future__ import annotations

import json
import os
import stat

from bpfsession.errors import BpfSessionError, warn
from bpfsession.kernel import proc as procfs

DEFAULT_DIR = "/run/bpfsession"
SUFFIX = ".json"
CLAIM_SUFFIX = ".name"
MAX_NAME = 200  # bytes; a name is also a file name (<= 255 with the suffix)
_HEX = frozenset("0123456789abcdef")
_O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


_warned: set[str] = set()  # one warning per problem per process (`list --watch`, the TUI)


def warn_once(text: str) -> None:
    """warn(), once per text in this process: a watch loop or the TUI repeats its scans."""
    if text not in _warned:
        _warned.add(text)
        warn(text)


def run_dir() -> str:
    return os.environ.get("BPFSESSION_RUN_DIR") or DEFAULT_DIR


def new_id() -> str:
    return os.urandom(4).hex()


def valid_id(value: object) -> bool:
    return isinstance(value, str) and len(value) == 8 and set(value) <= _HEX


def entry_path(directory: str, session_id: str) -> str:
    return os.path.join(directory, session_id + SUFFIX)


def control_path(directory: str, session_id: str) -> str:
    return os.path.join(directory, session_id + ".ctl")


# ---- the directory ---------------------------------------------------------------------


def unsafe(directory: str) -> str | None:
    """Why `directory` must not be trusted (None: it is fine, or it does not exist yet)."""
    try:
        st = os.stat(directory)
    except OSError:
        return None  # not there (or not reachable): nothing in it to trust or refuse
    if not stat.S_ISDIR(st.st_mode):
        return None  # creating it fails, with its own message
    if st.st_uid not in (0, os.getuid()):
        return (f"refusing the session registry {directory}: it belongs to uid {st.st_uid}, "
                "not root or you (set BPFSESSION_RUN_DIR to a directory of your own)")
    if st.st_mode & 0o022:
        return (f"refusing the session registry {directory}: group or others may write to it "
                f"(mode {stat.S_IMODE(st.st_mode):04o}; chmod go-w it, or set "
                "BPFSESSION_RUN_DIR)")
    return None


def check_dir(directory: str) -> None:
    """BpfSessionError when the directory exists and must not be trusted."""
    reason = unsafe(directory)
    if reason:
        raise BpfSessionError(reason)


def ensure_dir(directory: str) -> None:
    """The directory exists, is safe and is ours to write (else BpfSessionError)."""
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    except OSError as err:
        raise BpfSessionError(f"cannot create the session registry {directory}: "
                              f"{err.strerror} (set BPFSESSION_RUN_DIR to a writable "
                              "directory)") from None
    check_dir(directory)
    if not os.access(directory, os.W_OK | os.X_OK):  # e.g. root's /run/bpfsession, for a user
        raise BpfSessionError(f"cannot write to the session registry {directory} (set "
                              "BPFSESSION_RUN_DIR to a directory of your own)")


# ---- writing ---------------------------------------------------------------------------


def _write_new(path: str, data: bytes) -> None:
    """Create `path` (never following a link, never reusing a file) holding `data`."""
    fd = os.open(path, _O_NEW, 0o644)
    try:
        os.fchmod(fd, 0o644)  # whatever the umask
        os.write(fd, data)
    except OSError:
        _unlink_quietly(path)  # ENOSPC, EDQUOT...: leave no empty file behind
        raise
    finally:
        os.close(fd)


def write(directory: str, entry: dict) -> str:
    """Atomically (re)write the entry for entry['id']; returns its path."""
    path = entry_path(directory, entry["id"])
    tmp = f"{path}.{os.getpid()}.{new_id()}.tmp"
    try:
        _write_new(tmp, json.dumps(entry, indent=1).encode() + b"\n")
        os.rename(tmp, path)
    except OSError as err:
        _unlink_quietly(tmp)  # EROFS: the directory went read-only, nothing to remove
        raise BpfSessionError(f"cannot write the session registry entry {path}: "
                              f"{err.strerror}") from None
    return path


def remove(directory: str, session_id: str) -> None:
    """Remove an entry; a failure (a read-only or vanished registry) is one warning."""
    try:
        _unlink(entry_path(directory, session_id))
    except OSError as err:
        warn(f"cannot remove the session registry entry {entry_path(directory, session_id)}: "
             f"{err.strerror}; the next `bpfsession list` prunes it")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# ---- reading and validating --------------------------------------------------------------


def _is_int(v: object, low: int = 0) -> bool:
    return type(v) is int and v >= low


def _opt_str(v: object) -> bool:
    return v is None or isinstance(v, str)


_MAP_FIELDS = {"env": lambda v: isinstance(v, str), "fd": _is_int, "id": _is_int,
               "name": lambda v: isinstance(v, str), "type": lambda v: isinstance(v, str),
               "key_size": _is_int, "value_size": _is_int, "max_entries": _is_int}
_SENDER_FIELDS = ("flags", "pinning", "inner_id", "inner_idx")
STATES = ("waiting", "running")
_FIELDS = {
    "name": lambda v: v is None or _valid_name(v),  # None: a waiting receiver's, unnamed
    "pid": lambda v: _is_int(v, 1), "supervisor": lambda v: _is_int(v, 1),
    "uid": _is_int, "obj": lambda v: isinstance(v, str), "started": lambda v: isinstance(v, str),
    "command": lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v),
    "maps": lambda v: isinstance(v, list) and all(_valid_map(m) for m in v),
}
_OPTIONAL = {
    "supervisor_start": lambda v: v is None or _is_int(v),
    "allow_uids": lambda v: isinstance(v, list) and all(_is_int(u) for u in v),
    "netns": _opt_str, "netns_path": _opt_str, "socket": _opt_str, "control": _opt_str,
    "obj_st": lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(x) for x in v),
    "wire_layout": lambda v: v in (20, 24, 28, 36) and type(v) is int,
    "state": lambda v: v in STATES, "since": lambda v: isinstance(v, str),
    "read_only": lambda v: type(v) is bool,
    "read_only_uids": lambda v: isinstance(v, list) and all(_is_int(u) for u in v),
}


def _valid_name(v: object) -> bool:
    return isinstance(v, str) and 0 < len(v.encode(errors="replace")) <= MAX_NAME


def _valid_map(m: object) -> bool:
    if not isinstance(m, dict) or not all(k in m and ok(m[k]) for k, ok in _MAP_FIELDS.items()):
        return False
    sender = m.get("sender", {})
    return isinstance(sender, dict) and all(_is_int(sender[k]) for k in _SENDER_FIELDS
                                            if k in sender)


def problem(entry: object, directory: str, file_id: str) -> str | None:
    """What is wrong with an entry read from `<file_id>.json` (None: it is well-formed)."""
    if not isinstance(entry, dict):
        return "not a JSON object"
    if entry.get("id") != file_id:
        return f"its id {entry.get('id')!r} is not its file name"
    for key, ok in _FIELDS.items():
        if key not in entry or not ok(entry[key]):
            return f"bad or missing {key!r}"
    for key, ok in _OPTIONAL.items():
        if key in entry and not ok(entry[key]):
            return f"bad {key!r}"
    if entry["name"] is None and entry.get("state") != "waiting":
        return "bad or missing 'name'"  # only a receiver still waiting may have none
    if entry.get("state") == "waiting" and (entry["maps"] or entry["pid"] != entry["supervisor"]):
        return "a waiting entry holds maps or names another process"
    control = entry.get("control")
    if control is not None and control != control_path(directory, file_id):
        return "its control socket is not in the registry directory"
    return None


def read_all(directory: str | None = None) -> list[dict]:
    """Every well-formed, trusted entry, oldest first (see the module's docstring)."""
    directory = directory or run_dir()
    reason = unsafe(directory)
    if reason:
        warn_once(f"{reason}; ignoring it")
        return []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    entries = []
    for name in names:
        file_id = name[:-len(SUFFIX)]
        if not name.endswith(SUFFIX) or not valid_id(file_id):
            continue
        entry = _read_entry(directory, file_id)
        if entry is not None:
            entries.append(entry)
    entries.sort(key=lambda e: (e["started"], e["id"]))
    return entries


def _read_entry(directory: str, file_id: str) -> dict | None:
    path = entry_path(directory, file_id)
    try:
        fd = os.open(path, _O_READ)
    except OSError:
        return None  # removed meanwhile, or a link (O_NOFOLLOW): not an entry
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        data = _read_fd(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        entry = json.loads(data)
    except (ValueError, RecursionError):
        entry = None
    why = problem(entry, directory, file_id)
    if why is None and st.st_uid not in (0, entry["uid"]):
        why = f"it belongs to uid {st.st_uid} but describes uid {entry['uid']}"
    if why is None:
        return entry
    if not alive(entry) and os.getuid() in (0, st.st_uid):
        _unlink_quietly(path)
        why += "; it was stale and is removed"
    warn_once(f"skipping the registry entry {path}: {why}")
    return None


def _read_fd(fd: int) -> bytes:
    parts = []
    while chunk := os.read(fd, 65536):
        parts.append(chunk)
    return b"".join(parts)


def _unlink_quietly(path: str) -> None:
    try:
        _unlink(path)
    except OSError:
        pass  # another reader was first, or the directory is read-only


def alive(entry: object) -> bool:
    """True while the entry's supervisor (the same process, not a reused pid) runs."""
    if not isinstance(entry, dict):
        return False
    pid = entry.get("supervisor")
    if not _is_int(pid, 1):
        return False
    started = procfs.start_time(pid)
    if started is None:
        return False
    expected = entry.get("supervisor_start")
    return expected is None or expected == started


def prune(directory: str | None = None, entries: list[dict] | None = None) -> list[str]:
    """Remove the entries (and control sockets) of dead supervisors, of `entries` if
    given (as read_all returned them), and stale name claims; returns the entries' ids."""
    directory = directory or run_dir()
    gone = []
    for entry in read_all(directory) if entries is None else entries:
        if alive(entry):
            continue
        _unlink(entry_path(directory, entry["id"]))
        control = entry.get("control")
        if control == control_path(directory, entry["id"]):
            _unlink(control)
        gone.append(entry["id"])
    _prune_claims(directory)
    return gone


def _prune_claims(directory: str) -> None:
    """Remove the name claims of processes that are gone (a SIGKILLed supervisor's)."""
    try:
        names = [n for n in os.listdir(directory) if n.endswith(CLAIM_SUFFIX)]
    except OSError:
        return
    for name in names:
        path = os.path.join(directory, name)
        if not _claim_alive(path):
            _unlink_quietly(path)


def live(directory: str | None = None) -> list[dict]:
    return [e for e in read_all(directory) if alive(e)]


# ---- name claims --------------------------------------------------------------------------


def _claim_alive(path: str) -> bool:
    try:
        held = json.loads(procfs.read(path) or b"")
    except ValueError:
        return False
    return isinstance(held, dict) and alive({"supervisor": held.get("pid"),
                                             "supervisor_start": held.get("start")})


class Claim:
    """A session name held in the registry directory until release()."""

    def __init__(self, directory: str, name: str, path: str | None):
        self.directory = directory
        self.name = name
        self.path = path  # None: no registry (nothing to release)

    def release(self) -> None:
        if self.path is not None:
            _unlink_quietly(self.path)
            self.path = None


def claim_path(directory: str, name: str) -> str:
    return os.path.join(directory, name + CLAIM_SUFFIX)


def claim(directory: str, requested: str | None, derived: str, pid: int) -> Claim:
    """Claim `requested` (BpfSessionError when a live session holds it), else `derived`,
    `derived-2`, `derived-3`... for process `pid` (the supervisor, or the command itself
    under --exec). OSError when the directory cannot be written."""
    import fcntl

    start = procfs.start_time(pid)
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(dfd, fcntl.LOCK_EX)  # claim-or-take-over is one step for all claimants
        candidates = [requested] if requested else \
            (derived if n == 1 else f"{derived}-{n}" for n in range(1, 1 << 20))
        for name in candidates:
            path = claim_path(directory, name)
            if _take(path, pid, start):
                return Claim(directory, name, path)
        raise BpfSessionError(f"a live session is already named '{requested}' (see "
                              "`bpfsession list`); choose another --name")
    finally:
        os.close(dfd)  # drops the flock


def _take(path: str, pid: int, start: int | None) -> bool:
    data = json.dumps({"pid": pid, "start": start}).encode()
    try:
        _write_new(path, data)
        return True
    except FileExistsError:
        pass
    if _claim_alive(path):
        return False
    os.unlink(path)  # stale: its claimant is gone (we hold the directory's lock)
    _write_new(path, data)
    return True
