"""The ``alignscope`` parser and entry point: one subcommand group per module of this package.

Exit codes: 0 success; 2 bad input (one line on stderr naming file, row and column); 1 an
unexpected internal error (one line; set ``ALIGNSCOPE_DEBUG=1`` for the traceback).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from alignscope import __version__
from alignscope.cli.app import add_app_command
from alignscope.cli.audit import add_audit_command
from alignscope.cli.common import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, Parser, UsageError
from alignscope.cli.data import add_data_commands
from alignscope.cli.embed import add_embed_command
from alignscope.cli.jobs import add_jobs_commands
from alignscope.cli.report import add_report_command
from alignscope.cli.scaling import add_scaling_command, add_sweep_command
from alignscope.cli.select import add_select_commands
from alignscope.cli.spectra import add_spectra_command
from alignscope.cli.train import add_train_commands
from alignscope.files import PathOutsideRootError
from alignscope.jobs import JobError
from alignscope.data.readers import DataError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="alignscope", description="Preference-data selection, training and "
                                                   "diagnostics for LLM alignment.")
    parser.add_argument("--version", action="version", version=f"alignscope {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_data_commands(commands)
    add_embed_command(commands)
    add_select_commands(commands)
    add_train_commands(commands)
    add_spectra_command(commands)
    add_audit_command(commands)
    add_sweep_command(commands)
    add_scaling_command(commands)
    add_report_command(commands)
    add_jobs_commands(commands)
    add_app_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except (UsageError, DataError, PathOutsideRootError, JobError, ValueError) as err:
        # ValueError covers the library's own one-line input errors (ModelError, JobError,
        # selection errors...): they all subclass it.
        print(f"alignscope: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `alignscope ... | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as err:  # the machine, not the input: disk full, read-only, permissions
        where = f": {err.filename}" if err.filename else ""
        print(f"alignscope: error: {err.strerror or err}{where} (nothing was overwritten)", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print("alignscope: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the CLI's promise is one line, not a traceback
        if os.environ.get("ALIGNSCOPE_DEBUG"):
            raise
        print(f"alignscope: internal error: {type(err).__name__}: {err} "
              "(set ALIGNSCOPE_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
