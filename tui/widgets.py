"""Widgets: tables that update in place, the detail pane. They never touch fds or /proc."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from bpfsession.model import Session, SessionMap
from tui import rows

# Past this many removals a clear-and-refill is cheaper than DataTable.remove_row, which
# renumbers every row after the one removed (O(rows) each).
REBUILD_AT = 64


class KeyedTable(DataTable):
    """A DataTable whose rows are keyed (a session id, a map id, a map key) and synced.

    `sync(rows)` shows exactly `rows`, in their order, by updating the cells that changed,
    removing rows that went and appending rows that came; the cursor stays on the row it
    was on, at the same place on screen.

    Cells are plain text: a value from a sender or a process is never parsed as Rich markup.
    Column widths are set here, from what the table holds, in the same step as the rows
    change. DataTable measures new and updated cells only later, when idle, and its cell
    render cache is keyed by an update counter that its idle re-measure does not bump: a
    frame drawn in between kept values cut to the old width until the next change.
    Setting widths together with add/remove/update (which all bump the counter) leaves
    no such frame.

    Any column sorts the rows (`s` cycles through the columns, `S` reverses, a click on a
    header sorts by it, a second click reverses): numbers by value, see rows.sort_key.
    """

    BINDINGS = [
        Binding("s", "sort_next", "Sort", show=False),
        Binding("S", "sort_reverse", "Reverse sort", show=False),
    ]

    def __init__(self, columns: tuple[tuple[str, str], ...], **kw):
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self._columns = columns
        self._shown: dict[str, tuple[str, ...]] = {}
        self._given: dict[str, tuple[str, ...]] = {}
        self.sort_column: int | None = None  # None: the order given to sync()
        self.sort_reverse = False

    def on_mount(self) -> None:
        for key, label in self._columns:
            self.add_column(label, key=key)

    @property
    def shown(self) -> dict[str, tuple[str, ...]]:
        return self._shown

    @property
    def selected_key(self) -> str | None:
        if not self._shown or self.cursor_row < 0 or self.cursor_row >= self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def sync(self, new: dict[str, tuple[str, ...]]) -> None:
        self._given = new
        if self.sort_column is not None:
            col = self.sort_column
            new = dict(sorted(new.items(), key=lambda kv: rows.sort_key(kv[1][col]),
                              reverse=self.sort_reverse))
        old = self._shown
        if new == old and list(new) == list(old):
            return
        selected = self.selected_key
        screen_offset = self.cursor_row - round(self.scroll_y)
        kept = [k for k in old if k in new]
        added = [k for k in new if k not in old]
        if list(new) == kept + added and len(old) - len(kept) < REBUILD_AT:
            for key in old:
                if key not in new:
                    self.remove_row(key)
            for key in kept:
                for (col, _), a, b in zip(self._columns, old[key], new[key], strict=True):
                    if a != b:
                        self.update_cell(key, col, _cell(b))
            for key in added:
                self.add_row(*map(_cell, new[key]), key=key)
        else:
            self.clear()
            for key, cells in new.items():
                self.add_row(*map(_cell, cells), key=key)
        self._shown = dict(new)
        self._fit_columns()
        if selected in new:
            index = self.get_row_index(selected)
            if index != self.cursor_row:
                self.move_cursor(row=index, scroll=False)
                self.call_after_refresh(self._keep_offset, index, screen_offset)

    def sort_by(self, column: int | None, reverse: bool = False) -> None:
        self.sort_column, self.sort_reverse = column, reverse
        for i, (key, label) in enumerate(self._columns):
            mark = (" ▼" if reverse else " ▲") if i == column else ""
            self.columns[key].label = Text(label + mark)
        self.sync(self._given)
        self._fit_columns()  # the labels changed

    def action_sort_next(self) -> None:
        column = 0 if self.sort_column is None else self.sort_column + 1
        self.sort_by(column if column < len(self._columns) else None)

    def action_sort_reverse(self) -> None:
        self.sort_by(self.sort_column or 0, not self.sort_reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        column = event.column_index
        self.sort_by(column, self.sort_column == column and not self.sort_reverse)

    def _fit_columns(self) -> None:
        """Each column exactly as wide as its widest cell or label (it shrinks, too)."""
        for i, (key, _) in enumerate(self._columns):
            width = max((cell_len(cells[i]) for cells in self._shown.values()),
                        default=0)
            self.columns[key].content_width = max(width, self.columns[key].label.cell_len)
        self._require_update_dimensions = True  # the virtual (scrollable) width, when idle
        self.refresh(layout=True)

    def _keep_offset(self, index: int, screen_offset: int) -> None:
        self.scroll_to(y=max(0, index - screen_offset), animate=False)


def _cell(value: str) -> Text:
    return Text(value, no_wrap=True, end="")


class SessionsTable(KeyedTable):
    def __init__(self, **kw):
        super().__init__(rows.SESSION_COLUMNS, **kw)


class DetailPane(Vertical):
    """The selected session: its maps, the processes holding them, its environment."""

    def compose(self) -> ComposeResult:
        yield Static("no session selected", id="detail-title")
        with TabbedContent(id="detail-tabs"):
            with TabPane("1 Maps", id="tab-maps"):
                yield KeyedTable(rows.MAP_COLUMNS, id="maps")
            with TabPane("2 Processes", id="tab-procs"):
                yield KeyedTable(rows.PROCESS_COLUMNS, id="procs")
            with TabPane("3 Env", id="tab-env"):
                yield Static("", id="env")
            with TabPane("4 Programs", id="tab-programs"):
                yield Static("", id="programs-note")
                yield KeyedTable(rows.PROGRAM_COLUMNS, id="programs")

    def show(self, s: Session | None) -> None:
        title = self.query_one("#detail-title", Static)
        maps = self.query_one("#maps", KeyedTable)
        procs = self.query_one("#procs", KeyedTable)
        env = self.query_one("#env", Static)
        if s is None:
            title.update("no session selected")
            maps.sync({})
            procs.sync({})
            env.update("")
            return
        title.update(Text.assemble((rows.shown(s.name), "bold"), rows.session_title(s),
                                   no_wrap=True, overflow="ellipsis"))
        maps.sync({str(m.fd): rows.map_row(m) for m in s.maps})
        procs.sync({str(p.pid): rows.process_row(p) for p in s.processes})
        env.update(Text(rows.env_text(s).rstrip("\n") or "(no BPF_* variables)"))

    def show_programs(self, table: list[tuple[str, ...]] | None, note: str = "") -> None:
        """The programs that use the session's maps (a worker found them), or one line
        instead: `unknown (needs root)` when `table` is None, else `note` if given."""
        if table is None and not note:
            note = "unknown (needs root)"
        elif table is not None and not table and not note:
            note = "no program uses these maps"
        self.query_one("#programs-note", Static).update(Text(note))
        self.query_one("#programs-note", Static).display = bool(note)
        self.query_one("#programs", KeyedTable).sync(
            {str(i): cells for i, cells in enumerate(table or ())})

    def selected_map(self, s: Session | None) -> SessionMap | None:
        if s is None or not s.maps:
            return None
        key = self.query_one("#maps", KeyedTable).selected_key
        for m in s.maps:
            if str(m.fd) == key:
                return m
        return s.maps[0]
