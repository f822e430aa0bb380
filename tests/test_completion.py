"""Bash completion: run the real completion function in bash, as readline would call it."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bpfsession import manpage, wire
from bpfsession.cli import build_parser
from bpfsession.kernel import bpf
from tests.helpers import BPFSESSION, ROOT, run, uniq, wait_for, wait_for_socket

COMPLETION = ROOT / "share" / "bash-completion" / "completions" / "bpfsession"
# COMP_WORDS[0]: a bpfsession that runs this checkout, as the installed entry point would.
LAUNCHER_TEXT = f"#!{sys.executable}\nfrom bpfsession.cli import main\nraise SystemExit(main())\n"

_DRIVER = """
source "$1"; shift
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
_bpfsession
printf '%s\\n' "${COMPREPLY[@]}"
"""


@pytest.fixture(scope="module")
def launcher(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bin") / "bpfsession"
    path.write_text(LAUNCHER_TEXT)
    path.chmod(0o755)
    return path


@pytest.fixture
def complete(launcher):
    """complete("new", "--netns", "") -> the COMPREPLY for `bpfsession new --netns <TAB>`."""

    def complete_(*words: str, env: dict[str, str] | None = None, argv0: str | None = None
                  ) -> list[str]:
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        res = subprocess.run(["bash", "--norc", "--noprofile", "-c", _DRIVER, "driver",
                              str(COMPLETION), argv0 or str(launcher), *words],
                             capture_output=True, text=True, timeout=60, env=full_env)
        assert (res.returncode, res.stderr) == (0, ""), res.stderr
        return [line for line in res.stdout.splitlines() if line]

    return complete_


def test_registers_the_function():
    res = run(["bash", "--norc", "-c", f'source "{COMPLETION}"; complete -p bpfsession'])
    assert res.stdout.strip() == "complete -F _bpfsession bpfsession"


def test_commands(complete):
    parser_commands = [name for name, _, _ in manpage.subcommands(build_parser())]
    assert complete("") == parser_commands
    assert complete("s") == ["send", "show"]
    assert complete("-") == ["-h", "--help", "--version"]


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def test_options_of_every_command_match_the_parser(complete):
    """The completion's option tables cannot drift from build_parser()."""
    for words, parser, _ in manpage.walk(build_parser()):
        assert set(complete(*words, "-")) == _option_strings(parser), words


def test_options_taking_an_argument_match_the_parser():
    checks = []
    for _, parser, _ in manpage.walk(build_parser()):
        for action in parser._actions:
            for option in action.option_strings:
                takes = action.nargs not in (0, "?") and not isinstance(
                    action, argparse._HelpAction | argparse._VersionAction)
                checks.append((option, takes))
    script = f'source "{COMPLETION}"\n' + "".join(
        f'_bpfsession_takes_arg {o} && echo "{o} 1" || echo "{o} 0"\n' for o, _ in checks)
    out = run(["bash", "--norc", "-c", script]).stdout.split("\n")
    assert [line for line in out if line] == [f"{o} {int(t)}" for o, t in checks]


def test_options_of_new(complete):
    assert complete("new", "--n") == ["--name", "--netns", "--no-new-privs"]
    assert complete("new", "") == ["imp", "import"]
    assert complete("new", "", env={"BPFSESSION_IMPORT": "/run/bpf/bpf-uds"}) == \
        ["imp", "import", "run"]
    assert complete("new", "--timeout", "") == []
    assert complete("new", "--keep-caps", "net_admin,b") == ["net_admin,block_suspend",
                                                             "net_admin,bpf"]


def test_new_walks_imp_uds_run_cmd(complete, short_tmp):
    sock = short_tmp / "bpf-uds"
    sock.touch()
    assert complete("new", "--name", "x", "imp", str(short_tmp) + "/bpf-") == [str(sock)]
    assert complete("new", "imp", str(sock), "") == ["run"]
    assert "bash" in complete("new", "imp", str(sock), "run", "bas")
    # After `run`, options belong to the command: ours are not offered.
    assert "--netns" not in complete("new", "imp", str(sock), "run", "ls", "--n")


def test_netns_names(complete):
    name = uniq("bscomp")
    run(["ip", "netns", "add", name])
    try:
        assert complete("new", "--netns", name[:-1]) == [name]
        assert name in complete("send", "/x", "--netns", "")
    finally:
        run(["ip", "netns", "del", name], check=False)
    assert complete("new", "--netns", name) == []


def test_interfaces_of_the_given_netns(complete, veth):
    assert complete("send", "/x", "--netns", veth.netns, "--dev", "") == ["lo", veth.ns_if]
    assert veth.host_if in complete("send", "/x", "--dev", veth.host_if[:-1])


def test_map_specs_and_verbs(complete):
    env = {"BPF_NUM_MAPS": "2", "BPF_MAP0": "3", "BPF_MAP_TOTAL_PKTS": "3", "BPF_OBJ": "x"}
    assert complete("map", "") == ["show", "dump", "lookup", "update", "delete", "pin", "load"]
    assert complete("map", "dump", "", env=env) == ["id", "name", "pinned", "session",
                                                   "BPF_MAP0", "BPF_MAP_TOTAL_PKTS"]
    assert complete("map", "lookup", "BPF_MAP0", "") == ["key"]
    assert complete("map", "update", "id", "7", "key", "0", "") == ["value", "hex"]
    assert complete("map", "update", "BPF_MAP0", "key", "0", "value", "1", "") == \
        ["any", "noexist", "exist", "hex"]


def test_pinned_paths(complete, short_tmp):
    (short_tmp / "counter").touch()
    assert complete("map", "show", "pinned", str(short_tmp) + "/c") == [str(short_tmp / "counter")]
    assert complete("send", "/x", "--pinned", str(short_tmp) + "/") == [str(short_tmp / "counter")]


def test_failing_or_garbage_bpfsession_offers_nothing(complete, tmp_path):
    for body in ("exit 3", "echo 'not json'", "echo '{\"a\": 1}'", "echo '[1, null]'"):
        fake = tmp_path / "bpfsession"
        fake.write_text(f"#!/bin/sh\n{body}\n")
        fake.chmod(0o755)
        assert complete("show", "", argv0=str(fake)) == []
    assert complete("attach", "", argv0=str(tmp_path / "missing")) == []


@pytest.fixture
def tc_session(uds, make_map):
    """`tc exec bpf imp UDS run sleep 30` holding two real maps: a live session."""
    names = [uniq("cmpa"), uniq("cmpb")]
    fds = [make_map(name=n) for n in names]
    proc = subprocess.Popen(["tc", "exec", "bpf", "imp", uds, "run", "sleep", "30"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_socket(uds)
        entries = []
        for i, fd in enumerate(fds):
            info = bpf.map_info(fd)
            entries.append((wire.MapEntry(info.type, info.key_size, info.value_size,
                                          info.max_entries, id=i), fd))
        wire.send_maps(uds, uniq("cmpobj"), entries)
        yield proc, names
    finally:
        proc.kill()
        proc.wait()
        if os.path.exists(uds):
            os.unlink(uds)


def _listed(pid: int) -> dict | None:
    out = run([*BPFSESSION, "list", "-j"], check=False).stdout
    try:
        sessions = json.loads(out)
    except ValueError:
        return None
    return next((s for s in sessions if s.get("pid") == pid), None)


def test_live_session_names_and_their_map_names(complete, tc_session):
    proc, map_names = tc_session
    session = wait_for(lambda: _listed(proc.pid), timeout=10,
                       what=f"`bpfsession list` to show pid {proc.pid}")
    name = session["name"]
    assert name in complete("show", "")
    assert name in complete("attach", name[:2])
    assert name in complete("send", "/x", "--session", "")
    assert name in complete("map", "dump", "session", "")
    assert complete("map", "dump", "session", name, "") == map_names
    assert complete("map", "dump", "session", str(proc.pid), map_names[1][:-1]) == \
        [map_names[1]]
    own = complete("map", "show", "name", "", env={"BPFSESSION_ID": str(session["id"])})
    assert own == map_names


def test_map_type_layouts(complete):
    assert complete("map", "dump", "id", "3", "--key-type", "u32,u1") == ["u32,u16"]
    assert complete("map", "lookup", "--value-type", "s") == ["s8", "s16", "s32", "s64"]
