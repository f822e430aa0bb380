"""What an agent is handed: some of a session's maps (`--maps`), read-only or not.

Read-only is the kernel's word, not a convention: a map fd opened with BPF_F_RDONLY
(BPF_MAP_GET_FD_BY_ID with open_flags BPF_F_RDONLY) is an O_RDONLY file, and the kernel
answers EPERM to every write through it (map_update_elem, map_delete_elem, batch
updates; kernel/bpf/syscall.c checks FMODE_CAN_WRITE). Opening a map by id needs
CAP_SYS_ADMIN, so only a privileged side (a root supervisor, a root `send` or `attach`)
can turn a writable fd into a read-only one; an fd that is read-only already (taken from
a `new --read-only` session) stays so wherever it is passed.
"""

from __future__ import annotations

import errno
import os

from bpfsession import mapenv
from bpfsession.errors import BpfSessionError, KernelError


def parse_names(text: str, option: str = "--maps") -> list[str]:
    """`NAME[,NAME...]` -> the names, in order, each once; one line for an empty list."""
    names = [w.strip() for w in text.split(",")]
    if not text.strip() or not all(names):
        raise BpfSessionError(f"{option} takes NAME[,NAME...] (kernel map names or "
                              f"BPF_MAP<id> names), not {text!r}")
    return list(dict.fromkeys(names))


def pick(names: list[str], maps: list, what: str) -> list:
    """The maps (model.SessionMap, in the session's order) that `names` name: a kernel map
    name, or a `BPF_MAP<id>` variable name. BpfSessionError, one line, for a name that
    matches no map or two of them."""
    from bpfsession.printable import printable

    chosen: set[int] = set()
    for name in names:
        entry = mapenv.entry_id(name)
        if entry is not None:
            hits = [i for i, m in enumerate(maps) if mapenv.entry_var(entry) in m.env]
        else:
            hits = [i for i, m in enumerate(maps) if m.name == name]
        if not hits:
            known = ", ".join(printable(f"{m.name or '-'} ({m.env[0] if m.env else 'no env'})")
                              for m in maps) or "none"
            raise BpfSessionError(f"{what} has no map {printable(name)!r}: name one of its "
                                  f"maps by kernel name or BPF_MAP<id> ({known})")
        if len(hits) > 1:
            alts = " or ".join(maps[i].env[0] for i in hits if maps[i].env) or "their ids"
            raise BpfSessionError(f"{what} has {len(hits)} maps named {printable(name)!r}: "
                                  f"name one by its variable, {alts}")
        chosen.update(hits)
    return [m for i, m in enumerate(maps) if i in chosen]


def reopen(fd: int) -> int:
    """A new read-only fd of the map behind `fd` (BPF_F_RDONLY), close-on-exec.

    The map's id is stable while `fd` holds it. BpfSessionError when we may not open maps
    by id (EPERM: CAP_SYS_ADMIN needed) or the map refuses read access (EACCES: created
    BPF_F_WRONLY)."""
    from bpfsession.kernel import bpf
    from bpfsession.kernel.types import read_fdinfo

    map_id = int(read_fdinfo(fd).get("map_id", "0"))
    try:
        return bpf.map_get_fd_by_id(map_id, bpf.BPF_F_RDONLY)
    except KernelError as err:
        if err.errno == errno.EPERM:
            raise BpfSessionError(f"cannot re-open map id {map_id} read-only: that needs "
                                  "CAP_SYS_ADMIN (BPF_MAP_GET_FD_BY_ID); run it as root, "
                                  "or start the session with `new --read-only`") from None
        raise BpfSessionError(f"cannot re-open map id {map_id} read-only: "
                              f"{err.strerror}") from None


def is_read_only(fd: int) -> bool:
    from bpfsession.kernel.types import fd_read_only, read_fdinfo

    return fd_read_only(read_fdinfo(fd))


def make_read_only(fds: list[int]) -> list[int]:
    """The same maps, every fd read-only: a writable one is re-opened read-only and
    closed, a read-only one kept. `fds` are ours; on failure all of them are closed."""
    from bpfsession.fds import FdSet

    out = FdSet()
    pending = FdSet(fds)
    with out, pending:
        for fd in fds:
            if is_read_only(fd):
                out.add(fd)
            else:
                out.add(reopen(fd))
                os.close(fd)
            pending.release()
            pending.extend(fds[len(out):])
    return out.release()
