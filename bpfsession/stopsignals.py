"""Streams (`debug`, `map events`) end on SIGINT, SIGTERM or SIGHUP, cleaning up on the way.

Within `stop_on_signals()`, each of those signals raises Stop where the stream is (in a
blocking read or poll, which Python retries otherwise); the stream's `finally` blocks
remove what it set up (a trace instance, perf buffers), and the command exits 0: Ctrl-C
is how a user ends a stream, not a failure.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stop(Exception):
    """One of SIGNALS arrived."""


def _raise(signum, frame):
    raise Stop(signum)


@contextmanager
def stop_on_signals():
    """Raise Stop on SIGNALS inside the block, swallow it at its end, restore handlers."""
    old = {s: signal.signal(s, _raise) for s in SIGNALS}
    try:
        yield
    except Stop:
        pass
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
