"""`send`: resolve map sources to fds and hand them over in bpf_scm v1 format.

With libbpf-built iproute2, `tc filter add ... exp UDS` loads the program and then sends
nothing for modern (BTF-map) objects (its legacy map table stays empty; docs/send.md), so
this is the sender for them: it takes maps that are already loaded, by map id, pinned
path, program id, the tc filter on a device, or a live session. It sends only to a
receiver whose socket belongs to root, the caller or a --to-uid (wire.connect_receiver).
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from bpfsession import wire
from bpfsession.errors import BpfSessionError, KernelError
from bpfsession.fds import FdSet
from bpfsession.kernel import bpf


@dataclass(frozen=True)
class Source:
    kind: str  # "map-id" | "pinned" | "prog-id" | "dev" | "session"
    value: str
    direction: str | None = None  # for "dev": "ingress" | "egress"
    maps: tuple[str, ...] | None = None  # for "session": only these (--maps NAME,...)

    def __str__(self) -> str:
        text = f"--{self.kind} {self.value}"
        if self.maps is not None:
            text += f" --maps {','.join(self.maps)}"
        return f"{text} --{self.direction}" if self.direction else text


@dataclass
class Collected:
    """Map fds gathered from the sources, in order, deduplicated by kernel map id.

    `kept`: for maps taken from a session, fd -> the entry that session was handed (its
    id and the sender's flags, pinning, inner_id, inner_idx); `st`: the session's obj_st.
    """

    fds: FdSet
    obj_hint: str | None = None
    kept: dict[int, wire.MapEntry] = field(default_factory=dict)
    st: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        self._ids: set[int] = set()

    def add(self, fd: int) -> int | None:
        """Take ownership of `fd`; its kernel map id, or None when that map was already
        collected (the fd is then closed and skipped)."""
        try:
            map_id = bpf.map_info(fd).id
        except BaseException:
            os.close(fd)
            raise
        if map_id in self._ids:
            os.close(fd)
            return None
        self._ids.add(map_id)
        self.fds.add(fd)
        return map_id


def _kernel_hint(err: KernelError, what: str) -> BpfSessionError:
    if err.errno == errno.ENOENT:
        return BpfSessionError(f"{what} does not exist (see `bpftool map show` / `prog show`)")
    if err.errno == errno.EPERM:
        return BpfSessionError(f"{what}: permission denied (CAP_BPF or CAP_SYS_ADMIN needed)")
    return BpfSessionError(f"{what}: {err.strerror}")


def _map_by_id(out: Collected, map_id: int, flags: int = 0) -> None:
    try:
        out.add(bpf.map_get_fd_by_id(map_id, flags))
    except KernelError as err:
        raise _kernel_hint(err, f"map id {map_id}") from None


def _prog_maps(out: Collected, prog_id: int, flags: int = 0) -> str:
    try:
        fd = bpf.prog_get_fd_by_id(prog_id)
    except KernelError as err:
        raise _kernel_hint(err, f"prog id {prog_id}") from None
    try:
        info = bpf.prog_info(fd)
    finally:
        os.close(fd)
    if not info.map_ids:
        raise BpfSessionError(f"prog id {prog_id} ({info.name}) uses no maps")
    for map_id in info.map_ids:
        _map_by_id(out, map_id, flags)
    return info.name


def _pinned(out: Collected, path: str, flags: int = 0) -> None:
    try:
        fd = bpf.obj_get(path, flags)
    except KernelError as err:
        if err.errno == errno.ENOENT:
            raise BpfSessionError(f"nothing pinned at {path}") from None
        if err.errno in (errno.EPERM, errno.EACCES, errno.EINVAL):  # not on bpffs, no bpf object
            raise BpfSessionError(f"{path} is not a pinned BPF object (is it on a bpf file "
                                  "system, e.g. /sys/fs/bpf?)") from None
        raise _kernel_hint(err, path) from None
    kind = bpf.fd_kind(fd)
    if kind != "bpf-map":
        os.close(fd)
        raise BpfSessionError(f"{path} is a pinned {kind or 'object'}, not a map; use "
                              "--prog-id for a program's maps")
    out.add(fd)


def _dev_maps(out: Collected, dev: str, direction: str, netns_path: str | None,
              flags: int = 0) -> str:
    from bpfsession import tcfilter

    filters = tcfilter.bpf_filters(dev, direction, netns_path)
    if not filters:
        raise BpfSessionError(f"no BPF filter on {dev} {direction} (see `tc filter show dev "
                              f"{dev} {direction}`)")
    for f in filters:
        _prog_maps(out, f.prog_id, flags)
    # "counter.o:[tc]" -> "counter.o": iproute2 announces the object file's name.
    return re.sub(r":\[.*\]$", "", filters[0].name) or dev


def collect(sources: Sequence[Source], netns_path: str | None = None,
            read_only: bool = False) -> Collected:
    """Open every map the sources name, in order; all fds closed on any failure.
    `read_only`: every fd opened with BPF_F_RDONLY (a session's maps asked for so)."""
    flags = bpf.BPF_F_RDONLY if read_only else 0
    out = Collected(FdSet())
    with out.fds:
        for src in sources:
            hint = None
            if src.kind == "map-id":
                _map_by_id(out, _int(src), flags)
            elif src.kind == "prog-id":
                hint = _prog_maps(out, _int(src), flags)
            elif src.kind == "pinned":
                _pinned(out, src.value, flags)
            elif src.kind == "dev":
                if src.direction is None:
                    raise BpfSessionError(f"--dev {src.value} needs --ingress or --egress")
                hint = _dev_maps(out, src.value, src.direction, netns_path, flags)
            elif src.kind == "session":
                hint = _session_maps(out, src.value, src.maps, read_only)
            out.obj_hint = out.obj_hint or hint
    return out


def _session_maps(out: Collected, spec: str, names: Sequence[str] | None = None,
                  read_only: bool = False) -> str | None:
    """The session's maps (or those `names` names), each with the entry it was handed:
    its id from the session, the sender's other fields from the registry (else what the
    hand-on carried: the kernel's flags and zeros for a session without a registry
    entry)."""
    from bpfsession import attach, discover

    session = discover.find(spec)
    obj, maps = attach.fetch_maps(session, None if names is None else list(names), read_only)
    kept = {m.id: m.sender for m in session.maps if m.sender is not None}
    pending = list(maps)
    try:
        while pending:
            entry, fd = pending.pop(0)
            map_id = out.add(fd)
            if map_id is None:
                continue
            flags, pinning, inner_id, inner_idx = kept.get(map_id) or \
                (entry.flags, entry.pinning, entry.inner_id, entry.inner_idx)
            out.kept[fd] = entry._replace(flags=flags, pinning=pinning, inner_id=inner_id,
                                          inner_idx=inner_idx)
    finally:
        FdSet(fd for _, fd in pending).close()
    if session.obj_st is not None:
        out.st = session.obj_st
    return obj


def _int(src: Source) -> int:
    try:
        return int(src.value, 0)
    except ValueError:
        raise BpfSessionError(f"{src}: not a number") from None


def entry_for(info: bpf.MapInfo, entry_id: int) -> wire.MapEntry:
    """A bpf_elf_map entry from the kernel's view of a map."""
    return wire.MapEntry(type=info.type, size_key=info.key_size, size_value=info.value_size,
                         max_elem=info.max_entries, flags=info.flags, id=entry_id)


def entries_for(collected: Collected, infos: list[bpf.MapInfo],
                alone: bool) -> list[wire.MapEntry]:
    """The entries to send: type and sizes from the kernel; a session's maps keep the
    sender's flags, pinning, inner_id and inner_idx, and, when that session is the only
    source (`alone`), their entry ids too. Otherwise ids are 0..n-1 in order."""
    entries = []
    for i, (info, fd) in enumerate(zip(infos, collected.fds, strict=True)):
        entry = entry_for(info, i)
        kept = collected.kept.get(fd)
        if kept is not None:
            entry = entry._replace(id=kept.id if alone else i, flags=kept.flags,
                                   pinning=kept.pinning, inner_id=kept.inner_id,
                                   inner_idx=kept.inner_idx)
        entries.append(entry)
    return entries


def send(uds: str, sources: Sequence[Source], obj: str | None = None,
         netns_path: str | None = None, layout: int = wire.DEFAULT_LAYOUT,
         to_uids: Sequence[int] = (), timeout: float | None = wire.DEFAULT_SEND_TIMEOUT,
         read_only: bool = False) -> tuple[str, list[tuple[wire.MapEntry, bpf.MapInfo]]]:
    """Collect, send, close; returns the obj name and what was sent, (entry, map) pairs.

    `send --session S` alone passes S's hand-off on as S received it (entry ids, the
    sender's entry fields, the header's obj_st); mixed sources are renumbered 0..n-1 and
    announce obj_st 0/0. `read_only`: the receiver gets fds opened with BPF_F_RDONLY.
    """
    if not sources:
        raise BpfSessionError("no SOURCE given: --map-id, --pinned, --prog-id, --dev or "
                              "--session")
    collected = collect(sources, netns_path, read_only)
    try:
        infos = [bpf.map_info(fd) for fd in collected.fds]
        name = obj or collected.obj_hint or "bpfsession"
        alone = len(sources) == 1 and sources[0].kind == "session"
        entries = entries_for(collected, infos, alone)
        wire.send_maps(uds, name, list(zip(entries, collected.fds, strict=True)),
                       collected.st if alone else (0, 0), layout, to_uids, timeout)
    finally:
        collected.fds.close()
    return name, list(zip(entries, infos, strict=True))
