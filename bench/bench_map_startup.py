"""Start-up of the single map verbs against the same interpreter's `python -c pass`.

Run as root from the checkout: `.venv/bin/python bench/bench_map_startup.py [--runs N]`
(default 20). `map lookup`, `update`, `delete` and `show` on a pinned hash map with BTF-less
u32 -> u64 entries, and `lookup` of a typed (BTF) map, each a whole process of a plain
install (a .pth entry, as pip installs it; the dev venv's editable finder would add its
own cost), bytecode compiled first; rounds interleaved with the `python -c pass` floor;
medians, p90 and the ratio to the floor.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROOT,
    compile_bpf,
    installed_env,
    machine,
    plain_install,
    print_ratios,
    round_robin,
    timed,
)
from bpfsession.kernel import bpf  # noqa: E402

TYPED = ROOT / "tests" / "bpf" / "typed.bpf.c"


def deleted(fd: int, took: float) -> float:
    """Put the deleted entry back (unmeasured) for the next round."""
    bpf.map_update_elem(fd, (1).to_bytes(4, "little"), (5).to_bytes(8, "little"))
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    opts = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bsbench-start")
    env = installed_env(PYTHONPYCACHEPREFIX=os.path.join(tmp, "pyc"))
    fd = bpf.map_create("hash", 4, 8, 256, "bench_start")
    pin = f"/sys/fs/bpf/bsbenchs{os.getpid()}"
    typed = f"/sys/fs/bpf/bsbencht{os.getpid()}"
    try:
        bpf.obj_pin(fd, pin)
        bpf.map_update_elem(fd, (1).to_bytes(4, "little"), (5).to_bytes(8, "little"))
        obj = compile_bpf(TYPED, os.path.join(tmp, "typed.o"))
        os.makedirs(typed)
        subprocess.run(["bpftool", "prog", "loadall", obj, f"{typed}/p", "pinmaps", f"{typed}/m"],
                       check=True)
        py = plain_install(tmp)
        subprocess.run([py, "-m", "compileall", "-q", str(ROOT / "bpfsession")], env=env,
                       check=True)
        # The console script pip writes for the `bpfsession` entry point (pyproject.toml):
        # what users run. (`python -m bpfsession` adds runpy's imports, ~5 ms.)
        script = os.path.join(os.path.dirname(py), "bpfsession")
        with open(script, "w") as f:
            f.write(f"#!{py}\nimport sys\nfrom bpfsession.cli import main\n"
                    "if __name__ == '__main__':\n"
                    "    sys.argv[0] = sys.argv[0].removesuffix('.exe')\n"
                    "    sys.exit(main())\n")
        bs = [py, script, "map"]
        key = ["key", "1", "0", "0", "0"]
        variants = {
            "python -c pass": lambda: timed([py, "-c", "pass"], env),
            "map lookup": lambda: timed([*bs, "lookup", "pinned", pin, *key], env),
            "map update": lambda: timed([*bs, "update", "pinned", pin, *key, "value", "5", "0",
                                         "0", "0", "0", "0", "0", "0"], env),
            "map delete": lambda: deleted(fd, timed([*bs, "delete", "pinned", pin, *key], env)),
            "map show": lambda: timed([*bs, "show", "pinned", pin], env),
            "map lookup (BTF struct)": lambda: timed(
                [*bs, "lookup", "pinned", f"{typed}/m/t_array", *key], env),
        }
        times = round_robin(variants, opts.runs)
    finally:
        os.unlink(pin)
        os.close(fd)
        subprocess.run(["rm", "-rf", typed, tmp])
    print_ratios(f"map verbs' start-up, {opts.runs} interleaved runs ({machine()}, load "
                 f"average {os.getloadavg()[0]:.1f})", times, "python -c pass")


if __name__ == "__main__":
    main()
