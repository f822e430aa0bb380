"""`bpfsession list|show|attach`: live sessions, found from /proc (see discover.py)."""

from __future__ import annotations

import sys


def register(sub) -> None:
    import argparse

    from bpfsession.cli.parser import seconds

    p = sub.add_parser("list", help="list live sessions",
                       usage="bpfsession list [--watch [SECONDS]] [--no-headers] [netns NS] "
                             "[name PATTERN]")
    p.add_argument("--watch", nargs="?", type=seconds, const=1.0, metavar="SECONDS",
                   help="refresh every SECONDS (default 1) until interrupted")
    p.add_argument("--no-headers", action="store_true", help="leave out the header line")
    p.add_argument("filters", nargs="*", metavar="netns NS | name PATTERN",
                   help="only sessions in that netns (- for the host's), or whose name "
                        "matches the shell glob PATTERN")
    p.set_defaults(func=run_list)

    p = sub.add_parser("show", help="show one session")
    p.add_argument("session", metavar="SESSION", help="name, id, or the pid of any process in it")
    p.set_defaults(func=run_show)

    p = sub.add_parser("attach", help="run a shell or command with a session's maps",
                       usage="bpfsession attach [--read-only] [--maps NAME,...] "
                             "[--keep-caps CAP,...] [--no-new-privs] SESSION "
                             "[run CMD [ARG...]]")
    p.add_argument("--read-only", action="store_true",
                   help="take the maps read-only (BPF_F_RDONLY): writes fail in the kernel")
    p.add_argument("--maps", metavar="NAME,...",
                   help="take only these maps (kernel map names or BPF_MAP<id> names)")
    p.add_argument("--keep-caps", metavar="CAP,...",
                   help="drop every capability but these from the command")
    p.add_argument("--no-new-privs", action="store_true",
                   help="set no_new_privs for the command")
    p.add_argument("session", metavar="SESSION")
    p.add_argument("rest", nargs=argparse.REMAINDER, metavar="run CMD...")
    p.set_defaults(func=run_attach)


def fast_parse(verb: str, argv: list[str]):
    """The plain forms of `list [-j]`, `show SESSION [-j]` and `attach [--read-only]
    [--maps NAMES] SESSION [run ...]` without argparse (start-up is measured against ps
    and a bare-Python floor), or None for anything else, which argparse then parses.
    tests/test_cli_fast.py checks that the answers equal argparse's."""
    from types import SimpleNamespace

    if verb == "list" and not any(w.startswith("-") for w in argv):
        return SimpleNamespace(command="list", func=run_list, watch=None, no_headers=False,
                               filters=argv)
    if verb == "show" and len(argv) == 1 and not argv[0].startswith("-"):
        return SimpleNamespace(command="show", func=run_show, session=argv[0])
    if verb == "attach":
        return _fast_attach(argv)
    return None


def _fast_attach(argv: list[str]):
    """`attach [--read-only] [--maps NAMES] SESSION [run ...]`, each option at most once."""
    from types import SimpleNamespace

    read_only, maps, i = False, None, 0
    while i < len(argv) and argv[i] in ("--read-only", "--maps"):
        if argv[i] == "--read-only" and not read_only:
            read_only, i = True, i + 1
        elif argv[i] == "--maps" and maps is None and i + 1 < len(argv) \
                and not argv[i + 1].startswith("-"):
            maps, i = argv[i + 1], i + 2
        else:
            return None
    rest = argv[i:]
    if rest and not rest[0].startswith("-") and (len(rest) == 1 or rest[1] == "run"):
        return SimpleNamespace(command="attach", func=run_attach, session=rest[0],
                               rest=rest[1:], keep_caps=None, no_new_privs=False,
                               read_only=read_only, maps=maps)
    return None


# ---- list --------------------------------------------------------------------------------


def run_list(args) -> int:
    from bpfsession import discover
    from bpfsession.cli import table

    filters = table.parse_filters(args.filters)
    if args.watch is None:
        _print_list(discover.scan(), args, filters)
        return 0
    return _watch(args.watch, args, filters)


def _watch(interval: float, args, filters: dict[str, str]) -> int:
    """Refresh until interrupted; JSON Lines under -j, a redrawn table on a terminal."""
    import time

    from bpfsession import discover

    as_json = args.json
    clear = not as_json and sys.stdout.isatty()
    try:
        while True:
            sessions = discover.scan()
            if clear:
                sys.stdout.write("\x1b[H\x1b[2J")
                print(f"Every {interval:g}s: bpfsession list    {time.strftime('%c')}\n")
            elif not as_json:
                print(f"# {time.strftime('%Y-%m-%dT%H:%M:%S%z')}")
            _print_list(sessions, args, filters, lines=True)
            sys.stdout.flush()
            time.sleep(min(interval, 1e9))  # `inf` (or 1e308) would overflow sleep()
    except KeyboardInterrupt:
        return 0


def _print_list(sessions, args, filters: dict[str, str], lines: bool = False) -> None:
    from bpfsession import model
    from bpfsession.cli import print_json, table

    sessions = [s for s in sessions if table.matches(s, filters)]
    if args.json:
        # A stream (--watch) prints one compact document a line, even under -p.
        print_json([model.session_json(s) for s in sessions], None if lines else args)
        return
    rows = [("ID", "NAME", "STATE", "PID", "SUPERVISOR", "NETNS", "OBJ", "MAPS", "PROCS",
             "STARTED")]
    for s in sessions:
        rows.append((_p(s.id), _p(s.name), s.state, str(s.pid), str(s.supervisor or "-"),
                     _netns(s),
                     _p(s.obj) or "-", str(len(s.maps)), str(len(s.processes)),
                     _when(s.started)))
    if len(rows) == 1:
        if not lines and not args.quiet:
            sys.stderr.write("no live sessions\n" if not filters else "no session matches\n")
        return
    width = table.terminal_width()
    if not table.fits(rows, width, cuttable=LIST_CUTTABLE):
        # A narrow terminal (80 columns): STARTED without the year and seconds
        # (`11-29 09:08`) before the names are cut to nothing; -j keeps it whole.
        rows = rows[:1] + [r[:-1] + (_short_when(r[-1]),) for r in rows[1:]]
    sys.stdout.write(table.render(rows, width, headers=not args.no_headers,
                                  cuttable=LIST_CUTTABLE))


LIST_CUTTABLE = frozenset({1, 5, 6})  # NAME, NETNS, OBJ: cut on a narrow terminal


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


def _short_when(shown: str) -> str:
    """`2026-11-29 09:08:33` -> `11-29 09:08`; anything else as it is."""
    return shown[5:16] if len(shown) == 19 and shown[4] == "-" else shown


def _table(rows: list[tuple[str, ...]], indent: str = "") -> None:
    from bpfsession.cli import table

    sys.stdout.write(table.render(rows, indent=indent))


# ---- show --------------------------------------------------------------------------------


def run_show(args) -> int:
    from bpfsession import discover, model

    s = discover.find(args.session)
    if args.json:
        from bpfsession import progs
        from bpfsession.cli import print_json

        print_json(progs.annotate(model.session_json(s)), args)
        return 0
    _print_session(s)
    if s.state != "waiting":
        _print_progs(s)
    return 0


def _print_session(s) -> None:
    import shlex

    from bpfsession.model import fd_label

    print(f"session {_p(s.id)}  name {_p(s.name)}  obj {_p(s.obj) or '-'}")
    print(f"\tpid {s.pid}  supervisor {s.supervisor or '-'}  uid {s.uid}  "
          f"netns {_netns(s)}  started {_when(s.started)}")
    print(f"\tcommand {_p(shlex.join(s.command)) if s.command else '-'}")
    if s.state == "waiting":
        print(f"\twaiting for maps on {_p(s.socket) or '?'} since {_when(s.since)}")
    elif s.registered:
        allowed = _allowed(s)
        print(f"\tsocket {_p(s.socket) or '-'}  control {_p(s.control) or '-'}  "
              f"allow_uids {allowed}")
    else:
        print("\tno supervisor: attach takes the maps from the root process (pidfd_getfd)")
    print("maps:")
    rows = [("FD", "ID", "NAME", "TYPE", "KEY", "VALUE", "MAX", "MEMLOCK", "FROZEN", "ENV")]
    for m in s.maps:
        frozen = "?" if m.frozen is None else "yes" if m.frozen else "no"
        rows.append((fd_label(m.fd, m.read_only), str(m.id), _p(m.name) or "-", _p(m.type),
                     str(m.key_size),
                     str(m.value_size), str(m.max_entries), _unknown(m.memlock), frozen,
                     _p(" ".join(m.env)) or "-"))
    _table(rows, "\t")
    print("processes:")
    rows = [("PID", "PPID", "COMM", "MAP FDS", "CMDLINE")]
    for p in s.processes:
        fds = ",".join(fd_label(fd, fd in p.read_only_fds) for fd in sorted(p.map_fds)) or "-"
        rows.append((str(p.pid), str(p.ppid), _p(p.comm), fds, _p(shlex.join(p.cmdline)) or "-"))
    _table(rows, "\t")


def _allowed(s) -> str:
    """--allow-uid UIDs, `:ro` after those handed read-only fds; `read-only` after them
    for a `new --read-only` session."""
    uids = ",".join(f"{u}:ro" if u in s.read_only_uids else str(u) for u in s.allow_uids)
    return (uids or "-") + ("  read-only" if s.read_only else "")


def _print_progs(s) -> None:
    """The programs that use the session's maps and where they are attached."""
    from bpfsession import progs

    table = progs.rows({m.id: m.name for m in s.maps if m.id is not None})
    if table is None:
        print("programs: unknown (finding them needs root: CAP_SYS_ADMIN)")
    elif len(table) == 1:
        print("programs: none uses these maps")
    else:
        print("programs:")
        _table(table, "\t")


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
    names = None
    if args.maps is not None:
        from bpfsession import handout

        names = handout.parse_names(args.maps)
    return attach.attach(args.session, command, keep_caps, args.no_new_privs, args.read_only,
                         names)
