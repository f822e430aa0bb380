"""The session's control socket: versioned requests, the client's uid checked on each.

A supervisor (`bpfsession new`) listens on <run dir>/<id>.ctl, an AF_UNIX SOCK_SEQPACKET
socket of mode 0666; whom it answers is decided per request from SO_PEERCRED, which the
kernel fills in at connect() and a client cannot forge. One connection carries one
request and its reply:

    client -> server   {"v": 1, "op": "attach"}                    one JSON object, UTF-8
                       {"v": 1, "op": "attach", "ids": [28], "read_only": true}
    server -> client   {"v": 1, "ok": true, "obj": ..., "maps": [...]}   then the fds
                   or  {"v": 1, "ok": false, "error": "one line"}

Replies that hand over maps ("attach", "map") carry, per map, the wire entry the session
received (wire.MapEntry's fields, ids as the sender gave them) and the kernel's `name`;
the fds follow in further messages of at most FDS_PER_MESSAGE fds each, in the order of
`maps`; then the server hangs up. "ids" (kernel map ids) narrows an attach to some maps;
"read_only" asks for fds opened with BPF_F_RDONLY, and a uid the session's policy makes
read-only (`--allow-uid UID:ro`) gets them whatever it asks; the reply says
"read_only": true when its fds are. The client trusts a reply only from a server whose
SO_PEERCRED uid is root or the session's owner (the owner of its registry entry).

To add a request kind: a handler `_op_NAME(self, uid, request) -> (reply, fds)` on
Server, listed in Server.OPS, and a client function that calls request(). Old clients
send "v": 1; a server answers an unknown version or op with ok false and says which it
knows, so both sides can tell "refused" from "not understood".
"""

from __future__ import annotations

import array
import json
import os
import select
import socket
import time

from bpfsession import wire
from bpfsession.errors import BpfSessionError
from bpfsession.fds import FdSet

VERSION = 1
MAX_REQUEST = 4096  # bytes; a request is a few words of JSON
MAX_REPLY = 1 << 20  # a reply lists up to 65,535 maps (bpf_scm's u16 count)
FDS_PER_MESSAGE = 250  # the kernel takes at most SCM_MAX_FD (253) fds per message
SEND_TIMEOUT = 0.5  # seconds the supervisor gives one reply: it must not stall
MAX_PENDING = 64  # clients connected that have not asked yet
CLIENT_TIMEOUT = 5.0  # seconds a client waits: the supervisor answers from its select loop
_FD_SIZE = array.array("i").itemsize


class ControlError(BpfSessionError):
    """A refused or malformed exchange on a control socket; the hint says which."""


# ---- the server (in the supervisor) ----------------------------------------------------


class Server:
    """Answers requests on `path` for a session holding `maps` (session.HeldMap)."""

    def __init__(self, path: str, allowed: set[int], obj: str, obj_st: tuple[int, int],
                 maps: list, read_only_uids: set[int] = frozenset(), read_only: bool = False):
        self.path = path
        self.allowed = allowed
        self.read_only_uids = read_only_uids  # --allow-uid UID:ro: never handed a writable fd
        self.read_only = read_only  # `new --read-only`: every held fd is read-only already
        self._temporary: list[int] = []  # read-only fds opened for one reply
        self.obj = obj
        self.obj_st = obj_st
        self.maps = maps
        sock = socket.socket(socket.AF_UNIX,
                             socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        try:
            if os.path.lexists(path):
                os.unlink(path)  # ids are random: a leftover of a killed supervisor
            sock.bind(path)
            os.chmod(path, 0o666)
            sock.listen(16)
            st = os.stat(path)
        except OSError as err:
            sock.close()
            raise BpfSessionError(f"cannot create the control socket {path}: "
                                  f"{err.strerror}") from None
        self.sock = sock
        self._ident = (st.st_dev, st.st_ino)
        self._pending: dict[int, socket.socket] = {}  # fd -> connected, not yet asked
        self._poll = select.epoll(flags=select.EPOLL_CLOEXEC)
        self._poll.register(sock.fileno(), select.EPOLLIN)

    def fileno(self) -> int:
        """An epoll fd, readable when a client connects or a connected one has asked."""
        return self._poll.fileno()

    def serve(self) -> None:
        """Accept new clients and answer those whose request is in; never waits for one
        that has not asked yet (it stays pending, at most MAX_PENDING of them)."""
        ready = [fd for fd, _ in self._poll.poll(0)]
        for fd in ready:  # answers first: a new client may reuse a closed one's fd number
            if fd in self._pending:
                self._answer(self._drop(fd))
        if self.sock.fileno() in ready:
            self._accept()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # EAGAIN: no more; ECONNABORTED: the client gave up
            try:  # a client asks right after connect(): its request is often in already
                data = conn.recv(MAX_REQUEST + 1, socket.MSG_DONTWAIT)
            except BlockingIOError:
                data = None
            except OSError:
                conn.close()
                continue
            if data is not None:
                self._answer(conn, data)
                continue
            if len(self._pending) >= MAX_PENDING:  # the oldest idle client makes room
                self._drop(next(iter(self._pending))).close()
            self._pending[conn.fileno()] = conn
            self._poll.register(conn.fileno(), select.EPOLLIN)

    def _drop(self, fd: int) -> socket.socket:
        self._poll.unregister(fd)
        return self._pending.pop(fd)

    def _answer(self, conn: socket.socket, data: bytes | None = None) -> None:
        with conn:
            conn.settimeout(SEND_TIMEOUT)
            try:
                if data is None:
                    data = conn.recv(MAX_REQUEST + 1)
                _, uid, _ = wire.peer_cred(conn)
                reply, fds = self._dispatch(uid, data)
                conn.send(json.dumps(reply).encode())
                for i in range(0, len(fds), FDS_PER_MESSAGE):
                    chunk = array.array("i", fds[i:i + FDS_PER_MESSAGE])
                    conn.sendmsg([b"F"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, chunk)])
            except OSError:
                pass  # a slow or vanished client is dropped; the session goes on
            finally:
                FdSet(self._temporary).close()
                self._temporary = []

    OPS = ("attach", "map")

    def _dispatch(self, uid: int, data: bytes) -> tuple[dict, list[int]]:
        try:
            request = json.loads(data) if len(data) <= MAX_REQUEST else None
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return _refuse("not a request (a JSON object of at most "
                           f"{MAX_REQUEST} bytes)"), []
        if request.get("v") != VERSION:
            return _refuse(f"request version {request.get('v')!r} not understood (this "
                           f"session speaks version {VERSION})"), []
        op = request.get("op")
        if op not in self.OPS:
            return _refuse(f"unknown request {op!r} (known: {', '.join(self.OPS)})"), []
        if uid not in self.allowed:
            return _refuse(f"uid {uid} may not {op}: not root, the session's owner or an "
                           "--allow-uid"), []
        return getattr(self, f"_op_{op}")(uid, request)

    def _op_attach(self, uid: int, request: dict) -> tuple[dict, list[int]]:
        """Every map, or those whose kernel ids "ids" lists (in the session's order)."""
        ids = request.get("ids")
        if ids is None:
            return self._maps_reply(uid, request, self.maps)
        held = {m.info.id for m in self.maps}
        if not isinstance(ids, list) or not ids or \
                not all(type(i) is int and i in held for i in ids):
            return _refuse(f"\"ids\" must list map ids this session holds "
                           f"({', '.join(map(str, sorted(held)))}), not {ids!r}"[:300]), []
        return self._maps_reply(uid, request, [m for m in self.maps if m.info.id in ids])

    def _op_map(self, uid: int, request: dict) -> tuple[dict, list[int]]:
        """One map, named by its kernel map id (what discovery shows)."""
        map_id = request.get("id")
        found = [m for m in self.maps if m.info.id == map_id]
        if type(map_id) is not int or not found:
            return _refuse(f"this session holds no map with id {map_id!r}"), []
        return self._maps_reply(uid, request, found[:1])

    def _maps_reply(self, uid: int, request: dict, maps: list) -> tuple[dict, list[int]]:
        asked = request.get("read_only", False)
        if type(asked) is not bool:
            return _refuse(f"\"read_only\" must be true or false, not {asked!r}"[:200]), []
        read_only = asked or uid in self.read_only_uids or self.read_only
        fds = [m.fd for m in maps]
        if read_only and not self.read_only:
            from bpfsession import handout

            try:
                for fd in fds:
                    self._temporary.append(handout.reopen(fd))
            except BpfSessionError as err:
                return _refuse(err.hint), []
            fds = list(self._temporary)
        records = [{**m.wire_entry()._asdict(), "name": m.info.name} for m in maps]
        reply = {"v": VERSION, "ok": True, "obj": self.obj, "obj_st": list(self.obj_st),
                 "maps": records, "read_only": read_only}
        return reply, fds

    def close(self) -> None:
        for fd in list(self._pending):
            self._drop(fd).close()
        self._poll.close()
        self.sock.close()
        wire.remove_socket_file(self.path, self._ident)


def _refuse(reason: str) -> dict:
    return {"v": VERSION, "ok": False, "error": reason}


# ---- the client (attach, map ... session S NAME) ----------------------------------------


class Unreachable(Exception):
    """Nobody serves the socket any more (its supervisor is gone): ask the process."""


class Reply:
    """A successful reply: the JSON document and the fds it handed over (the caller's)."""

    def __init__(self, doc: dict, entries: list[wire.MapEntry], names: list[str],
                 fds: list[int]):
        self.doc = doc
        self.obj = doc["obj"]
        self.entries = entries
        self.names = names
        self.fds = fds


def request(path: str, owners: set[int], req: dict, what: str) -> Reply:
    """Send `req` (its "v" added) to the server at `path` and read the reply.

    `owners`: the uids the server may run as (root and the session's owner); a socket
    served by anyone else is not trusted. `what` names the session in messages.
    Unreachable when nobody listens; ControlError for a refusal or a bad reply.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(CLIENT_TIMEOUT)
        try:
            _connect(sock, path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise Unreachable from None
        except TimeoutError:
            raise ControlError(f"{what}'s supervisor did not accept within "
                               f"{CLIENT_TIMEOUT:g} s; try again") from None
        except PermissionError:
            owner = " or ".join(f"uid {u}" for u in sorted(owners) if u) or "root"
            raise ControlError(f"permission denied on {what}'s control socket {path}: run "
                               f"as root or {owner}") from None
        except OSError as err:
            raise ControlError(f"cannot reach {what}'s supervisor at {path}: "
                               f"{err.strerror}") from None
        pid, uid, _ = wire.peer_cred(sock)
        if uid not in owners:
            owner = ", ".join(str(u) for u in sorted(owners))
            raise ControlError(f"{path} is served by pid {pid} of uid {uid}, not by uid "
                               f"{owner} ({what}'s owner or root): not trusting it")
        try:
            sock.send(json.dumps({"v": VERSION, **req}).encode())
            return _read_reply(sock, f"{what} refused to {_VERBS.get(req['op'], req['op'])}",
                               what)
        except TimeoutError:
            raise ControlError(f"{what}'s supervisor (pid {pid}) did not answer within "
                               f"{CLIENT_TIMEOUT:g} s; try again") from None
        except (BrokenPipeError, ConnectionResetError):
            raise Unreachable from None


def _connect(sock: socket.socket, path: str) -> None:
    """connect(2), waiting while the supervisor's listen backlog is full.

    A socket with a timeout is non-blocking underneath, and a non-blocking AF_UNIX
    connect to a full backlog fails with EAGAIN at once (net/unix/af_unix.c) instead of
    waiting: many agents attaching at the same moment must queue, not fail.
    """
    deadline = time.monotonic() + CLIENT_TIMEOUT
    pause = 0.001
    while True:
        try:
            sock.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() + pause > deadline:
                raise TimeoutError from None
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


_VERBS = {"attach": "attach", "map": "hand over the map"}  # for "session S refused to ..."


def _read_reply(sock: socket.socket, refused: str, what: str) -> Reply:
    got = FdSet()
    with got:
        data, fds = _recv(sock)
        got.extend(fds)
        if not data:
            raise Unreachable  # it hung up at once: its session is ending
        doc = _parse_reply(data, what)
        if not doc.get("ok"):
            raise ControlError(f"{refused}: {doc.get('error') or 'no reason given'}")
        entries, names = _parse_maps(doc, what)
        while True:  # the fds, then the hang-up (so the server's end is closed on return)
            data, fds = _recv(sock)
            got.extend(fds)
            if not fds:
                break
        if len(got) != len(entries) or data:
            raise ControlError(f"{what}'s supervisor sent {len(got)} fds for "
                               f"{len(entries)} maps and hung up; try again")
        fds = got.release()
    return Reply(doc, entries, names, fds)


def _recv(sock: socket.socket) -> tuple[bytes, list[int]]:
    anc_size = socket.CMSG_SPACE(FDS_PER_MESSAGE * _FD_SIZE)
    data, anc, flags, _ = sock.recvmsg(MAX_REPLY, anc_size, socket.MSG_CMSG_CLOEXEC)
    fds: list[int] = []
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(array.array("i", payload[:len(payload) - len(payload) % _FD_SIZE]))
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        FdSet(fds).close()
        raise ControlError("a control message was truncated; try again")
    return data, fds


def _parse_reply(data: bytes, what: str) -> dict:
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise ControlError(f"{what}'s supervisor answered in a form this bpfsession does "
                           "not read (another version?); update both")
    return doc


def _parse_maps(doc: dict, what: str) -> tuple[list[wire.MapEntry], list[str]]:
    maps = doc.get("maps")
    ok = isinstance(doc.get("obj"), str) and isinstance(maps, list)
    entries, names = [], []
    for m in maps if ok else ():
        fields = [m.get(f) if isinstance(m, dict) else None for f in wire.MapEntry._fields]
        if not all(type(v) is int and 0 <= v < 1 << 32 for v in fields) \
                or not isinstance(m.get("name"), str):
            ok = False
            break
        entries.append(wire.MapEntry(*fields))
        names.append(m["name"])
    if not ok:
        raise ControlError(f"{what}'s supervisor sent a malformed map list")
    return entries, names
