"""`bpfsession map ...`: read and write maps from shell scripts (see maps.py)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("map", help="show, dump, look up, update, delete or pin a map")
    p.add_argument("rest", nargs="*")
    p.set_defaults(func=run)


def run(args) -> int:
    from bpfsession.errors import BpfSessionError

    raise BpfSessionError("`bpfsession map` is not built yet")
