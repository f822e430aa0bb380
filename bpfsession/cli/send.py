"""`bpfsession send`: export loaded maps over UDS in iproute2's bpf_scm v1 format."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("send", help="send maps (by id, pin, prog, tc filter or session) to UDS",
                       usage="bpfsession send UDS [--obj NAME] [--netns NETNS] SOURCE...")
    p.add_argument("uds", metavar="UDS")
    p.add_argument("--obj", help="object name to announce (default: derived from the sources)")
    p.add_argument("--netns", help="network namespace of --dev (name or path)")
    p.set_defaults(func=run)


def run(args) -> int:
    from bpfsession.errors import BpfSessionError

    raise BpfSessionError("`bpfsession send` is not built yet")
