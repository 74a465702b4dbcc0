"""What every ``alignscope`` subcommand shares: exit codes, the one-line usage error, the options
that load a data set, the output-file check, and following jobs until they end. The command modules
of this package import from here (and ``select`` the encoder options of ``embed``)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from alignscope.errors import AlignscopeError

__all__ = ["EXIT_OK", "EXIT_INTERNAL", "EXIT_BAD_INPUT", "UsageError", "Parser", "add_load_options",
           "add_source_options", "load_data", "check_output", "follow_jobs", "EXIT_CANCELLED"]

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2
EXIT_CANCELLED = 130  # Ctrl-C, as a shell reports SIGINT


class UsageError(AlignscopeError):
    """Bad arguments or input; reported as one line with exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="file (.jsonl/.json/.parquet/.csv, optionally .gz), datasets "
                                     "folder, hub id org/name[:split], or demo[:N[:SEED]]")
    parser.add_argument("--split", help="split of a DatasetDict folder or hub data set")
    parser.add_argument("--column", action="append", default=[], metavar="CANONICAL=NAME",
                        help="map a differently named column, e.g. --column prompt=question")
    parser.add_argument("--drop-invalid", action="store_true",
                        help="drop invalid rows (reported) instead of stopping at the first")
    parser.add_argument("--max-row-chars", type=int, default=None,
                        help="rows longer than this (prompt+chosen+rejected) are invalid")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def load_data(args: argparse.Namespace):
    # Imported here, not at the top: `alignscope app` passes through this module on its way to exec
    # Streamlit, whose app imports the library itself (pandas twice cost 0.37 s of the cold start).
    from alignscope.data.preferences import DEFAULT_MAX_ROW_CHARS, load_preferences, parse_column_map

    max_chars = args.max_row_chars if args.max_row_chars is not None else DEFAULT_MAX_ROW_CHARS
    if max_chars <= 0:
        raise UsageError("--max-row-chars must be positive")
    return load_preferences(args.path, split=args.split, columns=parse_column_map(args.column),
                            drop_invalid=args.drop_invalid, max_row_chars=max_chars)


def add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", help="split of a DatasetDict folder or hub data set")
    parser.add_argument("--column", action="append", default=[], metavar="CANONICAL=NAME",
                        help="map a differently named column, e.g. --column prompt=question")
    parser.add_argument("--drop-invalid", action="store_true", help="drop invalid rows instead of stopping")
    parser.add_argument("--max-row-chars", type=int, default=None)


def check_output(out: Path, force: bool, suffixes: tuple[str, ...]) -> None:
    if not out.name.endswith(suffixes):
        raise UsageError(f"{out.name}: the output must end with {' or '.join(suffixes)}")
    if out.exists() and not force:
        raise UsageError(f"{out}: already exists (pass --force to overwrite)")


def follow_jobs(store: Any, job_ids: Sequence[str], on_poll: Callable[[list[Any]], None],
                poll_seconds: float = 1.0) -> list[Any] | None:
    """Poll ``job_ids`` on ``store`` until every one has ended, calling ``on_poll(jobs)`` each time
    (to print progress); returns the final jobs. Ctrl-C cancels every job that is still running
    and returns None: the command then exits with :data:`EXIT_CANCELLED`."""
    try:
        while True:
            jobs = [store.get(job_id) for job_id in job_ids]
            on_poll(jobs)
            if all(job.is_terminal for job in jobs):
                return jobs
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        for job_id in job_ids:
            store.cancel(job_id)
        return None
