"""Shared fixtures: real netns, veths, clang-built tc programs and maps, all torn down.

Every test runs as root against the real kernel. Names are unique per run (helpers.uniq)
so a failed teardown never collides with the next run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import ROOT, run, uniq

BPF_CFLAGS = ["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu",
              "-I/usr/include/aarch64-linux-gnu"]


def pytest_configure(config):
    if os.geteuid() != 0:
        raise pytest.UsageError("bpfsession's tests use the real kernel and must run as root")
    if subprocess.run(["mountpoint", "-q", "/sys/fs/bpf"]).returncode != 0:
        subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=True)


@pytest.fixture
def short_tmp():
    """A short private directory (AF_UNIX paths must stay under 108 bytes)."""
    d = tempfile.mkdtemp(prefix="bs", dir="/tmp")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def uds(short_tmp) -> str:
    return str(short_tmp / "bpf-uds")


@pytest.fixture(scope="session")
def bpf_build_dir():
    d = tempfile.mkdtemp(prefix="bsobj", dir="/tmp")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def compile_bpf(source: Path, out_dir: Path) -> Path:
    out = out_dir / (source.name.removesuffix(".c") + ".o")
    if not out.exists():
        run(["clang", *BPF_CFLAGS, "-c", str(source), "-o", str(out)])
    return out


@pytest.fixture(scope="session")
def counter_obj(bpf_build_dir) -> Path:
    """bpf/counter.bpf.c built with clang: a tc program with two BTF maps."""
    return compile_bpf(ROOT / "bpf" / "counter.bpf.c", bpf_build_dir)


@pytest.fixture
def netns():
    """A fresh named network namespace (ip netns add), deleted afterwards."""
    name = uniq("bsns")
    run(["ip", "netns", "add", name])
    yield name
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


_subnet = iter(range(1, 250))


@dataclass
class Veth:
    netns: str
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str


@pytest.fixture
def veth(netns) -> Veth:
    """A veth pair: one end on the host, its peer (up, addressed) inside `netns`."""
    n = next(_subnet)
    # The second octet from the pid: two test runs at once never share a host route.
    net = f"10.{100 + os.getpid() % 150}.{n}"
    v = Veth(netns, uniq("bsh"), uniq("bsp"), f"{net}.1", f"{net}.2")
    run(["ip", "link", "add", v.host_if, "type", "veth", "peer", "name", v.ns_if,
         "netns", netns])
    # No IPv6 on the test link: router solicitations and DAD would bump the counters of a
    # program on it at random moments; the tests' own traffic is the only traffic.
    run(["sysctl", "-qw", f"net.ipv6.conf.{v.host_if}.disable_ipv6=1"])
    run(["ip", "netns", "exec", netns, "sysctl", "-qw",
         f"net.ipv6.conf.{v.ns_if}.disable_ipv6=1"])
    run(["ip", "addr", "add", f"{v.host_ip}/24", "dev", v.host_if])
    run(["ip", "link", "set", v.host_if, "up"])
    run(["ip", "-n", netns, "addr", "add", f"{v.ns_ip}/24", "dev", v.ns_if])
    run(["ip", "-n", netns, "link", "set", v.ns_if, "up"])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])
    yield v
    subprocess.run(["ip", "link", "del", v.host_if], capture_output=True)


@dataclass
class TcProg:
    veth: Veth
    prog_id: int
    map_ids: dict[str, int] = field(default_factory=dict)  # kernel map name -> id


def attach_tc(veth: Veth, obj: Path, direction: str = "ingress", sec: str = "tc") -> TcProg:
    """Load `obj` as a direct-action tc filter on the netns side of `veth`, the real way."""
    ns = ["ip", "netns", "exec", veth.netns]
    run([*ns, "tc", "qdisc", "add", "dev", veth.ns_if, "clsact"], check=False)
    run([*ns, "tc", "filter", "add", "dev", veth.ns_if, direction, "bpf", "da", "obj",
         str(obj), "sec", sec])
    out = run([*ns, "tc", "filter", "show", "dev", veth.ns_if, direction]).stdout
    prog_id = int(re.search(r" id (\d+)", out).group(1))
    from bpfsession.kernel import bpf

    fd = bpf.prog_get_fd_by_id(prog_id)
    try:
        ids = bpf.prog_info(fd).map_ids
    finally:
        os.close(fd)
    names = {}
    for map_id in ids:
        mfd = bpf.map_get_fd_by_id(map_id)
        try:
            names[bpf.map_info(mfd).name] = map_id
        finally:
            os.close(mfd)
    return TcProg(veth, prog_id, names)


@pytest.fixture
def tc_counter(veth, counter_obj) -> TcProg:
    """bpf/counter.bpf.c attached to clsact ingress of the veth end inside the netns."""
    return attach_tc(veth, counter_obj)


@pytest.fixture
def make_map():
    """Factory for real kernel maps (bpf_map_create); every fd closed at teardown."""
    from bpfsession.kernel import bpf

    fds: list[int] = []

    def make(map_type: str = "hash", key_size: int = 4, value_size: int = 8,
             max_entries: int = 16, name: str = "") -> int:
        fd = bpf.map_create(map_type, key_size, value_size, max_entries, name or uniq("m"))
        fds.append(fd)
        return fd

    yield make
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
