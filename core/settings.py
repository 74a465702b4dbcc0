"""Where alignscope keeps things. Environment variables, so the CLI, the app and jobs agree.

* ``ALIGNSCOPE_HOME``: caches, job store and run directories (default ``~/.cache/alignscope``).
* ``ALIGNSCOPE_DATA_ROOT``: the only folder the app opens user-typed paths in (default: the
  working directory the app was started from).
"""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("ALIGNSCOPE_HOME", Path.home() / ".cache" / "alignscope")).expanduser()


def data_root() -> Path:
    return Path(os.environ.get("ALIGNSCOPE_DATA_ROOT", os.getcwd())).expanduser().resolve()
