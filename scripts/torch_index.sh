#!/usr/bin/env bash
# Which index torch comes from: prints the pip arguments for the torch install (nothing = pip's
# default index) and says why in one line on stderr. Used by scripts/setup.sh; downloads nothing.
#
# On plain PyPI, torch for Linux is the CUDA build (~2.7 GB with CUDA, cuDNN, cuBLAS and triton).
# A Linux machine without an NVIDIA GPU gets the CPU build from PyTorch's CPU wheel index instead;
# when that index cannot be reached (a machine limited to PyPI or a mirror) it falls back, within
# a few seconds, to the default index, which may offer a CPU wheel of its own.
#
# Environment (all optional; the tests set the first two so that nothing is probed):
#   ALIGNSCOPE_GPU               1 = an NVIDIA GPU is present, 0 = none (default: nvidia-smi -L
#                                succeeds or /proc/driver/nvidia/version exists)
#   ALIGNSCOPE_TORCH_INDEX_REACHABLE  1 / 0 (default: probe the index, ALIGNSCOPE_TORCH_PROBE_S seconds)
#   ALIGNSCOPE_TORCH_INDEX       the CPU wheel index (default https://download.pytorch.org/whl/cpu)
#   ALIGNSCOPE_TORCH_PROBE_S     the probe's time limit in seconds (default 5)
#   PYTHON                       the interpreter that probes (default python3)
set -euo pipefail
index="${ALIGNSCOPE_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"

if [[ "$(uname -s)" != Linux ]]; then  # macOS and Windows wheels on PyPI carry no CUDA
  echo "alignscope: torch from the default index ($(uname -s) wheels on PyPI are CPU builds)" >&2
  exit 0
fi

gpu="${ALIGNSCOPE_GPU:-}"
if [[ -z "$gpu" ]]; then
  gpu=0
  if { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; } || [[ -e /proc/driver/nvidia/version ]]; then
    gpu=1
  fi
fi
if [[ "$gpu" == 1 ]]; then
  echo "alignscope: NVIDIA GPU found: torch from the default index (its CUDA build)" >&2
  exit 0
fi

reachable="${ALIGNSCOPE_TORCH_INDEX_REACHABLE:-}"
if [[ -z "$reachable" ]]; then
  reachable=0
  if "${PYTHON:-python3}" - "$index/torch/" "${ALIGNSCOPE_TORCH_PROBE_S:-5}" >/dev/null 2>&1 <<'PY'
import sys
import urllib.request

urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="HEAD"), timeout=float(sys.argv[2])).close()
PY
  then
    reachable=1
  fi
fi
if [[ "$reachable" == 1 ]]; then
  echo "alignscope: no NVIDIA GPU: torch's CPU build from $index" >&2
  printf '%s\n' "--index-url" "$index"
else
  echo "alignscope: no NVIDIA GPU, but $index cannot be reached: torch from the default index instead (on PyPI that is the ~2.7 GB CUDA build unless pip offers a CPU wheel)" >&2
fi
