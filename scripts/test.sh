#!/usr/bin/env bash
# Set up everything, then run the linters and the whole test suite (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
exec .venv/bin/pytest -q "$@"
