"""`bpfsession send`: export loaded maps over UDS in iproute2's bpf_scm v1 format."""

from __future__ import annotations

import argparse


class _SourceAction(argparse.Action):
    """Keeps SOURCEs in the order given: entry ids are 0..n-1 in that order."""

    def __call__(self, parser, namespace, values, option_string=None):
        from bpfsession.send import Source

        sources = list(getattr(namespace, "sources", None) or [])
        kind = option_string.lstrip("-")
        if kind in ("ingress", "egress"):
            if not sources or sources[-1].kind != "dev":
                parser.error(f"--{kind} must follow --dev IFACE")
            last = sources.pop()
            if last.direction is not None:
                parser.error(f"--dev {last.value} has two directions; repeat --dev for both")
            sources.append(Source("dev", last.value, kind))
        elif kind == "maps":
            if not sources or sources[-1].kind != "session":
                parser.error("--maps must follow --session SESSION")
            last = sources.pop()
            if last.maps is not None:
                parser.error(f"--session {last.value} has two --maps; list the names in one")
            from bpfsession import handout
            from bpfsession.errors import BpfSessionError

            try:
                names = handout.parse_names(values)
            except BpfSessionError as err:
                parser.error(err.hint)
            sources.append(Source("session", last.value, maps=tuple(names)))
        else:
            sources.append(Source(kind, values))
        namespace.sources = sources


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _uid(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a numeric uid: `id -u {text}` tells it")
    return int(text)


def register(sub) -> None:
    from bpfsession.wire import DEFAULT_LAYOUT, DEFAULT_SEND_TIMEOUT, LAYOUTS

    p = sub.add_parser(
        "send", help="send maps (by id, pin, prog, tc filter or session) to UDS",
        usage="bpfsession send UDS [--obj NAME] [--netns NETNS] [--timeout SECONDS] "
              "[--to-uid UID]... [--layout 20|24|28|36] [--read-only] SOURCE...",
        description="SOURCE := --map-id ID | --pinned PATH | --prog-id ID | "
                    "--dev IFACE (--ingress|--egress) | --session SESSION [--maps NAME,...]")
    p.add_argument("uds", metavar="UDS", help="the receiver's socket path")
    p.add_argument("--obj", help="object name to announce (default: from the sources)")
    p.add_argument("--netns", help="network namespace of --dev (name or path)")
    p.add_argument("--timeout", type=_seconds, default=DEFAULT_SEND_TIMEOUT, metavar="SECONDS",
                   help=f"give up when the receiver has not taken every map within SECONDS "
                        f"(default {DEFAULT_SEND_TIMEOUT:g})")
    p.add_argument("--to-uid", type=_uid, action="append", default=[], metavar="UID",
                   help="also send to a receiver whose socket belongs to UID (repeatable; "
                        "root's and your own are always accepted)")
    p.add_argument("--layout", type=int, choices=sorted(LAYOUTS), default=DEFAULT_LAYOUT,
                   metavar="20|24|28|36",
                   help="map entry size for receivers built against older iproute2: 20 "
                        "(4.1-4.4), 24 (4.5), 28 (4.6-4.12), 36 (4.13 and later, default)")
    p.add_argument("--read-only", action="store_true",
                   help="send read-only fds (BPF_F_RDONLY): the receiver cannot write the maps")
    p.add_argument("-j", "--json", action="store_true", help="report what was sent as JSON")
    src = p.add_argument_group("sources (repeatable, in order)")
    src.add_argument("--map-id", action=_SourceAction, metavar="ID",
                     help="the map with this kernel id (bpftool map show)")
    src.add_argument("--pinned", action=_SourceAction, metavar="PATH",
                     help="the map pinned at PATH in bpffs")
    src.add_argument("--prog-id", action=_SourceAction, metavar="ID",
                     help="every map the program with this kernel id uses")
    src.add_argument("--dev", action=_SourceAction, metavar="IFACE",
                     help="every map of the tc bpf filters on IFACE (in --netns), in the "
                          "direction that follows")
    src.add_argument("--ingress", action=_SourceAction, nargs=0,
                     help="--dev IFACE's ingress (clsact) filters")
    src.add_argument("--egress", action=_SourceAction, nargs=0,
                     help="--dev IFACE's egress (clsact) filters")
    src.add_argument("--session", action=_SourceAction, metavar="SESSION",
                     help="every map of a live session (name, id or a pid in it)")
    src.add_argument("--maps", action=_SourceAction, metavar="NAME,...",
                     help="after --session: only these maps (kernel map names or "
                          "BPF_MAP<id> names)")
    p.set_defaults(func=run, sources=[])


def run(args) -> int:
    import os

    from bpfsession.send import send

    netns_path = None
    if args.netns:
        from bpfsession import netns

        target = netns.resolve(args.netns)
        os.close(netns.open_netns(target))  # one line now if it is no network namespace
        netns_path = target.path
    obj, sent = send(args.uds, args.sources, args.obj, netns_path, args.layout, args.to_uid,
                     args.timeout, args.read_only)
    if args.json:
        from bpfsession.cli import print_json

        print_json({"obj": obj, "uds": args.uds, "layout": args.layout,
                    "read_only": args.read_only, "maps": [
            {"env": f"BPF_MAP{e.id}", "id": m.id, "name": m.name, "type": m.type_name}
            for e, m in sent]}, args)
    return 0
