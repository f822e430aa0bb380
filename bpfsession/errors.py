"""One exception family. Only the CLI prints them: `bpfsession: <hint>`."""


class BpfSessionError(Exception):
    """An expected failure with a one-line hint that says what to do.

    `status` is the exit status the CLI uses (1 unless a command says otherwise).
    """

    def __init__(self, hint: str, status: int = 1):
        super().__init__(hint)
        self.hint = hint
        self.status = status


class KernelError(OSError):
    """A bpf(2) (or other syscall) failure, naming the command that failed.

    Raised by bpfsession.kernel only; callers turn the errnos they expect into
    return values or a BpfSessionError with a hint.
    """

    def __init__(self, err: int, command: str, detail: str = ""):
        import os

        text = f"{command}: {os.strerror(err)}"
        if detail:
            text += f" ({detail})"
        super().__init__(err, text)
        self.command = command


def warn(text: str) -> None:
    """A warning that does not stop the command: one line, `bpfsession: warning: ...`."""
    import sys

    sys.stderr.write(f"bpfsession: warning: {text}\n")
