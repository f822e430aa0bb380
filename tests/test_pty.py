"""Under a terminal, the session's shell behaves like one started directly (pexpect)."""

from __future__ import annotations

import os
import sys

import pexpect
import pytest

from tests.helpers import in_foreground, wait_for, wait_for_socket
from tests.new_helpers import send, wait_entry

PROMPT = "BS> "


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]

SET_PROMPT = "PS1='BS''> '"  # the echoed command line must not look like the prompt

pytest_plugins = ["tests.new_fixtures"]


@pytest.fixture
def term_env(short_tmp, run_dir):
    return {**os.environ, "SHELL": "/bin/bash", "HOME": str(short_tmp), "TERM": "dumb",
            "BPFSESSION_RUN_DIR": run_dir}


@pytest.fixture
def spawned():
    children: list[pexpect.spawn] = []

    def spawn(*args, **kw) -> pexpect.spawn:
        child = pexpect.spawn(*args, encoding="utf-8", timeout=15, dimensions=(40, 200), **kw)
        children.append(child)
        return child

    yield spawn
    for child in children:
        child.close(force=True)


def test_interactive_shell_job_control_and_ctrl_c(spawned, term_env, make_map, uds):
    sh = spawned(sys.executable, ["-m", "bpfsession", "new", "imp", uds], env=term_env)
    wait_for_socket(uds)
    send(uds, [make_map(), make_map()])
    sh.sendline(SET_PROMPT)
    sh.expect_exact(PROMPT)
    assert "no job control" not in sh.before
    sh.sendline("sleep 100 & echo job=$!")
    sh.expect(r"job=(\d+)")
    job = int(sh.match.group(1))
    sh.expect_exact(PROMPT)
    sh.sendline("jobs")
    sh.expect(r"\[1\]\+\s+Running\s+sleep 100 &")
    sh.expect_exact(PROMPT)
    sh.sendline("fg")
    sh.expect_exact("sleep 100")
    wait_for(lambda: in_foreground(job), what="bash handing the terminal to the job")
    sh.sendintr()  # Ctrl-C: reaches the foreground job, not the supervisor
    sh.expect_exact(PROMPT)
    assert sh.isalive()
    sh.sendline("jobs; echo no-more-jobs")
    sh.expect_exact("no-more-jobs")
    assert "sleep" not in sh.before
    sh.expect_exact(PROMPT)
    sh.sendline("echo maps=$BPF_NUM_MAPS fds=$BPF_MAP0,$BPF_MAP1")
    sh.expect_exact("maps=2 fds=3,4")
    sh.expect_exact(PROMPT)
    sh.sendline("exit 3")
    sh.expect(pexpect.EOF)
    sh.close()
    assert sh.exitstatus == 3


def test_terminal_foreground_is_restored(spawned, term_env, make_map, uds):
    check = "import os; print('foreground', os.tcgetpgrp(0) == os.getpgrp())"
    sh = spawned("/bin/sh", ["-c", f"{sys.executable} -m bpfsession new imp {uds} run sh -c "
                 f"'echo in-session; exit 5'; echo status=$?; {sys.executable} -c \"{check}\""],
                 env=term_env)
    wait_for_socket(uds)
    send(uds, [make_map()])
    sh.expect_exact("in-session")
    sh.expect_exact("status=5")
    sh.expect_exact("foreground True")
    sh.expect(pexpect.EOF)


def test_ctrl_z_stops_the_session_and_fg_resumes_it(spawned, term_env, make_map, uds,
                                                     run_dir):
    sh = spawned("/bin/bash", ["--norc", "--noprofile", "-i"], env=term_env)
    sh.sendline(SET_PROMPT)
    sh.expect_exact(PROMPT)
    sh.sendline(f"{sys.executable} -m bpfsession new imp {uds} run sleep 100")
    wait_for_socket(uds)
    send(uds, [make_map()])
    entry = wait_entry(run_dir)
    wait_for(lambda: open(f"/proc/{entry['pid']}/comm").read() == "sleep\n", what="sleep")
    sh.sendcontrol("z")
    sh.expect(r"Stopped")
    sh.expect_exact(PROMPT)
    assert _state(entry["pid"]) == "T" and _state(entry["supervisor"]) == "T"
    sh.sendline("fg")
    sh.expect_exact("bpfsession")
    wait_for(lambda: _state(entry["pid"]) == "S" and in_foreground(entry["pid"]),
             what="sleep resumed in the foreground")
    sh.sendintr()
    sh.expect_exact(PROMPT)
    sh.sendline("echo status=$?")
    sh.expect_exact("status=130")
    sh.sendline("exit")
    sh.expect(pexpect.EOF)
