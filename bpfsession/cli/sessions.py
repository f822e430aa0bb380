"""`bpfsession list|show|attach`: live sessions, found from /proc (see discover.py)."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("list", help="list live sessions")
    p.add_argument("-j", "--json", action="store_true", help="JSON output")
    p.add_argument("--watch", nargs="?", type=float, const=1.0, metavar="SECONDS",
                   help="refresh every SECONDS (default 1) until interrupted")
    p.set_defaults(func=run_list)

    p = sub.add_parser("show", help="show one session")
    p.add_argument("session", metavar="SESSION", help="name, id, or the pid of any process in it")
    p.add_argument("-j", "--json", action="store_true", help="JSON output")
    p.set_defaults(func=run_show)

    p = sub.add_parser("attach", help="run a shell or command with a session's maps",
                       usage="bpfsession attach SESSION [run CMD [ARG...]]")
    p.add_argument("session", metavar="SESSION")
    p.add_argument("rest", nargs=argparse.REMAINDER, metavar="run CMD...")
    p.set_defaults(func=run_attach)


def _todo(what: str):
    from bpfsession.errors import BpfSessionError

    raise BpfSessionError(f"`bpfsession {what}` is not built yet")


def run_list(args) -> int:
    _todo("list")


def run_show(args) -> int:
    _todo("show")


def run_attach(args) -> int:
    _todo("attach")
