"""`bpfsession new`: receive map fds, spawn the session's command, supervise it.

The flow, and who owns what at each step:

1. receive(): bind UDS (wire.Listener), wait for one complete hand-off, close and remove
   the socket. SIGINT/SIGTERM/SIGHUP/SIGQUIT during the wait end it cleanly (Interrupted).
   The received fds belong to the Handoff's FdSet until the end of run().
2. describe(): each fd's metadata from the kernel (never the sender's claims).
3. spawn(): fork; the child (only the child) takes the terminal, enters the netns,
   drops capabilities, moves the maps to fds 3..3+n-1, closes everything else and
   execs. A failure before exec comes back over a close-on-exec pipe as an error.
   With --exec the launcher does the same to itself instead, like `tc exec`.
4. supervise(): forward signals, reap (we are a child subreaper, or PID 1), answer
   `bpfsession attach` on the control socket, exit with the command's status.
   The registry entry and control socket are removed on every way out.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import time

from bpfsession import btfcache, init, mapenv, registry, wire
from bpfsession.errors import BpfSessionError, KernelError, warn
from bpfsession.kernel import proc as procfs

TYPE_CHECKING = False  # typing's constant, without importing typing on the launch path
if TYPE_CHECKING:
    from bpfsession import control
    from bpfsession.kernel.types import MapInfo
    from bpfsession.netns import Netns

# Signals that end the wait for maps (socket removed, nothing spawned, exit 128+N).
WAIT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
# Inherited variables that would describe another session's fds (closed in the command).
_STALE_ENV = (mapenv.NUM, "BPF_OBJ", "BPFSESSION_NETNS")
_SESSION_NAME_FORBIDDEN = set("/ \t\n\r\0")
_SESSION_NAME_MAX = registry.MAX_NAME


class Config:
    """Everything `new` was asked to do (flags merged over the environment by the CLI).

    A plain class, not a dataclass: `dataclasses` (with inspect, ~7 ms,
    docs/performance.md) stays off the launch path.
    """

    def __init__(self, uds: str, command: list[str] | None = None, name: str | None = None,
                 netns: str | None = None, timeout: float | None = None,
                 allow_uids: tuple[int, ...] = (), exec_: bool = False, as_init: bool = False,
                 keep_caps: frozenset[int] | None = None, no_new_privs: bool = False,
                 grace: float = init.DEFAULT_GRACE, run_dir: str | None = None,
                 banner: bool = False, read_only: bool = False,
                 read_only_uids: tuple[int, ...] = ()):
        self.uds = uds
        self.command = command  # None: $SHELL (else /bin/sh), interactive
        self.name = name
        self.netns = netns
        self.timeout = timeout
        self.allow_uids = allow_uids
        self.exec_ = exec_
        self.as_init = as_init  # --init: reap every orphan, end lingering processes
        self.keep_caps = keep_caps
        self.no_new_privs = no_new_privs
        self.grace = grace
        self.run_dir = run_dir or registry.run_dir()
        self.banner = banner  # say on stderr what we wait for and what started (a terminal)
        self.read_only = read_only  # --read-only: hold (and hand out) read-only fds only
        self.read_only_uids = read_only_uids  # --allow-uid UID:ro (also in allow_uids)

    @property
    def argv(self) -> list[str]:
        return self.command or [os.environ.get("SHELL") or "/bin/sh"]

    @property
    def senders(self) -> set[int]:
        """Accepted sender uids: root, the invoking user, and every --allow-uid."""
        return {0, os.getuid(), *self.allow_uids}


class Interrupted(BpfSessionError):
    def __init__(self, signum: int, path: str):
        super().__init__(f"interrupted by {signal.Signals(signum).name} while waiting for "
                         f"maps on {path}; nothing was started", 128 + signum)
        self.signum = signum


# -- 1. receive -----------------------------------------------------------------------

class _WaitSignals:
    """Handlers for the wait: a signal raises Interrupted while armed, else is held.

    Held signals are raised at the next arm(), or by the caller after clean-up, so no
    signal can land half-way through creating or removing the socket file.
    """

    def __init__(self, path: str):
        self.path = path
        self.caught: int | None = None
        self.armed = False
        self._old = {s: signal.signal(s, self._handle) for s in WAIT_SIGNALS}

    def _handle(self, signum, frame) -> None:
        if self.caught is None:
            self.caught = signum
        if self.armed:
            self.armed = False
            raise Interrupted(signum, self.path)

    def arm(self) -> None:
        if self.caught is not None:
            raise Interrupted(self.caught, self.path)
        self.armed = True

    def restore(self) -> None:
        self.armed = False
        for signum, handler in self._old.items():
            signal.signal(signum, handler)


def receive(cfg: Config, on_refused=None, bound=None) -> wire.Handoff:
    """One complete hand-off on cfg.uds; the socket file is gone when this returns or raises.

    `bound()` runs once the socket is bound, before the wait (signals are held meanwhile)."""
    if on_refused is None:
        on_refused = _report_refused
    sigs = _WaitSignals(cfg.uds)
    try:
        listener = wire.Listener(cfg.uds)
        try:
            if bound is not None:
                bound()
            sigs.arm()
            handoff = wire.receive(listener, cfg.senders, cfg.timeout, on_refused)
            sigs.armed = False
        finally:
            sigs.armed = False
            listener.close()
    finally:
        sigs.restore()
    if sigs.caught is not None:
        handoff.close()
        raise Interrupted(sigs.caught, cfg.uds)
    return handoff


def _report_refused(text: str) -> None:
    sys.stderr.write(f"bpfsession: {text}\n")
    sys.stderr.flush()


# -- 2. describe ----------------------------------------------------------------------

class HeldMap:
    """A map the launcher holds for its command: the sender's entry, our fd, the
    command's fd, the kernel's info. (Discovery's view of a session's map is
    model.SessionMap.)"""

    __slots__ = ("entry", "fd", "child_fd", "info")

    def __init__(self, entry: wire.MapEntry, fd: int, child_fd: int, info: MapInfo):
        self.entry = entry
        self.fd = fd
        self.child_fd = child_fd
        self.info = info

    @property
    def env(self) -> str:
        return mapenv.entry_var(self.entry.id)

    def record(self) -> dict:
        """The registry's (and `list -j`'s) shape of a map; `sender`: what the sender's
        entry said beyond type and sizes, kept for `send --session` to pass on."""
        e = self.entry
        return {"env": self.env, "fd": self.child_fd, "id": self.info.id,
                "name": self.info.name, "type": self.info.type_name,
                "key_size": self.info.key_size, "value_size": self.info.value_size,
                "max_entries": self.info.max_entries,
                "sender": {"flags": e.flags, "pinning": e.pinning, "inner_id": e.inner_id,
                           "inner_idx": e.inner_idx}}

    def wire_entry(self) -> wire.MapEntry:
        """The entry to hand on (attach): the kernel's type and sizes, the rest (id, flags,
        pinning, inner_id, inner_idx) as the sender said it."""
        e, i = self.entry, self.info
        return wire.MapEntry(type=i.type, size_key=i.key_size, size_value=i.value_size,
                             max_elem=i.max_entries, flags=e.flags, id=e.id, pinning=e.pinning,
                             inner_id=e.inner_id, inner_idx=e.inner_idx)


FIRST_MAP_FD = 3


def describe(handoff: wire.Handoff) -> list[HeldMap]:
    from bpfsession.kernel import bpf

    maps = []
    for i, (entry, fd) in enumerate(zip(handoff.entries, handoff.fds, strict=True)):
        try:
            info = bpf.map_info(fd)
        except KernelError as err:
            raise BpfSessionError(f"cannot read map {entry.id} from the kernel: "
                                  f"{err.strerror}") from None
        maps.append(HeldMap(entry, fd, FIRST_MAP_FD + i, info))
    return maps


def session_env(base: dict[str, str], maps: list[HeldMap], obj: str, session_id: str,
                name: str, netns_arg: str | None) -> dict[str, str]:
    env = {k: v for k, v in base.items()
           if k not in _STALE_ENV and not mapenv.is_map_var(k)}
    env.update(mapenv.build((m.entry.id, m.child_fd, m.info.name) for m in maps))
    env["BPF_OBJ"] = obj
    env["BPFSESSION_ID"] = session_id
    env["BPFSESSION_NAME"] = name
    if netns_arg is not None:
        env["BPFSESSION_NETNS"] = netns_arg
    return env


def derive_name(obj: str) -> str:
    name = "".join(c if c.isascii() and (c.isalnum() or c in "_.-") else "_" for c in obj)
    return name.strip("._-") or "session"


def check_name(name: str) -> None:
    if not name or _SESSION_NAME_FORBIDDEN & set(name) or not name.isprintable():
        from bpfsession.printable import printable

        raise BpfSessionError(f"bad session name {printable(repr(name))}: use letters, "
                              "digits, '_', '.', '-'")
    if len(name.encode()) > _SESSION_NAME_MAX:
        raise BpfSessionError(f"session name too long ({len(name.encode())} bytes, at most "
                              f"{_SESSION_NAME_MAX})")


# -- 3. spawn -------------------------------------------------------------------------

class Launch:
    """What the command's process needs between fork (or --exec) and exec."""

    def __init__(self, argv: list[str], env: dict[str, str], fds: list[int],
                 netns: Netns | None = None, netns_fd: int = -1,
                 keep_caps: frozenset[int] | None = None, no_new_privs: bool = False):
        self.argv = argv
        self.env = env
        self.fds = fds  # the maps, in entry order: they become FIRST_MAP_FD...
        self.netns = netns
        self.netns_fd = netns_fd
        self.keep_caps = keep_caps
        self.no_new_privs = no_new_privs


class Terminal:
    """The controlling terminal on stdin, when we are its foreground process group."""

    def __init__(self, fd: int):
        self.fd = fd

    @classmethod
    def detect(cls) -> Terminal | None:
        try:
            if os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp():
                return cls(0)
        except OSError:
            pass
        return None

    def hand_to(self, pgid: int) -> None:
        """tcsetpgrp; from a background group it would raise SIGTTOU unless ignored."""
        old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            os.tcsetpgrp(self.fd, pgid)
        except OSError:
            pass  # the terminal is gone (hang-up): nobody to hand it to
        finally:
            signal.signal(signal.SIGTTOU, old)


def prepare(launch: Launch, terminal: Terminal | None, new_group: bool) -> None:
    """Turn the calling process into the session's root, short of fds and exec."""
    init.reset_signals_for_exec()
    if new_group:
        os.setpgid(0, 0)
        if terminal is not None:
            terminal.hand_to(os.getpid())
    if launch.netns is not None:
        from bpfsession import netns

        netns.enter(launch.netns_fd, launch.netns)
    if launch.keep_caps is not None or launch.no_new_privs:
        from bpfsession import caps

        try:
            caps.restrict(launch.keep_caps, launch.no_new_privs)
        except (OSError, ValueError) as err:
            raise BpfSessionError(f"cannot restrict the command's capabilities: {err}") from None


def arrange_fds(maps: list[int], keep: int = -1) -> int:
    """Maps at FIRST_MAP_FD.. (inheritable), 0-2 untouched, every other fd closed.

    `keep` (close-on-exec) survives, renumbered: the new number is returned.
    """
    top = FIRST_MAP_FD + len(maps)
    # Lift every source above the target range first, so no dup2 overwrites a source.
    lifted = [_fcntl_dupfd(fd, top) for fd in maps]
    if keep >= 0:
        keep = _fcntl_dupfd(keep, top)
    for i, fd in enumerate(lifted):
        os.dup2(fd, FIRST_MAP_FD + i, inheritable=True)
    if keep >= 0:
        os.closerange(top, keep)
        os.closerange(keep + 1, 1 << 30)
    else:
        os.closerange(top, 1 << 30)
    return keep


def _fcntl_dupfd(fd: int, lowest: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, lowest)


def _execvpe(file: str, argv: list[str], env: dict[str, str]) -> None:
    """os.execvpe's PATH search without its `import warnings` (os.get_exec_path), 1.5 ms
    in the child on the path of every `new`: the first error other than ENOENT/ENOTDIR
    wins, as in os._execvpe and execvp(3)."""
    if "/" in file:
        os.execve(file, argv, env)
    saved = last = None
    for directory in (env.get("PATH") or os.defpath).split(os.pathsep):
        try:
            os.execve(os.path.join(directory or ".", file), argv, env)
        except (FileNotFoundError, NotADirectoryError) as err:
            last = err
        except OSError as err:
            last = err
            saved = saved or err
    raise saved or last or FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), file)


def exec_command(launch: Launch) -> None:
    """execvpe; returns only by raising BpfSessionError (127: not found, 126: not runnable)."""
    try:
        _execvpe(launch.argv[0], launch.argv, launch.env)
    except OSError as err:
        status = 127 if err.errno == errno.ENOENT else 126
        raise BpfSessionError(f"cannot run '{launch.argv[0]}': {err.strerror}",
                              status) from None


def spawn(launch: Launch, terminal: Terminal | None) -> int:
    """Fork and exec the command in its own process group; its pid once exec succeeded."""
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        _child(launch, terminal, rfd, wfd)
    os.close(wfd)
    try:
        os.setpgid(pid, pid)  # also here: whoever runs first, the group exists
    except OSError:
        pass  # EACCES: it has exec'd already, having done it itself
    try:
        report = _read_all(rfd)
    finally:
        os.close(rfd)
    if report:
        os.waitpid(pid, 0)
        if terminal is not None:
            terminal.hand_to(os.getpgrp())
        status, _, text = report.decode(errors="replace").partition(" ")
        raise BpfSessionError(text, int(status))
    return pid


def _child(launch: Launch, terminal: Terminal | None, rfd: int, wfd: int):
    """The forked child: never returns into the launcher's code, whatever happens."""
    status = 127
    try:
        os.close(rfd)
        prepare(launch, terminal, new_group=True)
        wfd = arrange_fds(launch.fds, wfd)
        exec_command(launch)
    except BpfSessionError as err:
        status = err.status
        _write_report(wfd, f"{status} {err.hint}")
    except BaseException as err:  # a bug: the launcher shows it; we must not unwind
        status = 1
        _write_report(wfd, f"1 internal error before exec: {type(err).__name__}: {err}")
    os._exit(status)


def _write_report(fd: int, text: str) -> None:
    try:
        os.write(fd, text.encode())
    except OSError:
        pass


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


# -- 4. supervise ---------------------------------------------------------------------

def supervise(child: int, sigpipe: init.SignalPipe, server: control.Server | None,
              terminal: Terminal | None, init_mode: bool, grace: float) -> int:
    """Forward signals, reap, serve attach; the command's exit status (128+N on signal N)."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(sigpipe.fileno(), selectors.EVENT_READ, None)
    if server is not None:
        sel.register(server.fileno(), selectors.EVENT_READ, server)
    try:
        status, stopped = init.reap(child)
        while status is None:
            if stopped and terminal is not None:
                _suspend_with(child, terminal)
            for key, _ in sel.select():
                if key.data is None:
                    for signum in sigpipe.read():
                        if signum in init.FORWARDED:
                            init.forward(signum, child)
                else:
                    key.data.serve()
            status, stopped = init.reap(child)
    finally:
        sel.close()
    if init_mode:
        init.end_lingering(grace)
    return init.exit_code(status)


def run_supervised(launch: Launch, sigpipe: init.SignalPipe, server: control.Server | None,
                   as_init: bool, grace: float, started=None) -> int:
    """Spawn the command and supervise it to its end: the one launcher of `new` and
    `attach`. `sigpipe` exists already (signals are forwarded, not fatal, from then on);
    `started(pid)` runs once the command has exec'd."""
    terminal = Terminal.detect()
    try:
        child = spawn(launch, terminal)
        if started is not None:
            started(child)
        return supervise(child, sigpipe, server, terminal, as_init, grace)
    finally:
        if terminal is not None:
            terminal.hand_to(os.getpgrp())


def _suspend_with(child: int, terminal: Terminal) -> None:
    """The command stopped (Ctrl-Z): stop too so the user's shell regains the terminal;
    when resumed (fg), hand the terminal back and continue the command (as sudo does)."""
    terminal.hand_to(os.getpgrp())
    os.kill(os.getpid(), signal.SIGTSTP)
    terminal.hand_to(child)
    try:
        os.killpg(child, signal.SIGCONT)
    except ProcessLookupError:
        pass


# -- the whole of `new` ---------------------------------------------------------------

def run(cfg: Config) -> int:
    """`bpfsession new`: the command's exit status, or BpfSessionError."""
    target = None
    netns_fd = -1
    if cfg.netns:
        from bpfsession import netns

        target = netns.resolve(cfg.netns)
        netns_fd = netns.open_netns(target)
    claim = None
    session_id = registry.new_id()
    waiting = False  # whether the waiting entry was written (removed on every way out)
    try:
        if target is not None and os.geteuid() != 0:
            netns.check_enter(netns_fd, target)  # before binding: a hand-off is not lost
        if cfg.name:
            check_name(cfg.name)
        registry.check_dir(cfg.run_dir)
        usable = _usable_run_dir(cfg.run_dir)
        if cfg.name:
            claim = _claim(cfg.run_dir, usable, cfg.name, cfg.name)  # fail before waiting

        def bound() -> None:
            nonlocal waiting
            if usable:
                waiting = _register(cfg.run_dir, _waiting_entry(cfg, session_id, target))
            if cfg.banner:
                _say(f"waiting for maps on {cfg.uds}; send them with: "
                     f"{_send_hint(cfg.uds, cfg.netns)}")

        handoff = receive(cfg, bound=bound)
        try:
            if claim is None:
                claim = _claim(cfg.run_dir, usable, None, derive_name(handoff.obj))
            return _start(cfg, handoff, target, netns_fd, claim.name, usable, session_id)
        finally:
            handoff.close()
    finally:
        if waiting:
            registry.remove(cfg.run_dir, session_id)
        if claim is not None:
            claim.release()
        if netns_fd >= 0:
            os.close(netns_fd)


def _waiting_entry(cfg: Config, session_id: str, target: Netns | None) -> dict:
    """The registry entry of a receiver still waiting for its maps (registry.py)."""
    now = _now()
    return {
        "id": session_id, "state": "waiting", "since": now, "name": cfg.name or None,
        "pid": os.getpid(), "supervisor": os.getpid(),
        "supervisor_start": procfs.start_time(os.getpid()), "uid": os.getuid(),
        "allow_uids": sorted(set(cfg.allow_uids)),
        "netns": (target.name or target.arg) if target else None,
        "netns_path": target.path if target else None, "socket": os.path.abspath(cfg.uds),
        "control": None, "obj": "", "command": cfg.argv, "started": now, "maps": [],
    }


def _send_hint(uds: str, netns: str | None) -> str:
    """The `bpfsession send` command that would feed this receiver, ready to edit."""
    import shlex

    hint = f"bpfsession send {shlex.quote(uds)} --dev IFACE --ingress"
    return hint + (f" --netns {shlex.quote(netns)}" if netns else "")


def _say(text: str) -> None:
    """One line of the banner on stderr; outside strings in it are escaped."""
    from bpfsession.printable import printable

    try:
        sys.stderr.write(f"bpfsession: {printable(text)}\n")
        sys.stderr.flush()
    except OSError:
        pass  # the terminal went away: nothing to tell


def _claim(directory: str, usable: bool, requested: str | None,
           derived: str) -> registry.Claim:
    """The session's name, claimed in the registry (no registry: just the name)."""
    if usable:
        try:
            return registry.claim(directory, requested, derived, os.getpid())
        except OSError as err:
            warn(f"cannot claim a session name in {directory}: {err.strerror}; the name is "
                 "not reserved")
    return registry.Claim(directory, requested or derived, None)


def _start(cfg: Config, handoff: wire.Handoff, target: Netns | None, netns_fd: int,
           name: str, usable: bool, session_id: str) -> int:
    maps = describe(handoff)
    if cfg.read_only or cfg.read_only_uids:
        _read_only(cfg, handoff, maps)
    argv = cfg.argv
    launch = Launch(argv, session_env(dict(os.environ), maps, handoff.obj, session_id, name,
                                      target.arg if target else None),
                    [m.fd for m in maps], target, netns_fd, cfg.keep_caps, cfg.no_new_privs)
    entry = {
        "id": session_id, "name": name, "pid": os.getpid(), "supervisor": os.getpid(),
        "supervisor_start": procfs.start_time(os.getpid()), "uid": os.getuid(),
        "allow_uids": sorted(set(cfg.allow_uids)),
        "netns": (target.name or target.arg) if target else None,
        "netns_path": target.path if target else None, "socket": os.path.abspath(cfg.uds),
        "control": registry.control_path(cfg.run_dir, session_id), "obj": handoff.obj,
        "obj_st": [handoff.st_dev, handoff.st_ino],
        "command": argv, "started": _now(), "maps": [m.record() for m in maps],
        "wire_layout": handoff.layout, "state": "running",
        "read_only": cfg.read_only, "read_only_uids": sorted(set(cfg.read_only_uids)),
    }
    if not usable:
        entry["control"] = None
    if cfg.banner:
        where = f"netns {entry['netns']}" if target else "the host's netns"
        _say(f"session {name} ({session_id}) started in {where} with {len(maps)} "
             f"map{'' if len(maps) == 1 else 's'}")
    if cfg.exec_:
        return _exec(cfg, launch, entry, usable)
    return _supervised(cfg, launch, entry, handoff, maps, usable)


def _exec(cfg: Config, launch: Launch, entry: dict, usable: bool) -> int:
    """--exec: become the command (no supervisor, no control socket), like tc exec.

    The registry entry stays behind the exec: its `supervisor` is the command itself, and
    registry.prune() removes it once that process is gone.
    """
    entry["control"] = None
    registered = usable and _register(cfg.run_dir, entry)
    try:
        prepare(launch, None, new_group=False)
        arrange_fds(launch.fds)
        exec_command(launch)
    finally:
        if registered:
            registry.remove(cfg.run_dir, entry["id"])
    raise AssertionError("unreachable: exec_command returns only by raising")


def _supervised(cfg: Config, launch: Launch, entry: dict, handoff: wire.Handoff,
                maps: list[HeldMap], usable: bool) -> int:
    # python-prctl's C layer: its `prctl` module builds ~100 capability and securebit
    # wrappers at import (~1.8 ms of every `new`, measured against a bare-Python floor);
    # these calls need none of them. caps.py uses the full module.
    import _prctl

    sigpipe = init.SignalPipe()  # from here on, signals are forwarded, not fatal
    server = None
    registered = False

    def started(child: int) -> None:
        nonlocal registered
        entry["pid"] = child
        registered = usable and _register(cfg.run_dir, entry)
        title = f"bpfsession: {entry['name']}"
        _prctl.prctl(_prctl.PR_SET_NAME, title)
        procfs.set_cmdline(title)

    try:
        if usable:
            server = _control_server(entry["control"], cfg.senders, handoff, maps, cfg)
        if server is None:
            entry["control"] = None
        _prctl.prctl(_prctl.PR_SET_CHILD_SUBREAPER, 1)
        if usable:  # the maps' types for agents without CAP_SYS_ADMIN, before the command
            btfcache.write(cfg.run_dir, entry, [m.fd for m in maps])
        return run_supervised(launch, sigpipe, server, cfg.as_init or os.getpid() == 1,
                              cfg.grace, started)
    finally:
        if registered:
            registry.remove(cfg.run_dir, entry["id"])
        btfcache.remove(cfg.run_dir, entry["id"])
        if server is not None:
            server.close()
        sigpipe.close()


def _usable_run_dir(directory: str) -> bool:
    try:
        registry.ensure_dir(directory)
    except BpfSessionError as err:
        warn(f"{err.hint}; the session runs without a registry entry or control socket")
        return False
    return True


def _read_only(cfg: Config, handoff: wire.Handoff, maps: list[HeldMap]) -> None:
    """--read-only: swap every received fd for a read-only one (BPF_F_RDONLY), so that
    neither the command nor any attach can write. --allow-uid UID:ro: check now, before
    anything runs, that this supervisor may open read-only fds for those uids."""
    from bpfsession import handout

    if not cfg.read_only:
        os.close(handout.reopen(maps[0].fd))  # EPERM here, not at the first attach
        return
    fds = handout.make_read_only(handoff.fds.release())
    handoff.fds.extend(fds)
    for m, fd in zip(maps, fds, strict=True):
        m.fd = fd


def _control_server(path: str, allowed: set[int], handoff: wire.Handoff,
                    maps: list[HeldMap], cfg: Config | None = None) -> control.Server | None:
    from bpfsession import control

    try:
        return control.Server(path, allowed, handoff.obj, (handoff.st_dev, handoff.st_ino),
                              maps, set(cfg.read_only_uids) if cfg else set(),
                              bool(cfg and cfg.read_only))
    except BpfSessionError as err:
        warn(f"{err.hint}; `bpfsession attach` will have to use pidfd_getfd")
        return None


def _register(directory: str, entry: dict) -> bool:
    try:
        registry.write(directory, entry)
    except BpfSessionError as err:
        warn(f"{err.hint}; the session runs without a registry entry")
        return False
    return True


def _now() -> str:
    """ISO 8601 in UTC, as datetime.isoformat(timespec="seconds") writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
