"""Where the TUI's data comes from: the live machine, or a fixed set (tests, snapshots).

Everything here runs in worker threads, never on the UI thread: a /proc scan, map reads,
a map dump, a signal. Expected failures are BpfSessionError with a hint; the workers turn
them into notifications.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Protocol

from bpfsession.errors import BpfSessionError
from bpfsession.model import Session, SessionMap
from tui.rows import MapRows, map_title

ENTRY_LIMIT = 100  # entries the map view shows


class Source(Protocol):
    """What the app asks of its data. Workers call these, except alive(): the UI thread
    asks it right before handing the terminal over, so it must stay a cheap check."""

    def scan(self) -> list[Session]: ...
    def now(self) -> float: ...
    def read_map(self, session: Session, m: SessionMap, limit: int = ENTRY_LIMIT) \
        -> MapRows: ...
    def dump_map(self, m: SessionMap, path: str) -> str: ...
    def end(self, s: Session) -> str: ...
    def alive(self, s: Session) -> bool: ...
    def check_attach(self, s: Session) -> None: ...
    def programs(self, s: Session) -> list[tuple[str, ...]] | None: ...


class LiveSource:
    """The machine as it is: discovery from /proc, maps through bpf(2)."""

    def __init__(self, proc: str = "/proc", run_dir: str | None = None):
        self.proc = proc
        self.run_dir = run_dir

    def scan(self) -> list[Session]:
        from bpfsession import discover

        return discover.scan(self.proc, self.run_dir)

    def now(self) -> float:
        return time.time()

    def read_map(self, session: Session, m: SessionMap, limit: int = ENTRY_LIMIT) -> MapRows:
        from tui import mapread

        return mapread.first_entries(m.id, limit, map_title(m, session))

    def dump_map(self, m: SessionMap, path: str) -> str:
        from tui import mapread

        count = mapread.dump_json(m.id, path)
        return f"{count} entries of map {m.id} ({m.name or '-'}) written to {path}"

    def end(self, s: Session) -> str:
        """SIGTERM to the supervisor (it ends the command and cleans up), else the root.

        The session is looked up again first, so a pid reused since the last scan is never
        signalled: the target must still be this session's supervisor or root.
        """
        from bpfsession import discover

        try:
            now = discover.find(s.id, self.scan())
        except BpfSessionError:
            raise BpfSessionError(f"session {s.name} has already ended") from None
        target = now.supervisor or now.pid
        who = "supervisor" if now.supervisor else "root process"
        try:
            os.kill(target, signal.SIGTERM)
        except ProcessLookupError:
            raise BpfSessionError(f"session {s.name} has already ended") from None
        except PermissionError:
            raise BpfSessionError(f"not allowed to signal pid {target} (uid {now.uid}): run "
                                  "bpfsession tui as root or as that user") from None
        return f"SIGTERM sent to the {who}, pid {target}"

    def check_attach(self, s: Session) -> None:
        """Take the session's maps the way `bpfsession attach` will, and let them go: a
        refusal (permission, a session that ended) is a BpfSessionError before the
        terminal is handed over, not an error flashed in a suspended screen."""
        from bpfsession import attach

        _, pairs = attach.fetch_maps(s)
        for _, fd in pairs:
            os.close(fd)

    def programs(self, s: Session) -> list[tuple[str, ...]] | None:
        """The programs that use the session's maps, one row per map and program (MAP,
        PROG ID, NAME, TYPE, TAG, ATTACHED, escaped), as `show` prints them; None when
        this process may not walk programs (not root). Walks every network namespace:
        5-25 ms, a worker's job."""
        from bpfsession import progs

        table = progs.rows({m.id: m.name for m in s.maps})
        return None if table is None else table[1:]

    def alive(self, s: Session) -> bool:
        try:
            os.kill(s.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@dataclass
class FixedSource:
    """A fixed list of sessions and map entries: deterministic screens for snapshots."""

    sessions: list[Session]
    entries: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    at: float = 0.0  # the wall clock the ages are computed against
    typed: bool = True
    refuse_attach: str | None = None  # the hint of a refused attach, if any
    # session id -> its programs' rows (PROG_COLUMNS), None for "unknown"; absent: none
    progs: dict[str, list[tuple[str, ...]] | None] = field(default_factory=dict)

    def scan(self) -> list[Session]:
        return list(self.sessions)

    def now(self) -> float:
        return self.at

    def read_map(self, session: Session, m: SessionMap, limit: int = ENTRY_LIMIT) -> MapRows:
        if m.id not in self.entries:
            raise BpfSessionError(f"map {m.id} is gone (did its session end?)")
        shown = self.entries[m.id][:limit]
        return MapRows(map_title(m, session), {k: (k, v) for k, v in shown},
                       more=len(self.entries[m.id]) > limit, typed=self.typed,
                       total=len(self.entries[m.id]))

    def dump_map(self, m: SessionMap, path: str) -> str:
        with open(path, "w") as f:
            json.dump([{"key": k, "value": v} for k, v in self.entries.get(m.id, [])], f)
        return f"map {m.id} written to {path}"

    def end(self, s: Session) -> str:
        raise BpfSessionError(f"session {s.name} is fixed test data: nothing to end")

    def alive(self, s: Session) -> bool:
        return any(x.id == s.id for x in self.sessions)

    def programs(self, s: Session) -> list[tuple[str, ...]] | None:
        return self.progs.get(s.id, [])

    def check_attach(self, s: Session) -> None:
        if self.refuse_attach:
            raise BpfSessionError(self.refuse_attach)


def save_text(text: str, path: str) -> str:
    """Write `text` to a new file (never over an existing one)."""
    try:
        with open(path, "x") as f:
            f.write(text)
    except FileExistsError:
        raise BpfSessionError(f"{path} exists: give another file name") from None
    except OSError as err:
        raise BpfSessionError(f"cannot write {path}: {err.strerror}") from None
    return f"{text.count(chr(10))} lines written to {path}"
