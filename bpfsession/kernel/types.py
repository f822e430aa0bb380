"""What the kernel says about BPF objects, as plain Python data (and fdinfo): no ctypes here.

Kept apart from bpf.py so that code which only needs the names and the records (attach
reading /proc fdinfo, discovery) does not pay for loading ctypes and the bpf_attr layouts.
"""

from __future__ import annotations

from collections import namedtuple

# enum bpf_map_type, named as bpftool prints them (libbpf's map_type_name table).
MAP_TYPE_NAMES = (
    "unspec", "hash", "array", "prog_array", "perf_event_array", "percpu_hash",
    "percpu_array", "stack_trace", "cgroup_array", "lru_hash", "lru_percpu_hash",
    "lpm_trie", "array_of_maps", "hash_of_maps", "devmap", "sockmap", "cpumap", "xskmap",
    "sockhash", "cgroup_storage", "reuseport_sockarray", "percpu_cgroup_storage", "queue",
    "stack", "sk_storage", "devmap_hash", "struct_ops", "ringbuf", "inode_storage",
    "task_storage", "bloom_filter", "user_ringbuf", "cgrp_storage", "arena",
)
MAP_TYPES = {name: i for i, name in enumerate(MAP_TYPE_NAMES)}

# enum bpf_prog_type, as bpftool names them.
PROG_TYPE_NAMES = (
    "unspec", "socket_filter", "kprobe", "sched_cls", "sched_act", "tracepoint", "xdp",
    "perf_event", "cgroup_skb", "cgroup_sock", "lwt_in", "lwt_out", "lwt_xmit", "sock_ops",
    "sk_skb", "cgroup_device", "sk_msg", "raw_tracepoint", "cgroup_sock_addr", "lwt_seg6local",
    "lirc_mode2", "sk_reuseport", "flow_dissector", "cgroup_sysctl",
    "raw_tracepoint_writable", "cgroup_sockopt", "tracing", "struct_ops", "ext", "lsm",
    "sk_lookup", "syscall", "netfilter",
)


def type_name(table: tuple[str, ...], value: int) -> str:
    return table[value] if 0 <= value < len(table) else f"type {value}"


# Named tuples, not dataclasses: `dataclasses` costs start-up time (it imports inspect).
class MapInfo(namedtuple("MapInfo", "id type key_size value_size max_entries flags name btf_id "
                                    "btf_key_type_id btf_value_type_id map_extra ifindex")):
    __slots__ = ()

    @property
    def type_name(self) -> str:
        return type_name(MAP_TYPE_NAMES, self.type)


class ProgInfo(namedtuple("ProgInfo", "id type name tag map_ids")):
    __slots__ = ()

    @property
    def type_name(self) -> str:
        return type_name(PROG_TYPE_NAMES, self.type)


def parse_fdinfo(text: str) -> dict[str, str]:
    """/proc/PID/fdinfo/FD as a dict: `key:\tvalue` lines (proc(5))."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def fd_read_only(fdinfo: dict[str, str]) -> bool:
    """Whether a map fd was opened read-only (BPF_F_RDONLY, or pidfd_getfd of such an fd):
    its file's access mode, fdinfo's `flags:` in octal, is O_RDONLY (0) rather than O_RDWR
    (2). Checked on 6.18: BPF_MAP_GET_FD_BY_ID with open_flags BPF_F_RDONLY gives
    `flags: 02000000`, without them `02000002` (02000000 is O_CLOEXEC)."""
    return int(fdinfo.get("flags", "2"), 8) & 3 == 0  # O_ACCMODE; O_RDONLY is 0


def read_fdinfo(fd: int, pid: int | str = "self") -> dict[str, str]:
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        return parse_fdinfo(f.read())


def map_info_from_fdinfo(fdinfo: dict[str, str], name: str = "") -> MapInfo:
    """A MapInfo from a map fd's /proc/PID/fdinfo fields (map_type, key_size, value_size,
    max_entries, map_flags in hex, map_id): the kernel's own account, without a bpf(2)
    call. fdinfo has no name and no BTF ids: `name` comes from elsewhere, BTF ids are 0."""
    return MapInfo(id=int(fdinfo["map_id"]), type=int(fdinfo["map_type"]),
                   key_size=int(fdinfo["key_size"]), value_size=int(fdinfo["value_size"]),
                   max_entries=int(fdinfo["max_entries"]), flags=int(fdinfo["map_flags"], 16),
                   name=name, btf_id=0, btf_key_type_id=0, btf_value_type_id=0,
                   map_extra=int(fdinfo.get("map_extra", "0"), 16), ifindex=0)
