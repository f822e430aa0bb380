"""Strings from outside never break the TUI: markup is shown as text, control characters
escaped, a 10,000-character name keeps the layout; and a property test feeds arbitrary
hostile Session records through the app (headless, FixedSource): no exception, no raw
control character on screen."""

from __future__ import annotations

import asyncio
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfsession.model import Session, SessionMap, SessionProcess
from tests.test_tui_keys import until
from tests.tui_screen import screen_lines, screen_text
from tui.app import BpfSessionApp
from tui.screens import ConfirmScreen, HelpScreen, MainScreen, MapScreen
from tui.source import FixedSource
from tui.widgets import KeyedTable

# What printable() escapes: no such character may reach the terminal.
RAW_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

HOSTILE = ["[/x]", "[bold red]boom[/]", "[link=http://x]y[/link]", "\x1b[2J", "\x1b]0;t\x07",
           "a\nb", "\r", "\x00", "\x9b31m", "\u202eevil", "[", "]", "\\[x]", "$(rm -rf /)",
           ":emoji:", "%s", "{}"]


def make_session(i: int, name: str, obj: str, netns: str | None, command: list[str],
                 map_name: str, env_value: str, comm: str, uid: int = 0) -> Session:
    m = SessionMap([f"BPF_MAP{i}"], 3 + i, 100 + i, map_name, "hash", 4, 8, 16, 1024, False, 0)
    procs = [SessionProcess(1000 + i, 1, comm, command, {m.fd: m.id})]
    return Session(id=f"s{i}", name=name, pid=1000 + i, supervisor=None, uid=uid, netns=netns,
                   netns_path=None, obj=obj, command=command, started="2026-11-25T12:00:00",
                   maps=[m], processes=procs, registered=False, control=None, allow_uids=[],
                   env={"BPF_OBJ": env_value, f"BPF_MAP{i}": str(m.fd)})


def assert_clean(app) -> None:
    for line in screen_lines(app):
        assert not RAW_CONTROL.search(line), repr(line)


async def walk_through(app, pilot, n: int) -> None:
    """Every screen a user reaches with the keyboard, each checked for raw controls."""
    table = app.main.query_one("#sessions", KeyedTable)
    await until(pilot, lambda: len(table.shown) == n, "the rows")
    await pilot.pause()
    assert_clean(app)
    for key in ("2", "3", "1"):
        await pilot.press(key)
        await pilot.pause()
        assert_clean(app)
    await pilot.press("m")
    await until(pilot, lambda: isinstance(app.screen, MapScreen), "the map view")
    await app.workers.wait_for_complete()
    await pilot.pause()
    assert_clean(app)
    await pilot.press("escape", "k")
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the end confirmation")
    await pilot.pause()
    assert_clean(app)
    for key in ("n", "r", "escape", "d", "escape"):  # the prompts name the session and map
        await pilot.press(key)
        await pilot.pause()
        assert_clean(app)
    await pilot.press("question_mark")
    await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
    await pilot.press("escape")
    await until(pilot, lambda: isinstance(app.screen, MainScreen), "the list again")
    await pilot.press("slash", "left_square_bracket", "enter")  # a filter with markup
    await pilot.pause()
    assert_clean(app)


def run(sessions: list[Session], entries: dict, size=(100, 30)) -> None:
    async def main():
        app = BpfSessionApp(FixedSource(sessions, entries), interval=None)
        async with app.run_test(size=size, notifications=True) as pilot:
            await walk_through(app, pilot, len(sessions))
            return app

    asyncio.run(main())


def test_markup_and_controls_are_shown_as_text():
    hostile = "".join(HOSTILE)
    sessions = [make_session(0, "[/x]" + hostile, "[bold]obj\x1b[2J", "ns[/]\n",
                             ["sh", "-c", "\x1b[2J[/x]"], "m[/x]\r", "v\x1b]0;x\x07", "c\x1b")]
    entries = {100: [("[/x]\x1b", "\x1b[31m[bold]v")]}

    async def main():
        app = BpfSessionApp(FixedSource(sessions, entries), interval=None)
        async with app.run_test(size=(140, 30), notifications=True) as pilot:
            await walk_through(app, pilot, 1)
            text = screen_text(app)
            assert "[/x]" in text and "\\x1b[2J" in text
            # A notification naming the session (`m` on a session without maps): plain
            # text too.
            sessions[0].maps.clear()
            app.main.query_one("#sessions").focus()
            await pilot.press("m")
            await until(pilot, lambda: app._notifications, "the notification")
            await pilot.pause()
            assert "session [/x]" in screen_text(app)
            assert_clean(app)

    asyncio.run(main())


def test_a_10000_character_name_keeps_the_layout():
    long = "n" * 10_000
    sessions = [make_session(0, long, "o" * 10_000, None, ["x" * 10_000], "m" * 10_000,
                             "v" * 10_000, "c" * 15),
                make_session(1, "short", "obj", None, ["sh"], "m1", "v", "sh")]

    async def main():
        app = BpfSessionApp(FixedSource(sessions, {}), interval=None)
        async with app.run_test(size=(80, 24)) as pilot:
            table = app.main.query_one("#sessions", KeyedTable)
            await until(pilot, lambda: len(table.shown) == 2, "the rows")
            # The frame that shows them (a loaded machine may draw it a little later).
            await until(pilot, lambda: "q Quit" in screen_lines(app)[-1] and any(
                line.startswith(" short ") for line in screen_lines(app)), "the rows drawn")
            lines = screen_lines(app)
            assert len(lines) == 24 and all(len(line) == 80 for line in lines)
            # The name cell is cut (…), the detail title stays one line.
            assert all(len(c) <= 60 for c in table.shown["s0"])
            title = app.main.query_one("#detail-title")
            assert title.size.height == 1

    asyncio.run(main())


_hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40),
    st.lists(st.sampled_from(HOSTILE), max_size=5).map("".join),
)


@st.composite
def hostile_sessions(draw) -> list[Session]:
    n = draw(st.integers(1, 3))
    return [make_session(i, draw(_hostile_text), draw(_hostile_text),
                         draw(st.none() | _hostile_text),
                         draw(st.lists(_hostile_text, max_size=3)), draw(_hostile_text),
                         draw(_hostile_text), draw(_hostile_text),
                         uid=draw(st.sampled_from([0, 4242])))
            for i in range(n)]


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_sessions(), _hostile_text, _hostile_text)
def test_arbitrary_hostile_sessions_never_raise_nor_reach_the_terminal_raw(sessions, key, value):
    entries = {s.maps[0].id: [(key, value)] for s in sessions}
    run(sessions, entries)
