"""The one base of every error alignscope raises for bad input.

An :class:`AlignscopeError` is a ``ValueError`` whose message is one line for the user (the CLI
prints it after ``alignscope: error:`` and exits 2; the pages show it in an error box) and which
names, when there is one, the ``field`` it is about (an option, a column, a file). Each subsystem
keeps its own subclass (``DataError``, ``TrainError``, ``ScalingError``, ...), so callers catch
exactly what they expect, or everything at once.
"""
from __future__ import annotations

__all__ = ["AlignscopeError"]


class AlignscopeError(ValueError):
    """Bad input, said in one line; ``field``: the option, column or file it is about (or None)."""

    def __init__(self, message: str = "", *, field: str | None = None):
        super().__init__(message)
        self.field = field
