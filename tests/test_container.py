"""images/Dockerfile built and run by a real container engine (podman), as docs/container.md
and docs/kubernetes.md say.

No registry is reachable here, so the base is made from Debian packages by
scripts/build-base-image.sh (the documented air-gapped route) and the image is built from
this checkout's source. This machine's podman settings (runc, lower rlimits, the host's CA
bundle during builds) live in the containers.conf that CONTAINERS_CONF points at, so every
podman command below is the docs' command, unchanged.

Kept between runs as a build cache: the base image and the images tagged `test-cache`
(a second run only rebuilds the layers after the source COPY). Everything else the tests
make (containers, pods, tags, pins, bpffs mounts) is removed.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import compile_bpf
from tests.helpers import ROOT, bpfsession, run, send_udp, uniq, wait_for, wait_for_socket

# Building the images on a fresh machine takes a few minutes; the default is two.
pytestmark = pytest.mark.timeout(420)

PROFILE = ROOT / "images" / "seccomp-bpf.json"
BASE = "localhost/bpfsession-base:bookworm"
CACHE = "localhost/bpfsession:test-cache"
LOADER_CACHE = "localhost/counter-loader:test-cache"
K8S = ROOT / "docs" / "k8s"

# This machine's podman settings (not the docs'): crun refuses the hybrid cgroup layout, the
# default rlimits cannot be raised here, and TLS to the package index goes through a proxy
# that only the host's CA bundle trusts (mounted into every build step and container).
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
volumes = ["/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro"]

[engine]
runtime = "runc"
"""


@pytest.fixture(scope="session")
def engine():
    """The environment podman runs with; skips only where podman cannot run at all."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (scripts/setup.sh installs it)")
    d = Path(tempfile.mkdtemp(prefix="bsctr", dir="/tmp"))
    conf = d / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    res = subprocess.run(["podman", "info"], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        shutil.rmtree(d)
        pytest.skip(f"podman cannot run here: {res.stderr.strip().splitlines()[-1:]}")
    yield env
    shutil.rmtree(d, ignore_errors=True)


def podman(env, *args: str, check: bool = True, timeout: float = 60):
    return run(["podman", *args], check=check, env=env, timeout=timeout)


def _build(env, *args: str) -> str:
    """`podman build ARGS` -> the image id (the tag may move: another run may build too)."""
    with tempfile.NamedTemporaryFile(prefix="bsiid", dir="/tmp") as iid:
        run(["podman", "build", "--iidfile", iid.name, *args], env=env, cwd=ROOT, timeout=400)
        return Path(iid.name).read_text().strip().removeprefix("sha256:")


def docs_commands(heading: str) -> list[list[str]]:
    """The first `sh` block under the heading in docs/container.md, one argv per command."""
    text = (ROOT / "docs" / "container.md").read_text()
    section = re.split(rf"\n#+ {re.escape(heading)}\n", text)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL).group(1)
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines()
            if line.strip()]


@pytest.fixture(scope="session")
def images(engine, bpf_build_dir):
    """(agent image, loader image): unique tags for this run over the cached builds."""
    # One build at a time on this machine: concurrent runs share the cache tags.
    with open("/run/lock/bpfsession-container-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # docs/container.md's air-gapped build, with the test's cache tag for the image's.
        make_base, build = docs_commands("Without a registry: a base from Debian packages")
        assert make_base == ["scripts/build-base-image.sh", BASE]
        if podman(engine, "image", "exists", BASE, check=False).returncode != 0:
            run(["bash", *make_base], env=engine, cwd=ROOT, timeout=400)
        assert build[:2] == ["podman", "build"]
        agent_id = _build(engine, *[CACHE if a == "bpfsession:0.1.0" else a for a in build[2:]])
        loader_id = _build(engine, *_loader_context(bpf_build_dir, agent_id))
    tags = (f"localhost/{uniq('bsagent')}:test", f"localhost/{uniq('bsloader')}:test")
    for image_id, tag in zip((agent_id, loader_id), tags, strict=True):
        podman(engine, "tag", image_id, tag)
    yield tags
    for tag in tags:
        podman(engine, "untag", tag, tag, check=False)  # only this name: others stay


def _loader_context(build_dir: Path, agent_image: str) -> list[str]:
    """The loader image of docs/kubernetes.md: the bpfsession image, iproute2, the object."""
    context = build_dir / "loader"
    context.mkdir(exist_ok=True)
    doc = (ROOT / "docs" / "kubernetes.md").read_text()
    dockerfile = re.search(r"```dockerfile\n(.*?)```", doc, re.DOTALL).group(1)
    (context / "Dockerfile").write_text(dockerfile)
    for source in ("counter.bpf.c", "counter-pinned.bpf.c"):
        compile_bpf(ROOT / "bpf" / source, context)
    return ["--build-arg", f"BPFSESSION_IMAGE={agent_image}", "-t", LOADER_CACHE,
            str(context)]


@pytest.fixture
def containers(engine):
    """Names for containers; each is removed (killed if need be) at teardown."""
    names: list[str] = []

    def name() -> str:
        names.append(uniq("bsctr"))
        return names[-1]

    yield name
    for n in names:
        podman(engine, "rm", "--force", "--time", "0", n, check=False)


@pytest.fixture
def shared_dir():
    """The socket directory the host shares with the container as /run/bpf."""
    d = Path(tempfile.mkdtemp(prefix="bsrun", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def counter_map(make_map):
    """A hash map with key 1 -> 7, and its kernel id."""
    from bpfsession.kernel import bpf

    fd = make_map("hash", 4, 8, 4, name=uniq("ctrm"))
    bpf.map_update_elem(fd, b"\1\0\0\0", b"\7" + b"\0" * 7)
    return bpf.map_info(fd)


def start(engine, containers, image, shared_dir, *args) -> str:
    """`podman run -d` with the shipped seccomp profile and the shared socket directory."""
    name = containers()
    podman(engine, "run", "-d", "--name", name, "--security-opt", f"seccomp={PROFILE}",
           "-v", f"{shared_dir}:/run/bpf", image, *args)
    return name


def send(shared_dir: Path, info) -> None:
    """From the host, as docs/container.md: `bpfsession send DIR/bpf-uds --map-id ID`."""
    uds = shared_dir / "bpf-uds"
    wait_for_socket(uds, timeout=60)
    res = bpfsession("send", str(uds), "--map-id", str(info.id))
    assert (res.returncode, res.stderr) == (0, "")


def logs(engine, name: str) -> str:
    res = podman(engine, "logs", name)
    return res.stdout + res.stderr


def wait_logs(engine, name: str, text: str, timeout: float = 60) -> str:
    return wait_for(lambda: text in (out := logs(engine, name)) and out, timeout,
                    interval=0.2, what=f"{text!r} in the logs of {name}")


def exit_code(engine, name: str) -> int:
    return int(podman(engine, "wait", name, timeout=120).stdout.strip())


def pid1(engine, name: str) -> int:
    """The host pid of the container's PID 1."""
    return int(podman(engine, "inspect", "--format", "{{.State.Pid}}", name).stdout)


def test_maps_from_the_host_reach_pid1s_command(engine, images, containers, shared_dir,
                                                counter_map):
    agent, _ = images
    by_name = "BPF_MAP_" + counter_map.name.upper()
    name = start(engine, containers, agent, shared_dir, "--name", "ctr", "run", "sh", "-c",
                 "cat /proc/1/cmdline | tr '\\0' ' '; echo; "
                 "bpfsession map lookup BPF_MAP0 key 1 0 0 0 -j; "
                 f"bpfsession map lookup {by_name} key 1 0 0 0 -j")
    send(shared_dir, counter_map)
    assert exit_code(engine, name) == 0
    first, *lookups = podman(engine, "logs", name).stdout.splitlines()
    # PID 1 is `bpfsession new` (it may have renamed itself `bpfsession: ctr` by then).
    assert re.match(r"(/usr/bin/python3 /usr/local/bin/bpfsession new|bpfsession: ctr) ", first)
    assert [json.loads(line)["value"] for line in lookups] == [["0x07"] + ["0x00"] * 7] * 2
    assert not (shared_dir / "bpf-uds").exists()


_TRAPS = ('trap "echo got-usr1" USR1; trap "echo got-term; exit 42" TERM; echo ready; '
          'while :; do sleep 0.1; done')


def test_stop_forwards_sigterm_and_the_status_is_the_commands(engine, images, containers,
                                                              shared_dir, counter_map):
    agent, _ = images
    name = start(engine, containers, agent, shared_dir, "run", "sh", "-c", _TRAPS)
    send(shared_dir, counter_map)
    wait_logs(engine, name, "ready")
    podman(engine, "kill", "--signal", "USR1", name)
    wait_logs(engine, name, "got-usr1")
    podman(engine, "stop", "--time", "30", name)
    assert exit_code(engine, name) == 42
    assert "got-term" in logs(engine, name)


def _children(pid: int) -> dict[int, tuple[str, str]]:
    """pid -> (comm, state) of a process's children, from /proc."""
    out = {}
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        kids = [int(p) for p in f.read().split()]
    for kid in kids:
        try:
            with open(f"/proc/{kid}/stat") as f:
                stat = f.read()
        except FileNotFoundError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        out[kid] = (comm, stat[stat.rindex(")") + 2])
    return out


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode().split("\0")[:-1]
    except FileNotFoundError:
        return []


def test_orphans_are_reaped(engine, images, containers, shared_dir, counter_map):
    agent, _ = images
    name = start(engine, containers, agent, shared_dir, "run", "sh", "-c",
                 "for i in 1 2 3; do (sleep 1000 &); done; exec sleep infinity")
    send(shared_dir, counter_map)
    init = pid1(engine, name)
    # The three sleeps lost their parent (the subshell): the kernel hands them to PID 1 ...

    def reparented() -> list[int] | None:
        found = [p for p in _children(init) if _cmdline(p) == ["sleep", "1000"]]
        return found if len(found) == 3 else None

    orphans = wait_for(reparented, 30, what="three orphans re-parented to PID 1")
    for pid in orphans:
        os.kill(pid, signal.SIGKILL)
    # ... which must wait() for them when they die: not even a zombie stays.
    wait_for(lambda: len(_children(init)) == 1, 30, interval=0.05, what="the orphans reaped")
    ((agent_pid, (_, state)),) = _children(init).items()
    assert (_cmdline(agent_pid), state) == (["sleep", "infinity"], "S")


def test_the_docs_run_commands(engine, images, containers, shared_dir, counter_map):
    """docs/container.md's "Run it", command by command: the default command holds the
    session until `podman stop`, and `podman exec ... bpfsession attach` joins it. Only the
    names are this run's: the container, the shared directory, the image, the map id."""
    agent, _ = images
    name = containers()
    names = {"bpf-agent": name, "bpfsession:0.1.0": agent, "$MAP_ID": str(counter_map.id)}
    out = {}
    for argv in docs_commands("Run it"):
        argv = [names.get(a, a.replace("/run/bpf-agent", str(shared_dir))) for a in argv]
        if argv[0] == "bpfsession":  # the host's: this checkout's
            wait_for_socket(shared_dir / "bpf-uds", timeout=60)
            argv = [sys.executable, "-m", "bpfsession", *argv[1:]]
        res = run(argv, env=engine, cwd=ROOT, timeout=120)
        out[" ".join(argv[:5])] = res.stdout
    assert "value: 07 00 00 00 00 00 00 00" in out[f"podman exec {name} bpfsession attach"]
    assert "counter" in out[f"podman exec {name} bpfsession list"]
    assert exit_code(engine, name) == 128 + 15  # the holder, ended by the forwarded SIGTERM


def test_default_seccomp_profile_fails_in_one_line_before_the_command(engine, images,
                                                                      shared_dir):
    agent, _ = images
    for extra in ([], ["--cap-add", "BPF"]):
        res = podman(engine, "run", "--rm", *extra, "-v", f"{shared_dir}:/run/bpf", agent,
                     "run", "sh", "-c", "echo started", check=False)
        assert res.returncode == 1
        assert "started" not in res.stdout
        (line,) = res.stderr.splitlines()
        assert line.startswith("bpfsession: ") and "seccomp" in line
        assert "images/seccomp-bpf.json" in line
        assert f"\n{line}\n" in (ROOT / "docs" / "container.md").read_text()  # as quoted
        assert list(shared_dir.iterdir()) == []  # nothing bound: no loader sends in vain


def test_shipped_profile_is_the_engines_default_plus_bpf(engine):
    """images/seccomp-bpf.json against the default profile the installed podman uses."""
    shipped = json.loads(PROFILE.read_text())
    default = json.loads(Path("/usr/share/containers/seccomp.json").read_text())
    added = [r for r in shipped["syscalls"] if r["names"] == ["bpf"]]
    assert [(r["action"], r["includes"], r["excludes"], r["args"]) for r in added] == [
        ("SCMP_ACT_ALLOW", {}, {}, [])]
    without = [dict(r, names=[n for n in r["names"] if n != "bpf"]) for r in default["syscalls"]]
    assert [r for r in shipped["syscalls"] if r not in added] == without
    assert {k: v for k, v in shipped.items() if k != "syscalls"} == \
        {k: v for k, v in default.items() if k != "syscalls"}


# --------------------------------------------- the Kubernetes manifests, under kube play

REGISTRY_AGENT = "registry.example.com/bpfsession:0.1.0"
REGISTRY_LOADER = "registry.example.com/counter-loader:1.0"


def _manifest(name: str, images, **pod_spec) -> dict:
    """docs/k8s/NAME with this run's images and a unique name; commands left as they are."""
    (doc,) = yaml.safe_load_all((K8S / name).read_text())
    if doc["kind"] == "DaemonSet":  # kube play runs Pods and Deployments: one node, one Pod
        template = doc["spec"]["template"]
        doc = {"apiVersion": "v1", "kind": "Pod", "metadata": template["metadata"],
               "spec": template["spec"]}
    doc["metadata"]["name"] = uniq("bspod")
    agent, loader = images
    for c in doc["spec"]["containers"]:
        c["image"] = {REGISTRY_AGENT: agent, REGISTRY_LOADER: loader}[c["image"]]
    doc["spec"].update(pod_spec)
    return doc


@pytest.fixture
def kube_play(engine, short_tmp):
    """`podman kube play --seccomp-profile-root images/ FILE` (the profile as a node has it);
    the pod and its containers are removed at teardown."""
    played: list[Path] = []

    def play(doc: dict) -> str:
        path = short_tmp / f"{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        played.append(path)
        podman(engine, "kube", "play", "--seccomp-profile-root", str(PROFILE.parent), str(path),
               timeout=120)
        return doc["metadata"]["name"]

    yield play
    for path in played:
        podman(engine, "kube", "down", str(path), check=False, timeout=120)


def _packets(engine, container: str, session: str, map_env: str) -> dict[int, int]:
    """u32 key -> the first u64 of the value (counter.bpf.c: packets), read in the session
    through `podman exec CONTAINER bpfsession attach SESSION run bpfsession map dump`.

    The raw bytes, not `formatted`: the agent has no capability to open the maps' BTF by id.
    """
    res = podman(engine, "exec", container, "bpfsession", "attach", session,
                 "run", "bpfsession", "map", "dump", map_env, "-j")

    def number(cells: list[str]) -> int:
        return int.from_bytes(bytes(int(c, 16) for c in cells), "little")

    return {number(e["key"]): number(e["value"][:8]) for e in json.loads(res.stdout)}


def test_pod_manifest_runs_under_kube_play(engine, images, kube_play):
    """docs/k8s/pod.yaml: the loader attaches to the Pod's eth0 and sends with --dev; the
    agent (no capability, the Localhost profile) dumps BPF_MAP_PROTO_STATS."""
    pod = kube_play(_manifest("pod.yaml", images))
    wait_logs(engine, f"{pod}-agent", "Found ", timeout=90)  # the agent's first dump
    addrs = json.loads(podman(engine, "exec", f"{pod}-loader", "ip", "-j", "-4", "addr",
                              "show", "dev", "eth0").stdout)
    pod_ip = addrs[0]["addr_info"][0]["local"]
    send_udp(pod_ip, count=5)
    wait_for(lambda: _packets(engine, f"{pod}-agent", "counter", "BPF_MAP_PROTO_STATS")
             .get(0x0800, 0) >= 5, 30, interval=0.5,
             what="the UDP packets counted in the agent's session")
    assert "unknown map" not in logs(engine, f"{pod}-agent")


@pytest.fixture
def private_bpffs():
    """A bpffs instance of its own (every mount of bpf is a new one): the pins tc makes for
    the DaemonSet's loader never meet another run's, and go with the unmount."""
    d = Path(tempfile.mkdtemp(prefix="bsbpffs", dir="/tmp"))
    run(["mount", "-t", "bpf", "bpf", str(d)])
    yield d
    run(["umount", "--lazy", str(d)], check=False)
    d.rmdir()


def test_daemonset_manifest_runs_under_kube_play(engine, images, kube_play, veth,
                                                 private_bpffs):
    """docs/k8s/daemonset.yaml's Pod template (kube play runs no DaemonSets) on the host's
    network: the loader attaches to NODE_IFACE (a test veth here, not the host's uplink),
    tc pins the maps in /sys/fs/bpf (a private bpffs here), the loader sends them --pinned
    without CAP_SYS_ADMIN, and the agent dumps BPF_MAP_TOTAL_PKTS."""
    doc = _manifest("daemonset.yaml", images)
    for volume in doc["spec"]["volumes"]:
        if volume.get("hostPath", {}).get("path") == "/sys/fs/bpf":
            volume["hostPath"]["path"] = str(private_bpffs)
    loader = next(c for c in doc["spec"]["containers"] if c["name"] == "loader")
    (iface,) = [e for e in loader["env"] if e["name"] == "NODE_IFACE"]
    iface["value"] = veth.host_if
    pod = kube_play(doc)
    wait_logs(engine, f"{pod}-agent", "Found ", timeout=90)
    assert sorted(os.listdir(private_bpffs / "tc" / "globals")) == ["proto_stats", "total_pkts"]
    # Packets from the veth's far end arrive on NODE_IFACE's ingress.
    run(["ip", "netns", "exec", veth.netns, sys.executable, "-c",
         "from tests.helpers import send_udp; import sys; send_udp(sys.argv[1], 5)",
         veth.host_ip], cwd=ROOT)
    wait_for(lambda: _packets(engine, f"{pod}-agent", "node-counter", "BPF_MAP_TOTAL_PKTS")
             .get(0, 0) >= 5, 30, interval=0.5, what="the packets counted on NODE_IFACE")
    assert "unknown map" not in logs(engine, f"{pod}-agent")
