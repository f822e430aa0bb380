"""`debug`: bpf_trace_printk / bpf_printk output, streamed from a private trace instance.

A trace_pipe line (kernel/trace/trace_output.c, with the default irq-info option):

    python3-6748    [001] ..s2.  2833.244841: bpf_trace_printk: hello 42
    <task>-<pid>    [cpu] flags  seconds    : event           : message

and, when the ring buffer overflowed, `CPU:1 [LOST 12 EVENTS]`. Text output repeats the
lines as `tc exec bpf debug` does (escaped: task names and messages are outside strings);
-j prints one JSON object a line.
"""

from __future__ import annotations

import json
import os
import re

from bpfsession.printable import decode, printable

_LINE = re.compile(r"\s*(?P<task>.+?)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
                   r"(?:(?P<flags>\S+)\s+)?(?P<ts>\d+\.\d+):\s(?P<event>\w+):\s?(?P<msg>.*)")
_LOST = re.compile(r"CPU:(?P<cpu>\d+) \[LOST (?P<lost>\d+) EVENTS\]")


def parse(line: str) -> dict:
    """One trace_pipe line as {"task", "pid", "cpu", "flags", "timestamp", "message"};
    a lost-events line as {"cpu", "lost"}; anything else as {"message": line}."""
    m = _LINE.fullmatch(line)
    if m:
        return {"task": m["task"], "pid": int(m["pid"]), "cpu": int(m["cpu"]),
                "flags": m["flags"], "timestamp": float(m["ts"]), "message": m["msg"]}
    m = _LOST.fullmatch(line)
    if m:
        return {"cpu": int(m["cpu"]), "lost": int(m["lost"])}
    return {"message": line}


def render(raw: bytes, as_json: bool) -> str:
    line = decode(raw)
    if as_json:
        return json.dumps(parse(line)) + "\n"
    return printable(line) + "\n"


def run(out, as_json: bool) -> None:
    """Stream trace lines to `out` (a binary stream) until SIGINT, SIGTERM or SIGHUP, then
    remove the trace instance and return normally (Ctrl-C is how a user ends it)."""
    from bpfsession.stopsignals import stop_on_signals
    from bpfsession.tracefs import Instance

    with stop_on_signals(), Instance() as inst:
        stream(inst.pipe, out, as_json)


def stream(pipe: int, out, as_json: bool) -> None:
    """Copy trace lines from `pipe` to `out`, flushed line by line, while it gives any."""
    pending = b""
    while chunk := os.read(pipe, 65536):
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        text = "".join(render(raw, as_json) for raw in lines if raw)
        if text:
            out.write(text.encode())
            out.flush()


def session_note(spec: str) -> str:
    """What `debug SESSION` can and cannot filter, said plainly."""
    from bpfsession import discover
    from bpfsession.errors import KernelError
    from bpfsession.kernel import bpf

    found = discover.find(spec)
    try:
        progs = [(p.id, p.name) for p in bpf.progs_using(found.map_ids)]
    except KernelError:  # the walk needs CAP_SYS_ADMIN: the note says none
        progs = []
    listed = ", ".join(f"{name} (id {pid})" for pid, name in progs) or "none loaded now"
    return (f"trace lines do not say which program wrote them, so the lines of every "
            f"program are shown; session {found.name}'s programs: {listed}")
