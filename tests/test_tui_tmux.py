"""`bpfsession tui` once in a real terminal: tmux at 120x40, driven with send-keys.

A private tmux server (-S) per test, killed at the end; `pipe-pane` records everything the
terminal was sent, so what the attached shell printed can be checked after the TUI has
redrawn over it.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, uniq, wait_for

pytest_plugins = ["tests.tui_fixtures"]


class Tmux:
    def __init__(self, tmp: Path):
        self.server = uniq("bstui")
        self.target = f"{self.server}:0"
        self.log = tmp / "pane.log"
        # A private server whose socket lives (and is removed) with the test's directory;
        # `-L NAME` would leave /tmp/tmux-UID/NAME behind after kill-server.
        self.socket = str(tmp / "tmux.sock")

    def tmux(self, *args: str) -> str:
        res = subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True,
                             text=True, timeout=10)
        assert res.returncode == 0, res.stderr
        return res.stdout

    def start(self, command: str, size: tuple[int, int] = (120, 40)) -> None:
        # COLUMNS/LINES inherited from the test run would pin the app at 80x24 (Python's
        # shutil.get_terminal_size reads them before asking the terminal).
        self.tmux("new-session", "-d", "-x", str(size[0]), "-y", str(size[1]), "-s", self.server,
                  "-e", "SHELL=/bin/sh", "-e", "PS1=$ ",
                  f"env -u COLUMNS -u LINES {command}")
        self.tmux("pipe-pane", "-o", "-t", self.target, f"cat >> {self.log}")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.target)

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.tmux("send-keys", "-t", self.target, *(["-l"] if literal else []), *keys)

    def wait_screen(self, predicate, what: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{screen}")
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return subprocess.run(["tmux", "-S", self.socket, "has-session"],
                              capture_output=True).returncode == 0

    def kill(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def tmux(short_tmp):
    t = Tmux(short_tmp)
    yield t
    t.kill()


def test_tui_in_tmux_shows_the_session_and_attaches(tmux, tc_session, make_map):
    a, b = uniq("tmxA"), uniq("tmxB")
    s = tc_session({a: make_map(name=a), b: make_map("array", name=b)})
    tmux.start(f"{ROOT}/.venv/bin/bpfsession tui")
    # Other sessions on the machine may fill the table: filter down to ours first.
    tmux.wait_screen(lambda scr: "— scanning" not in scr and "Attach" in scr, "the app")
    time.sleep(0.5)  # let the terminal answer the app's start-up queries before typing

    # Textual routes each key to the widget focused when the key arrives, so keys sent
    # right after "/" (or Enter) could still reach the table: wait for the focus to move
    # (the footer changes) before the next keys.
    tmux.keys("/")
    tmux.wait_screen(lambda scr: "Attach" not in scr, "the filter focused")
    tmux.keys(s.id, literal=True)
    tmux.wait_screen(lambda scr: scr.splitlines()[1].startswith(s.id), "the filter typed")
    tmux.keys("Enter")
    screen = tmux.wait_screen(lambda scr: a in scr and b in scr and "Attach" in scr and
                              ("— 1 of " in scr or "— 1 session" in scr),
                              "the filtered row, its map names, the table focused")
    assert "BPF_MAP0" in screen and "BPF_MAP1" in screen

    # Attach: the TUI hands the terminal to `bpfsession attach` and its shell...
    tmux.keys("a")
    tmux.wait_screen(lambda scr: scr.strip() and "palette" not in scr, "the attached shell")
    tmux.keys("echo MAPS=$BPF_NUM_MAPS; exit", literal=True)
    tmux.keys("Enter")
    # ...and takes it back when the shell exits.
    tmux.wait_screen(lambda scr: "Attach" in scr and s.id in scr, "the TUI back")
    wait_for(lambda: "MAPS=2" in tmux.output(), what="the shell's output")

    # An agent command run attached; its output stays until Enter.
    tmux.keys("r")
    tmux.wait_screen(lambda scr: "Run a command attached" in scr, "the prompt")
    tmux.keys("sh -c 'echo RUN=$BPF_NUM_MAPS'", literal=True)
    tmux.keys("Enter")
    tmux.wait_screen(lambda scr: "RUN=2" in scr and "press Enter" in scr, "the output")
    tmux.keys("Enter")
    tmux.wait_screen(lambda scr: "Attach" in scr and "exited" in scr, "the TUI back again")

    tmux.keys("q")
    wait_for(lambda: not tmux.alive(), what="the TUI to quit (its tmux session ends with it)")
    assert s.proc.poll() is None  # quitting the TUI leaves sessions alone


def test_help_opens_with_question_mark_and_closes_with_esc_at_80x24(tmux):
    tmux.start(f"{ROOT}/.venv/bin/bpfsession tui", size=(80, 24))
    screen = tmux.wait_screen(lambda scr: "— scanning" not in scr and "q Quit" in scr,
                              "the app, Quit in the footer")
    assert screen.splitlines()[-1].lstrip().startswith("q Quit")
    time.sleep(0.5)  # let the terminal answer the app's start-up queries before typing
    tmux.keys("?")
    screen = tmux.wait_screen(lambda scr: "Keys of the sessions list" in scr, "the help")
    assert "Esc: close" in screen and "Attach" in screen
    tmux.keys("Escape")
    tmux.wait_screen(lambda scr: "Keys of the sessions list" not in scr and "q Quit" in scr,
                     "the help closed")
    tmux.keys("q")
    wait_for(lambda: not tmux.alive(), what="the TUI to quit")
