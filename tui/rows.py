"""Sessions and map entries as table rows: pure formatting, no OS work, no Textual.

The scan worker formats rows off the UI thread; the UI thread only compares them with
what the tables show and updates the cells that changed.

Every string from outside (session, obj, map and process names, command lines, env
values) goes through `shown()`: control characters escaped (printable), and cut to a
width that keeps a table usable, whatever a sender or a process chose to call itself.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime

from bpfsession.model import Session, SessionMap, SessionProcess, fd_label
from bpfsession.printable import printable

SESSION_COLUMNS = (("name", "NAME"), ("pid", "PID"), ("netns", "NETNS"), ("obj", "OBJ"),
                   ("maps", "MAPS"), ("age", "AGE"), ("state", "STATE"),
                   ("command", "COMMAND"))
MAP_COLUMNS = (("env", "ENV"), ("fd", "FD"), ("id", "ID"), ("name", "NAME"), ("type", "TYPE"),
               ("key", "KEY"), ("value", "VALUE"), ("max", "MAX"), ("memlock", "MEMLOCK"))
PROCESS_COLUMNS = (("pid", "PID"), ("ppid", "PPID"), ("comm", "COMM"), ("fds", "MAP FDS"),
                   ("cmdline", "CMDLINE"))
# The programs that use the session's maps: `show`'s programs table (bpfsession.progs.rows).
PROGRAM_COLUMNS = (("map", "MAP"), ("prog", "PROG ID"), ("name", "NAME"), ("type", "TYPE"),
                   ("tag", "TAG"), ("attached", "ATTACHED"))
ENTRY_COLUMNS = (("key", "KEY"), ("value", "VALUE"), ("rate", "DELTA  RATE"))

ALL_NETNS = "*"  # the netns filter's "no filter"
HOST_NETNS = ""  # the host's network namespace (Session.netns is None)
COMMAND_WIDTH = 60
NAME_WIDTH = 40  # session, obj, netns and map names in a table cell


def shown(text: str, width: int = NAME_WIDTH) -> str:
    """An outside string as a cell: escaped, at most `width` characters (… when cut)."""
    text = printable(text)
    return text if len(text) <= width else text[: width - 1] + "…"


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
    total: int | None = None  # entries in the map, when counted


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
    return shown(shlex.join(argv) if argv else "-", width)


def session_row(s: Session, now: float) -> SessionRow:
    cells = (shown(s.name), str(s.pid), shown(s.netns or "-"), shown(s.obj or "-"),
             str(len(s.maps)), age(s.started, now), s.state, command_text(s.command))
    words = [s.id, s.name, str(s.pid), s.netns or "host", s.obj or "", s.state,
             shlex.join(s.command)]
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
        [(f"netns: {shown(n, 20)}", n) for n in names]


def map_row(m: SessionMap) -> tuple[str, ...]:
    """ENV is BPF_MAP<id>, tc exec's name for it; the Env tab lists BPF_MAP_<NAME> too."""
    return (m.env[0] if m.env else "-", fd_label(m.fd, m.read_only), str(m.id),
            shown(m.name or "-"), m.type,
            str(m.key_size), str(m.value_size), str(m.max_entries), str(m.memlock))


def process_row(p: SessionProcess) -> tuple[str, ...]:
    fds = ",".join(fd_label(fd, fd in p.read_only_fds) for fd in sorted(p.map_fds)) or "-"
    return (str(p.pid), str(p.ppid), shown(p.comm), fds, command_text(p.cmdline))


def env_lines(s: Session) -> str:
    """The session's BPF_* / BPFSESSION_* variables, one `NAME=value` a line, sorted as
    `env | sort` would; the fd numbers are those of the session's root process."""
    return "".join(f"{k}={v}\n" for k, v in sorted(s.env.items()))


def env_text(s: Session) -> str:
    """env_lines() for the screen: each line escaped (the clipboard gets them exact)."""
    return "".join(printable(line) + "\n" for line in env_lines(s).splitlines())


def map_title(m: SessionMap, session: Session) -> str:
    env = " ".join(m.env) or "-"
    return (f"map {m.id} {shown(m.name or '-')}  ·  {m.type}  ·  key {m.key_size} B  ·  "
            f"value {m.value_size} B  ·  max {m.max_entries}\n"
            f"session {shown(session.name)}  ·  fd {m.fd}  ·  {shown(env, COMMAND_WIDTH)}")


def session_title(s: Session) -> str:
    if s.state == "waiting":
        return (f"  id {shown(s.id)}  pid {s.pid}  waiting for maps on "
                f"{shown(s.socket or '?', COMMAND_WIDTH)} since {_clock(s.since)}")
    sup = f"supervisor {s.supervisor}" if s.supervisor else "no supervisor"
    return (f"  id {shown(s.id)}  pid {s.pid}  {sup}  uid {s.uid}  "
            f"netns {shown(s.netns or 'host')}  obj {shown(s.obj or '-')}"
            + (f"  wire {s.wire_layout}-byte entries" if s.wire_layout else ""))


def _clock(stamp: str | None) -> str:
    """An ISO 8601 time as `2026-11-29 09:04:32` (the registry's; '-' when unknown)."""
    return shown(stamp[:19].replace("T", " ")) if stamp else "-"


# ---- sorting -------------------------------------------------------------------------------

_AGE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_AGE_UNITS = (86400, 3600, 60, 1)


def sort_key(cell: str) -> tuple:
    """How a cell sorts: numbers by value, ages (3h05m) by seconds, '-' last, text
    case-insensitively."""
    try:
        return (0, float(cell), "")
    except ValueError:
        pass
    m = _AGE.match(cell)
    if cell and m:
        return (0, float(sum(int(g or 0) * u for g, u in zip(m.groups(), _AGE_UNITS,
                                                             strict=True))), "")
    if cell in ("-", ""):
        return (2, 0.0, "")
    return (1, 0.0, cell.lower())


# ---- counters: the map view's delta and rate ----------------------------------------------

_HEX_BYTES = re.compile(r"^(?:[0-9a-f]{2} ?){1,8}$")


def counter(value: str) -> int | None:
    """A value's number if it reads as a counter: a decimal integer, up to 8 bytes of hex
    (little-endian, as the kernel stores a u64), or per-CPU values of either (summed)."""
    text = value.strip()
    if text.startswith("cpu"):
        parts = re.split(r"\s*cpu\d+: ", " " + text)[1:]
        nums = [counter(p) for p in parts]
        return None if not nums or None in nums else sum(nums)  # type: ignore[arg-type]
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if _HEX_BYTES.match(text):
        return int.from_bytes(bytes.fromhex(text.replace(" ", "")), "little")
    return None


def counters(value: str) -> dict[str, int] | None:
    """{"": n} for one counter (see counter()); {field: n} for a BTF struct whose fields
    are all integers (`{"packets":3,"bytes":180}`); None for anything else."""
    one = counter(value)
    if one is not None:
        return {"": one}
    if not value.startswith("{"):
        return None
    import json

    try:
        doc = json.loads(value)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not doc or not all(
            type(v) is int for v in doc.values()):
        return None
    return doc


def rate_cell(old: str | None, new: str, seconds: float) -> str:
    """The change of each counter of an entry between two reads, and its rate per second:
    `+120  119.8/s`, or per field `packets +4 4.0/s  bytes +240 239.5/s`; '' when the
    entry is new or holds no counters."""
    if old is None or seconds <= 0:
        return ""
    a, b = counters(old), counters(new)
    if a is None or b is None or a.keys() != b.keys():
        return ""
    parts = []
    for name in b:
        delta = b[name] - a[name]
        parts.append(f"{name + ' ' if name else ''}{delta:+d} {delta / seconds:,.1f}/s")
    return "  ".join(parts)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
