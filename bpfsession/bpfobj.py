"""What a BPF ELF object (clang -target bpf) holds: its programs by section, its maps by name.

`graft obj FILE sec NAME` picks one program of the object and must hand the loader the
session's maps for every map the object declares; bpftool loads by object, not by
section, and refuses a `map name NAME` the object does not have. So we read the object's
symbol table ourselves (the ELF64 layout of include/uapi/linux/elf.h): a program is a
global function in an executable section other than .text (libbpf's rule: .text holds
subprograms); a map is a global object in `.maps` (BTF-defined) or `maps` (legacy).
"""

from __future__ import annotations

import struct

from bpfsession.errors import BpfSessionError

SHT_SYMTAB = 2
SHF_EXECINSTR = 0x4
STT_OBJECT = 1
STT_FUNC = 2
STB_GLOBAL = 1
MAP_SECTIONS = (".maps", "maps")


class BpfObject:
    """programs: (section, function name) in file order; maps: the declared map names."""

    __slots__ = ("path", "programs", "maps")

    def __init__(self, path: str, programs: list[tuple[str, str]], maps: list[str]):
        self.path, self.programs, self.maps = path, programs, maps

    def pick(self, sec: str | None) -> str:
        """The function name of the program `sec` names: a section name, else a program
        name; with no `sec`, the object's only program."""
        listed = ", ".join(f"{name} (sec {section})" for section, name in self.programs)
        if sec is None:
            if len(self.programs) == 1:
                return self.programs[0][1]
            raise BpfSessionError(f"{self.path} has {len(self.programs)} programs ({listed}): "
                                  "pick one with sec NAME")
        in_sec = [name for section, name in self.programs if section == sec]
        if len(in_sec) == 1:
            return in_sec[0]
        if len(in_sec) > 1:
            raise BpfSessionError(f"section {sec} of {self.path} has {len(in_sec)} programs "
                                  f"({', '.join(in_sec)}): give one's name as sec NAME")
        if any(name == sec for _, name in self.programs):
            return sec
        raise BpfSessionError(f"{self.path} has no section or program {sec!r} "
                              f"(its programs: {listed or 'none'})")


def read(path: str) -> BpfObject:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise BpfSessionError(f"cannot read {path}: {err.strerror}") from None
    try:
        return _parse(path, data)
    except (struct.error, IndexError, UnicodeDecodeError):
        raise BpfSessionError(f"{path} is not a valid ELF object (built with "
                              "clang -target bpf -c?)") from None


def _parse(path: str, data: bytes) -> BpfObject:
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise BpfSessionError(f"{path} is not a 64-bit ELF object: build it with "
                              "clang -O2 -g -target bpf -c")
    end = "<" if data[5] == 1 else ">"
    shoff, = struct.unpack_from(end + "Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)
    sections = [struct.unpack_from(end + "IIQQQQIIQQ", data, shoff + i * shentsize)
                for i in range(shnum)]
    # (sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, ...)
    shstr = sections[shstrndx]

    def name_at(table, off: int) -> str:
        start = table[4] + off
        return data[start:data.index(b"\0", start)].decode()

    names = [name_at(shstr, s[0]) for s in sections]
    programs: list[tuple[str, str]] = []
    maps: list[str] = []
    for sec in sections:
        if sec[1] != SHT_SYMTAB:
            continue
        strtab = sections[sec[6]]
        for off in range(sec[4], sec[4] + sec[5], 24):
            st_name, st_info, _, shndx = struct.unpack_from(end + "IBBH", data, off)
            if st_info >> 4 != STB_GLOBAL or not 0 < shndx < len(sections):
                continue
            kind, where = st_info & 0xF, names[shndx]
            if (kind == STT_FUNC and sections[shndx][2] & SHF_EXECINSTR
                    and where != ".text"):
                programs.append((where, name_at(strtab, st_name)))
            elif kind == STT_OBJECT and where in MAP_SECTIONS:
                maps.append(name_at(strtab, st_name))
    return BpfObject(path, programs, maps)
