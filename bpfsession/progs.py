"""Which BPF programs use given maps, and where each one is attached.

Everything comes from the kernel, in one pass per call:
- programs: one walk of the prog ids (BPF_PROG_GET_NEXT_ID) and each program's info
  (its map_ids), as `bpftool prog show` does;
- device hooks, only when a matched program is a tc or XDP program: in every network
  namespace (the host's, each `ip netns` name under /run/netns, and the unnamed ones that
  some process is in), one rtnetlink dump of the devices (names, XDP programs), one of
  the qdiscs, the cls_bpf filters of each clsact / ingress hook (as `tc filter show`),
  and the tcx and netkit hooks (BPF_PROG_QUERY), as `bpftool net` does;
- everything else a link holds (cgroup, netns, netfilter, tracing...): the link walk
  (BPF_LINK_GET_NEXT_ID), reported as the kernel names it.

A network namespace is entered by a short-lived thread (setns(CLONE_NEWNET) is per
thread): the caller's namespaces never move. Walking programs needs CAP_SYS_ADMIN: without
it the answer is None, "unknown", never an empty list that would read as "no program".
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable

from bpfsession.errors import BpfSessionError, KernelError
from bpfsession.kernel import bpf, links

NETNS_DIR = "/run/netns"  # where `ip netns add` bind-mounts named namespaces

# Program types that sit on device hooks (enum bpf_prog_type): sched_cls, sched_act, xdp.
_DEVICE_PROG_TYPES = {3, 4, 6}
_NETKIT_HOOKS = ((54, "primary"), (55, "peer"))  # BPF_NETKIT_PRIMARY / BPF_NETKIT_PEER
_TCX_HOOKS = ((links.BPF_TCX_INGRESS, "ingress"), (links.BPF_TCX_EGRESS, "egress"))
# Answers that mean "nothing of that kind on this device", not a failure.
_NO_HOOK = {errno.ENODEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOENT, 524}  # 524: ENOTSUPP


def using(map_ids: Iterable[int]) -> dict[int, list[dict] | None]:
    """For each kernel map id: the programs that use it, as `show -j` prints them
    (`{"id", "name", "type", "tag", "attached": [...]}`), [] for none, or None when this
    process may not walk programs (EPERM: not root)."""
    wanted = {int(m) for m in map_ids}
    if not wanted:
        return {}
    try:
        matched = bpf.progs_using(wanted)
        device = any(p.type in _DEVICE_PROG_TYPES for p in matched)
        where = attachments({p.id for p in matched}, device=device) if matched else {}
    except KernelError as err:
        # EPERM: no CAP_SYS_ADMIN (walks) or CAP_NET_ADMIN (tcx queries), or a seccomp
        # filter that blocks bpf(2), as container engines' default profiles do.
        if err.errno in (errno.EPERM, errno.EACCES):
            return {m: None for m in wanted}
        raise BpfSessionError(f"cannot tell which programs use maps "
                              f"{', '.join(map(str, sorted(wanted)))}: {err}") from None
    out: dict[int, list[dict] | None] = {m: [] for m in wanted}
    for p in matched:
        for map_id in sorted(wanted.intersection(p.map_ids)):
            out[map_id].append({"id": p.id, "name": p.name, "type": p.type_name, "tag": p.tag,
                                "attached": [dict(a) for a in where.get(p.id, [])]})
    return out


def attachments(prog_ids: set[int], device: bool = True) -> dict[int, list[dict]]:
    """prog id -> where it is attached: device hooks in every namespace (when `device`),
    then the links not already seen there."""
    where: dict[int, list[dict]] = {}
    seen_links: set[int] = set()
    xdp_seen: set[int] = set()
    if device:
        for label, entries in in_namespaces(namespaces(), prog_ids):
            for prog_id, hook in entries:
                # The documented keys first (kind, dev, direction, netns), then the rest.
                head = {k: hook.pop(k) for k in ("kind", "dev", "direction", "mode")
                        if k in hook}
                entry = {**head, "netns": label, **hook}
                seen_links.add(entry.get("link", 0))
                if entry["kind"] == "xdp":
                    xdp_seen.add(prog_id)
                where.setdefault(prog_id, []).append(entry)
    for link_id in links.link_ids():
        lk = links.link(link_id)
        if lk is None or lk.prog_id not in prog_ids or lk.id in seen_links:
            continue
        if lk.type == "xdp" and lk.prog_id in xdp_seen:
            continue  # IFLA_XDP already named the device
        where.setdefault(lk.prog_id, []).append(_link_entry(lk))
    return where


def _link_entry(lk: links.Link) -> dict:
    """A link as the kernel describes it: its type as `kind`, its fdinfo fields (numbers
    as numbers, attach_type by name). A device link not found in any namespace we could
    enter keeps its ifindex, with `dev` and `netns` unknown."""
    entry: dict = {"kind": lk.type, "link": lk.id}
    for key, value in lk.fields.items():
        if key == "attach_type" and value.lstrip("-").isdigit():
            entry[key] = links.attach_type_name(int(value))
        else:
            entry[key] = int(value) if value.isdigit() else value
    if lk.type in links.DEVICE_LINK_TYPES:
        entry.update(dev=None, netns=None, netns_known=False)
    return entry


def namespaces(proc: str = "/proc") -> list[tuple[str | None, str]]:
    """(label, path) of every network namespace: the host's (label None), each name
    under /run/netns, then namespaces only a process is in (/proc/PID/ns/net), each once."""
    out: list[tuple[str | None, str]] = []
    seen: set[tuple[int, int]] = set()

    def add(label: str | None, path: str) -> None:
        try:
            st = os.stat(path)
        except OSError:
            return  # gone, or not ours to see
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            out.append((label, path))

    # The host's: init's namespace, or ours where init's may not be looked at (as discover).
    add(None, f"{proc}/1/ns/net")
    if not out:
        add(None, f"{proc}/self/ns/net")
    try:
        names = sorted(os.listdir(NETNS_DIR))
    except OSError:
        names = []
    for name in names:
        add(name, os.path.join(NETNS_DIR, name))
    for pid in os.listdir(proc):
        if pid.isdigit():
            path = f"{proc}/{pid}/ns/net"
            add(path, path)
    return out


def in_namespaces(nets: list[tuple[str | None, str]],
                  prog_ids: set[int]) -> list[tuple[str | None, list[tuple[int, dict]]]]:
    """The device hooks holding `prog_ids`, namespace by namespace, looked at from one
    worker thread that setns()es into each in turn (never the caller's thread)."""
    import threading

    from bpfsession.kernel import ns

    results: list[tuple[str | None, list[tuple[int, dict]]]] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            for label, path in nets:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    continue  # the namespace (or its last process) went away
                try:
                    ns.setns(fd, ns.CLONE_NEWNET)
                except KernelError:
                    continue  # not a namespace we may enter (another user namespace's)
                finally:
                    os.close(fd)
                results.append((label, device_hooks(prog_ids)))
        except BaseException as err:  # handed to the caller's thread, raised there
            failure.append(err)

    worker = threading.Thread(target=work, name="bpfsession-netns")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return results


def device_hooks(prog_ids: set[int]) -> list[tuple[int, dict]]:
    """(prog id, entry) for each device hook of the calling thread's namespace that runs
    one of `prog_ids`: XDP, tc (cls_bpf on clsact or ingress), tcx, netkit."""
    from bpfsession.kernel import rtnl

    found: list[tuple[int, dict]] = []
    with rtnl.Rtnl() as nl:
        devices = {d.ifindex: d for d in nl.devices()}
        for d in devices.values():
            found += [(prog_id, {"kind": "xdp", "dev": d.name, "mode": mode})
                      for mode, prog_id in d.xdp if prog_id in prog_ids]
        for ifindex, parent in rtnl.tc_hooks(nl.qdiscs()):
            try:
                filters = nl.bpf_filters(ifindex, parent)
            except KernelError as err:
                if err.errno in _NO_HOOK:
                    continue  # the device or its qdisc went away meanwhile
                raise
            dev = devices[ifindex].name if ifindex in devices else None
            found += [(f.prog_id, {"kind": "tc", "dev": dev, "direction": f.direction,
                                   "pref": f.pref, "handle": f.handle})
                      for f in filters if f.prog_id in prog_ids]
    for d in devices.values():
        hooks = _TCX_HOOKS + (_NETKIT_HOOKS if d.kind == "netkit" else ())
        kind_of = {t: ("netkit" if t in dict(_NETKIT_HOOKS) else "tcx") for t, _ in hooks}
        for attach_type, direction in hooks:
            try:
                on_hook = links.prog_query_ifindex(d.ifindex, attach_type)
            except KernelError as err:
                if err.errno in _NO_HOOK:
                    continue
                raise
            for prog_id, link_id in on_hook:
                if prog_id in prog_ids:
                    entry = {"kind": kind_of[attach_type], "dev": d.name,
                             "direction": direction}
                    if link_id:
                        entry["link"] = link_id
                    found.append((prog_id, entry))
    return found


def describe(entry: dict) -> str:
    """One attachment for people: `tc eth0 ingress netns blue`, `cgroup link 7 ...`.
    Outside strings (device and namespace names) are escaped."""
    from bpfsession.printable import printable

    words = [entry["kind"]]
    if "dev" in entry:
        words.append(printable(entry["dev"]) if entry["dev"] is not None
                     else f"ifindex {entry.get('ifindex', '?')}")
    for key in ("direction", "mode"):
        if key in entry:
            words.append(str(entry[key]))
    if "dev" in entry:
        if entry.get("netns_known") is False:
            words.append("netns ?")
        elif entry.get("netns") is not None:
            words.append(f"netns {printable(entry['netns'])}")
    if "pref" in entry:
        words.append(f"pref {entry['pref']}")
    for key, value in entry.items():
        if key not in ("kind", "dev", "direction", "mode", "netns", "netns_known", "pref",
                       "handle", "ifindex"):
            words.append(f"{key} {printable(str(value))}")
    return " ".join(words)


def annotate(doc: dict) -> dict:
    """Add `progs` to each map of a session's JSON document (`show -j`), in one walk."""
    used = using(m["id"] for m in doc.get("maps", []) if m.get("id") is not None)
    for m in doc.get("maps", []):
        m["progs"] = used.get(m.get("id"))
    return doc


def rows(map_names: dict[int, str]) -> list[tuple[str, ...]] | None:
    """The text table of `show`'s programs section: MAP, PROG ID, NAME, TYPE, TAG,
    ATTACHED (one row per map and program, hooks joined by `; `), or None when unknown.
    `map_names`: kernel map id -> the name to print for it."""
    from bpfsession.printable import printable

    used = using(map_names)
    if any(v is None for v in used.values()):
        return None
    out = [("MAP", "PROG", "NAME", "TYPE", "TAG", "ATTACHED")]
    for map_id, name in map_names.items():
        for p in used.get(map_id) or ():
            where = "; ".join(describe(a) for a in p["attached"]) or "-"
            out.append((printable(name) or str(map_id), str(p["id"]), printable(p["name"]) or "-",
                        p["type"], p["tag"], where))
    return out
