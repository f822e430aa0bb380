"""iproute2's map-fd hand-off, bpf_scm version 1, both directions.

Byte layout (iproute2 include/bpf_scm.h and include/bpf_elf.h, native structs, x86_64 and
aarch64 alike):

    struct bpf_map_aux {
        unsigned short uds_ver;           /* BPF_SCM_AUX_VER = 1 */
        unsigned short num_ent;           /* TOTAL maps of the hand-off, in every datagram */
        char obj_name[64];
        struct { dev_t st_dev; ino_t st_ino; } obj_st;  /* after 4 bytes of padding */
        struct bpf_elf_map ent[64];       /* only the entries this datagram carries */
    };                                    /* header: 88 bytes; each entry: 9 x u32 = 36 */

Each datagram carries at most 64 entries and, in one SCM_RIGHTS message, the same number
of fds in the same order (lib/bpf_legacy.c: bpf_map_set_send / bpf_map_set_recv). The
receiver binds the path (SOCK_DGRAM); the sender connects to it.
"""

from __future__ import annotations

import array
import os
import socket
import stat
import struct
import time
from collections import namedtuple
from collections.abc import Callable, Iterable, Sequence

from bpfsession.errors import BpfSessionError
from bpfsession.fds import FdSet

UDS_VER = 1
MAX_FDS = 64  # BPF_SCM_MAX_FDS == ELF_MAX_MAPS
OBJ_NAME_LEN = 64
HEADER = struct.Struct("=HH64s4xQQ")
ENTRY = struct.Struct("=9I")
MAX_DATAGRAM = HEADER.size + MAX_FDS * ENTRY.size
_UCRED = struct.Struct("=iII")
_FD_SIZE = array.array("i").itemsize
# Room for 64 fds plus the sender's credentials; a larger SCM_RIGHTS is cut (MSG_CTRUNC)
# and the kernel closes the fds that did not fit.
_ANC_SIZE = socket.CMSG_SPACE(MAX_FDS * _FD_SIZE) + socket.CMSG_SPACE(_UCRED.size)

assert HEADER.size == 88 and ENTRY.size == 36


class WireError(BpfSessionError):
    """A bad hand-off: the hint names what was wrong with which datagram."""


# Named tuples, not dataclasses: `dataclasses` costs ~7 ms of start-up (it imports
# inspect), and `new` is measured against a bare-Python receiver.
_ENTRY_FIELDS = ("type", "size_key", "size_value", "max_elem", "flags", "id", "pinning",
                 "inner_id", "inner_idx")


class MapEntry(namedtuple("MapEntry", _ENTRY_FIELDS, defaults=(0,) * len(_ENTRY_FIELDS))):
    """struct bpf_elf_map: what the sender says about one map (the kernel has the truth)."""

    __slots__ = ()

    def pack(self) -> bytes:
        return ENTRY.pack(*self)


class Header(namedtuple("Header", "version total obj st_dev st_ino", defaults=(0, 0))):
    __slots__ = ()


class Handoff:
    """What one complete hand-off delivered: entries[i] describes fds[i]."""

    def __init__(self, obj: str, st_dev: int, st_ino: int, entries: list[MapEntry],
                 fds: FdSet, senders: set[tuple[int, int]] | None = None):
        self.obj = obj
        self.st_dev = st_dev
        self.st_ino = st_ino
        self.entries = entries
        self.fds = fds
        self.senders = senders if senders is not None else set()  # (pid, uid)

    def close(self) -> None:
        self.fds.close()


def pack(obj: str, entries: Sequence[MapEntry], st: tuple[int, int] = (0, 0)) -> list[bytes]:
    """The datagrams (payloads only) for a hand-off of `entries`, 64 per datagram."""
    name = obj.encode()[: OBJ_NAME_LEN - 1]  # strlcpy: always NUL-terminated
    head = HEADER.pack(UDS_VER, len(entries), name, st[0], st[1])
    return [head + b"".join(e.pack() for e in entries[i : i + MAX_FDS])
            for i in range(0, len(entries), MAX_FDS)]


def unpack(data: bytes) -> tuple[Header, list[MapEntry]]:
    """Parse one datagram; WireError when it is truncated or not version 1."""
    if len(data) < HEADER.size:
        raise WireError(f"truncated datagram: {len(data)} bytes, the bpf_scm header needs "
                        f"{HEADER.size}")
    ver, total, name, dev, ino = HEADER.unpack_from(data)
    if ver != UDS_VER:
        raise WireError(f"unsupported bpf_scm version {ver} (only version {UDS_VER} exists)")
    body = len(data) - HEADER.size
    if body % ENTRY.size:
        raise WireError(f"truncated datagram: {body} bytes of map entries is not a multiple "
                        f"of {ENTRY.size}")
    entries = [MapEntry(*ENTRY.unpack_from(data, HEADER.size + i * ENTRY.size))
               for i in range(body // ENTRY.size)]
    obj = name.split(b"\0", 1)[0].decode(errors="replace")
    return Header(ver, total, obj, dev, ino), entries


def send_maps(path: str, obj: str, maps: Sequence[tuple[MapEntry, int]],
              st: tuple[int, int] = (0, 0)) -> None:
    """Send (entry, fd) pairs to the receiver bound at `path`, as iproute2's sender does."""
    if not maps:
        raise WireError("nothing to send: no maps were found for the given sources")
    entries = [e for e, _ in maps]
    fds = [fd for _, fd in maps]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(path)
        except FileNotFoundError:
            raise WireError(f"no socket at {path}: start the receiver "
                            f"(`bpfsession new imp {path}`) first") from None
        except ConnectionRefusedError:
            raise WireError(f"nobody is listening on {path} (a stale socket file)") from None
        except PermissionError:
            raise WireError(f"permission denied connecting to {path}: the receiver's socket "
                            "is mode 0600; run as its owner or root") from None
        except OSError as err:
            raise WireError(f"cannot connect to {path}: {err.strerror}") from None
        for i, payload in enumerate(pack(obj, entries, st)):
            chunk = array.array("i", fds[i * MAX_FDS : (i + 1) * MAX_FDS])
            try:
                sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, chunk)])
            except OSError as err:
                raise WireError(f"sending to {path} failed: {err.strerror}") from None


class Listener:
    """The receiver's bound socket file: mode 0600, passes credentials, removed on close.

    A stale socket (nobody bound) at the path is replaced; a live one or any other kind
    of file is refused. close() unlinks the path only while it is still our socket.
    """

    def __init__(self, path: str):
        self.path = path
        self.sock: socket.socket | None = None
        self._ident: tuple[int, int] | None = None
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise WireError(f"directory {directory} does not exist (is the shared volume "
                            "mounted?)")
        if len(os.fsencode(path)) >= 108:
            raise WireError(f"socket path too long for AF_UNIX (max 107 bytes): {path}")
        self._clear_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            old = os.umask(0o177)
            try:
                sock.bind(path)
            finally:
                os.umask(old)
            st = os.stat(path)
        except OSError as err:
            sock.close()
            if err.errno == 98:  # EADDRINUSE: lost a race with another receiver
                raise WireError(f"{path} is in use by another receiver") from None
            raise WireError(f"cannot bind {path}: {err.strerror}") from None
        self.sock = sock
        self._ident = (st.st_dev, st.st_ino)

    def _clear_stale(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise WireError(f"{self.path} exists and is not a socket; choose another path")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect(self.path)
            except ConnectionRefusedError:
                os.unlink(self.path)  # stale: its receiver is gone
                return
            except OSError as err:
                raise WireError(f"cannot check existing socket {self.path}: "
                                f"{err.strerror}") from None
        raise WireError(f"a receiver is already listening on {self.path}")

    def fileno(self) -> int:
        assert self.sock is not None
        return self.sock.fileno()

    def close(self) -> None:
        if self.sock is None:
            return
        self.sock.close()
        self.sock = None
        remove_socket_file(self.path, self._ident)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def peer_cred(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of a connected AF_UNIX peer (SO_PEERCRED: struct ucred)."""
    return _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))


def remove_socket_file(path: str, ident: tuple[int, int] | None) -> None:
    """Unlink `path` only while it is still the socket we bound (st_dev, st_ino), never a
    file somebody has put there since."""
    try:
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == ident:
            os.unlink(path)
    except OSError:
        pass


class Datagram(namedtuple("Datagram", "data fds flags cred bad_cmsg", defaults=("",))):
    """One received datagram; `cred` is (pid, uid, gid) from SCM_CREDENTIALS, or None."""

    __slots__ = ()


def recv_datagram(sock: socket.socket) -> Datagram:
    """One recvmsg; every fd that arrived is in .fds (close-on-exec) for the caller to own."""
    data, anc, flags, _ = sock.recvmsg(MAX_DATAGRAM, _ANC_SIZE, socket.MSG_CMSG_CLOEXEC)
    fds: list[int] = []
    cred = None
    bad = ""
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % _FD_SIZE
            fds.extend(array.array("i", payload[:usable]))
        elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            if len(payload) >= _UCRED.size:
                cred = _UCRED.unpack_from(payload)
        else:
            bad = f"unexpected control message (level {level}, type {kind})"
    return Datagram(data, fds, flags, cred, bad)


def check_datagram(dg: Datagram, index: int) -> tuple[Header, list[MapEntry]]:
    """Validate one datagram's framing; WireError names what is wrong."""
    where = f"datagram {index}"
    if dg.flags & socket.MSG_TRUNC:
        raise WireError(f"{where} is larger than a bpf_scm message ({MAX_DATAGRAM} bytes)")
    if dg.flags & socket.MSG_CTRUNC:
        raise WireError(f"{where}: control data truncated (more than {MAX_FDS} fds?)")
    if dg.bad_cmsg:
        raise WireError(f"{where}: {dg.bad_cmsg}")
    header, entries = unpack(dg.data)
    if not entries:
        raise WireError(f"{where} carries no map entries")
    if len(dg.fds) != len(entries):
        raise WireError(f"{where} carries {len(entries)} map entries but {len(dg.fds)} fds")
    return header, entries


def receive(listener: Listener, allowed_uids: Iterable[int], timeout: float | None = None,
            on_refused: Callable[[str], None] | None = None,
            is_map: Callable[[int], bool] | None = None) -> Handoff:
    """Wait for one complete hand-off on `listener`.

    Datagrams from uids outside `allowed_uids` are refused: reported through `on_refused`,
    their fds closed, and the wait goes on. Any malformed datagram from an allowed sender
    ends the hand-off with WireError, every fd received so far closed. `is_map(fd)` checks
    each fd (default: the kernel says it is a BPF map).
    """
    if is_map is None:
        from bpfsession.kernel.bpf import is_map_fd as is_map
    allowed = set(allowed_uids)
    deadline = None if timeout is None else time.monotonic() + timeout
    sock = listener.sock
    assert sock is not None
    got = FdSet()
    entries: list[MapEntry] = []
    first: Header | None = None
    senders: set[tuple[int, int]] = set()
    index = 0
    with got:
        while first is None or len(entries) < first.total:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _timeout(listener.path, timeout, len(entries), first)
                sock.settimeout(remaining)
            try:
                dg = recv_datagram(sock)
            except TimeoutError:
                raise _timeout(listener.path, timeout, len(entries), first) from None
            if dg.cred is None or dg.cred[1] not in allowed:
                FdSet(dg.fds).close()
                who = "an unknown sender" if dg.cred is None else \
                    f"pid {dg.cred[0]} (uid {dg.cred[1]})"
                if on_refused:
                    on_refused(f"refused a datagram from {who}: not root, the invoking user "
                               "or an --allow-uid")
                continue
            got.extend(dg.fds)
            index += 1
            header, new = check_datagram(dg, index)
            if first is None:
                if header.total == 0:
                    raise WireError(f"datagram {index} declares 0 maps")
                first = header
            elif (header.total, header.obj) != (first.total, first.obj):
                raise WireError(f"datagram {index} disagrees with the first (total "
                                f"{header.total} vs {first.total}, obj {header.obj!r} vs "
                                f"{first.obj!r})")
            if len(entries) + len(new) > first.total:
                raise WireError(f"datagram {index} brings the count to "
                                f"{len(entries) + len(new)}, more than the declared total "
                                f"{first.total}")
            for fd in dg.fds:
                if not is_map(fd):
                    raise WireError(f"datagram {index}: fd {fd} is not a BPF map "
                                    f"({_describe_fd(fd)})")
            entries.extend(new)
            senders.add((dg.cred[0], dg.cred[1]))
        ids = [e.id for e in entries]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise WireError(f"the sender used entry id(s) {dup} more than once; BPF_MAP<id> "
                            "would collide")
    return Handoff(first.obj, first.st_dev, first.st_ino, entries, got, senders)


def _timeout(path: str, timeout: float | None, n: int, first: Header | None) -> WireError:
    if first is None:
        return WireError(f"timed out after {timeout:g} s: no sender came to {path}")
    return WireError(f"timed out after {timeout:g} s on {path}: {n} of {first.total} maps "
                     "arrived")


def _describe_fd(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "unreadable"
