"""The docs' shell examples run as written, so that none can rot.

Collected from README.md and docs/*.md (fenced blocks marked ```sh) and from the commands
of docs/k8s/*.yaml. Each example is checked in two ways:
- every `bpfsession ...` command in it parses with the real grammar (no usage error);
- a runnable example runs, as root, in a sandbox of its own: new pid, mount and network
  namespaces (its processes, netns names, pins, veths and sessions end with it), /run and
  /sys/fs/bpf fresh, the checkout's bpfsession first on PATH, a time limit.
How a block is marked (the line right before its fence; see docs/README.md):
- nothing: run the block with `sh -e`;
- `<!-- example: session -->`: run it as the command of a `bpfsession new --name demo`
  session holding the maps of bpf/counter.bpf.c (proto_stats, total_pkts; with BTF);
- `<!-- example: skip: REASON -->`: not runnable here (REASON says why); grammar only.
The commands of the Kubernetes manifests need their Pod: tests/test_container_docs.py
runs them under `podman kube play`; here they get the grammar check.

The suite itself is never run from here: a block that calls scripts/test.sh is refused.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bpfsession.cli import parse_args
from tests.helpers import ROOT

TIME_LIMIT = 60  # seconds per example
_FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
_MARK = re.compile(r"^<!--\s*example:\s*(session|skip)\s*(?::\s*(.*?))?\s*-->\s*$")


@dataclass(frozen=True)
class Example:
    where: str  # file:line
    text: str
    how: str  # "run", "session", "skip", "k8s"
    reason: str = ""


def markdown_examples(path: Path) -> list[Example]:
    """The ```sh blocks of one Markdown file, with the mark on the line before each."""
    out: list[Example] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(1), m.group(2), i
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        if lang != "sh":
            continue
        mark = _MARK.match(lines[start - 1]) if start else None
        how, reason = (mark.group(1), mark.group(2) or "") if mark else ("run", "")
        where = f"{path.relative_to(ROOT)}:{start + 1}"
        out.append(Example(where, "\n".join(body) + "\n", how, reason))
    return out


def _containers(doc) -> list[dict]:
    found: list[dict] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                found += [c for c in value if isinstance(c, dict)]
            else:
                found += _containers(value)
    elif isinstance(doc, list):
        for item in doc:
            found += _containers(item)
    return found


def k8s_examples(path: Path) -> list[Example]:
    """Each container's command line: a `sh -c` script as is; args alone run the image's
    entrypoint, `bpfsession new`."""
    out = []
    for doc in yaml.safe_load_all(path.read_text()):
        for c in _containers(doc):
            argv = [str(w) for w in (c.get("command") or []) + (c.get("args") or [])]
            if not argv:
                continue
            if c.get("command") and argv[0].endswith("sh") and argv[1:2] == ["-c"]:
                text = argv[2] if len(argv) > 2 else ""
            elif c.get("command"):
                text = shlex.join(argv)
            else:
                text = shlex.join(["bpfsession", "new", *argv])
            out.append(Example(f"{path.relative_to(ROOT)}:{c.get('name', '?')}", text + "\n",
                               "k8s", "needs its Pod (tests/test_container_docs.py)"))
    return out


def all_examples() -> list[Example]:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = [e for p in docs for e in markdown_examples(p)]
    return found + [e for p in sorted((ROOT / "docs" / "k8s").glob("*.yaml"))
                    for e in k8s_examples(p)]


EXAMPLES = all_examples()


# ---- the grammar of every bpfsession command in them ---------------------------------------

_OPERATORS = {"|", "||", "&", "&&", ";", ";;", "(", ")", "\n", "$(", "`"}


def bpfsession_commands(script: str) -> list[list[str]]:
    """The argument lists of the `bpfsession ...` simple commands of a shell script (its
    words as the shell would split them, variables left as written). Lines are read one
    at a time (continuations joined): the lines of a script quoted over several lines are
    read as commands of their own, and the line that opens the quote is left out."""
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line.replace("$(", " $( "), posix=True,
                            punctuation_chars=";&|()`")
        lexer.commenters = "#"
        try:
            words = list(lexer)
        except ValueError:
            continue
        current: list[str] = []
        for w in words + [";"]:
            if w in _OPERATORS or set(w) <= set(";&|()`"):
                out += _bpfsession_argv(current)
                current = []
            else:
                current.append(w)
    return out


def _bpfsession_argv(words: list[str]) -> list[list[str]]:
    while words and (words[0] in ("sudo", "exec", "then", "do", "!", "$(") or
                     "=" in words[0] and not words[0].startswith("-")):
        words = words[1:]
    return [words[1:]] if words and words[0] == "bpfsession" else []


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.where)
def test_every_bpfsession_command_parses(example, capsys):
    for argv in bpfsession_commands(example.text):
        try:
            parse_args(argv, fast=False)
        except SystemExit as err:
            if err.code != 0:  # --help and --version exit 0
                pytest.fail(f"{example.where}: `bpfsession {shlex.join(argv)}`: "
                            f"{capsys.readouterr().err.strip()}")


def test_the_examples_are_found():
    where = {e.where.split(":")[0] for e in EXAMPLES}
    assert "README.md" in where
    assert any(w.startswith("docs/k8s/") for w in where)
    for e in EXAMPLES:
        if e.how == "skip":
            assert e.reason, f"{e.where}: say why it cannot run"


def test_bpfsession_commands_are_found_in_shell_text():
    script = ("n=$(bpfsession map lookup name t key 0 -j | jq .x)\n"
              "sudo bpfsession list -j && X=1 bpfsession show \\\n  s1  # bpfsession no\n"
              "echo bpfsession; exec bpfsession attach s run sh -c 'bpfsession x'\n")
    assert bpfsession_commands(script) == [
        ["map", "lookup", "name", "t", "key", "0", "-j"], ["list", "-j"], ["show", "s1"],
        ["attach", "s", "run", "sh", "-c", "bpfsession x"]]


def test_markers_are_read():
    path = ROOT / "docs" / "README.md"
    examples = markdown_examples(path)
    assert any(e.how == "run" for e in examples), "docs/README.md shows how marks look"


# ---- running them --------------------------------------------------------------------------

# Inside the sandbox: a private /run (netns names, sockets, the registry), /tmp and bpffs,
# the loopback up, the checkout's venv first on PATH (bound back in when the checkout is
# itself under /tmp, as a CI clone may be); then the script $1, given $2 as its $1.
_SANDBOX = """
set -e
cd "$WORK"
mount -t tmpfs tmpfs /run
case "$CHECKOUT" in /tmp/*)  # a checkout under /tmp stays visible under the fresh /tmp
    mkdir /run/checkout && mount --bind "$CHECKOUT" /run/checkout ;;
esac
mount -t tmpfs tmpfs /tmp
if [ -d /run/checkout ]; then
    mkdir -p "$CHECKOUT" && mount --bind /run/checkout "$CHECKOUT" && umount /run/checkout
    rmdir /run/checkout
fi
mount -t bpf bpf /sys/fs/bpf
ip link set lo up
exec sh -e -c "$1" example "$2"
"""

# A session for `<!-- example: session -->` blocks: the counter program's maps, loaded
# with bpftool (BTF and all) and sent by `bpfsession send --pinned` to a `bpfsession new`
# whose command is the example.
_SESSION = """
bpftool prog load "$COUNTER_OBJ" /sys/fs/bpf/counter type classifier pinmaps /sys/fs/bpf/maps
bpfsession new --name demo --timeout 20 imp /run/example.sock run sh -e -c "$1" &
i=0; while [ ! -S /run/example.sock ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
bpfsession send /run/example.sock --obj counter --pinned /sys/fs/bpf/maps/proto_stats \\
    --pinned /sys/fs/bpf/maps/total_pkts
wait $!
"""


def run_example(example: Example, work: Path, counter_obj: Path) -> subprocess.CompletedProcess:
    assert "scripts/test.sh" not in example.text, "the suite is never run from inside itself"
    script = example.text if example.how == "run" else _SESSION
    env = {"PATH": f"{ROOT}/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                   "/sbin:/bin", "HOME": str(work), "WORK": str(work), "LANG": "C.UTF-8",
           "COUNTER_OBJ": "./counter.o", "PYTHONPATH": str(ROOT), "CHECKOUT": str(ROOT)}
    # The sandbox's /tmp is empty: the object goes to its working directory (kept open).
    shutil.copy(counter_obj, work / "counter.o")
    argv = ["unshare", "--pid", "--kill-child", "--mount-proc", "--net",
            "--propagation", "private", "sh", "-c", _SANDBOX, "sandbox", script,
            example.text]
    return subprocess.run(argv, env=env, cwd=work, capture_output=True, text=True,
                          timeout=TIME_LIMIT)


RUNNABLE = [e for e in EXAMPLES if e.how in ("run", "session")]


@pytest.mark.parametrize("example", RUNNABLE, ids=lambda e: e.where)
def test_runnable_example_runs(example, tmp_path, counter_obj):
    if os.geteuid() != 0:
        pytest.skip("the examples are written for root")
    try:
        res = run_example(example, tmp_path, counter_obj)
    except subprocess.TimeoutExpired:
        # The sandbox's processes went with it (unshare --kill-child ends its pid namespace).
        pytest.fail(f"{example.where} did not finish within {TIME_LIMIT} s: an example that "
                    "runs until interrupted is marked <!-- example: skip: REASON -->")
    assert res.returncode == 0, (f"{example.where} failed ({res.returncode}):\n"
                                 f"{example.text}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}")
