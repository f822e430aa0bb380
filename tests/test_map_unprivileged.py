"""Typed output without CAP_SYS_ADMIN: the supervisor keeps the maps' BTF for the session
(bpfsession.btfcache), so an agent with no capabilities, or under a uid `--allow-uid`
admits, prints the same typed `dump -j` as root; with no way to the types, one warning."""

from __future__ import annotations

import json
import os
import shlex

from tests.helpers import BPFSESSION, bpfsession, run
from tests.new_helpers import finish, send
from tests.sessions_helpers import NOBODY, as_user

pytest_plugins = ["tests.map_fixtures", "tests.new_fixtures"]


def _fill(typed_maps) -> str:
    path = typed_maps.pins["t_lru"]
    run(["bpftool", "map", "update", "pinned", path, "key", "3", "0", "0", "0", "value",
         "9", "0", "0", "0", "0", "0", "0", "0"])
    return path


def _session(launch, uds, run_dir, typed_maps, *options, agent: str):
    from bpfsession.kernel import bpf

    os.chmod(run_dir, 0o755)  # other uids must reach the session's files, as in /run
    fd = bpf.obj_get(typed_maps.pins["t_lru"])
    try:
        proc = launch(*options, "imp", uds, "run", "sh", "-c", agent)
        send(uds, [fd])
        return finish(proc)
    finally:
        os.close(fd)


def test_agent_without_capabilities_prints_root_typed_dump(typed_maps, launch, uds, run_dir):
    path = _fill(typed_maps)
    as_root = bpfsession("map", "dump", "pinned", path, "-j").stdout
    assert json.loads(as_root)[0]["formatted"] == {"key": 3, "value": 9}
    agent = f"{shlex.join(BPFSESSION)} map dump BPF_MAP0 -j"
    status, out, err = _session(launch, uds, run_dir, typed_maps, "--keep-caps", "",
                                "--no-new-privs", agent=agent)
    assert (status, err) == (0, "") and out == as_root
    assert not [n for n in os.listdir(run_dir) if n.endswith(".btf")]  # removed at the end


def test_allowed_uid_reads_the_cache_others_get_one_warning(typed_maps, launch, uds, run_dir):
    path = _fill(typed_maps)
    as_root = bpfsession("map", "dump", "pinned", path, "-j").stdout
    # the map fd is inherited across setpriv; PYTHONDONTWRITEBYTECODE: the checkout's
    # __pycache__ is root's
    agent = (f"PYTHONDONTWRITEBYTECODE=1 {shlex.join(as_user(NOBODY))} "
             f"{shlex.join(BPFSESSION)} map dump BPF_MAP0 -j")
    status, out, err = _session(launch, uds, run_dir, typed_maps, "--allow-uid", str(NOBODY),
                                agent=agent)
    assert (status, err) == (0, "") and out == as_root
    status, out, err = _session(launch, uds, run_dir, typed_maps, agent=agent)
    assert status == 0 and "formatted" not in out
    assert json.loads(out) == [{k: v for k, v in e.items() if k != "formatted"}
                               for e in json.loads(as_root)]
    assert err.startswith("bpfsession: warning: BPF_MAP0: its BTF (id ") and \
        err.count("\n") == 1 and "CAP_SYS_ADMIN" in err
