"""The map variables of the environment contract: written and parsed by one module."""

from __future__ import annotations

from bpfsession import mapenv


def test_build_and_read_back():
    env = mapenv.build([(0, 3, "proto_stats"), (7, 4, "total.pkts"), (2, 5, "dup"),
                        (3, 6, "dup"), (4, 7, "")])
    assert env == {"BPF_NUM_MAPS": "5", "BPF_MAP0": "3", "BPF_MAP7": "4", "BPF_MAP2": "5",
                   "BPF_MAP3": "6", "BPF_MAP4": "7", "BPF_MAP_PROTO_STATS": "3",
                   "BPF_MAP_TOTAL_PKTS": "4"}
    assert mapenv.entry_fds(env) == {0: 3, 7: 4, 2: 5, 3: 6, 4: 7}
    assert mapenv.names_by_fd(env)[3] == ["BPF_MAP0", "BPF_MAP_PROTO_STATS"]


def test_names_that_are_not_entry_variables():
    assert mapenv.entry_id("BPF_MAP12") == 12
    for var in ("BPF_MAP_12", "BPF_MAP", "BPF_NUM_MAPS", "BPF_MAPx", "BPF_MAP١"):
        assert mapenv.entry_id(var) is None
    assert mapenv.entry_fds({"BPF_MAP0": "x", "BPF_MAP1": "-1", "BPF_MAP2": "9"}) == {2: 9}
    assert mapenv.name_var("ünï-x") == "BPF_MAP__N__X"
