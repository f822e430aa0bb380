"""`send` against hostile or broken receivers: another user's socket, a receiver that stops
reading, paths that are no socket at all. Every refusal is one line, nothing is handed over."""

from __future__ import annotations

import array
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from bpfsession.kernel import bpf
from tests.helpers import bpfsession, run, wait_for, wait_for_socket
from tests.sessions_helpers import NOBODY, as_user

pytest_plugins = ["tests.new_fixtures"]

# A receiver anyone can run: binds `u` in its working directory, says READY, then, for each
# line on stdin, reports how many fds are waiting for it ("FDS n", or "FDS 0" when none).
RECEIVER = r"""
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
os.umask(0)
s.bind("u")
print("READY", flush=True)
for _ in sys.stdin:
    n = 0
    try:
        while True:
            _, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(64 * 4), socket.MSG_DONTWAIT)
            for level, kind, data in anc:
                fds = array.array("i", data[: len(data) - len(data) % 4])
                n += len(fds)
                for fd in fds:
                    os.close(fd)
    except BlockingIOError:
        pass
    print(f"FDS {n}", flush=True)
"""


class Receiver:
    """RECEIVER in directory `where`, as `user` (a setpriv prefix) or root."""

    def __init__(self, where: str, user: list[str] | None = None):
        self.path = os.path.join(where, "u")
        self.proc = subprocess.Popen([*(user or []), sys.executable, "-c", RECEIVER],
                                     cwd=where, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline() == "READY\n", self.proc.stderr.read()

    def fds_waiting(self) -> int:
        self.proc.stdin.write("?\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline().split()[1])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def nobody_dir(short_tmp):
    """A directory uid 65534 may bind a socket in."""
    d = short_tmp / "nb"
    d.mkdir()
    os.chmod(short_tmp, 0o755)
    os.chown(d, NOBODY, NOBODY)
    return str(d)


def one_line(res) -> str:
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0 and len(lines) == 1 and lines[0].startswith("bpfsession: "), \
        res.stderr
    return lines[0]


def test_send_refuses_another_users_socket(nobody_dir, make_map):
    """uid 65534 binds the path first: root's send refuses, names the owner, hands nothing."""
    map_id = bpf.map_info(make_map()).id
    rx = Receiver(nobody_dir, as_user(NOBODY))
    try:
        line = one_line(bpfsession("send", rx.path, "--map-id", str(map_id)))
        assert "belongs to uid 65534 (nobody)" in line and "--to-uid 65534" in line
        assert rx.fds_waiting() == 0
        # named explicitly, that user may receive
        res = bpfsession("send", rx.path, "--to-uid", "1", "--to-uid", str(NOBODY),
                         "--map-id", str(map_id))
        assert res.returncode == 0, res.stderr
        assert rx.fds_waiting() == 1
    finally:
        rx.close()


def test_send_to_roots_and_own_sockets_needs_no_flag(short_tmp, make_map):
    rx = Receiver(str(short_tmp))
    try:
        res = bpfsession("send", rx.path, "--map-id", str(bpf.map_info(make_map()).id))
        assert res.returncode == 0, res.stderr
        assert rx.fds_waiting() == 1
    finally:
        rx.close()


def test_unprivileged_sender_to_its_own_socket(nobody_dir, make_map):
    """The caller's own uid counts as trusted: uid 65534 sending to uid 65534's socket gets
    past the owner check (and then fails only for want of CAP_BPF to open the map)."""
    rx = Receiver(nobody_dir, as_user(NOBODY))
    try:
        res = run([*as_user(NOBODY), sys.executable, "-c",
                   "from bpfsession import wire; import sys; "
                   "sys.stdout.write(repr(wire.connect_receiver(sys.argv[1]).fileno()))",
                   rx.path], check=False, cwd=os.path.dirname(os.path.dirname(__file__)))
        assert res.returncode == 0, res.stderr
    finally:
        rx.close()


def test_a_120_character_path_works_for_send(short_tmp, make_map):
    """AF_UNIX addresses stop at 107 bytes; send connects through /proc/self/fd/N."""
    deep = str(short_tmp / ("d" * (118 - len(str(short_tmp)))))
    os.mkdir(deep)
    rx = Receiver(deep)
    try:
        assert len(rx.path) >= 120
        res = bpfsession("send", rx.path, "--map-id", str(bpf.map_info(make_map()).id))
        assert res.returncode == 0, res.stderr
        assert rx.fds_waiting() == 1
    finally:
        rx.close()


def test_a_120_character_path_is_one_line_for_new(short_tmp, launch):
    path = str(short_tmp / ("p" * (120 - len(str(short_tmp)))))
    proc = launch("imp", path, "run", "true")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and err.count("\n") == 1
    assert "socket path too long for AF_UNIX (max 107 bytes)" in err


def _stream_socket(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen()
    return s


@pytest.mark.parametrize("kind, message", [
    ("file", "is a regular file, not a receiver's socket"),
    ("dir", "is a directory, not a receiver's socket"),
    ("symlink", "is a symbolic link: give the socket's own path"),
    ("stream", "is a stream or seqpacket socket, not a bpf_scm receiver's datagram socket"),
    ("stale", "nobody is listening on"),
    ("missing", "no socket at"),
    ("parent-file", "cannot open"),
])
def test_send_to_what_is_no_receiver(short_tmp, make_map, kind, message):
    path = str(short_tmp / "x")
    keep = None
    if kind == "file":
        open(path, "w").close()
    elif kind == "dir":
        os.mkdir(path)
    elif kind == "symlink":
        keep = _stream_socket(str(short_tmp / "real"))
        os.symlink(str(short_tmp / "real"), path)
    elif kind == "stream":
        keep = _stream_socket(path)
    elif kind == "stale":
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).bind(path)  # closed: stale
    elif kind == "parent-file":
        open(path, "w").close()
        path += "/sock"
    try:
        line = one_line(bpfsession("send", path, "--map-id",
                                   str(bpf.map_info(make_map()).id)))
    finally:
        if keep is not None:
            keep.close()
    assert message in line


@pytest.mark.parametrize("netns", ["/proc/1/ns/mnt", "/proc/self/ns/mnt", "/nonexistent/ns"])
@pytest.mark.parametrize("verb", ["send", "new"])
def test_netns_that_is_no_network_namespace(verb, netns, uds, launch):
    if verb == "send":
        res = bpfsession("send", uds, "--netns", netns, "--dev", "lo", "--ingress")
        line = one_line(res)
    else:
        proc = launch("--netns", netns, "imp", uds, "run", "true")
        _, err = proc.communicate(timeout=30)
        assert proc.returncode != 0 and err.count("\n") == 1 and err.startswith("bpfsession: ")
        line = err.strip()
        assert not os.path.exists(uds)
    assert netns in line
    if netns == "/proc/self/ns/mnt":
        assert "is not a network namespace file" in line


def test_send_times_out_on_a_stopped_receiver(uds, launch, make_map):
    """The receiver is SIGSTOPped with a full queue: send gives up after --timeout."""
    proc = launch("imp", uds, "run", "true")
    wait_for_socket(uds)
    os.kill(proc.pid, signal.SIGSTOP)
    wait_for(lambda: _state(proc.pid) == "T", what="the receiver to stop")
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        filler.connect(uds)
        filler.setblocking(False)
        with pytest.raises(BlockingIOError):
            for _ in range(100_000):  # net.unix.max_dgram_qlen, then EAGAIN
                filler.send(b"")
        start = time.monotonic()
        res = bpfsession("send", uds, "--timeout", "0.5", "--map-id",
                         str(bpf.map_info(make_map()).id), timeout=30)
        took = time.monotonic() - start
        line = one_line(res)
        assert "timed out after 0.5 s sending to" in line and "0 of 1 maps were sent" in line
        assert took >= 0.5
    finally:
        filler.close()
        os.kill(proc.pid, signal.SIGCONT)
    proc.communicate(timeout=30)
    wait_for(lambda: not os.path.exists(uds), what="the receiver to clean up")


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


def test_the_checked_socket_is_the_one_connected(short_tmp, nobody_dir):
    """What the owner check rests on: once UDS is opened with O_PATH, replacing the path
    (here by uid 65534's socket, renamed over it) does not change where /proc/self/fd/N
    connects."""
    mine = Receiver(str(short_tmp))
    theirs = Receiver(nobody_dir, as_user(NOBODY))
    fd = os.open(mine.path, os.O_PATH | os.O_NOFOLLOW)
    try:
        os.rename(theirs.path, mine.path)  # the swap, between check and connect
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(f"/proc/self/fd/{fd}")
            r, w = os.pipe()
            s.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r]))])
            os.close(r)
            os.close(w)
        assert mine.fds_waiting() == 1 and theirs.fds_waiting() == 0
    finally:
        os.close(fd)
        mine.close()
        theirs.close()
