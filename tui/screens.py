"""Screens: the sessions browser, the map view, the key help, two small modals (prompt,
confirm).

Keys mean the same on every screen: `q` quits, Esc goes back (or clears the filter), `?`
and F1 list every key of the screen they are pressed on.

Each screen starts its own worker for the OS work it shows (a /proc scan, a map read);
the workers only post messages (tui/messages.py) and the handlers here update widgets.
"""

from __future__ import annotations

import os
import shlex
import threading
import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Select, Static
from textual.worker import get_current_worker

from bpfsession.errors import BpfSessionError
from bpfsession.model import Session, SessionMap
from bpfsession.printable import printable
from tui import rows
from tui.messages import (
    MapRead,
    MapReadFailed,
    ProgramsFailed,
    ProgramsRead,
    ScanFailed,
    SessionsScanned,
)
from tui.widgets import DetailPane, KeyedTable, SessionsTable


class Ticker:
    """The pace of a refresh loop: wait `interval`, or less when asked to hurry."""

    def __init__(self, interval: float | None):
        self.interval = interval
        self._wake = threading.Event()

    def wait(self) -> None:
        self._wake.wait(self.interval)
        self._wake.clear()

    def hurry(self) -> None:
        self._wake.set()


class MainScreen(Screen):
    """Every live session, filterable; the selected one's maps, processes and env below."""

    # Quit and Help first: the footer cuts from the right on a narrow (80 column) terminal.
    BINDINGS = [
        Binding("q", "app.quit", "Quit"),
        Binding("question_mark,f1", "app.help", "Help", key_display="?"),
        Binding("a", "attach", "Attach"),
        Binding("r", "run", "Run cmd"),
        Binding("m", "open_map", "Map"),
        Binding("d", "dump", "Dump map"),
        Binding("c", "copy_env", "Copy env"),
        Binding("k", "end", "End"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("t", "app.trace", "Trace", show=False),
        Binding("1", "tab('tab-maps')", "Maps tab", show=False),
        Binding("2", "tab('tab-procs')", "Processes tab", show=False),
        Binding("3", "tab('tab-env')", "Env tab", show=False),
        Binding("4", "tab('tab-programs')", "Programs tab", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sessions: dict[str, Session] = {}
        self.rows: dict[str, rows.SessionRow] = {}
        self.ticker = Ticker(self.app.interval)
        self._shown_session: Session | None = None
        self._last_error: str | None = None
        self._choices: list[tuple[str, str]] = []
        self._programs_key: tuple[str, tuple[int, ...]] | None = None  # what is shown/asked

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="filter-bar"):
            yield Input(placeholder="/ filter: name, id, pid, obj, command, map name",
                        id="filter", compact=True)
            yield Select(rows.netns_choices({}), id="netns", allow_blank=False,
                         value=rows.ALL_NETNS, compact=True)
        yield SessionsTable(id="sessions")
        yield DetailPane(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "scanning…"
        self.query_one(SessionsTable).focus()
        self.scan_loop()

    def on_unmount(self) -> None:
        self.ticker.hurry()  # let the loop see it was cancelled now, not a second later

    # ---- the scan worker -----------------------------------------------------------------

    @work(thread=True, exclusive=True, group="scan")
    def scan_loop(self) -> None:
        worker = get_current_worker()
        source = self.app.source
        while not worker.is_cancelled:
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                sessions = source.scan()
            except BpfSessionError as err:
                self.post_message(ScanFailed(err.hint))
            else:
                formatted = rows.session_rows(sessions, source.now())
                self.post_message(SessionsScanned(sessions, formatted,
                                                  time.perf_counter() - start,
                                                  time.thread_time() - cpu))
            if self.ticker.interval is None:
                return
            self.ticker.wait()

    def on_sessions_scanned(self, msg: SessionsScanned) -> None:
        start = time.perf_counter()
        self.sessions = {s.id: s for s in msg.sessions}
        self.rows = msg.rows
        self._last_error = None
        self._update_netns_choices()
        self._apply_filter()
        self.app.stats.record(msg.scan_seconds, msg.cpu_seconds, time.perf_counter() - start,
                              len(msg.rows))

    def on_scan_failed(self, msg: ScanFailed) -> None:
        if msg.hint != self._last_error:  # once, not every second
            self.app.notify(msg.hint, title="Scan failed", severity="error")
        self._last_error = msg.hint

    def refresh_now(self) -> None:
        self.ticker.hurry()

    # ---- filtering -------------------------------------------------------------------------

    def _update_netns_choices(self) -> None:
        select = self.query_one("#netns", Select)
        choices = rows.netns_choices(self.rows)
        if choices == self._choices:
            return
        self._choices = choices
        current = select.value
        with self.prevent(Select.Changed):
            select.set_options(choices)
            values = [v for _, v in choices]
            select.value = current if current in values else rows.ALL_NETNS

    def _apply_filter(self) -> None:
        text = self.query_one("#filter", Input).value
        netns = self.query_one("#netns", Select).value
        visible = {k: r.cells for k, r in self.rows.items() if rows.matches(r, text, netns)}
        table = self.query_one(SessionsTable)
        table.sync(visible)
        total = len(self.rows)
        self.sub_title = (rows.plural(total, "session") if len(visible) == total
                          else f"{len(visible)} of {rows.plural(total, 'session')}")
        self._show_detail()

    @on(Input.Changed, "#filter")
    @on(Select.Changed, "#netns")
    def _filter_changed(self) -> None:
        self._apply_filter()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one(SessionsTable).focus()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.query_one(SessionsTable).focus()

    # ---- selection -------------------------------------------------------------------------

    @property
    def selected(self) -> Session | None:
        key = self.query_one(SessionsTable).selected_key
        return self.sessions.get(key) if key else None

    @property
    def selected_map(self) -> SessionMap | None:
        return self.query_one(DetailPane).selected_map(self.selected)

    @on(DataTable.RowHighlighted, "#sessions")
    def _session_highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        s = self.selected
        if s == self._shown_session:  # dataclass equality: nothing to redraw
            return
        self._shown_session = s
        self.query_one(DetailPane).show(s)
        self._ask_programs(s)

    # ---- the programs that use the selected session's maps ------------------------------------

    def _ask_programs(self, s: Session | None) -> None:
        """Look the programs up again when another session is selected or the session's
        map ids changed; not on every scan (a look-up walks every network namespace)."""
        key = None if s is None else (s.id, tuple(sorted({m.id for m in s.maps})))
        if key == self._programs_key:
            return
        pane = self.query_one(DetailPane)
        if s is None or self._programs_key is None or key[0] != self._programs_key[0]:
            # Never the last session's programs under this one's title.
            pane.show_programs([], "looking up…" if s is not None else "no session selected")
        self._programs_key = key
        if s is not None:
            self.programs_worker(s, key)

    @work(thread=True, exclusive=True, group="programs")
    def programs_worker(self, s: Session, key: tuple[str, tuple[int, ...]]) -> None:
        try:
            table = self.app.source.programs(s)
        except BpfSessionError as err:
            self.post_message(ProgramsFailed(key, err.hint))
        else:
            self.post_message(ProgramsRead(key, table))

    def on_programs_read(self, msg: ProgramsRead) -> None:
        if msg.key == self._programs_key:  # else an answer for a session no longer shown
            self.query_one(DetailPane).show_programs(msg.rows)

    def on_programs_failed(self, msg: ProgramsFailed) -> None:
        if msg.key == self._programs_key:
            self.query_one(DetailPane).show_programs([], msg.hint)

    @on(DataTable.RowSelected, "#sessions")
    def _session_chosen(self) -> None:
        self.query_one("#maps", KeyedTable).focus()

    @on(DataTable.RowSelected, "#maps")
    def _map_chosen(self) -> None:
        self.action_open_map()

    # ---- actions ---------------------------------------------------------------------------

    def _need_session(self) -> Session | None:
        s = self.selected
        if s is None:
            self.app.notify("select a session first", title="No session", severity="warning")
        return s

    def _need_map(self) -> tuple[Session, SessionMap] | None:
        s = self._need_session()
        if s is None:
            return None
        m = self.selected_map
        if m is None:
            self.app.notify(f"session {s.name} holds no maps", title="No map",
                            severity="warning")
            return None
        return s, m

    def action_tab(self, pane: str) -> None:
        from textual.widgets import TabbedContent

        self.query_one("#detail-tabs", TabbedContent).active = pane

    def _attach_session(self, s: Session, command: list[str] | None) -> None:
        """Attach (or run CMD) in s; a session of another user asks first."""

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.app.attach(s, command)

        if s.uid == os.getuid():
            confirmed(True)
            return
        what = "Attach to" if command is None else f"Run {command[0]} in"
        self.app.push_screen(ConfirmScreen(
            f"{what} session {rows.shown(s.name)} of uid {s.uid}?",
            "Its maps are another user's: what you run can read and change them.",
            "Attach"), confirmed)

    def action_attach(self) -> None:
        if (s := self._need_session()) is not None:
            self._attach_session(s, None)

    def action_run(self) -> None:
        s = self._need_session()
        if s is None:
            return

        def chosen(text: str | None) -> None:
            if not text:
                return
            try:
                argv = shlex.split(text)
            except ValueError as err:
                self.app.notify(f"{err}: fix the quoting", title="Run", severity="error")
                return
            if argv:
                self._attach_session(s, argv)

        self.app.push_screen(PromptScreen(f"Run a command attached to {s.name} (its maps as "
                                          "BPF_MAP* fds):", "", "CMD [ARG...]"), chosen)

    def action_open_map(self) -> None:
        if (sm := self._need_map()) is not None:
            self.app.push_screen(MapScreen(*sm))

    def action_dump(self) -> None:
        if (sm := self._need_map()) is not None:
            self.app.ask_dump(*sm)

    def action_copy_env(self) -> None:
        if (s := self._need_session()) is not None:
            self.app.copy_env(s)

    def action_save_env(self) -> None:
        if (s := self._need_session()) is not None:
            self.app.ask_save_env(s)

    def action_end(self) -> None:
        s = self._need_session()
        if s is None:
            return
        target = (f"SIGTERM to its supervisor (pid {s.supervisor})" if s.supervisor
                  else f"SIGTERM to its root process (pid {s.pid})")

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.app.end_session(s)

        self.app.push_screen(ConfirmScreen(f"End session {rows.shown(s.name)}?", target,
                                           "End session"),
                             confirmed)


class MapScreen(Screen):
    """The first entries of one map, refreshed live: how many the map holds, and for
    counters the change since the last read and its rate per second (as bpftop shows)."""

    BINDINGS = [
        Binding("q", "app.quit", "Quit"),
        Binding("question_mark,f1", "app.help", "Help", key_display="?"),
        Binding("escape", "app.pop_screen", "Back"),
        Binding("d", "dump", "Dump to file"),
        Binding("space", "pause", "Pause"),
    ]

    def __init__(self, session: Session, m: SessionMap) -> None:
        super().__init__()
        self.session = session
        self.map = m
        self.paused = False
        self.ticker = Ticker(self.app.interval)
        self._last_error: str | None = None
        self._status = "reading…"
        self._previous: dict[str, str] = {}  # key -> value at the last read
        self._previous_at = 0.0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text(rows.map_title(self.map, self.session)), id="map-title")
        yield KeyedTable(rows.ENTRY_COLUMNS, id="entries")
        yield Static("reading…", id="map-status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"map {self.map.id} {rows.shown(self.map.name)}"
        self.query_one("#entries", KeyedTable).focus()
        self.read_loop()

    def on_unmount(self) -> None:
        self.ticker.hurry()

    @work(thread=True, exclusive=True, group="map")
    def read_loop(self) -> None:
        worker = get_current_worker()
        source = self.app.source
        while not worker.is_cancelled:
            if not self.paused:
                try:
                    got = source.read_map(self.session, self.map)
                except BpfSessionError as err:
                    self.post_message(MapReadFailed(self.map.id, err.hint))
                else:
                    self.post_message(MapRead(self.map.id, got))
            if self.ticker.interval is None:
                return
            self.ticker.wait()

    def on_map_read(self, msg: MapRead) -> None:
        self._last_error = None
        got = msg.rows
        now = time.monotonic()
        elapsed = now - self._previous_at
        self.query_one("#entries", KeyedTable).sync({
            key: (rows.shown(k, 200), rows.shown(v, 200),
                  rows.rate_cell(self._previous.get(key), v, elapsed))
            for key, (k, v) in got.entries.items()})
        self._previous = {key: v for key, (_, v) in got.entries.items()}
        self._previous_at = now
        n = len(got.entries)
        count = f"{got.total} entries" if got.total is not None else "many entries"
        what = f"first {n} of {count}" if got.more else f"{n} entries"
        how = "BTF-typed" if got.typed else "hex (no BTF)"
        notes = "".join(f"  ·  {note}" for note in got.notes)
        self._status = f"{what}  ·  {how}{notes}"
        self._show_status()

    def _show_status(self) -> None:
        paused = "  ·  paused (space resumes)" if self.paused else ""
        self.query_one("#map-status", Static).update(Text(self._status + paused))

    def on_map_read_failed(self, msg: MapReadFailed) -> None:
        if msg.hint != self._last_error:
            self.app.notify(msg.hint, title=f"Map {msg.map_id}", severity="error")
        self._last_error = msg.hint
        self._status = msg.hint
        self._show_status()

    def action_dump(self) -> None:
        self.app.ask_dump(self.session, self.map)

    def action_pause(self) -> None:
        self.paused = not self.paused
        self._show_status()
        if not self.paused:
            self.ticker.hurry()


class PromptScreen(ModalScreen[str | None]):
    """One line of input; Enter answers it, Escape cancels (None)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.question = question
        self.value = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(printable(self.question)))
            yield Input(self.value, placeholder=self.placeholder, id="answer")
            yield Label("Enter: OK   Escape: cancel", classes="hint")

    @on(Input.Submitted, "#answer")
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no to something that cannot be undone; the default is no."""

    BINDINGS = [Binding("escape,n", "answer(False)", "Cancel"),
                Binding("y", "answer(True)", "Yes"),
                Binding("q", "app.quit", "Quit")]

    def __init__(self, question: str, detail: str, yes: str) -> None:
        super().__init__()
        self.question = question
        self.detail = detail
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(printable(self.question)), classes="question")
            yield Label(Text(printable(self.detail)))
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button("Cancel (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class HelpScreen(ModalScreen[None]):
    """Every key of the screen it was opened on (and the app's); Esc (or ?, F1) closes."""

    BINDINGS = [Binding("escape,question_mark,f1", "dismiss", "Close"),
                Binding("q", "app.quit", "Quit")]

    def __init__(self, title: str, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.keys = keys

    def compose(self) -> ComposeResult:
        width = max(len(k) for k, _ in self.keys)
        lines = Text()
        for key, what in self.keys:
            lines.append(key.rjust(width), "bold")
            lines.append(f"  {what}\n")
        with Vertical(id="dialog", classes="help") as dialog:
            # On the border, so that no screen height can push it out of sight.
            dialog.border_subtitle = "Esc: close"
            yield Label(Text(self.title_text), classes="question")
            with VerticalScroll(id="help-scroll"):
                yield Static(lines, id="help-keys")
