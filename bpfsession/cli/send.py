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
        else:
            sources.append(Source(kind, values))
        namespace.sources = sources


def register(sub) -> None:
    p = sub.add_parser(
        "send", help="send maps (by id, pin, prog, tc filter or session) to UDS",
        usage="bpfsession send UDS [--obj NAME] [--netns NETNS] SOURCE...",
        description="SOURCE := --map-id ID | --pinned PATH | --prog-id ID | "
                    "--dev IFACE (--ingress|--egress) | --session SESSION")
    p.add_argument("uds", metavar="UDS", help="the receiver's socket path")
    p.add_argument("--obj", help="object name to announce (default: from the sources)")
    p.add_argument("--netns", help="network namespace of --dev (name or path)")
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
    p.set_defaults(func=run, sources=[])


def run(args) -> int:
    from bpfsession.send import send

    netns_path = None
    if args.netns:
        from bpfsession.netns import resolve

        netns_path = resolve(args.netns).path
    obj, infos = send(args.uds, args.sources, args.obj, netns_path)
    if args.json:
        from bpfsession.cli import print_json

        print_json({"obj": obj, "uds": args.uds, "maps": [
            {"env": f"BPF_MAP{i}", "id": m.id, "name": m.name, "type": m.type_name}
            for i, m in enumerate(infos)]}, args)
    return 0
