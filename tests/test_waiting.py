"""A `bpfsession new` still waiting for its maps: listed as waiting (list, list -j, show,
the TUI), the same entry running once `bpfsession send` fed it, seen by an unprivileged
`list`; the banner on a terminal (a real pty), never on a pipe or under -q."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import datetime

import pexpect
import pytest

from bpfsession.kernel import bpf
from tests.helpers import BPFSESSION, ROOT, uniq, wait_for, wait_for_socket
from tests.sessions_helpers import NOBODY, as_user

pytest_plugins = ["tests.sessions_fixtures"]


@pytest.fixture
def receivers(sessions):
    """Start `bpfsession new ... imp UDS run sleep 60` without feeding it; all ended at
    teardown (before `sessions` checks that the registry is empty)."""
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> tuple[subprocess.Popen, str]:
        uds = str(sessions.tmp / uniq("w"))
        proc = subprocess.Popen([*BPFSESSION, "new", *args, "imp", uds, "run", "sleep", "60"],
                                env=sessions.env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        procs.append(proc)
        return proc, uds

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.communicate(timeout=20)


def listed(sessions, pid: int, **kw) -> dict | None:
    return next((s for s in sessions.list_json(**kw) if s["pid"] == pid), None)


def waiting_doc(sessions, proc) -> dict:
    return wait_for(lambda: (d := listed(sessions, proc.pid)) and d["state"] == "waiting"
                    and d, what="the waiting receiver in list -j")


def test_waiting_receiver_is_listed_then_runs_after_send(sessions, receivers, make_map):
    name = uniq("wt")
    proc, uds = receivers("--name", name)
    wait_for_socket(uds)
    doc = waiting_doc(sessions, proc)
    assert (doc["name"], doc["obj"], doc["maps"], doc["socket"]) == (name, "", [], uds)
    assert doc["supervisor"] == proc.pid and doc["registered"] and doc["control"] is None
    since = datetime.fromisoformat(doc["since"])
    assert abs(since.timestamp() - datetime.now().timestamp()) < 60
    assert doc["started"] == doc["since"] and doc["command"] == ["sleep", "60"]

    text = sessions.cli("list")
    header, *lines = text.stdout.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "STATE", "PID"]
    row = next(line.split() for line in lines if line.split()[0] == doc["id"])
    assert row[1:4] == [name, "waiting", str(proc.pid)]
    show = sessions.cli("show", name)
    assert show.returncode == 0, show.stderr
    assert f"\twaiting for maps on {uds} since {doc['since'][:19].replace('T', ' ')}\n" \
        in show.stdout
    shown = json.loads(sessions.cli("show", doc["id"], "-j").stdout)
    assert (shown["state"], shown["since"], shown["maps"]) == ("waiting", doc["since"], [])
    refused = sessions.cli("attach", name, "run", "true")
    assert refused.returncode == 1 and refused.stderr == (
        f"bpfsession: session {name} has no maps yet: it waits for them on {uds} "
        "(`bpfsession send` them there, then try again)\n")

    fd = make_map("array", name=uniq("wm"))
    map_id = bpf.map_info(fd).id
    sent = sessions.cli("send", uds, "--map-id", str(map_id))
    assert sent.returncode == 0, sent.stderr
    running = wait_for(lambda: (d := next((s for s in sessions.list_json()
                                           if s["id"] == doc["id"]), None))
                       and d["state"] == "running" and d, what="the same session running")
    assert running["id"] == doc["id"] and running["name"] == name
    assert running["supervisor"] == proc.pid and running["pid"] != proc.pid
    assert [m["id"] for m in running["maps"]] == [map_id]
    assert running["since"] == running["started"]
    row = next(line.split() for line in sessions.cli("list").stdout.splitlines()
               if line.startswith(doc["id"]))
    assert row[2] == "running"


def test_unnamed_waiting_receiver_goes_by_its_id(sessions, receivers):
    proc, uds = receivers()
    doc = waiting_doc(sessions, proc)
    assert doc["name"] == doc["id"]  # like a tc-PID session: the id stands for the name
    with open(os.path.join(sessions.run_dir, doc["id"] + ".json")) as f:
        assert json.load(f)["name"] is None  # the registry keeps "no name given"
    assert sessions.cli("show", doc["id"]).returncode == 0


def test_every_session_is_running_otherwise(sessions, two_maps):
    tc = sessions.tc(two_maps)
    new = sessions.new(two_maps[:1], name=uniq("wr"))
    docs = {d["pid"]: d for d in sessions.list_json()}
    assert docs[tc.root]["state"] == docs[new.root]["state"] == "running"
    assert docs[tc.root]["since"] == docs[tc.root]["started"]


def test_unprivileged_list_shows_a_waiting_receiver(sessions, receivers):
    proc, uds = receivers("--name", uniq("wn"))
    doc = waiting_doc(sessions, proc)
    res = sessions.cli("list", "-j", user=as_user(NOBODY))
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    theirs = next(d for d in json.loads(res.stdout) if d["id"] == doc["id"])
    assert (theirs["state"], theirs["pid"], theirs["socket"]) == ("waiting", proc.pid, uds)
    text = sessions.cli("list", user=as_user(NOBODY))
    assert text.returncode == 0 and "Traceback" not in text.stderr
    assert any(line.split()[:3] == [doc["id"], doc["name"], "waiting"]
               for line in text.stdout.splitlines())
    assert sessions.cli("show", doc["id"], user=as_user(NOBODY)).returncode == 0


def test_tui_shows_the_state_and_the_wait(sessions, receivers, make_map):
    from tests.test_tui import FAST, SIZE, main_screen, select, sessions_table, until
    from tui.app import BpfSessionApp
    from tui.source import LiveSource

    name = uniq("wtui")
    proc, uds = receivers("--name", name)
    doc = waiting_doc(sessions, proc)

    async def drive():
        app = BpfSessionApp(LiveSource(run_dir=sessions.run_dir), interval=FAST)
        async with app.run_test(size=SIZE) as pilot:
            table = sessions_table(app)
            await until(pilot, lambda: doc["id"] in table.shown, what="the waiting row")
            cells = table.shown[doc["id"]]
            assert cells[0] == name and cells[6] == "waiting" and cells[4] == "0"
            await select(pilot, app, doc["id"])
            title = main_screen(app).query_one("#detail-title")
            await until(pilot, lambda: f"waiting for maps on {uds}" in str(title.render()),
                        what="the detail pane saying it waits")
            fd = make_map(name=uniq("wtm"))
            sent = sessions.cli("send", uds, "--map-id", str(bpf.map_info(fd).id))
            assert sent.returncode == 0, sent.stderr
            await until(pilot, lambda: table.shown.get(doc["id"], ())[6:7] == ("running",),
                        what="the same row running")
            assert table.shown[doc["id"]][4] == "1"

    asyncio.run(drive())


# ---- the banner ------------------------------------------------------------------------


def _spawn(sessions, *args: str) -> pexpect.spawn:
    return pexpect.spawn(sys.executable, ["-m", "bpfsession", *args], env=sessions.env,
                         cwd=ROOT, encoding="utf-8", timeout=15, dimensions=(40, 250))


def test_banner_on_a_terminal(sessions, make_map, netns):
    uds = str(sessions.tmp / uniq("b"))
    name = uniq("wb")
    child = _spawn(sessions, "new", "--name", name, "--netns", netns, "imp", uds,
                   "run", "sleep", "0.5")
    try:
        child.expect_exact(f"bpfsession: waiting for maps on {uds}; send them with: "
                           f"bpfsession send {uds} --dev IFACE --ingress --netns {netns}\r\n")
        fds = [make_map(), make_map()]
        sent = sessions.cli("send", uds, *(w for fd in fds
                                            for w in ("--map-id", str(bpf.map_info(fd).id))))
        assert sent.returncode == 0, sent.stderr
        child.expect(rf"bpfsession: session {name} \(([0-9a-f]{{8}})\) started in netns "
                     rf"{netns} with 2 maps\r\n")
        child.expect(pexpect.EOF)
        assert "bpfsession:" not in child.before
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_banner_escapes_outside_strings(sessions, make_map):
    uds = str(sessions.tmp / (uniq("e") + "\x1b[2J"))
    child = _spawn(sessions, "new", "imp", uds, "run", "true")
    try:
        child.expect_exact("bpfsession: waiting for maps on ")
        child.expect_exact("\\x1b[2J")
        wait_for_socket(uds)
        sent = sessions.cli("send", uds, "--map-id", str(bpf.map_info(make_map()).id))
        assert sent.returncode == 0, sent.stderr
        child.expect(r"started in the host's netns with 1 map\r\n")
        child.expect(pexpect.EOF)
        assert "\x1b" not in child.before
    finally:
        child.close(force=True)


def test_quiet_silences_the_banner_on_a_terminal(sessions, make_map):
    uds = str(sessions.tmp / uniq("q"))
    child = _spawn(sessions, "-q", "new", "imp", uds, "run", "sh", "-c", "echo ran")
    try:
        wait_for_socket(uds)
        sent = sessions.cli("send", uds, "--map-id", str(bpf.map_info(make_map()).id))
        assert sent.returncode == 0, sent.stderr
        child.expect(pexpect.EOF)
        assert child.before.strip() == "ran"
    finally:
        child.close(force=True)


def test_no_banner_on_a_pipe(sessions, receivers, make_map):
    proc, uds = receivers()
    waiting_doc(sessions, proc)
    sent = sessions.cli("send", uds, "--map-id", str(bpf.map_info(make_map()).id))
    assert sent.returncode == 0, sent.stderr
    wait_for(lambda: any(d["state"] == "running" and d["supervisor"] == proc.pid
                         for d in sessions.list_json()), what="the session running")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert err == ""


# ---- the registry's word on a waiting entry ---------------------------------------------


WAITING = {"id": "abcdef01", "state": "waiting", "since": "2026-11-29T09:00:00+00:00",
           "name": None, "pid": 4242, "supervisor": 4242, "uid": 0, "obj": "",
           "started": "2026-11-29T09:00:00+00:00", "command": ["sh"], "maps": [],
           "socket": "/tmp/u", "control": None}


@pytest.mark.parametrize(("change", "problem"), [
    ({}, None),
    ({"name": "probe"}, None),
    ({"state": "running"}, "bad or missing 'name'"),  # only a waiting receiver is unnamed
    ({"state": "paused"}, "bad 'state'"),
    ({"since": 5}, "bad 'since'"),
    ({"pid": 4243}, "a waiting entry holds maps or names another process"),
    ({"maps": [{"env": "BPF_MAP0", "fd": 3, "id": 1, "name": "m", "type": "array",
                "key_size": 4, "value_size": 4, "max_entries": 1}]},
     "a waiting entry holds maps or names another process"),
])
def test_registry_validates_a_waiting_entry(change, problem):
    from bpfsession import registry

    assert registry.problem({**WAITING, **change}, "/run/x", "abcdef01") == problem
