"""`bpfsession attach` against real sessions: the control socket of `bpfsession new`'s
supervisor and pidfd_getfd on a `tc exec` session's root; the agent's view is read from
its own /proc (fds, fdinfo map ids, netns)."""

from __future__ import annotations

import gc
import json
import os
import signal
import struct
import subprocess
import sys

import pytest

from bpfsession import attach, discover
from bpfsession.errors import BpfSessionError
from bpfsession.kernel import bpf, pidfd
from tests.helpers import (
    BPFSESSION,
    ROOT,
    SHOW_MAPS,
    foreground_child,
    open_fds,
    parse_show_maps,
    send_udp,
    uniq,
    wait_for,
)
from tests.new_helpers import gone
from tests.sessions_helpers import NOBODY, as_user, by_pid

pytest_plugins = ["tests.sessions_fixtures"]

# What an agent sees: its fds (0-2 and the maps, nothing else), the kernel id behind each
# map fd, its BPF_*/BPFSESSION_* variables and its network namespace.
AGENT = r"""
import json, os
fds, ids = [], {}
for name in os.listdir("/proc/self/fd"):
    try:
        target = os.readlink(f"/proc/self/fd/{name}")
    except FileNotFoundError:
        continue  # the directory fd listdir used
    fds.append(int(name))
    if target == "anon_inode:bpf-map":
        with open(f"/proc/self/fdinfo/{name}") as f:
            ids[name] = int(next(l for l in f if l.startswith("map_id:")).split()[1])
env = {k: v for k, v in os.environ.items() if k.startswith(("BPF_", "BPFSESSION_"))}
print(json.dumps({"fds": sorted(fds), "ids": ids, "env": env,
                  "net": os.readlink("/proc/self/ns/net")}))
"""
U64 = struct.Struct("=Q")


def run_agent(sessions, spec: str, user=None) -> dict:
    res = sessions.cli("attach", spec, "run", sys.executable, "-c", AGENT, user=user)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_new_session_in_netns_via_control_socket(sessions, tc_counter, counter_fds):
    ns = tc_counter.veth.netns
    name = uniq("ctl")
    s = sessions.new(counter_fds, netns=ns, name=name, obj="counter")
    seen = run_agent(sessions, name)
    del seen["env"]["BPFSESSION_RUN_DIR"]  # inherited, like everything else of attach's
    assert seen["fds"] == [0, 1, 2, 3, 4]
    assert seen["ids"] == {"3": s.map_ids[0], "4": s.map_ids[1]}
    assert seen["env"] == {
        "BPF_NUM_MAPS": "2", "BPF_MAP0": "3", "BPF_MAP1": "4", "BPF_MAP_PROTO_STATS": "3",
        "BPF_MAP_TOTAL_PKTS": "4", "BPF_OBJ": "counter", "BPFSESSION_ID": s.id,
        "BPFSESSION_NAME": name, "BPFSESSION_NETNS": ns}
    assert seen["net"] == os.readlink(f"/proc/{s.root}/ns/net")
    assert seen["net"] != os.readlink("/proc/self/ns/net")


def test_tc_session_via_pidfd_getfd(sessions, two_maps, netns):
    s = sessions.tc(two_maps, netns=netns)
    seen = run_agent(sessions, s.id)
    assert seen["fds"] == [0, 1, 2, 3, 4]
    assert seen["ids"] == {"3": s.map_ids[0], "4": s.map_ids[1]}
    assert seen["env"]["BPF_MAP0"] == "3" and seen["env"]["BPF_MAP1"] == "4"
    assert seen["env"]["BPFSESSION_ID"] == s.id and seen["env"]["BPFSESSION_NETNS"] == netns
    assert seen["net"] == f"net:[{os.stat(f'/run/netns/{netns}').st_ino}]"


def test_entry_ids_follow_the_session(sessions, make_map):
    """BPF_MAP<id> keeps the sender's entry ids, not positions (ids 5 and 9 here)."""
    from bpfsession import wire

    fds = [make_map(), make_map()]
    uds = str(sessions.tmp / uniq("u"))
    proc = subprocess.Popen(["tc", "exec", "bpf", "imp", uds, "run", "sleep", "300"],
                            start_new_session=True)
    try:
        from tests.helpers import map_ids_of, wait_for_socket

        wait_for_socket(uds)
        wire.send_maps(uds, "", [(wire.MapEntry(id=5), fds[0]), (wire.MapEntry(id=9), fds[1])])
        wait_for(lambda: len(map_ids_of(proc.pid)) == 2, what="maps in the receiver")
        seen = run_agent(sessions, str(proc.pid))
        assert {k for k in seen["env"] if k.startswith("BPF_MAP") and k[7:].isdigit()} == \
            {"BPF_MAP5", "BPF_MAP9"}
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("script,status", [("exit 7", 7), ("kill -TERM $$", 143),
                                           ("kill -KILL $$", 137)])
def test_exit_status_is_the_commands(sessions, two_maps, script, status):
    s = sessions.new(two_maps, name=uniq("st"))
    res = sessions.cli("attach", s.id, "run", "sh", "-c", script)
    assert res.returncode == status, res.stderr


def test_command_not_found(sessions, two_maps):
    s = sessions.tc(two_maps)
    res = sessions.cli("attach", s.id, "run", "no-such-command-here")
    assert res.returncode == 127
    assert res.stderr.startswith("bpfsession: cannot run 'no-such-command-here'")


def test_default_is_a_shell(sessions, two_maps):
    s = sessions.tc(two_maps)
    env = {**sessions.env, "SHELL": "/bin/sh"}
    res = subprocess.run([*BPFSESSION, "attach", s.id], input='echo "n=$BPF_NUM_MAPS"; exit 5',
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert res.returncode == 5 and res.stdout.strip() == "n=2"


@pytest.mark.parametrize("rest", [("true",), ("run",)])
def test_bad_grammar(sessions, two_maps, rest):
    s = sessions.tc(two_maps)
    res = sessions.cli("attach", s.id, *rest)
    assert res.returncode == 1 and res.stderr.startswith("bpfsession: ")
    assert res.stderr.count("\n") == 1


def test_write_via_agent_read_via_session(sessions, tc_counter, counter_fds):
    """An agent writes through its fd; the session's own fd (taken from its root with
    pidfd_getfd) reads it back; packets counted by tc move what the next agent reads."""
    s = sessions.new(counter_fds, netns=tc_counter.veth.netns, name=uniq("rw"))
    write = ("import os, struct; from bpfsession.kernel import bpf; "
             "bpf.map_update_elem(int(os.environ['BPF_MAP_TOTAL_PKTS']), bytes(4), "
             "struct.pack('=Q', 1000))")
    res = sessions.cli("attach", s.name, "run", sys.executable, "-c", write)
    assert res.returncode == 0, res.stderr

    def session_reads() -> int:
        pfd = pidfd.pidfd_open(s.root)
        try:
            fd = pidfd.pidfd_getfd(pfd, 4)  # BPF_MAP1 = total_pkts in the session's root
        finally:
            os.close(pfd)
        try:
            value = bytearray(8)
            assert bpf.map_lookup_elem(fd, bytes(4), value)
            return U64.unpack(value)[0]
        finally:
            os.close(fd)

    assert session_reads() == 1000
    send_udp(tc_counter.veth.ns_ip, 5)
    moved = wait_for(lambda: (v := session_reads()) >= 1005 and v, what="packets counted")
    read = ("import os, struct; from bpfsession.kernel import bpf; v = bytearray(8); "
            "bpf.map_lookup_elem(int(os.environ['BPF_MAP1']), bytes(4), v); "
            "print(struct.unpack('=Q', v)[0])")
    res = sessions.cli("attach", s.name, "run", sys.executable, "-c", read)
    assert res.returncode == 0 and int(res.stdout) >= moved


def test_reattach_after_the_agent_was_killed(sessions, two_maps):
    s = sessions.new(two_maps, name=uniq("re"))
    agent = subprocess.Popen([*BPFSESSION, "attach", s.name, "run", "sleep", "300"],
                             env=sessions.env, cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        def agent_listed():
            got = by_pid(sessions.list_json(), s.root)
            sleepers = [p for p in got["processes"] if p["ppid"] == agent.pid]
            return sleepers and sleepers[0]

        # Listed under the session it attached to (it carries BPFSESSION_ID).
        listed = wait_for(agent_listed, what="the agent in the session's processes")
        assert set(listed["maps"].values()) == set(s.map_ids)
        os.kill(listed["pid"], signal.SIGKILL)
        assert agent.wait(10) == 137, agent.stderr.read()
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        agent.stderr.close()
    got = by_pid(sessions.list_json(), s.root)
    assert [p["pid"] for p in got["processes"]] == [s.root]
    seen = run_agent(sessions, s.name)
    assert sorted(seen["ids"].values()) == sorted(s.map_ids)


def test_attach_after_supervisor_sigkill_uses_pidfd(sessions, two_maps):
    s = sessions.new(two_maps, name=uniq("orph"))
    os.kill(s.supervisor, signal.SIGKILL)
    s.launcher.wait(10)
    seen = run_agent(sessions, s.name)
    assert seen["ids"] == {"3": s.map_ids[0], "4": s.map_ids[1]}
    assert seen["env"]["BPFSESSION_ID"] == s.id


def test_unauthorised_uid_is_refused_by_the_supervisor(sessions, two_maps):
    s = sessions.new(two_maps, name=uniq("no"))
    res = sessions.cli("attach", s.name, "run", "true", user=as_user(NOBODY))
    assert res.returncode == 1
    assert res.stderr.startswith(f"bpfsession: session {s.name} refused to attach: "
                                 f"uid {NOBODY} may not attach")
    assert res.stderr.count("\n") == 1


def test_allowed_uid_attaches(sessions, two_maps):
    s = sessions.new(two_maps, name=uniq("yes"), flags=("--allow-uid", str(NOBODY)))
    # A shell agent: the venv's interpreter lives under /root, out of nobody's reach.
    res = sessions.cli("attach", s.name, "run", "sh", "-c", f'{SHOW_MAPS}; id -u',
                       user=as_user(NOBODY))
    assert res.returncode == 0, res.stderr
    assert parse_show_maps(res.stdout) == (2, {"BPF_MAP0": s.map_ids[0],
                                               "BPF_MAP1": s.map_ids[1]})
    assert res.stdout.split()[-1] == str(NOBODY)


def test_ptrace_refusal_is_clear(sessions, two_maps):
    """A tc session of uid 1000; the attacher's effective uid is 1000 (it may read the
    session's /proc files) but its real uid is not: pidfd_getfd's ptrace check refuses."""
    s = sessions.tc(two_maps, user=as_user(1000))
    res = sessions.cli("attach", s.id, "run", "true", user=as_user(NOBODY, euid=1000))
    assert res.returncode == 1, res.stdout
    assert res.stderr.startswith(f"bpfsession: not allowed to take session {s.id}'s maps "
                                 f"from pid {s.root}: that needs ptrace rights")
    assert res.stderr.count("\n") == 1


@pytest.mark.parametrize("kind", ["tc", "new"])
def test_session_ended_meanwhile(sessions, two_maps, kind):
    started = sessions.tc(two_maps) if kind == "tc" else sessions.new(two_maps, name=uniq("e"))
    session = discover.find(started.id, discover.scan(run_dir=sessions.run_dir))
    if started.supervisor:
        os.kill(started.supervisor, signal.SIGKILL)
        started.launcher.wait(10)
    os.kill(started.root, signal.SIGKILL)
    if kind == "tc":
        started.launcher.wait(10)  # tc exec'd the command: it is our child
    else:
        wait_for(lambda: gone(started.root), what="the root to go")
    before = open_fds()
    with pytest.raises(BpfSessionError, match="ended meanwhile"):
        attach.fetch_maps(session)
    assert open_fds() == before
    discover.scan(run_dir=sessions.run_dir)  # prunes the dead supervisor's entry


def test_fetch_maps_owns_nothing_it_returns_and_leaks_nothing(sessions, two_maps):
    new = sessions.new(two_maps, name=uniq("f"), obj="fobj")
    tc = sessions.tc(two_maps)
    # tc exec sets BPF_NUM_MAPS only in the command it execs: wait until both are seen.
    def both_listed():
        found = discover.scan(run_dir=sessions.run_dir)
        return found if {new.id, tc.id} <= {x.id for x in found} else None

    listing = wait_for(both_listed, what="both sessions listed")
    sup_before = open_fds(new.supervisor)
    gc.collect()  # earlier tests' Popen pipes, closed by the collector mid-test, are not ours
    before = open_fds()
    for started in (new, tc):
        for _ in range(5):
            obj, pairs = attach.fetch_maps(discover.find(started.id, listing))
            assert obj == ("fobj" if started is new else "")
            assert [e.id for e, _ in pairs] == [0, 1]
            assert [bpf.map_info(fd).id for _, fd in pairs] == started.map_ids
            assert [(e.type, e.size_key, e.size_value, e.max_elem) for e, _ in pairs] == \
                [(1, 4, 8, 16), (2, 4, 8, 4)]
            for _, fd in pairs:
                os.close(fd)
    assert open_fds() == before
    assert open_fds(new.supervisor) == sup_before


def test_exec_mode_session_is_registered_without_supervisor(sessions, two_maps):
    """`new --exec` registers the command itself: listed as registered, no supervisor,
    attach takes the maps with pidfd_getfd."""
    s = sessions.new(two_maps, name=uniq("x"), flags=("--exec",))
    got = by_pid(sessions.list_json(), s.root)
    assert got["id"] == s.id and got["registered"] and got["supervisor"] is None
    assert got["control"] is None
    seen = run_agent(sessions, s.name)
    assert seen["ids"] == {"3": s.map_ids[0], "4": s.map_ids[1]}
    # Nobody is left to remove the entry when the command ends: the next scan prunes it.
    s.launcher.terminate()
    s.launcher.wait(10)
    assert by_pid(sessions.list_json(), s.root) is None
    assert os.listdir(sessions.run_dir) == []


def test_interactive_shell_on_a_terminal(sessions, two_maps):
    """A real pty: the shell gets the terminal, Ctrl-C reaches the foreground job, not
    attach; `exit 3` is attach's status."""
    import pexpect

    s = sessions.tc(two_maps)
    env = {**sessions.env, "SHELL": "/bin/sh", "PS1": "att$ "}
    child = pexpect.spawn(BPFSESSION[0], [*BPFSESSION[1:], "attach", s.id], env=env,
                          cwd=str(ROOT), encoding="utf-8", timeout=20)
    try:
        child.expect_exact("att$ ")
        child.sendline('echo "maps=$BPF_NUM_MAPS id=$BPFSESSION_ID"')
        child.expect_exact(f"maps=2 id={s.id}")
        child.expect_exact("att$ ")
        child.sendline("sleep 30")
        wait_for(lambda: foreground_child(child.pid, "sleep"), what="sleep in the foreground")
        child.sendintr()
        child.expect_exact("att$ ")
        child.sendline("exit 3")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 3


def test_attach_keep_caps_and_no_new_privs(sessions, two_maps):
    """The agent keeps only the named capabilities and no_new_privs, like `new`'s flags,
    and still writes through the fd it was handed (a held map fd needs no capability)."""
    s = sessions.new(two_maps, name=uniq("caps"))
    agent = ("from bpfsession.kernel import bpf; "
             "bpf.map_update_elem(3, bytes([1, 0, 0, 0]), bytes([7] + [0] * 7)); "
             "print(open('/proc/self/status').read())")
    res = sessions.cli("attach", "--keep-caps", "cap_net_admin", "--no-new-privs", s.name,
                       "run", sys.executable, "-c", agent)
    assert res.returncode == 0, res.stderr
    status = dict(line.split(":\t", 1) for line in res.stdout.splitlines() if ":\t" in line)
    want = f"{1 << 12:016x}"  # CAP_NET_ADMIN alone
    assert (status["CapEff"], status["CapBnd"], status["NoNewPrivs"]) == (want, want, "1")
    value = bytearray(8)
    assert bpf.map_lookup_elem(two_maps[0], bytes([1, 0, 0, 0]), value)
    assert value == bytes([7] + [0] * 7)
