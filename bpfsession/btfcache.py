"""The BTF of a session's maps, kept where the session's processes can read it.

Reading a map's BTF by id (BPF_BTF_GET_FD_BY_ID) needs CAP_SYS_ADMIN, so an agent
started with `--keep-caps ''`, or under a uid that `--allow-uid` admits, would see raw
bytes only. The supervisor, privileged at hand-off, writes each map's raw BTF to
`RUN_DIR/<session id>.btf/<btf id>`: the directory is root's (or the launcher's) and not
writable by others; each file is mode 0600, owned by the launcher's uid, plus a POSIX ACL
entry `user:U:r` for each allowed uid U where the file system supports ACLs. The files
go with the registry entry when the supervisor ends (a supervisor killed with SIGKILL
leaves both).

Readers trust a file only if its owner is root or their own uid: the blob then only
tells how bytes are shown and typed input is encoded, and is parsed like any BTF.
"""

from __future__ import annotations

import os
import struct

SUFFIX = ".btf"

# include/uapi/linux/posix_acl.h, posix_acl_xattr.h
_ACL_VERSION = 2
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_MASK, _ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_ACL_UNDEFINED_ID = 0xFFFFFFFF
_READ, _WRITE = 4, 2


def cache_dir(run_dir: str, session_id: str) -> str:
    return os.path.join(run_dir, session_id + SUFFIX)


def write(run_dir: str, entry: dict, fds) -> None:
    """Cache the BTF of the maps `fds` for session `entry` (its id, uid and allow_uids).
    Never fails the session: a problem is one warning."""
    from bpfsession.errors import KernelError, warn
    from bpfsession.kernel import bpf

    blobs = {}
    for fd in fds:
        try:
            btf_id = bpf.map_info(fd).btf_id
            if btf_id and btf_id not in blobs:
                btf_fd = bpf.btf_get_fd_by_id(btf_id)
                try:
                    blobs[btf_id] = bpf.btf_raw(btf_fd)
                finally:
                    os.close(btf_fd)
        except KernelError:
            continue  # no BTF to keep for this map: it shows as bytes, as before
    if not blobs:
        return
    path = cache_dir(run_dir, entry["id"])
    try:
        _store(path, blobs, entry.get("uid", os.getuid()), entry.get("allow_uids") or ())
    except OSError as err:
        warn(f"cannot keep the maps' BTF in {path} ({err.strerror}): processes without "
             "CAP_SYS_ADMIN will see raw bytes")
        remove(run_dir, entry["id"])


def _store(path: str, blobs: dict[int, bytes], owner: int, allow: list[int]) -> None:
    os.mkdir(path, 0o755)
    os.chmod(path, 0o755)  # whatever the umask
    acl = _acl(owner, [u for u in allow if u != owner])
    for btf_id, blob in blobs.items():
        name = os.path.join(path, str(btf_id))
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            os.fchown(fd, owner, -1)
            os.fchmod(fd, 0o600)
            if acl is not None:
                try:
                    os.setxattr(fd, "system.posix_acl_access", acl)
                except OSError:
                    pass  # no ACLs here: the owner (and root) can read it
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)


def _acl(owner: int, users: list[int]) -> bytes | None:
    """A POSIX access ACL: the owner rw, each of `users` r, nobody else."""
    if not users:
        return None
    entries = [(_ACL_USER_OBJ, _READ | _WRITE, _ACL_UNDEFINED_ID)]
    entries += [(_ACL_USER, _READ, uid) for uid in sorted(set(users))]
    entries += [(_ACL_GROUP_OBJ, 0, _ACL_UNDEFINED_ID), (_ACL_MASK, _READ, _ACL_UNDEFINED_ID),
                (_ACL_OTHER, 0, _ACL_UNDEFINED_ID)]
    return struct.pack("<I", _ACL_VERSION) + b"".join(struct.pack("<HHI", *e) for e in entries)


def remove(run_dir: str, session_id: str) -> None:
    """The session's cache, gone (the supervisor calls it as it removes its entry)."""
    import shutil

    shutil.rmtree(cache_dir(run_dir, session_id), ignore_errors=True)


def read(btf_id: int, environ=None) -> bytes | None:
    """The cached BTF `btf_id` of the session this process runs in (BPFSESSION_ID), or
    None when there is none, it is not readable, or its owner is not to be trusted."""
    env = os.environ if environ is None else environ
    session_id = env.get("BPFSESSION_ID", "")
    if not session_id.isalnum():
        return None
    from bpfsession.registry import run_dir

    name = os.path.join(cache_dir(run_dir(), session_id), str(btf_id))
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid not in (0, os.geteuid()) or st.st_size > 64 << 20:
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)
