"""`bpfsession batch file` against `bpftool batch file`, and `map load` (JSON Lines,
BPF_MAP_UPDATE_BATCH), on real maps."""

from __future__ import annotations

import json
import os

from bpfsession.kernel import bpf
from tests.helpers import BPFSESSION, bpfsession, run, uniq

pytest_plugins = ["tests.map_fixtures", "tests.new_fixtures"]


def batch_file(tmp_path, text: str) -> str:
    path = tmp_path / uniq("batch")
    path.write_text(text)
    return str(path)


def test_batch_prints_what_bpftool_batch_prints(pinned_map, tmp_path):
    _, path = pinned_map("hash", 4, 8, 16)
    text = (f"# two updates, one across two lines\n"
            f"map update pinned {path} key 1 0 0 0 value 5 0 0 0 0 0 0 0\n"
            f"map update pinned '{path}' \\\n   key 2 0 0 0 value hex 06 00 00 00 00 00 00 00\n"
            f"\n"
            f"map lookup pinned {path} key 1 0 0 0   # a comment\n"
            f"map dump pinned {path}\n"
            f"map delete pinned {path} key 2 0 0 0\n")
    f = batch_file(tmp_path, text)
    for flag in ([], ["-j"], ["-p"]):
        run(["bpftool", "map", "delete", "pinned", path, "key", "1", "0", "0", "0"], check=False)
        theirs = run(["bpftool", *flag, "batch", "file", f])
        run(["bpftool", "map", "delete", "pinned", path, "key", "1", "0", "0", "0"], check=False)
        ours = bpfsession("batch", "file", f, *flag)
        assert (ours.returncode, ours.stderr) == (0, "")
        assert ours.stdout == theirs.stdout, flag
    assert bpfsession("batch", "file", f).stdout.endswith("processed 5 commands\n")


def test_batch_stops_at_the_first_error_and_names_its_line(pinned_map, tmp_path):
    _, path = pinned_map("hash", 4, 8, 16)
    f = batch_file(tmp_path, f"map update pinned {path} key 1 0 0 0 value 1 0 0 0 0 0 0 0\n"
                             f"# nothing\n"
                             f"map update pinned {path} key 2 0 0 0 value 300\n"
                             f"map update pinned {path} key 3 0 0 0 value 1 0 0 0 0 0 0 0\n")
    res = bpfsession("batch", "file", f)
    assert res.returncode == 1 and "processed" not in res.stdout
    assert res.stderr.startswith("bpfsession: line 3: value") and res.stderr.count("\n") == 1
    value = bytearray(8)
    fd = bpf.obj_get(path)
    try:
        assert bpf.map_lookup_elem(fd, (1).to_bytes(4, "little"), value)
        assert not bpf.map_lookup_elem(fd, (3).to_bytes(4, "little"), value)
    finally:
        os.close(fd)
    res = bpfsession("batch", "file", f, "-j")
    doc = json.loads(res.stdout)
    assert [d["output"] for d in doc][0] is None
    assert doc[1]["command"][:2] == ["map", "update"]
    assert doc[1]["output"]["error"].startswith("line 3: value")
    # a lookup that finds nothing stops the batch with bpftool's status
    f = batch_file(tmp_path, f"map lookup pinned {path} key 9 0 0 0\nmap show pinned {path}\n")
    res = bpfsession("batch", "file", f)
    theirs = run(["bpftool", "batch", "file", f], check=False)
    assert res.returncode == theirs.returncode == 254 and res.stdout == theirs.stdout
    assert res.stderr == "bpfsession: line 1: map lookup found no entry: batch stopped\n"
    for text, hint in (("list\n", "line 1: 'list': a batch runs map commands"),
                       ("\n\nmap show 'x\n", "line 3: no closing quotation"),
                       ("map show \\", "line 1: the file ends after a continuation")):
        res = bpfsession("batch", "file", batch_file(tmp_path, text))
        assert res.returncode == 1 and res.stderr.startswith(f"bpfsession: {hint}"), text
    res = bpfsession("batch", "file", str(tmp_path / "missing"))
    assert res.returncode == 1 and res.stderr.startswith("bpfsession: cannot read")


def test_batch_from_stdin_inside_a_session_keeps_maps_open(launch, make_map, uds, tmp_path):
    from tests.new_helpers import finish, send

    stats = make_map("hash", 4, 8, 1024, name=uniq("bsbat"))
    f = batch_file(tmp_path, "".join(f"map update BPF_MAP0 key {i} 0 0 0 value {i} 0 0 0 0 0 0 0\n"
                                     for i in range(200)))
    script = f"{' '.join(BPFSESSION)} batch file - < {f}"
    proc = launch("imp", uds, "run", "sh", "-c", script)
    send(uds, [stats])
    status, out, err = finish(proc)
    assert (status, out, err) == (0, "processed 200 commands\n", "")
    value = bytearray(8)
    assert bpf.map_lookup_elem(stats, (199).to_bytes(4, "little"), value) and value[0] == 199


def test_load_bytes_and_typed_lines_and_a_whole_dump(typed_maps, tmp_path):
    p = typed_maps.pins
    lines = ['{"key": 7, "value": 70}',
             '{"key": ["0x08","0x00","0x00","0x00"], "value": '
             '["0x50","0x00","0x00","0x00","0x00","0x00","0x00","0x00"]}',
             "",
             '{"key": 9, "value": 90, "formatted": {"ignored": true}}']
    f = tmp_path / "entries.jsonl"
    f.write_text("\n".join(lines) + "\n")
    res = bpfsession("map", "load", "pinned", p["t_lru"], str(f))
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    got = {e["formatted"]["key"]: e["formatted"]["value"]
           for e in json.loads(run(["bpftool", "-j", "map", "dump", "pinned", p["t_lru"]]).stdout)}
    assert got == {7: 70, 8: 80, 9: 90}
    # a whole `dump -j` of a per-CPU map goes back in as it came out
    run(["bpftool", "map", "update", "pinned", p["t_pcpu_hash"], "key", "1", "0", "value",
         "1", "2", "3", "0"])
    dumped = bpfsession("map", "dump", "pinned", p["t_pcpu_hash"], "-j").stdout
    run(["bpftool", "map", "delete", "pinned", p["t_pcpu_hash"], "key", "1", "0"])
    res = bpfsession("map", "load", "pinned", p["t_pcpu_hash"], "-", input=dumped)
    assert res.returncode == 0, res.stderr
    assert bpfsession("map", "dump", "pinned", p["t_pcpu_hash"], "-j").stdout == dumped


def test_load_errors_name_the_line(typed_maps, tmp_path):
    p = typed_maps.pins
    cases = [('{"key": 1, "value": 2}\n{"key": 1}\n', "line 2: expected an object"),
             ('{"key": 1, "value": 2}\n\n{"key": 1, "value": "x"}\n', "line 3: value"),
             ('{"key": 1, "value": 2\n', "line 1: not valid JSON"),
             ("[" * 100000 + "\n", "the JSON is nested too deeply")]
    for text, hint in cases:
        res = bpfsession("map", "load", "pinned", p["t_lru"], "-", input=text)
        assert res.returncode == 1 and res.stderr.startswith(f"bpfsession: {hint}"), hint
        assert res.stderr.count("\n") == 1
    res = bpfsession("map", "load", "pinned", p["t_lpm"], "-",
                     input='{"key": {"prefixlen": 99, "addr": [1,2,3,4]}, "value": 1}\n')
    assert res.returncode == 1 and res.stderr.startswith("bpfsession: line 1: cannot update")


def test_load_ten_thousand_entries_in_batches(pinned_map):
    fd, path = pinned_map("hash", 4, 8, 10000)
    def hexes(data: bytes) -> str:
        return json.dumps([f"0x{b:02x}" for b in data])

    text = "".join(f'{{"key": {hexes(i.to_bytes(4, "little"))}, '
                   f'"value": {hexes((i * 3).to_bytes(8, "little"))}}}\n' for i in range(10000))
    res = bpfsession("map", "load", "pinned", path, "-", "-j", input=text)
    assert (res.returncode, res.stdout) == (0, "null\n"), res.stderr
    value = bytearray(8)
    assert bpf.map_lookup_elem(fd, (9999).to_bytes(4, "little"), value)
    assert int.from_bytes(value, "little") == 29997
    again = bpfsession("map", "load", "pinned", path, "-", "noexist", input=text)
    assert again.returncode == 1 and again.stderr.startswith("bpfsession: line 1: cannot update")
