"""`bpfsession new`: receive map fds and spawn a supervised session (see session.py)."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("new", help="receive map fds on UDS and run a shell or command with them",
                       usage="bpfsession new [options] (imp|import) UDS [run CMD [ARG...]]")
    p.add_argument("--name", help="session name (default: derived from the object name)")
    p.add_argument("--netns", help="network namespace: a name under /run/netns or a path")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="give up when no sender came within SECONDS (default: wait)")
    p.add_argument("--allow-uid", type=int, action="append", default=[], metavar="UID",
                   help="also accept senders with this uid (root and you always are)")
    p.add_argument("--exec", action="store_true", dest="exec_",
                   help="replace bpfsession with the command, like tc exec (no supervisor)")
    p.add_argument("--init", action="store_true", help="act as an init: reap all orphans")
    p.add_argument("--keep-caps", metavar="CAP,...",
                   help="drop every capability but these from the command")
    p.add_argument("--no-new-privs", action="store_true",
                   help="set no_new_privs for the command")
    p.add_argument("rest", nargs=argparse.REMAINDER, metavar="(imp|import) UDS [run CMD...]")
    p.set_defaults(func=run)


def run(args) -> int:
    from bpfsession.errors import BpfSessionError

    raise BpfSessionError("`bpfsession new` is not built yet")
