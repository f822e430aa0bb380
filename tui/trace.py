"""The trace view: `bpfsession debug`'s stream (bpf_printk lines) inside the TUI.

Opened with `t` on the sessions screen (or the palette's "Trace pipe"). A worker thread
owns the private trace instance (bpfsession/tracefs.py) and posts the lines it reads;
the screen only appends them. The instance is removed when the screen closes: the worker
polls the pipe with a short timeout so that it sees its cancellation.
"""

from __future__ import annotations

import os
import select
from collections import deque
from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog
from textual.worker import get_current_worker

from bpfsession.errors import BpfSessionError
from bpfsession.printable import decode, printable

MAX_LINES = 5000
POLL_MS = 200  # how soon the worker notices that the screen closed


@dataclass
class TraceLines(Message):
    lines: list[str]  # decoded, not yet escaped


@dataclass
class TraceFailed(Message):
    hint: str


class TraceScreen(Screen):
    """The trace pipe's lines as they come; `p` holds them back, `c` clears."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("p", "pause", "Pause"),
        Binding("c", "clear", "Clear"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.paused = False
        self.held: deque[str] = deque(maxlen=MAX_LINES)
        self.shown: deque[str] = deque(maxlen=MAX_LINES)  # what the log shows, as text

    def compose(self) -> ComposeResult:
        yield Header()
        yield RichLog(id="trace", max_lines=MAX_LINES, markup=False, highlight=False,
                      wrap=False)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "trace pipe: bpf_printk lines (starting…)"
        self.read_trace()

    @work(thread=True, exclusive=True, group="trace")
    def read_trace(self) -> None:
        from bpfsession.tracefs import Instance

        worker = get_current_worker()
        try:
            inst = Instance()
        except BpfSessionError as err:
            self.post_message(TraceFailed(err.hint))
            return
        with inst:
            self.post_message(TraceLines([]))
            poller = select.poll()
            poller.register(inst.pipe, select.POLLIN)
            pending = b""
            while not worker.is_cancelled:
                if not poller.poll(POLL_MS):
                    continue
                chunk = os.read(inst.pipe, 65536)
                if not chunk:
                    break
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                self.post_message(TraceLines([decode(raw) for raw in lines if raw]))

    def on_trace_lines(self, msg: TraceLines) -> None:
        self.sub_title = "trace pipe: bpf_printk lines" + (" (paused)" if self.paused else "")
        if self.paused:
            self.held.extend(msg.lines)
        else:
            self._show(msg.lines)

    def on_trace_failed(self, msg: TraceFailed) -> None:
        self.sub_title = "trace pipe: unavailable"
        self.notify(msg.hint, title="Trace pipe", severity="error")

    def _show(self, lines) -> None:
        log = self.query_one(RichLog)
        for line in lines:
            text = printable(line)
            self.shown.append(text)
            log.write(Text(text))

    def action_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self._show(list(self.held))
            self.held.clear()
        self.sub_title = "trace pipe: bpf_printk lines" + (" (paused)" if self.paused else "")

    def action_clear(self) -> None:
        self.shown.clear()
        self.held.clear()
        self.query_one(RichLog).clear()
