"""Least privilege for the session's command: --keep-caps and --no-new-privs (python-prctl).

By default nothing changes, as with `tc exec`: the command gets the launcher's
capabilities. With --keep-caps, every other capability leaves the bounding, inheritable,
permitted and effective sets (and so the ambient set) before exec. The bounding set is
what matters for root: at exec, a uid-0 process gets permitted = inheritable | bounding.
"""

from __future__ import annotations

from bpfsession.errors import BpfSessionError

_CAP_LAST_CAP = "/proc/sys/kernel/cap_last_cap"


def last_cap() -> int:
    with open(_CAP_LAST_CAP) as f:
        return int(f.read())


def parse(spec: str) -> frozenset[int]:
    """`net_admin,CAP_BPF,...` (case-insensitive, CAP_ optional) -> capability numbers."""
    import prctl

    names = dict(zip(prctl.ALL_CAP_NAMES, prctl.ALL_CAPS, strict=True))
    keep = set()
    for word in spec.split(","):
        word = word.strip().lower().removeprefix("cap_")
        if not word:
            continue
        if word not in names:
            raise BpfSessionError(f"unknown capability '{word}' in --keep-caps (known: "
                                  f"{', '.join(sorted(names))})")
        keep.add(names[word])
    return frozenset(keep)


def restrict(keep: frozenset[int] | None, no_new_privs: bool) -> None:
    """Apply in the process about to exec. Raises OSError / ValueError from prctl."""
    import prctl

    if keep is not None:
        # PR_CAPBSET_DROP needs CAP_SETPCAP in the effective set: bounding set first.
        for cap in range(last_cap() + 1):
            if cap not in keep and prctl.capbset_read(cap):
                prctl.capbset_drop(cap)
        drop = [cap for cap in prctl.ALL_CAPS if cap not in keep]
        flags = [prctl.CAP_EFFECTIVE, prctl.CAP_PERMITTED, prctl.CAP_INHERITABLE]
        prctl.set_caps((drop, flags, False))
    if no_new_privs:
        prctl.set_no_new_privs(1)

