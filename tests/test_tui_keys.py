"""The TUI's keys and views for a newcomer, through Pilot with fixed data (FixedSource):
help (`?`, F1, Esc), number keys for the detail tabs, `q` everywhere, the footer at 80x24,
sorting by any column, the map view's count, delta/rate and pause, attaching to another
user's session, an attach that cannot start."""

from __future__ import annotations

import asyncio
import functools
import time

from textual.widgets import TabbedContent

from bpfsession.model import Session
from tests.test_tui_snapshots import AT, ENTRIES, sessions
from tests.tui_screen import screen_lines, screen_text
from tui.app import BpfSessionApp
from tui.screens import ConfirmScreen, HelpScreen, MainScreen, MapScreen
from tui.source import FixedSource
from tui.widgets import KeyedTable


def aio(fn):
    @functools.wraps(fn)
    def test(*args, **kw):
        return asyncio.run(fn(*args, **kw))

    return test


async def until(pilot, predicate, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def make_app(data=None, entries=None, interval=None) -> BpfSessionApp:
    return BpfSessionApp(FixedSource(data or sessions(), entries or dict(ENTRIES), at=AT),
                         interval=interval)


async def scanned(pilot, count: int = 4) -> KeyedTable:
    table = pilot.app.main.query_one("#sessions", KeyedTable)
    await until(pilot, lambda: len(table.shown) == count, "the scan's rows")
    return table


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


# ---- help -----------------------------------------------------------------------------------


@aio
async def test_question_mark_lists_every_key_and_esc_closes():
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await scanned(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        await pilot.pause()
        text = screen_text(app)
        for binding in MainScreen.BINDINGS + KeyedTable.BINDINGS:
            assert binding.description in text, binding
        for key in ("q", "? / F1", "Esc", "/", "1", "2", "3", "4", "s", "S", "Enter"):
            assert f" {key}  " in text, key
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "help closed")


@aio
async def test_f1_opens_help_on_the_map_view_too():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await scanned(pilot)
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MapScreen), "the map view")
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        await pilot.pause()
        text = screen_text(app)
        assert "Keys of the map view" in text
        for binding in MapScreen.BINDINGS:
            assert binding.description in text
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MapScreen), "back on the map view")


# ---- tabs, footer, q -------------------------------------------------------------------------


@aio
async def test_number_keys_switch_the_detail_tabs():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await scanned(pilot)
        tabs = app.main.query_one("#detail-tabs", TabbedContent)
        for key, pane in (("2", "tab-procs"), ("3", "tab-env"), ("4", "tab-programs"),
                          ("1", "tab-maps")):
            await pilot.press(key)
            await until(pilot, lambda pane=pane: tabs.active == pane, f"tab {pane}")


@aio
async def test_programs_tab_rows_unknown_and_none():
    """Key 4: the programs of the selected session's maps (looked up by a worker), one
    line `unknown (needs root)` when they cannot be known, another when there are none;
    an outside name is plain text."""
    row = ("proto_stats", "7", "bad[x]\\x1b", "sched_cls", "0123456789abcdef",
           "tc veth0 ingress netns blue pref 1")
    data = FixedSource(sessions(), dict(ENTRIES), at=AT,
                       progs={"3f9a0c21": [row], "tc-2230": None})
    app = BpfSessionApp(data, interval=None)
    async with app.run_test(size=(120, 30)) as pilot:
        await scanned(pilot)
        await pilot.press("4")
        table = app.main.query_one("#programs", KeyedTable)
        note = app.main.query_one("#programs-note")
        await until(pilot, lambda: list(table.shown.values()) == [row], "the program row")
        await pilot.pause()
        assert not note.display and "bad[x]" in screen_text(app)
        await pilot.press("down")  # tc-2230: unknown
        await until(pilot, lambda: str(note.render()) == "unknown (needs root)" and
                    note.display and not table.shown, "unknown")
        await pilot.press("down")  # percpu-lab: no program
        await until(pilot, lambda: str(note.render()) == "no program uses these maps",
                    "no program")


@aio
async def test_programs_are_looked_up_per_session_not_per_scan():
    """The look-up walks every network namespace: once per selected session (again only
    when its map ids change), never on each refresh."""
    asked: list[str] = []

    class Counting(FixedSource):
        def programs(self, s):
            asked.append(s.id)
            return super().programs(s)

    data = Counting(sessions(), dict(ENTRIES), at=AT)
    app = BpfSessionApp(data, interval=0.02)
    async with app.run_test(size=(120, 30)) as pilot:
        await scanned(pilot)
        scans = app.stats.scans
        await until(pilot, lambda: app.stats.scans >= scans + 10, "ten more scans")
        assert asked == ["3f9a0c21"]
        await pilot.press("down")
        await until(pilot, lambda: asked == ["3f9a0c21", "tc-2230"], "the second session's")
        old = data.sessions[1]  # a new scan's Session, its map ids changed
        data.sessions[1] = Session(**{n: getattr(old, n) for n in Session.__slots__
                                      if n != "maps"}, maps=[])
        await until(pilot, lambda: asked == ["3f9a0c21", "tc-2230", "tc-2230"], "again")
        scans = app.stats.scans
        await until(pilot, lambda: app.stats.scans >= scans + 10, "ten more scans")
        assert asked == ["3f9a0c21", "tc-2230", "tc-2230"]


@aio
async def test_footer_keeps_quit_and_help_at_80x24():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await scanned(pilot)
        await pilot.pause()
        footer = screen_lines(app)[-1]
        assert "q Quit" in footer and "? Help" in footer, footer
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MapScreen), "the map view")
        await pilot.pause()
        footer = screen_lines(app)[-1]
        assert "q Quit" in footer and "Back" in footer, footer


@aio
async def test_q_quits_from_every_screen():
    for keys in (["q"], ["m", "q"], ["question_mark", "q"], ["k", "q"], ["m", "f1", "q"]):
        app = make_app()
        async with app.run_test(size=(100, 30)) as pilot:
            await scanned(pilot)
            for key in keys:
                await pilot.press(key)
                await pilot.pause()
            await until(pilot, lambda app=app: not app.is_running, f"{keys} to quit")


# ---- sorting ---------------------------------------------------------------------------------


@aio
async def test_sort_by_any_column_numbers_by_value():
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        table = await scanned(pilot)
        table.focus()
        await pilot.press("s")  # NAME
        await until(pilot, lambda: [r[0] for r in table.shown.values()] ==
                    ["edge-counter", "percpu-lab", "tc-2230", "tc-2411"], "sorted by name")
        await pilot.press("s", "s", "s", "s")  # PID, NETNS, OBJ, MAPS
        await until(pilot, lambda: [r[4] for r in table.shown.values()] == ["0", "1", "1", "2"],
                    "sorted by the number of maps")
        await pilot.press("s")  # AGE: 12s < 5m < 1h06m < 3d02h
        await until(pilot, lambda: [r[5] for r in table.shown.values()] ==
                    ["12s", "5m", "1h06m", "3d02h"], "sorted by age")
        await pilot.press("S")
        await until(pilot, lambda: [r[5] for r in table.shown.values()] ==
                    ["3d02h", "1h06m", "5m", "12s"], "reversed")
        assert "AGE ▼" in screen_text(app)


@aio
async def test_a_click_on_a_header_sorts_by_it():
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        table = await scanned(pilot)
        pid_x = table.columns["name"].get_render_width(table) + 1
        await pilot.click("#sessions", offset=(pid_x, 0))
        await until(pilot, lambda: table.sort_column == 1, "sorted by PID")
        assert [r[1] for r in table.shown.values()] == ["2101", "2230", "2302", "2411"]
        await pilot.click("#sessions", offset=(pid_x, 0))
        await until(pilot, lambda: table.sort_reverse, "a second click reverses")
        assert [r[1] for r in table.shown.values()] == ["2411", "2302", "2230", "2101"]


# ---- the map view ---------------------------------------------------------------------------


async def read_again(pilot, screen) -> None:
    """One more read of the map view (interval=None reads once per call: deterministic)."""
    screen.read_loop()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@aio
async def test_map_view_count_delta_rate_and_pause():
    entries = {41: list(ENTRIES[41]), 42: [("0", "1631")]}
    app = make_app(entries=entries)
    async with app.run_test(size=(100, 30)) as pilot:
        await scanned(pilot)
        maps = app.main.query_one("#maps", KeyedTable)
        maps.move_cursor(row=1)  # edge-counter's total_pkts, map 42
        await pilot.press("m")
        screen = await until(pilot, lambda: isinstance(app.screen, MapScreen) and app.screen,
                             "the map view")
        rows = screen.query_one("#entries", KeyedTable)
        await until(pilot, lambda: rows.shown.get("0", ("",))[0] == "0", "the entry")
        status = screen.query_one("#map-status")
        assert "1 entries" in str(status.render())
        assert rows.shown["0"][2] == ""  # one read: nothing to compare with yet
        entries[42] = [("0", "1731")]
        await read_again(pilot, screen)
        assert rows.shown["0"][2].startswith("+100 ") and rows.shown["0"][2].endswith("/s")
        await pilot.press("space")
        await until(pilot, lambda: "paused" in str(status.render()), "paused")
        entries[42] = [("0", "9999")]
        await read_again(pilot, screen)  # paused: not read
        assert rows.shown["0"][1] == "1731"
        await pilot.press("space")
        await read_again(pilot, screen)
        assert rows.shown["0"][1] == "9999" and rows.shown["0"][2].startswith("+8268 ")


@aio
async def test_map_view_rates_each_field_of_a_struct_of_counters():
    entries = {41: [("2048", '{"packets":10,"bytes":640}')], 42: [("0", "1")]}
    app = make_app(entries=entries)
    async with app.run_test(size=(120, 30)) as pilot:
        await scanned(pilot)
        await pilot.press("m")
        screen = await until(pilot, lambda: isinstance(app.screen, MapScreen) and app.screen,
                             "the map view")
        rows = screen.query_one("#entries", KeyedTable)
        await until(pilot, lambda: "2048" in rows.shown, "the entry")
        entries[41] = [("2048", '{"packets":13,"bytes":832}')]
        await read_again(pilot, screen)
        rate = rows.shown["2048"][2]
        assert rate.startswith("packets +3 ") and "  bytes +192 " in rate, rate


@aio
async def test_map_view_counts_all_entries_past_the_shown_ones():
    big = {41: [(str(i), str(i)) for i in range(250)], 42: [("0", "1")]}
    app = make_app(entries=big)
    async with app.run_test(size=(100, 30)) as pilot:
        await scanned(pilot)
        await pilot.press("m")
        screen = await until(pilot, lambda: isinstance(app.screen, MapScreen) and app.screen,
                             "the map view")
        status = screen.query_one("#map-status")
        await until(pilot, lambda: "first 100 of 250 entries" in str(status.render()),
                    "the count")


# ---- attach ---------------------------------------------------------------------------------


def _other_users() -> list:
    got = sessions()
    for s in got:
        s.uid = 4242
    return got


@aio
async def test_attaching_to_another_users_session_asks_first():
    app = make_app(_other_users())
    async with app.run_test(size=(100, 30)) as pilot:
        await scanned(pilot)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "a confirmation")
        await pilot.pause()
        assert "uid 4242" in screen_text(app)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "no attach")
        assert notes(app) == []
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "asked again")
        await pilot.press("y")
        # Headless, the terminal cannot be handed over: that is said, not raised.
        await until(pilot, lambda: any("cannot be handed over" in n for n in notes(app)),
                    "the attach to be tried")


@aio
async def test_own_session_attaches_without_asking_and_a_missing_interpreter_is_a_note():
    app = make_app()
    app.python = "/nonexistent/python3"
    async with app.run_test(size=(100, 30)) as pilot:
        await scanned(pilot)
        await pilot.press("a")
        await until(pilot, lambda: notes(app), "a notification")
        assert "no interpreter at /nonexistent/python3" in notes(app)[0]
        assert isinstance(app.screen, MainScreen)


@aio
async def test_a_refused_attach_is_a_notification_before_the_terminal_is_handed_over():
    from tests.test_tui_snapshots import ENTRIES as fixed_entries

    app = BpfSessionApp(FixedSource(sessions(), dict(fixed_entries), at=AT,
                                    refuse_attach="not allowed to take session x's maps"),
                        interval=None)
    async with app.run_test(size=(100, 30)) as pilot:
        await scanned(pilot)
        await pilot.press("a")
        await until(pilot, lambda: notes(app), "a notification")
        assert notes(app) == ["not allowed to take session x's maps"]
        assert isinstance(app.screen, MainScreen)
