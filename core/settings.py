"""Where alignscope keeps things. Environment variables, so the CLI, the app and jobs agree.

* ``ALIGNSCOPE_HOME``: caches, job store and run directories (default ``~/.cache/alignscope``).
* ``ALIGNSCOPE_MODELS``: models built or distilled on this machine (the static encoder, the
  ``tiny`` and ``smollm2-135m`` models), kept once for every alignscope home, as the Hugging Face
  cache keeps downloads (default ``~/.cache/alignscope/models``). Each lives in a folder named by
  what it was built from (the static encoder's by a hash of its settings and library versions), is
  written to a temporary folder and renamed into place, and is never changed afterwards: homes,
  users of one machine and test sessions can share it.
* ``ALIGNSCOPE_DATA_ROOT``: the only folder the app opens user-typed paths in (default: the
  working directory the app was started from).
"""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("ALIGNSCOPE_HOME", Path.home() / ".cache" / "alignscope")).expanduser()


def models() -> Path:
    return Path(os.environ.get("ALIGNSCOPE_MODELS", Path.home() / ".cache" / "alignscope" / "models")).expanduser()


def data_root() -> Path:
    return Path(os.environ.get("ALIGNSCOPE_DATA_ROOT", os.getcwd())).expanduser().resolve()
