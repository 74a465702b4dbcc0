#!/usr/bin/env bash
# Set everything up (first run only) and run the test suite. Extra arguments go to pytest.
# The default run leaves out the tests marked `slow` (each over ~30 s on 2 cores: the GPU suite's
# dry run, the SmolLM2 conversion, LoRA, distillation twice, ...) so that it stays within ~15 min on
# a quiet 2-core machine; ALIGNSCOPE_TESTS=all runs them too (as does `-m ""` or `-m slow`).
# setup.sh reads no arguments (a sourced script would see ours): the extras go in ALIGNSCOPE_EXTRAS.
set -euo pipefail
ALIGNSCOPE_EXTRAS=test
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ALIGNSCOPE_ROOT"  # pytest finds pyproject.toml's settings and tests/ from the repository root
# The tests share the machine's models folder, where setup.sh distilled the static encoder: nothing is
# distilled or built again per run (~1 min on 2 cores). Tests about building into an empty folder
# use one of their own (tests/conftest.py: isolated_models).
ALIGNSCOPE_MODELS="${ALIGNSCOPE_MODELS:-$("$VENV/bin/python" -c 'from alignscope import settings; print(settings.models())')}"
export ALIGNSCOPE_MODELS
select=(-m "not slow")
if [[ "${ALIGNSCOPE_TESTS:-}" == "all" ]]; then select=(); fi
# --durations: every run (CI's too) names its slowest tests, so the next one to mark is visible.
exec "$VENV/bin/python" -m pytest "${select[@]}" --durations=15 "$@"
