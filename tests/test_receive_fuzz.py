"""Property: whatever datagrams and ancillary data arrive, the receiver ends in a Handoff or
a BpfSessionError, never anything else, and never leaks an fd or the socket file."""

from __future__ import annotations

import array
import os
import shutil
import socket
import struct
import tempfile
import threading

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bpfsession import session, wire
from bpfsession.errors import BpfSessionError
from bpfsession.kernel import bpf
from tests.new_helpers import live_fds


@pytest.fixture(scope="module")
def pool():
    """Fds to attach: 70 maps (more than one datagram may carry) and some non-maps."""
    maps = [bpf.map_create("array", 4, 4, 1, f"fz{i}") for i in range(70)]
    r, w = os.pipe()
    null = os.open("/dev/null", os.O_RDONLY)
    a, b = socket.socketpair()
    kinds = {"map": maps, "pipe": [r, w], "null": [null], "sock": [a.fileno()]}
    yield kinds
    for fd in [*maps, r, w, null]:
        os.close(fd)
    a.close()
    b.close()


def header(version: int, total: int, obj: bytes) -> bytes:
    return wire.HEADER.pack(version, total & 0xFFFF, obj[:64], 0, 0)


@st.composite
def coherent(draw):
    """Mostly well-formed datagrams, in any of the four entry layouts, with one thing (or
    nothing) wrong: reaches every check."""
    n = draw(st.integers(1, 70))
    total = draw(st.sampled_from([n, n, n, n + 1, max(n - 1, 0), 0, 200]))
    version = draw(st.sampled_from([1, 1, 1, 1, 1, 1, 0, 2]))
    first = draw(st.sampled_from([0, 0, 0, 5]))
    ids = [first + i for i in range(n)]
    if draw(st.integers(0, 9)) == 0:
        ids[-1] = ids[0]  # a duplicate entry id
    layout = draw(st.sampled_from(sorted(wire.LAYOUTS)))  # every entry size iproute2 shipped
    body = header(version, total, draw(st.binary(max_size=64))) + b"".join(
        wire.MapEntry(type=2, size_key=4, size_value=4, max_elem=1, id=i).pack(layout)
        for i in ids)
    event(f"layout {layout}")
    cut = draw(st.sampled_from([0, 0, 0, 0, 0, 0, 1, layout - 1, 4]))
    nfds = draw(st.sampled_from([n, n, n, n, n, max(n - 1, 0), n + 1, 0]))
    kinds = draw(st.lists(st.sampled_from(["map"] * 12 + ["pipe", "null", "sock"]),
                          min_size=nfds, max_size=nfds))
    fdspec = [(k, i) for i, k in enumerate(kinds)]
    return body[: len(body) - cut], fdspec, draw(st.integers(0, 7)) == 0


noise = st.tuples(
    st.binary(max_size=3000),
    st.lists(st.tuples(st.sampled_from(("map", "pipe", "null", "sock")), st.integers(0, 69)),
             max_size=70),
    st.booleans(),  # with forged credentials of another uid (root may do that)
)
datagram = st.one_of(coherent(), coherent(), coherent(), noise)


def _send_all(path: str, grams, pool, done: threading.Event) -> None:
    # The receiver may time out (0.1 s) before a loaded machine runs this thread at all.
    while not os.path.exists(path):
        if done.wait(0.001):
            return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect(path)
        except OSError:
            return  # it timed out between the check and the connect
        for data, fdspec, forged in grams:
            fds = [pool[k][i % len(pool[k])] for k, i in fdspec]
            anc = []
            if fds:
                anc.append((socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds)))
            if forged:
                anc.append((socket.SOL_SOCKET, socket.SCM_CREDENTIALS,
                            struct.pack("=iII", os.getpid(), 65534, 65534)))
            try:
                s.sendmsg([data], anc)
            except OSError:
                return  # the receiver finished early and closed its socket


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grams=st.lists(datagram, min_size=1, max_size=3))
def test_arbitrary_datagrams(pool, grams):
    d = tempfile.mkdtemp(prefix="bsfz", dir="/tmp")
    path = os.path.join(d, "u")
    refused: list[str] = []
    before = live_fds()
    done = threading.Event()
    sender = threading.Thread(target=_send_all, args=(path, grams, pool, done))
    sender.start()
    try:
        handoff = session.receive(session.Config(uds=path, timeout=0.1), refused.append)
    except BpfSessionError as err:
        assert err.hint and "\n" not in err.hint
        event(f"error: {err.hint.split(':')[0][:30]}")
    else:
        event("handoff")
        try:
            assert len(handoff.entries) == len(handoff.fds) > 0
            assert all(bpf.is_map_fd(fd) for fd in handoff.fds)
        finally:
            handoff.close()
    finally:
        done.set()
        sender.join()
        shutil.rmtree(d)
    assert all(r.startswith("refused a datagram from pid") for r in refused)
    assert live_fds() == before
    assert not os.path.exists(path)
