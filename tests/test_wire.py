"""bpf_scm v1: bytes against the C layout, then the real socket path with real map fds."""

from __future__ import annotations

import array
import os
import socket
import stat
import struct

import pytest

from bpfsession import wire
from bpfsession.kernel import bpf
from tests.helpers import open_fds, parse_show_maps, send_as_nobody, tc_exec_receiver

# struct bpf_map_aux for obj "prog", st {dev 0x0102, ino 0x0304}, one entry
# {type 1 (hash), key 4, value 8, max 16, flags 0, id 7, pinning 2, inner 0, 0}: laid out by
# hand from iproute2's include/bpf_scm.h + bpf_elf.h (x86_64: 4 pad bytes before obj_st).
RECORDED = bytes.fromhex(
    "0100" "0100"                                  # uds_ver 1, num_ent 1
    + "70726f67" + "00" * 60                       # obj_name[64] = "prog"
    + "00000000"                                   # padding to 8-byte obj_st
    + "0201000000000000" + "0403000000000000"      # st_dev, st_ino
    + "01000000" "04000000" "08000000" "10000000"  # type, size_key, size_value, max_elem
    + "00000000" "07000000" "02000000" "00000000" "00000000"  # flags id pinning inner_*
)


def test_pack_matches_the_c_layout():
    entry = wire.MapEntry(type=1, size_key=4, size_value=8, max_elem=16, id=7, pinning=2)
    assert wire.pack("prog", [entry], st=(0x0102, 0x0304)) == [RECORDED]


def test_unpack_recorded_bytes():
    header, entries = wire.unpack(RECORDED)
    assert header == wire.Header(1, 1, "prog", 0x0102, 0x0304)
    assert entries == [wire.MapEntry(1, 4, 8, 16, 0, 7, 2, 0, 0)]


def test_pack_splits_at_64_and_repeats_the_total():
    entries = [wire.MapEntry(id=i) for i in range(130)]
    grams = wire.pack("o" * 80, entries)
    assert [(len(g) - 88) // 36 for g in grams] == [64, 64, 2]
    for g in grams:
        header, _ = wire.unpack(g, (len(g) - 88) // 36)
        assert header.total == 130
        assert header.obj == "o" * 63  # strlcpy into char[64]: NUL-terminated
    assert [e.id for g in grams for e in wire.unpack(g, (len(g) - 88) // 36)[1]] == \
        list(range(130))


@pytest.mark.parametrize("data, message", [
    (b"\x01\x00", "truncated datagram: 2 bytes"),
    (RECORDED[:-1], "35 bytes of map entries with 1 fd are not one entry of 20, 24, 28 "),
    (RECORDED + b"\0" * 4, "40 bytes of map entries with 1 fd are not"),
    (b"\x02\x00" + RECORDED[2:], "unsupported bpf_scm version 2"),
])
def test_unpack_rejects(data, message):
    with pytest.raises(wire.WireError, match=message):
        wire.unpack(data, 1)


# --- every layout iproute2 shipped ----------------------------------------------------

# The same entry as RECORDED in the older layouts (include/bpf_elf.h of 4.1, 4.5, 4.6).
RECORDED_ENTRY = {
    20: "01000000" "04000000" "08000000" "10000000" "07000000",  # type key value max id
    24: "01000000" "04000000" "08000000" "10000000" "07000000" "02000000",  # + pinning
    28: "01000000" "04000000" "08000000" "10000000" "00000000" "07000000" "02000000",
    36: RECORDED[88:].hex(),
}


@pytest.mark.parametrize("layout", [20, 24, 28, 36])
def test_each_layout_against_recorded_bytes(layout):
    entry = wire.MapEntry(type=1, size_key=4, size_value=8, max_elem=16, id=7, pinning=2)
    data = RECORDED[:88] + bytes.fromhex(RECORDED_ENTRY[layout])
    assert len(data) == 88 + layout
    assert wire.pack("prog", [entry], st=(0x0102, 0x0304), layout=layout) == [data]
    header, entries = wire.unpack(data, 1)
    assert header.layout == layout and (header.st_dev, header.st_ino) == (0x0102, 0x0304)
    # the fields a layout lacks come back as 0
    assert entries == [entry._replace(pinning=2 if layout > 20 else 0)]


def test_fields_a_layout_lacks_are_zero_and_the_rest_keep_their_order():
    entry = wire.MapEntry(*range(1, 10))  # every field distinct: 1..9
    for layout, fields in wire.LAYOUTS.items():
        (got,) = wire.unpack(wire.pack("o", [entry], layout=layout)[0], 1)[1]
        assert {f: v for f, v in got._asdict().items() if v} == \
            {f: getattr(entry, f) for f in fields}


def test_iproute2_4_1_three_maps_is_one_148_byte_datagram():
    entries = [wire.MapEntry(type=2, size_key=4, size_value=8, max_elem=1, id=i)
               for i in range(3)]
    (data,) = wire.pack("tc41", entries, layout=20)
    assert len(data) == 148
    header, got = wire.unpack(data, 3)
    assert header.layout == 20 and got == entries


def test_the_fd_count_tells_layouts_apart():
    # 180 bytes of entries: nine of 20 bytes or five of 36; the fds decide.
    nine = wire.pack("x", [wire.MapEntry(id=i) for i in range(9)], layout=20)[0]
    five = wire.pack("x", [wire.MapEntry(id=i) for i in range(5)], layout=36)[0]
    assert len(nine) == len(five)
    assert wire.unpack(nine, 9)[0].layout == 20
    assert wire.unpack(five, 5)[0].layout == 36


def test_unknown_layout_is_refused():
    with pytest.raises(wire.WireError, match="unknown bpf_scm entry layout 32"):
        wire.pack("x", [wire.MapEntry()], layout=32)


# --- the real socket ------------------------------------------------------------------


def _raw_send(path: str, payload: bytes, fds: list[int]) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(path)
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        s.sendmsg([payload], anc)


def _entries(fds: list[int]) -> list[tuple[wire.MapEntry, int]]:
    return [(wire.MapEntry(type=bpf.map_info(fd).type, id=i), fd) for i, fd in enumerate(fds)]


def test_receive_roundtrip_keeps_order_ids_and_leaks_nothing(uds, make_map):
    fds = [make_map("hash"), make_map("array", value_size=4), make_map("lru_hash")]
    before = open_fds()
    with wire.Listener(uds) as lst:
        assert stat.S_IMODE(os.stat(uds).st_mode) == 0o600
        pairs = [(wire.MapEntry(id=i * 10), fd) for i, fd in enumerate(fds)]
        wire.send_maps(uds, "myobj", pairs)
        handoff = wire.receive(lst, {0}, timeout=5)
        try:
            assert handoff.obj == "myobj"
            assert [e.id for e in handoff.entries] == [0, 10, 20]
            got = [bpf.map_info(fd).id for fd in handoff.fds]
            assert got == [bpf.map_info(fd).id for fd in fds]
            assert handoff.senders == {(os.getpid(), 0)}
        finally:
            handoff.close()
    assert not os.path.exists(uds)
    assert open_fds() == before


def test_receive_more_than_64_maps(uds, make_map):
    fds = [make_map("array", value_size=4, max_entries=1) for _ in range(100)]
    with wire.Listener(uds) as lst:
        wire.send_maps(uds, "many", _entries(fds))
        handoff = wire.receive(lst, {0}, timeout=5)
        try:
            assert len(handoff.fds) == 100
            assert [bpf.map_info(fd).id for fd in handoff.fds] == \
                [bpf.map_info(fd).id for fd in fds]
        finally:
            handoff.close()


@pytest.mark.parametrize("layout", [20, 24, 28, 36])
def test_receive_every_layout(uds, make_map, layout):
    fds = [make_map("array", value_size=4, max_entries=1) for _ in range(65)]
    pairs = [(wire.MapEntry(*range(i, i + 9))._replace(id=100 + i), fd)
             for i, fd in enumerate(fds)]
    with wire.Listener(uds) as lst:
        wire.send_maps(uds, "old", pairs, st=(5, 6), layout=layout)
        handoff = wire.receive(lst, {0}, timeout=5)
        try:
            assert handoff.layout == layout
            assert (handoff.st_dev, handoff.st_ino) == (5, 6)
            fields = wire.LAYOUTS[layout]
            assert handoff.entries == [
                wire.MapEntry(**{f: getattr(e, f) for f in fields}) for e, _ in pairs]
            assert [bpf.map_info(fd).id for fd in handoff.fds] == \
                [bpf.map_info(fd).id for fd in fds]
        finally:
            handoff.close()


def _bad(uds, send, timeout=2.0):
    before = open_fds()
    with wire.Listener(uds) as lst:
        send()
        with pytest.raises(wire.WireError) as exc:
            wire.receive(lst, {0}, timeout=timeout)
    assert open_fds() == before, "fds leaked"
    assert not os.path.exists(uds)
    return exc.value.hint


def test_entry_fd_count_mismatch(uds, make_map):
    a, b = make_map(), make_map()
    payload = wire.pack("x", [wire.MapEntry(id=0), wire.MapEntry(id=1)])[0]
    hint = _bad(uds, lambda: _raw_send(uds, payload, [a]))
    assert "72 bytes of map entries with 1 fd are not one entry of 20, 24, 28 " in hint
    assert bpf.map_info(b).id  # the sender's maps are untouched


def test_non_map_fd_is_refused(uds):
    r, w = os.pipe()
    try:
        payload = wire.pack("x", [wire.MapEntry(id=0)])[0]
        hint = _bad(uds, lambda: _raw_send(uds, payload, [r]))
    finally:
        os.close(r)
        os.close(w)
    assert "is not a BPF map (pipe:" in hint


def test_more_than_declared_total(uds, make_map):
    fds = [make_map(), make_map()]
    payload = bytearray(wire.pack("x", [wire.MapEntry(id=0), wire.MapEntry(id=1)])[0])
    struct.pack_into("=H", payload, 2, 1)  # num_ent says 1, the datagram carries 2
    hint = _bad(uds, lambda: _raw_send(uds, bytes(payload), fds))
    assert "more than the declared total 1" in hint


def test_second_datagram_must_agree(uds, make_map):
    a, b = make_map(), make_map()
    first = wire.pack("one", [wire.MapEntry(id=0), wire.MapEntry(id=1)])[0]
    first = first[: 88 + 36]  # total 2, carries 1
    second = wire.pack("two", [wire.MapEntry(id=1), wire.MapEntry(id=2)])[0][: 88 + 36]

    def send():
        _raw_send(uds, first, [a])
        _raw_send(uds, second, [b])

    assert "disagrees with the first" in _bad(uds, send)


def test_one_handoff_uses_one_layout(uds, make_map):
    a, b = make_map(), make_map()
    entries = [wire.MapEntry(id=0), wire.MapEntry(id=1)]
    first = wire.pack("x", entries, layout=36)[0][: 88 + 36]  # total 2, carries 1
    second = wire.pack("x", entries[1:], layout=28)[0]
    second = first[:88] + second[88:]

    def send():
        _raw_send(uds, first, [a])
        _raw_send(uds, second, [b])

    assert "has 28-byte map entries, the first had 36" in _bad(uds, send)


def test_entry_count_must_agree_with_the_header(uds, make_map):
    # five 36-byte entries declared, nine fds: read as nine 20-byte entries, more than 5
    fds = [make_map() for _ in range(9)]
    payload = wire.pack("x", [wire.MapEntry(id=i) for i in range(5)])[0]
    hint = _bad(uds, lambda: _raw_send(uds, payload, fds))
    assert "brings the count to 9, more than the declared total 5" in hint


def test_duplicate_entry_ids(uds, make_map):
    fds = [make_map(), make_map()]
    pairs = [(wire.MapEntry(id=3), fds[0]), (wire.MapEntry(id=3), fds[1])]
    assert "more than once" in _bad(uds, lambda: wire.send_maps(uds, "d", pairs))


def test_too_many_fds_in_one_datagram_is_ctrunc(uds, make_map):
    fd = make_map()
    payload = wire.pack("x", [wire.MapEntry(id=i) for i in range(64)])[0]
    assert "control data truncated" in _bad(uds, lambda: _raw_send(uds, payload, [fd] * 70))


def test_oversized_datagram(uds, make_map):
    payload = wire.pack("x", [wire.MapEntry(id=i) for i in range(64)])[0] + b"\0" * 36
    assert "larger than a bpf_scm message" in _bad(uds, lambda: _raw_send(uds, payload, []))


def test_timeout_names_the_path(uds):
    assert "no sender came to" in _bad(uds, lambda: None, timeout=0.2)


def test_refused_uid_is_reported_and_the_wait_goes_on(uds, make_map):
    fd = make_map()
    refused: list[str] = []
    with wire.Listener(uds) as lst:
        # let an unprivileged sender reach the socket at all
        os.chmod(os.path.dirname(uds), 0o755)
        os.chmod(uds, 0o666)
        send_as_nobody(uds, "evil", fd)
        wire.send_maps(uds, "good", [(wire.MapEntry(id=0), fd)])
        before = open_fds()
        handoff = wire.receive(lst, {0}, timeout=5, on_refused=refused.append)
        assert handoff.obj == "good"
        assert len(refused) == 1 and "(uid 65534)" in refused[0]
        handoff.close()
        assert open_fds() == before


# --- the socket file ------------------------------------------------------------------


def test_stale_socket_is_replaced(uds):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(uds)
    s.close()  # the file stays, nobody is bound: stale
    with wire.Listener(uds):
        assert stat.S_ISSOCK(os.lstat(uds).st_mode)
    assert not os.path.exists(uds)


def test_live_socket_is_refused(uds):
    with wire.Listener(uds):
        with pytest.raises(wire.WireError, match="already listening"):
            wire.Listener(uds)
        assert os.path.exists(uds)


def test_regular_file_is_refused(uds):
    with open(uds, "w") as f:
        f.write("keep me")
    with pytest.raises(wire.WireError, match="is not a socket"):
        wire.Listener(uds)
    with open(uds) as f:
        assert f.read() == "keep me"


def test_missing_directory(short_tmp):
    with pytest.raises(wire.WireError, match="does not exist .is the shared volume mounted"):
        wire.Listener(str(short_tmp / "nope" / "sock"))


def test_close_leaves_a_replacement_alone(uds):
    lst = wire.Listener(uds)
    os.unlink(uds)
    other = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    other.bind(uds)
    try:
        lst.close()
        assert os.path.exists(uds)
    finally:
        other.close()
        os.unlink(uds)


def test_send_without_receiver(uds):
    with pytest.raises(wire.WireError, match="no socket at .* start the receiver"):
        wire.send_maps(uds, "x", [(wire.MapEntry(), 0)])


# --- iproute2 as the peer -------------------------------------------------------------


def test_tc_exec_accepts_what_we_send(uds, make_map):
    fds = [make_map("hash"), make_map("array", value_size=4), make_map("percpu_hash")]
    ids = [bpf.map_info(fd).id for fd in fds]
    proc = tc_exec_receiver(uds)
    wire.send_maps(uds, "interop", [(wire.MapEntry(id=i + 5), fd) for i, fd in enumerate(fds)])
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    num, seen = parse_show_maps(out)
    assert num == 3
    assert seen == {"BPF_MAP5": ids[0], "BPF_MAP6": ids[1], "BPF_MAP7": ids[2]}
