"""Every bpf_scm v1 layout iproute2 shipped, both ways, against C peers.

tests/wire_peers/ holds a sender and a receiver written like iproute2's
(bpf_map_set_send / bpf_map_set_recv) over struct bpf_elf_map as each release defined it;
they are compiled here with the system's cc, once per entry size (-DENTRY_SIZE=20|24|28|36).
The C structs are the oracle: `new` must read what a 20-byte tc sent, and a receiver built
against 4.6's headers must read every map that `send --layout 28` gives it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from bpfsession import wire
from bpfsession.kernel import bpf
from tests.helpers import SHOW_MAPS, bpfsession, parse_show_maps, run, wait_for_socket
from tests.new_helpers import wait_entry

pytest_plugins = ["tests.new_fixtures"]

PEERS = Path(__file__).parent / "wire_peers"
LAYOUTS = sorted(wire.LAYOUTS)
COUNTS = [1, 3, 64, 65]  # one datagram, a few, a full one, two datagrams
ST = (0x801, 1234567)


@pytest.fixture(scope="module")
def peers():
    """{layout: (sender, receiver)} built from tests/wire_peers with cc."""
    out = Path(tempfile.mkdtemp(prefix="bspeers"))
    built = {}
    try:
        for layout in LAYOUTS:
            pair = []
            for name in ("sender", "receiver"):
                exe = out / f"{name}{layout}"
                run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", f"-DENTRY_SIZE={layout}",
                     "-o", str(exe), str(PEERS / f"{name}.c")])
                pair.append(str(exe))
            built[layout] = tuple(pair)
        yield built
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="module")
def pool():
    """65 maps of several types and sizes, so that a misread entry shows."""
    kinds = [("hash", 4, 8, 16), ("array", 4, 4, 8), ("lru_hash", 8, 16, 32),
             ("percpu_array", 4, 12, 4), ("hash", 16, 24, 5)]
    fds = [bpf.map_create(*kinds[i % len(kinds)], f"peer{i}") for i in range(max(COUNTS))]
    yield fds
    for fd in fds:
        os.close(fd)


def _claims(i: int) -> dict[str, int]:
    """What the C sender says of map i beyond the kernel's facts: distinct per field."""
    return {"flags": 0x100 + i, "id": 1000 + 3 * i, "pinning": 1 + i % 3,
            "inner_id": 50 + i, "inner_idx": 70 + i}


def _c_send(sender: str, uds: str, fds: list[int]) -> list[wire.MapEntry]:
    """Run the C sender with `fds`; the entries it sent (all fields, as if 36 bytes)."""
    sent, args = [], []
    for i, fd in enumerate(fds):
        info = bpf.map_info(fd)
        entry = wire.MapEntry(type=info.type, size_key=info.key_size,
                              size_value=info.value_size, max_elem=info.max_entries,
                              **_claims(i))
        sent.append(entry)
        args.append(f"{fd}:{entry.type}:{entry.size_key}:{entry.size_value}:"
                     f"{entry.max_elem}:{entry.flags}:{entry.id}:{entry.pinning}:"
                     f"{entry.inner_id}:{entry.inner_idx}")
    run([sender, uds, "cobj", hex(ST[0]), str(ST[1]), *args], pass_fds=fds)
    return sent


def _as_layout(entry: wire.MapEntry, layout: int) -> wire.MapEntry:
    """The entry as a receiver sees it through `layout`: the fields it lacks are 0."""
    return wire.MapEntry(**{f: getattr(entry, f) for f in wire.LAYOUTS[layout]})


# ---- C sender -> bpfsession ---------------------------------------------------------------


@pytest.mark.parametrize("n", COUNTS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_c_sender_into_new(peers, pool, layout, n, launch, uds, run_dir):
    fds = pool[:n]
    proc = launch("imp", uds, "run", "sh", "-c", SHOW_MAPS + "; read x",
                  stdin=subprocess.PIPE)
    wait_for_socket(uds)
    sent = _c_send(peers[layout][0], uds, fds)
    entry = wait_entry(run_dir)
    out, err = proc.communicate("\n", timeout=30)
    assert proc.returncode == 0, err

    assert entry["wire_layout"] == layout and entry["obj_st"] == list(ST)
    assert entry["obj"] == "cobj"
    kept = [_as_layout(e, layout) for e in sent]
    for record, fd, e in zip(entry["maps"], fds, kept, strict=True):
        info = bpf.map_info(fd)
        assert record["env"] == f"BPF_MAP{e.id}" and record["id"] == info.id
        assert (record["type"], record["key_size"], record["value_size"],
                record["max_entries"]) == (info.type_name, info.key_size, info.value_size,
                                           info.max_entries)
        assert record["sender"] == {"flags": e.flags, "pinning": e.pinning,
                                    "inner_id": e.inner_id, "inner_idx": e.inner_idx}
    num, ids = parse_show_maps(out)
    assert num == n
    assert ids == {f"BPF_MAP{e.id}": bpf.map_info(fd).id
                   for e, fd in zip(kept, fds, strict=True)}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_c_sender_decoded_field_by_field(peers, pool, layout, uds):
    """The receive path's decode, against the C struct: type, sizes and every claim."""
    with wire.Listener(uds) as lst:
        sent = _c_send(peers[layout][0], uds, pool[:65])
        handoff = wire.receive(lst, {0}, timeout=10)
    try:
        assert handoff.layout == layout and (handoff.st_dev, handoff.st_ino) == ST
        assert handoff.entries == [_as_layout(e, layout) for e in sent]
        assert [bpf.map_info(fd).id for fd in handoff.fds] == \
            [bpf.map_info(fd).id for fd in pool[:65]]
    finally:
        handoff.close()


# ---- bpfsession send -> C receiver --------------------------------------------------------


def _c_receive(receiver: str, uds: str, *send_args: str) -> list[str]:
    rx = subprocess.Popen([receiver, uds], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    try:
        assert rx.stdout.readline() == "READY\n", rx.stderr.read()
        res = bpfsession("send", uds, *send_args)
        assert res.returncode == 0, res.stderr
        out, err = rx.communicate(timeout=30)
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.communicate()
    assert rx.returncode == 0, err
    return out.splitlines()


@pytest.mark.parametrize("n", COUNTS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_send_layout_into_c_receiver(peers, pool, layout, n, uds):
    fds = pool[:n]
    args = [a for fd in fds for a in ("--map-id", str(bpf.map_info(fd).id))]
    lines = _c_receive(peers[layout][1], uds, "--layout", str(layout), "--obj", "fromsend",
                       *args)
    assert lines[:3] == ["OBJ fromsend", "ST 0 0", f"NUM {n}"]
    got = [[int(v) for v in line.split()[1:]] for line in lines[3:]]
    expected = []
    for i, fd in enumerate(fds):
        info = bpf.map_info(fd)
        e = _as_layout(wire.MapEntry(type=info.type, size_key=info.key_size,
                                     size_value=info.value_size, max_elem=info.max_entries,
                                     flags=info.flags, id=i), layout)
        expected.append([*e, info.id])
    assert got == expected


def test_a_newer_layout_misreads_in_an_older_receiver(peers, pool, uds):
    """Why --layout exists: 4.6's receiver reads 36-byte entries as 28-byte ones."""
    fds = pool[:3]
    args = [a for fd in fds for a in ("--map-id", str(bpf.map_info(fd).id))]
    rx = subprocess.Popen([peers[28][1], uds], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    try:
        assert rx.stdout.readline() == "READY\n"
        assert bpfsession("send", uds, *args).returncode == 0
        out, _ = rx.communicate(timeout=30)
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.communicate()
    second = [int(v) for v in out.splitlines()[4].split()[1:]]
    assert second[:4] != [bpf.map_info(fds[1]).type, bpf.map_info(fds[1]).key_size,
                          bpf.map_info(fds[1]).value_size, bpf.map_info(fds[1]).max_entries]
