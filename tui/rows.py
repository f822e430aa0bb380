"""Sessions and map entries as table rows: pure formatting, no OS work, no Textual.

The scan worker formats rows off the UI thread; the UI thread only compares them with
what the tables show and updates the cells that changed.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from datetime import datetime

from bpfsession.model import Session, SessionMap, SessionProcess

SESSION_COLUMNS = (("name", "NAME"), ("pid", "PID"), ("netns", "NETNS"), ("obj", "OBJ"),
                   ("maps", "MAPS"), ("age", "AGE"), ("command", "COMMAND"))
MAP_COLUMNS = (("env", "ENV"), ("fd", "FD"), ("id", "ID"), ("name", "NAME"), ("type", "TYPE"),
               ("key", "KEY"), ("value", "VALUE"), ("max", "MAX"), ("memlock", "MEMLOCK"))
PROCESS_COLUMNS = (("pid", "PID"), ("ppid", "PPID"), ("comm", "COMM"), ("fds", "MAP FDS"),
                   ("cmdline", "CMDLINE"))
ENTRY_COLUMNS = (("key", "KEY"), ("value", "VALUE"))

ALL_NETNS = "*"  # the netns filter's "no filter"
HOST_NETNS = ""  # the host's network namespace (Session.netns is None)
COMMAND_WIDTH = 60


@dataclass(frozen=True)
class SessionRow:
    cells: tuple[str, ...]
    netns: str  # HOST_NETNS for the host's
    haystack: str  # what the text filter searches, lower-cased


@dataclass(frozen=True)
class MapRows:
    """The first entries of one map, keyed by the key's text."""

    title: str
    entries: dict[str, tuple[str, str]]
    more: bool  # the map holds more entries than were read
    typed: bool  # formatted through BTF
    notes: list[str] = field(default_factory=list)


def age(started: str | None, now: float) -> str:
    """htop-like coarse age: 42s, 17m, 3h05m, 2d04h; '-' when unknown."""
    if not started:
        return "-"
    try:
        secs = int(now - datetime.fromisoformat(started).timestamp())
    except ValueError:
        return "-"
    secs = max(secs, 0)
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m"
    if secs < 86400:
        return f"{secs // 3600}h{secs % 3600 // 60:02d}m"
    return f"{secs // 86400}d{secs % 86400 // 3600:02d}h"


def command_text(argv: list[str], width: int = COMMAND_WIDTH) -> str:
    text = shlex.join(argv) if argv else "-"
    return text if len(text) <= width else text[: width - 1] + "…"


def session_row(s: Session, now: float) -> SessionRow:
    cells = (s.name, str(s.pid), s.netns or "-", s.obj or "-", str(len(s.maps)),
             age(s.started, now), command_text(s.command))
    words = [s.id, s.name, str(s.pid), s.netns or "host", s.obj or "", shlex.join(s.command)]
    words += [m.name for m in s.maps]
    words += [str(p.pid) for p in s.processes]
    return SessionRow(cells, s.netns or HOST_NETNS, " ".join(words).lower())


def session_rows(sessions: list[Session], now: float) -> dict[str, SessionRow]:
    return {s.id: session_row(s, now) for s in sessions}


def matches(row: SessionRow, text: str, netns: str) -> bool:
    """Every word of `text` appears in the row; `netns` is ALL_NETNS, HOST_NETNS or a name."""
    if netns != ALL_NETNS and row.netns != netns:
        return False
    return all(word in row.haystack for word in text.lower().split())


def netns_choices(rows: dict[str, SessionRow]) -> list[tuple[str, str]]:
    """(label, value) for the netns filter: all, the host, then each netns in use."""
    names = sorted({r.netns for r in rows.values()} - {HOST_NETNS})
    return [("netns: all", ALL_NETNS), ("netns: host", HOST_NETNS)] + \
        [(f"netns: {n}", n) for n in names]


def map_row(m: SessionMap) -> tuple[str, ...]:
    """ENV is BPF_MAP<id>, tc exec's name for it; the Env tab lists BPF_MAP_<NAME> too."""
    return (m.env[0] if m.env else "-", str(m.fd), str(m.id), m.name or "-", m.type,
            str(m.key_size), str(m.value_size), str(m.max_entries), str(m.memlock))


def process_row(p: SessionProcess) -> tuple[str, ...]:
    fds = ",".join(str(fd) for fd in sorted(p.map_fds)) or "-"
    return (str(p.pid), str(p.ppid), p.comm, fds, command_text(p.cmdline))


def env_lines(s: Session) -> str:
    """The session's BPF_* / BPFSESSION_* variables, one `NAME=value` a line, sorted as
    `env | sort` would; the fd numbers are those of the session's root process."""
    return "".join(f"{k}={v}\n" for k, v in sorted(s.env.items()))


def map_title(m: SessionMap, session: Session) -> str:
    env = " ".join(m.env) or "-"
    return (f"map {m.id} {m.name or '-'}  ·  {m.type}  ·  key {m.key_size} B  ·  value "
            f"{m.value_size} B  ·  max {m.max_entries}\n"
            f"session {session.name}  ·  fd {m.fd}  ·  {env}")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
