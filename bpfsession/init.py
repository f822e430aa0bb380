"""What an init does for the session: turn signals into events, forward them, reap, finish.

Used by the supervisor in every mode; the `--init` / PID-1 extras are end_lingering()
(descendants still running when the session's root exits are sent SIGTERM, then SIGKILL
after a grace period, and reaped) and reaping orphans, which a subreaper (prctl
PR_SET_CHILD_SUBREAPER, set by the supervisor) or PID 1 inherits.

PID 1 of a pid namespace ignores every signal it has no handler for (SIGTERM included,
see pid_namespaces(7)), so the forwarded signals get handlers here in all modes.
"""

from __future__ import annotations

import os
import signal
import time

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH)
DEFAULT_GRACE = 3.0  # seconds lingering descendants get between SIGTERM and SIGKILL


def _ignore(signum, frame) -> None:
    """The work happens on the wakeup pipe; a Python handler must exist for it to fire."""


class SignalPipe:
    """Signals as bytes on a non-blocking pipe (signal.set_wakeup_fd), for a select loop.

    Each delivered signal writes its number as one byte; read() returns them in order.
    """

    def __init__(self, signums=(*FORWARDED, signal.SIGCHLD)):
        self.rfd, self.wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old_wakeup = signal.set_wakeup_fd(self.wfd, warn_on_full_buffer=False)
        self._old = {s: signal.signal(s, _ignore) for s in signums}

    def fileno(self) -> int:
        return self.rfd

    def read(self) -> list[int]:
        signums: list[int] = []
        while True:
            try:
                data = os.read(self.rfd, 512)
            except BlockingIOError:
                return signums
            if not data:
                return signums
            signums.extend(data)

    def close(self) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        signal.set_wakeup_fd(self._old_wakeup)
        os.close(self.rfd)
        os.close(self.wfd)


def reset_signals_for_exec() -> None:
    """In a child about to exec: no wakeup fd, default dispositions, nothing blocked.

    exec resets caught signals by itself, but not ignored ones: Python ignores SIGPIPE
    and SIGXFSZ at start-up, and a command must not inherit that (tini's tests check the
    child's signal state in /proc/self/status).
    """
    signal.set_wakeup_fd(-1)
    for signum in (*FORWARDED, signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ,
                   signal.SIGTTOU, signal.SIGTTIN, signal.SIGTSTP):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def forward(signum: int, child: int) -> None:
    """Send `signum` to the child's process group when it leads one, else to the child."""
    try:
        if os.getpgid(child) == child:
            os.killpg(child, signum)
        else:
            os.kill(child, signum)
    except ProcessLookupError:
        pass  # already gone: its exit status is on its way


def reap(child: int) -> tuple[int | None, bool]:
    """Reap every exited child without blocking.

    Returns (the wait status of `child` if it exited, whether `child` just stopped).
    Orphans re-parented to us (PID 1 or a subreaper) are reaped and forgotten.
    """
    status, stopped = None, False
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG | os.WUNTRACED)
        except ChildProcessError:
            break
        if pid == 0:
            break
        if pid == child:
            if os.WIFSTOPPED(st):
                stopped = True
            else:
                status = st
    return status, stopped


def exit_code(wait_status: int) -> int:
    """The shell's convention: the exit code, or 128+N for death by signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def descendants(root: int, proc: str = "/proc") -> list[int]:
    """Pids of every live descendant of `root`, from the ppid in /proc/*/stat."""
    from bpfsession.kernel import proc as procfs

    children: dict[int, list[int]] = {}
    for entry in procfs.pids(proc):
        st = procfs.stat(entry, proc)
        if st is not None:
            children.setdefault(st.ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for pid in children.get(todo.pop(), ()):
            found.append(pid)
            todo.append(pid)
    return found


def _own_proc() -> bool:
    """Whether /proc belongs to our pid namespace (else its pids are not ours to signal)."""
    try:
        return int(os.readlink("/proc/self")) == os.getpid()
    except (OSError, ValueError):
        return False


def _signal_lingering(signum: int) -> bool:
    """Signal what is left of the session; False when nothing is left."""
    if os.getpid() == 1:
        # PID 1 of a pid namespace: kill(-1) reaches every other process in it.
        try:
            os.kill(-1, signum)
        except ProcessLookupError:
            return False
        return True
    if not _own_proc():
        return False
    pids = descendants(os.getpid())
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    return bool(pids)


def _reap_until_none(deadline: float) -> bool:
    """Reap until no children are left (True) or the deadline passes (False)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True  # every descendant chains up to a child of ours: none is left
        if pid:
            continue
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def end_lingering(grace: float) -> None:
    """After the session's root exited: SIGTERM what lingers, SIGKILL it after `grace` s."""
    if not _signal_lingering(signal.SIGTERM):
        _reap_until_none(time.monotonic())
        return
    _signal_lingering(signal.SIGCONT)  # a stopped process would never see its SIGTERM
    if _reap_until_none(time.monotonic() + grace):
        return
    for _ in range(100):  # bounded: a fork bomb must not keep us here forever
        if not _signal_lingering(signal.SIGKILL):
            break
        if _reap_until_none(time.monotonic() + 0.5):
            break
