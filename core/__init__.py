"""alignscope: which preference pairs are worth training on, how many you need, and what
happens when you train on them.

The library lives here (``core/`` in the source tree, imported as ``alignscope``); the Streamlit
app lives in ``app/`` (``alignscope.app``) and never holds math or training code. This package
never imports Streamlit.
"""
from alignscope.data import DataError, PreferenceData, ValidationReport, load_preferences

__version__ = "0.1.0"
__all__ = ["DataError", "PreferenceData", "ValidationReport", "load_preferences", "__version__"]
