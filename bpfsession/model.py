"""The session model: what discovery finds and the CLI and TUI show.

One set of records for every reader: discover.scan() builds them (from /proc and the
registry), `list`/`show` print them as text or through session_json(), the TUI renders
them. The launcher's own view of a map it received is session.HeldMap, not this.
"""

from __future__ import annotations


class Record:
    """A plain typed record: fields in __slots__ order, positional or by keyword, with
    equality and a repr. Not a dataclass: importing dataclasses (with inspect, ~7 ms,
    docs/performance.md) would cost every `list`."""

    __slots__ = ()
    _defaults: dict[str, object] = {}

    def __init__(self, *args, **kwargs):
        names = self.__slots__
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes {len(names)} fields")
        values = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key in values or key not in names:
                raise TypeError(f"{type(self).__name__}: bad or repeated field {key!r}")
            values[key] = value
        for name in names:
            if name in values:
                setattr(self, name, values[name])
            elif name in self._defaults:
                default = self._defaults[name]
                setattr(self, name, default() if callable(default) else default)
            else:
                raise TypeError(f"{type(self).__name__}: missing field {name!r}")

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and all(
            getattr(self, n) == getattr(other, n) for n in self.__slots__)

    __hash__ = None  # mutable, like a dataclass with eq=True

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({fields})"


class SessionMap(Record):
    """One map of a session, as its root process holds it."""

    __slots__ = (
        "env",  # list[str]: BPF_MAP<id> first, then BPF_MAP_<NAME>; from the root's environ
        "fd",  # int: the fd number in the session's root process
        "id",  # int: the kernel map id
        "name", "type",  # str: the kernel's name; bpftool's type name ("hash", "array"...)
        "key_size", "value_size", "max_entries",  # int
        "memlock",  # int; None when unknown (another user's map, seen in the registry only)
        "frozen",  # bool, or None when unknown
        "flags",  # int: map_flags, or None when unknown
        "sender",  # (flags, pinning, inner_id, inner_idx) of the sender's entry, or None
        "read_only",  # bool: the root's fd is read-only (BPF_F_RDONLY); None when unknown
    )
    _defaults = {"sender": None, "read_only": None}
    env: list[str]
    fd: int
    id: int
    name: str
    type: str
    key_size: int
    value_size: int
    max_entries: int
    memlock: int | None
    frozen: bool | None
    flags: int | None
    sender: tuple[int, int, int, int] | None
    read_only: bool | None


class SessionProcess(Record):
    """A process of a session: its root, a descendant holding the maps, or an agent."""

    __slots__ = ("pid", "ppid", "comm", "cmdline", "map_fds", "read_only_fds")
    _defaults = {"read_only_fds": frozenset}
    pid: int
    ppid: int
    comm: str
    cmdline: list[str]
    map_fds: dict[int, int]  # fd -> kernel map id
    read_only_fds: frozenset[int]  # those of map_fds opened read-only (fdinfo flags)


class Session(Record):
    """A live session. `netns`: a name under /run/netns, a path for an unnamed netns,
    None for the host's. `registered`: a live registry entry (with a supervisor)
    describes it; `control` is then its supervisor's socket. `env`: the root's BPF_* and
    BPFSESSION_* variables."""

    __slots__ = ("id", "name", "pid", "supervisor", "uid", "netns", "netns_path", "obj",
                 "command", "started", "maps", "processes", "registered", "control",
                 "allow_uids", "socket", "env", "netns_known", "wire_layout", "obj_st",
                 "state", "since", "read_only", "read_only_uids")
    _defaults = {"socket": None, "env": dict, "netns_known": True, "wire_layout": None,
                 "obj_st": None, "state": "running", "since": None, "read_only": False,
                 "read_only_uids": list}
    id: str
    name: str
    pid: int  # the root process
    supervisor: int | None
    uid: int
    netns: str | None
    netns_path: str | None
    obj: str | None
    command: list[str]
    started: str | None
    maps: list[SessionMap]
    processes: list[SessionProcess]
    registered: bool
    control: str | None
    allow_uids: list[int]
    socket: str | None
    env: dict[str, str]
    netns_known: bool  # False: not root, and no registry entry says (netns is then None)
    wire_layout: int | None  # the hand-off's bpf_scm entry size, from the registry
    obj_st: tuple[int, int] | None  # (st_dev, st_ino) of the sender's header
    state: str  # "waiting": `new` waits for its maps on `socket` (no maps yet); "running"
    since: str | None  # ISO 8601: when it entered its state (running: `started`)
    read_only: bool  # `new --read-only`: it holds and hands out read-only fds only
    read_only_uids: list[int]  # `--allow-uid UID:ro`: handed read-only fds

    @property
    def map_ids(self) -> set[int]:
        return {m.id for m in self.maps}


def fd_label(fd: int, read_only: bool | None) -> str:
    """A map fd for people: `5(ro)` when it was opened read-only (the kernel refuses
    writes through it), else `5`."""
    return f"{fd}(ro)" if read_only else str(fd)


def session_json(s: Session) -> dict:
    """The JSON shape of a session for `list -j` / `show -j` (docs/sessions.md).

    `"netns": null` is the host's; when the netns is not ours to know, `netns_known` is
    added, false. `state` is "waiting" or "running", `since` when it entered it."""
    doc = {
        "id": s.id, "name": s.name, "pid": s.pid, "netns": s.netns, "obj": s.obj,
        "command": s.command, "started": s.started,
        "maps": [{"env": m.env[0] if m.env else None, "fd": m.fd, "id": m.id, "name": m.name,
                  "type": m.type, "key_size": m.key_size, "value_size": m.value_size,
                  "max_entries": m.max_entries, "env_names": m.env, "memlock": m.memlock,
                  "frozen": m.frozen, "flags": m.flags, "read_only": m.read_only}
                 for m in s.maps],
        "supervisor": s.supervisor, "uid": s.uid, "netns_path": s.netns_path,
        "registered": s.registered, "control": s.control, "socket": s.socket,
        "allow_uids": s.allow_uids, "wire_layout": s.wire_layout,
        "state": s.state, "since": s.since or s.started,
        "read_only": s.read_only, "read_only_uids": s.read_only_uids,
        "processes": [{"pid": p.pid, "ppid": p.ppid, "comm": p.comm, "cmdline": p.cmdline,
                       "maps": {str(fd): i for fd, i in sorted(p.map_fds.items())},
                       "map_fds": [{"fd": fd, "id": i, "read_only": fd in p.read_only_fds}
                                   for fd, i in sorted(p.map_fds.items())]}
                      for p in s.processes],
    }
    if not s.netns_known:
        doc["netns_known"] = False
    return doc
