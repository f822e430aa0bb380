"""`bpfsession map` from inside a `bpfsession new` session script: the shell-script use."""

from __future__ import annotations

import json
import os

from bpfsession import mapenv
from bpfsession.kernel import bpf
from tests.helpers import BPFSESSION, bpfsession, uniq
from tests.new_helpers import finish, send, wait_entry

pytest_plugins = ["tests.new_fixtures"]


def test_update_by_env_fd_and_read_back_by_name(launch, make_map, uds):
    name = uniq("bsstat")
    stats = make_map("hash", 4, 16, 16, name=name)
    total = make_map("array", 4, 8, 1)
    bs = " ".join(BPFSESSION)
    script = (
        f"{bs} map update BPF_MAP0 key 6 0 0 0 value 1 0 0 0 0 0 0 0 64 0 0 0 0 0 0 0 && "
        f"{bs} map update 1 --value-type u64 key 0 0 0 0 value 99 && "
        f"{bs} map lookup name {name} key 6 0 0 0 -j && "
        f"{bs} map lookup BPF_MAP1 key 0 0 0 0 --value-type u64 -j && "
        f"{bs} map lookup name {name} key 7 0 0 0; echo status=$?"
    )
    proc = launch("imp", uds, "run", "sh", "-c", script)
    send(uds, [stats, total])
    status, out, err = finish(proc)
    assert status == 0, err
    first, second, *rest = out.splitlines()
    assert json.loads(first) == {
        "key": ["0x06", "0x00", "0x00", "0x00"],
        "value": ["0x01"] + ["0x00"] * 7 + ["0x40"] + ["0x00"] * 7}
    assert json.loads(second)["formatted"] == {"value": 99}
    assert rest == ["key:", "07 00 00 00", "", "Not found", "status=254"]
    # the writes reached the kernel maps the launcher received
    value = bytearray(16)
    assert bpf.map_lookup_elem(stats, (6).to_bytes(4, "little"), value)
    assert value == (1).to_bytes(8, "little") + (64).to_bytes(8, "little")


def test_session_spec_from_outside(launch, make_map, uds, run_dir):
    name, session = uniq("bsout"), uniq("bssess")
    stats = make_map("hash", 4, 8, 16, name=name)
    proc = launch("--name", session, "imp", uds, "run", "sleep", "30")
    send(uds, [stats])
    entry = wait_entry(run_dir)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BPF_")}
        env["BPFSESSION_RUN_DIR"] = run_dir
        for spec in (["session", session, name], ["session", session, "BPF_MAP0"],
                     ["session", str(entry["pid"]), "0"]):
            res = bpfsession("map", "update", *spec, "key", "1", "0", "0", "0", "value", "2",
                             "0", "0", "0", "0", "0", "0", "0", env=env)
            assert res.returncode == 0, res.stderr
        value = bytearray(8)
        assert bpf.map_lookup_elem(stats, (1).to_bytes(4, "little"), value) and value[0] == 2
        res = bpfsession("map", "dump", "session", session, "nosuchmap", env=env)
        assert res.returncode == 1
        assert res.stderr == f"bpfsession: session {session} has no map 'nosuchmap' (its " \
                             f"maps: {name})\n"
        res = bpfsession("map", "dump", "session", uniq("bsnone"), name, env=env)
        assert res.returncode == 1 and res.stderr.startswith("bpfsession: no session")
    finally:
        os.kill(entry["pid"], 15)
    assert finish(proc)[0] == 143


def test_map_forms_by_variable_name_and_fd(launch, make_map, uds):
    """Every MAP form a script can copy from the docs: the variable's name, `fd N` with a
    variable's value, and the entry id; each in every map verb."""
    name = uniq("bsvar")
    stats = make_map("hash", 4, 8, 16, name=name)
    other = make_map("array", 4, 8, 1, name=uniq("bsoth"))
    var = f"BPF_MAP_{name.upper()}"
    ovar = mapenv.name_var(bpf.map_info(other).name)
    bs = " ".join(BPFSESSION)
    pin = f"/sys/fs/bpf/{uniq('bspin')}"
    script = (
        f"{bs} map update {var} key 1 0 0 0 value 5 0 0 0 0 0 0 0 && "
        f"{bs} map update fd \"${var}\" key 2 0 0 0 value 6 0 0 0 0 0 0 0 && "
        f"{bs} map lookup {var} key 1 0 0 0 -j && "
        f"{bs} map lookup fd \"${var}\" key 2 0 0 0 -j && "
        f"{bs} map dump {var} -j && "
        f"{bs} map dump fd \"$BPF_MAP7\" -j && "
        f"{bs} map show {var} -j && "
        f"{bs} map show fd \"${var}\" -j && "
        f"{bs} map delete {var} key 1 0 0 0 && "
        f"{bs} map delete fd \"${var}\" key 2 0 0 0 && "
        f"{bs} map pin fd \"${var}\" {pin} && "
        f"{bs} map dump {var}; echo status=$?; "
        # a bare number is an entry id; the error points to `fd N`
        f"{bs} map dump \"${var}\"; echo status=$?; "
        f"{bs} map dump BPF_MAP_NOSUCH; echo status=$?; "
        f"{bs} map dump fd 0; echo status=$?; "
        f"{bs} map dump fd 99; echo status=$?; "
        f"{bs} map dump fd x; echo status=$?"
    )
    proc = launch("imp", uds, "run", "sh", "-c", script)
    send(uds, [stats, other], ids=[7, 8])
    try:
        status, out, err = finish(proc)
        assert status == 0, err
        lines = out.splitlines()
        assert json.loads(lines[0])["value"] == ["0x05"] + ["0x00"] * 7
        assert json.loads(lines[1])["value"] == ["0x06"] + ["0x00"] * 7
        assert sorted(e["key"][0] for e in json.loads(lines[2])) == ["0x01", "0x02"]
        assert json.loads(lines[3]) == json.loads(lines[2])  # fd of the first map is 3
        shown = [json.loads(x) for x in lines[4:6]]
        assert shown[0] == shown[1] and shown[0]["name"] == name
        assert lines[6:] == ["Found 0 elements", "status=0", "status=1", "status=1",
                             "status=1", "status=1", "status=1"]
        errors = err.splitlines()
        assert errors == [
            "bpfsession: BPF_MAP3 is not set in this session (maps: BPF_MAP7 BPF_MAP8 "
            f"{ovar} {var}); 3 is the fd of a map variable: write `fd 3` or the variable's name",
            "bpfsession: BPF_MAP_NOSUCH is not set in this session (maps: BPF_MAP7 BPF_MAP8 "
            f"{ovar} {var})",
            "bpfsession: fd 0 is not a BPF map",
            "bpfsession: fd 99: this process has no fd 99 (not inherited, or closed)",
            "bpfsession: fd must be a number, not 'x'"]
        info = bpf.map_info(bpf.obj_get(pin))
        assert info.name == name
    finally:
        if os.path.exists(pin):
            os.unlink(pin)
