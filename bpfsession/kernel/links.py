"""BPF links and tcx queries: where the kernel says a program is attached.

Links are walked with BPF_LINK_GET_NEXT_ID and described by the link fd's
/proc/self/fdinfo (kernel/bpf/syscall.c: bpf_link_show_fdinfo), which names the link type
("tcx", "cgroup", "netns"...) and adds the type's own fields (ifindex, attach_type,
cgroup_id, netns_ino, pf/hooknum...): the kernel's own account, without decoding the
union in struct bpf_link_info. BPF_PROG_QUERY lists what sits on a device's tcx hooks.

Numbers follow include/uapi/linux/bpf.h (Linux 6.18; Debian's 6.1 headers stop before
tcx and netkit).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections import namedtuple

from bpfsession.errors import KernelError
from bpfsession.kernel import bpf
from bpfsession.kernel.types import read_fdinfo

# enum bpf_cmd
BPF_PROG_QUERY = 16
BPF_LINK_GET_FD_BY_ID = 30
BPF_LINK_GET_NEXT_ID = 31

# enum bpf_attach_type, as libbpf's attach_type_name table spells them.
ATTACH_TYPE_NAMES = (
    "cgroup_inet_ingress", "cgroup_inet_egress", "cgroup_inet_sock_create", "cgroup_sock_ops",
    "sk_skb_stream_parser", "sk_skb_stream_verdict", "cgroup_device", "sk_msg_verdict",
    "cgroup_inet4_bind", "cgroup_inet6_bind", "cgroup_inet4_connect", "cgroup_inet6_connect",
    "cgroup_inet4_post_bind", "cgroup_inet6_post_bind", "cgroup_udp4_sendmsg",
    "cgroup_udp6_sendmsg", "lirc_mode2", "flow_dissector", "cgroup_sysctl",
    "cgroup_udp4_recvmsg", "cgroup_udp6_recvmsg", "cgroup_getsockopt", "cgroup_setsockopt",
    "trace_raw_tp", "trace_fentry", "trace_fexit", "modify_return", "lsm_mac", "trace_iter",
    "cgroup_inet4_getpeername", "cgroup_inet6_getpeername", "cgroup_inet4_getsockname",
    "cgroup_inet6_getsockname", "xdp_devmap", "cgroup_inet_sock_release", "xdp_cpumap",
    "sk_lookup", "xdp", "sk_skb_verdict", "sk_reuseport_select",
    "sk_reuseport_select_or_migrate", "perf_event", "trace_kprobe_multi", "lsm_cgroup",
    "struct_ops", "netfilter", "tcx_ingress", "tcx_egress", "trace_uprobe_multi",
    "cgroup_unix_connect", "cgroup_unix_sendmsg", "cgroup_unix_recvmsg",
    "cgroup_unix_getpeername", "cgroup_unix_getsockname", "netkit_primary", "netkit_peer",
    "trace_kprobe_session", "trace_uprobe_session",
)
BPF_TCX_INGRESS = 46
BPF_TCX_EGRESS = 47

# Link types whose target is a network device (fdinfo: ifindex): their namespace is not in
# the link, so bpfsession.progs finds them device by device, namespace by namespace.
DEVICE_LINK_TYPES = ("xdp", "tcx", "netkit")

Link = namedtuple("Link", "id type prog_id fields")  # fields: the fdinfo's other lines


def attach_type_name(value: int) -> str:
    if 0 <= value < len(ATTACH_TYPE_NAMES):
        return ATTACH_TYPE_NAMES[value]
    return f"attach type {value}"


def link_ids() -> list[int]:
    """Every link id on the system (needs CAP_SYS_ADMIN: EPERM otherwise)."""
    ids, cur = [], 0
    while (cur := bpf._next_id(BPF_LINK_GET_NEXT_ID, cur)) is not None:
        ids.append(cur)
    return ids


def link_get_fd_by_id(link_id: int) -> int:
    return bpf._get_fd_by_id(BPF_LINK_GET_FD_BY_ID, link_id)


_FDINFO_COMMON = ("pos", "flags", "mnt_id", "ino", "link_type", "link_id", "prog_tag",
                  "prog_id")


def link(link_id: int) -> Link | None:
    """The link `link_id` as its fdinfo tells, or None when it went away meanwhile."""
    try:
        fd = link_get_fd_by_id(link_id)
    except KernelError as err:
        if err.errno == errno.ENOENT:
            return None
        raise
    try:
        info = read_fdinfo(fd)
    finally:
        os.close(fd)
    fields = {k: v for k, v in info.items() if k and k not in _FDINFO_COMMON}
    return Link(int(info.get("link_id", link_id)), info.get("link_type", "unknown"),
                int(info.get("prog_id", "0") or 0), fields)


class _QueryAttr(ctypes.Structure):
    """The BPF_PROG_QUERY part of union bpf_attr."""

    _fields_ = [
        ("target", ctypes.c_uint32),  # target_fd or target_ifindex
        ("attach_type", ctypes.c_uint32),
        ("query_flags", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),
        ("prog_ids", ctypes.c_uint64),
        ("count", ctypes.c_uint32),  # prog_cnt
        ("_pad", ctypes.c_uint32),
        ("prog_attach_flags", ctypes.c_uint64),
        ("link_ids", ctypes.c_uint64),
        ("link_attach_flags", ctypes.c_uint64),
        ("revision", ctypes.c_uint64),
    ]


def prog_query_ifindex(ifindex: int, attach_type: int, room: int = 64) -> list[tuple[int, int]]:
    """BPF_PROG_QUERY on device `ifindex` of the calling thread's network namespace:
    (prog_id, link_id or 0) for each program on that hook, in run order.

    EINVAL (no such hook on this kernel or device) and ENODEV are the caller's to judge.
    More programs than `room`: the kernel answers ENOSPC with the real count; ask again.
    """
    progs = (ctypes.c_uint32 * room)()
    links = (ctypes.c_uint32 * room)()
    attr = _QueryAttr(target=ifindex, attach_type=attach_type, count=room,
                      prog_ids=ctypes.addressof(progs), link_ids=ctypes.addressof(links))
    try:
        bpf._bpf(BPF_PROG_QUERY, attr, f"ifindex {ifindex}")
    except KernelError as err:
        if err.errno == errno.ENOSPC and attr.count > room:
            return prog_query_ifindex(ifindex, attach_type, attr.count)
        raise
    n = min(attr.count, room)
    return [(progs[i], links[i]) for i in range(n)]


# ---- loading and linking: used by tests and benchmarks, to make real links --------------

BPF_PROG_LOAD = 5
BPF_LINK_CREATE = 28


class _ProgLoadAttr(ctypes.Structure):
    """The head of BPF_PROG_LOAD's part of union bpf_attr, up to expected_attach_type."""

    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
    ]


class _LinkCreateAttr(ctypes.Structure):
    _fields_ = [
        ("prog_fd", ctypes.c_uint32),
        ("target", ctypes.c_uint32),  # target_fd or target_ifindex
        ("attach_type", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("_union", ctypes.c_uint64 * 4),  # the attach-type-specific part: zeros
    ]


def prog_load(prog_type: int, insns: bytes, name: str = "", license: str = "GPL",
              expected_attach_type: int = 0) -> int:
    """BPF_PROG_LOAD of raw instructions (8 bytes each); the new program's fd."""
    attr = _ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8,
                         expected_attach_type=expected_attach_type)
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    attr.insns, attr.license = ctypes.addressof(code), ctypes.addressof(lic)
    attr.prog_name = name.encode()[:15]
    return bpf._bpf(BPF_PROG_LOAD, attr, name)


def link_create(prog_fd: int, target: int, attach_type: int) -> int:
    """BPF_LINK_CREATE: attach `prog_fd` to `target` (an fd, or an ifindex of the calling
    thread's namespace for device hooks); the link's fd (closing it detaches)."""
    attr = _LinkCreateAttr(prog_fd=prog_fd, target=target, attach_type=attach_type)
    return bpf._bpf(BPF_LINK_CREATE, attr, attach_type_name(attach_type))
