#!/usr/bin/env bash
# Regenerate share/man/man8/bpfsession.8 and the zsh and fish completion from the CLI's
# parser (bpfsession/manpage.py, bpfsession/completion.py).
# Run after changing any command, option or help text; tests/test_manpage.py fails until then.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
mkdir -p share/man/man8
"$PY" -m bpfsession.manpage share/man/man8/bpfsession.8
echo "wrote share/man/man8/bpfsession.8"
# zsh and fish completion, from the same parser.
mkdir -p share/zsh/site-functions share/fish/vendor_completions.d
"$PY" -m bpfsession.completion zsh share/zsh/site-functions/_bpfsession
"$PY" -m bpfsession.completion fish share/fish/vendor_completions.d/bpfsession.fish
echo "wrote share/zsh/site-functions/_bpfsession share/fish/vendor_completions.d/bpfsession.fish"
