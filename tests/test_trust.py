"""Hostile input and trust boundaries of the session core (issue 9: registry, names, netns,
text output, map access for allowed uids). Each test is an attack that must fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from types import SimpleNamespace

import pytest

from bpfsession.kernel import bpf
from tests.helpers import BPFSESSION, ROOT, uniq, wait_for
from tests.sessions_helpers import NOBODY, as_user, by_pid

pytest_plugins = ["tests.sessions_fixtures"]

CONTROL = set(range(0x20)) | set(range(0x7f, 0xa0))


def _raw_controls(text: str) -> set[str]:
    """Control characters in `text` other than the newlines and tabs of the layout."""
    return {c for c in text if ord(c) in CONTROL and c not in "\n\t"}


def _write(path: str, doc, owner: int | None = None) -> None:
    with open(path, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))
    if owner is not None:
        os.chown(path, owner, owner)


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


# ---- item 2: the registry directory and its entries -------------------------------------


def test_registry_writable_by_others_is_refused(sessions, two_maps, make_map):
    os.chmod(sessions.run_dir, 0o777)
    try:
        res = sessions.cli("new", "imp", str(sessions.tmp / uniq("u")), "run", "true")
        assert res.returncode == 1 and res.stdout == ""
        assert res.stderr == (f"bpfsession: refusing the session registry {sessions.run_dir}: "
                              "group or others may write to it (mode 0777; chmod go-w it, or "
                              "set BPFSESSION_RUN_DIR)\n")
        res = sessions.cli("list", "-j")
        assert res.returncode == 0 and isinstance(json.loads(res.stdout), list)
        assert res.stderr.startswith("bpfsession: warning: refusing the session registry")
    finally:
        os.chmod(sessions.run_dir, 0o755)


def test_registry_of_another_user_is_refused(sessions):
    os.chown(sessions.run_dir, NOBODY, NOBODY)
    try:
        res = sessions.cli("new", "imp", str(sessions.tmp / uniq("u")), "run", "true")
        assert res.returncode == 1
        assert res.stderr.startswith(f"bpfsession: refusing the session registry "
                                     f"{sessions.run_dir}: it belongs to uid {NOBODY}")
    finally:
        os.chown(sessions.run_dir, 0, 0)


def test_forged_entries_are_skipped_and_harmless(sessions, two_maps):
    s = sessions.new(two_maps, name=uniq("real"))
    rd = sessions.run_dir
    victim = tempfile.NamedTemporaryFile(dir="/tmp", suffix=".json", delete=False)
    victim.close()
    try:
        # a path in the id: once made root's prune delete files outside the directory
        _write(os.path.join(rd, "deadbeef.json"),
               {**s.entry, "id": os.path.relpath(victim.name, rd)[:-5],
                "supervisor": _dead_pid()})
        # a link in place of an entry
        os.symlink(victim.name, os.path.join(rd, "0000beef.json"))
        # another user's file speaking for root
        _write(os.path.join(rd, "1111beef.json"), {**s.entry, "id": "1111beef", "control": None},
               owner=NOBODY)
        # an entry adopting the real session's process, served by somebody else's process
        other = subprocess.Popen(["sleep", "30"])
        _write(os.path.join(rd, "2222beef.json"),
               {**s.entry, "id": "2222beef", "name": "adopted", "supervisor": other.pid,
                "supervisor_start": None, "control": os.path.join(rd, "2222beef.ctl")})
        try:
            res = sessions.cli("list", "-j")
        finally:
            other.kill()
            other.wait()
        assert res.returncode == 0, res.stderr
        listing = json.loads(res.stdout)
        assert [x["id"] for x in listing if x["pid"] == s.root] == [s.id]
        assert os.path.exists(victim.name)
        warnings = res.stderr.splitlines()
        assert any("deadbeef.json: its id" in w and "removed" in w for w in warnings)
        assert any("1111beef.json: it belongs to uid 65534 but describes uid 0" in w
                   for w in warnings)
        assert any("2222beef: its pid" in w for w in warnings)
        assert not os.path.exists(os.path.join(rd, "deadbeef.json"))
    finally:
        os.unlink(victim.name)
        for name in ("0000beef.json", "1111beef.json", "2222beef.json", "deadbeef.json"):
            if os.path.lexists(os.path.join(rd, name)):
                os.unlink(os.path.join(rd, name))


# ---- item 5: malformed entries -----------------------------------------------------------


MALFORMED = [{"allow_uids": ["a"]}, {"uid": "abc"}, {"started": 5}, {"id": None},
             {"maps": [{"id": "x"}]}, {"command": "sh"}, {"pid": -1}, {"name": ""}]


@pytest.mark.parametrize("bad", MALFORMED, ids=[next(iter(b)) for b in MALFORMED])
def test_malformed_entry_is_skipped_with_one_warning(sessions, two_maps, bad):
    s = sessions.new(two_maps, name=uniq("ok"))
    path = os.path.join(sessions.run_dir, "abcdef01.json")
    base = {**s.entry, "id": "abcdef01", "name": uniq("bad"), "control": None}
    _write(path, {**base, **bad})  # the live supervisor: not stale
    try:
        for args in (["list"], ["list", "-j"], ["show", s.name], ["show", "-j", s.id],
                     ["attach", s.name, "run", "true"]):
            res = sessions.cli(*args)
            assert res.returncode == 0, (args, res.stderr)
            assert res.stderr.count("bpfsession: warning: skipping the registry entry "
                                    f"{path}") == 1, res.stderr
        assert os.path.exists(path)  # its supervisor lives: not ours to call stale
    finally:
        os.unlink(path)
    _write(path, {**base, "supervisor": _dead_pid(), **bad})
    res = sessions.cli("list")
    assert res.returncode == 0 and "it was stale and is removed" in res.stderr
    assert not os.path.exists(path)


# ---- items 4 and 7: the registry fails late; two claims of one name ------------------------


def test_registry_unwritable_after_the_start_warns_and_keeps_supervising(short_tmp, make_map):
    """ENOSPC when the entry is written, EROFS when it is removed: each one warning, and
    the command's status still comes back (the mounts live in a private mount namespace)."""
    from tests.new_helpers import send

    full, ro = short_tmp / "full", short_tmp / "ro"
    full.mkdir()
    ro.mkdir()
    uds = str(short_tmp / "u")
    new = " ".join(BPFSESSION)
    script = (f"mount -t tmpfs -o size=4k none {full} && head -c 8192 /dev/zero > {full}/x; "
              f"mount -t tmpfs none {ro} && chmod 755 {ro} {full} && "
              f"BPFSESSION_RUN_DIR={full} {new} new imp {uds}.1 run sh -c 'exit 3'; "
              f"echo full=$?; BPFSESSION_RUN_DIR={ro} {new} new imp {uds}.2 run "
              f"sh -c 'mount -o remount,ro {ro}; exit 4'; echo ro=$?")
    proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    send(uds + ".1", [make_map()])
    send(uds + ".2", [make_map()])
    out, err = proc.communicate(timeout=60)
    assert out.split() == ["full=3", "ro=4"], err
    lines = err.splitlines()
    assert any(line.startswith("bpfsession: warning: cannot write the session registry "
                               f"entry {full}/") and "No space left on device" in line
               for line in lines), err
    assert any(line.startswith(f"bpfsession: warning: cannot remove the session registry "
                               f"entry {ro}/") and "Read-only file system" in line
               for line in lines), err
    assert "Traceback" not in err


def test_two_new_with_one_name_at_once(sessions, make_map):
    name = uniq("dup")
    marker = sessions.tmp / uniq("m")
    procs = [subprocess.Popen([*BPFSESSION, "new", "--name", name, "imp",
                               str(sessions.tmp / uniq("u")), "run", "sh", "-c",
                               f"echo x >> {marker}; sleep 30"],
                              env=sessions.env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
             for _ in range(4)]
    try:
        wait_for(lambda: sum(p.poll() is not None for p in procs) == 3, timeout=20,
                 what="three of four refused")
        for p in procs:
            if p.poll() is not None:
                assert p.returncode == 1
                assert p.stderr.read() == (f"bpfsession: a live session is already named "
                                           f"'{name}' (see `bpfsession list`); choose another "
                                           "--name\n")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
    assert not marker.exists()  # the winner was still waiting for its maps: nothing ran


# ---- item 9: non-root --netns fails before the socket exists ------------------------------


def test_unprivileged_netns_is_refused_before_binding(sessions, netns):
    uds = str(sessions.tmp / uniq("u"))
    own = subprocess.Popen([*as_user(NOBODY), "sleep", "30"])
    try:
        for target in (f"/proc/{own.pid}/ns/net", netns):
            res = sessions.cli("new", "--netns", target, "imp", uds, "run", "true",
                               user=as_user(NOBODY), timeout=20)
            assert res.returncode == 1, res.stderr
            assert res.stderr.startswith("bpfsession: cannot ") and \
                res.stderr.count("\n") == 1, res.stderr
            assert not os.path.exists(uds)
    finally:
        own.kill()
        own.wait()


# ---- items 10 and 11: what a non-root user sees and may take -------------------------------


def test_unprivileged_view_shows_the_registry_facts_not_wrong_ones(sessions, two_maps, netns):
    s = sessions.new(two_maps, name=uniq("blue"), netns=netns)
    res = sessions.cli("list", "-j", user=as_user(NOBODY))
    assert res.returncode == 0, res.stderr
    got = by_pid(json.loads(res.stdout), s.root)
    assert got["netns"] == netns and "netns_known" not in got
    assert [(m["type"], m["key_size"], m["value_size"]) for m in got["maps"]] == \
        [("hash", 4, 8), ("array", 4, 8)]
    assert all(m["memlock"] is None and m["frozen"] is None for m in got["maps"])
    res = sessions.cli("show", s.name, user=as_user(NOBODY))
    assert res.returncode == 0 and f"netns {netns}" in res.stdout, res.stderr


def test_unknown_netns_is_null_and_flagged():
    from bpfsession import model

    s = model.Session(id="tc-1", name="tc-1", pid=1, supervisor=None, uid=0, netns=None,
                      netns_path=None, obj=None, command=[], started=None, maps=[],
                      processes=[], registered=False, control=None, allow_uids=[],
                      netns_known=False)
    doc = model.session_json(s)
    assert doc["netns"] is None and doc["netns_known"] is False
    from bpfsession.cli.sessions import _netns

    assert _netns(s) == "?"


def test_map_session_spec_works_for_an_allowed_uid(sessions, two_maps):
    s = sessions.new(two_maps, name=uniq("allow"), flags=("--allow-uid", str(NOBODY)))
    name = bpf.map_info(two_maps[0]).name
    res = sessions.cli("map", "update", "session", s.name, name, "key", "5", "0", "0", "0",
                       "value", "9", "0", "0", "0", "0", "0", "0", "0", user=as_user(NOBODY))
    assert res.returncode == 0, res.stderr
    value = bytearray(8)
    assert bpf.map_lookup_elem(two_maps[0], bytes([5, 0, 0, 0]), value) and value[0] == 9
    res = sessions.cli("map", "dump", "session", s.name, name, user=as_user(NOBODY + 1))
    assert res.returncode == 1 and "may not map" in res.stderr and res.stderr.count("\n") == 1


# ---- item 3: hostile strings reach the terminal escaped, JSON exact -------------------------


HOSTILE = "\x1b[2J\r\nfake row [/x] [bold]\x07\x9b31m"


def test_hostile_strings_are_escaped_in_text_exact_in_json(sessions, two_maps):
    s = sessions.new(two_maps, name=uniq("h"), obj=HOSTILE[:60],
                     cmd=("sh", "-c", "sleep 300", HOSTILE))
    for args in (["list"], ["show", s.name]):
        res = sessions.cli(*args)
        assert res.returncode == 0, res.stderr
        assert not _raw_controls(res.stdout), res.stdout
        assert "\\x1b[2J\\x0d\\x0a" in res.stdout
    got = by_pid(sessions.list_json(), s.root)
    assert got["obj"] == HOSTILE[:60] and got["command"][-1] == HOSTILE
    watch = subprocess.Popen([*BPFSESSION, "list", "--watch", "0.1"], env=sessions.env,
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        lines = [watch.stdout.readline() for _ in range(4)]
    finally:
        watch.terminate()
        watch.communicate(timeout=10)
    assert not any(_raw_controls(line) for line in lines)


def test_invalid_utf8_from_proc_is_shown_escaped(sessions, two_maps):
    arg = b"caf\xe9\xff"
    s = sessions.tc(two_maps, cmd=("sh", "-c", "sleep 300", os.fsdecode(arg)))
    got = wait_for(lambda: by_pid(sessions.list_json(), s.root), what="the tc session")
    assert got["command"][-1] == "caf\\xe9\\xff"
    res = sessions.cli("show", s.id)
    assert "caf\\xe9\\xff" in res.stdout
    assert not _raw_controls(res.stdout)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))


# ---- the property: any registry content, any strings: list and show never raise ----------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CORPUS = ["[/x]", "[bold red]x[/]", "\x1b[2J", "\x1b]0;title\x07", "a\rb\nc", "\x00\x01\x7f",
          "\u202eevil", "x" * 10_000, "caf\\xe9", "\ud800"[:0] + "ok"]
hostile = st.one_of(st.sampled_from(CORPUS), st.text(max_size=40))
json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.floats(allow_nan=False) | hostile,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile, inner, max_size=4),
    max_leaves=12)


@pytest.fixture(scope="module")
def child():
    """A live child of this process: a plausible session root for forged entries."""
    p = subprocess.Popen(["sleep", "600"])
    yield p.pid
    p.kill()
    p.wait()


def _plausible(child_pid: int, i: int, strings: list[str], extra: dict) -> dict:
    from bpfsession.kernel import proc as procfs

    s = (strings * 4)[:4] if strings else ["", "", "", ""]
    entry = {"id": f"{i:08x}", "name": s[0] or "n", "pid": child_pid, "supervisor": os.getpid(),
             "supervisor_start": procfs.start_time(os.getpid()), "uid": 0, "allow_uids": [],
             "netns": s[1] or None, "netns_path": None, "socket": s[2], "control": None,
             "obj": s[3], "command": s, "started": s[1],
             "maps": [{"env": s[0], "fd": 3, "id": 1, "name": s[2], "type": s[3],
                       "key_size": 4, "value_size": 8, "max_entries": 1}]}
    entry.update(extra)
    return entry


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(docs=st.lists(st.one_of(json_value, st.tuples(st.lists(hostile, max_size=4),
                                                       st.dictionaries(hostile, json_value,
                                                                       max_size=3))),
                     max_size=4))
def test_any_registry_content_and_strings_never_break_list_or_show(child, docs):
    import contextlib
    import io
    import shutil

    from bpfsession import discover, model
    from bpfsession.cli import sessions as cli

    d = tempfile.mkdtemp(prefix="bsprop", dir="/tmp")
    try:
        for i, doc in enumerate(docs):
            if isinstance(doc, tuple):  # a plausible entry with hostile strings in it
                doc = _plausible(child, i, *doc)
            with open(os.path.join(d, f"{i:08x}.json"), "w") as f:
                f.write(json.dumps(doc))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            found = discover.scan(run_dir=d)
            plain = SimpleNamespace(json=False, pretty=False, quiet=False, no_headers=False)
            cli._print_list(found, plain, {})
            cli._print_list(found, plain, {}, lines=True)
            for s in found:
                cli._print_session(s)
        assert not _raw_controls(out.getvalue())
        assert all(line.startswith("bpfsession: warning: ") or line == "no live sessions"
                   for line in err.getvalue().split("\n")[:-1]), repr(err.getvalue())
        text = json.dumps([model.session_json(s) for s in found])
        assert json.loads(text) == [model.session_json(s) for s in found]
        mine = [s for s in found if s.registered and s.pid == child]
        for s in mine:  # the strings went through exactly
            entry = json.load(open(os.path.join(d, f"{s.id}.json")))
            assert (s.name, s.obj, s.command) == (entry["name"], entry["obj"],
                                                  entry["command"])
    finally:
        shutil.rmtree(d)


def test_unprivileged_new_with_roots_registry_warns_once_and_runs(sessions, make_map):
    from tests.new_helpers import send

    uds = str(sessions.tmp / uniq("u"))
    proc = subprocess.Popen([*as_user(NOBODY), *BPFSESSION, "new", "imp", uds, "run", "sh",
                             "-c", "echo maps=$BPF_NUM_MAPS"], env=sessions.env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    send(uds, [make_map()])
    out, err = proc.communicate(timeout=20)
    assert (proc.returncode, out) == (0, "maps=1\n"), err
    assert err == (f"bpfsession: warning: cannot write to the session registry "
                   f"{sessions.run_dir} (set BPFSESSION_RUN_DIR to a directory of your own); "
                   "the session runs without a registry entry or control socket\n")


def test_netns_that_is_not_one_is_one_line(sessions):
    uds = str(sessions.tmp / uniq("u"))
    for target, said in (("/proc/self/ns/mnt", "/proc/self/ns/mnt is not a network namespace "
                                                "file"),
                         (str(sessions.tmp / "none"), "does not exist")):
        res = sessions.cli("new", "--netns", target, "imp", uds, "run", "true")
        assert res.returncode == 1 and said in res.stderr and res.stderr.count("\n") == 1
        assert not os.path.exists(uds)


def test_control_client_trusts_only_root_or_the_owner(sessions):
    """A control socket served by another uid gets no request answered by us."""
    from bpfsession import control

    path = str(sessions.tmp / uniq("ctl"))
    server = subprocess.Popen([*as_user(NOBODY), sys.executable, "-c",
                               "import socket,sys,time;s=socket.socket(socket.AF_UNIX,"
                               "socket.SOCK_SEQPACKET);s.bind(sys.argv[1]);s.listen();"
                               "print('up',flush=True);c,_=s.accept();time.sleep(30)", path],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline() == "up\n"
        with pytest.raises(control.ControlError) as exc:
            control.request(path, {0}, {"op": "attach"}, "session s")
        assert exc.value.hint == (f"{path} is served by pid {server.pid} of uid {NOBODY}, not "
                                  "by uid 0 (session s's owner or root): not trusting it")
    finally:
        server.kill()
        server.wait()


def test_watch_warns_once_per_problem(sessions, two_maps):
    s = sessions.new(two_maps, name=uniq("w"))
    path = os.path.join(sessions.run_dir, "abcdef02.json")
    _write(path, {**s.entry, "id": "abcdef02", "uid": "abc"})
    watch = subprocess.Popen([*BPFSESSION, "list", "-j", "--watch", "0.05"], env=sessions.env,
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(5):
            assert isinstance(json.loads(watch.stdout.readline()), list)
    finally:
        watch.terminate()
        _, err = watch.communicate(timeout=10)
        os.unlink(path)
    assert err.count("skipping the registry entry") == 1, err


def test_silent_clients_stall_nothing_and_stay_bounded(sessions, two_maps):
    import socket

    from bpfsession import control

    s = sessions.new(two_maps, name=uniq("quiet"))
    silent = []
    try:
        for _ in range(100):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            c.connect(s.entry["control"])
            silent.append(c)
        reply = control.request(s.entry["control"], {0}, {"op": "attach"}, "session q")
        for fd in reply.fds:
            os.close(fd)
        assert [e.id for e in reply.entries] == [0, 1]
        held = len(os.listdir(f"/proc/{s.supervisor}/fd"))
        assert held < 64 + 20, held  # the pending clients are bounded
    finally:
        for c in silent:
            c.close()


def test_error_lines_escape_the_names_they_quote(capsys):
    """Hints quote names from outside (a tc session's name is its BPFSESSION_NAME: anyone's);
    the one line on stderr is escaped, the -j document keeps the text exact."""
    from bpfsession.cli import report_error
    from bpfsession.errors import BpfSessionError

    report_error(BpfSessionError("session ev\x1b[2Jil ended meanwhile"), as_json=True)
    out, err = capsys.readouterr()
    assert err == "bpfsession: session ev\\x1b[2Jil ended meanwhile\n"
    assert json.loads(out) == {"error": "session ev\x1b[2Jil ended meanwhile"}


@pytest.mark.parametrize("name", ["x" * 10_000, "a\x1b[2Jb", "[/x]\r\n"])
def test_hostile_session_names_are_refused_in_one_line(sessions, name):
    uds = str(sessions.tmp / uniq("u"))
    res = sessions.cli("new", "--name", name, "imp", uds, "run", "true")
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert not _raw_controls(res.stderr) and not os.path.exists(uds)
    assert os.listdir(sessions.run_dir) == []


def test_registry_write_into_a_read_only_directory_is_one_error(short_tmp):
    """The supervisor registers right after it spawns the command, which may have made the
    registry read-only already (the test above races it): EROFS on the temp file, and on
    removing it, is the one BpfSessionError the supervisor turns into a warning."""
    d = short_tmp / "ro"
    d.mkdir()
    probe = ("from bpfsession import registry\n"
             "from bpfsession.errors import BpfSessionError\n"
             "try:\n"
             f"    registry.write({str(d)!r}, {{'id': registry.new_id()}})\n"
             "except BpfSessionError as err:\n"
             "    print('error:', err.hint)\n")
    script = (f"mount -t tmpfs none {d} && chmod 755 {d} && mount -o remount,ro {d} && "
              f"{sys.executable} -c \"$PROBE\"")
    res = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                         cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PROBE": probe})
    assert res.stderr == ""
    assert res.stdout.startswith(f"error: cannot write the session registry entry {d}/")
    assert "Read-only file system" in res.stdout
