"""Live sessions, found from /proc; `bpfsession new`'s registry adds what /proc cannot know.

A session is a process tree that holds BPF map fds and carries BPF_NUM_MAPS in its
environment (both `tc exec bpf imp` and `bpfsession new` put it there before the command
runs). Its root is the topmost such process; descendants that still hold some of the same
maps are listed under it, and so are agents started by `bpfsession attach` (they carry the
session's BPFSESSION_ID). The scan reads /proc/*/environ first and looks at fds only for
the processes that matched: that keeps `list` cheap on a machine with thousands of tasks.

Processes that exit mid-scan and /proc files we may not read (another user's environ when
not root) are normal: such a process is skipped, never an error. `proc` is injectable for
tests; `run_dir` defaults to $BPFSESSION_RUN_DIR or /run/bpfsession.
"""

from __future__ import annotations

import os
import time

from bpfsession import mapenv
from bpfsession.errors import BpfSessionError
from bpfsession.kernel import proc as procfs
from bpfsession.kernel.types import MAP_TYPE_NAMES, fd_read_only, parse_fdinfo, type_name
from bpfsession.model import Record, Session, SessionMap, SessionProcess
from bpfsession.printable import decode

_MARK = mapenv.NUM.encode() + b"="
NETNS_DIR = "/run/netns"
UNKNOWN_NET = "?"  # ns/net we may not read: neither the host's nor any named one


# ---- /proc, one process at a time ------------------------------------------------------


class _Proc(Record):
    __slots__ = ("pid", "ppid", "comm", "starttime", "uid", "cmdline", "env", "map_fds",
                 "fdinfo", "net", "parent")
    _defaults = {"parent": None}
    pid: int
    ppid: int
    comm: str
    starttime: int  # clock ticks since boot (/proc/PID/stat field 22)
    uid: int
    cmdline: list[str]
    env: dict[str, str]
    map_fds: dict[int, int]
    fdinfo: dict[int, dict[str, str]]
    net: str | None  # "net:[ino]"
    parent: _Proc | None


def _environ_hits(proc: str) -> dict[int, bytes]:
    """pid -> raw environ, for every process whose environment carries BPF_NUM_MAPS.

    Most of a scan's time is the kernel copying each process's environment out of its
    memory (access_remote_vm), and os.read releases the GIL: on a machine with more than
    one CPU and many processes, a second thread reads half of them (2,000 processes: 20 ms
    -> 14 ms on 2 cores; bench/bench_list.py).
    """
    try:
        names = procfs.pids(proc)
    except OSError as err:
        raise BpfSessionError(f"cannot read {proc}: {err.strerror} (is procfs mounted?)") \
            from None
    if len(names) < _SPLIT_AT or len(os.sched_getaffinity(0)) < 2:
        return _hits(proc, names)
    # _thread, not threading: the documented low-level API is built in, threading's
    # import alone would cost ~3 ms of the ~6 ms saved.
    import _thread

    half = len(names) // 2
    other: list = []
    done = _thread.allocate_lock()
    done.acquire()

    def work() -> None:
        try:
            other.append(_hits(proc, names[:half]))
        except BaseException as err:  # re-raised below, in the caller's thread
            other.append(err)
        finally:
            done.release()

    _thread.start_new_thread(work, ())
    hits = _hits(proc, names[half:])
    done.acquire()
    if isinstance(other[0], BaseException):
        raise other[0]
    hits.update(other[0])
    return hits


_SPLIT_AT = 512  # below this, a thread's start costs about what it would save


def _hits(proc: str, names: list[str]) -> dict[int, bytes]:
    hits = {}
    for name in names:
        data = procfs.read(f"{proc}/{name}/environ")
        if data and _MARK in data and (data.startswith(_MARK) or b"\0" + _MARK in data):
            hits[int(name)] = data
    return hits


def _parse_env(data: bytes) -> dict[str, str]:
    env = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key.startswith((b"BPF_", b"BPFSESSION_")):
            env[decode(key)] = decode(value)
    return env


def _map_fds(proc: str, pid: int) -> tuple[dict[int, int], dict[int, dict[str, str]]]:
    """fd -> map id and fd -> fdinfo for the process's BPF map fds."""
    ids: dict[int, int] = {}
    infos: dict[int, dict[str, str]] = {}
    base = f"{proc}/{pid}/fd"
    try:
        fds = os.listdir(base)
    except OSError:
        return ids, infos
    for name in fds:
        try:
            if os.readlink(f"{base}/{name}") != "anon_inode:bpf-map":
                continue
        except OSError:
            continue
        data = procfs.read(f"{proc}/{pid}/fdinfo/{name}")
        if data is None:
            continue
        info = parse_fdinfo(decode(data))
        if "map_id" in info:
            ids[int(name)] = int(info["map_id"])
            infos[int(name)] = info
    return ids, infos


def _read_proc(proc: str, pid: int, environ: bytes | None) -> _Proc | None:
    """Everything we want about one process, or None when it vanished meanwhile."""
    st = procfs.stat(pid, proc)
    if st is None:
        return None
    try:
        uid = os.stat(f"{proc}/{pid}").st_uid
    except OSError:
        return None
    cmdline = procfs.read(f"{proc}/{pid}/cmdline") or b""
    if environ is None:
        environ = procfs.read(f"{proc}/{pid}/environ") or b""
    map_fds, infos = _map_fds(proc, pid)
    try:
        net = os.readlink(f"{proc}/{pid}/ns/net")
    except PermissionError:
        net = UNKNOWN_NET  # another user's process: its netns is not ours to know
    except OSError:
        net = None
    args = [decode(a) for a in cmdline.split(b"\0")[:-1]]
    return _Proc(pid, st.ppid, st.comm, st.starttime, uid, args, _parse_env(environ), map_fds,
                 infos, net)


# ---- grouping ---------------------------------------------------------------------------


class _Scan:
    """One pass over /proc: processes, netns names, boot time; shared by every session."""

    def __init__(self, proc: str):
        self.proc = proc
        self._netns: dict[str, str] | None = None
        self._host_net: str | None = None
        self._btime: int | None = None
        self._clk_tck = os.sysconf("SC_CLK_TCK")
        self._map_infos: dict[int, object] = {}

    def netns_of(self, net: str | None, pid: int) -> tuple[str | None, str | None]:
        """(netns, netns_path): a name under /run/netns, else /proc/PID/ns/net; host: None.
        UNKNOWN_NET stays unknown: (None, UNKNOWN_NET), never "the host"."""
        if net is None:
            return None, None
        if net == UNKNOWN_NET:
            return None, UNKNOWN_NET
        if self._host_net is None:
            for who in ("1", "self"):
                try:
                    self._host_net = os.readlink(f"{self.proc}/{who}/ns/net")
                    break
                except OSError:
                    continue
        if net == self._host_net:
            return None, None
        if self._netns is None:
            self._netns = {}
            try:
                names = sorted(os.listdir(NETNS_DIR))
            except OSError:
                names = []
            for name in names:
                try:
                    ino = os.stat(f"{NETNS_DIR}/{name}").st_ino
                except OSError:
                    continue
                self._netns.setdefault(f"net:[{ino}]", name)
        name = self._netns.get(net)
        if name is not None:
            return name, f"{NETNS_DIR}/{name}"
        path = f"{self.proc}/{pid}/ns/net"
        return path, path

    def _born(self, ticks: int) -> float | None:
        """Wall-clock start of a process from its starttime (clock ticks since boot)."""
        if self._btime is None:
            self._btime = procfs.boot_time(self.proc)
            if self._btime is None:
                return None
        return self._btime + ticks / self._clk_tck

    def started(self, ticks: int) -> str | None:
        when = self._born(ticks)
        if when is None:
            return None
        # ISO 8601 with the local offset; time.strftime says +0000, ISO's extended form
        # (and what `new` writes, datetime.isoformat) is +00:00. No datetime: its import
        # costs every `list`.
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(int(when)))
        return f"{stamp[:-2]}:{stamp[-2:]}"

    def map_info(self, map_id: int):
        """The kernel's MapInfo for a map id; None when we may not ask (not root: EPERM)
        or the map is gone (ENOENT)."""
        if map_id not in self._map_infos:
            from bpfsession.kernel import bpf

            info = None
            try:
                fd = bpf.map_get_fd_by_id(map_id)
            except OSError:
                pass
            else:
                try:
                    info = bpf.map_info(fd)
                except OSError:
                    pass
                finally:
                    os.close(fd)
            self._map_infos[map_id] = info
        return self._map_infos[map_id]

    def map_name(self, map_id: int) -> str:
        info = self.map_info(map_id)
        return info.name if info else ""


def _session_maps(root: _Proc, scan: _Scan, reg: dict | None) -> list[SessionMap]:
    env_names = mapenv.names_by_fd(root.env)
    # The registry's record (written from the kernel's answers) saves asking again.
    known = {m.get("id"): m for m in (reg or {}).get("maps", []) if isinstance(m, dict)}
    maps = []
    for fd in sorted(root.map_fds):
        info = root.fdinfo[fd]
        map_id = root.map_fds[fd]
        record = known.get(map_id, {})
        name = record.get("name") or scan.map_name(map_id)
        type_ = record.get("type") or _type_name(int(info.get("map_type", "0")))
        maps.append(SessionMap(
            env=env_names.get(fd, []), fd=fd, id=map_id, name=name,
            type=type_, key_size=int(info.get("key_size", "0")),
            value_size=int(info.get("value_size", "0")),
            max_entries=int(info.get("max_entries", "0")),
            memlock=int(info.get("memlock", "0")), frozen=info.get("frozen", "0") != "0",
            flags=int(info.get("map_flags", "0"), 16), sender=_sender(record),
            read_only=fd_read_only(info)))
    if not maps and reg is not None:
        maps = _registry_maps(reg, scan)
    return maps


def _registry_maps(reg: dict, scan: _Scan) -> list[SessionMap]:
    """The maps of a registered session whose fds we cannot see (its command closed them
    while the supervisor holds them, or they are another user's): the registry's list,
    written from the kernel's answers, with what only the kernel knows now (memlock,
    frozen) asked where we may, else None (unknown)."""
    maps = []
    for m in reg["maps"]:
        info = scan.map_info(m["id"])
        maps.append(SessionMap(
            env=[m["env"]] if m["env"] else [], fd=m["fd"], id=m["id"],
            name=m["name"] or (info.name if info else ""), type=m["type"],
            key_size=m["key_size"], value_size=m["value_size"], max_entries=m["max_entries"],
            memlock=None, frozen=None,
            flags=m.get("flags", info.flags if info else None),
            sender=_sender(m), read_only=True if reg.get("read_only") is True else None))
    return maps


# wire.LAYOUTS' entry sizes (wire is not imported on `list`'s path: ~6 ms);
# tests/test_send_session.py checks that the two agree.
WIRE_LAYOUTS = (20, 24, 28, 36)
_SENDER_FIELDS = ("flags", "pinning", "inner_id", "inner_idx")


def _uint(value, bits: int) -> bool:
    return type(value) is int and 0 <= value < 1 << bits


def _sender(record: dict) -> tuple[int, int, int, int] | None:
    """The sender's entry fields a registry map record kept, or None (not kept, malformed)."""
    kept = record.get("sender")
    if not isinstance(kept, dict):
        return None
    values = tuple(kept.get(k) for k in _SENDER_FIELDS)
    return values if all(_uint(v, 32) for v in values) else None  # type: ignore[return-value]


def _wire_fields(reg: dict) -> tuple[int | None, tuple[int, int] | None]:
    """(wire_layout, obj_st) from a registry entry; None for what it lacks or garbles."""
    layout = reg.get("wire_layout")
    st = reg.get("obj_st")
    return (layout if type(layout) is int and layout in WIRE_LAYOUTS else None,
            (st[0], st[1]) if isinstance(st, list) and len(st) == 2
            and all(_uint(v, 64) for v in st) else None)


def _type_name(value: int) -> str:
    return type_name(MAP_TYPE_NAMES, value)


def _process(p: _Proc) -> SessionProcess:
    return SessionProcess(p.pid, p.ppid, p.comm, p.cmdline, dict(p.map_fds),
                          frozenset(fd for fd, info in p.fdinfo.items() if fd_read_only(info)))


def _build(root: _Proc, members: list[_Proc], scan: _Scan, reg: dict | None) -> Session:
    env = root.env
    netns, netns_path = scan.netns_of(root.net, root.pid)
    if netns_path == UNKNOWN_NET and reg is not None:
        netns, netns_path = reg.get("netns"), reg.get("netns_path")  # the registry's word
    if reg is not None:
        sid, name = reg["id"], str(reg.get("name") or reg["id"])
        obj = reg.get("obj")
        command = list(reg.get("command") or root.cmdline)
        started = reg.get("started") or scan.started(root.starttime)
        uid = int(reg.get("uid", root.uid))
    else:
        sid = env.get("BPFSESSION_ID") or f"tc-{root.pid}"
        name = env.get("BPFSESSION_NAME") or sid
        obj = env.get("BPF_OBJ")
        command = root.cmdline
        started = scan.started(root.starttime)
        uid = root.uid
    reg = reg or {}
    waiting = reg.get("state") == "waiting"
    sup = reg.get("supervisor")
    if not isinstance(sup, int) or sup <= 0 or (sup == root.pid and not waiting):
        sup = None  # `new --exec`: the command is its own registrant, nobody supervises
    layout, obj_st = _wire_fields(reg)
    # A waiting receiver holds no maps of its own yet (any map fds it inherited from an
    # enclosing session are not the maps it waits for).
    maps = [] if waiting else _session_maps(root, scan, reg or None)
    return Session(
        id=sid, name=name, pid=root.pid, supervisor=sup, uid=uid, netns=netns,
        netns_path=None if netns_path == UNKNOWN_NET else netns_path,
        netns_known=netns_path != UNKNOWN_NET, obj=obj, command=command,
        started=started, maps=maps,
        processes=[_process(p) for p in members], registered=bool(reg),
        control=reg.get("control"), allow_uids=[int(u) for u in reg.get("allow_uids", [])],
        socket=reg.get("socket"), env=dict(env), wire_layout=layout, obj_st=obj_st,
        state="waiting" if waiting else "running", since=reg.get("since") or started,
        read_only=reg.get("read_only") is True,
        read_only_uids=[int(u) for u in reg.get("read_only_uids", [])])


def _supervises(entry: dict) -> bool:
    """Whether the entry's root process is its supervisor's child (or, under --exec, the
    supervisor itself), as the kernel says: an entry cannot adopt another's session."""
    pid, sup = entry["pid"], entry["supervisor"]
    st = procfs.stat(pid) if pid != sup else None
    if pid == sup or (st is not None and st.ppid == sup):
        return True
    if st is not None:
        from bpfsession import registry

        registry.warn_once(f"ignoring the registry entry {entry['id']}: its pid {pid} is not "
                           f"a child of its supervisor {sup}")
    return False  # (the root exited meanwhile: the supervisor is about to clean up)


def _live_entries(run_dir: str | None) -> dict[int, dict]:
    """root pid -> registry entry whose supervisor lives; stale entries are pruned.

    An entry is stale when its supervisor is gone (SIGKILL leaves no time to clean up; a
    reboot keeps /run only in a container volume). Its shell may outlive it: the session
    is then found from /proc like a `tc exec` one, keeping id and name from its environ.
    """
    from bpfsession import registry

    live, stale = {}, False
    entries = registry.read_all(run_dir)
    for entry in entries:
        if not registry.alive(entry):
            stale = True
        elif _supervises(entry):
            live[entry["pid"]] = entry
    if stale:
        try:
            registry.prune(run_dir, entries)
        except OSError:
            pass  # not ours to remove (another user's entry): the owner's next scan will
    return live


def scan(proc: str = "/proc", run_dir: str | None = None) -> list[Session]:
    """Every live session on the machine, oldest first."""
    sc = _Scan(proc)
    live = _live_entries(run_dir)
    procs: dict[int, _Proc] = {}
    for pid, environ in _environ_hits(proc).items():
        p = _read_proc(proc, pid, environ)
        if p is not None and (p.map_fds or pid in live):
            procs[pid] = p
    for pid in live:  # a registered root that dropped its environ or maps is still a root
        if pid not in procs and (p := _read_proc(proc, pid, None)) is not None:
            procs[pid] = p

    # Group the candidates into trees. A process belongs under its parent when the parent
    # is a candidate too and the two hold at least one map in common: a shell's children
    # inherit its fds, while an unrelated session started from inside one (another `new`
    # or `tc exec`, holding other maps) is a root of its own. A registered root never
    # goes under anyone (its supervisor says it is a session).
    for p in procs.values():
        parent = procs.get(p.ppid)
        if parent is not None and p.pid not in live \
                and set(p.map_fds.values()) & set(parent.map_fds.values()):
            p.parent = parent
    # Then each process joins the tree of its topmost ancestor; walking in start order
    # keeps every tree's members (and so `processes`) oldest first, its root leading.
    trees: dict[int, list[_Proc]] = {}
    for p in sorted(procs.values(), key=lambda q: (q.starttime, q.pid)):
        top = p
        while top.parent is not None:
            top = top.parent
        trees.setdefault(top.pid, []).append(p)

    sessions = [_build(procs[root], members, sc, live.get(root))
                for root, members in trees.items()]
    sessions = _merge_attached(sessions)
    sessions.sort(key=lambda s: (s.started or "", s.pid))
    return sessions


def _merge_attached(sessions: list[Session]) -> list[Session]:
    """Fold agents started by `attach` into the session whose id they carry.

    An agent's environ carries BPFSESSION_ID; of several trees claiming one id, a
    registered one, else the oldest, is the session (it existed before any attach to it),
    and a claimant holding only that session's maps is one of its processes.
    """
    by_id: dict[str, list[Session]] = {}
    for s in sessions:
        by_id.setdefault(s.id, []).append(s)
    out = []
    for group in by_id.values():
        group.sort(key=lambda s: (not s.registered, s.started or "", s.pid))
        head = group[0]
        out.append(head)
        for other in group[1:]:
            held = {i for p in other.processes for i in p.map_fds.values()}
            if held <= head.map_ids:
                head.processes.extend(other.processes)
            else:
                out.append(other)
    return out


def find(spec: str, sessions: list[Session] | None = None, *, quick: bool = False) -> Session:
    """The session named by `spec`: its id, its name, or the pid of any process in it.

    Of several sessions with one name (a supervisor was killed and a new session took its
    name), the registered one is meant. `quick` (for attach): a registered session named
    by id or name, or a `tc-PID`, is read from its root alone, without walking all of
    /proc; its `processes` then hold only the root.
    """
    if sessions is None:
        if quick and (found := _find_quick(spec)) is not None:
            return found
        sessions = scan()
    for s in sessions:
        if s.id == spec:
            return s
    named = [s for s in sessions if s.name == spec]
    if len(named) > 1:
        named = [s for s in named if s.registered] or named
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        ids = ", ".join(s.id for s in named)
        raise BpfSessionError(f"{len(named)} sessions are named {spec!r} ({ids}): "
                              "name one by its id")
    if spec.isdigit():
        pid = int(spec)
        for s in sessions:
            if pid in (s.pid, s.supervisor) or any(p.pid == pid for p in s.processes):
                return s
        raise BpfSessionError(f"process {pid} is in no session (see 'bpfsession list')")
    raise BpfSessionError(f"no session {spec!r}: give a name, id or pid from "
                          "'bpfsession list'")


def _find_quick(spec: str, proc: str = "/proc", run_dir: str | None = None) -> Session | None:
    """The session `spec` names, from the registry or a tc-PID; None: scan to know."""
    live = _live_entries(run_dir)
    entries = [e for e in live.values() if e["id"] == spec] or \
        [e for e in live.values() if e.get("name") == spec]
    if len(entries) == 1:
        entry = entries[0]
        root = _read_proc(proc, entry["pid"], None)
        if root is None:
            return None
        return _build(root, [root], _Scan(proc), entry)
    if entries or not spec.startswith("tc-") or not spec[3:].isdigit():
        return None
    root = _read_proc(proc, int(spec[3:]), None)
    if root is None or root.pid in live or not root.map_fds or mapenv.NUM not in root.env \
            or "BPFSESSION_ID" in root.env:
        return None
    parent = _read_proc(proc, root.ppid, None)
    if parent is not None and mapenv.NUM in parent.env \
            and set(parent.map_fds.values()) & set(root.map_fds.values()):
        return None  # not a root: a descendant of another session
    return _build(root, [root], _Scan(proc), None)
