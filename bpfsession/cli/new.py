"""`bpfsession new`: receive map fds and spawn a supervised session (see session.py).

Container specs may configure it through the environment instead of flags:
BPFSESSION_IMPORT (UDS; then `imp UDS` may be left out), BPFSESSION_NETNS,
BPFSESSION_TIMEOUT, BPFSESSION_NAME, and BPFSESSION_GRACE (the --init grace period).
Flags win over the environment.
"""

from __future__ import annotations

import os
import sys

from bpfsession.cli import seconds
from bpfsession.cli.command import split_run
from bpfsession.errors import BpfSessionError

_FOREVER = 1e9  # seconds (31 years): a --timeout this long is no timeout


def allow_uid(text: str) -> tuple[int, bool]:
    """`UID` or `UID:ro` -> (uid, read-only); ValueError for anything else (a negative
    number passes, for config_from's one line)."""
    uid, sep, mode = text.partition(":")
    if not uid.lstrip("-").isdigit() or not uid.isascii() or (sep and mode != "ro"):
        raise ValueError(text)
    return int(uid), bool(sep)


allow_uid.__name__ = "UID[:ro]"  # argparse says "invalid UID[:ro] value: 'x'"


def register(sub) -> None:
    import argparse

    from bpfsession.cli.parser import seconds

    p = sub.add_parser("new", help="receive map fds on UDS and run a shell or command with them",
                       usage="bpfsession new [options] (imp|import) UDS [run CMD [ARG...]]",
                       description="Wait for maps on the unix datagram socket UDS (iproute2's "
                       "bpf_scm v1, as `tc exec bpf import UDS`), then run CMD, or $SHELL, "
                       "holding them. Environment: BPFSESSION_IMPORT, BPFSESSION_NETNS, "
                       "BPFSESSION_TIMEOUT, BPFSESSION_NAME, BPFSESSION_GRACE (flags win).")
    p.add_argument("--name", help="session name (default: derived from the object name)")
    p.add_argument("--netns", help="network namespace: a name under /run/netns or a path")
    p.add_argument("--timeout", type=seconds, metavar="SECONDS",
                   help="give up when no sender came within SECONDS (default: wait)")
    p.add_argument("--allow-uid", type=allow_uid, action="append", default=[],
                   metavar="UID[:ro]",
                   help="also accept senders and attaches of this uid (root and you always "
                        "are); with :ro its attaches and session map access are read-only")
    p.add_argument("--read-only", action="store_true",
                   help="hold the maps read-only (BPF_F_RDONLY): the command and every "
                        "attach get fds the kernel refuses writes through")
    p.add_argument("--exec", action="store_true", dest="exec_",
                   help="replace bpfsession with the command, like tc exec (no supervisor)")
    p.add_argument("--init", action="store_true",
                   help="act as an init: reap all orphans, end lingering processes at exit")
    p.add_argument("--keep-caps", metavar="CAP,...",
                   help="drop every capability but these from the command")
    p.add_argument("--no-new-privs", action="store_true",
                   help="set no_new_privs for the command")
    p.add_argument("rest", nargs=argparse.REMAINDER, metavar="(imp|import) UDS [run CMD...]")
    p.set_defaults(func=run)


# The options of `new` for fast_parse: option -> (dest, kind). tests/test_cli_new_fast.py
# checks them against the argparse grammar above, so the two cannot drift apart.
_FAST_OPTIONS = {
    "--name": ("name", str), "--netns": ("netns", str), "--timeout": ("timeout", seconds),
    "--allow-uid": ("allow_uid", allow_uid), "--keep-caps": ("keep_caps", str),
    "--exec": ("exec_", bool), "--init": ("init", bool), "--no-new-privs": ("no_new_privs", bool),
    "--read-only": ("read_only", bool),
}


def fast_parse(verb: str, argv: list[str]):
    """`new`'s arguments without argparse (a start-up cost `new` is measured on), or None.

    It reads only the plain forms (`--opt VALUE`, `--opt=VALUE`, flags, then the
    positional rest) and answers None for anything else (`-h`, abbreviations, `--`, a bad
    number, a missing value), which argparse then parses, errors and all. Where it
    answers, the result equals argparse's Namespace attribute for attribute.
    """
    from types import SimpleNamespace

    args = SimpleNamespace(command="new", func=run, name=None, netns=None, timeout=None,
                           allow_uid=[], exec_=False, init=False, keep_caps=None,
                           no_new_privs=False, read_only=False, rest=[])
    i = 0
    while i < len(argv):
        word = argv[i]
        if not word.startswith("-"):
            args.rest = argv[i:]
            break
        option, eq, value = word.partition("=")
        if option not in _FAST_OPTIONS:
            return None
        dest, kind = _FAST_OPTIONS[option]
        i += 1
        if kind is bool:
            if eq:
                return None
            setattr(args, dest, True)
            continue
        if not eq:
            if i >= len(argv) or argv[i].startswith("-"):
                return None
            value = argv[i]
            i += 1
        try:
            value = kind(value)
        except ValueError:
            return None
        if dest == "allow_uid":
            args.allow_uid.append(value)
        else:
            setattr(args, dest, value)
    return args


def parse_rest(rest: list[str], env_uds: str | None) -> tuple[str, list[str] | None]:
    """`(imp|import) UDS [run CMD [ARG...]]` -> (UDS, CMD or None for the shell)."""
    uds = None
    if rest and rest[0] in ("imp", "import"):
        if len(rest) < 2 or not rest[1]:
            raise BpfSessionError(f"`{rest[0]}` needs the socket path: {rest[0]} UDS")
        uds, rest = rest[1], rest[2:]
    elif env_uds:
        uds = env_uds
    where = "after UDS" if uds and uds != env_uds else "here"
    command = split_run(rest, where, "imp UDS [run CMD [ARG...]]",
                        " (options go before `imp`)")
    if uds is None:
        raise BpfSessionError("no socket given: use `imp UDS` or set BPFSESSION_IMPORT")
    return uds, command


def _seconds(value: str | None, what: str, allow_zero: bool) -> float | None:
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not (seconds > 0 or (allow_zero and seconds == 0)) or seconds != seconds:
        raise BpfSessionError(f"{what} must be a {'non-negative' if allow_zero else 'positive'} "
                              f"number of seconds, not {value!r}")
    return seconds


def config_from(args, environ=os.environ):
    """The session.Config for parsed arguments; flags win over BPFSESSION_* variables."""
    from bpfsession import init
    from bpfsession.session import Config

    uds, command = parse_rest(args.rest, environ.get("BPFSESSION_IMPORT") or None)
    if args.timeout is not None:
        timeout = _seconds(str(args.timeout), "--timeout", allow_zero=False)
    else:
        timeout = _seconds(environ.get("BPFSESSION_TIMEOUT"), "BPFSESSION_TIMEOUT", False)
    if timeout is not None and timeout >= _FOREVER:
        timeout = None  # socket timeouts overflow time_t long before `inf`: just wait
    grace = _seconds(environ.get("BPFSESSION_GRACE"), "BPFSESSION_GRACE", allow_zero=True)
    for uid, ro in args.allow_uid:
        if uid < 0:
            raise BpfSessionError(f"--allow-uid {uid}: a uid is a number >= 0")
        if ro and uid in (0, os.getuid()):
            raise BpfSessionError(f"--allow-uid {uid}:ro: uid {uid} runs or owns every "
                                  "session and is never read-only; use --read-only to hold "
                                  "the maps read-only for everyone")
    keep_caps = None
    if args.keep_caps is not None:
        from bpfsession import caps

        keep_caps = caps.parse(args.keep_caps)
    return Config(
        uds=uds, command=command,
        name=args.name or environ.get("BPFSESSION_NAME") or None,
        netns=args.netns or environ.get("BPFSESSION_NETNS") or None,
        timeout=timeout, allow_uids=tuple(uid for uid, _ in args.allow_uid), exec_=args.exec_,
        as_init=args.init, keep_caps=keep_caps, no_new_privs=args.no_new_privs,
        grace=init.DEFAULT_GRACE if grace is None else grace,
        banner=not getattr(args, "quiet", False) and _stderr_is_terminal(),
        read_only=args.read_only, read_only_uids=_read_only_uids(args.allow_uid),
    )


def refuse_blocked_bpf() -> None:
    """Fail before binding or spawning anything where seccomp denies bpf(2): the maps could be
    received but not described, and the command could hold them but never read them."""
    from bpfsession.kernel import seccomp

    if seccomp.blocks_bpf():
        raise BpfSessionError(
            "bpf(2) is blocked by seccomp (container engines' default profiles allow it only "
            "with CAP_SYS_ADMIN): run the container with images/seccomp-bpf.json "
            "(`--security-opt seccomp=seccomp-bpf.json`; Kubernetes: seccompProfile "
            "Localhost), see docs/container.md")


def _stderr_is_terminal() -> bool:
    try:
        return os.isatty(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        return False  # no stderr, or not a real file


def _read_only_uids(allowed: list[tuple[int, bool]]) -> tuple[int, ...]:
    """The --allow-uid UID:ro uids (given both ways, a uid is read-only: the lesser right)."""
    return tuple(sorted({uid for uid, ro in allowed if ro}))


def run(args) -> int:
    from bpfsession import session

    cfg = config_from(args)
    refuse_blocked_bpf()
    status = session.run(cfg)
    # The session is over and all it made is gone: skip the interpreter's teardown of
    # ~150 modules, ~6 ms of every `new ... run CMD` (docs/performance.md).
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            pass
    os._exit(status)
