"""The Textual app behind `bpfsession tui`: a browser of live sessions and their maps.

`BpfSessionApp(source=...)` takes where the data comes from: the live machine by default
(tui/source.py LiveSource), a fixed list of sessions for snapshots (FixedSource). The app
owns the actions that need the terminal (attach suspends it) or outlive a screen (a dump,
ending a session); the OS work of those runs in worker threads that post messages back.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from textual import work
from textual.app import App, SuspendNotSupported, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from bpfsession.errors import BpfSessionError
from bpfsession.model import Session, SessionMap
from bpfsession.printable import printable
from tui import rows, source
from tui.messages import ActionDone, ActionFailed, AttachChecked
from tui.screens import HelpScreen, MainScreen, MapScreen, PromptScreen
from tui.widgets import KeyedTable

THEME_VAR = "BPFSESSION_TUI_THEME"
QUICK_FAILURE = 2.0  # seconds: an attach that failed sooner never ran its shell


@dataclass
class RefreshStats:
    """What the last refreshes cost (seconds): the scan and row formatting in the worker
    thread, and the table update on the UI thread. Read by bench/bench_tui.py."""

    scans: int = 0
    sessions: int = 0
    scan_history: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    cpu_history: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    apply_history: deque[float] = field(default_factory=lambda: deque(maxlen=100))

    def record(self, scan: float, cpu: float, apply: float, sessions: int) -> None:
        self.scans += 1
        self.sessions = sessions
        self.scan_history.append(scan)
        self.cpu_history.append(cpu)
        self.apply_history.append(apply)


def pick_theme(env: Mapping[str, str], known: Iterable[str]) -> str:
    """$BPFSESSION_TUI_THEME (light, dark or a Textual theme name) wins; else a terminal
    that announces a light background in $COLORFGBG ("0;15": fg;bg, as rxvt, Konsole and
    others set it) gets the light theme; else dark."""
    wanted = env.get(THEME_VAR, "").strip()
    if wanted in ("light", "dark"):
        return f"textual-{wanted}"
    if wanted in set(known):
        return wanted
    bg = env.get("COLORFGBG", "").rpartition(";")[2]
    if bg.isdigit() and int(bg) in (7, 15):
        return "textual-light"
    return "textual-dark"


def default_dump_path(m: SessionMap) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", m.name) or "map"
    return f"map-{m.id}-{name}.json"


# How keys are written in the help screen.
KEY_NAMES = {"question_mark": "?", "slash": "/", "escape": "Esc", "space": "Space",
             "f1": "F1", "enter": "Enter", "ctrl+p": "Ctrl+P", "up": "Up", "down": "Down"}
# Keys that are no Binding of ours but belong in the help (Textual's own or the tables').
COMMON_KEYS = [("Up / Down", "move in a table"), ("Tab", "next pane"),
               ("Ctrl+P", "command palette (every action by name)")]
ENTER_KEYS = {MainScreen: [("Enter", "on a session: its maps; on a map: open it")]}


def key_text(keys: str) -> str:
    return " / ".join(KEY_NAMES.get(k, k) for k in keys.split(","))


def help_keys(screen: Screen) -> list[tuple[str, str]]:
    """(key, what it does) for every key of `screen`: its bindings, its tables', the app's."""
    keys = [(key_text(b.key), b.description) for b in type(screen).BINDINGS]
    keys += ENTER_KEYS.get(type(screen), [])
    if screen.query(KeyedTable):
        keys += [(key_text(b.key), b.description + " (the table's rows, by column)")
                 for b in KeyedTable.BINDINGS]
    return keys + COMMON_KEYS


def attach_args(s: Session, command: list[str] | None) -> list[str]:
    """`bpfsession attach SESSION [run CMD...]`'s arguments; the id names it exactly."""
    return ["attach", s.id, "run", *command] if command else ["attach", s.id]


class BpfSessionApp(App):
    """`interval`: seconds between refreshes; None scans once (deterministic snapshots)."""

    CSS_PATH = "app.tcss"
    TITLE = "bpfsession"
    BINDINGS = [Binding("question_mark,f1", "help", "Help", show=False)]

    def __init__(self, data: source.Source | None = None, interval: float | None = 1.0):
        super().__init__()
        self.source = data or source.LiveSource()
        self.interval = interval
        self.stats = RefreshStats()
        self.python = sys.executable  # what runs `bpfsession attach` (-m bpfsession)
        if THEME_VAR in os.environ or "COLORFGBG" in os.environ:
            self.theme = pick_theme(os.environ, self.available_themes)

    def on_mount(self) -> None:
        self.push_screen(MainScreen())

    def notify(self, message: str, *, title: str = "", severity="information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Textual's notify, but plain text: messages carry session and map names, which
        are data (never markup, control characters escaped)."""
        super().notify(printable(message), title=printable(title), severity=severity,
                       timeout=timeout, markup=False)

    def action_help(self) -> None:
        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        what = "the map view" if isinstance(screen, MapScreen) else "the sessions list"
        self.push_screen(HelpScreen(f"Keys of {what}", help_keys(screen)))

    @property
    def main(self) -> MainScreen:
        return next(s for s in self.screen_stack if isinstance(s, MainScreen))

    # ---- the command palette ---------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, MainScreen):
            yield SystemCommand("Attach", "A shell holding the selected session's maps "
                                "(bpfsession attach)", screen.action_attach)
            yield SystemCommand("Run command attached", "Run CMD with the session's maps",
                                screen.action_run)
            yield SystemCommand("Open map", "The selected map's entries, live",
                                screen.action_open_map)
            yield SystemCommand("Dump map to a file", "All entries, bpftool -j shape",
                                screen.action_dump)
            yield SystemCommand("Copy env lines", "The session's BPF_* variables to the "
                                "clipboard", screen.action_copy_env)
            yield SystemCommand("Save env lines to a file", "The session's BPF_* variables",
                                screen.action_save_env)
            yield SystemCommand("End session", "SIGTERM to its supervisor (or root), "
                                "after a confirmation", screen.action_end)
            yield SystemCommand("Filter sessions", "By name, id, pid, obj, command, map",
                                screen.action_filter)
        elif isinstance(screen, MapScreen):
            yield SystemCommand("Dump map to a file", "All entries, bpftool -j shape",
                                screen.action_dump)
            yield SystemCommand("Pause or resume", "Live refresh of the entries",
                                screen.action_pause)

    # ---- actions that need the terminal or outlive a screen ----------------------------------

    def attach(self, s: Session, command: list[str] | None) -> None:
        """Attach (or run CMD attached) once a worker has checked that the maps can be
        taken; a refusal is a notification and the TUI stays as it was."""
        self.check_attach_worker(s, command)

    @work(thread=True, group="actions")
    def check_attach_worker(self, s: Session, command: list[str] | None) -> None:
        try:
            self.source.check_attach(s)
        except BpfSessionError as err:
            self.post_message(ActionFailed("Attach", err.hint))
        else:
            self.post_message(AttachChecked(s, command))

    def on_attach_checked(self, msg: AttachChecked) -> None:
        self.run_attached(msg.session, msg.command)
        self.main.refresh_now()

    def run_attached(self, s: Session, command: list[str] | None) -> None:
        """Suspend the TUI, run `bpfsession attach SESSION [run CMD]` in the terminal, resume.

        While the child runs, ^C and ^\\ go to the terminal's whole foreground group: the
        TUI ignores them through a no-op handler (not SIG_IGN, which exec would pass on to
        the child; a handler is reset to the default by exec).
        """
        if not self.source.alive(s):
            self.notify(f"session {s.name} has ended", title="Attach", severity="error")
            return
        args = attach_args(s, command)
        if not os.access(self.python, os.X_OK):
            self.notify(f"cannot start `bpfsession attach`: no interpreter at {self.python}; "
                        f"run `bpfsession {shlex.join(args)}` in another terminal",
                        title="Attach", severity="error")
            return
        try:
            status = self._run_suspended([self.python, "-m", "bpfsession", *args],
                                         wait=command is not None)
        except SuspendNotSupported:
            self.notify(f"this terminal cannot be handed over: run `bpfsession "
                        f"{shlex.join(args)}` in another one", title="Attach",
                        severity="error")
            return
        except OSError as err:  # the interpreter went or cannot be executed
            self.notify(f"cannot start `bpfsession attach`: {err.strerror}", title="Attach",
                        severity="error")
            return
        what = "attach" if command is None else f"run {command[0]}"
        if status == 0:
            self.notify(f"{what} exited", title=f"Session {s.name}")
        else:
            self.notify(f"{what} exited with status {status}", title=f"Session {s.name}",
                        severity="warning")

    def _run_suspended(self, argv: list[str], wait: bool) -> int:
        old = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGINT, signal.SIGQUIT)}
        try:
            with self.suspend():
                start = time.monotonic()
                status = subprocess.call(argv)
                # Keep the output of a command, and the error of an attach that failed
                # at once, on screen until the user has read it.
                if wait or (status and time.monotonic() - start < QUICK_FAILURE):
                    _wait_for_enter(status)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
        return status

    def ask_dump(self, s: Session, m: SessionMap) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.run_action_worker("Dump", self.source.dump_map, m, path)

        self.push_screen(PromptScreen(f"Dump map {m.id} ({m.name or '-'}) of {s.name} to the "
                                      "file:", default_dump_path(m)), chosen)

    def copy_env(self, s: Session) -> None:
        text = rows.env_lines(s)
        self.copy_to_clipboard(text)
        self.notify(f"{text.count(chr(10))} lines copied to the clipboard (OSC 52); the "
                    "palette's 'Save env lines' writes them to a file", title="Env")

    def ask_save_env(self, s: Session) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.run_action_worker("Env", source.save_text, rows.env_lines(s), path)

        name = re.sub(r"[^A-Za-z0-9_.-]", "_", s.name)
        self.push_screen(PromptScreen(f"Save the env lines of {s.name} to the file:",
                                      f"{name}.env"), chosen)

    def action_trace(self) -> None:
        from tui.trace import TraceScreen  # the trace view (bpf_printk lines), key t

        self.push_screen(TraceScreen())

    def end_session(self, s: Session) -> None:
        self.run_action_worker("End session", self.source.end, s)

    @work(thread=True, group="actions")
    def run_action_worker(self, title: str, fn, *args) -> None:
        try:
            text = fn(*args)
        except BpfSessionError as err:
            self.post_message(ActionFailed(title, err.hint))
        else:
            self.post_message(ActionDone(title, text))

    def on_action_done(self, msg: ActionDone) -> None:
        self.notify(msg.text, title=msg.title)
        self.main.refresh_now()

    def on_action_failed(self, msg: ActionFailed) -> None:
        self.notify(msg.hint, title=msg.title, severity="error")


def _ignore(signum, frame) -> None:
    pass


def _wait_for_enter(status: int) -> None:
    if not sys.stdin.isatty():
        return
    try:
        input(f"\n[exit status {status}] press Enter to return to bpfsession tui ")
    except EOFError:
        pass
