#!/usr/bin/env bash
# Set everything up (first run only) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" test
exec "$VENV/bin/python" -m pytest "$@"
