"""The ``alignscope`` command, one module per command group.

``parser`` builds the parser from the groups and holds :func:`main` (the console entry point);
``common`` is what every group shares (exit codes, the one-line usage error, data-loading options,
the output check, :func:`~alignscope.cli.common.follow_jobs`); ``data``, ``embed``, ``select``
(select, export), ``train`` (train, eval, eval-probe; flags from ``config_flags``), ``audit``,
``spectra``, ``scaling`` (sweep, scaling fit), ``report``, ``jobs`` and ``app`` each add their subcommands.
A command module reads arguments, calls the library, prints; the work itself lives in the library.
"""
from __future__ import annotations

import os
import sys
from typing import Sequence

from alignscope.cli.app import main as app_main

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """The console entry point. ``alignscope app`` goes straight to :mod:`alignscope.cli.app`: it
    execs Streamlit, whose app imports the library itself, and importing every command group first
    cost 0.37 s of a 3.4 s cold start (benchmarks/bench_pages). Every other command goes through
    :func:`alignscope.cli.parser.main`."""
    # Idle OpenMP workers spinning (the default) cost the other core its time on a 2-core machine;
    # it must be set before torch loads (here or in the app's process), never by a library import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["app"]:
        return app_main(args[1:])
    from alignscope.cli.parser import main as parser_main

    return parser_main(args)
