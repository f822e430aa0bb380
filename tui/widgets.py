"""Widgets: tables that update in place, the detail pane. They never touch fds or /proc."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
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
    """

    def __init__(self, columns: tuple[tuple[str, str], ...], **kw):
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self._columns = columns
        self._shown: dict[str, tuple[str, ...]] = {}

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
        old = self._shown
        if new == old:
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

    def _fit_columns(self) -> None:
        """Each column exactly as wide as its widest cell or label (it shrinks, too)."""
        for i, (key, label) in enumerate(self._columns):
            width = max((cell_len(cells[i]) for cells in self._shown.values()),
                        default=0)
            self.columns[key].content_width = max(width, cell_len(label))
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
            with TabPane("Maps", id="tab-maps"):
                yield KeyedTable(rows.MAP_COLUMNS, id="maps")
            with TabPane("Processes", id="tab-procs"):
                yield KeyedTable(rows.PROCESS_COLUMNS, id="procs")
            with TabPane("Env", id="tab-env"):
                yield Static("", id="env")

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
        sup = f"supervisor {s.supervisor}" if s.supervisor else "no supervisor"
        title.update(Text.assemble(
            (s.name, "bold"), f"  id {s.id}  pid {s.pid}  {sup}  uid {s.uid}  "
            f"netns {s.netns or 'host'}  obj {s.obj or '-'}"))
        maps.sync({str(m.fd): rows.map_row(m) for m in s.maps})
        procs.sync({str(p.pid): rows.process_row(p) for p in s.processes})
        env.update(Text(rows.env_lines(s).rstrip("\n") or "(no BPF_* variables)"))

    def selected_map(self, s: Session | None) -> SessionMap | None:
        if s is None or not s.maps:
            return None
        key = self.query_one("#maps", KeyedTable).selected_key
        for m in s.maps:
            if str(m.fd) == key:
                return m
        return s.maps[0]
