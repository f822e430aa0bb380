"""rtnetlink dumps over a plain AF_NETLINK socket: devices, qdiscs, tc filters.

Only what `show` needs to say where a BPF program is attached, without pyroute2 (whose
import alone costs ~145 ms). The socket talks to the network namespace of the thread that
created it: open it inside the namespace you mean (see bpfsession.progs).

Layouts follow include/uapi/linux/netlink.h (struct nlmsghdr, struct nlattr),
include/uapi/linux/rtnetlink.h (struct ifinfomsg, struct tcmsg, RTM_*),
include/uapi/linux/if_link.h (IFLA_*), include/uapi/linux/pkt_sched.h (clsact parents)
and include/uapi/linux/pkt_cls.h (TCA_BPF_*). Every number is native-endian except
where a comment says otherwise.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections import namedtuple

from bpfsession.errors import KernelError

# netlink.h
NETLINK_ROUTE = 0
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLMSG_ERROR = 2
NLMSG_DONE = 3
_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_NLATTR = struct.Struct("=HH")  # len, type (the top two bits are NLA_F_NESTED/BYTEORDER)
_NLA_TYPE_MASK = 0x3FFF

# rtnetlink.h
RTM_GETLINK = 18
RTM_GETQDISC = 38
RTM_GETTFILTER = 46
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_TCMSG = struct.Struct("=BxxxiIII")  # family, ifindex, handle, parent, info

# if_link.h
IFLA_IFNAME = 3
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1
IFLA_EXT_MASK = 29
IFLA_XDP = 43
RTEXT_FILTER_SKIP_STATS = 1 << 3  # keep the dump small: we want names, not counters
# The IFLA_XDP_*_PROG_ID attributes and the mode each one reports, as `ip link` names them.
XDP_PROG_ATTRS = {5: "driver", 6: "generic", 7: "offload"}
IFLA_XDP_PROG_ID = 4  # the single attached program (any mode); set with ATTACHED != MULTI

# pkt_sched.h: TC_H_CLSACT's minor handles, and the old `ingress` qdisc's single hook.
TC_H_INGRESS_PARENT = 0xFFFFFFF1
CLSACT_PARENTS = {0xFFFFFFF2: "ingress", 0xFFFFFFF3: "egress"}

# rtnetlink.h TCA_* and pkt_cls.h TCA_BPF_*
TCA_KIND = 1
TCA_OPTIONS = 2
TCA_BPF_NAME = 7
TCA_BPF_ID = 11

Device = namedtuple("Device", "ifindex name kind xdp")  # xdp: ((mode, prog_id), ...)
TcFilter = namedtuple("TcFilter", "ifindex direction pref handle prog_id name")


def attrs(data: bytes | memoryview, offset: int = 0) -> dict[int, memoryview]:
    """The netlink attributes in `data` from `offset`: {type: payload} (last one wins)."""
    out = {}
    view = memoryview(data)
    end = len(view)
    while offset + _NLATTR.size <= end:
        length, kind = _NLATTR.unpack_from(view, offset)
        if length < _NLATTR.size or offset + length > end:
            break  # truncated or corrupt: stop rather than misread
        out[kind & _NLA_TYPE_MASK] = view[offset + _NLATTR.size:offset + length]
        offset += (length + 3) & ~3  # NLA_ALIGN
    return out


def _u32(view: memoryview) -> int:
    return struct.unpack_from("=I", view)[0]


def _str(view: memoryview) -> str:
    return bytes(view).split(b"\0", 1)[0].decode(errors="backslashreplace")


class Rtnl:
    """One NETLINK_ROUTE socket in the calling thread's network namespace."""

    def __init__(self):
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                   NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def dump(self, msg_type: int, body: bytes) -> list[tuple[int, memoryview]]:
        """Send one NLM_F_DUMP request; every answer's (type, payload) until NLMSG_DONE.

        A netlink error comes back as KernelError(errno, "RTM_..."): ENODEV/EINVAL for a
        device or parent that went away, EOPNOTSUPP for a qdisc without that hook.
        """
        self._seq += 1
        seq = self._seq
        head = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP,
                              seq, 0)
        self._sock.send(head + body)
        out = []
        while True:
            data = self._sock.recv(1 << 16)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _flags, got_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    raise KernelError(errno.EPROTO, f"rtnetlink {msg_type}", "short message")
                payload = memoryview(data)[offset + _NLMSGHDR.size:offset + length]
                offset += (length + 3) & ~3  # NLMSG_ALIGN
                if got_seq != seq:
                    continue
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", payload)[0]
                    if err:
                        raise KernelError(err, f"rtnetlink {msg_type}")
                    return out
                out.append((kind, payload))

    def devices(self) -> list[Device]:
        """RTM_GETLINK dump: every device's index, name, link kind and XDP programs."""
        body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        body += _NLATTR.pack(8, IFLA_EXT_MASK) + struct.pack("=I", RTEXT_FILTER_SKIP_STATS)
        found = []
        for _kind, payload in self.dump(RTM_GETLINK, body):
            _family, _type, index, _flags, _change = _IFINFOMSG.unpack_from(payload)
            a = attrs(payload, _IFINFOMSG.size)
            name = _str(a[IFLA_IFNAME]) if IFLA_IFNAME in a else ""
            kind = ""
            if IFLA_LINKINFO in a:
                info = attrs(a[IFLA_LINKINFO])
                kind = _str(info[IFLA_INFO_KIND]) if IFLA_INFO_KIND in info else ""
            found.append(Device(index, name, kind, _xdp(a.get(IFLA_XDP))))
        return found

    def qdiscs(self) -> list[tuple[int, str]]:
        """RTM_GETQDISC dump over every device: (ifindex, kind) of each qdisc."""
        found = []
        for _kind, payload in self.dump(RTM_GETQDISC, _TCMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
            _family, ifindex, _handle, _parent, _info = _TCMSG.unpack_from(payload)
            a = attrs(payload, _TCMSG.size)
            if TCA_KIND in a:
                found.append((ifindex, _str(a[TCA_KIND])))
        return found

    def bpf_filters(self, ifindex: int, parent: int) -> list[TcFilter]:
        """The cls_bpf filters under `parent` of device `ifindex` (RTM_GETTFILTER dump),
        in the order `tc filter show` prints them. The filter heads the kernel sends
        without options (one per pref, handle 0) carry no TCA_BPF_ID and are skipped."""
        direction = CLSACT_PARENTS.get(parent, "ingress")
        body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, 0, parent, 0)
        found = []
        for _kind, payload in self.dump(RTM_GETTFILTER, body):
            _family, _ifindex, handle, _parent, info = _TCMSG.unpack_from(payload)
            a = attrs(payload, _TCMSG.size)
            if TCA_KIND not in a or _str(a[TCA_KIND]) != "bpf" or TCA_OPTIONS not in a:
                continue
            opts = attrs(a[TCA_OPTIONS])
            if TCA_BPF_ID not in opts:
                continue
            name = _str(opts[TCA_BPF_NAME]) if TCA_BPF_NAME in opts else ""
            # tcm_info: the pref in the upper 16 bits, the protocol (big-endian) below.
            found.append(TcFilter(ifindex, direction, info >> 16, handle,
                                  _u32(opts[TCA_BPF_ID]), name))
        return found


def _xdp(nested: memoryview | None) -> tuple[tuple[str, int], ...]:
    """(mode, prog_id) for each XDP program IFLA_XDP reports on a device."""
    if nested is None:
        return ()
    a = attrs(nested)
    per_mode = tuple((mode, _u32(a[attr])) for attr, mode in XDP_PROG_ATTRS.items()
                     if attr in a and _u32(a[attr]))
    if per_mode:
        return per_mode
    # net/core/rtnetlink.c (rtnl_xdp_fill) sends the per-mode ids; IFLA_XDP_PROG_ID alone
    # is the fallback for kernels that send only that.
    if IFLA_XDP_PROG_ID in a and _u32(a[IFLA_XDP_PROG_ID]):
        return (("xdp", _u32(a[IFLA_XDP_PROG_ID])),)
    return ()


def tc_hooks(qdiscs: list[tuple[int, str]]) -> list[tuple[int, int]]:
    """(ifindex, parent) for each filter hook a BPF classifier can sit on: clsact's
    ingress and egress, and the older `ingress` qdisc's hook (tc's `ingress` keyword
    means ffff:fff1 there)."""
    hooks = []
    for ifindex, kind in qdiscs:
        if kind == "clsact":
            hooks += [(ifindex, parent) for parent in CLSACT_PARENTS]
        elif kind == "ingress":
            hooks.append((ifindex, TC_H_INGRESS_PARENT))
    return hooks

