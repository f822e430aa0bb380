"""--netns: the command runs where `ip netns exec` would put it, with bpffs still in sight."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from bpfsession import netns
from bpfsession.errors import BpfSessionError
from bpfsession.kernel import bpf
from tests.helpers import run, uniq, wait_for
from tests.new_helpers import finish, send, wait_entry

pytest_plugins = ["tests.new_fixtures"]


def _mounts(pid: int | str = "self") -> list[tuple[str, str]]:
    """The mount table, without the namespaces and pins other tests add meanwhile."""
    from bpfsession.kernel import proc as procfs

    return [(point, fstype) for point, fstype in procfs.mounts(f"/proc/{pid}/mountinfo")
            if not point.startswith(("/run/netns/", "/tmp/"))]


@pytest.fixture
def pinned_map():
    fd = bpf.map_create("hash", 4, 8, 4, "pinned_bs")
    path = f"/sys/fs/bpf/{uniq('pin')}"
    bpf.obj_pin(fd, path)
    yield path, bpf.map_info(fd).id
    os.unlink(path)
    os.close(fd)


def test_command_runs_in_the_named_netns_with_its_sysfs(launch, make_map, veth, uds):
    host_before = _mounts()
    proc = launch("--netns", veth.netns, "imp", uds, "run", "sh", "-c",
                  "readlink /proc/self/ns/net; ls /sys/class/net; echo $BPFSESSION_NETNS")
    send(uds, [make_map()])
    status, out, err = finish(proc)
    assert status == 0, err
    lines = out.split()
    assert lines[0] == f"net:[{os.stat(f'/run/netns/{veth.netns}').st_ino}]"
    assert veth.ns_if in lines and "lo" in lines and veth.host_if not in lines
    assert lines[-1] == veth.netns
    assert _mounts() == host_before  # nothing leaked back to the host's mount namespace


def test_pinned_map_visible_at_the_same_path_inside(launch, make_map, netns, uds, pinned_map):
    path, map_id = pinned_map
    proc = launch("--netns", netns, "imp", uds, "run", "bpftool", "-j", "map", "show",
                  "pinned", path)
    send(uds, [make_map()])
    status, out, err = finish(proc)
    assert status == 0, err
    assert json.loads(out)["id"] == map_id


def test_ip_netns_exec_hides_what_we_keep(netns, pinned_map):
    """The trap docs/new.md describes, checked: plain `ip netns exec` loses the host's pins."""
    res = run(["ip", "netns", "exec", netns, "ls", "/sys/fs/bpf"], check=False)
    assert os.path.basename(pinned_map[0]) not in res.stdout


def test_supervisor_stays_in_the_host_namespaces(launch, make_map, netns, uds, run_dir):
    proc = launch("--netns", netns, "imp", uds, "run", "sleep", "30")
    send(uds, [make_map()])
    entry = wait_entry(run_dir)
    assert entry["netns"] == netns and entry["netns_path"] == f"/run/netns/{netns}"
    for kind in ("net", "mnt"):
        assert os.readlink(f"/proc/{proc.pid}/ns/{kind}") == os.readlink(f"/proc/self/ns/{kind}")
    assert os.readlink(f"/proc/{entry['pid']}/ns/net") != os.readlink("/proc/self/ns/net")
    os.kill(entry["pid"], 15)
    assert finish(proc)[0] == 143


def test_etc_netns_files_are_bound_over_etc(launch, make_map, netns, uds):
    etc = f"/etc/netns/{netns}"
    os.makedirs(etc)
    try:
        with open(f"{etc}/hosts", "w") as f:
            f.write("10.9.9.9 only-in-this-netns\n")
        proc = launch("--netns", netns, "imp", uds, "run", "cat", "/etc/hosts")
        send(uds, [make_map()])
        status, out, err = finish(proc)
        assert (status, out) == (0, "10.9.9.9 only-in-this-netns\n"), err
        assert "only-in-this-netns" not in open("/etc/hosts").read()
    finally:
        shutil.rmtree(etc)


def test_netns_given_as_a_path(launch, make_map, veth, uds, pinned_map):
    pid_proc = launch("--netns", f"/run/netns/{veth.netns}", "imp", uds, "run", "sh", "-c",
                      f"readlink /proc/self/ns/net; ls /sys/class/net; ls {pinned_map[0]}; "
                      "echo $BPFSESSION_NETNS")
    send(uds, [make_map()])
    status, out, err = finish(pid_proc)
    assert status == 0, err
    lines = out.split()
    assert lines[0] == f"net:[{os.stat(f'/run/netns/{veth.netns}').st_ino}]"
    assert veth.ns_if in lines and pinned_map[0] in lines
    assert lines[-1] == f"/run/netns/{veth.netns}"


def test_proc_pid_ns_path(launch, make_map, netns, short_tmp):
    holder = subprocess.Popen(["ip", "netns", "exec", netns, "sleep", "30"])
    try:
        wait_for(lambda: os.readlink(f"/proc/{holder.pid}/ns/net") !=
                 os.readlink("/proc/self/ns/net"), what="holder in netns")
        path = str(short_tmp / "u")
        proc = launch("--netns", f"/proc/{holder.pid}/ns/net", "imp", path, "run", "readlink",
                      "/proc/self/ns/net")
        send(path, [make_map()])
        status, out, err = finish(proc)
        assert status == 0, err
        assert out.strip() == os.readlink(f"/proc/{holder.pid}/ns/net")
    finally:
        holder.kill()
        holder.wait()


def test_resolve_never_creates():
    with pytest.raises(BpfSessionError) as exc:
        netns.resolve("nope-bs-none")
    assert "not found in /run/netns" in exc.value.hint
    assert not os.path.exists("/run/netns/nope-bs-none")
    with pytest.raises(BpfSessionError):
        netns.resolve("/no/such/ns/file")
    with pytest.raises(BpfSessionError):
        netns.resolve("")


def test_bpffs_mounts_parsed_with_escapes(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw\n"
        "30 22 0:27 / /sys/fs/bpf rw - bpf bpf rw\n"
        "31 22 0:28 / /sys/fs/my\\040bpf rw - bpf bpf rw\n"
        "32 1 0:29 / /mnt/bpf rw - bpf bpf rw\n"
        "33 22 0:30 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw\n")
    assert netns.bpffs_mounts_under("/sys", str(info)) == ["/sys/fs/bpf", "/sys/fs/my bpf"]


def test_exec_enters_the_netns_itself(launch, make_map, veth, uds, pinned_map):
    proc = launch("--exec", "--netns", veth.netns, "imp", uds, "run", "sh", "-c",
                  f"echo $$; readlink /proc/self/ns/net; ls /sys/class/net {pinned_map[0]}")
    send(uds, [make_map()])
    status, out, err = finish(proc)
    assert status == 0, err
    lines = out.split()
    assert lines[0] == str(proc.pid)
    assert lines[1] == f"net:[{os.stat(f'/run/netns/{veth.netns}').st_ino}]"
    assert veth.ns_if in lines and pinned_map[0] in lines
