"""`bpfsession graft`: put a program into a prog array's slot, as `tc exec bpf graft`."""

from __future__ import annotations

import argparse

from bpfsession.cli.parser import RawFormatter

USAGE = ("bpfsession graft MAP key KEY (id ID | pinned PATH | obj FILE [sec NAME] "
         "[type TYPE] | delete) [-j] [-p]")
EPILOG = """\
MAP:  a prog_array, named as for `bpfsession map` (BPF_MAP<N>, name NAME, id ID,
      pinned PATH, session SESSION NAME)
KEY:  the slot, a u32 number (0, 7, 0x10), as tc takes it
id ID | pinned PATH   a loaded program
obj FILE [sec NAME] [type TYPE]
      load the program of section (or function) NAME from FILE with bpftool; the maps
      the object declares are the session's maps of the same names. TYPE: as bpftool's
      (classifier, action, xdp...) or tc's (cls, act)
delete                empty the slot
The slot is replaced atomically. `tc exec bpf graft` equivalents: docs/debug-graft.md.
"""


def register(sub) -> None:
    p = sub.add_parser("graft", help="put a program into a prog array slot (tail calls)",
                       usage=USAGE, description="Graft a program into a prog array, as "
                       "`tc exec bpf graft` does.", epilog=EPILOG,
                       formatter_class=RawFormatter)
    p.add_argument("-j", "--json", action="store_true", help="print what was grafted as JSON")
    p.add_argument("-p", "--pretty", action="store_true", help="pretty JSON (implies -j)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="MAP key KEY SOURCE")
    p.set_defaults(func=run)


_FLAGS = {"-j": "json", "--json": "json", "-p": "pretty", "--pretty": "pretty"}


def run(args) -> int:
    import json
    import os

    from bpfsession import graft, maps

    words = []
    for w in args.args:  # options may come anywhere, as with bpftool
        if w in _FLAGS:
            setattr(args, _FLAGS[w], True)
        else:
            words.append(w)
    args.json = args.json or args.pretty
    spec, rest = maps.split_spec(words)
    req = graft.parse(rest)
    with maps.open_map(spec) as m:
        result = graft.run(m, spec, req, os.environ)
    if args.json:
        print(json.dumps(result, indent=2 if args.pretty else None))
    return 0
