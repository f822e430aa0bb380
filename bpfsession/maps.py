"""Maps named the way users name them, and what `bpfsession map` does with them.

MAP specs: `BPF_MAP<N>` or `<N>` (the fd in the session's BPF_MAP<N>, N being the sender's
entry id), `BPF_MAP_<NAME>` (the fd in that variable), `fd N` (an fd of this process),
`name NAME`, `id ID`, `pinned PATH`, `session SESSION NAME`. Kernel errnos that are
answers (a missing key) come back as values; the rest become BpfSessionError with a
hint, here and nowhere else.
"""

from __future__ import annotations

import errno
import os

from bpfsession import mapenv
from bpfsession.errors import BpfSessionError, KernelError
from bpfsession.kernel import bpf
from bpfsession.kernel.types import fd_read_only
from bpfsession.mapfmt import Layout, TypedSlot

POSSIBLE_CPUS = "/sys/devices/system/cpu/possible"
ENOTSUPP = 524  # the kernel-internal "not supported" that bpf(2) leaks to user space

TYPE_CHECKING = False  # typing's constant, without importing typing on a start-up path
if TYPE_CHECKING:
    from collections.abc import Iterator

SPEC_HELP = ("name a map as BPF_MAP<N>, <N> or BPF_MAP_<NAME> (inside a session), "
             "fd N, name NAME, id ID, pinned PATH or session SESSION NAME")


def possible_cpus(path: str = POSSIBLE_CPUS) -> int:
    """How many per-CPU slots a per-CPU map value has: the CPUs in the possible mask."""
    with open(path) as f:
        text = f.read().strip()
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


class OpenMap:
    """A map fd and what we know of it. `owned` fds are closed by close(); fds borrowed
    from the session's environment (BPF_MAP<N>) are not. `label` is how the user named
    it, for messages."""

    def __init__(self, fd: int, info: bpf.MapInfo, label: str, owned: bool = True):
        self.fd, self.info, self.label, self.owned = fd, info, label, owned

    def close(self) -> None:
        if self.owned and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> OpenMap:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def fdinfo(self) -> dict[str, str]:
        from bpfsession.kernel.types import read_fdinfo

        return read_fdinfo(self.fd)


# --- MAP specs ----------------------------------------------------------------------------


def _is_env_spec(word: str) -> bool:
    """`BPF_MAP<N>`, `<N>` or `BPF_MAP_<NAME>`: a map named by the session's environment."""
    return (word.isdigit() and word.isascii()) or mapenv.is_map_var(word)


def split_spec(args: list[str]) -> tuple[list[str], list[str]]:
    """The MAP spec at the front of `args`, and the rest."""
    if not args:
        raise BpfSessionError(f"which map? {SPEC_HELP}")
    head = args[0]
    if head in ("id", "pinned", "name", "fd"):
        if len(args) < 2:
            raise BpfSessionError(f"`{head}` needs an argument; {SPEC_HELP}")
        return args[:2], args[2:]
    if head == "session":
        if len(args) < 3:
            raise BpfSessionError("`session` needs a session and a map name: "
                                  "session SESSION NAME")
        return args[:3], args[3:]
    if _is_env_spec(head):
        return args[:1], args[1:]
    if head in ("key", "value"):
        raise BpfSessionError(f"which map? `{head}` came first; {SPEC_HELP}")
    from bpfsession.printable import printable

    raise BpfSessionError(f"unknown map {printable(head)!r}: {SPEC_HELP}")


def open_map(spec: list[str], environ: dict[str, str] | None = None) -> OpenMap:
    """Resolve a MAP spec (from split_spec) to an open map."""
    env = os.environ if environ is None else environ
    head = spec[0]
    if head == "id":
        return _by_id(_number(spec[1], "map id"), f"id {spec[1]}")
    if head == "pinned":
        return _by_path(spec[1])
    if head == "name":
        return _by_name(spec[1], env)
    if head == "session":
        return _by_session(spec[1], spec[2])
    if head == "fd":
        return _by_fd(_number(spec[1], "fd"), f"fd {spec[1]}")
    return _by_env(head if mapenv.is_map_var(head) else mapenv.entry_var(int(head)), env)


def _number(text: str, what: str) -> int:
    if not text.isdigit():
        raise BpfSessionError(f"{what} must be a number, not {text!r}")
    return int(text)


def _info(fd: int, label: str, owned: bool = True) -> OpenMap:
    try:
        return OpenMap(fd, bpf.map_info(fd), label, owned)
    except KernelError as err:
        if owned:
            os.close(fd)
        raise BpfSessionError(f"{label} is not a BPF map ({err.strerror})") from None


def _by_id(map_id: int, label: str) -> OpenMap:
    try:
        fd = bpf.map_get_fd_by_id(map_id)
    except KernelError as err:
        if err.errno == errno.ENOENT:
            raise BpfSessionError(f"no map with id {map_id}: `bpftool map show` or "
                                  "`bpfsession show SESSION` list the live ones") from None
        if err.errno == errno.EPERM:
            raise BpfSessionError(f"not allowed to open map id {map_id}: opening maps by "
                                  "id needs CAP_SYS_ADMIN (run as root)") from None
        raise BpfSessionError(f"cannot open map id {map_id}: {err.strerror}") from None
    return _info(fd, label)


def system_map_ids(why: str) -> list[int]:
    """Every map id on the system (BPF_MAP_GET_NEXT_ID, which needs CAP_SYS_ADMIN);
    `why` says what the walk was for, in the error."""
    try:
        return bpf.map_ids()
    except KernelError as err:
        if err.errno == errno.EPERM:
            raise BpfSessionError(f"{why} needs CAP_SYS_ADMIN (listing the system's maps): "
                                  "run as root, or name the map by BPF_MAP<N>, fd N or "
                                  "pinned PATH") from None
        raise BpfSessionError(f"{why}: cannot list the system's maps: {err.strerror}") \
            from None


def _by_path(path: str) -> OpenMap:
    if os.path.isdir(path):
        raise BpfSessionError(f"{path} is a directory, not a pinned map: `ls {path}` shows "
                              "what is pinned there")
    try:
        fd = bpf.obj_get(path)
    except KernelError as err:
        fd = _by_path_retry(path, err)
    kind = bpf.fd_kind(fd)
    if kind != "bpf-map":
        os.close(fd)
        what = {"bpf-prog": "a program", "bpf-link": "a link", "btf": "BTF"}.get(kind, kind)
        raise BpfSessionError(f"{path} is {what}, not a map")
    return _info(fd, f"pinned {path}")


def _by_path_retry(path: str, err: KernelError) -> int:
    if err.errno == errno.ENOENT:
        raise BpfSessionError(f"nothing pinned at {path}: `ls /sys/fs/bpf` shows the pins") \
            from None
    if err.errno == errno.EACCES and not on_bpffs(path):
        # BPF_OBJ_GET answers EACCES for any file outside bpffs: say what is wrong.
        raise BpfSessionError(f"{path} is not in a bpf file system (bpffs): maps are pinned "
                              "under /sys/fs/bpf") from None
    if err.errno == errno.EACCES:
        try:  # the pin's mode may still allow reading: a read-only fd is enough to dump
            return bpf.obj_get(path, bpf.BPF_F_RDONLY)
        except KernelError:
            pass
    raise BpfSessionError(f"cannot open pinned {path}: {err.strerror}") from None


def on_bpffs(path: str) -> bool:
    """Is `path` on a mounted bpf file system (its device is a `bpf` mount)?"""
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return False
    want = f"{os.major(dev)}:{os.minor(dev)}"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[2] == want and fields[fields.index("-") + 1] == "bpf":
                return True
    return False


def env_map_fds(env) -> dict[str, int]:
    """BPF_MAP<N> -> fd, for the session's numbered map variables, in entry id order."""
    return {mapenv.entry_var(n): fd for n, fd in sorted(mapenv.entry_fds(env).items())}


def _by_env(var: str, env) -> OpenMap:
    """A map variable of this process's environment: its value is an fd of ours."""
    value = env.get(var)
    if value is None:
        raise BpfSessionError(_unset_hint(var, env))
    fd = mapenv.fd_of(value)
    if fd is None:
        from bpfsession.printable import printable

        raise BpfSessionError(f"{var}={printable(value)!r} is not an fd number")
    if bpf.fd_kind(fd) != "bpf-map":
        raise BpfSessionError(f"{var}={fd} but fd {fd} is not an open map in this process "
                              "(was it closed, or not inherited?)")
    return _info(fd, var, owned=False)


def _unset_hint(var: str, env) -> str:
    if mapenv.NUM not in env:
        return (f"{var} is not set: this is not a bpfsession/tc exec session; name the map "
                "by id ID, pinned PATH, fd N or session SESSION NAME")
    have = " ".join(sorted((v for v in env if mapenv.is_map_var(v)),
                           key=lambda v: (mapenv.entry_id(v) is None,
                                          mapenv.entry_id(v) or 0, v))) or "none"
    hint = f"{var} is not set in this session (maps: {have})"
    n = mapenv.entry_id(var)
    if n is not None and any(mapenv.fd_of(env[v]) == n for v in env if mapenv.is_map_var(v)):
        # `map dump "$BPF_MAP_X"` passes an fd number, which names an entry id.
        hint += f"; {n} is the fd of a map variable: write `fd {n}` or the variable's name"
    return hint


def _by_fd(fd: int, label: str) -> OpenMap:
    """An fd this process holds (`fd "$BPF_MAP_X"`); it stays open after use."""
    kind = bpf.fd_kind(fd)
    if kind == "bpf-map":
        return _info(fd, label, owned=False)
    try:
        os.fstat(fd)
    except OSError:
        raise BpfSessionError(f"{label}: this process has no fd {fd} (not inherited, or "
                              "closed)") from None
    raise BpfSessionError(f"{label} is not a BPF map" + (f" (it is {kind})" if kind else ""))


def _by_name(name: str, env) -> OpenMap:
    want = name[:15]  # the kernel keeps BPF_OBJ_NAME_LEN - 1 characters
    for var, fd in env_map_fds(env).items():
        if bpf.fd_kind(fd) == "bpf-map":
            try:
                info = bpf.map_info(fd)
            except KernelError:
                continue
            if info.name == want:
                return OpenMap(fd, info, var, owned=False)
    found: list[OpenMap] = []
    try:
        for map_id in system_map_ids(f"finding the map named {name!r}"):
            try:
                fd = bpf.map_get_fd_by_id(map_id)
            except KernelError:
                continue  # gone since listed
            m = _info(fd, f"name {name}")
            if m.info.name == want:
                found.append(m)
            else:
                m.close()
    except BaseException:
        for m in found:
            m.close()
        raise
    if len(found) == 1:
        return found[0]
    ids = [m.info.id for m in found]
    for m in found:
        m.close()
    if not ids:
        raise BpfSessionError(f"no map named {name!r}: `bpftool map show` lists map names")
    raise BpfSessionError(f"{len(ids)} maps are named {name!r} (ids "
                          f"{', '.join(map(str, ids))}): use id ID")


def _by_session(session: str, name: str) -> OpenMap:
    try:
        from bpfsession import discover
    except ImportError:
        raise BpfSessionError("session discovery is not available in this build; use "
                              "id ID") from None
    found = discover.find(session)
    want = name[:15]
    matches = [m for m in found.maps if m.name == want or name in m.env
               or f"BPF_MAP{name}" in m.env]
    if not matches:
        names = ", ".join(m.name for m in found.maps) or "none"
        raise BpfSessionError(f"session {session} has no map {name!r} (its maps: {names})")
    if len(matches) > 1:
        raise BpfSessionError(f"session {session} has {len(matches)} maps named {name!r}: "
                              f"use id ID ({', '.join(str(m.id) for m in matches)})")
    from bpfsession import attach  # the control socket admits the session's --allow-uids

    return _info(attach.take_map(found, matches[0]), f"session {session} {name}")


# --- layouts: what the bytes are ----------------------------------------------------------


class Codec:
    """A map's layout for output plus the typed parsers for its key and value."""

    def __init__(self, layout: Layout, key: TypedSlot | None, value: TypedSlot | None):
        self.layout, self.key, self.value = layout, key, value


def codec(m: OpenMap, key_type: str | None = None, value_type: str | None = None) -> Codec:
    """The map's BTF (if it has key/value types) overlaid by --key-type/--value-type."""
    info = m.info
    lay = Layout(info.type_name, info.key_size, info.value_size)
    if lay.percpu:
        lay.ncpus = possible_cpus()
    key = value = None
    # bpftool formats only maps with a BTF value type (its get_map_kv_btf); same here.
    if info.btf_id and info.btf_value_type_id:
        btf = _load_btf(info.btf_id, m.label)
        if btf is not None:
            lay.value_btf, lay.value_type = btf, info.btf_value_type_id
            value = TypedSlot(btf, info.btf_value_type_id, "BTF")
            if info.btf_key_type_id:
                lay.key_btf, lay.key_type = btf, info.btf_key_type_id
                key = TypedSlot(btf, info.btf_key_type_id, "BTF")
    for side, spec in (("key", key_type), ("value", value_type)):
        if not spec:
            continue
        from bpfsession.btf.parse import Btf, BtfError

        try:
            btf, tid = Btf.from_layout(spec)
        except BtfError as err:
            raise BpfSessionError(f"--{side}-type {spec}: {err}") from None
        size = btf.size_of(tid)
        want = info.key_size if side == "key" else info.value_size
        if size != want:
            raise BpfSessionError(f"--{side}-type {spec} is {size} bytes but the map's "
                                  f"{side} is {want} bytes")
        slot = TypedSlot(btf, tid, f"--{side}-type {spec}")
        if side == "key":
            key, lay.key_btf, lay.key_type = slot, btf, tid
        else:
            value, lay.value_btf, lay.value_type = slot, btf, tid
    return Codec(lay, key, value)


def _load_btf(btf_id: int, label: str):
    """The map's BTF, by id (needs CAP_SYS_ADMIN), else from the session's cache
    (btfcache); None, after one warning line, when neither can be had."""
    from bpfsession.btf.parse import Btf, BtfError

    try:
        fd = bpf.btf_get_fd_by_id(btf_id)
    except KernelError as err:
        from bpfsession import btfcache

        blob = btfcache.read(btf_id)
        if blob is None:
            from bpfsession.errors import warn

            why = "gone" if err.errno == errno.ENOENT else "not readable without " \
                "CAP_SYS_ADMIN, and this session keeps no copy"
            warn(f"{label}: its BTF (id {btf_id}) is {why}: keys and values are shown and "
                 "read as bytes (--key-type/--value-type give a layout)")
            return None
    else:
        try:
            blob = bpf.btf_raw(fd)
        except KernelError as err:
            raise BpfSessionError(f"{label}: cannot read its BTF (id {btf_id}): {err}; "
                                  "use --key-type/--value-type or raw bytes") from None
        finally:
            os.close(fd)
    try:
        return Btf.parse(blob)
    except BtfError as err:
        raise BpfSessionError(f"{label}: cannot read its BTF (id {btf_id}): {err}; "
                              "use --key-type/--value-type or raw bytes") from None


# --- element operations -------------------------------------------------------------------


def lookup(m: OpenMap, key: bytes, lay: Layout) -> bytes | None:
    """The value, or None when the key is absent (an answer, not an error)."""
    value = bytearray(lay.value_buf_size)
    try:
        found = bpf.map_lookup_elem(m.fd, key, value)
    except KernelError as err:
        raise _explain(err, m, "look up") from None
    return bytes(value) if found else None


UPDATE_FLAGS = {"any": bpf.BPF_ANY, "noexist": bpf.BPF_NOEXIST, "exist": bpf.BPF_EXIST}


def update(m: OpenMap, key: bytes, value: bytes, flags: int = bpf.BPF_ANY) -> None:
    try:
        bpf.map_update_elem(m.fd, key, value, flags)
    except KernelError as err:
        raise _explain(err, m, "update", flags) from None


def delete(m: OpenMap, key: bytes) -> bool:
    """False when the key was not there."""
    try:
        return bpf.map_delete_elem(m.fd, key)
    except KernelError as err:
        raise _explain(err, m, "delete from") from None


def pin(m: OpenMap, path: str) -> None:
    try:
        bpf.obj_pin(m.fd, path)
    except KernelError as err:
        if err.errno == errno.EEXIST:
            raise BpfSessionError(f"{path} already exists: remove it or pin elsewhere") \
                from None
        if err.errno == errno.ENOENT:
            raise BpfSessionError(f"cannot pin at {path}: its directory does not exist "
                                  "(mkdir -p it under /sys/fs/bpf)") from None
        if err.errno in (errno.EPERM, errno.EACCES, errno.EINVAL):
            raise BpfSessionError(f"cannot pin at {path}: pins live in a bpf file system "
                                  f"(bpffs), e.g. under /sys/fs/bpf ({err.strerror})") from None
        raise BpfSessionError(f"cannot pin {m.label} at {path}: {err.strerror}") from None


def _explain(err: KernelError, m: OpenMap, op: str, flags: int = 0) -> BpfSessionError:
    """A kernel errno from an element operation, as a hint about this map."""
    info = m.info
    what = f"{m.label} ({info.type_name} map id {info.id})"
    code = err.errno
    if code == errno.EPERM or code == errno.EACCES:
        state = m.fdinfo()
        if state.get("frozen") == "1":
            return BpfSessionError(f"cannot {op} {what}: it is frozen (BPF_MAP_FREEZE), "
                                   "user space may only read it")
        if info.flags & bpf.BPF_F_RDONLY:
            return BpfSessionError(f"cannot {op} {what}: it was created read-only for user "
                                   "space (BPF_F_RDONLY)")
        if fd_read_only(state):
            return BpfSessionError(f"cannot {op} {what}: this fd was handed over read-only")
        return BpfSessionError(f"cannot {op} {what}: permission denied")
    if code == errno.E2BIG and info.type_name.endswith("array"):
        return BpfSessionError(f"cannot {op} {what}: the index is past its max_entries "
                               f"({info.max_entries})")
    if code == errno.E2BIG or (code == errno.ENOMEM and op == "update"):
        return BpfSessionError(f"cannot {op} {what}: it is full (max_entries "
                               f"{info.max_entries}); delete entries first")
    if code == errno.EEXIST and flags == bpf.BPF_NOEXIST:
        return BpfSessionError(f"cannot {op} {what}: the key exists and `noexist` was given")
    if code == errno.ENOENT and flags == bpf.BPF_EXIST:
        return BpfSessionError(f"cannot {op} {what}: the key does not exist and `exist` "
                               "was given")
    if code == errno.EINVAL and op == "delete from" and info.type_name.endswith("array"):
        return BpfSessionError(f"cannot delete from {what}: array elements cannot be "
                               "deleted; update them to zero instead")
    if code == errno.EINVAL and info.type_name == "lpm_trie":
        return BpfSessionError(f"cannot {op} {what}: the key's prefix length (first 4 bytes) "
                               "is larger than the key's address bits")
    if code in (errno.EINVAL, errno.EBADF) and info.type_name in (
            "prog_array", "array_of_maps", "hash_of_maps"):
        return BpfSessionError(f"cannot {op} {what}: the value must name a compatible "
                               f"{'program' if info.type_name == 'prog_array' else 'map'}")
    return BpfSessionError(f"cannot {op} {what}: {err.strerror}")


# --- walking a whole map ------------------------------------------------------------------

BATCH = 65536  # entries per BPF_MAP_LOOKUP_BATCH call (docs/maps.md: 64 Ki)
BATCH_BYTES = 16 << 20  # cap on one batch's key+value buffers
# Maps whose empty slots make generic batch lookups stop early; walked one key at a time.
_WALK_BY_KEY = frozenset({"prog_array", "array_of_maps", "hash_of_maps"})


def walk(m: OpenMap, lay: Layout, first: int = 1024) -> Iterator[tuple[bytes, bytes, int]]:
    """Every entry, as batches (keys, values, count) of fixed-size records.

    BPF_MAP_LOOKUP_BATCH where the kernel offers it (the first batch is small so output
    starts at once), else BPF_MAP_GET_NEXT_KEY + lookup. Memory stays at one batch.
    """
    if lay.type_name not in _WALK_BY_KEY:
        try:
            yield from _walk_batch(m, lay, first)
            return
        except _NoBatch:
            pass
    yield from _walk_keys(m, lay)


class _NoBatch(Exception):
    """This map type has no BPF_MAP_LOOKUP_BATCH (noticed before anything was yielded)."""


def _walk_batch(m: OpenMap, lay: Layout, first: int) -> Iterator[tuple[bytes, bytes, int]]:
    ks, vs = lay.key_size, lay.value_buf_size
    limit = max(1, min(BATCH, BATCH_BYTES // max(1, ks + vs)))
    count = max(1, min(first, limit, m.info.max_entries))
    # The batch cursor is a u32 bucket for hash maps and a key for others: room for both.
    cursor_in, cursor_out = bytearray(max(ks, 8)), bytearray(max(ks, 8))
    # Three buffer pairs in turn: a consumer may hold one batch while prefetch() has a
    # second queued and the walk fills the third.
    pool = [(bytearray(ks * limit), bytearray(vs * limit)) for _ in range(3)]
    turn = 0
    started = False
    while True:
        keys, values = pool[turn]
        try:
            n, end = bpf.map_lookup_batch(m.fd, cursor_in if started else None, cursor_out,
                                          keys, values, count)
        except KernelError as err:
            if err.errno == errno.ENOSPC and count < (1 << 24):
                # One hash bucket holds more than `count` entries (nothing was copied):
                # grow and retry from the same cursor.
                count *= 2
                if count > limit:
                    limit = count
                    pool = [(bytearray(ks * limit), bytearray(vs * limit)) for _ in range(3)]
                continue
            if not started and err.errno in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP):
                raise _NoBatch from None
            raise BpfSessionError(f"cannot dump {m.label}: {err.strerror}") from None
        if n:
            yield keys, values, n
            turn = (turn + 1) % 3
        if end:
            return
        started = True
        cursor_in[:] = cursor_out
        count = limit


def dump(out, m: OpenMap, codec: Codec, as_json: bool, pretty_json: bool) -> int:
    """Every entry of `m` to the binary file `out`, as bpftool prints it; the count."""
    from bpfsession.mapdump import size_class, write_dump

    big = size_class(m.info.max_entries)
    batches = walk(m, codec.layout)
    if big:
        batches = prefetch(batches)
    return write_dump(out, batches, codec.layout, as_json, pretty_json, big)


def prefetch(batches: Iterator, depth: int = 1) -> Iterator:
    """Run a walk in a thread, one batch ahead of the consumer.

    The bpf(2) calls release the GIL, so the kernel copies the next batch while this
    thread formats and writes the last one. Safe with walk()'s three-buffer rotation for
    depth 1. Errors in the walk are raised here.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce() -> None:
        try:
            for item in batches:
                q.put(item)
            q.put(done)
        except BaseException as err:  # handed to the consumer, which raises it
            q.put(err)

    threading.Thread(target=produce, name="map-walk", daemon=True).start()
    while (item := q.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def _walk_keys(m: OpenMap, lay: Layout, chunk: int = 256) -> Iterator[tuple[bytes, bytes, int]]:
    ks, vs = lay.key_size, lay.value_buf_size
    key = bytearray(ks)
    prev: bytes | None = None
    keys, values, n = bytearray(), bytearray(), 0
    value = bytearray(vs)
    while True:
        try:
            more = bpf.map_get_next_key(m.fd, prev, key)
        except KernelError as err:
            raise BpfSessionError(f"cannot dump {m.label}: {err.strerror}") from None
        if not more:
            break
        prev = bytes(key)
        try:
            found = bpf.map_lookup_elem(m.fd, prev, value)
        except KernelError as err:
            raise BpfSessionError(f"cannot dump {m.label}: {err.strerror}") from None
        if not found:
            continue  # an empty prog/map slot, or deleted since get_next_key: bpftool skips
        keys += prev
        values += value
        n += 1
        if n == chunk:
            yield bytes(keys), bytes(values), n
            keys, values, n = bytearray(), bytearray(), 0
    if n:
        yield bytes(keys), bytes(values), n


# --- show -------------------------------------------------------------------------------


def show(m: OpenMap) -> list[tuple[str, object]]:
    """bpftool's `map show -j` fields, in its order (ints, strs, bools)."""
    info = m.info
    state = m.fdinfo()
    out: list[tuple[str, object]] = [("id", info.id), ("type", info.type_name)]
    if info.name:
        out.append(("name", info.name))
    out += [("flags", info.flags), ("bytes_key", info.key_size),
            ("bytes_value", info.value_size), ("max_entries", info.max_entries)]
    if "memlock" in state:
        out.append(("bytes_memlock", int(state["memlock"])))
    if info.type_name == "prog_array":
        if "owner_prog_type" in state:
            out.append(("owner_prog_type",
                        bpf.type_name(bpf.PROG_TYPE_NAMES, int(state["owner_prog_type"]))))
        if "owner_jited" in state:
            out.append(("owner_jited", state["owner_jited"] == "1"))
    out.append(("frozen", int(state.get("frozen", "0"))))
    if info.btf_id:
        out.append(("btf_id", info.btf_id))
    return out


def show_node(fields: list[tuple[str, object]]):
    """The fields of show() as a node for the JSON writer."""
    from bpfsession.jsonw import Obj, token

    return Obj((k, token(v)) for k, v in fields)


def show_text(fields: list[tuple[str, object]]) -> str:
    """bpftool's plain `map show` lines for one map."""
    d = dict(fields)
    head = f"{d['id']}: {d['type']}  "
    if "name" in d:
        head += f"name {d['name']}  "
    head += f"flags {d['flags']:#x}"
    out = head + f"\n\tkey {d['bytes_key']}B  value {d['bytes_value']}B  " \
                 f"max_entries {d['max_entries']}"
    if "bytes_memlock" in d:
        out += f"  memlock {d['bytes_memlock']}B"
    if "owner_prog_type" in d or "owner_jited" in d:
        out += "\n\t"
        if "owner_prog_type" in d:
            out += f"owner_prog_type {d['owner_prog_type']}  "
        if "owner_jited" in d:
            out += "owner jited" if d["owner_jited"] else "owner not jited"
    if d.get("btf_id") or d.get("frozen"):
        out += "\n\t"
    if d.get("btf_id"):
        out += f"btf_id {d['btf_id']}"
    if d.get("frozen"):
        out += ("  " if d.get("btf_id") else "") + "frozen"
    return out + "\n"
