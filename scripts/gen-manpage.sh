#!/usr/bin/env bash
# Regenerate share/man/man8/bpfsession.8 from the CLI's parser (bpfsession/manpage.py).
# Run after changing any command, option or help text; tests/test_manpage.py fails until then.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
mkdir -p share/man/man8
"$PY" -m bpfsession.manpage share/man/man8/bpfsession.8
echo "wrote share/man/man8/bpfsession.8"
