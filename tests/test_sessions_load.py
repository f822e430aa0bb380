"""Load: 50 `bpfsession new` sessions at once and 20 parallel attaches to each.

Bounded to stay well under a minute on 2 shared cores: the 1,000 attaches run attach's
own client (fetch_maps over each supervisor's control socket) from 20 threads at once on
one session, and 50 real `bpfsession attach ... run sh` agents (one per session, 20 at a
time) check what a spawned command sees. Every attach must get exactly its session's
maps; afterwards the supervisors hold the fds they held before, we hold none, and the
registry is empty (asserted by the `sessions` fixture's teardown).
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

from bpfsession import attach, discover, wire
from bpfsession.kernel import bpf
from tests.helpers import (
    BPFSESSION,
    ROOT,
    map_ids_of,
    open_fds,
    uniq,
    wait_for,
    wait_for_socket,
)

pytest_plugins = ["tests.sessions_fixtures"]

SESSIONS = 50
ATTACHES = 20
# The agent prints its session id, the kernel ids behind fds 3 and 4, then its open fds.
# (No pipelines: while setting one up the shell itself holds the pipe's fds.)
AGENT = ('echo "$BPFSESSION_ID"; grep -h ^map_id: /proc/$$/fdinfo/3 /proc/$$/fdinfo/4; '
         'ls /proc/$$/fd')


def test_50_sessions_20_parallel_attaches_each(sessions, make_map):
    procs, uds_of = [], {}
    for _ in range(SESSIONS):  # start all launchers first: they come up in parallel
        uds = str(sessions.tmp / uniq("u"))
        p = subprocess.Popen([*BPFSESSION, "new", "imp", uds, "run", "sleep", "300"],
                             env=sessions.env, cwd=ROOT, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
        procs.append(p)
        uds_of[p.pid] = uds
    expected: dict[str, list[int]] = {}  # session id -> kernel map ids (BPF_MAP0, BPF_MAP1)
    started = []
    for p in procs:
        fds = [make_map("hash", 4, 8, 8), make_map("array", 4, 8, 2)]
        wait_for_socket(uds_of[p.pid], timeout=30)
        wire.send_maps(uds_of[p.pid], "load", [(wire.MapEntry(id=i), fd)
                                               for i, fd in enumerate(fds)])
        s = sessions.adopt(p, uds_of[p.pid], fds)
        started.append(s)
        expected[s.id] = s.map_ids
    for s in started:
        wait_for(lambda s=s: set(map_ids_of(s.root).values()) == set(s.map_ids),
                 what="every session's command to hold its maps")
    sup_fds = {s.supervisor: sorted(os.listdir(f"/proc/{s.supervisor}/fd")) for s in started}

    by_id = {x.id: x for x in discover.scan(run_dir=sessions.run_dir) if x.id in expected}
    assert len(by_id) == SESSIONS
    before = open_fds()

    def fetch(sid: str) -> tuple[str, list[int], list[int]]:
        _, pairs = attach.fetch_maps(by_id[sid])
        try:
            return sid, [e.id for e, _ in pairs], [bpf.map_info(fd).id for _, fd in pairs]
        finally:
            for _, fd in pairs:
                os.close(fd)

    jobs = [sid for sid in expected for _ in range(ATTACHES)]  # 20 in a row per session
    with ThreadPoolExecutor(ATTACHES) as pool:
        fetched = list(pool.map(fetch, jobs))
    assert len(fetched) == SESSIONS * ATTACHES
    for sid, entry_ids, ids in fetched:
        assert entry_ids == [0, 1] and ids == expected[sid]
    assert open_fds() == before

    def agent(sid: str) -> tuple[str, subprocess.CompletedProcess]:
        return sid, sessions.cli("attach", sid, "run", "sh", "-c", AGENT, timeout=60)

    with ThreadPoolExecutor(ATTACHES) as pool:
        results = list(pool.map(agent, expected))
    for sid, res in results:
        assert res.returncode == 0, res.stderr
        seen_id, map0, map1, *fds = res.stdout.splitlines()
        assert seen_id == sid
        assert [map0, map1] == [f"map_id:\t{i}" for i in expected[sid]]
        assert sorted(int(fd) for fd in fds) == [0, 1, 2, 3, 4]
    for s in started:
        assert sorted(os.listdir(f"/proc/{s.supervisor}/fd")) == sup_fds[s.supervisor]
    # Teardown (the `sessions` fixture) ends them all and asserts an empty registry.
