"""The container image, the Kubernetes manifests, and the capability claims of the docs.

No container engine runs here: the Dockerfile is linted (hadolint) and parsed, the manifests
are loaded and checked, and what the docs promise about capabilities is measured on the real
kernel in child processes that dropped them (python-prctl, setpriv).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bpfsession import wire
from bpfsession.kernel import bpf
from tests.helpers import ROOT, run, uniq, wait_for_socket

DOCKERFILE = ROOT / "images" / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"
K8S = ROOT / "docs" / "k8s"


def instructions(text: str) -> list[tuple[int, str, str]]:
    """(line, INSTRUCTION, arguments) with continuations joined and comments left out."""
    out, pending, start = [], "", 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        word, _, args = (pending + stripped).partition(" ")
        out.append((start, word.upper(), args.strip()))
        pending = ""
    return out


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[int, str, str]]:
    return instructions(DOCKERFILE.read_text())


def _args(dockerfile, name: str) -> list[str]:
    return [a for _, word, a in dockerfile if word == name]


def test_hadolint_finds_nothing_at_the_strictest_threshold():
    res = run([str(HADOLINT), "--failure-threshold", "style", str(DOCKERFILE)], check=False)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_every_hadolint_ignore_is_justified_and_needed():
    """Each `# hadolint ignore=` has a reason above it and silences a real finding."""
    lines = DOCKERFILE.read_text().splitlines()
    res = run([str(HADOLINT), "--disable-ignore-pragma", "--no-fail", "-f", "json",
               str(DOCKERFILE)])
    findings = {(f["line"], f["code"]) for f in json.loads(res.stdout)}
    ignored = set()
    for i, line in enumerate(lines):
        m = re.match(r"#\s*hadolint ignore=([\w,]+)", line.strip())
        if not m:
            continue
        assert lines[i - 1].strip().startswith("#") and "hadolint" not in lines[i - 1], \
            f"line {i + 1}: say why above the ignore"
        for code in m.group(1).split(","):
            ignored.add((i + 2, code))  # it applies to the next instruction
    assert findings == ignored


def test_multi_stage_from_a_digest_pinned_base(dockerfile):
    text = DOCKERFILE.read_text()
    first_from = next(i for i, (_, word, _) in enumerate(dockerfile) if word == "FROM")
    args = dict(a.split("=", 1) for _, word, a in dockerfile[:first_from] if word == "ARG")
    assert re.fullmatch(r"python:3\.\d+-slim@sha256:[0-9a-f]{64}", args["PYTHON_IMAGE"])
    froms = _args(dockerfile, "FROM")
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE}"]
    assert not re.search(r"\blatest\b", text, re.IGNORECASE)
    assert "# hadolint" not in text.split("ARG PYTHON_IMAGE")[0]


def _stages(dockerfile) -> list[list[tuple[int, str, str]]]:
    stages: list[list[tuple[int, str, str]]] = []
    for ins in dockerfile:
        if ins[1] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def test_builder_makes_wheels_final_installs_them_without_a_compiler(dockerfile):
    builder, final = _stages(dockerfile)
    builder_run = " ".join(a for _, w, a in builder if w == "RUN")
    assert "libcap-dev" in builder_run and "gcc" in builder_run
    assert re.search(r"pip wheel .*--wheel-dir /wheels \. .*python-prctl==", builder_run)
    for _, word, args in builder:
        if word == "COPY":
            *sources, _dest = args.split()
            for src in sources:
                assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    final_run = " ".join(a for _, w, a in final if w == "RUN")
    assert "libcap2" in final_run and "gcc" not in final_run and "-dev" not in final_run
    assert re.search(r"--mount=type=bind,from=builder,source=/wheels", final_run)
    assert "--no-index" in final_run
    # Only the digest list crosses over in a layer (the wheels would stay in it).
    assert [a for _, w, a in final if w == "COPY"] == [
        "--from=builder /wheels.sha256 /usr/share/bpfsession/wheels.sha256"]
    assert "sha256sum --quiet --check /usr/share/bpfsession/wheels.sha256" in final_run


def test_entrypoint_volume_env_labels(dockerfile):
    _, final = _stages(dockerfile)
    words = {w for _, w, _ in final}
    assert json.loads(_args(final, "ENTRYPOINT")[-1]) == ["bpfsession", "new"]
    assert json.loads(_args(final, "CMD")[-1])[0] == "run"
    env = " ".join(_args(final, "ENV"))
    uds = re.search(r"BPFSESSION_IMPORT=(\S+)", env).group(1)
    volumes = json.loads(_args(final, "VOLUME")[-1])
    assert posixpath.dirname(uds) in volumes
    labels = " ".join(_args(final, "LABEL"))
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    assert "HEALTHCHECK" not in words and "No HEALTHCHECK" in DOCKERFILE.read_text()
    for _, word, args in final:
        if word in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"(PASSWORD|TOKEN|SECRET|API_KEY)", args, re.IGNORECASE)


# ------------------------------------------------------------------ Kubernetes manifests

def _load(name: str) -> dict:
    (doc,) = list(yaml.safe_load_all((K8S / name).read_text()))
    return doc


def _pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"] if doc["kind"] == "DaemonSet" else doc["spec"]


def _containers(doc: dict) -> dict[str, dict]:
    return {c["name"]: c for c in _pod_spec(doc)["containers"]}


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def _caps(container: dict) -> tuple[list[str], list[str]]:
    caps = container["securityContext"]["capabilities"]
    return caps.get("drop", []), caps.get("add", [])


def test_every_manifest_is_valid_yaml_and_documented():
    names = sorted(p.name for p in K8S.glob("*.yaml"))
    assert names == ["daemonset.yaml", "pod.yaml"]
    doc = (ROOT / "docs" / "kubernetes.md").read_text()
    for name in names:
        assert f"k8s/{name}" in doc
        for d in yaml.safe_load_all((K8S / name).read_text()):
            assert d["apiVersion"] and d["kind"] and d["metadata"]["name"]


@pytest.mark.parametrize("name", ["pod.yaml", "daemonset.yaml"])
def test_socket_volume_shared_at_the_same_path(name):
    doc = _load(name)
    volumes = {v["name"]: v for v in _pod_spec(doc)["volumes"]}
    containers = _containers(doc)
    assert set(containers) == {"loader", "agent"}
    paths = set()
    for c in containers.values():
        uds = _env(c)["BPFSESSION_IMPORT"]
        (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == posixpath.dirname(uds)]
        assert "emptyDir" in volumes[mount["name"]]
        paths.add((mount["name"], uds))
    assert len(paths) == 1, "loader and agent must mount the same volume, same socket path"
    loader_cmd = " ".join(containers["loader"].get("command", []) +
                          containers["loader"].get("args", []))
    assert 'bpfsession send "$BPFSESSION_IMPORT"' in loader_cmd
    agent = containers["agent"]
    assert "command" not in agent, "the agent keeps the image's entrypoint (bpfsession new)"
    assert "run" in agent["args"] and "imp" not in agent["args"]  # the socket comes from env


@pytest.mark.parametrize("name, loader_caps", [
    ("pod.yaml", {"NET_ADMIN", "BPF", "SYS_ADMIN"}),
    ("daemonset.yaml", {"NET_ADMIN", "BPF"}),
])
def test_capabilities_per_container(name, loader_caps):
    containers = _containers(_load(name))
    for c in containers.values():
        drop, _ = _caps(c)
        assert drop == ["ALL"]
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"].get("privileged") is not True
    assert set(_caps(containers["loader"])[1]) == loader_caps
    assert _caps(containers["agent"])[1] == []
    # SYS_ADMIN exactly where `send` opens objects by id (--dev/--map-id/--prog-id).
    loader_cmd = " ".join(containers["loader"]["args"])
    by_id = bool(re.search(r"--(dev|map-id|prog-id)\b", loader_cmd))
    assert by_id == ("SYS_ADMIN" in loader_caps)


@pytest.mark.parametrize("name, profiled", [
    ("pod.yaml", {"agent"}),                 # the loader has CAP_SYS_ADMIN: the default allows bpf
    ("daemonset.yaml", {"loader", "agent"}),
])
def test_containers_without_sys_admin_get_the_bpf_seccomp_profile(name, profiled):
    """The engines' default profiles allow bpf(2) only with CAP_SYS_ADMIN: every other
    container that uses it runs with images/seccomp-bpf.json, in the field and in the
    annotation form (podman kube play 4.x reads only that), the two agreeing."""
    doc = _load(name)
    meta = doc["spec"]["template"]["metadata"] if doc["kind"] == "DaemonSet" else doc["metadata"]
    annotations = meta.get("annotations", {})
    prefix = "container.seccomp.security.alpha.kubernetes.io/"
    assert {k.removeprefix(prefix): v for k, v in annotations.items()} == \
        dict.fromkeys(profiled, "localhost/seccomp-bpf.json")
    for cname, c in _containers(doc).items():
        profile = c["securityContext"].get("seccompProfile")
        if cname in profiled:
            assert profile == {"type": "Localhost", "localhostProfile": "seccomp-bpf.json"}
        else:
            assert profile is None and "SYS_ADMIN" in _caps(c)[1]


def test_daemonset_gets_the_nodes_bpffs():
    doc = _load("daemonset.yaml")
    spec = _pod_spec(doc)
    assert spec["hostNetwork"] is True
    volumes = {v["name"]: v for v in spec["volumes"]}
    (bpffs,) = [n for n, v in volumes.items() if v.get("hostPath", {}).get("path") == "/sys/fs/bpf"]
    for c in _containers(doc).values():
        (mount,) = [m for m in c["volumeMounts"] if m["name"] == bpffs]
        assert mount["mountPath"] == "/sys/fs/bpf"
        assert mount["mountPropagation"] == "HostToContainer"
    loader_cmd = " ".join(_containers(doc)["loader"]["args"])
    assert "--pinned" in loader_cmd and "/sys/fs/bpf/" in loader_cmd


def test_container_doc_names_every_variable_and_the_volume():
    doc = (ROOT / "docs" / "container.md").read_text()
    for var in ("BPFSESSION_IMPORT", "BPFSESSION_NETNS", "BPFSESSION_TIMEOUT", "BPFSESSION_NAME",
                "BPF_NUM_MAPS", "BPF_MAP<id>", "BPF_OBJ", "PID 1", "/run/bpf", "CAP_BPF",
                "CAP_SYS_ADMIN", "CAP_NET_ADMIN"):
        assert var in doc, var


# ------------------------------------------------------ capabilities, on the real kernel

_PROBE = r"""
import errno, json, os, sys
import prctl
from bpfsession.errors import KernelError
from bpfsession.kernel import bpf

fd, map_id, pin = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
keep = [getattr(prctl, "CAP_" + name.upper()) for name in sys.argv[4].split(",") if name]
with open("/proc/sys/kernel/cap_last_cap") as f:
    last = int(f.read())
for cap in range(last + 1):
    if cap not in keep:
        prctl.capbset_drop(cap)
drop = [cap for cap in prctl.ALL_CAPS if cap not in keep]
prctl.set_caps((drop, [prctl.CAP_EFFECTIVE, prctl.CAP_PERMITTED, prctl.CAP_INHERITABLE], False))

def attempt(call):
    try:
        got = call()
    except KernelError as err:
        return errno.errorcode[err.errno]
    if type(got) is int:
        os.close(got)
    return "ok"

key, value, next_key = b"\1\0\0\0", bytearray(8), bytearray(4)
out = {
    "update": attempt(lambda: bpf.map_update_elem(fd, key, b"\7" * 8)),
    "lookup": attempt(lambda: bpf.map_lookup_elem(fd, key, value) and None),
    "next_key": attempt(lambda: bpf.map_get_next_key(fd, None, next_key) and None),
    "info": attempt(lambda: bpf.map_info(fd) and None),
    "delete": attempt(lambda: bpf.map_delete_elem(fd, key) and None),
    "obj_get": attempt(lambda: bpf.obj_get(pin)),
    "create": attempt(lambda: bpf.map_create("array", 4, 8, 1, "capprobe")),
    "get_fd_by_id": attempt(lambda: bpf.map_get_fd_by_id(map_id)),
    "next_id": attempt(lambda: bpf.map_ids() and None),
    "value": value.hex(),
}
with open("/proc/self/status") as f:
    status = dict(line.split(":", 1) for line in f)
out["CapEff"], out["CapBnd"] = status["CapEff"].strip(), status["CapBnd"].strip()
print(json.dumps(out))
"""

_USES_HELD_FD = {"update": "ok", "lookup": "ok", "next_key": "ok", "info": "ok", "delete": "ok",
                 "obj_get": "ok", "value": "07" * 8}


@pytest.fixture
def pinned_map(make_map):
    fd = make_map("hash", 4, 8, 4, name=uniq("capm"))
    pin = f"/sys/fs/bpf/{uniq('bscap')}"
    bpf.obj_pin(fd, pin)
    yield fd, bpf.map_info(fd).id, pin
    os.unlink(pin)


@pytest.mark.parametrize("keep, by_caps", [
    ("", {"create": "EPERM", "get_fd_by_id": "EPERM", "next_id": "EPERM"}),
    ("bpf", {"create": "ok", "get_fd_by_id": "EPERM", "next_id": "EPERM"}),
    ("bpf,net_admin", {"create": "ok", "get_fd_by_id": "EPERM", "next_id": "EPERM"}),
    ("sys_admin", {"create": "ok", "get_fd_by_id": "ok", "next_id": "ok"}),
])
def test_what_each_capability_allows(pinned_map, keep, by_caps):
    """docs/container.md's table: a held fd needs nothing; by id needs CAP_SYS_ADMIN."""
    fd, map_id, pin = pinned_map
    res = run([sys.executable, "-c", _PROBE, str(fd), str(map_id), pin, keep], pass_fds=[fd],
              env={**os.environ, "PYTHONPATH": str(ROOT)})
    got = json.loads(res.stdout)
    if keep == "":
        assert got["CapEff"] == got["CapBnd"] == "0000000000000000"
    assert {k: got[k] for k in _USES_HELD_FD} == _USES_HELD_FD
    assert {k: got[k] for k in by_caps} == by_caps


_AGENT = r"""
import json, os
from bpfsession.kernel import bpf
fd = int(os.environ["BPF_MAP0"])
bpf.map_update_elem(fd, b"\2\0\0\0", b"\5" * 8)
value = bytearray(8)
with open("/proc/self/status") as f:
    cap_eff = [line.split()[1] for line in f if line.startswith("CapEff")][0]
print(json.dumps({"found": bpf.map_lookup_elem(fd, b"\2\0\0\0", value), "value": value.hex(),
                  "CapEff": cap_eff, "maps": os.environ["BPF_NUM_MAPS"]}))
"""


def test_new_and_its_agent_need_no_capability(make_map, short_tmp):
    """The container agent's claim end to end: `bpfsession new` started with every capability
    gone (setpriv), configured by BPFSESSION_IMPORT, receives a map and runs an agent that
    updates it; the update is seen from outside."""
    fd = make_map("hash", 4, 8, 4, name=uniq("agent"))
    uds = str(short_tmp / "bpf-uds")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BPFSESSION_IMPORT": uds,
           "BPFSESSION_TIMEOUT": "20"}
    proc = subprocess.Popen(
        ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--",
         sys.executable, "-m", "bpfsession", "new", "--name", uniq("capless"),
         "run", sys.executable, "-c", _AGENT],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_socket(uds)
        info = bpf.map_info(fd)
        wire.send_maps(uds, "capless", [(wire.MapEntry(info.type, info.key_size,
                                                       info.value_size, info.max_entries), fd)])
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (proc.returncode, err) == (0, "")
    assert json.loads(out) == {"found": True, "value": "05" * 8, "CapEff": "0000000000000000",
                               "maps": "1"}
    value = bytearray(8)
    assert bpf.map_lookup_elem(fd, b"\2\0\0\0", value) and value == b"\5" * 8
    assert not os.path.exists(uds)


# ------------------------------------------- seccomp: the probe under a real filter

_FILTERED = r"""
import ctypes, os, struct, sys
from bpfsession.kernel import seccomp

# A classic-BPF seccomp program: SECCOMP_RET_ERRNO | errno for one syscall number, else
# allow. struct seccomp_data starts with `int nr` (linux/seccomp.h).
nr, errno_ret = int(sys.argv[1]), int(sys.argv[2])
insns = [(0x20, 0, 0, 0),                       # ld  [0]          (nr)
         (0x15, 0, 1, nr),                      # jeq #nr, 0, 1
         (0x06, 0, 0, 0x00050000 | errno_ret),  # ret ERRNO(errno_ret)
         (0x06, 0, 0, 0x7FFF0000)]              # ret ALLOW
prog = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in insns))
fprog = struct.pack("HxxxxxxQ", len(insns), ctypes.addressof(prog))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.c_char_p(fprog), 0, 0) == 0, ctypes.get_errno()
if sys.argv[3:]:
    os.execv(sys.argv[3], sys.argv[3:])
print(seccomp.filtered(), seccomp.blocks_bpf())
"""


def _filtered(nr: int, errno_ret: int, *argv: str) -> subprocess.CompletedProcess:
    """Run the probe, or ARGV, under a seccomp filter that fails syscall NR with ERRNO_RET."""
    return run([sys.executable, "-c", _FILTERED, str(nr), str(errno_ret), *argv], check=False,
               env={**os.environ, "PYTHONPATH": str(ROOT)})


_NR_BPF = {"x86_64": 321, "aarch64": 280}[os.uname().machine]  # asm/unistd.h
_NR_GETPRIORITY = {"x86_64": 140, "aarch64": 141}[os.uname().machine]


@pytest.mark.parametrize("nr, errno_ret, blocked", [
    (_NR_BPF, 1, True),            # EPERM: docker's and podman's default profiles
    (_NR_BPF, 38, True),           # ENOSYS: a profile's default action for unknown syscalls
    (_NR_GETPRIORITY, 1, False),   # a filter, but bpf(2) gets through: EBADF
])
def test_seccomp_probe_under_a_real_filter(nr, errno_ret, blocked):
    res = _filtered(nr, errno_ret)
    assert (res.returncode, res.stdout, res.stderr) == (0, f"True {blocked}\n", "")


def test_seccomp_probe_without_a_filter():
    """The test runner has no filter: no probe is needed, and bpf(2) answers EBADF."""
    from bpfsession.kernel import seccomp

    assert (seccomp.filtered(), seccomp.blocks_bpf(), bpf.refused()) == (False, False, False)


def test_new_under_a_filter_that_blocks_bpf_says_so_and_starts_nothing(short_tmp):
    uds = short_tmp / "bpf-uds"
    res = _filtered(_NR_BPF, 1, sys.executable, "-m", "bpfsession", "new", "imp", str(uds),
                    "run", "sh", "-c", "echo started")
    assert res.returncode == 1 and res.stdout == ""
    (line,) = res.stderr.splitlines()
    assert line.startswith("bpfsession: bpf(2) is blocked by") and "seccomp" in line
    assert "images/seccomp-bpf.json" in line
    assert list(short_tmp.iterdir()) == []
