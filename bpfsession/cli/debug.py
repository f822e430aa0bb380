"""`bpfsession debug`: the trace pipe of bpf_printk, as `tc exec bpf debug`."""

from __future__ import annotations

EPILOG = """\
Streams bpf_trace_printk / bpf_printk lines until Ctrl-C. Lines come from a trace
instance of our own (tracefs instances/), so other readers of trace_pipe still get
every line; tracefs is mounted privately when it is not mounted (also inside --netns
sessions, whose /sys hides it). -j prints one JSON object a line: task, pid, cpu, flags,
timestamp, message.
"""


def register(sub) -> None:
    from bpfsession.cli.parser import RawFormatter

    p = sub.add_parser("debug", help="stream bpf_printk output (the trace pipe)",
                       description="Stream the kernel's trace pipe, as `tc exec bpf debug`.",
                       epilog=EPILOG, formatter_class=RawFormatter)
    p.add_argument("session", nargs="?", metavar="SESSION",
                   help="a session (name, id or pid): names its programs")
    p.add_argument("-j", "--json", action="store_true", help="JSON Lines, one object a line")
    p.add_argument("-p", "--pretty", action="store_true", help="same as -j (a stream)")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from bpfsession import debug
    from bpfsession.errors import warn

    as_json = args.json or args.pretty
    if args.session:
        warn(debug.session_note(args.session))
    debug.run(sys.stdout.buffer, as_json)
    return 0
