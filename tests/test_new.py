"""`bpfsession new`, the real CLI against the real kernel: hand-off, spawn, environment."""

from __future__ import annotations

import os
import re
import signal

from bpfsession.kernel import bpf
from tests.helpers import bpfsession, fdinfo, map_ids_of, run, send_udp, uniq, wait_for
from tests.new_helpers import entries, finish, running, send, wait_entry

pytest_plugins = ["tests.new_fixtures"]


def _ids(fds: list[int]) -> list[int]:
    return [bpf.map_info(fd).id for fd in fds]


def test_two_maps_reach_the_command_with_the_env_contract(launch, make_map, uds):
    fds = [make_map("hash", name="proto_stats"), make_map("array", name="total_pkts")]
    proc = launch("imp", uds, "run", "sh", "-c",
                  "env | grep -E '^BPF(_|SESSION_)' | sort; for fd in 3 4; do "
                  "grep map_id /proc/self/fdinfo/$fd; done; exit 0")
    send(uds, fds, obj="counter")
    status, out, err = finish(proc)
    assert status == 0, err
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert env["BPF_NUM_MAPS"] == "2"
    assert env["BPF_MAP0"] == "3" and env["BPF_MAP1"] == "4"
    assert env["BPF_MAP_PROTO_STATS"] == "3" and env["BPF_MAP_TOTAL_PKTS"] == "4"
    assert env["BPF_OBJ"] == "counter"
    assert env["BPFSESSION_NAME"] == "counter"
    assert re.fullmatch(r"[0-9a-f]{8}", env["BPFSESSION_ID"])
    assert "BPFSESSION_NETNS" not in env
    got = [int(x) for x in re.findall(r"map_id:\s+(\d+)", out)]
    assert got == _ids(fds)
    assert not os.path.exists(uds)


def test_non_contiguous_ids_and_name_collisions(launch, make_map, uds):
    # Kernel names "a.b" and "a_b" both turn into BPF_MAP_A_B: neither gets it.
    fds = [make_map(name="a.b"), make_map(name="a_b"), make_map(name="solo"),
           make_map(name="dup"), make_map(name="dup")]
    proc = launch("imp", uds, "run", "sh", "-c", "env | grep '^BPF_' | sort")
    send(uds, fds, ids=[7, 3, 42, 1000, 5])
    status, out, err = finish(proc)
    assert status == 0, err
    env = dict(line.split("=", 1) for line in out.splitlines())
    assert {k: v for k, v in env.items() if re.fullmatch(r"BPF_MAP\d+", k)} == \
        {"BPF_MAP7": "3", "BPF_MAP3": "4", "BPF_MAP42": "5", "BPF_MAP1000": "6",
         "BPF_MAP5": "7"}
    assert env["BPF_MAP_SOLO"] == "5"
    assert "BPF_MAP_A_B" not in env and "BPF_MAP_DUP" not in env
    assert env["BPF_NUM_MAPS"] == "5"


def test_hundred_maps_in_one_handoff(launch, make_map, uds):
    fds = [make_map("array", 4, 8, 1) for _ in range(100)]
    proc = launch("imp", uds, "run", "sh", "-c",
                  "echo $BPF_NUM_MAPS $BPF_MAP0 $BPF_MAP99; "
                  "for fd in $(seq 3 102); do grep map_id /proc/self/fdinfo/$fd; done")
    send(uds, fds)
    status, out, err = finish(proc)
    assert status == 0, err
    assert out.splitlines()[0] == "100 3 102"
    assert [int(x) for x in re.findall(r"map_id:\s+(\d+)", out)] == _ids(fds)


def test_command_fds_are_exactly_stdio_and_maps(launch, make_map, uds, run_dir):
    # An extra fd the launcher inherits from its parent must not reach the command.
    extra_r, extra_w = os.pipe()
    os.set_inheritable(extra_w, True)
    fds = [make_map(), make_map()]
    try:
        proc = launch("imp", uds, "run", "sleep", "30", pass_fds=(extra_w,))
        assert extra_w in {int(n) for n in os.listdir(f"/proc/{proc.pid}/fd")}
        send(uds, fds)
        entry = wait_entry(run_dir)
        child = entry["pid"]
        assert sorted(os.listdir(f"/proc/{child}/fd"), key=int) == ["0", "1", "2", "3", "4"]
        assert map_ids_of(child) == {3: _ids(fds)[0], 4: _ids(fds)[1]}
        assert int(fdinfo(child, 3)["flags"], 8) & os.O_CLOEXEC == 0
        os.kill(child, 15)
        status, _, _ = finish(proc)
        assert status == 128 + 15
    finally:
        os.close(extra_r)
        os.close(extra_w)


def test_exit_status_is_passed_through(launch, make_map, uds, short_tmp):
    for code in (0, 1, 3, 255):
        path = str(short_tmp / f"s{code}")
        proc = launch("imp", path, "run", "sh", "-c", f"exit {code}")
        send(path, [make_map()])
        assert finish(proc)[0] == code


def test_death_by_signal_is_128_plus_n(launch, make_map, uds):
    proc = launch("imp", uds, "run", "sh", "-c", "kill -USR1 $$")
    send(uds, [make_map()])
    assert finish(proc)[0] == 128 + 10


def test_registry_entry_while_running_and_gone_after(launch, make_map, uds, run_dir):
    fds = [make_map(name="proto_stats")]
    proc = launch("--name", "reg", "--allow-uid", "4242", "imp", uds, "run", "sleep", "30")
    send(uds, fds, obj="counter")
    entry = wait_entry(run_dir)
    assert entry["name"] == "reg" and entry["obj"] == "counter"
    assert entry["supervisor"] == proc.pid and entry["pid"] != proc.pid
    assert entry["uid"] == 0 and entry["allow_uids"] == [4242]
    assert entry["netns"] is None and entry["netns_path"] is None
    assert entry["socket"] == uds and entry["command"] == ["sleep", "30"]
    assert entry["control"] == os.path.join(run_dir, entry["id"] + ".ctl")
    assert os.stat(entry["control"]).st_mode & 0o777 == 0o666
    st = os.stat(os.path.join(run_dir, entry["id"] + ".json"))
    assert st.st_mode & 0o777 == 0o644
    assert entry["maps"] == [{"env": "BPF_MAP0", "fd": 3, "id": _ids(fds)[0],
                              "name": "proto_stats", "type": "hash", "key_size": 4,
                              "value_size": 8, "max_entries": 16,
                              "sender": {"flags": 0, "pinning": 0, "inner_id": 0,
                                         "inner_idx": 0}}]
    assert entry["wire_layout"] == 36 and entry["obj_st"] == [0, 0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", entry["started"])
    comm = open(f"/proc/{proc.pid}/comm").read().strip()
    assert comm == "bpfsession: reg"
    assert open(f"/proc/{proc.pid}/cmdline", "rb").read().startswith(b"bpfsession: reg")
    os.kill(entry["pid"], 15)
    assert finish(proc)[0] == 143
    assert os.listdir(run_dir) == []


def test_names_derived_get_suffixes_explicit_ones_are_refused(launch, make_map, short_tmp,
                                                               run_dir):
    procs = []
    for i in range(3):
        path = str(short_tmp / f"u{i}")
        procs.append(launch("imp", path, "run", "sleep", "30"))
        send(path, [make_map()], obj="same")
        wait_for(lambda n=i + 1: len(running(run_dir)) == n, what="a registry entry")
    names = sorted(e["name"] for e in running(run_dir))
    assert names == ["same", "same-2", "same-3"]
    res = bpfsession("new", "--name", "same-2", "imp", str(short_tmp / "x"), "run", "true",
                     env={**os.environ, "BPFSESSION_RUN_DIR": run_dir})
    assert res.returncode == 1
    assert res.stderr == ("bpfsession: a live session is already named 'same-2' (see "
                          "`bpfsession list`); choose another --name\n")
    assert not os.path.exists(short_tmp / "x")
    for e in entries(run_dir):
        os.kill(e["pid"], 15)
    assert [finish(p)[0] for p in procs] == [143] * 3


def test_shell_is_spawned_without_run(launch, make_map, uds):
    proc = launch("imp", uds, env={"SHELL": "/bin/sh"}, stdin=-1)
    send(uds, [make_map()])
    out, err = proc.communicate("echo maps=$BPF_NUM_MAPS; exit 4\n", timeout=20)
    assert (proc.returncode, out) == (4, "maps=1\n"), err


def test_exec_replaces_the_launcher(launch, make_map, uds, run_dir):
    proc = launch("--exec", "imp", uds, "run", "sh", "-c",
                  "echo pid=$$ maps=$BPF_NUM_MAPS fd3=$(readlink /proc/self/fd/3); exit 9")
    send(uds, [make_map()])
    status, out, err = finish(proc)
    assert status == 9, err
    assert out == f"pid={proc.pid} maps=1 fd3=anon_inode:bpf-map\n"


def test_exec_failure_is_one_line_127(launch, make_map, uds, run_dir):
    proc = launch("imp", uds, "run", "no-such-command-bs")
    fd = make_map()
    send(uds, [fd])
    status, out, err = finish(proc)
    assert status == 127
    assert err == "bpfsession: cannot run 'no-such-command-bs': No such file or directory\n"
    assert os.listdir(run_dir) == []


def test_path_search_like_execvp(launch, make_map, uds, short_tmp):
    """A non-executable match earlier in PATH does not hide a runnable one later; when
    only non-executable ones exist, that error (126) wins over ENOENT (execvp(3))."""
    early, late = short_tmp / "early", short_tmp / "late"
    early.mkdir()
    late.mkdir()
    (early / "bstool").write_text("#!/bin/sh\necho early\n")  # not executable
    (late / "bstool").write_text("#!/bin/sh\necho late $BPF_NUM_MAPS\n")
    (late / "bstool").chmod(0o755)
    path = f"{short_tmp}/missing:{early}:{late}:/usr/bin:/bin"
    proc = launch("imp", uds, "run", "bstool", env={"PATH": path})
    send(uds, [make_map()])
    status, out, err = finish(proc)
    assert (status, out) == (0, "late 1\n"), err

    (late / "bstool").chmod(0o644)
    proc = launch("imp", uds, "run", "bstool", env={"PATH": path})
    send(uds, [make_map()])
    status, out, err = finish(proc)
    assert status == 126
    assert err == "bpfsession: cannot run 'bstool': Permission denied\n"


def test_environment_configures_and_flags_win(launch, make_map, netns, short_tmp, run_dir):
    path = str(short_tmp / "env-uds")
    env = {"BPFSESSION_IMPORT": path, "BPFSESSION_NETNS": netns, "BPFSESSION_NAME": "envname",
           "BPFSESSION_TIMEOUT": "20"}
    proc = launch("run", "sh", "-c", "echo $BPFSESSION_NAME $BPFSESSION_NETNS; "
                  "readlink /proc/self/ns/net", env=env)
    send(path, [make_map()])
    status, out, err = finish(proc)
    assert status == 0, err
    ino = os.stat(f"/run/netns/{netns}").st_ino
    assert out == f"envname {netns}\nnet:[{ino}]\n"

    flag_path = str(short_tmp / "flag-uds")
    proc = launch("--name", "flagname", "--timeout", "0.3", "imp", flag_path, "run", "true",
                  env={**env, "BPFSESSION_NETNS": "no-such-ns-bs"})
    status, _, err = finish(proc)  # --netns not given: the env's bad netns is used
    assert status == 1 and "network namespace 'no-such-ns-bs' not found" in err
    proc = launch("--name", "flagname", "--netns", netns, "--timeout", "0.3", "imp",
                  flag_path, "run", "true", env=env)
    status, _, err = finish(proc)
    assert status == 1
    assert err == f"bpfsession: timed out after 0.3 s: no sender came to {flag_path}\n"
    assert not os.path.exists(path) and not os.path.exists(flag_path)


def test_keep_caps_and_no_new_privs(launch, make_map, uds):
    proc = launch("--keep-caps", "net_admin,CAP_BPF", "--no-new-privs", "imp", uds, "run",
                  "grep", "-E", "^(Cap|NoNewPrivs)", "/proc/self/status")
    send(uds, [make_map()])
    status, out, err = finish(proc)
    assert status == 0, err
    got = dict(line.split(":\t") for line in out.splitlines())
    want = f"{(1 << 12) | (1 << 39):016x}"  # CAP_NET_ADMIN, CAP_BPF
    assert {k: got[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")} == \
        {"CapInh": "0" * 16, "CapPrm": want, "CapEff": want, "CapBnd": want,
         "CapAmb": "0" * 16}
    assert got["NoNewPrivs"] == "1"


def test_caps_unchanged_by_default(launch, make_map, uds):
    mine = {k: v for k, v in (line.split(":\t") for line in
                               open("/proc/self/status").read().splitlines())
            if k in ("CapPrm", "CapEff", "CapBnd", "NoNewPrivs")}
    proc = launch("imp", uds, "run", "grep", "-E", "^(CapPrm|CapEff|CapBnd|NoNewPrivs)",
                  "/proc/self/status")
    send(uds, [make_map()])
    status, out, _ = finish(proc)
    assert dict(line.split(":\t") for line in out.splitlines()) == mine


def test_real_tc_program_maps_via_send_dev(launch, tc_counter, uds):
    """`bpfsession send --dev` from a clang-built tc program into `new --netns`."""
    v = tc_counter.veth
    proc = launch("--netns", v.netns, "imp", uds, "run", "sh", "-c",
                  "for fd in $(seq 3 $((2 + BPF_NUM_MAPS))); do "
                  "grep map_id /proc/self/fdinfo/$fd; done; "
                  "echo $BPF_MAP_PROTO_STATS $BPF_MAP_TOTAL_PKTS; ls /sys/class/net")
    from tests.helpers import wait_for_socket

    wait_for_socket(uds)
    sent = bpfsession("send", "--netns", v.netns, uds, "--dev", v.ns_if, "--ingress")
    assert sent.returncode == 0, sent.stderr
    status, out, err = finish(proc)
    assert status == 0, err
    got = {int(x) for x in re.findall(r"map_id:\s+(\d+)", out)}
    assert got == set(tc_counter.map_ids.values())
    assert v.ns_if in out and v.host_if not in out
    send_udp(v.ns_ip, 3)  # the program runs on; the maps were only shared
    assert run(["ip", "netns", "exec", v.netns, "tc", "filter", "show", "dev", v.ns_if,
                "ingress"]).stdout


def test_tc_exec_sender_compatible_name_from_obj(launch, make_map, uds, run_dir):
    obj = uniq("o") + " x/y"
    proc = launch("imp", uds, "run", "sh", "-c", "echo $BPFSESSION_NAME")
    send(uds, [make_map()], obj=obj)
    status, out, _ = finish(proc)
    assert status == 0
    assert out.strip() == obj.replace(" ", "_").replace("/", "_")


def test_launch_path_imports_only_stdlib_prctl_and_ours(make_map, uds, run_dir):
    """Start-up is a feature: no pyroute2, textual or numpy on the way to `run CMD`."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "bpfsession", "new",
                             "imp", uds, "run", "true"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "BPFSESSION_RUN_DIR": run_dir})
    send(uds, [make_map()])
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    roots = {line.split("|")[-1].strip().split(".")[0] for line in err.splitlines()
             if line.startswith("import time:") and "imported package" not in line}
    allowed = set(sys.stdlib_module_names) | {"bpfsession", "prctl", "_prctl"}
    # Installed by site itself (editable install, setuptools hooks), before bpfsession runs;
    # `org` is copy's probe for Jython's org.python.core.
    site_hooks = {r for r in roots if r.startswith(("__editable__", "_distutils_hack"))}
    assert roots - allowed - site_hooks - {"sitecustomize", "org"} == set()
    assert not roots & {"pyroute2", "textual", "numpy", "rich"}


def test_unusable_registry_directory_warns_and_runs(launch, make_map, uds, short_tmp):
    blocker = short_tmp / "file"
    blocker.write_text("")
    proc = launch("imp", uds, "run", "sh", "-c", "echo $BPF_NUM_MAPS",
                  env={"BPFSESSION_RUN_DIR": str(blocker / "run")})
    send(uds, [make_map()])
    status, out, err = finish(proc)
    assert (status, out) == (0, "1\n")
    assert err == (f"bpfsession: warning: cannot create the session registry {blocker}/run: "
                   "Not a directory (set BPFSESSION_RUN_DIR to a writable directory); the "
                   "session runs without a registry entry or control socket\n")


def test_endless_timeout_means_wait(launch, make_map, uds):
    proc = launch("--timeout", "inf", "imp", uds, "run", "true")
    send(uds, [make_map()])
    assert finish(proc) == (0, "", "")


def test_a_long_command_line_and_the_supervisors_title(launch, make_map, uds, run_dir):
    """The supervisor shows `bpfsession: NAME` in ps; a 12 KB command line once crashed it
    there (python-prctl's set_proctitle wrote past its argv copy)."""
    name = uniq("title")
    filler = "#" * 12000
    proc = launch("--name", name, "imp", uds, "run", "sh", "-c", f"exec sleep 60 # {filler}")
    send(uds, [make_map()])
    entry = wait_entry(run_dir)
    with open(f"/proc/{entry['supervisor']}/cmdline", "rb") as f:
        assert f.read().rstrip(b"\0") == f"bpfsession: {name}".encode()
    with open(f"/proc/{entry['supervisor']}/comm") as f:
        assert f.read().strip() == f"bpfsession: {name}"[:15]
    os.kill(entry["pid"], signal.SIGTERM)
    status, out, err = finish(proc)
    assert (status, err) == (128 + signal.SIGTERM, "")
