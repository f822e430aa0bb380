"""`[run CMD [ARG...]]`, the tail of `new` and `attach`, parsed in one place.

Everything after `run` belongs to the command (options of bpfsession included); no
`run` means the user's shell.
"""

from __future__ import annotations

from bpfsession.errors import BpfSessionError


def split_run(words: list[str], where: str, usage: str, note: str = "") -> list[str] | None:
    """CMD and its arguments from `run CMD [ARG...]`, or None (the shell) for no words.

    `where` says where an unexpected word stood ("after UDS"), `usage` the verb's form,
    `note` what else to tell (" (options go before `imp`)").
    """
    if words and words[0] == "--":
        words = words[1:]  # argparse's REMAINDER keeps a `--` the user put before `run`
    if not words:
        return None
    if words[0] != "run":
        raise BpfSessionError(f"unexpected '{words[0]}' {where}: expected `{usage}`{note}")
    command = words[1:]
    if not command or not command[0]:
        raise BpfSessionError("`run` needs a command: run CMD [ARG...]")
    return command
