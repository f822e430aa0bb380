"""Read-only and partial hand-offs, and the --allow-uid UID:ro policy, on real sessions.

Read-only is the kernel's: an agent's write through its fd fails with EPERM from bpf(2)
(its fd is an O_RDONLY file, opened with BPF_F_RDONLY), while reads work. A partial
attach holds exactly fds 0, 1, 2 and the named maps, as its own /proc/self/fd says.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import subprocess

import pytest

from bpfsession import control, discover, registry
from bpfsession.kernel import bpf
from tests.helpers import BPFSESSION, ROOT, tc_exec_receiver, uniq, wait_for
from tests.sessions_helpers import NOBODY, as_user, by_pid
from tui import rows

pytest_plugins = ["tests.sessions_fixtures"]

# What an agent sees and may do: its fds, and per map fd the kernel id, whether the file
# is read-only (fdinfo flags), the errno of a write through it (0: written) and whether a
# read works. The writes go to key 0 with the bytes 0x07.
AGENT = r"""
import json, os
from bpfsession.kernel import bpf
fds, maps = [], {}
for name in os.listdir("/proc/self/fd"):
    try:
        target = os.readlink(f"/proc/self/fd/{name}")
    except FileNotFoundError:
        continue  # the directory fd listdir used
    fds.append(int(name))
    if target != "anon_inode:bpf-map":
        continue
    fd = int(name)
    with open(f"/proc/self/fdinfo/{name}") as f:
        info = dict(l.split(":", 1) for l in f.read().splitlines())
    key = bytes(int(info["key_size"]))
    try:
        bpf.map_update_elem(fd, key, b"\7" * int(info["value_size"]))
        written = 0
    except OSError as err:
        written = err.errno
    value = bytearray(int(info["value_size"]))
    bpf.map_lookup_elem(fd, key, value)  # a read: raises if refused
    maps[name] = {"id": int(info["map_id"]), "flags": int(info["flags"], 8),
                  "write_errno": written}
env = {k: v for k, v in os.environ.items() if k.startswith("BPF_")}
print(json.dumps({"fds": sorted(fds), "maps": maps, "env": env}))
"""
DATA = ["key", "0", "0", "0", "0", "value", "1", "0", "0", "0", "0", "0", "0", "0"]


def agent(sessions, *args: str, user=None) -> dict:
    # Debian's python3: the venv's interpreter lives under /root, which uid 65534 may not
    # search; the agent needs only the standard library and the checkout (its cwd)
    res = sessions.cli("attach", *args, "run", "/usr/bin/python3", "-c", AGENT, user=user)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def one_line_error(res: subprocess.CompletedProcess) -> str:
    assert res.returncode != 0
    assert res.stderr.startswith("bpfsession: ") and res.stderr.count("\n") == 1, res.stderr
    assert "Traceback" not in res.stderr
    return res.stderr


def map_names(fds: list[int]) -> list[str]:
    return [bpf.map_info(fd).name for fd in fds]


@pytest.fixture(autouse=True)
def _no_bytecode(sessions):
    """For runs as uid 65534: the checkout's __pycache__ is root's."""
    sessions.env["PYTHONDONTWRITEBYTECODE"] = "1"


# ---- read-only hand-offs ----------------------------------------------------------------


def test_read_only_attach_writes_fail_in_the_kernel(sessions, two_maps):
    s = sessions.new(two_maps)
    seen = agent(sessions, "--read-only", s.name)
    assert seen["fds"] == [0, 1, 2, 3, 4]
    for fd, m in seen["maps"].items():
        assert m["flags"] & 3 == os.O_RDONLY, fd
        assert m["write_errno"] == errno.EPERM, fd
    assert {m["id"] for m in seen["maps"].values()} == set(s.map_ids)
    # the same session without --read-only: writes go through
    seen = agent(sessions, s.name)
    assert [m["write_errno"] for m in seen["maps"].values()] == [0, 0]
    assert all(m["flags"] & 3 == os.O_RDWR for m in seen["maps"].values())


def test_read_only_agent_update_is_eperm_dump_works(sessions, two_maps):
    s = sessions.new(two_maps)
    bpf_cli = shlex.join(BPFSESSION)
    script = (f"{bpf_cli} map update BPF_MAP1 {' '.join(DATA)}; echo status=$?; "
              f"{bpf_cli} map dump BPF_MAP1 -j")
    res = sessions.cli("attach", "--read-only", s.name, "run", "sh", "-c", script)
    assert res.returncode == 0
    assert res.stderr.startswith("bpfsession: cannot update BPF_MAP1") and \
        "handed over read-only" in res.stderr and res.stderr.count("\n") == 1
    status, _, dump = res.stdout.partition("\n")
    assert status == "status=1"
    assert len(json.loads(dump)) == 4  # the array's four entries, all zero
    assert all(e["value"] == ["0x00"] * 8 for e in json.loads(dump))


def test_read_only_attach_to_a_tc_session_reopens_by_id(sessions, two_maps):
    s = sessions.tc(two_maps)  # no supervisor: pidfd_getfd, then BPF_F_RDONLY by id (root)
    seen = agent(sessions, "--read-only", s.id)
    assert [m["write_errno"] for m in seen["maps"].values()] == [errno.EPERM] * 2


def test_new_read_only_holds_read_only_fds_and_show_marks_them(sessions, two_maps):
    s = sessions.new(two_maps, flags=("--read-only",))
    for fd in (3, 4):  # the session's own command
        with open(f"/proc/{s.root}/fdinfo/{fd}") as f:
            assert int(next(x for x in f if x.startswith("flags:")).split()[1], 8) & 3 == 0
    seen = agent(sessions, s.name)  # no --read-only asked: the session has nothing else
    assert [m["write_errno"] for m in seen["maps"].values()] == [errno.EPERM] * 2
    # an agent that stays: show lists its fds read-only too
    agent_proc = subprocess.Popen([*BPFSESSION, "attach", s.name, "run", "sleep", "300"],
                                  env=sessions.env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
    try:
        def listed():
            doc = json.loads(sessions.cli("show", s.name, "-j").stdout)
            return doc if len(doc["processes"]) == 2 else None

        doc = wait_for(listed, what="the agent in show -j")
        assert doc["read_only"] is True
        assert [m["read_only"] for m in doc["maps"]] == [True, True]
        for p in doc["processes"]:
            assert [(f["fd"], f["read_only"]) for f in p["map_fds"]] == [(3, True), (4, True)]
            assert {str(f["fd"]): f["id"] for f in p["map_fds"]} == p["maps"]
        text = sessions.cli("show", s.name).stdout
        assert "3(ro),4(ro)" in text and "allow_uids -  read-only" in text
        # the TUI's processes and maps tabs, from the same discovery
        found = discover.scan(run_dir=sessions.run_dir)
        tui_s = next(x for x in found if x.id == s.id)
        assert [rows.process_row(p)[3] for p in tui_s.processes] == ["3(ro),4(ro)"] * 2
        assert [rows.map_row(m)[1] for m in tui_s.maps] == ["3(ro)", "4(ro)"]
    finally:
        os.killpg(agent_proc.pid, 9)
        agent_proc.wait()


def test_show_marks_only_the_read_only_agents_fds(sessions, two_maps):
    s = sessions.new(two_maps)
    agent_proc = subprocess.Popen(
        [*BPFSESSION, "attach", "--read-only", "--maps", map_names(two_maps)[0], s.name,
         "run", "sleep", "300"], env=sessions.env, cwd=ROOT, stdin=subprocess.DEVNULL,
        start_new_session=True)
    try:
        def agent_row():
            doc = json.loads(sessions.cli("show", s.id, "-j").stdout)
            rows = [p for p in doc["processes"] if p["comm"] == "sleep" and p["pid"] != s.root]
            return rows[0] if rows else None

        row = wait_for(agent_row, what="the agent in show -j")
        assert row["map_fds"] == [{"fd": 3, "id": s.map_ids[0], "read_only": True}]
        root = by_pid([json.loads(sessions.cli("show", s.id, "-j").stdout)], s.root)
        assert [f["read_only"] for f in root["processes"][0]["map_fds"]] == [False, False]
    finally:
        os.killpg(agent_proc.pid, 9)
        agent_proc.wait()


# ---- partial hand-offs ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["new", "tc"])
def test_partial_attach_holds_exactly_the_named_maps(sessions, two_maps, kind):
    s = sessions.new(two_maps) if kind == "new" else sessions.tc(two_maps)
    first, second = map_names(two_maps)
    seen = agent(sessions, "--maps", second, s.id)
    assert seen["fds"] == [0, 1, 2, 3]
    assert seen["maps"]["3"]["id"] == s.map_ids[1]
    env = {k: v for k, v in seen["env"].items() if k != "BPF_OBJ"}
    assert env == {"BPF_NUM_MAPS": "1", "BPF_MAP1": "3",  # the original entry id
                   f"BPF_MAP_{second.upper()}": "3"}
    seen = agent(sessions, "--maps", f"{second},BPF_MAP0", s.id)  # the session's order
    assert seen["fds"] == [0, 1, 2, 3, 4]
    assert [seen["maps"][fd]["id"] for fd in ("3", "4")] == s.map_ids
    assert seen["env"]["BPF_MAP0"] == "3" and seen["env"]["BPF_MAP1"] == "4"


def test_bad_maps_names_are_one_line(sessions, two_maps, make_map):
    s = sessions.new(two_maps)
    err = one_line_error(sessions.cli("attach", "--maps", "nope", s.name, "run", "true"))
    assert "has no map 'nope'" in err and "BPF_MAP0" in err
    one_line_error(sessions.cli("attach", "--maps", "BPF_MAP9", s.name, "run", "true"))
    err = one_line_error(sessions.cli("attach", "--maps", ",", s.name, "run", "true"))
    assert "NAME[,NAME...]" in err
    err = one_line_error(sessions.cli("send", "/nonexistent", "--maps", "x"))
    assert "--maps must follow --session" in err
    err = one_line_error(sessions.cli("send", "/nonexistent", "--session", s.name, "--maps",
                                      "nope"))
    assert "has no map 'nope'" in err
    err = one_line_error(sessions.cli("send", "/nonexistent", "--session", s.name, "--maps",
                                      "a", "--maps", "b"))
    assert "two --maps" in err
    same = uniq("d")
    twin = sessions.new([make_map("array", 4, 8, 4, same), make_map("array", 4, 8, 4, same)])
    err = one_line_error(sessions.cli("attach", "--maps", same, twin.name, "run", "true"))
    assert "2 maps named" in err and "BPF_MAP0 or BPF_MAP1" in err


def test_the_server_refuses_ids_it_does_not_hold(sessions, two_maps):
    s = sessions.new(two_maps)
    for bad in ({"ids": [0]}, {"ids": []}, {"ids": "1"}, {"read_only": 1}):
        with pytest.raises(control.ControlError, match="refused to attach"):
            control.request(s.entry["control"], {0}, {"op": "attach", **bad}, "s")


# ---- the --allow-uid UID:ro policy --------------------------------------------------------


def test_allow_uid_ro_user_cannot_write_a_plain_one_can(sessions, two_maps):
    ro = sessions.new(two_maps, flags=("--allow-uid", f"{NOBODY}:ro"))
    rw = sessions.new(two_maps, flags=("--allow-uid", str(NOBODY)))
    assert ro.entry["read_only_uids"] == [NOBODY] and ro.entry["allow_uids"] == [NOBODY]
    nobody = as_user(NOBODY)
    seen = agent(sessions, ro.name, user=nobody)
    assert [m["write_errno"] for m in seen["maps"].values()] == [errno.EPERM] * 2
    seen = agent(sessions, rw.name, user=nobody)
    assert [m["write_errno"] for m in seen["maps"].values()] == [0, 0]
    seen = agent(sessions, ro.name)  # root is not restricted by the policy
    assert [m["write_errno"] for m in seen["maps"].values()] == [0, 0]
    # `map ... session S NAME` through the control socket
    name = map_names(two_maps)[1]
    err = one_line_error(sessions.cli("map", "update", "session", ro.name, name, *DATA,
                                      user=nobody))
    assert "handed over read-only" in err
    dump = sessions.cli("map", "dump", "session", ro.name, name, "-j", user=nobody)
    assert dump.returncode == 0 and len(json.loads(dump.stdout)) == 4
    res = sessions.cli("map", "update", "session", rw.name, name, *DATA, user=nobody)
    assert res.returncode == 0, res.stderr
    show = json.loads(sessions.cli("show", ro.name, "-j").stdout)
    assert show["read_only_uids"] == [NOBODY]
    assert f"allow_uids {NOBODY}:ro" in sessions.cli("show", ro.name).stdout


def test_allow_uid_ro_for_root_or_a_bad_form_is_one_line(sessions):
    one_line_error(sessions.cli("new", "--allow-uid", "0:ro", "imp", "/tmp/x", "run", "true"))
    err = one_line_error(sessions.cli("new", "--allow-uid", "7:rw", "imp", "/x"))
    assert "UID[:ro]" in err


def test_registry_validates_the_policy_fields(sessions, two_maps):
    s = sessions.new(two_maps)
    entry = dict(s.entry)
    assert registry.problem(entry, sessions.run_dir, s.id) is None
    for key, bad in (("read_only", 1), ("read_only_uids", ["0"]), ("read_only_uids", 3)):
        assert registry.problem({**entry, key: bad}, sessions.run_dir, s.id) == f"bad {key!r}"


# ---- send ---------------------------------------------------------------------------------

FLAGS = ('echo NUM $BPF_NUM_MAPS; for v in $(env | grep "^BPF_MAP[0-9]*=" | cut -d= -f1); '
         'do eval fd=\\$$v; echo $v $(grep ^map_id: /proc/self/fdinfo/$fd | cut -f2) '
         '$(grep ^flags: /proc/self/fdinfo/$fd | cut -f2); done')


def _receive(sess_tmp, *send_args: str, sessions) -> dict[str, tuple[int, int]]:
    uds = str(sess_tmp / uniq("r"))
    proc = tc_exec_receiver(uds, FLAGS)
    try:
        res = sessions.cli("send", uds, *send_args)
        assert res.returncode == 0, res.stderr
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    seen, num = {}, -1
    for line in out.splitlines():
        if line.startswith("BPF_MAP"):
            var, map_id, flags = line.split()
            seen[var] = (int(map_id), int(flags, 8) & 3)
        elif line.startswith("NUM "):
            num = int(line.split()[1])
    assert num == len(seen), out
    return seen


def test_send_read_only_to_a_tc_receiver(sessions, sess_tmp, two_maps):
    ids = [bpf.map_info(fd).id for fd in two_maps]
    seen = _receive(sess_tmp, "--read-only", "--map-id", str(ids[0]), "--map-id",
                    str(ids[1]), sessions=sessions)
    assert seen == {"BPF_MAP0": (ids[0], os.O_RDONLY), "BPF_MAP1": (ids[1], os.O_RDONLY)}
    seen = _receive(sess_tmp, "--map-id", str(ids[0]), sessions=sessions)
    assert seen == {"BPF_MAP0": (ids[0], os.O_RDWR)}
    # the receiver's own word on it: the -j report says so too
    uds = str(sess_tmp / uniq("r"))
    proc = tc_exec_receiver(uds, "true")
    try:
        res = sessions.cli("send", uds, "-j", "--read-only", "--map-id", str(ids[1]))
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["read_only"] is True
    finally:
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # nothing arrived: tc exec would wait forever
            proc.kill()
            proc.communicate()


def test_send_session_maps_read_only(sessions, sess_tmp, two_maps):
    s = sessions.new(two_maps)
    second = map_names(two_maps)[1]
    seen = _receive(sess_tmp, "--read-only", "--session", s.name, "--maps", second,
                    sessions=sessions)
    assert seen == {"BPF_MAP1": (s.map_ids[1], os.O_RDONLY)}  # the session's entry id


@pytest.mark.parametrize("flags", [("--read-only",), ("--allow-uid", "4242:ro")])
def test_a_supervisor_that_may_not_reopen_fails_before_the_command(sess_tmp, two_maps, flags):
    """Not root: no CAP_SYS_ADMIN for BPF_MAP_GET_FD_BY_ID, so the policy cannot be kept:
    one line once the maps are in, the maps closed, nothing spawned."""
    from bpfsession import wire

    run_dir = sess_tmp / uniq("run")
    run_dir.mkdir(mode=0o755)
    os.chown(run_dir, NOBODY, NOBODY)
    uds, marker = str(sess_tmp / uniq("u")), sess_tmp / uniq("ran")
    env = {**os.environ, "BPFSESSION_RUN_DIR": str(run_dir), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen([*as_user(NOBODY), *BPFSESSION, "new", *flags, "imp", uds, "run",
                             "touch", str(marker)], env=env, cwd=ROOT, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        wait_for(lambda: os.path.exists(uds), what="the receiver's socket")
        wire.send_maps(uds, "o", [(wire.MapEntry(id=i), fd) for i, fd in enumerate(two_maps)],
                       to_uids=[NOBODY])
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1
    assert err.startswith("bpfsession: cannot re-open map id ") and "CAP_SYS_ADMIN" in err
    assert err.count("\n") == 1 and not marker.exists()
    assert os.listdir(run_dir) == [] and not os.path.exists(uds)


def test_tui_processes_tab_marks_read_only_fds(sessions, two_maps):
    """The real app (headless, Pilot) over the real discovery of a --read-only session."""
    import asyncio

    from tests.test_tui_keys import until
    from tests.tui_screen import screen_text
    from tui.app import BpfSessionApp
    from tui.source import FixedSource
    from tui.widgets import KeyedTable

    s = sessions.new(two_maps, flags=("--read-only",))
    found = [x for x in discover.scan(run_dir=sessions.run_dir) if x.id == s.id]

    async def main():
        app = BpfSessionApp(FixedSource(found, {}), interval=None)
        async with app.run_test(size=(120, 30)) as pilot:
            table = app.main.query_one("#sessions", KeyedTable)
            await until(pilot, lambda: len(table.shown) == 1, "the session")
            await pilot.press("2")
            await pilot.pause()
            return screen_text(app)

    text = asyncio.run(main())
    assert f"{s.root}" in text and "3(ro),4(ro)" in text
