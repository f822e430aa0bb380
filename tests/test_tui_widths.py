"""A table never shows a value cut short, whatever it showed before.

DataTable measures new cells only when idle, and a frame drawn before that stays cached:
the maps table once showed `lru_h` for `lru_hash` and `655` for `65536` after a netns
filter change. These tests read what the table actually draws (render_line), both at once
after a change (before any idle) and after the app settled.
"""

from __future__ import annotations

import asyncio
import copy
import functools

from tests.test_tui_snapshots import AT, ENTRIES
from tests.test_tui_snapshots import sessions as fixed_sessions
from tui.app import BpfSessionApp
from tui.source import FixedSource
from tui.widgets import KeyedTable

SIZE = (200, 50)  # wide enough that no column is clipped by the screen


def aio(fn):
    @functools.wraps(fn)
    def test(*args, **kw):
        return asyncio.run(fn(*args, **kw))

    return test


def drawn_rows(table: KeyedTable) -> list[str]:
    """The text of each data row as drawn now (line 0 is the header)."""
    return [table.render_line(y).text for y in range(1, table.row_count + 1)]


def assert_full_values(table: KeyedTable) -> None:
    drawn = drawn_rows(table)
    assert len(drawn) == len(table.shown)
    for line, cells in zip(drawn, table.shown.values(), strict=True):
        for value in cells:
            assert value in line, f"{value!r} cut short in {line!r}"


async def until(pilot, predicate, what: str, timeout: float = 10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if predicate():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def replaced(record, **fields):
    new = copy.copy(record)
    for name, value in fields.items():
        setattr(new, name, value)
    return new


def app(source: FixedSource, interval: float | None = None) -> BpfSessionApp:
    return BpfSessionApp(source, interval=interval)


@aio
async def test_sync_draws_full_values_before_idle():
    a = app(FixedSource(fixed_sessions(), ENTRIES, at=AT))
    async with a.run_test(size=SIZE) as pilot:
        await a.workers.wait_for_complete()
        await pilot.pause()
        maps = a.main.query_one("#maps", KeyedTable)
        narrow = {"3": ("BPF_MAP0", "3", "1", "m", "array", "4", "8", "1", "9")}
        wide = {"5": ("BPF_MAP0", "5", "57", "flows", "lru_hash", "16", "32", "65536",
                      "2625792")}
        for rows in (narrow, wide, narrow, {**narrow, **wide}):
            maps.sync(rows)
            assert_full_values(maps)  # drawn at once, before DataTable's idle pass
            await pilot.pause()
            assert_full_values(maps)
        widened = {"3": narrow["3"][:4] + ("percpu_lru_hash",) + narrow["3"][5:],
                   "5": wide["5"]}
        maps.sync(widened)  # a cell update that widens a column
        assert_full_values(maps)
        await pilot.pause()
        assert_full_values(maps)


@aio
async def test_netns_filter_shows_the_wider_session_in_full():
    a = app(FixedSource(fixed_sessions(), ENTRIES, at=AT))
    async with a.run_test(size=SIZE) as pilot:
        await a.workers.wait_for_complete()
        await pilot.pause()
        maps = a.main.query_one("#maps", KeyedTable)
        await until(pilot, lambda: len(maps.shown) == 2, "the first session's maps")
        assert_full_values(maps)
        a.main.query_one("#netns").value = "red"
        await until(pilot, lambda: [r[4] for r in maps.shown.values()] == ["lru_hash"],
                    "the red session's map")
        assert_full_values(maps)
        await pilot.pause()
        assert_full_values(maps)


@aio
async def test_selecting_a_wider_session_and_back():
    a = app(FixedSource(fixed_sessions(), ENTRIES, at=AT))
    async with a.run_test(size=SIZE) as pilot:
        await a.workers.wait_for_complete()
        await pilot.pause()
        maps = a.main.query_one("#maps", KeyedTable)
        a.main.query_one("#sessions", KeyedTable).focus()
        for key, want in (("down", "lru_hash"), ("down", "percpu_array"), ("up", "lru_hash"),
                          ("up", "hash")):
            await pilot.press(key)
            await until(pilot, lambda w=want: [r[4] for r in maps.shown.values()][:1] == [w],
                        f"the {want} map")
            assert_full_values(maps)


@aio
async def test_refresh_that_widens_a_value():
    sessions = fixed_sessions()
    source = FixedSource(sessions, ENTRIES, at=AT)
    a = app(source, interval=0.05)
    async with a.run_test(size=SIZE) as pilot:
        maps = a.main.query_one("#maps", KeyedTable)
        await until(pilot, lambda: len(maps.shown) == 2, "the first session's maps")
        first = sessions[0]
        bigger = [replaced(m, max_entries=m.max_entries * 100000,
                                      type="percpu_" + m.type) for m in first.maps]
        source.sessions = [replaced(first, maps=bigger), *sessions[1:]]
        await until(pilot, lambda: {r[7] for r in maps.shown.values()} == {"25600000",
                                                                           "100000"},
                    "the widened values")
        assert_full_values(maps)
        sessions_table = a.main.query_one("#sessions", KeyedTable)
        assert_full_values(sessions_table)


@aio
async def test_no_state_leaks_from_one_app_to_the_next():
    """The same screen, photographed as text, in a fresh app after other apps ran."""
    async def maps_after_red() -> list[str]:
        a = app(FixedSource(fixed_sessions(), ENTRIES, at=AT))
        async with a.run_test(size=SIZE) as pilot:
            await a.workers.wait_for_complete()
            await pilot.pause()
            maps = a.main.query_one("#maps", KeyedTable)
            a.main.query_one("#netns").value = "red"
            await until(pilot, lambda: [r[4] for r in maps.shown.values()] == ["lru_hash"],
                        "the red session's map")
            await pilot.pause()
            return drawn_rows(maps)

    first = await maps_after_red()
    assert "lru_hash" in first[0] and "65536" in first[0]
    assert await maps_after_red() == first
