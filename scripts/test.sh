#!/usr/bin/env bash
# Set everything up (first run only) and run the whole test suite. Extra arguments go to pytest.
# setup.sh reads no arguments (a sourced script would see ours): the extras go in ALIGNSCOPE_EXTRAS.
set -euo pipefail
ALIGNSCOPE_EXTRAS=test
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ALIGNSCOPE_ROOT"  # pytest finds pyproject.toml's settings and tests/ from the repository root
exec "$VENV/bin/python" -m pytest "$@"
