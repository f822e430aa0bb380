"""`bpfsession tui`: the Textual session browser (package `tui`; textual is imported only here)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("tui", help="browse live sessions and their maps")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from bpfsession.errors import BpfSessionError

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise BpfSessionError("`bpfsession tui` needs a terminal on stdin and stdout; "
                              "for scripts use `bpfsession list -j`")
    from tui.app import BpfSessionApp

    app = BpfSessionApp()
    app.run()
    return app.return_code or 0
