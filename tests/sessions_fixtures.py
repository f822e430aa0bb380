"""Fixtures for the live-session tests; load with `pytest_plugins = ["tests.sessions_fixtures"]`.

`sessions` is a tests.sessions_helpers.Sessions factory over a private registry directory;
its teardown ends every session and checks that the registry holds no leftovers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from bpfsession.kernel import bpf
from tests.helpers import uniq
from tests.sessions_helpers import Sessions


@pytest.fixture
def sess_run_dir():
    d = tempfile.mkdtemp(prefix="bsrun", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def sess_tmp():
    """A short, world-writable directory for socket files (receivers of other uids too)."""
    d = tempfile.mkdtemp(prefix="bss", dir="/tmp")
    os.chmod(d, 0o1777)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def sessions(sess_tmp, sess_run_dir):
    s = Sessions(sess_tmp, sess_run_dir)
    yield s
    s.close()
    # Every supervisor removed its entry and control socket on the way out.
    assert os.listdir(sess_run_dir) == [], f"registry leftovers: {os.listdir(sess_run_dir)}"


@pytest.fixture
def two_maps(make_map) -> list[int]:
    return [make_map("hash", 4, 8, 16, uniq("h")), make_map("array", 4, 8, 4, uniq("a"))]


@pytest.fixture
def counter_fds(tc_counter):
    """Fds of the counter program's two maps (proto_stats, total_pkts), closed afterwards."""
    fds = [bpf.map_get_fd_by_id(tc_counter.map_ids[n]) for n in ("proto_stats", "total_pkts")]
    yield fds
    for fd in fds:
        os.close(fd)


