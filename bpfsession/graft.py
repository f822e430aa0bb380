"""`graft`: put a program into a slot of a prog array (tail calls), as `tc exec bpf graft`.

    graft MAP key KEY (id ID | pinned PATH | obj FILE [sec NAME] [type TYPE] | delete)

KEY is a u32 slot number, as tc takes it. The slot is replaced in one BPF_MAP_UPDATE_ELEM
(the kernel swaps the pointer: a packet takes the old program or the new one, never none).

`obj` loads through the system's loader, `bpftool prog loadall`, with `map name NAME id
ID` for every map the object declares that the session already has: without it the
program would get fresh copies of its maps and count where nobody reads. The programs
are pinned in a bpffs mounted nowhere (fsmount): nothing is left in /sys/fs/bpf, even
if we are killed, and no bpffs needs to be mounted at all; the slot's reference keeps
the grafted program alive, the others go with the mount.

A prog array's slots only live while user space holds the map (FACTS: the kernel empties
them when the last fd or pin goes away): that is why grafting into a session's map works.
"""

from __future__ import annotations

import errno
import os
import subprocess

from bpfsession import maps
from bpfsession.errors import BpfSessionError, KernelError, warn
from bpfsession.kernel import bpf
from bpfsession.maps import OpenMap, env_map_fds

# tc's `type` words (and bpftool's prog type names) as the section names bpftool's
# `type` takes; anything else is passed to bpftool as it is.
TYPE_WORDS = {"cls": "classifier", "act": "action", "sched_cls": "classifier",
              "sched_act": "action"}
SOURCES = ("id", "pinned", "obj", "delete")
# tc exec bpf graft's long spellings, accepted so that its command lines carry over.
TC_WORDS = {"object-file": "obj", "object-pinned": "pinned", "section": "sec"}
USAGE = "graft MAP key KEY (id ID | pinned PATH | obj FILE [sec NAME] [type TYPE] | delete)"


class Request:
    """A parsed graft command line (after MAP)."""

    __slots__ = ("key", "kind", "arg", "sec", "type")

    def __init__(self, key: int, kind: str, arg: str | None = None, sec: str | None = None,
                 type: str | None = None):
        self.key, self.kind, self.arg, self.sec, self.type = key, kind, arg, sec, type


def parse(words: list[str]) -> Request:
    """`key KEY` and one source; a one-line error for anything else."""
    if len(words) < 2 or words[0] != "key":
        raise BpfSessionError(f"expected `key KEY` after the map: {USAGE}")
    key = parse_key(words[1])
    rest = words[2:]
    if rest:
        rest[0] = TC_WORDS.get(rest[0], rest[0])
    if not rest or rest[0] not in SOURCES:
        got = f"got {rest[0]!r}" if rest else "got nothing"
        raise BpfSessionError(f"expected id ID, pinned PATH, obj FILE or delete after the "
                              f"key ({got})")
    kind = rest[0]
    if kind == "delete":
        if len(rest) > 1:
            raise BpfSessionError(f"unexpected {' '.join(rest[1:])!r} after delete")
        return Request(key, kind)
    if len(rest) < 2:
        raise BpfSessionError(f"`{kind}` needs an argument: {USAGE}")
    req = Request(key, kind, rest[1])
    if kind == "id" and not (rest[1].isdigit() and int(rest[1]) < 1 << 32):
        raise BpfSessionError(f"program id must be a number (a u32), not {rest[1]!r}")
    options = rest[2:]
    while options:
        word = options.pop(0)
        word = TC_WORDS.get(word, word)
        if kind != "obj" or word not in ("sec", "type"):
            raise BpfSessionError(f"unexpected {word!r}: only obj FILE takes sec NAME and "
                                  "type TYPE")
        if not options:
            raise BpfSessionError(f"`{word}` needs an argument: {USAGE}")
        if getattr(req, word) is not None:
            raise BpfSessionError(f"{word} given twice")
        setattr(req, word, options.pop(0))
    return req


def parse_key(text: str) -> int:
    """A u32 slot number: decimal or 0x hex (tc reads it with strtoul(.., 0))."""
    try:
        key = int(text, 0)
    except ValueError:
        key = -1
    if not 0 <= key < 1 << 32:
        raise BpfSessionError(f"KEY must be a slot number (a u32, as tc takes it), "
                              f"not {text!r}")
    return key


def check_slot(m: OpenMap, key: int) -> None:
    if m.info.type_name != "prog_array":
        raise BpfSessionError(f"{m.label} is not a prog_array (it is a {m.info.type_name} "
                              "map): graft puts programs into prog arrays")
    if key >= m.info.max_entries:
        raise BpfSessionError(f"key {key} is out of range: {m.label} has "
                              f"{m.info.max_entries} slots (0..{m.info.max_entries - 1})")


def delete(m: OpenMap, key: int) -> bool:
    """Empty the slot; False when it was empty already."""
    check_slot(m, key)
    return maps.delete(m, key.to_bytes(4, "little"))


def graft(m: OpenMap, key: int, prog_fd: int) -> None:
    """Put the program `prog_fd` into slot `key`, replacing what was there."""
    check_slot(m, key)
    info = bpf.prog_info(prog_fd)
    owner = m.fdinfo().get("owner_prog_type")
    if owner is not None and int(owner) != info.type:
        from bpfsession.kernel.types import PROG_TYPE_NAMES, type_name

        raise BpfSessionError(f"program {info.name} (id {info.id}) is {info.type_name}, but "
                              f"{m.label} holds {type_name(PROG_TYPE_NAMES, int(owner))} "
                              "programs: a tail call stays within one program type")
    maps.update(m, key.to_bytes(4, "little"), prog_fd.to_bytes(4, "little"))


def open_prog(kind: str, arg: str) -> int:
    """A program fd from `id ID` or `pinned PATH`, checked to be a program."""
    try:
        fd = bpf.prog_get_fd_by_id(int(arg)) if kind == "id" else bpf.obj_get(arg)
    except KernelError as err:
        if err.errno == errno.ENOENT:
            raise BpfSessionError(f"no program {kind} {arg}: `bpftool prog show` lists them") \
                from None
        raise BpfSessionError(f"cannot open program {kind} {arg}: {err.strerror}") from None
    if bpf.fd_kind(fd) != "bpf-prog":
        os.close(fd)
        raise BpfSessionError(f"{kind} {arg} is not a program")
    return fd


# --- obj FILE: loading through bpftool with the session's maps ----------------------------


def neighbour_maps(m: OpenMap, spec: list[str], environ) -> dict[str, int]:
    """Kernel map name -> id of the maps a grafted program should share: the session's
    (the one MAP was named in, or this one, inside a session), then those of the
    programs that already use the prog array. The first of a name wins."""
    found: dict[str, int] = {}
    if spec[0] == "session":
        from bpfsession import discover

        for sm in discover.find(spec[1]).maps:
            found.setdefault(sm.name, sm.id)
    elif "BPF_NUM_MAPS" in environ:
        for fd in env_map_fds(environ).values():
            if bpf.fd_kind(fd) == "bpf-map":
                try:
                    info = bpf.map_info(fd)
                except KernelError:
                    continue
                found.setdefault(info.name, info.id)
    for map_id in _maps_beside(m.info.id):
        try:
            fd = bpf.map_get_fd_by_id(map_id)
        except KernelError:
            continue  # gone since listed
        try:
            found.setdefault(bpf.map_info(fd).name, map_id)
        finally:
            os.close(fd)
    return found


def _maps_beside(map_id: int) -> list[int]:
    """Ids of the maps used by the programs that use map `map_id`."""
    out: list[int] = []
    try:
        using = bpf.progs_using({map_id})
    except KernelError:  # the walk needs CAP_SYS_ADMIN: nothing to add
        return out
    for info in using:
        out.extend(i for i in info.map_ids if i not in out)
    return out


def load(path: str, sec: str | None, prog_type: str | None, shared: dict[str, int]) -> int:
    """Load the object with bpftool, reusing `shared` maps by name; the picked program's fd."""
    from bpfsession import bpfobj
    from bpfsession.kernel import fsmount

    obj = bpfobj.read(path)
    want = obj.pick(sec)
    reuse: list[str] = []
    for name in obj.maps:
        map_id = shared.get(name[:15])  # the kernel keeps 15 characters of a name
        if map_id is None:
            warn(f"map {name} of {path} is not one of the session's: the grafted program "
                 "gets a fresh copy of it")
        else:
            reuse += ["map", "name", name, "id", str(map_id)]
    try:
        mnt = fsmount.detached_mount("bpf")
    except KernelError as err:
        raise BpfSessionError(f"cannot mount a private bpffs to load {path} in: "
                              f"{err.strerror} (loading programs needs root)") from None
    try:
        # bpftool reaches the private mount through our fd, inherited: /proc/self/fd/N.
        pins = f"/proc/self/fd/{mnt}/graft"
        cmd = ["bpftool", "prog", "loadall", path, pins]
        if prog_type:
            cmd += ["type", TYPE_WORDS.get(prog_type, prog_type)]
        _run_bpftool(cmd + reuse, mnt, path)
        try:
            return bpf.obj_get(f"{pins}/{want}")
        except KernelError as err:
            raise BpfSessionError(f"bpftool loaded {path} but pinned no program {want}: "
                                  f"{err.strerror}") from None
    finally:
        os.close(mnt)


def _run_bpftool(cmd: list[str], mnt: int, path: str) -> None:
    try:
        res = subprocess.run(cmd, pass_fds=(mnt,), stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, errors="replace")
    except FileNotFoundError:
        raise BpfSessionError("graft obj loads with bpftool, which is not installed "
                              "(apt install bpftool)") from None
    if res.returncode != 0:
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if ln.startswith("Error:")),
                   lines[-1] if lines else f"exit status {res.returncode}")
        why = why.removeprefix("Error: ")
        raise BpfSessionError(f"bpftool could not load {path}: {why} (`bpftool prog loadall "
                              f"{path} /sys/fs/bpf/x` shows the verifier's log)")


def run(m: OpenMap, spec: list[str], req: Request, environ) -> dict | None:
    """Do what `req` asks on map `m` (named by `spec`); what was grafted, None for delete."""
    check_slot(m, req.key)
    if req.kind == "delete":
        if not delete(m, req.key):
            raise BpfSessionError(f"slot {req.key} of {m.label} is empty: nothing deleted",
                                  status=254)
        return None
    if req.kind == "obj":
        fd = load(req.arg, req.sec, req.type, neighbour_maps(m, spec, environ))
    else:
        fd = open_prog(req.kind, req.arg)
    try:
        graft(m, req.key, fd)
        info = bpf.prog_info(fd)
    finally:
        os.close(fd)
    return {"map_id": m.info.id, "key": req.key, "prog_id": info.id, "name": info.name,
            "type": info.type_name, "tag": info.tag}
