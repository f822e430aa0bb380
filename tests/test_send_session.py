"""`send --session`: a session's hand-off passed on as it was received (entry ids, the
sender's entry fields, the header's obj_st), and `show -j` naming the layout it came in."""

from __future__ import annotations

import json
import subprocess

import pytest

from bpfsession import discover, wire
from bpfsession.kernel import bpf
from tests.helpers import BPFSESSION, ROOT, wait_for_socket

pytest_plugins = ["tests.sessions_fixtures"]

ST = (0x0803, 0x1234567)


def _entries(fds: list[int]) -> list[wire.MapEntry]:
    """Entries as an old tc would send them: own ids, pinning, inner map references."""
    out = []
    for i, fd in enumerate(fds):
        info = bpf.map_info(fd)
        out.append(wire.MapEntry(type=info.type, size_key=info.key_size,
                                 size_value=info.value_size, max_elem=info.max_entries,
                                 flags=0x10 + i, id=7 - 4 * i, pinning=1 + i,
                                 inner_id=30 + i, inner_idx=40 + i))
    return out


def _start(sessions, fds: list[int], layout: int):
    """A `bpfsession new` handed `fds` in `layout` with _entries() and obj_st ST."""
    uds = sessions._uds()
    launcher = subprocess.Popen([*BPFSESSION, "new", "imp", uds, "run", "sleep", "300"],
                                env=sessions.env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
    wait_for_socket(uds)
    sent = _entries(fds)
    wire.send_maps(uds, "oldtc", list(zip(sent, fds, strict=True)), st=ST, layout=layout)
    return sessions.adopt(launcher, uds, fds), sent


def _receive_from_send(sessions, uds: str, *args: str) -> wire.Handoff:
    """Run `bpfsession send UDS ARGS...` into a receiver of our own; its hand-off."""
    with wire.Listener(uds) as lst:
        proc = subprocess.Popen([*BPFSESSION, "send", uds, *args], env=sessions.env,
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            handoff = wire.receive(lst, {0}, timeout=20)
        finally:
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return handoff


@pytest.mark.parametrize("layout", [20, 24, 28, 36])
def test_session_alone_is_passed_on_unchanged(sessions, two_maps, short_tmp, layout):
    started, sent = _start(sessions, two_maps, layout)
    doc = json.loads(sessions.cli("show", started.id, "-j").stdout)
    assert doc["wire_layout"] == layout
    handoff = _receive_from_send(sessions, str(short_tmp / "rx"), "--session", started.id)
    try:
        assert handoff.obj == "oldtc" and (handoff.st_dev, handoff.st_ino) == ST
        assert handoff.layout == 36  # send's default, whatever the session was handed
        # what the old sender's layout carried comes back; what it lacked is 0
        fields = wire.LAYOUTS[layout]
        assert handoff.entries == [wire.MapEntry(**{f: getattr(e, f) for f in fields})
                                   ._replace(type=e.type, size_key=e.size_key,
                                             size_value=e.size_value, max_elem=e.max_elem)
                                   for e in sent]
        assert [bpf.map_info(fd).id for fd in handoff.fds] == started.map_ids
    finally:
        handoff.close()


def test_session_in_an_older_layout(sessions, two_maps, short_tmp):
    started, sent = _start(sessions, two_maps, 36)
    handoff = _receive_from_send(sessions, str(short_tmp / "rx"), "--layout", "24",
                                 "--session", started.id)
    try:
        assert handoff.layout == 24
        assert [(e.id, e.pinning, e.flags) for e in handoff.entries] == \
            [(e.id, e.pinning, 0) for e in sent]
    finally:
        handoff.close()


def test_mixed_sources_are_renumbered(sessions, two_maps, make_map, short_tmp):
    started, sent = _start(sessions, two_maps, 36)
    extra = make_map("array", 4, 4, 1)
    handoff = _receive_from_send(sessions, str(short_tmp / "rx"), "--session", started.id,
                                 "--map-id", str(bpf.map_info(extra).id))
    try:
        assert [e.id for e in handoff.entries] == [0, 1, 2]
        assert (handoff.st_dev, handoff.st_ino) == (0, 0)
        # the session's maps keep the sender's other fields; the extra map has the kernel's
        assert [e.pinning for e in handoff.entries] == [sent[0].pinning, sent[1].pinning, 0]
        assert [bpf.map_info(fd).id for fd in handoff.fds] == \
            [*started.map_ids, bpf.map_info(extra).id]
    finally:
        handoff.close()


def test_session_without_registry_entry_sends_zeros(sessions, two_maps, short_tmp):
    """A tc exec session: its ids (BPF_MAP<id>) survive; what nobody kept is 0."""
    started = sessions.tc(two_maps)
    doc = json.loads(sessions.cli("show", started.id, "-j").stdout)
    assert doc["wire_layout"] is None
    handoff = _receive_from_send(sessions, str(short_tmp / "rx"), "--session", started.id)
    try:
        assert [e.id for e in handoff.entries] == [0, 1]
        assert (handoff.st_dev, handoff.st_ino) == (0, 0)
        assert all((e.pinning, e.inner_id, e.inner_idx) == (0, 0, 0)
                   for e in handoff.entries)
    finally:
        handoff.close()


def test_discovery_knows_every_layout():
    assert discover.WIRE_LAYOUTS == tuple(sorted(wire.LAYOUTS))


@pytest.mark.parametrize("reg, layout, st, sender", [
    ({"wire_layout": 28, "obj_st": [1, 2]}, 28, (1, 2), (1, 2, 3, 4)),
    ({"wire_layout": 32, "obj_st": [1]}, None, None, (1, 2, 3, 4)),
    ({"wire_layout": "36", "obj_st": [-1, 2]}, None, None, (1, 2, 3, 4)),
    ({"wire_layout": True, "obj_st": [1, 1 << 64]}, None, None, (1, 2, 3, 4)),
])
def test_registry_wire_fields_are_checked(reg, layout, st, sender):
    assert discover._wire_fields(reg) == (layout, st)
    good = {"flags": 1, "pinning": 2, "inner_id": 3, "inner_idx": 4}
    assert discover._sender({"sender": good}) == sender
    assert discover._sender({"sender": {**good, "pinning": "2"}}) is None
    assert discover._sender({"sender": {**good, "flags": 1 << 32}}) is None
    assert discover._sender({}) is None
