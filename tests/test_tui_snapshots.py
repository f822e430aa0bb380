"""Snapshot tests (pytest-textual-snapshot) of the TUI with deterministic data.

The app is fed a fixed list of Session objects and map entries (tui.source.FixedSource)
with a fixed clock, and scans once (interval=None): no live pid or time reaches a screen.
Update the snapshots after an intended change with `pytest --snapshot-update`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from bpfsession.model import Session, SessionMap, SessionProcess
from tui.app import BpfSessionApp
from tui.source import FixedSource

AT = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC).timestamp()


def _started(seconds_ago: int) -> str:
    return datetime.fromtimestamp(AT - seconds_ago, UTC).isoformat()


def _map(env: int, fd: int, map_id: int, name: str, type_: str, key: int, value: int,
         max_entries: int, memlock: int) -> SessionMap:
    envs = [f"BPF_MAP{env}", f"BPF_MAP_{name.upper()}"]
    return SessionMap(envs, fd, map_id, name, type_, key, value, max_entries, memlock, False, 0)


def _session(sid: str, name: str, pid: int, netns: str | None, obj: str | None,
             command: list[str], age: int, maps: list[SessionMap],
             supervisor: int | None = None, children: int = 0) -> Session:
    procs = [SessionProcess(pid, supervisor or 1, command[0][:15], command,
                            {m.fd: m.id for m in maps})]
    procs += [SessionProcess(pid + 1 + i, pid, "agent", ["agent", "--watch"],
                             {m.fd: m.id for m in maps}) for i in range(children)]
    env = {"BPF_NUM_MAPS": str(len(maps)), "BPFSESSION_ID": sid, "BPFSESSION_NAME": name}
    for m in maps:
        for e in m.env:
            env[e] = str(m.fd)
    if obj:
        env["BPF_OBJ"] = obj
    return Session(id=sid, name=name, pid=pid, supervisor=supervisor, uid=0, netns=netns,
                   netns_path=f"/run/netns/{netns}" if netns else None, obj=obj,
                   command=command, started=_started(age), maps=maps, processes=procs,
                   registered=supervisor is not None, control=None, allow_uids=[], env=env)


def sessions() -> list[Session]:
    stats = _map(0, 3, 41, "proto_stats", "hash", 4, 16, 256, 5392)
    total = _map(1, 4, 42, "total_pkts", "array", 4, 8, 1, 344)
    return [
        _session("3f9a0c21", "edge-counter", 2101, "blue", "counter.bpf.o",
                 ["bash", "-l"], 3 * 86400 + 7200, [stats, total], supervisor=2100,
                 children=1),
        _session("tc-2230", "tc-2230", 2230, "red", None, ["sleep", "infinity"], 4000,
                 [_map(0, 5, 57, "flows", "lru_hash", 16, 32, 65536, 2625792)]),
        _session("77c1e0aa", "percpu-lab", 2302, None, "lab.o",
                 ["python3", "agent.py", "--interval", "1"], 300,
                 [_map(0, 3, 63, "pkt_cnt", "percpu_array", 4, 8, 64, 1560)],
                 supervisor=2301),
        _session("tc-2411", "tc-2411", 2411, None, None, ["sh"], 12, []),
    ]


ENTRIES = {
    41: [("2048", '{"packets":1532,"bytes":204113}'),
         ("34525", '{"packets":87,"bytes":9744}'),
         ("2054", '{"packets":12,"bytes":504}')],
    42: [("0", "1631")],
}


PROGS = {"3f9a0c21": [
    ("proto_stats", "118", "count_proto", "sched_cls", "a04f5eef1d7c2b39",
     "tc veth-b ingress netns blue pref 49152"),
    ("total_pkts", "118", "count_proto", "sched_cls", "a04f5eef1d7c2b39",
     "tc veth-b ingress netns blue pref 49152"),
], "tc-2230": None}


def app(interval=None) -> BpfSessionApp:
    return BpfSessionApp(FixedSource(sessions(), ENTRIES, at=AT, progs=PROGS),
                         interval=interval)


async def until(pilot, predicate, what: str, timeout: float = 10.0) -> None:
    """Wait for the state a snapshot photographs, then for the frame that shows it."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)
    await pilot.pause()


def shown(pilot, table: str) -> dict:
    return pilot.app.main.query_one(f"#{table}").shown


async def scanned(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await until(pilot, lambda: len(shown(pilot, "sessions")) == 4 and
                len(shown(pilot, "maps")) == 2, "the scan's rows")


def test_main_screen(snap_compare):
    assert snap_compare(app(), terminal_size=(120, 40), run_before=scanned)


def test_main_screen_80x24(snap_compare):
    assert snap_compare(app(), terminal_size=(80, 24), run_before=scanned)


def test_processes_tab_of_second_session(snap_compare):
    async def before(pilot):
        await scanned(pilot)
        await pilot.press("down", "tab")  # the sessions table, then the detail tabs
        await pilot.press("right")
        await until(pilot, lambda: list(shown(pilot, "procs")) == ["2230"] and
                    pilot.app.main.query_one("#detail-tabs").active == "tab-procs",
                    "the second session's processes tab")

    assert snap_compare(app(), terminal_size=(100, 30), run_before=before)


def test_programs_tab(snap_compare):
    async def before(pilot):
        await scanned(pilot)
        await pilot.press("4")
        await until(pilot, lambda: len(shown(pilot, "programs")) == 2 and
                    pilot.app.main.query_one("#detail-tabs").active == "tab-programs",
                    "the first session's programs tab")

    assert snap_compare(app(), terminal_size=(120, 30), run_before=before)


def test_filtered_by_netns(snap_compare):
    async def before(pilot):
        await scanned(pilot)
        pilot.app.main.query_one("#netns").value = "red"
        await until(pilot, lambda: list(shown(pilot, "sessions")) == ["tc-2230"] and
                    list(shown(pilot, "maps")) == ["5"], "the red session alone")

    assert snap_compare(app(), terminal_size=(100, 30), run_before=before)


def test_map_view(snap_compare):
    async def before(pilot):
        await scanned(pilot)
        await pilot.press("m")
        await pilot.app.workers.wait_for_complete()
        await until(pilot, lambda: len(getattr(pilot.app.screen.query_one("#entries"),
                                               "shown", {})) == 3, "the map's entries")

    assert snap_compare(app(), terminal_size=(100, 24), run_before=before)


def test_end_confirmation(snap_compare):
    assert snap_compare(app(), terminal_size=(100, 30), run_before=scanned, press=["k"])


def test_light_theme(snap_compare, monkeypatch):
    monkeypatch.setenv("BPFSESSION_TUI_THEME", "light")
    assert snap_compare(app(), terminal_size=(100, 30), run_before=scanned)


def test_no_color(snap_compare, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(app(), terminal_size=(100, 30), run_before=scanned)


def test_help_80x24(snap_compare):
    async def before(pilot):
        await scanned(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: type(pilot.app.screen).__name__ == "HelpScreen", "help")

    assert snap_compare(app(), terminal_size=(80, 24), run_before=before)


def test_sorted_by_age(snap_compare):
    async def before(pilot):
        await scanned(pilot)
        pilot.app.main.query_one("#sessions").sort_by(5)
        await until(pilot, lambda: list(shown(pilot, "sessions")) ==
                    ["tc-2411", "77c1e0aa", "tc-2230", "3f9a0c21"], "sorted by age")

    assert snap_compare(app(), terminal_size=(100, 30), run_before=before)
