"""bpfsession(8) in roff, generated from the parser the CLI itself uses, so it cannot drift.

`python -m bpfsession.manpage [OUT]` (scripts/gen-manpage.sh) writes the page that is
committed as share/man/man8/bpfsession.8 and installed with the package;
tests/test_manpage.py fails when the committed page differs from a fresh rendering.
The commands and options come from `bpfsession.cli.build_parser()`; the prose sections
(DESCRIPTION, ENVIRONMENT, EXIT STATUS, FILES, EXAMPLES) are written here.

argparse has no public API to walk a parser, so this reads `_actions`, the sub-parsers
action's `choices` and `_choices_actions` (stable since Python 3.2).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator

TITLE = "System Administration"

DESCRIPTION = r"""
.B bpfsession
makes the map-fd hand-off of iproute2's
.B tc exec bpf import
.I UDS
.RB [ run
.IR CMD ]
a tool of its own: a loader sends the file descriptors of loaded eBPF maps over a unix datagram
socket (bpf_scm version 1 with SCM_RIGHTS, byte-compatible with iproute2 in both directions), and
.B bpfsession new
receives them, optionally inside a named network namespace, and spawns a supervised shell or
command that holds them.
The command finds each map's fd number in its environment
(\fBBPF_MAP\fIid\fR=\fIfd\fR, exactly as \fBtc exec bpf\fR hands them on)
and can read and write the maps without any capability.
.PP
.B bpfsession send
exports the maps of loaded programs (by map id, pin, program id, the tc filter on a device, or
another session); live sessions are found from
.I /proc
by
.BR list ,
.B show
and
.BR attach ;
.B bpfsession map
reads and writes maps from shell scripts with
.BR bpftool (8)'s
syntax; and
.B bpfsession tui
browses sessions and their maps.
.PP
In a container,
.B bpfsession new
is the entrypoint: it reads its socket path from
.B BPFSESSION_IMPORT
and acts as PID 1 (it reaps orphans and forwards signals to the command).
""".strip()

ARGUMENTS = r"""
.TP
.I NETNS
A network namespace: a name made by
.B ip netns add
.I NAME
(a file under
.IR /run/netns ),
or the path of a namespace file such as
.IR /proc/ PID /ns/net .
.TP
.I UDS
The filesystem path of the unix datagram socket, as for
.BR "tc exec bpf import" .
The receiver binds it (mode 0600) and removes it when it is done.
.TP
.I SESSION
A session's name, its id, or the pid of any process in it.
.TP
.I MAP
.BI BPF_MAP N
or
.I N
(the fd in that variable, N being the sender's entry id, inside a session),
.BI BPF_MAP_ NAME
(the fd in the variable of that name),
.B fd
.I N
(an fd of this process, e.g. the value of a BPF_MAP variable),
.B name
.I NAME
(a map of the current session, else a unique kernel map name),
.B id
.IR ID ,
.B pinned
.IR PATH ,
or
.B session
.I SESSION NAME.
.TP
.I DATA
bpftool's syntax: bytes as numbers
.RB ( "0x01 0 0 0" )
or
.BR "hex 01 00 00 00" ;
typed values where the map's BTF tells the layout.
""".strip()

ENVIRONMENT = r"""
.SS Configuration of new
Container specs may configure
.B bpfsession new
through the environment instead of flags; a flag given on the command line wins.
.TP
.B BPFSESSION_IMPORT
The socket path
.IR UDS ;
then
.B imp
.I UDS
may be left out.
.TP
.B BPFSESSION_NETNS
As
.BR \-\-netns .
.TP
.B BPFSESSION_TIMEOUT
As
.BR \-\-timeout ,
in seconds.
.TP
.B BPFSESSION_NAME
As
.BR \-\-name .
.TP
.B BPFSESSION_GRACE
Seconds that processes still left in the session get after the command exited, when
.B new
acts as an init (PID 1 or
.BR \-\-init ),
before they are killed.
.SS Other variables read
.TP
.B BPFSESSION_RUN_DIR
Where sessions are registered, instead of
.IR /run/bpfsession .
.SS What the spawned command gets
Everything the launcher inherited, plus:
.TP
.B BPF_NUM_MAPS
The number of maps received.
.TP
.BI BPF_MAP id
The fd number of the map whose sender entry id is
.I id
(exactly the contract of
.BR "tc exec bpf" ).
.TP
.BI BPF_MAP_ NAME
The fd number again, keyed by the kernel map name upper-cased, with every character other than
A\-Z, 0\-9 and _ turned into _; left out where two maps would collide.
.TP
.B BPF_OBJ
The object name the sender announced.
.TP
.BR BPFSESSION_ID ", " BPFSESSION_NAME
The session's id and name.
.TP
.B BPFSESSION_NETNS
The netns name or path, when
.B \-\-netns
was given.
.PP
Open fds in the command: 0, 1, 2 and the maps, nothing else.
The maps stay open in every descendant that does not close them.
""".strip()

EXIT_STATUS = r"""
.B new
and
.B attach
exit with the command's status, or 128+\fIN\fR when it died of signal
.IR N .
Every other command exits 0 on success.
On failure a command prints one line on standard error that begins
.B "bpfsession:"
and says what to do, and exits non-zero (2 for a usage error, 1 otherwise).
Under
.BR \-j ,
errors are also printed as a JSON document
.B {\(dqerror\(dq: \(dq...\(dq}
on standard output.
""".strip()

FILES = r"""
.TP
.I /run/bpfsession
Where live sessions are registered
.RB ( BPFSESSION_RUN_DIR
overrides it); entries are removed when a session ends.
.TP
.I /run/netns
Named network namespaces, as made by
.BR "ip netns add" .
.TP
.I /sys/fs/bpf
The BPF file system (bpffs), where maps are pinned.
.B bpfsession new \-\-netns
keeps it visible to the command, where
.B ip netns exec
would show an empty directory.
""".strip()

EXAMPLES = r"""
Receive the maps in network namespace blue and start a shell holding them:
.PP
.RS 4
.EX
bpfsession new \-\-netns blue imp /run/bpf\-uds
.EE
.RE
.PP
From another terminal, send the maps of the tc program on veth0's ingress:
.PP
.RS 4
.EX
bpfsession send /run/bpf\-uds \-\-netns blue \-\-dev veth0 \-\-ingress
.EE
.RE
.PP
Inside the session, read a map by its environment name:
.PP
.RS 4
.EX
bpfsession map dump BPF_MAP0
bpfsession map lookup BPF_MAP_TOTAL_PKTS key 0 0 0 0 \-j
.EE
.RE
.PP
List the live sessions as JSON, and attach a second shell to one:
.PP
.RS 4
.EX
bpfsession list \-j
bpfsession attach counter
.EE
.RE
.PP
As a container entrypoint (the socket directory is a shared volume):
.PP
.RS 4
.EX
BPFSESSION_IMPORT=/run/bpf/bpf\-uds bpfsession new run /agent
.EE
.RE
""".strip()

SEE_ALSO = r"""
.BR tc (8),
.BR tc\-bpf (8),
.BR ip\-netns (8),
.BR bpftool (8),
.BR bpf (2).
.PP
The documentation in the project's
.I docs/
directory: the wire protocol, the environment contract, containers and Kubernetes.
""".strip()


def esc(text: str) -> str:
    """Text for roff: backslashes and dashes escaped (`\\-` is what users type as `-`)."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    # A line that begins with . or ' would be read as a request.
    return re.sub(r"(?m)^([.'])", r"\\&\1", text)


_TOKEN = re.compile(r"(\\-(?:\\-)?[A-Za-z][\w\\-]*)|(\b[A-Z][A-Z0-9_]*\b)")


def usage_roff(usage: str) -> str:
    """An argparse usage line with options in bold and metavariables in italics."""

    def mark(m: re.Match) -> str:
        if m.group(1):
            return rf"\fB{m.group(1)}\fR"
        return rf"\fI{m.group(2)}\fR"

    return _TOKEN.sub(mark, esc(usage))


def usage_of(parser: argparse.ArgumentParser) -> str:
    """The one-line usage without the `usage: ` prefix, never wrapped (roff fills it)."""
    fmt = argparse.HelpFormatter(parser.prog, width=10_000)
    fmt.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    # -h is documented once, under OPTIONS.
    return re.sub(r" ?\[-h\]", "", " ".join(fmt.format_help().split()))


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    fmt = argparse.HelpFormatter(parser.prog)
    return fmt._expand_help(action) if action.help else ""


def _documented(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            continue
        if not action.option_strings and action.nargs == argparse.REMAINDER \
                and action.metavar is None:
            continue  # free-form words, already spelled out by the usage line
        yield action


def _action_term(action: argparse.Action) -> str:
    """The `.TP` tag of one option or positional: `--netns NETNS`, `-j, --json`, `UDS`."""
    if not action.option_strings:
        return rf"\fI{esc(action.metavar or action.dest)}\fR"
    names = ", ".join(rf"\fB{esc(o)}\fR" for o in action.option_strings)
    if action.nargs == 0:
        return names
    metavar = action.metavar or action.dest.upper()
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    arg = rf"\fI{esc(metavar)}\fR"
    return f"{names} [{arg}]" if action.nargs == "?" else f"{names} {arg}"


def subcommands(parser: argparse.ArgumentParser
                ) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, help) of each sub-command in table order; aliases folded into one."""
    out: list[tuple[str, argparse.ArgumentParser, str]] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help or "" for a in action._choices_actions}
        seen: set[int] = set()
        for name, sub in action.choices.items():
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            out.append((name, sub, helps.get(name, "")))
    return out


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
         ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str]]:
    """Every command as (words after `bpfsession`, parser, help), depth first."""
    for name, sub, help_ in subcommands(parser):
        words = (*path, name)
        yield words, sub, help_
        yield from walk(sub, words)


def _command_section(words: tuple[str, ...], parser: argparse.ArgumentParser,
                     help_: str) -> list[str]:
    lines = [f'.SS "bpfsession {esc(" ".join(words))}"', ".PP", usage_roff(usage_of(parser))]
    text = parser.description or help_
    if text:
        lines += [".PP", esc(text[0].upper() + text[1:]).rstrip(".") + "."]
    for action in _documented(parser):
        lines += [".TP", _action_term(action)]
        if action.help:
            lines.append(esc(_sentence(_help(parser, action), upper=True)))
    return lines


def _sentence(text: str, upper: bool = False) -> str:
    """`Hand eBPF ...` -> `hand eBPF ...` (only the first letter: names keep their case)."""
    return (text[:1].upper() if upper else text[:1].lower()) + text[1:]


def render() -> str:
    """The whole page, deterministic (no date) so a fresh rendering can be compared."""
    from bpfsession import __version__
    from bpfsession.cli import build_parser

    parser = build_parser()
    commands = list(walk(parser))
    out = [
        r'.\" Generated by bpfsession/manpage.py from bpfsession.cli.build_parser();',
        r'.\" do not edit: run scripts/gen-manpage.sh.',
        f'.TH BPFSESSION 8 "" "bpfsession {esc(__version__)}" "{TITLE}"',
        ".nh",  # no hyphenation: option and command names must stay whole
        ".ad l",  # ragged right: a justified synopsis spreads its words apart
        ".SH NAME",
        r"bpfsession \- " + _sentence(esc(parser.description or "")).rstrip("."),
        ".SH SYNOPSIS",
    ]
    sep = ".PP"
    for _words, sub, _ in commands:
        if subcommands(sub):
            continue  # a command group: its leaves give the synopsis
        out += [sep, usage_roff(usage_of(sub))]
        sep = ".br"
    out += [".SH DESCRIPTION", DESCRIPTION]
    out += [".SH OPTIONS", ".TP", r"\fB\-h\fR, \fB\-\-help\fR",
            "Print the usage of bpfsession or of one command, and exit."]
    out += [".TP", r"\fB\-\-version\fR", "Print the version and exit."]
    out += [".SH ARGUMENTS", ARGUMENTS]
    out += [".SH COMMANDS"]
    for words, sub, help_ in commands:
        out += _command_section(words, sub, help_)
    out += [".SH ENVIRONMENT", ENVIRONMENT, ".SH EXIT STATUS", EXIT_STATUS,
            ".SH FILES", FILES, ".SH EXAMPLES", EXAMPLES, ".SH SEE ALSO", SEE_ALSO]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    page = render()
    if not argv or argv[0] == "-":
        sys.stdout.write(page)
    else:
        with open(argv[0], "w") as f:
            f.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
