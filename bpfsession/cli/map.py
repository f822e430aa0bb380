"""`bpfsession map ...`: read and write maps from shell scripts, in bpftool's grammar.

    map show [MAP] | dump MAP | lookup MAP key DATA | update MAP key DATA value DATA [FLAG]
        | delete MAP key DATA | pin MAP PATH | load MAP [FILE|-] [FLAG]

Options may come anywhere (`map dump id 5 -j`), as with bpftool. This path is started
thousands of times from shell loops: it imports only the map modules (no numpy unless a
big dump needs it; no pyroute2, no textual).
"""

from __future__ import annotations

VERBS = {
    "show": ("show a map's kind, sizes and flags (no MAP: the session's maps)", "[MAP]"),
    "dump": ("print every entry", "MAP"),
    "lookup": ("print one entry", "MAP key DATA"),
    "update": ("write one entry", "MAP key DATA value DATA [any|noexist|exist]"),
    "delete": ("remove one entry", "MAP key DATA"),
    "pin": ("pin the map in bpffs", "MAP PATH"),
    "load": ("write many entries: JSON Lines of {\"key\": ..., \"value\": ...} as dump -j "
             "prints them (BPF_MAP_UPDATE_BATCH)", "MAP [FILE|-] [any|noexist|exist]"),
}

EPILOG = """\
MAP:  BPF_MAP<N> | <N>    the map fd in $BPF_MAP<N> (N: the sender's entry id)
      BPF_MAP_<NAME>      the map fd in $BPF_MAP_<NAME> (the variable's name, not its value)
      fd N                fd N of this process (e.g. fd "$BPF_MAP_PROTO_STATS")
      name NAME           a map of this session by kernel name, else the one map of that name
      id ID               a kernel map id
      pinned PATH         a map pinned in bpffs
      session SESSION NAME   a map of another session (SESSION: name, id or a pid)
DATA: bytes as C numbers (0x01 0 0 0) or after `hex` (hex 01 00 00 00); or typed values
      where the map's BTF or --key-type/--value-type give the layout: one value per field
      (5 RED 1), or one JSON value ('{"packets": 1, "bytes": 64}').
A missing key: `lookup` prints bpftool's "Not found" (null with -j), `delete` an error;
both exit with status 254, as bpftool does.
"""

# Exit status for "no such key", bpftool's (-ENOENT & 0xff).
STATUS_NOT_FOUND = 254


def register(sub) -> None:
    import argparse

    from bpfsession.cli.parser import RawFormatter

    p = sub.add_parser("map", help="show, dump, look up, update, delete or pin a map",
                       description="Read and write BPF maps, the bpftool way.",
                       epilog=EPILOG, formatter_class=RawFormatter)
    verbs = p.add_subparsers(dest="map_verb", metavar="VERB")
    verbs.required = True
    for verb, (text, usage) in VERBS.items():
        v = verbs.add_parser(verb, help=text, description=text, epilog=EPILOG,
                             usage=f"bpfsession map {verb} {usage} [-j] [-p]"
                                   + (" [--key-type T] [--value-type T]"
                                      if verb not in ("show", "pin") else ""),
                             formatter_class=RawFormatter)
        v.add_argument("-j", "--json", action="store_true", help="JSON output, as bpftool -j")
        v.add_argument("-p", "--pretty", action="store_true", help="pretty JSON (implies -j)")
        if verb not in ("show", "pin"):
            v.add_argument("--key-type", metavar="T",
                           help="key layout when the map has no BTF: u32, or u32,u16,u16 ...")
            v.add_argument("--value-type", metavar="T",
                           help="value layout: u64, s32, u8[4], char[16], u32,u16,u16 ...")
        v.add_argument("args", nargs=argparse.REMAINDER, help=usage)
        v.set_defaults(func=run, map_verb=verb)


def fast_parse(verb: str, argv: list[str]):
    """`map VERB MAP ...` without argparse (these run thousands of times from shell loops),
    or None for what argparse must see (no verb, options before the MAP, help). Equal to
    argparse's answer: tests/test_cli_fast.py."""
    if verb != "map" or not argv or argv[0] not in HANDLERS or \
            (len(argv) > 1 and argv[1].startswith("-")):
        return None
    from types import SimpleNamespace

    args = SimpleNamespace(command="map", map_verb=argv[0], json=False, pretty=False,
                           args=argv[1:], func=run)
    if argv[0] not in ("show", "pin"):
        args.key_type = args.value_type = None
    return args


_FLAGS = {"-j": "json", "--json": "json", "-p": "pretty", "--pretty": "pretty"}
_VALUED = {"--key-type": "key_type", "--value-type": "value_type"}


def _options(args) -> list[str]:
    """Pull -j/-p/--key-type/--value-type out of the words after the verb."""
    rest = []
    words = iter(args.args)
    for w in words:
        if w[:1] != "-":
            rest.append(w)
            continue
        name, eq, val = w.partition("=")
        if w in _FLAGS:
            setattr(args, _FLAGS[w], True)
        elif name in _VALUED and hasattr(args, _VALUED[name]):
            if not eq:
                val = next(words, None)
                if val is None:
                    from bpfsession.errors import BpfSessionError

                    raise BpfSessionError(f"{name} needs a layout, e.g. {name} u32")
            setattr(args, _VALUED[name], val)
        else:
            rest.append(w)
    if args.pretty:
        args.json = True
    return rest


def run(args) -> int:
    import sys

    words = _options(args)
    out = sys.stdout.buffer
    status = HANDLERS[args.map_verb](args, words, out)
    sys.stdout.flush()
    out.flush()
    sys.stderr.flush()
    # Done, and every fd this call opened is closed: skip the interpreter's teardown (a
    # few ms of each call from a shell loop), as `new` does. Errors take the normal way.
    import os

    os._exit(status)


def execute(verb: str, words: list[str], as_json: bool, pretty_json: bool, out,
            opened: dict | None = None) -> int:
    """One map command (`map VERB WORDS...`) written to the binary file `out`, for
    `batch`; `opened` keeps maps open (and their BTF parsed) from one command to the next.
    """
    from types import SimpleNamespace

    from bpfsession.errors import BpfSessionError

    if verb not in HANDLERS:
        raise BpfSessionError(f"unknown map command {verb!r}: map "
                              f"{'|'.join(HANDLERS)}")
    args = SimpleNamespace(map_verb=verb, json=as_json, pretty=pretty_json, args=words,
                           key_type=None, value_type=None, opened=opened)
    if verb in ("show", "pin"):
        del args.key_type, args.value_type
    return HANDLERS[verb](args, _options(args), out)


class _Kept:
    """A map kept open across a batch's commands: `with` does not close it."""

    def __init__(self, m):
        self.m = m

    def __enter__(self):
        return self.m

    def __exit__(self, *exc) -> None:
        pass


def _open(words: list[str], args=None):
    from bpfsession import maps

    spec, rest = maps.split_spec(words)
    opened = getattr(args, "opened", None)
    if opened is None:
        return maps.open_map(spec), rest
    key = tuple(spec)
    if key not in opened:
        opened[key] = maps.open_map(spec)
    return _Kept(opened[key]), rest


def _codec(args, m):
    from bpfsession import maps

    kt, vt = getattr(args, "key_type", None), getattr(args, "value_type", None)
    opened = getattr(args, "opened", None)
    if opened is None:
        return maps.codec(m, kt, vt)
    key = ("codec", m.fd, m.info.id, kt, vt)
    if key not in opened:
        opened[key] = maps.codec(m, kt, vt)
    return opened[key]


def _fields(rest: list[str], verb: str, want: tuple[str, ...]) -> dict[str, list[str]]:
    """Split `key D.. value D.. exist` into {"key": [...], "value": [...], "flag": [...]}."""
    from bpfsession.errors import BpfSessionError
    from bpfsession.mapfmt import KEYWORDS

    got: dict[str, list[str]] = {}
    current = None
    for w in rest:
        if w in KEYWORDS:
            name = "flag" if w in ("any", "noexist", "exist") else w
            if name in got:
                raise BpfSessionError(f"{w} given twice")
            if name not in want:
                raise BpfSessionError(f"`map {verb}` takes no {w}")
            got[name] = [w] if name == "flag" else []
            current = name if name != "flag" else None
        elif current is None:
            raise BpfSessionError(f"expected {' or '.join(want)}, got {w!r}")
        else:
            got[current].append(w)
    for name in want:
        if name != "flag" and name not in got:
            raise BpfSessionError(f"`map {verb}` needs `{name} DATA`")
    return got


def _check_no_args(rest: list[str], verb: str) -> None:
    if rest:
        from bpfsession.errors import BpfSessionError

        raise BpfSessionError(f"unexpected {' '.join(rest)!r} after the map in `map {verb}`")


def do_show(args, words, out) -> int:
    from bpfsession import maps

    if not words:
        return _show_all(args, out)
    m, rest = _open(words, args)
    with m as m:
        _check_no_args(rest, "show")
        fields = maps.show(m)
    if args.json:
        out.write(_render(maps.show_node(fields), args.pretty).encode())
    else:
        out.write(maps.show_text(fields).encode())
    return 0


def _render(node, pretty_json: bool) -> str:
    from bpfsession.jsonw import render

    return render(node, pretty_json)


def _show_all(args, out) -> int:
    """`map show` without MAP: the session's maps, or (outside one) every map."""
    import os

    from bpfsession import mapenv, maps
    from bpfsession.errors import BpfSessionError

    opened = []
    try:
        if mapenv.NUM in os.environ:
            for var in maps.env_map_fds(os.environ):
                try:
                    opened.append(maps.open_map([var]))
                except BpfSessionError:
                    continue  # an fd the command closed: skipped, like a map gone by id
        else:
            for map_id in maps.system_map_ids("`map show` without MAP outside a session"):
                try:
                    opened.append(maps.open_map(["id", str(map_id)]))
                except BpfSessionError:
                    continue
        rows = [maps.show(m) for m in opened]
    finally:
        for m in opened:
            m.close()
    if args.json:
        out.write(_render([maps.show_node(r) for r in rows], args.pretty).encode())
    else:
        out.write("".join(maps.show_text(r) for r in rows).encode())
    return 0


def do_dump(args, words, out) -> int:
    from bpfsession import maps

    m, rest = _open(words, args)
    with m as m:
        _check_no_args(rest, "dump")
        maps.dump(out, m, _codec(args, m), args.json, args.pretty)
    return 0


def do_lookup(args, words, out) -> int:
    from bpfsession import maps
    from bpfsession.mapfmt import EntryFormatter, lookup_text, parse_data

    m, rest = _open(words, args)
    with m as m:
        f = _fields(rest, "lookup", ("key",))
        codec = _codec(args, m)
        lay = codec.layout
        key = parse_data(f["key"], lay.key_size, "key", codec.key)
        value = maps.lookup(m, key, lay)
        out.write(lookup_text(EntryFormatter(lay, args.json), key, value, args.pretty).encode())
    return STATUS_NOT_FOUND if value is None else 0


def do_update(args, words, out) -> int:
    from bpfsession import maps
    from bpfsession.mapfmt import ID_VALUE_TYPES, parse_data

    m, rest = _open(words, args)
    with m as m:
        f = _fields(rest, "update", ("key", "value", "flag"))
        codec = _codec(args, m)
        lay = codec.layout
        key = parse_data(f["key"], lay.key_size, "key", codec.key)
        flags = maps.UPDATE_FLAGS[f.get("flag", ["any"])[0]]
        if lay.type_name in ID_VALUE_TYPES:
            _update_fd_value(m, key, f["value"], flags, lay.type_name)
        else:
            value = parse_data(f["value"], lay.value_size, "value", codec.value)
            if lay.percpu:
                # As bpftool: the one value given is written for every CPU.
                value = (value + bytes(lay.stride - lay.value_size)) * lay.ncpus
            maps.update(m, key, value, flags)
    if args.json:
        out.write(b"null\n")
    return 0


def _update_fd_value(m, key: bytes, words: list[str], flags: int, type_name: str) -> None:
    """prog_array / map-in-map values name an object: `value id ID` or `value pinned PATH`
    (bpftool's grammar); the kernel takes its fd and stores the id."""
    import os

    from bpfsession import maps
    from bpfsession.errors import BpfSessionError, KernelError
    from bpfsession.kernel import bpf

    is_prog = type_name == "prog_array"
    what = "program" if is_prog else "map"
    if len(words) != 2 or words[0] not in ("id", "pinned"):
        raise BpfSessionError(f"a {type_name} value names a {what}: value id ID or "
                              "value pinned PATH")
    if is_prog:
        try:
            fd = (bpf.prog_get_fd_by_id(int(words[1])) if words[0] == "id" and
                  words[1].isdigit() else bpf.obj_get(words[1]) if words[0] == "pinned"
                  else -1)
        except KernelError as err:
            raise BpfSessionError(f"cannot open program {' '.join(words)}: "
                                  f"{err.strerror}") from None
        if fd < 0:
            raise BpfSessionError(f"program id must be a number, not {words[1]!r}")
        if bpf.fd_kind(fd) != "bpf-prog":
            os.close(fd)
            raise BpfSessionError(f"{' '.join(words)} is not a program")
    else:
        inner = maps.open_map(words)
        fd = inner.fd
    try:
        maps.update(m, key, fd.to_bytes(4, "little"), flags)
    finally:
        os.close(fd)


def do_delete(args, words, out) -> int:
    from bpfsession import maps
    from bpfsession.errors import BpfSessionError
    from bpfsession.mapfmt import fprint_hex, parse_data

    m, rest = _open(words, args)
    with m as m:
        f = _fields(rest, "delete", ("key",))
        codec = _codec(args, m)
        key = parse_data(f["key"], codec.layout.key_size, "key", codec.key)
        if not maps.delete(m, key):
            raise BpfSessionError(f"{m.label} has no key {fprint_hex(key)}: nothing deleted",
                                  status=STATUS_NOT_FOUND)
    if args.json:
        out.write(b"null\n")
    return 0


def do_pin(args, words, out) -> int:
    from bpfsession import maps
    from bpfsession.errors import BpfSessionError

    m, rest = _open(words, args)
    with m as m:
        if len(rest) != 1:
            raise BpfSessionError("`map pin` needs one PATH under a bpffs mount, "
                                  "e.g. /sys/fs/bpf/mymap")
        maps.pin(m, rest[0])
    if args.json:
        out.write(b"null\n")
    return 0


def do_load(args, words, out) -> int:
    import sys

    from bpfsession import mapload, maps
    from bpfsession.errors import BpfSessionError

    m, rest = _open(words, args)
    with m as m:
        flag = rest.pop() if rest and rest[-1] in maps.UPDATE_FLAGS else "any"
        if len(rest) > 1:
            raise BpfSessionError("`map load` takes one FILE (or - for stdin) after the map")
        path = rest[0] if rest else "-"
        if path == "-":
            mapload.load(m, _codec(args, m), sys.stdin, maps.UPDATE_FLAGS[flag])
        else:
            try:
                f = open(path, encoding="utf-8", errors="surrogateescape")
            except OSError as err:
                raise BpfSessionError(f"cannot read {path}: {err.strerror}") from None
            with f:
                mapload.load(m, _codec(args, m), f, maps.UPDATE_FLAGS[flag])
    if args.json:
        out.write(b"null\n")
    return 0


HANDLERS = {"show": do_show, "dump": do_dump, "lookup": do_lookup, "update": do_update,
            "delete": do_delete, "pin": do_pin, "load": do_load}
