"""`list` for people and scripts: -j compact, -p pretty, the terminal's width, --no-headers,
and the filters `netns NS` and `name PATTERN` (a shell glob), on real sessions."""

from __future__ import annotations

import json
import subprocess

import pytest

from bpfsession.cli import table
from tests.helpers import BPFSESSION, uniq

pytest_plugins = ["tests.sessions_fixtures"]


# ---- the table, pure ----------------------------------------------------------------------


def test_fit_cuts_the_widest_cuttable_column_first():
    rows = [("ID", "NAME", "STARTED"), ("1", "n" * 50, "2026-11-29 08:00:00")]
    text = table.render(rows, width=40, cuttable=frozenset({1}))
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 40
    assert lines[1].endswith("2026-11-29 08:00:00")
    assert "…" in lines[1] and lines[1].split()[1].startswith("nnnn")


def test_no_width_no_cut_and_headers_can_go():
    rows = [("A", "B"), ("x" * 300, "y")]
    assert table.render(rows) == "A" + " " * 301 + "B\n" + "x" * 300 + "  y\n"
    assert table.render(rows, headers=False) == "x" * 300 + "  y\n"


def test_cells_are_escaped():
    assert table.render([("A",), ("a\x1b[2Jb\nc",)]) == "A\na\\x1b[2Jb\\x0ac\n"


def test_a_terminal_too_narrow_for_the_fixed_columns_wraps_rather_than_loops():
    rows = [("ID", "NAME"), ("1" * 30, "n" * 30)]
    widths = table.fit(rows, 10, cuttable=frozenset({1}))
    assert widths == [30, table.MIN_WIDTH]


@pytest.mark.parametrize("words, want", [
    ([], {}), (["name", "a*"], {"name": "a*"}),
    (["netns", "blue", "name", "x"], {"netns": "blue", "name": "x"}),
])
def test_parse_filters(words, want):
    assert table.parse_filters(words) == want


@pytest.mark.parametrize("words", [["x"], ["name"], ["name", "a", "name", "b"]])
def test_bad_filters_say_what_to_do(words):
    with pytest.raises(table.BpfSessionError, match="list|twice"):
        table.parse_filters(words)


# ---- on real sessions ---------------------------------------------------------------------


@pytest.fixture
def three(sessions, two_maps, netns):
    prefix = uniq("lst")
    long_name = prefix + "-long-" + "x" * 120
    made = [sessions.new(two_maps[:1], name=f"{prefix}-a"),
            sessions.new(two_maps[1:], name=long_name, obj="o" * 60),
            sessions.new(two_maps, name=f"{prefix}-b", netns=netns)]
    return prefix, long_name, made


def test_json_is_compact_and_pretty_is_indented(sessions, three):
    compact = sessions.cli("-j", "list")
    assert compact.returncode == 0, compact.stderr
    assert compact.stdout.count("\n") == 1 and '", "' not in compact.stdout
    pretty = sessions.cli("list", "-p")
    assert pretty.stdout.count("\n") > 10 and pretty.stdout.startswith("[\n")
    # The machine's other sessions may come and go between the two: compare this test's.
    prefix, long_name, _ = three
    names = {s["name"] for s in json.loads(compact.stdout) if s["name"].startswith(prefix)}
    assert {s["name"] for s in json.loads(pretty.stdout)
            if s["name"].startswith(prefix)} == names
    assert names == {f"{prefix}-a", long_name, f"{prefix}-b"}  # the long name whole


def test_list_fits_the_terminal(sessions, three):
    prefix, long_name, made = three
    res = subprocess.run([*BPFSESSION, "list"], env={**sessions.env, "COLUMNS": "80"},
                         capture_output=True, text=True, timeout=30)
    lines = res.stdout.splitlines()
    assert lines[0].split()[:2] == ["ID", "NAME"]
    assert max(len(line) for line in lines) <= 80, res.stdout
    pids = {str(s.root) for s in made}
    mine = [line for line in lines if pids & set(line.split())]
    assert len(mine) == 3 and any("…" in line for line in mine)
    # Not a terminal, no $COLUMNS: nothing cut.
    env = {k: v for k, v in sessions.env.items() if k != "COLUMNS"}
    wide = subprocess.run([*BPFSESSION, "list"], env=env, capture_output=True, text=True,
                          timeout=30).stdout
    assert long_name in wide and "o" * 60 in wide


def test_no_headers(sessions, three):
    res = sessions.cli("list", "--no-headers", "name", f"{three[0]}-?")
    assert res.returncode == 0, res.stderr
    assert sorted(line.split()[1] for line in res.stdout.splitlines()) == \
        [f"{three[0]}-a", f"{three[0]}-b"]


def test_filters_by_name_glob_and_netns(sessions, three, netns):
    prefix = three[0]
    got = {s["name"] for s in json.loads(sessions.cli("list", "-j", "name", f"{prefix}-*")
                                         .stdout)}
    assert got == {f"{prefix}-a", f"{prefix}-b", three[1]}
    in_ns = json.loads(sessions.cli("list", "netns", netns, "-j").stdout)
    assert [s["name"] for s in in_ns] == [f"{prefix}-b"]
    host = {s["name"] for s in json.loads(sessions.cli("list", "netns", "-", "-j").stdout)}
    assert f"{prefix}-a" in host and f"{prefix}-b" not in host
    none = sessions.cli("list", "name", "no-such-*")
    assert (none.returncode, none.stdout, none.stderr) == (0, "", "no session matches\n")
    quiet = sessions.cli("-q", "list", "name", "no-such-*")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")


def test_watch_takes_a_filter_after_it(sessions, three):
    proc = subprocess.Popen([*BPFSESSION, "list", "--watch", "name", f"{three[0]}-a",
                             "-j"], env=sessions.env, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert [s["name"] for s in json.loads(line)] == [f"{three[0]}-a"]

