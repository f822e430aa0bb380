"""Fd ownership: every fd bpfsession holds belongs to exactly one FdSet (or is closed)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator


class FdSet:
    """An ordered set of owned fds, closed together unless released.

    Use as a context manager around anything that may fail half-way: on an exception
    every fd taken so far is closed; `release()` hands them on.
    """

    def __init__(self, fds: Iterable[int] = ()):
        self._fds: list[int] = list(fds)

    def add(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def extend(self, fds: Iterable[int]) -> None:
        self._fds.extend(fds)

    def release(self) -> list[int]:
        fds, self._fds = self._fds, []
        return fds

    def close(self) -> None:
        for fd in self.release():
            try:
                os.close(fd)
            except OSError:
                pass

    def __iter__(self) -> Iterator[int]:
        return iter(self._fds)

    def __len__(self) -> int:
        return len(self._fds)

    def __enter__(self) -> FdSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.close()
