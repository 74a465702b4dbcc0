"""The ``alignscope`` command, one module per command group.

``parser`` builds the parser from the groups and holds :func:`main` (the console entry point);
``common`` is what every group shares (exit codes, the one-line usage error, data-loading options,
the output check, :func:`~alignscope.cli.common.follow_jobs`); ``data``, ``embed``, ``select``
(select, export), ``train`` (train, eval, eval-probe; flags from ``config_flags``), ``audit``,
``spectra``, ``scaling`` (sweep, scaling fit), ``jobs`` and ``app`` each add their subcommands.
A command module reads arguments, calls the library, prints; the work itself lives in the library.
"""
from alignscope.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
