"""`bpfsession tui`: the Textual session browser (package `tui`)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("tui", help="browse live sessions and their maps")
    p.set_defaults(func=run)


def run(args) -> int:
    from bpfsession.errors import BpfSessionError

    raise BpfSessionError("`bpfsession tui` is not built yet")
