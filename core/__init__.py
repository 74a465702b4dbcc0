"""alignscope: which preference pairs are worth training on, how many you need, and what
happens when you train on them.

The library lives here (``core/`` in the source tree, imported as ``alignscope``); the Streamlit
app lives in ``app/`` (``alignscope.app``) and never holds math or training code. This package
never imports Streamlit.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["DataError", "PreferenceData", "ValidationReport", "load_preferences", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: job workers and `alignscope --version` should not pay for pandas at import time.
    if name in __all__:
        from alignscope.data import preferences as data

        return getattr(data, name)
    raise AttributeError(f"module 'alignscope' has no attribute {name!r}")
