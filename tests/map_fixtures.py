"""Fixtures for the `bpfsession map` tests; load with `pytest_plugins = ["tests.map_fixtures"]`.

`typed_maps` loads tests/bpf/typed.bpf.c (clang, BTF maps of every kind) with
`bpftool prog loadall ... pinmaps`, the way people load objects without tc; everything
is unpinned at teardown, which frees the program and its maps.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import compile_bpf
from tests.helpers import ROOT, run, uniq

MAP_NAMES = ("t_array", "t_hash", "t_lru", "t_counts", "t_pcpu_array", "t_pcpu_hash", "t_lpm",
             "t_progs", "t_outer", "t_inner_a", "t_inner_b")


@pytest.fixture(scope="session")
def typed_obj(bpf_build_dir) -> Path:
    return compile_bpf(ROOT / "tests" / "bpf" / "typed.bpf.c", bpf_build_dir)


@dataclass
class TypedMaps:
    pins: dict[str, str]  # map name -> pinned path
    ids: dict[str, int]  # map name -> kernel map id
    prog_pin: str
    prog_id: int

    def pin(self, name: str) -> list[str]:
        """The MAP spec words for a map: ["pinned", PATH]."""
        return ["pinned", self.pins[name]]


def _id_of(path: str, kind: str) -> int:
    import json

    return json.loads(run(["bpftool", "-j", kind, "show", "pinned", path]).stdout)["id"]


@pytest.fixture
def typed_maps(typed_obj) -> TypedMaps:
    base = f"/sys/fs/bpf/{uniq('bsmap')}"
    progs, maps_dir = f"{base}/progs", f"{base}/maps"
    os.makedirs(base)
    try:
        run(["bpftool", "prog", "loadall", str(typed_obj), progs, "pinmaps", maps_dir])
        pins = {n: f"{maps_dir}/{n}" for n in MAP_NAMES}
        prog_pin = f"{progs}/typed_prog"
        yield TypedMaps(pins, {n: _id_of(p, "map") for n, p in pins.items()}, prog_pin,
                        _id_of(prog_pin, "prog"))
    finally:
        subprocess.run(["rm", "-rf", base])


@pytest.fixture
def pinned_map(make_map):
    """Factory: a fresh map (make_map args) pinned under /sys/fs/bpf; (fd, path), unpinned
    at teardown."""
    paths: list[str] = []

    def make(*args, **kw) -> tuple[int, str]:
        fd = make_map(*args, **kw)
        from bpfsession.kernel import bpf

        path = f"/sys/fs/bpf/{uniq('bspin')}"
        bpf.obj_pin(fd, path)
        paths.append(path)
        return fd, path

    yield make
    for p in paths:
        if os.path.exists(p):
            os.unlink(p)


@pytest.fixture(scope="session")
def kinds_obj(bpf_build_dir) -> Path:
    """tests/bpf/kinds.bpf.c built once: every BTF kind in hash, array and per-CPU maps."""
    return compile_bpf(ROOT / "tests" / "bpf" / "kinds.bpf.c", bpf_build_dir)


@pytest.fixture
def kinds_maps(kinds_obj) -> dict[str, str]:
    """kinds.bpf.o loaded and its maps pinned: map name -> pinned path; unpinned at
    teardown, which frees the program and its maps."""
    base = f"/sys/fs/bpf/{uniq('bskind')}"
    os.makedirs(base)
    try:
        run(["bpftool", "prog", "loadall", str(kinds_obj), f"{base}/progs", "pinmaps",
             f"{base}/maps"])
        yield {n: f"{base}/maps/{n}" for n in os.listdir(f"{base}/maps")}
    finally:
        subprocess.run(["rm", "-rf", base])


@pytest.fixture
def pinned_map_btf(pinned_map):
    """Factory: a hash map (u32 key, 16-byte value, 8192 entries) whose types come from a
    raw BTF blob (for kinds clang cannot emit); (fd, pinned path)."""
    from bpfsession.kernel import bpf

    btf_fds: list[int] = []

    def make(blob: bytes, key_type: int, value_type: int) -> tuple[int, str]:
        btf_fd = bpf.btf_load(blob)
        btf_fds.append(btf_fd)
        fd = bpf.map_create("hash", 4, 16, 8192, uniq("bse64"),
                            btf=(btf_fd, key_type, value_type))
        path = f"/sys/fs/bpf/{uniq('bspin')}"
        bpf.obj_pin(fd, path)
        made.append((fd, path))
        return fd, path

    made: list[tuple[int, str]] = []
    yield make
    for fd, path in made:
        os.unlink(path)
        os.close(fd)
    for fd in btf_fds:
        os.close(fd)
