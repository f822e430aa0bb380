"""Every way `bpfsession new` can fail: one `bpfsession: ` line, a non-zero status, the
socket file and registry gone, no fd leaked, nothing spawned."""

from __future__ import annotations

import array
import os
import signal
import socket
import threading

import pytest

from bpfsession import session, wire
from bpfsession.errors import BpfSessionError
from bpfsession.session import Config
from tests.helpers import bpfsession, send_as_nobody, wait_for, wait_for_socket
from tests.new_helpers import finish, live_fds, send, waiting_entry

pytest_plugins = ["tests.new_fixtures"]


def header(total: int, version: int = 1, obj: bytes = b"obj") -> bytes:
    return wire.HEADER.pack(version, total, obj, 0, 0)


def entries(n: int, first_id: int = 0) -> bytes:
    return b"".join(wire.MapEntry(id=first_id + i).pack() for i in range(n))


def raw_send(path: str, payload: bytes, fds: list[int] = ()) -> None:
    wait_for_socket(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(path)
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        s.sendmsg([payload], anc)


def bad_cases(make_map):
    """(name, payload, fds, what the hint says)"""
    m = [make_map() for _ in range(3)]
    r, w = os.pipe()
    return [
        ("version", header(1, version=2) + entries(1), m[:1],
         "unsupported bpf_scm version 2 (only version 1 exists)"),
        ("short", b"\x01\x00" * 10, m[:1], "truncated datagram: 20 bytes"),
        ("torn", header(1) + entries(1)[:19], m[:1],
         "bad datagram: 19 bytes of map entries with 1 fd are not"),
        ("count", header(2) + entries(2), m[:1],
         "bad datagram: 72 bytes of map entries with 1 fd are not"),
        ("over", header(1) + entries(2), m[:2], "more than the declared total 1"),
        ("pipe", header(2) + entries(2), [m[0], r], "is not a BPF map (pipe:"),
        ("empty", header(0) + entries(0), [], "carries no map entries"),
    ], (r, w)


@pytest.mark.parametrize("case", ["version", "short", "torn", "count", "over", "pipe", "empty"])
def test_bad_datagram_via_cli(case, launch, make_map, uds, run_dir, short_tmp):
    cases, pipe = bad_cases(make_map)
    name, payload, fds, hint = next(c for c in cases if c[0] == case)
    marker = short_tmp / "spawned"
    proc = launch("imp", uds, "run", "touch", str(marker))
    wait_for(lambda: waiting_entry(run_dir), what="the waiting receiver's registry entry")
    try:
        raw_send(uds, payload, fds)
    finally:
        os.close(pipe[0])
        os.close(pipe[1])
    status, out, err = finish(proc)
    assert status == 1
    assert err.startswith("bpfsession: ") and hint in err and err.count("\n") == 1, err
    assert not marker.exists() and not os.path.exists(uds) and os.listdir(run_dir) == []


def test_ctrunc_more_fds_than_a_datagram_may_carry(launch, make_map, uds, short_tmp):
    fds = [make_map("array", 4, 4, 1) for _ in range(70)]
    proc = launch("imp", uds, "run", "touch", str(short_tmp / "spawned"))
    raw_send(uds, header(70) + entries(64), fds)
    status, _, err = finish(proc)
    assert status == 1 and "control data truncated" in err, err
    assert not (short_tmp / "spawned").exists() and not os.path.exists(uds)


@pytest.mark.parametrize("case", ["version", "torn", "count", "over", "pipe"])
def test_bad_datagram_in_process_leaks_no_fd(case, make_map, uds, short_tmp):
    cases, pipe = bad_cases(make_map)
    _, payload, fds, hint = next(c for c in cases if c[0] == case)
    before = live_fds()
    marker = short_tmp / "spawned"
    t = threading.Thread(target=raw_send, args=(uds, payload, fds))
    t.start()
    try:
        with pytest.raises(BpfSessionError) as exc:
            session.run(Config(uds=uds, command=["touch", str(marker)], timeout=10,
                               run_dir=str(short_tmp / "reg")))
    finally:
        t.join()
        os.close(pipe[0])
        os.close(pipe[1])
    assert hint in exc.value.hint and exc.value.status == 1
    assert live_fds() == before - set(pipe)
    assert not marker.exists() and not os.path.exists(uds)
    assert os.listdir(short_tmp / "reg") == []  # the waiting entry is gone (the directory
    # itself is the registry's, like /run/bpfsession: it stays)


def test_refused_uid_is_reported_and_the_wait_goes_on(launch, make_map, uds, short_tmp):
    marker = short_tmp / "spawned"
    proc = launch("imp", uds, "run", "sh", "-c", f"echo $BPF_NUM_MAPS > {marker}")
    wait_for_socket(uds)
    os.chmod(short_tmp, 0o711)  # the socket is 0600: let uid 65534 reach it to be refused
    os.chmod(uds, 0o666)
    fd = make_map()
    pid = send_as_nobody(uds, "evil", fd)
    wait_for(lambda: proc.poll() is None and os.path.exists(uds), what="still waiting")
    send(uds, [fd])
    status, _, err = finish(proc)
    assert status == 0
    assert err == (f"bpfsession: refused a datagram from pid {pid} (uid 65534): not root, "
                   "the invoking user or an --allow-uid\n")
    assert marker.read_text() == "1\n"


def test_allow_uid_admits_another_sender(launch, make_map, uds, short_tmp):
    marker = short_tmp / "spawned"
    proc = launch("--allow-uid", "65534", "imp", uds, "run", "sh", "-c",
                  f"echo $BPF_OBJ > {marker}")
    wait_for_socket(uds)
    os.chmod(short_tmp, 0o711)
    os.chmod(uds, 0o666)
    fd = make_map()
    send_as_nobody(uds, "nobody", fd)
    status, _, err = finish(proc)
    assert (status, err, marker.read_text()) == (0, "", "nobody\n")


def test_missing_netns_lists_the_ones_there_are(netns, uds):
    res = bpfsession("new", "--netns", "no-such-ns-bs", "imp", uds, "run", "true")
    assert res.returncode == 1
    assert res.stderr.startswith("bpfsession: network namespace 'no-such-ns-bs' not found in "
                                 "/run/netns (there are: ")
    assert netns in res.stderr and "ip netns add no-such-ns-bs" in res.stderr
    assert res.stderr.count("\n") == 1
    assert not os.path.exists("/run/netns/no-such-ns-bs") and not os.path.exists(uds)


def test_netns_path_that_is_not_a_namespace(uds, short_tmp):
    res = bpfsession("new", "--netns", "/etc/hostname", "imp", uds, "run", "true")
    assert res.returncode == 1
    assert res.stderr == ("bpfsession: /etc/hostname is not a network namespace file "
                          "(expected a name from `ip netns list` or a path like "
                          "/proc/PID/ns/net)\n")
    res = bpfsession("new", "--netns", "/proc/self/ns/mnt", "imp", uds, "run", "true")
    assert "is not a network namespace file" in res.stderr


def test_timeout(uds, run_dir):
    res = bpfsession("new", "--timeout", "0.2", "imp", uds, "run", "true",
                     env={**os.environ, "BPFSESSION_RUN_DIR": run_dir})
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == f"bpfsession: timed out after 0.2 s: no sender came to {uds}\n"
    assert not os.path.exists(uds) and os.listdir(run_dir) == []


def test_timeout_removes_the_waiting_entry(launch, uds, run_dir):
    proc = launch("--timeout", "2", "imp", uds, "run", "true")
    entry = wait_for(lambda: waiting_entry(run_dir), what="the waiting receiver's entry")
    assert entry["pid"] == proc.pid and entry["socket"] == uds
    status, out, err = finish(proc)
    assert status == 1 and "timed out" in err
    assert not os.path.exists(uds) and os.listdir(run_dir) == []


def test_timeout_in_process_with_maps_half_received(make_map, uds):
    before = live_fds()
    fd = make_map()
    t = threading.Thread(target=raw_send, args=(uds, header(2) + entries(1), [fd]))
    t.start()
    with pytest.raises(BpfSessionError) as exc:
        session.receive(Config(uds=uds, timeout=1.5))
    t.join()
    assert "1 of 2 maps arrived" in exc.value.hint
    assert live_fds() == before | {fd} and not os.path.exists(uds)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_during_the_wait_via_cli(signum, launch, uds, run_dir, short_tmp):
    marker = short_tmp / "spawned"
    proc = launch("imp", uds, "run", "touch", str(marker))
    wait_for_socket(uds)
    wait_for(lambda: waiting_entry(run_dir), what="the waiting receiver's registry entry")
    os.kill(proc.pid, signum)
    status, out, err = finish(proc)
    name = signal.Signals(signum).name
    assert status == 128 + signum
    assert err == (f"bpfsession: interrupted by {name} while waiting for maps on {uds}; "
                   "nothing was started\n")
    assert not os.path.exists(uds) and os.listdir(run_dir) == [] and not marker.exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_during_the_wait_in_process(signum, make_map, uds):
    before = live_fds()
    fd = make_map()
    main = threading.main_thread().ident

    def half_then_signal():
        raw_send(uds, header(2) + entries(1), [fd])
        # The half hand-off is in once the receiver (this process) holds a copy of fd.
        wait_for(lambda: _copies(fd) == 2, what="the receiver taking the first datagram")
        signal.pthread_kill(main, signum)

    t = threading.Thread(target=half_then_signal)
    t.start()
    with pytest.raises(session.Interrupted) as exc:
        session.receive(Config(uds=uds))
    t.join()
    assert exc.value.status == 128 + signum
    assert live_fds() == before | {fd} and not os.path.exists(uds)
    assert signal.getsignal(signum) in (signal.default_int_handler, signal.SIG_DFL)


def _copies(fd: int) -> int:
    """How many of our fds are the map behind `fd` (by kernel map id, from fdinfo)."""
    from bpfsession.kernel.types import read_fdinfo

    want = read_fdinfo(fd)["map_id"]
    count = 0
    for n in live_fds():
        try:
            count += read_fdinfo(n).get("map_id") == want
        except OSError:
            pass  # closed meanwhile
    return count


def test_missing_socket_directory(short_tmp):
    path = str(short_tmp / "not-mounted" / "bpf-uds")
    res = bpfsession("new", "imp", path, "run", "true")
    assert res.returncode == 1
    assert res.stderr == (f"bpfsession: directory {short_tmp}/not-mounted does not exist "
                          "(is the shared volume mounted?)\n")
    res = bpfsession("new", "run", "true", env={**os.environ, "BPFSESSION_IMPORT": path})
    assert "does not exist (is the shared volume mounted?)" in res.stderr


def test_path_that_is_not_a_socket_is_refused_and_kept(uds):
    with open(uds, "w") as f:
        f.write("keep me")
    res = bpfsession("new", "imp", uds, "run", "true")
    assert res.returncode == 1
    assert res.stderr == f"bpfsession: {uds} exists and is not a socket; choose another path\n"
    assert open(uds).read() == "keep me"


def test_live_receiver_is_refused_stale_one_replaced(launch, make_map, uds):
    proc = launch("imp", uds, "run", "true")
    wait_for_socket(uds)
    res = bpfsession("new", "imp", uds, "run", "true")
    assert (res.returncode, res.stderr) == \
        (1, f"bpfsession: a receiver is already listening on {uds}\n")
    send(uds, [make_map()])
    assert finish(proc)[0] == 0
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(uds)
    stale.close()  # the file stays, nobody is bound: stale
    proc = launch("imp", uds, "run", "true")
    send(uds, [make_map()])
    assert finish(proc)[0] == 0


@pytest.mark.parametrize("args, hint", [
    (["imp"], "`imp` needs the socket path: imp UDS"),
    ([], "no socket given: use `imp UDS` or set BPFSESSION_IMPORT"),
    (["imp", "/tmp/x", "run"], "`run` needs a command: run CMD [ARG...]"),
    (["imp", "/tmp/x", "--timeout", "3"],
     "unexpected '--timeout' after UDS: expected `imp UDS [run CMD [ARG...]]` (options go "
     "before `imp`)"),
    (["--keep-caps", "net_admin,bogus", "imp", "/tmp/x"], "unknown capability 'bogus'"),
    (["--allow-uid", "-5", "imp", "/tmp/x"], "--allow-uid -5: a uid is a number >= 0"),
    (["--name", "a/b", "imp", "/tmp/x"], "bad session name 'a/b'"),
])
def test_bad_arguments(args, hint):
    res = bpfsession("new", *args, env={k: v for k, v in os.environ.items()
                                        if not k.startswith("BPFSESSION_")})
    assert res.returncode == 1
    assert res.stderr.startswith("bpfsession: " + hint) and res.stderr.count("\n") == 1


@pytest.mark.parametrize("value", ["-1", "0", "soon", "nan"])
def test_bad_timeout_is_a_usage_error(value):
    res = bpfsession("new", "--timeout", value, "imp", "/tmp/x")
    assert res.returncode == 2
    assert res.stderr == ("bpfsession: argument --timeout: give a positive number of seconds, "
                          f"not {value!r} (see 'bpfsession new --help')\n")


@pytest.mark.parametrize("var, value, hint", [
    ("BPFSESSION_TIMEOUT", "soon", "BPFSESSION_TIMEOUT must be a positive number of seconds"),
    ("BPFSESSION_GRACE", "-1", "BPFSESSION_GRACE must be a non-negative number of seconds"),
])
def test_bad_environment(var, value, hint, uds):
    res = bpfsession("new", "imp", uds, "run", "true", env={**os.environ, var: value})
    assert res.returncode == 1 and res.stderr.startswith("bpfsession: " + hint)

