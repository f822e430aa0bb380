"""The TUI driven through Textual's Pilot against REAL sessions: iproute2's own receiver
(`tc exec bpf imp UDS run ...`, fed real maps) and `bpfsession new`.

Discovery sees the whole machine, so other sessions may be listed too: every assertion is
about the rows of the sessions a test started (keyed by session id).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import time

from bpfsession.kernel import bpf
from tests.helpers import bpfsession, open_fds, send_udp, uniq
from tui import rows
from tui.app import BpfSessionApp, pick_theme
from tui.screens import ConfirmScreen, MainScreen, MapScreen, PromptScreen
from tui.source import LiveSource
from tui.widgets import KeyedTable

pytest_plugins = ["tests.new_fixtures", "tests.tui_fixtures"]

SIZE = (120, 40)
FAST = 0.2  # seconds between refreshes in these tests


def aio(fn):
    """Run an async test in its own event loop (the venv has no pytest-asyncio plugin)."""

    @functools.wraps(fn)
    def test(*args, **kw):
        return asyncio.run(fn(*args, **kw))

    return test


async def until(pilot, predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def main_screen(app) -> MainScreen:
    return app.main


def sessions_table(app) -> KeyedTable:
    return app.main.query_one("#sessions", KeyedTable)


def detail_table(app, which: str) -> KeyedTable:
    return app.main.query_one(f"#{which}", KeyedTable)


async def select(pilot, app, session_id: str) -> None:
    """Move the cursor to a session's row with the arrow keys, as a user would."""
    table = sessions_table(app)
    table.focus()
    await until(pilot, lambda: session_id in table.shown, what=f"row {session_id}")
    # Other sessions on the machine come and go while the keys travel, moving rows (and
    # the table keeps its cursor on the row it was on): step toward the row as it is now,
    # one key at a time, until the cursor lands on it.
    deadline = time.monotonic() + 30
    while table.selected_key != session_id:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for the cursor on {session_id} (row "
                                 f"{table.get_row_index(session_id)} of {table.row_count}; "
                                 f"the cursor on row {table.cursor_row}, focus on "
                                 f"{app.focused})")
        step = "down" if table.get_row_index(session_id) > table.cursor_row else "up"
        await pilot.press(step)
        await pilot.pause()


async def type_filter(pilot, text: str) -> None:
    await pilot.press("slash")
    # Until the input has focus, letters are the screen's keys (t: trace, s: sort...).
    field = pilot.app.main.query_one("#filter")
    await until(pilot, lambda: pilot.app.focused is field, what="the filter's focus")
    for ch in text:
        await pilot.press(ch)
    await pilot.press("enter")


# ---- rows, detail, refresh -----------------------------------------------------------------


@aio
async def test_tc_exec_session_row_and_its_maps(tc_session, make_map, netns):
    a, b = uniq("tuiA"), uniq("tuiB")
    s = tc_session({a: make_map("hash", name=a), b: make_map("array", name=b)}, netns=netns)
    app = BpfSessionApp(interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        table = sessions_table(app)
        await until(pilot, lambda: s.id in table.shown, what="the tc exec session's row")
        name, pid, ns, obj, nmaps, age, state, command = table.shown[s.id]
        assert (name, pid, ns, nmaps, state) == (s.id, str(s.pid), netns, "2", "running")
        assert command == "sleep 60" and age.endswith("s")

        await select(pilot, app, s.id)
        maps = detail_table(app, "maps")
        await until(pilot, lambda: len(maps.shown) == 2, what="the maps in the detail pane")
        shown = {r[3]: r for r in maps.shown.values()}  # by map name
        assert shown[a][0] == "BPF_MAP0" and shown[a][2] == str(s.map_ids[a])
        assert shown[b][0] == "BPF_MAP1" and shown[b][2] == str(s.map_ids[b])
        assert shown[a][4:8] == ("hash", "4", "8", "16")
        assert shown[b][4] == "array" and int(shown[b][8]) > 0  # memlock from fdinfo
        procs = detail_table(app, "procs")
        assert list(procs.shown) == [str(s.pid)]
        assert procs.shown[str(s.pid)][3] == ",".join(str(fd) for fd in sorted(
            {int(f) for f in maps.shown}))


@aio
async def test_bpfsession_new_session_row(new_session, run_dir, make_map):
    name = uniq("tuinew")
    fds = [make_map(name=uniq("tuiN")), make_map("array", name=uniq("tuiM"))]
    ids = [bpf.map_info(fd).id for fd in fds]
    _, entry = new_session(fds, name)
    app = BpfSessionApp(LiveSource(run_dir=run_dir), interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        table = sessions_table(app)
        await until(pilot, lambda: entry["id"] in table.shown, what="the new session's row")
        cells = table.shown[entry["id"]]
        assert cells[0] == name and cells[1] == str(entry["pid"])
        assert cells[2] == "-" and cells[3] == "newobj" and cells[4] == "2"
        await select(pilot, app, entry["id"])
        maps = detail_table(app, "maps")
        await until(pilot, lambda: {r[2] for r in maps.shown.values()} == {str(i) for i in ids},
                    what="the new session's map ids")
        title = str(app.main.query_one("#detail-title").render())
        assert "supervisor" in title and "wire 36-byte entries" in title


@aio
async def test_ended_session_disappears_and_the_cursor_stays(tc_session, make_map):
    first = tc_session({"m": make_map(name=uniq("tuiE"))})
    second = tc_session({"m": make_map(name=uniq("tuiF"))})
    app = BpfSessionApp(interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        table = sessions_table(app)
        await select(pilot, app, second.id)
        first.proc.kill()
        first.proc.wait()
        await until(pilot, lambda: first.id not in table.shown, what="the ended row to go")
        assert table.selected_key == second.id  # the cursor went with its row
        # (Other sessions of the machine may come and go meanwhile: where the row is now,
        # not `before - 1`, is what the cursor must be on.)
        assert table.cursor_row == table.get_row_index(second.id)


@aio
async def test_filter_by_text_and_by_netns(tc_session, make_map, netns):
    tag = uniq("tf")  # map names keep 15 characters: prefix + pid + counter + 1 must fit
    host = tc_session({f"{tag}h": make_map(name=f"{tag}h")})
    inns = tc_session({f"{tag}n": make_map(name=f"{tag}n")}, netns=netns)
    app = BpfSessionApp(interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        table = sessions_table(app)
        await until(pilot, lambda: {host.id, inns.id} <= table.shown.keys(), what="both rows")
        await type_filter(pilot, tag)  # a map name: matches exactly these two sessions
        await until(pilot, lambda: set(table.shown) == {host.id, inns.id},
                    what=lambda: f"the filter {app.main.query_one('#filter').value!r} to show "
                    f"{host.id} and {inns.id} (shown: {sorted(table.shown)})")
        assert app.main.sub_title.startswith("2 ")  # "2 of N sessions", or "2 sessions"

        select_ = app.main.query_one("#netns")
        assert (f"netns: {netns}", netns) in rows.netns_choices(app.main.rows)
        select_.value = netns
        await until(pilot, lambda: set(table.shown) == {inns.id}, what="the netns filter")
        select_.value = rows.HOST_NETNS
        await until(pilot, lambda: set(table.shown) == {host.id}, what="the host filter")
        select_.value = rows.ALL_NETNS
        await pilot.press("escape")  # clears the text filter
        await until(pilot, lambda: {host.id, inns.id} < set(table.shown) or
                    set(table.shown) == {host.id, inns.id}, what="the filter cleared")
        assert app.main.query_one("#filter").value == ""


# ---- the map view ------------------------------------------------------------------------


def counter_session(tc_session, tc_counter):
    """A tc exec session holding the tc program's own maps (by id, in name order)."""
    from bpfsession.kernel import bpf as kbpf

    fds = {name: kbpf.map_get_fd_by_id(i) for name, i in sorted(tc_counter.map_ids.items())}
    try:
        return tc_session(fds)
    finally:
        for fd in fds.values():
            os.close(fd)


@aio
async def test_map_view_is_btf_typed_and_live(tc_session, tc_counter):
    s = counter_session(tc_session, tc_counter)
    send_udp(tc_counter.veth.ns_ip, count=3)
    app = BpfSessionApp(interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, s.id)
        maps = detail_table(app, "maps")
        await until(pilot, lambda: len(maps.shown) == 2, what="the maps")
        maps.focus()
        stats_fd = next(k for k, r in maps.shown.items() if r[3] == "proto_stats")
        maps.move_cursor(row=maps.get_row_index(stats_fd))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MapScreen), what="the map view")
        entries = app.screen.query_one("#entries", KeyedTable)

        def packets() -> int:
            # ETH_P_IP (0x0800) as the typed key: the u32 2048
            row = entries.shown.get("2048")
            return json.loads(row[1])["packets"] if row else 0

        first = await until(pilot, packets, what="a typed proto_stats entry")
        assert "BTF-typed" in str(app.screen.query_one("#map-status").render())
        send_udp(tc_counter.veth.ns_ip, count=4)
        second = await until(pilot, lambda: packets() >= first + 4 and packets(),
                             what="the counter to move live")
        await pilot.press("space")  # pause: the view holds still while packets come
        assert "paused" in str(app.screen.query_one("#map-status").render())
        send_udp(tc_counter.veth.ns_ip, count=2)
        await pilot.pause(4 * FAST)
        assert packets() == second
        await pilot.press("space")
        await until(pilot, lambda: packets() >= second + 2, what="the refresh to resume")
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


@aio
async def test_dump_map_writes_what_map_dump_prints(tc_session, make_map, short_tmp):
    name = uniq("tuiD")
    fd = make_map(name=name)
    for k in range(5):
        bpf.map_update_elem(fd, k.to_bytes(4, "little"), (k * 10).to_bytes(8, "little"))
    s = tc_session({name: fd})
    out = short_tmp / "dump.json"
    app = BpfSessionApp(interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, s.id)
        await until(pilot, lambda: app.main.selected_map is not None, what="a map")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), what="the prompt")
        answer = app.screen.query_one("#answer")
        assert answer.value == f"map-{s.map_ids[name]}-{name}.json"
        answer.value = str(out)
        await pilot.press("enter")
        await until(pilot, out.exists, what="the dump file")
        await until(pilot, lambda: any("5 entries" in n.message for n in app._notifications),
                    what="the notification")
    ref = bpfsession("map", "dump", "id", str(s.map_ids[name]), "-j", check=True).stdout
    assert json.loads(out.read_text()) == json.loads(ref)


@aio
async def test_map_view_rates_real_packets_per_field(tc_session, tc_counter):
    """The DELTA RATE of proto_stats's IPv4 entry: the packets counted between two reads
    (the view reads once per read_loop() call with interval=None: no race with a timer)."""
    s = counter_session(tc_session, tc_counter)
    send_udp(tc_counter.veth.ns_ip, count=2)
    app = BpfSessionApp(interval=None)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, s.id)
        maps = detail_table(app, "maps")
        await until(pilot, lambda: len(maps.shown) == 2, what="the maps")
        stats_fd = next(k for k, r in maps.shown.items() if r[3] == "proto_stats")
        maps.move_cursor(row=maps.get_row_index(stats_fd))
        await pilot.press("m")
        screen = await until(pilot, lambda: isinstance(app.screen, MapScreen) and app.screen,
                             what="the map view")
        entries = screen.query_one("#entries", KeyedTable)
        await until(pilot, lambda: "2048" in entries.shown, what="the IPv4 entry")
        before = json.loads(entries.shown["2048"][1])
        send_udp(tc_counter.veth.ns_ip, count=3)
        deadline = time.monotonic() + 10
        while True:  # until a read sees them (the kernel counts as the packets arrive)
            assert time.monotonic() < deadline, "the 3 packets were never counted"
            screen.read_loop()
            await app.workers.wait_for_complete()
            await pilot.pause()
            now = json.loads(entries.shown["2048"][1])
            if now["packets"] >= before["packets"] + 3:
                break
            before = now
        rate = entries.shown["2048"][2]
        assert rate.startswith(f"packets +{now['packets'] - before['packets']} "), rate
        assert f"  bytes +{now['bytes'] - before['bytes']} " in rate, rate


@aio
async def test_copy_env_lines(tc_session, make_map):
    s = tc_session({"a": make_map(name=uniq("tuiC")), "b": make_map(name=uniq("tuiC"))})
    app = BpfSessionApp(interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, s.id)
        await pilot.press("c")
        await until(pilot, lambda: app.clipboard, what="the clipboard")
    lines = app.clipboard.splitlines()
    assert "BPF_NUM_MAPS=2" in lines
    env = dict(line.split("=", 1) for line in lines)
    assert {int(env["BPF_MAP0"]), int(env["BPF_MAP1"])} <= open_fds(s.pid)


@aio
async def test_end_session_asks_first_then_sends_sigterm(tc_session, make_map):
    s = tc_session({"m": make_map(name=uniq("tuiK"))})
    app = BpfSessionApp(interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, s.id)
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.press("n")
        await pilot.pause(0.3)
        assert s.proc.poll() is None
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.press("y")
        await until(pilot, lambda: s.proc.poll() is not None, what="the session to end")
        assert s.proc.returncode == -signal.SIGTERM
        await until(pilot, lambda: s.id not in sessions_table(app).shown, what="its row to go")


@aio
async def test_bpfsession_new_session_ends_through_its_supervisor(new_session, run_dir,
                                                                  make_map):
    proc, entry = new_session([make_map(name=uniq("tuiS"))], uniq("tuiend"))
    app = BpfSessionApp(LiveSource(run_dir=run_dir), interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, entry["id"])
        await pilot.press("k", "y")
        await until(pilot, lambda: proc.poll() is not None, what="the supervisor to exit")
    # The supervisor forwards SIGTERM to the command and exits with its status.
    assert proc.returncode == 128 + signal.SIGTERM
    assert not os.path.exists(os.path.join(run_dir, entry["id"] + ".json"))


@aio
async def test_run_command_without_a_terminal_to_hand_over(tc_session, make_map):
    # Pilot's headless driver cannot suspend; the real hand-over is tested in tmux
    # (test_tui_tmux.py). Here: the command line is parsed and the user told what to run.
    s = tc_session({"a": make_map(name=uniq("tuiR"))})
    app = BpfSessionApp(interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, s.id)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), what="the prompt")
        app.screen.query_one("#answer").value = "sh -c 'echo $BPF_NUM_MAPS'"
        await pilot.press("enter")
        await until(pilot, lambda: app._notifications, what="a notification")
        note = list(app._notifications)[0]
        assert note.severity == "error"
        assert f"bpfsession attach {s.id} run sh -c 'echo $BPF_NUM_MAPS'" in note.message
        await pilot.press("r")
        app.screen.query_one("#answer").value = "sh -c 'unbalanced"
        await pilot.press("enter")
        await until(pilot, lambda: len(app._notifications) == 2, what="a second one")
        assert "quoting" in list(app._notifications)[1].message


# ---- errors are notifications ------------------------------------------------------------


@aio
async def test_map_gone_is_a_notification_not_a_crash(tc_session, make_map):
    fd = make_map(name=uniq("tuiG"))
    s = tc_session({"g": fd})
    app = BpfSessionApp(interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, s.id)
        await until(pilot, lambda: app.main.selected_map is not None, what="a map")
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MapScreen), what="the map view")
        s.proc.kill()
        s.proc.wait()
        os.close(fd)  # the last holder: the map is freed
        await until(pilot, lambda: any(n.severity == "error" for n in app._notifications),
                    what="an error notification")
        note = next(n for n in app._notifications if n.severity == "error")
        assert "no map with id" in note.message
        await pilot.press("escape")
        await until(pilot, lambda: s.id not in sessions_table(app).shown, what="row gone")
    assert app.return_code in (None, 0)


@aio
async def test_actions_without_a_session_warn(tc_session):
    from tui.source import FixedSource

    app = BpfSessionApp(FixedSource([]), interval=None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        for key in "amdck":
            await pilot.press(key)
        await pilot.pause(0.1)
        assert len(app._notifications) == 5
        assert all(n.severity == "warning" for n in app._notifications)
        assert isinstance(app.screen, MainScreen)


@aio
async def test_no_fd_leak_across_refreshes_and_map_views(tc_session, make_map):
    fd = make_map(name=uniq("tuiL"))
    bpf.map_update_elem(fd, b"\1\0\0\0", bytes(8))
    s = tc_session({"a": fd})
    before = open_fds()
    app = BpfSessionApp(interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, s.id)
        for _ in range(3):
            await pilot.press("m")
            await until(pilot, lambda: isinstance(app.screen, MapScreen), what="map view")
            await until(pilot, lambda: app.screen.query_one("#entries", KeyedTable).shown,
                        what="a read")
            await pilot.press("escape")
        await until(pilot, lambda: app.stats.scans > 10, what="refreshes")
    await asyncio.sleep(0.2)
    assert open_fds() - before == set()


# ---- pure pieces ---------------------------------------------------------------------------


@aio
async def test_keyed_table_keeps_cursor_and_screen_offset():
    from textual.app import App

    class One(App):
        def compose(self):
            yield KeyedTable((("key", "KEY"), ("value", "VALUE")), id="t")

    app = One()
    async with app.run_test(size=(60, 20)) as pilot:
        table = app.query_one(KeyedTable)
        table.sync({f"k{i}": (f"k{i}", f"v{i}") for i in range(200)})
        await pilot.pause()
        table.move_cursor(row=100)
        await pilot.pause()
        offset = table.cursor_row - table.scroll_y
        # Ten rows before it go, five come at the end, one value changes: in place.
        new = {f"k{i}": (f"k{i}", f"v{i}") for i in range(10, 205)}
        new["k100"] = ("k100", "new")
        count = table._update_count
        table.sync(new)
        await pilot.pause()
        await pilot.pause()
        assert table.selected_key == "k100"
        assert table.cursor_row == 90
        assert table.cursor_row - table.scroll_y == offset
        assert [str(cell) for cell in table.get_row_at(90)] == ["k100", "new"]
        assert table._update_count - count < 30  # 10 removals, 1 update, 5 additions
        # A value wider than its column: the column widens at once.
        new["k100"] = ("k100", "a much longer value")
        table.sync(new)
        await pilot.pause()
        assert table.columns["value"].content_width == len("a much longer value")
        assert table.selected_key == "k100" and table.cursor_row == 90
        # A filter that brings back a row in the middle rebuilds, and still keeps the cursor.
        new = {f"k{i}": (f"k{i}", f"v{i}") for i in range(0, 205)}
        table.sync(new)
        await pilot.pause()
        assert table.selected_key == "k100" and table.cursor_row == 100
        assert list(table.shown) == [f"k{i}" for i in range(205)]


def test_age_and_theme_choice():
    now = 1_700_000_000.0
    from datetime import UTC, datetime

    def iso(secs_ago: float) -> str:
        return datetime.fromtimestamp(now - secs_ago, UTC).isoformat()

    assert [rows.age(iso(s), now) for s in (5, 125, 3 * 3600 + 300, 2 * 86400 + 4 * 3600)] \
        == ["5s", "2m", "3h05m", "2d04h"]
    assert rows.age(None, now) == "-"
    known = ["textual-dark", "textual-light", "nord"]
    assert pick_theme({}, known) == "textual-dark"
    assert pick_theme({"COLORFGBG": "0;15"}, known) == "textual-light"
    assert pick_theme({"COLORFGBG": "15;0"}, known) == "textual-dark"
    assert pick_theme({"BPFSESSION_TUI_THEME": "light", "COLORFGBG": "15;0"}, known) \
        == "textual-light"
    assert pick_theme({"BPFSESSION_TUI_THEME": "nord"}, known) == "nord"


def test_tui_needs_a_terminal():
    res = bpfsession("tui", stdin=open(os.devnull))
    assert res.returncode == 1
    assert res.stderr.startswith("bpfsession: `bpfsession tui` needs a terminal")
    assert "Traceback" not in res.stderr


def test_matching_words():
    row = rows.SessionRow(("x",), "blue", "web-1 tc-5 5 blue counter sleep 60 proto_stats")
    assert rows.matches(row, "", rows.ALL_NETNS)
    assert rows.matches(row, "PROTO web", rows.ALL_NETNS)
    assert not rows.matches(row, "proto nope", rows.ALL_NETNS)
    assert rows.matches(row, "", "blue") and not rows.matches(row, "", rows.HOST_NETNS)


def test_attach_check_refuses_another_users_session_before_the_handover(new_session, run_dir,
                                                                        make_map):
    """As uid 65534, LiveSource.check_attach (what the TUI asks before it suspends) of
    root's session is a one-line refusal, not a shell that fails in a suspended screen."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    os.chmod(run_dir, 0o755)
    _, entry = new_session([make_map(name=uniq("tuiR"))], uniq("tuiroot"))
    script = ("import sys\nfrom bpfsession.errors import BpfSessionError\n"
              "from tui.source import LiveSource\n"
              f"src = LiveSource(run_dir={run_dir!r})\n"
              f"s = next(x for x in src.scan() if x.id == {entry['id']!r})\n"
              "try:\n    src.check_attach(s)\nexcept BpfSessionError as err:\n"
              "    print(err.hint)\nelse:\n    print('ALLOWED')\n")
    res = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                          sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    hint = res.stdout.strip()
    assert hint != "ALLOWED" and "\n" not in hint and "may not attach" in hint, hint


@aio
async def test_programs_tab_names_the_tc_program_and_its_hook(new_session, run_dir, tc_counter):
    """A `bpfsession new` session holding count_proto's maps: key 4 shows the Programs tab,
    one row per map naming the program, its type and its tc ingress hook in the netns."""
    v = tc_counter.veth
    fds = [bpf.map_get_fd_by_id(tc_counter.map_ids[n]) for n in ("proto_stats", "total_pkts")]
    try:
        _, entry = new_session(fds, uniq("tuiprog"))
    finally:
        for fd in fds:
            os.close(fd)
    app = BpfSessionApp(LiveSource(run_dir=run_dir), interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, entry["id"])
        await pilot.press("4")
        tabs = app.main.query_one("#detail-tabs")
        await until(pilot, lambda: tabs.active == "tab-programs", what="the Programs tab")
        table = detail_table(app, "programs")
        await until(pilot, lambda: len(table.shown) == 2,
                    what=lambda: f"two program rows (shown: {table.shown})")
        for cells in table.shown.values():
            assert cells[0] in ("proto_stats", "total_pkts")
            assert cells[1:4] == (str(tc_counter.prog_id), "count_proto", "sched_cls")
            assert len(cells[4]) == 16  # the tag
            assert cells[5].startswith(f"tc {v.ns_if} ingress netns {v.netns} "), cells[5]
        assert {c[0] for c in table.shown.values()} == {"proto_stats", "total_pkts"}
        assert not app.main.query_one("#programs-note").display


def test_programs_of_a_session_are_unknown_to_a_user(new_session, run_dir, make_map):
    """As uid 65534, LiveSource.programs (the Programs tab's worker) answers None,
    "unknown", not an empty list that would read as "no program"."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    os.chmod(run_dir, 0o755)
    _, entry = new_session([make_map(name=uniq("tuiP"))], uniq("tuipuser"))
    script = ("from tui.source import LiveSource\n"
              f"src = LiveSource(run_dir={run_dir!r})\n"
              f"s = next(x for x in src.scan() if x.id == {entry['id']!r})\n"
              "print(src.programs(s))\n")
    res = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                          sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "None"
