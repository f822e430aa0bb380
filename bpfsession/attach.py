"""`bpfsession attach`: take a live session's maps and run a command with them.

The fds come from the session itself, two ways:
- its supervisor's control socket (control.py: an "attach" request; path in the registry
  entry). The supervisor checks our SO_PEERCRED (root, the session's owner, its
  --allow-uids) and answers with the maps' wire entries and their fds, or a refusal; we
  check its SO_PEERCRED in turn (root or the session's owner), so a socket planted at
  that path cannot feed us other maps.
- without a supervisor (`tc exec` sessions, `new --exec`, a supervisor killed with
  SIGKILL): pidfd_getfd(2) on the session's root process, one map fd at a time. The
  kernel allows that only with ptrace rights over the root (PTRACE_MODE_ATTACH_REALCREDS:
  root, or the same uid under Yama ptrace_scope 0).

The command then runs the way `bpfsession new` runs one (session.run_supervised):
same environment contract, the session's netns entered as `ip netns exec` does, maps at
fds 3.., exit status the command's (128+N on signal N).
"""

from __future__ import annotations

import errno
import os

from bpfsession import mapenv, wire
from bpfsession.errors import BpfSessionError, KernelError
from bpfsession.fds import FdSet
from bpfsession.model import Session


def fetch_maps(session: Session, names: list[str] | None = None, read_only: bool = False,
               ) -> tuple[str, list[tuple[wire.MapEntry, int]]]:
    """The session's obj name and its maps as (entry, fd) pairs; the fds are the caller's.

    Entry ids are the session's own (BPF_MAP<id> stays the same name for the same map).
    `names` (kernel map names or BPF_MAP<id> names, handout.pick) narrows them to those;
    `read_only` makes every fd read-only (BPF_F_RDONLY), checked here on each fd's fdinfo
    whatever the supervisor says. BpfSessionError when the session ended meanwhile, a
    name is unknown, or we may not take its maps (or not read-only).
    """
    if session.state == "waiting":
        from bpfsession.printable import printable

        raise BpfSessionError(f"session {printable(session.name)} has no maps yet: it waits "
                              f"for them on {printable(session.socket or '?')} (`bpfsession "
                              "send` them there, then try again)")
    chosen = None
    if names is not None:
        from bpfsession import handout

        chosen = handout.pick(names, session.maps, f"session {session.name}")
    got = None
    if session.control and session.supervisor:
        got = _from_control(session, chosen, read_only)
    if got is None:
        got = _from_process(session, chosen)
    if not read_only:
        return got
    from bpfsession import handout

    obj, pairs = got
    fds = handout.make_read_only([fd for _, fd in pairs])
    return obj, [(entry, fd) for (entry, _), fd in zip(pairs, fds, strict=True)]


# ---- the control socket ------------------------------------------------------------------


def _owners(s: Session) -> set[int]:
    """Whom a session's control socket may be served by: root and the session's owner
    (registry.read_all trusts an entry only when its file belongs to root or that uid)."""
    return {0, s.uid}


def _from_control(s: Session, chosen=None, read_only: bool = False,
                  ) -> tuple[str, list[tuple[wire.MapEntry, int]]] | None:
    """None when nobody serves the socket any more (then the root process is asked).
    `chosen`: only these maps (model.SessionMap), asked for by kernel map id."""
    from bpfsession import control

    assert s.control is not None
    req: dict = {"op": "attach"}
    if chosen is not None:
        req["ids"] = [m.id for m in chosen]
    if read_only:
        req["read_only"] = True
    try:
        reply = control.request(s.control, _owners(s), req, f"session {s.name}")
    except control.Unreachable:
        return None  # the supervisor died: its shell may still hold the maps
    pairs = list(zip(reply.entries, reply.fds, strict=True))
    if chosen is not None:  # a supervisor that predates "ids" answers with every map
        wanted = {m.id for m in chosen}
        extra = [fd for _, fd in pairs if _fdinfo_map_id(fd) not in wanted]
        FdSet(extra).close()
        pairs = [(e, fd) for e, fd in pairs if fd not in extra]
    return reply.obj, pairs


def take_map(s: Session, m) -> int:
    """An fd of one map of the session (a model.SessionMap), the way attach takes them:
    the control socket (the session's --allow-uids may ask), else pidfd_getfd."""
    if s.control and s.supervisor:
        from bpfsession import control

        try:
            reply = control.request(s.control, _owners(s), {"op": "map", "id": m.id},
                                    f"session {s.name}")
        except control.Unreachable:
            pass
        else:
            return reply.fds[0]
    return _from_process(s, [m])[1][0][1]


# ---- pidfd_getfd on the root process -------------------------------------------------------


def _from_process(s: Session, maps=None) -> tuple[str, list[tuple[wire.MapEntry, int]]]:
    """The session's maps (or `maps`, some of them) taken from its root process."""
    from bpfsession.kernel import pidfd
    from bpfsession.kernel.types import MAP_TYPES

    maps = s.maps if maps is None else maps
    if not maps:
        raise BpfSessionError(f"session {s.name} holds no maps any more")
    try:
        pfd = pidfd.pidfd_open(s.pid)
    except KernelError as err:
        if err.errno == errno.ESRCH:
            raise _ended(s) from None
        raise BpfSessionError(f"cannot open process {s.pid}: {err.strerror}") from None
    got = FdSet()
    try:
        with got:
            for m in maps:
                fd = _getfd(pfd, s, m.fd)
                got.add(fd)
                if _fdinfo_map_id(fd) != m.id:
                    raise BpfSessionError(f"session {s.name} changed meanwhile (fd {m.fd} of "
                                          f"pid {s.pid} is no longer map {m.id}); try again")
            entries = [wire.MapEntry(type=MAP_TYPES.get(m.type, 0), size_key=m.key_size,
                                     size_value=m.value_size, max_elem=m.max_entries,
                                     flags=m.flags, id=i)
                       for m, i in zip(maps, _entry_ids(maps), strict=True)]
            fds = got.release()
    finally:
        os.close(pfd)
    return s.obj or "", list(zip(entries, fds, strict=True))


def _getfd(pfd: int, s: Session, fd: int) -> int:
    from bpfsession.kernel import pidfd

    try:
        return pidfd.pidfd_getfd(pfd, fd)
    except KernelError as err:
        if err.errno == errno.ESRCH:
            raise _ended(s) from None
        if err.errno == errno.EPERM:
            raise BpfSessionError(f"not allowed to take session {s.name}'s maps from pid "
                                  f"{s.pid}: that needs ptrace rights over it (run as root "
                                  f"or as uid {s.uid}; see kernel.yama.ptrace_scope)") from None
        if err.errno == errno.EBADF:
            raise BpfSessionError(f"session {s.name} changed meanwhile (pid {s.pid} closed "
                                  f"fd {fd}); try again") from None
        raise BpfSessionError(f"cannot take fd {fd} of pid {s.pid}: {err.strerror}") from None


def _entry_ids(maps) -> list[int]:
    """Each map's sender entry id, read back from its BPF_MAP<id> variable in the root."""
    ids = [next((i for i in map(mapenv.entry_id, m.env) if i is not None), None)
           for m in maps]
    used = {i for i in ids if i is not None}
    spare = (i for i in range(1 << 32) if i not in used)
    return [i if i is not None else next(spare) for i in ids]


def _ended(s: Session) -> BpfSessionError:
    return BpfSessionError(f"session {s.name} ended meanwhile (pid {s.pid} is gone)")


# ---- running the command -------------------------------------------------------------------


def attach(spec: str, command: list[str] | None, keep_caps: frozenset[int] | None = None,
           no_new_privs: bool = False, read_only: bool = False,
           names: list[str] | None = None) -> int:
    """`bpfsession attach SPEC [run CMD...]`: the command's exit status (128+N on signal).

    `keep_caps`/`no_new_privs` restrict the command as `new --keep-caps/--no-new-privs` do;
    `read_only` and `names` (--read-only, --maps) as fetch_maps() says."""
    from bpfsession import discover

    s = discover.find(spec, quick=True)
    obj, pairs = fetch_maps(s, names, read_only)
    fds = FdSet(fd for _, fd in pairs)
    try:
        return _run(s, obj, pairs, command, keep_caps, no_new_privs)
    finally:
        fds.close()


def _run(s: Session, obj: str, pairs, command: list[str] | None,
         keep_caps: frozenset[int] | None, no_new_privs: bool) -> int:
    from bpfsession import init, session

    maps = [session.HeldMap(entry, fd, session.FIRST_MAP_FD + i, _info(s, fd))
            for i, (entry, fd) in enumerate(pairs)]
    argv = command or [os.environ.get("SHELL") or "/bin/sh"]
    target, netns_fd = _netns(s)
    try:
        env = session.session_env(dict(os.environ), maps, obj, s.id, s.name,
                                  target.arg if target else None)
        launch = session.Launch(argv, env, [m.fd for m in maps], target, netns_fd,
                                keep_caps, no_new_privs)
        sigpipe = init.SignalPipe()  # from here on, signals are forwarded to the command
        try:
            return session.run_supervised(launch, sigpipe, None, False, 0)
        finally:
            sigpipe.close()
    finally:
        if netns_fd >= 0:
            os.close(netns_fd)


def _info(s: Session, fd: int):
    """What the kernel says of a map fd we hold, from /proc/self/fdinfo (type, sizes,
    flags, id), named from the session's discovery (the kernel's name, as recorded).

    No bpf(2) call: an unprivileged attacher (an --allow-uid) may hold the fd yet not be
    allowed BPF_OBJ_GET_INFO_BY_FD (kernel.unprivileged_bpf_disabled), and attach's
    start-up then does without ctypes.
    """
    from bpfsession.kernel.types import map_info_from_fdinfo, read_fdinfo

    fdinfo = read_fdinfo(fd)
    map_id = int(fdinfo.get("map_id", "0"))
    name = next((m.name for m in s.maps if m.id == map_id), "")
    try:
        return map_info_from_fdinfo(fdinfo, name)
    except (KeyError, ValueError):
        raise BpfSessionError(f"fd {fd} from session {s.name} is not a BPF map "
                              "(no map fields in its fdinfo)") from None


def _fdinfo_map_id(fd: int) -> int:
    from bpfsession.kernel.types import read_fdinfo

    return int(read_fdinfo(fd).get("map_id", "0"))


def _netns(s: Session):
    """The session's netns (as `ip netns exec` would name it) and an open fd, or (None, -1)."""
    if s.netns is None:
        return None, -1
    from bpfsession import netns

    if "/" in s.netns:
        target = netns.Netns(s.netns, s.netns_path or s.netns, None)
    else:
        target = netns.Netns(s.netns, s.netns_path or f"{netns.NETNS_RUN_DIR}/{s.netns}",
                             s.netns)
    try:
        return target, netns.open_netns(target)
    except BpfSessionError as err:
        raise BpfSessionError(f"session {s.name}'s {err.hint}") from None
