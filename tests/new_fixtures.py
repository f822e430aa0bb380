"""Fixtures for the `bpfsession new` tests; load with `pytest_plugins = ["tests.new_fixtures"]`.

`run_dir` points the registry (BPFSESSION_RUN_DIR) at a private directory; `launch`
starts the real CLI as a child process and kills whatever is left of it at teardown.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from tests.helpers import BPFSESSION
from tests.new_helpers import stop


@pytest.fixture
def run_dir():
    d = tempfile.mkdtemp(prefix="bsrun", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def launch(run_dir):
    """Start `bpfsession new ARGS...` (a Popen with text pipes); reaped at teardown."""
    procs: list[subprocess.Popen] = []

    def start(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
        full_env = {**os.environ, "BPFSESSION_RUN_DIR": run_dir, **(env or {})}
        for key in [k for k, v in full_env.items() if v is None]:
            del full_env[key]
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.Popen([*BPFSESSION, "new", *args], env=full_env, text=True,
                                start_new_session=True, **kw)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        stop(proc)

