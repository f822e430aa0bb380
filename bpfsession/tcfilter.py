"""The tc BPF filters on a device's clsact hook, over rtnetlink (pyroute2).

pyroute2 0.9 does not decode TCA_BPF_ID, TCA_BPF_TAG or TCA_BPF_FLAGS_GEN: its
`sched_bpf.options.nla_map` stops at TCA_BPF_FLAGS (8). The map is compiled lazily on
first use, so extending it once, at import, before any message is parsed, works.
Attribute numbers: include/uapi/linux/pkt_cls.h (TCA_BPF_FLAGS_GEN 9, TCA_BPF_TAG 10,
TCA_BPF_ID 11).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.rtnl.tcmsg import sched_bpf

from bpfsession.errors import BpfSessionError

if len(sched_bpf.options.nla_map) == 9:
    sched_bpf.options.nla_map = sched_bpf.options.nla_map + (
        ("TCA_BPF_FLAGS_GEN", "uint32"),
        ("TCA_BPF_TAG", "hex"),
        ("TCA_BPF_ID", "uint32"),
    )

# clsact's pseudo-parents (include/uapi/linux/pkt_sched.h: TC_H_MIN_INGRESS/EGRESS under
# TC_H_CLSACT), as `tc filter show dev X ingress|egress` uses them.
CLSACT_PARENT = {"ingress": 0xFFFFFFF2, "egress": 0xFFFFFFF3}


@dataclass(frozen=True)
class TcBpfFilter:
    prog_id: int
    name: str  # TCA_BPF_NAME, e.g. "counter.o:[tc]"
    pref: int
    handle: int


def bpf_filters(dev: str, direction: str, netns_path: str | None = None) -> list[TcBpfFilter]:
    """The BPF filters on `dev`'s clsact `direction` hook, in the order tc lists them."""
    kwargs = {"netns": netns_path, "flags": 0} if netns_path else {}
    try:
        ipr = IPRoute(**kwargs)
    except OSError as err:
        raise BpfSessionError(f"cannot open netlink in {netns_path}: {err.strerror}") from None
    with ipr:
        idx = ipr.link_lookup(ifname=dev)
        if not idx:
            where = f" in netns {netns_path}" if netns_path else ""
            raise BpfSessionError(f"no device {dev}{where} (see `ip link`)")
        try:
            msgs = ipr.get_filters(index=idx[0], parent=CLSACT_PARENT[direction])
        except OSError as err:
            raise BpfSessionError(f"listing tc filters on {dev}: {err.strerror}") from None
        found = []
        for msg in msgs:
            if msg.get_attr("TCA_KIND") != "bpf":
                continue
            opts = msg.get_attr("TCA_OPTIONS")
            prog_id = opts.get_attr("TCA_BPF_ID") if opts is not None else None
            if prog_id is None:
                continue
            found.append(TcBpfFilter(prog_id, opts.get_attr("TCA_BPF_NAME") or "",
                                     msg["info"] >> 16, msg["handle"]))
        return found
