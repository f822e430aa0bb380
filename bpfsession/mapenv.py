"""The environment contract of a session's maps, written and read in one place.

`tc exec bpf import` names each map fd `BPF_MAP<id>` (id: the sender's entry id) and
counts them in `BPF_NUM_MAPS`; bpfsession adds `BPF_MAP_<NAME>` (the kernel map name,
upper-cased, anything but A-Z 0-9 _ turned into `_`), left out where two maps would
share a name. Values are fd numbers in the process that holds the environment.
"""

from __future__ import annotations

NUM = "BPF_NUM_MAPS"
PREFIX = "BPF_MAP"


def entry_var(entry_id: int) -> str:
    """BPF_MAP<id>."""
    return f"{PREFIX}{entry_id}"


def entry_id(var: str) -> int | None:
    """The id of a `BPF_MAP<id>` name; None for any other name."""
    tail = var[len(PREFIX):] if var.startswith(PREFIX) else ""
    return int(tail) if tail.isdigit() and tail.isascii() else None


def name_key(map_name: str) -> str:
    """BPF_MAP_<NAME>'s NAME for a kernel map name."""
    return "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_"
                   for c in map_name.upper())


def name_var(map_name: str) -> str:
    """BPF_MAP_<NAME>."""
    return f"{PREFIX}_{name_key(map_name)}"


def is_map_var(var: str) -> bool:
    """BPF_MAP<id> or BPF_MAP_<NAME> (not BPF_NUM_MAPS)."""
    return var.startswith(PREFIX)


def fd_of(value: str) -> int | None:
    """A variable's value as an fd number; None when it is not one."""
    return int(value) if value.isdigit() and value.isascii() else None


def entry_fds(env) -> dict[int, int]:
    """entry id -> fd, from the BPF_MAP<id> variables whose value is an fd number."""
    out = {}
    for var, value in env.items():
        n = entry_id(var)
        fd = fd_of(value) if n is not None else None
        if fd is not None:
            out[n] = fd
    return out


def names_by_fd(env) -> dict[int, list[str]]:
    """fd -> the BPF_MAP<id> / BPF_MAP_<NAME> variables that hold it, numbered ones first."""
    names: dict[int, list[str]] = {}
    for var, value in env.items():
        fd = fd_of(value) if is_map_var(var) else None
        if fd is not None:
            names.setdefault(fd, []).append(var)
    for keys in names.values():
        keys.sort(key=lambda k: (entry_id(k) is None, len(k), k))
    return names


def build(maps) -> dict[str, str]:
    """The variables for `maps`: (entry id, fd, kernel map name) in the order handed over."""
    maps = list(maps)
    env = {NUM: str(len(maps))}
    by_key: dict[str, list[int]] = {}
    for n, fd, name in maps:
        env[entry_var(n)] = str(fd)
        if name:
            by_key.setdefault(name_key(name), []).append(fd)
    for key, fds in by_key.items():
        if len(fds) == 1:  # two maps with one name would make BPF_MAP_<NAME> ambiguous
            env[f"{PREFIX}_{key}"] = str(fds[0])
    return env
