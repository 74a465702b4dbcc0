#!/usr/bin/env bash
# Set everything up (first run only) and start the app on http://127.0.0.1:8501 with demo data.
# Extra arguments go to `alignscope app`, e.g.  bash scripts/app.sh --data-root ~/data --data my.jsonl
# setup.sh reads no arguments (a sourced script would see ours): ALIGNSCOPE_EXTRAS picks extras.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec "$VENV/bin/alignscope" app "$@"
