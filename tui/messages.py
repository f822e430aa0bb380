"""Messages the workers post to the UI thread; widgets and screens only ever read them.

Workers do the OS work (a /proc scan, map reads, a dump, a signal) and report back with one
of these; the handlers on the UI thread only update widgets.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from bpfsession.model import Session
from tui.rows import MapRows, SessionRow


@dataclass
class SessionsScanned(Message):
    """One discovery pass: the sessions, their rows formatted off the UI thread."""

    sessions: list[Session]
    rows: dict[str, SessionRow]  # session id -> row, in discovery order
    scan_seconds: float  # wall clock, scan and formatting
    cpu_seconds: float  # the worker thread's CPU time for the same


@dataclass
class ScanFailed(Message):
    hint: str


@dataclass
class MapRead(Message):
    """The first entries of one map, formatted (typed where the map has BTF)."""

    map_id: int
    rows: MapRows


@dataclass
class MapReadFailed(Message):
    map_id: int
    hint: str


@dataclass
class ActionDone(Message):
    """A worker finished an action (dump, end, save); `title` names it for the notification."""

    title: str
    text: str


@dataclass
class ActionFailed(Message):
    title: str
    hint: str


@dataclass
class AttachChecked(Message):
    """The session's maps could be taken: the attach (or run CMD) may start."""

    session: Session
    command: list[str] | None


@dataclass
class ProgramsRead(Message):
    """The programs that use one session's maps (rows as rows.PROGRAM_COLUMNS), None when
    unknown (not root); `key` is the session id and map ids they were asked for."""

    key: tuple[str, tuple[int, ...]]
    rows: list[tuple[str, ...]] | None


@dataclass
class ProgramsFailed(Message):
    key: tuple[str, tuple[int, ...]]
    hint: str
