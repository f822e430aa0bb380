"""`bpfsession list|show|attach`: live sessions, found from /proc (see discover.py)."""

from __future__ import annotations

import sys


def register(sub) -> None:
    import argparse

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
                       usage="bpfsession attach [--keep-caps CAP,...] [--no-new-privs] SESSION "
                             "[run CMD [ARG...]]")
    p.add_argument("--keep-caps", metavar="CAP,...",
                   help="drop every capability but these from the command")
    p.add_argument("--no-new-privs", action="store_true",
                   help="set no_new_privs for the command")
    p.add_argument("session", metavar="SESSION")
    p.add_argument("rest", nargs=argparse.REMAINDER, metavar="run CMD...")
    p.set_defaults(func=run_attach)


def fast_parse(verb: str, argv: list[str]):
    """The plain forms of `list [-j]`, `show SESSION [-j]` and `attach SESSION [run ...]`
    without argparse (start-up is measured against ps and a bare-Python floor), or None
    for anything else, which argparse then parses. tests/test_cli_fast.py checks that the
    answers equal argparse's."""
    from types import SimpleNamespace

    words = [w for w in argv if w not in ("-j", "--json")]
    if verb == "list" and not words:
        return SimpleNamespace(command="list", func=run_list, json=bool(argv), watch=None)
    if verb == "show" and len(words) == 1 and not words[0].startswith("-"):
        return SimpleNamespace(command="show", func=run_show, json=len(argv) > 1,
                               session=words[0])
    if verb == "attach" and argv and not argv[0].startswith("-") and \
            (len(argv) == 1 or argv[1] == "run"):
        return SimpleNamespace(command="attach", func=run_attach, session=argv[0],
                               rest=argv[1:], keep_caps=None, no_new_privs=False)
    return None


# ---- list --------------------------------------------------------------------------------


def run_list(args) -> int:
    from bpfsession import discover

    if args.watch is None:
        _print_list(discover.scan(), args.json)
        return 0
    if not 0 < args.watch <= _MAX_WATCH:  # also nan
        from bpfsession.errors import BpfSessionError

        raise BpfSessionError(f"--watch {args.watch:g}: give a number of seconds above 0, "
                              f"at most {_MAX_WATCH}")
    return _watch(args.watch, args.json)


_MAX_WATCH = 86400  # seconds; time.sleep overflows long before inf


def _watch(interval: float, as_json: bool) -> int:
    """Refresh until interrupted; JSON Lines under -j, a redrawn table on a terminal."""
    import time

    from bpfsession import discover

    clear = not as_json and sys.stdout.isatty()
    try:
        while True:
            sessions = discover.scan()
            if clear:
                sys.stdout.write("\x1b[H\x1b[2J")
                print(f"Every {interval:g}s: bpfsession list    {time.strftime('%c')}\n")
            elif not as_json:
                print(f"# {time.strftime('%Y-%m-%dT%H:%M:%S%z')}")
            _print_list(sessions, as_json, lines=True)
            sys.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0


def _print_list(sessions, as_json: bool, lines: bool = False) -> None:
    from bpfsession import model

    if as_json:
        doc = [model.session_json(s) for s in sessions]
        import json

        print(json.dumps(doc) if lines else json.dumps(doc, indent=2))
        return
    rows = [("ID", "NAME", "PID", "SUPERVISOR", "NETNS", "OBJ", "MAPS", "PROCS", "STARTED")]
    for s in sessions:
        rows.append((_p(s.id), _p(s.name), str(s.pid), str(s.supervisor or "-"), _netns(s),
                     _p(s.obj) or "-", str(len(s.maps)), str(len(s.processes)),
                     _when(s.started)))
    if len(rows) == 1:
        if not lines:
            sys.stderr.write("no live sessions\n")
        return
    _table(rows)


def _p(text: str | None) -> str:
    """An outside string (a sender's obj, a name, a command line) safe for a terminal."""
    from bpfsession.printable import printable

    return printable(text) if text else ""


def _netns(s) -> str:
    """`-` for the host's, `?` when not ours to know."""
    if not s.netns_known:
        return "?"
    return _p(s.netns) or "-"


def _unknown(value) -> str:
    return "?" if value is None else str(value)


def _when(started: str | None) -> str:
    return _p(started[:19].replace("T", " ")) if started else "-"


def _table(rows: list[tuple[str, ...]], indent: str = "") -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)] + [r[-1]]
        print(indent + "  ".join(cells).rstrip())


# ---- show --------------------------------------------------------------------------------


def run_show(args) -> int:
    from bpfsession import discover, model

    s = discover.find(args.session)
    if args.json:
        import json

        print(json.dumps(model.session_json(s), indent=2))
        return 0
    _print_session(s)
    return 0


def _print_session(s) -> None:
    import shlex

    print(f"session {_p(s.id)}  name {_p(s.name)}  obj {_p(s.obj) or '-'}")
    print(f"\tpid {s.pid}  supervisor {s.supervisor or '-'}  uid {s.uid}  "
          f"netns {_netns(s)}  started {_when(s.started)}")
    print(f"\tcommand {_p(shlex.join(s.command)) if s.command else '-'}")
    if s.registered:
        allowed = ",".join(str(u) for u in s.allow_uids) or "-"
        print(f"\tsocket {_p(s.socket) or '-'}  control {_p(s.control) or '-'}  "
              f"allow_uids {allowed}")
    else:
        print("\tno supervisor: attach takes the maps from the root process (pidfd_getfd)")
    print("maps:")
    rows = [("FD", "ID", "NAME", "TYPE", "KEY", "VALUE", "MAX", "MEMLOCK", "FROZEN", "ENV")]
    for m in s.maps:
        frozen = "?" if m.frozen is None else "yes" if m.frozen else "no"
        rows.append((str(m.fd), str(m.id), _p(m.name) or "-", _p(m.type), str(m.key_size),
                     str(m.value_size), str(m.max_entries), _unknown(m.memlock), frozen,
                     _p(" ".join(m.env)) or "-"))
    _table(rows, "\t")
    print("processes:")
    rows = [("PID", "PPID", "COMM", "MAP FDS", "CMDLINE")]
    for p in s.processes:
        fds = ",".join(str(fd) for fd in sorted(p.map_fds)) or "-"
        rows.append((str(p.pid), str(p.ppid), _p(p.comm), fds, _p(shlex.join(p.cmdline)) or "-"))
    _table(rows, "\t")


# ---- attach ------------------------------------------------------------------------------


def run_attach(args) -> int:
    from bpfsession import attach
    from bpfsession.cli.command import split_run

    command = split_run(args.rest, "after SESSION",
                        "bpfsession attach SESSION [run CMD [ARG...]]")
    keep_caps = None
    if args.keep_caps is not None:
        from bpfsession import caps

        keep_caps = caps.parse(args.keep_caps)
    return attach.attach(args.session, command, keep_caps, args.no_new_privs)
