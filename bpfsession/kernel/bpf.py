"""bpf(2) through ctypes: the only place that knows `union bpf_attr`.

Layouts follow include/uapi/linux/bpf.h (Linux 6.x). Each wrapper is named after the
bpf command it issues, takes Python types and raises KernelError(errno, "BPF_...").
Fds returned are close-on-exec (the kernel sets O_CLOEXEC on every bpf fd) and owned
by the caller.
"""

from __future__ import annotations

import ctypes
import errno
import os

from bpfsession.errors import KernelError
from bpfsession.kernel import libc
from bpfsession.kernel.types import (  # noqa: F401  (re-exported: bpf.MapInfo etc.)
    MAP_TYPE_NAMES,
    MAP_TYPES,
    PROG_TYPE_NAMES,
    MapInfo,
    ProgInfo,
    type_name,
)

# asm/unistd_64.h (x86_64) and asm-generic/unistd.h (aarch64 and newer ports).
_NR_BPF = {"x86_64": 321, "aarch64": 280, "arm64": 280, "riscv64": 280, "ppc64le": 361,
           "s390x": 351}

# enum bpf_cmd
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_PROG_GET_NEXT_ID = 11
BPF_MAP_GET_NEXT_ID = 12
BPF_PROG_GET_FD_BY_ID = 13
BPF_MAP_GET_FD_BY_ID = 14
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_BTF_LOAD = 18
BPF_BTF_GET_FD_BY_ID = 19
BPF_MAP_FREEZE = 22
BPF_MAP_LOOKUP_BATCH = 24
BPF_MAP_UPDATE_BATCH = 26

_CMD_NAMES = {v: k for k, v in globals().items() if k.startswith("BPF_") and isinstance(v, int)}

# Update flags (BPF_ANY etc.) and map flags we interpret.
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_RDONLY = 1 << 3

class _MapCreateAttr(ctypes.Structure):
    _fields_ = [
        ("map_type", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("inner_map_fd", ctypes.c_uint32),
        ("numa_node", ctypes.c_uint32),
        ("map_name", ctypes.c_char * 16),
        ("map_ifindex", ctypes.c_uint32),
        ("btf_fd", ctypes.c_uint32),
        ("btf_key_type_id", ctypes.c_uint32),
        ("btf_value_type_id", ctypes.c_uint32),
        ("btf_vmlinux_value_type_id", ctypes.c_uint32),
        ("map_extra", ctypes.c_uint64),
    ]


class _BtfLoadAttr(ctypes.Structure):
    _fields_ = [
        ("btf", ctypes.c_uint64),
        ("btf_log_buf", ctypes.c_uint64),
        ("btf_size", ctypes.c_uint32),
        ("btf_log_size", ctypes.c_uint32),
        ("btf_log_level", ctypes.c_uint32),
    ]


class _ElemAttr(ctypes.Structure):
    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),  # also next_key
        ("flags", ctypes.c_uint64),
    ]


class _BatchAttr(ctypes.Structure):
    _fields_ = [
        ("in_batch", ctypes.c_uint64),
        ("out_batch", ctypes.c_uint64),
        ("keys", ctypes.c_uint64),
        ("values", ctypes.c_uint64),
        ("count", ctypes.c_uint32),
        ("map_fd", ctypes.c_uint32),
        ("elem_flags", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


class _ObjAttr(ctypes.Structure):
    _fields_ = [
        ("pathname", ctypes.c_uint64),
        ("bpf_fd", ctypes.c_uint32),
        ("file_flags", ctypes.c_uint32),
    ]


class _GetIdAttr(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint32),  # start_id / prog_id / map_id / btf_id
        ("next_id", ctypes.c_uint32),
        ("open_flags", ctypes.c_uint32),
    ]


class _InfoAttr(ctypes.Structure):
    _fields_ = [
        ("bpf_fd", ctypes.c_uint32),
        ("info_len", ctypes.c_uint32),
        ("info", ctypes.c_uint64),
    ]


class _MapInfo(ctypes.Structure):
    """struct bpf_map_info: 104 bytes on 6.18 (map_extra at offset 80)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
        ("ifindex", ctypes.c_uint32),
        ("btf_vmlinux_value_type_id", ctypes.c_uint32),
        ("netns_dev", ctypes.c_uint64),
        ("netns_ino", ctypes.c_uint64),
        ("btf_id", ctypes.c_uint32),
        ("btf_key_type_id", ctypes.c_uint32),
        ("btf_value_type_id", ctypes.c_uint32),
        ("btf_vmlinux_id", ctypes.c_uint32),
        ("map_extra", ctypes.c_uint64),
    ]


class _ProgInfo(ctypes.Structure):
    """The head of struct bpf_prog_info, up to `name`; the kernel fills what we ask for."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32),
        ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64),
        ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64),
        ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32),
        ("map_ids", ctypes.c_uint64),
        ("name", ctypes.c_char * 16),
    ]


class _BtfInfo(ctypes.Structure):
    _fields_ = [
        ("btf", ctypes.c_uint64),
        ("btf_size", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("name", ctypes.c_uint64),
        ("name_len", ctypes.c_uint32),
        ("kernel_btf", ctypes.c_uint32),
    ]


_syscall = libc.function("syscall", ctypes.c_long, ctypes.c_long, ctypes.c_int,
                         ctypes.c_void_p, ctypes.c_uint)
_machine = os.uname().machine  # not `platform`: it costs start-up time
_nr_bpf = _NR_BPF.get(_machine)


def _bpf(cmd: int, attr: ctypes.Structure, detail: str = "") -> int:
    if _nr_bpf is None:
        raise KernelError(errno.ENOSYS, "bpf", f"no bpf(2) syscall number known for {_machine}")
    ret = _syscall(_nr_bpf, cmd, ctypes.addressof(attr), ctypes.sizeof(attr))
    return libc.check(ret, _CMD_NAMES.get(cmd, f"bpf cmd {cmd}"), detail)


def _addr(buf) -> int:
    """Address of a writable buffer (bytearray / ctypes array), or 0 for None."""
    if buf is None:
        return 0
    if isinstance(buf, bytearray):
        return ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf)) if buf else 0
    return ctypes.addressof(buf)


def _caddr(data: bytes | bytearray | None) -> tuple[int, object]:
    """Address of read-only data; returns (address, keep-alive object)."""
    if data is None:
        return 0, None
    if isinstance(data, bytearray):
        return _addr(data), data
    buf = ctypes.create_string_buffer(bytes(data), len(data) or 1)
    return ctypes.addressof(buf), buf


def map_create(map_type: int | str, key_size: int, value_size: int, max_entries: int,
               name: str = "", flags: int = 0, inner_map_fd: int = 0,
               btf: tuple[int, int, int] | None = None) -> int:
    """BPF_MAP_CREATE; returns the new map's fd. Used by tests and benchmarks. `btf`:
    (BTF fd, key type id, value type id) for a map with types."""
    attr = _MapCreateAttr()
    if btf is not None:
        attr.btf_fd, attr.btf_key_type_id, attr.btf_value_type_id = btf
    attr.map_type = MAP_TYPES[map_type] if isinstance(map_type, str) else map_type
    attr.key_size = key_size
    attr.value_size = value_size
    attr.max_entries = max_entries
    attr.map_flags = flags
    attr.inner_map_fd = inner_map_fd
    attr.map_name = name.encode()[:15]
    return _bpf(BPF_MAP_CREATE, attr, name)


def btf_load(blob: bytes) -> int:
    """BPF_BTF_LOAD of a raw BTF blob; returns the BTF fd. Used by tests (types clang
    cannot emit, such as ENUM64 with clang 14)."""
    attr = _BtfLoadAttr()
    attr.btf, _keep = _caddr(blob)
    attr.btf_size = len(blob)
    return _bpf(BPF_BTF_LOAD, attr)


def map_lookup_elem(fd: int, key: bytes, value: bytearray, flags: int = 0) -> bool:
    """Fill `value`; False when the key is absent (ENOENT is an answer, not a failure)."""
    attr = _ElemAttr()
    attr.map_fd = fd
    attr.key, _k = _caddr(key)
    attr.value = _addr(value)
    attr.flags = flags
    try:
        _bpf(BPF_MAP_LOOKUP_ELEM, attr)
    except KernelError as err:
        if err.errno == errno.ENOENT:
            return False
        raise
    return True


def map_update_elem(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    attr = _ElemAttr()
    attr.map_fd = fd
    attr.key, _k = _caddr(key)
    attr.value, _v = _caddr(value)
    attr.flags = flags
    _bpf(BPF_MAP_UPDATE_ELEM, attr)


def map_delete_elem(fd: int, key: bytes) -> bool:
    """False when the key is absent."""
    attr = _ElemAttr()
    attr.map_fd = fd
    attr.key, _k = _caddr(key)
    try:
        _bpf(BPF_MAP_DELETE_ELEM, attr)
    except KernelError as err:
        if err.errno == errno.ENOENT:
            return False
        raise
    return True


def map_get_next_key(fd: int, key: bytes | None, next_key: bytearray) -> bool:
    """Fill `next_key` with the key after `key` (the first key for None); False at the end."""
    attr = _ElemAttr()
    attr.map_fd = fd
    attr.key, _k = _caddr(key)
    attr.value = _addr(next_key)
    try:
        _bpf(BPF_MAP_GET_NEXT_KEY, attr)
    except KernelError as err:
        if err.errno == errno.ENOENT:
            return False
        raise
    return True


def map_lookup_batch(fd: int, in_batch: bytearray | None, out_batch: bytearray,
                     keys: bytearray, values: bytearray, count: int) -> tuple[int, bool]:
    """BPF_MAP_LOOKUP_BATCH; returns (entries filled, reached_end).

    The end of the map is ENOENT *with* a partial count that must still be consumed.
    ENOSPC (buffer smaller than a hash bucket) and EINVAL/ENOTSUPP (map type without
    batch support) are raised for the caller to handle.
    """
    attr = _BatchAttr()
    attr.in_batch = _addr(in_batch)
    attr.out_batch = _addr(out_batch)
    attr.keys = _addr(keys)
    attr.values = _addr(values)
    attr.count = count
    attr.map_fd = fd
    try:
        _bpf(BPF_MAP_LOOKUP_BATCH, attr)
    except KernelError as err:
        if err.errno == errno.ENOENT:
            return attr.count, True
        raise
    return attr.count, False


def map_update_batch(fd: int, keys: bytes, values: bytes, count: int,
                     elem_flags: int = BPF_ANY) -> int:
    attr = _BatchAttr()
    attr.keys, _k = _caddr(keys)
    attr.values, _v = _caddr(values)
    attr.count = count
    attr.map_fd = fd
    attr.elem_flags = elem_flags
    _bpf(BPF_MAP_UPDATE_BATCH, attr)
    return attr.count


def map_freeze(fd: int) -> None:
    attr = _ElemAttr()
    attr.map_fd = fd
    _bpf(BPF_MAP_FREEZE, attr)


def obj_pin(fd: int, path: str) -> None:
    attr = _ObjAttr()
    attr.pathname, _p = _caddr(os.fsencode(path) + b"\0")
    attr.bpf_fd = fd
    _bpf(BPF_OBJ_PIN, attr, path)


def obj_get(path: str, flags: int = 0) -> int:
    """BPF_OBJ_GET: an fd for a pinned object (map, prog, link, BTF)."""
    attr = _ObjAttr()
    attr.pathname, _p = _caddr(os.fsencode(path) + b"\0")
    attr.file_flags = flags
    return _bpf(BPF_OBJ_GET, attr, path)


def _get_fd_by_id(cmd: int, obj_id: int, flags: int = 0) -> int:
    attr = _GetIdAttr()
    attr.id = obj_id
    attr.open_flags = flags
    return _bpf(cmd, attr, f"id {obj_id}")


def map_get_fd_by_id(map_id: int, flags: int = 0) -> int:
    return _get_fd_by_id(BPF_MAP_GET_FD_BY_ID, map_id, flags)


def prog_get_fd_by_id(prog_id: int) -> int:
    return _get_fd_by_id(BPF_PROG_GET_FD_BY_ID, prog_id)


def btf_get_fd_by_id(btf_id: int) -> int:
    return _get_fd_by_id(BPF_BTF_GET_FD_BY_ID, btf_id)


def _next_id(cmd: int, start: int) -> int | None:
    attr = _GetIdAttr()
    attr.id = start
    try:
        _bpf(cmd, attr)
    except KernelError as err:
        if err.errno == errno.ENOENT:
            return None
        raise
    return attr.next_id


def map_ids() -> list[int]:
    """Every map id on the system (BPF_MAP_GET_NEXT_ID walk)."""
    ids, cur = [], 0
    while (cur := _next_id(BPF_MAP_GET_NEXT_ID, cur)) is not None:
        ids.append(cur)
    return ids


def prog_ids() -> list[int]:
    """Every program id on the system (BPF_PROG_GET_NEXT_ID walk)."""
    ids, cur = [], 0
    while (cur := _next_id(BPF_PROG_GET_NEXT_ID, cur)) is not None:
        ids.append(cur)
    return ids


def _info(fd: int, info: ctypes.Structure) -> None:
    attr = _InfoAttr()
    attr.bpf_fd = fd
    attr.info_len = ctypes.sizeof(info)
    attr.info = ctypes.addressof(info)
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr, f"fd {fd}")


def map_info(fd: int) -> MapInfo:
    """BPF_OBJ_GET_INFO_BY_FD for a map; EINVAL means `fd` is no BPF object of that kind."""
    info = _MapInfo()
    _info(fd, info)
    return MapInfo(
        id=info.id, type=info.type, key_size=info.key_size, value_size=info.value_size,
        max_entries=info.max_entries, flags=info.map_flags,
        name=info.name.decode(errors="replace"), btf_id=info.btf_id,
        btf_key_type_id=info.btf_key_type_id, btf_value_type_id=info.btf_value_type_id,
        map_extra=info.map_extra, ifindex=info.ifindex,
    )


def prog_info(fd: int) -> ProgInfo:
    """Prog info in two calls: one for nr_map_ids, a second with the id buffer."""
    info = _ProgInfo()
    _info(fd, info)
    n = info.nr_map_ids
    ids = (ctypes.c_uint32 * max(n, 1))()
    if n:
        info2 = _ProgInfo()
        info2.nr_map_ids = n
        info2.map_ids = ctypes.addressof(ids)
        _info(fd, info2)
        n = min(n, info2.nr_map_ids)
    return ProgInfo(id=info.id, type=info.type, name=info.name.decode(errors="replace"),
                    tag=bytes(info.tag).hex(), map_ids=tuple(ids[:n]))


def btf_raw(btf_fd: int) -> bytes:
    """The raw BTF blob of a BTF object (magic 0xeB9F): info once for the size, again for it."""
    info = _BtfInfo()
    _info(btf_fd, info)
    size = info.btf_size
    buf = (ctypes.c_char * max(size, 1))()
    info2 = _BtfInfo()
    info2.btf = ctypes.addressof(buf)
    info2.btf_size = size
    _info(btf_fd, info2)
    return bytes(buf[:size])


def fd_kind(fd: int, pid: int | str = "self") -> str | None:
    """'bpf-map', 'bpf-prog', 'bpf-link', 'btf'... for a bpf fd, else None.

    The kernel names bpf fds `anon_inode:bpf-map` etc. in /proc/PID/fd (BTF fds: `btf`).
    """
    try:
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return None
    if target.startswith("anon_inode:"):
        kind = target[len("anon_inode:"):]
        return kind if kind.startswith("bpf") or kind == "btf" else None
    return None


def is_map_fd(fd: int) -> bool:
    return fd_kind(fd) == "bpf-map"
