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

The entry grew three times while uds_ver stayed 1 (include/bpf_elf.h of each release):
20 bytes in iproute2 4.1-4.4, 24 in 4.5, 28 in 4.6-4.12, 36 since 4.13 (LAYOUTS). Only
a datagram's length tells them apart: its body divided by the number of fds it carries
is the entry size (docs/wire.md).
"""

from __future__ import annotations

import array
import errno
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
MAX_DATAGRAM = HEADER.size + MAX_FDS * ENTRY.size  # the largest layout's
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

# struct bpf_elf_map as each iproute2 release defined it (all __u32, in this order); the
# key is the entry size in bytes. Fields a layout lacks are 0 when received.
LAYOUTS = {
    20: ("type", "size_key", "size_value", "max_elem", "id"),  # 4.1-4.4
    24: ("type", "size_key", "size_value", "max_elem", "id", "pinning"),  # 4.5
    28: ("type", "size_key", "size_value", "max_elem", "flags", "id", "pinning"),  # 4.6-4.12
    36: _ENTRY_FIELDS,  # 4.13 and later
}
DEFAULT_LAYOUT = 36
_LAYOUT_STRUCTS = {size: struct.Struct(f"={len(f)}I") for size, f in LAYOUTS.items()}
_LAYOUT_INDEX = {size: tuple(_ENTRY_FIELDS.index(n) for n in f) for size, f in LAYOUTS.items()}
_LAYOUT_NAMES = "20, 24, 28 or 36"


class MapEntry(namedtuple("MapEntry", _ENTRY_FIELDS, defaults=(0,) * len(_ENTRY_FIELDS))):
    """struct bpf_elf_map: what the sender says about one map (the kernel has the truth)."""

    __slots__ = ()

    def pack(self, layout: int = DEFAULT_LAYOUT) -> bytes:
        """The entry in `layout` (a key of LAYOUTS): the fields that layout has, in its order."""
        if layout == DEFAULT_LAYOUT:
            return ENTRY.pack(*self)
        return _LAYOUT_STRUCTS[layout].pack(*(self[i] for i in _LAYOUT_INDEX[layout]))


def _unpack_entry(layout: int, data: bytes, offset: int) -> MapEntry:
    values = _LAYOUT_STRUCTS[layout].unpack_from(data, offset)
    if layout == DEFAULT_LAYOUT:
        return MapEntry(*values)
    full = [0] * len(_ENTRY_FIELDS)
    for i, value in zip(_LAYOUT_INDEX[layout], values, strict=True):
        full[i] = value
    return MapEntry(*full)


class Header(namedtuple("Header", "version total obj st_dev st_ino layout",
                        defaults=(0, 0, DEFAULT_LAYOUT))):
    """A datagram's struct bpf_map_aux head; `layout` is not in its bytes: the entry size
    this datagram used, inferred from its length and its fds."""

    __slots__ = ()


class Handoff:
    """What one complete hand-off delivered: entries[i] describes fds[i]."""

    def __init__(self, obj: str, st_dev: int, st_ino: int, entries: list[MapEntry],
                 fds: FdSet, senders: set[tuple[int, int]] | None = None,
                 layout: int = DEFAULT_LAYOUT):
        self.layout = layout  # the entry size every datagram of it used (LAYOUTS)
        self.obj = obj
        self.st_dev = st_dev
        self.st_ino = st_ino
        self.entries = entries
        self.fds = fds
        self.senders = senders if senders is not None else set()  # (pid, uid)

    def close(self) -> None:
        self.fds.close()


def pack(obj: str, entries: Sequence[MapEntry], st: tuple[int, int] = (0, 0),
         layout: int = DEFAULT_LAYOUT) -> list[bytes]:
    """The datagrams (payloads only) for a hand-off of `entries`, 64 per datagram, each
    entry in `layout` (an entry size, a key of LAYOUTS)."""
    if layout not in LAYOUTS:
        raise WireError(f"unknown bpf_scm entry layout {layout}: use {_LAYOUT_NAMES}")
    name = obj.encode()[: OBJ_NAME_LEN - 1]  # strlcpy: always NUL-terminated
    head = HEADER.pack(UDS_VER, len(entries), name, st[0], st[1])
    return [head + b"".join(e.pack(layout) for e in entries[i : i + MAX_FDS])
            for i in range(0, len(entries), MAX_FDS)]


def unpack(data: bytes, count: int | None = None) -> tuple[Header, list[MapEntry]]:
    """Parse one datagram that came with `count` fds; WireError when it is truncated, not
    version 1, or its entries are not `count` entries of one layout.

    The entry size is the body's length divided by `count` (iproute2 sends one entry per
    fd). `count` None: as many entries of today's 36 bytes as the body holds.
    """
    if len(data) < HEADER.size:
        raise WireError(f"truncated datagram: {len(data)} bytes, the bpf_scm header needs "
                        f"{HEADER.size}")
    ver, total, name, dev, ino = HEADER.unpack_from(data)
    if ver != UDS_VER:
        raise WireError(f"unsupported bpf_scm version {ver} (only version {UDS_VER} exists)")
    obj = name.split(b"\0", 1)[0].decode(errors="replace")
    body = len(data) - HEADER.size
    if count is None:
        count = -(-body // DEFAULT_LAYOUT)
    if body == 0:
        return Header(ver, total, obj, dev, ino), []
    if count == 0:
        raise WireError(f"bad datagram: {body} bytes of map entries but no fds")
    size, rest = divmod(body, count)
    if rest or size not in LAYOUTS:
        fds = "1 fd" if count == 1 else f"{count} fds"
        raise WireError(f"bad datagram: {body} bytes of map entries with {fds} are not one "
                        f"entry of {_LAYOUT_NAMES} bytes per fd")
    entries = [_unpack_entry(size, data, HEADER.size + i * size) for i in range(count)]
    return Header(ver, total, obj, dev, ino, size), entries


DEFAULT_SEND_TIMEOUT = 10.0  # seconds for a whole hand-off (send --timeout)


def send_maps(path: str, obj: str, maps: Sequence[tuple[MapEntry, int]],
              st: tuple[int, int] = (0, 0), layout: int = DEFAULT_LAYOUT,
              to_uids: Iterable[int] = (), timeout: float | None = DEFAULT_SEND_TIMEOUT) -> None:
    """Send (entry, fd) pairs to the receiver bound at `path`, as iproute2's sender does.

    Only to a receiver whose socket belongs to root, to us or to one of `to_uids`
    (connect_receiver); the whole hand-off must leave within `timeout` seconds (None: no
    limit), else WireError: a receiver that stopped reading cannot block us forever.
    """
    if not maps:
        raise WireError("nothing to send: no maps were found for the given sources")
    entries = [e for e, _ in maps]
    fds = [fd for _, fd in maps]
    payloads = pack(obj, entries, st, layout)
    deadline = None if timeout is None else time.monotonic() + timeout
    with connect_receiver(path, to_uids) as sock:
        for i, payload in enumerate(payloads):
            chunk = array.array("i", fds[i * MAX_FDS : (i + 1) * MAX_FDS])
            if deadline is not None:
                sock.settimeout(max(deadline - time.monotonic(), 0.0))
            try:
                sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, chunk)])
            except (TimeoutError, BlockingIOError):  # BlockingIOError: no time was left
                raise WireError(f"timed out after {timeout:g} s sending to {path}: the "
                                f"receiver is not reading (stopped?); {i * MAX_FDS} of "
                                f"{len(fds)} maps were sent (raise --timeout or check the "
                                "receiver)") from None
            except ConnectionRefusedError:
                raise WireError(f"the receiver on {path} went away after {i * MAX_FDS} of "
                                f"{len(fds)} maps") from None
            except OSError as err:
                raise WireError(f"sending to {path} failed: {err.strerror}") from None


def connect_receiver(path: str, to_uids: Iterable[int] = ()) -> socket.socket:
    """A datagram socket connected to the receiver bound at `path`, once the kernel says
    the socket file belongs to root, to our uid or to one of `to_uids`.

    SO_PEERCRED cannot name a datagram peer (a connected SOCK_DGRAM socket reports pid 0,
    uid -1), so the check is on the socket file: opened with O_PATH|O_NOFOLLOW, fstat'ed
    (a socket, and its owner: the uid that bound it), and connected to through
    /proc/self/fd/N, so that the inode checked is the inode connected to, whatever
    replaces the path meanwhile. That also lifts AF_UNIX's 108-byte limit on `path`.
    """
    trusted = {0, os.getuid(), *to_uids}
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise WireError(f"no socket at {path}: start the receiver "
                        f"(`bpfsession new imp {path}`) first") from None
    except OSError as err:
        raise WireError(f"cannot open {path}: {err.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISLNK(st.st_mode):
            raise WireError(f"{path} is a symbolic link: give the socket's own path (send "
                            "does not follow links, so that the socket it checks is the one "
                            "it connects to)")
        if not stat.S_ISSOCK(st.st_mode):
            raise WireError(f"{path} is {_file_kind(st.st_mode)}, not a receiver's socket: "
                            "give the path the receiver bound (`new imp UDS`, `tc exec bpf "
                            "imp UDS`)")
        if st.st_uid not in trusted:
            raise WireError(f"refusing to send maps to {path}: its socket belongs to uid "
                            f"{st.st_uid}{_user_name(st.st_uid)}, not root or you; if that "
                            f"user is meant to receive them, add --to-uid {st.st_uid}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(f"/proc/self/fd/{fd}")
        except OSError as err:
            sock.close()
            raise _connect_error(path, err) from None
        except BaseException:
            sock.close()
            raise
        return sock
    finally:
        os.close(fd)


def _connect_error(path: str, err: OSError) -> WireError:
    if isinstance(err, ConnectionRefusedError):
        return WireError(f"nobody is listening on {path} (a stale socket file): start the "
                         "receiver again")
    if isinstance(err, PermissionError):
        return WireError(f"permission denied connecting to {path}: the receiver's socket "
                         "is mode 0600; run as its owner or root")
    if err.errno == errno.EPROTOTYPE:
        return WireError(f"{path} is a stream or seqpacket socket, not a bpf_scm receiver's "
                         "datagram socket")
    return WireError(f"cannot connect to {path}: {err.strerror or err}")


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "a device or fifo"


def _user_name(uid: int) -> str:
    import pwd

    try:
        return f" ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return ""


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
            raise WireError(f"socket path too long for AF_UNIX (max 107 bytes): {path}; "
                            "choose a shorter path")
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
            if err.errno == errno.EADDRINUSE:  # lost a race with another receiver
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
    header, entries = unpack(dg.data, len(dg.fds))
    if not entries:
        raise WireError(f"{where} carries no map entries")
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
            elif header.layout != first.layout:
                raise WireError(f"datagram {index} has {header.layout}-byte map entries, the "
                                f"first had {first.layout}: one hand-off uses one layout")
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
    return Handoff(first.obj, first.st_dev, first.st_ino, entries, got, senders,
                   first.layout)


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
