"""``alignscope report DATA [--audit AUDIT.parquet] [--selection SEL.parquet] [--sweep SWEEP] [--run RUN ...]
--out report.html [--force] [--n-boot 500] [--json]``: one self-contained HTML report of the data set,
its audit, a selection, a scaling sweep and training runs, with the commands that reproduce it
(:mod:`alignscope.report`). The file makes no request and opens offline; it is written atomically,
only after everything was read. Inputs made on other data (another fingerprint), a missing folder
or an output that exists without ``--force`` are one line and exit 2, and nothing is written.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from alignscope.audit import read_audit
from alignscope.cli.common import (
    UsageError,
    add_source_options,
    check_output,
    load_data,
)

__all__ = ["add_report_command", "cmd_report"]


def add_report_command(commands: Any) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to an argparse subparsers object; returns its parser."""
    parser = commands.add_parser("report", help="one self-contained HTML report: data, audit, selection, "
                                                "scaling answer, training runs, commands")
    parser.add_argument("path", metavar="DATA", help="data: file, datasets folder, hub id or demo[:N[:SEED]]")
    add_source_options(parser)
    parser.add_argument("--audit", metavar="AUDIT.parquet", help="an audit table (alignscope audit --out)")
    parser.add_argument("--selection", metavar="SEL.parquet", help="a selection (alignscope select / audit --clean-out)")
    parser.add_argument("--sweep", metavar="SWEEP", help="a sweep folder (alignscope sweep --out)")
    parser.add_argument("--run", action="extend", nargs="+", default=[], metavar="RUN",
                        help="training run folders (alignscope train --out): --run A B, or --run A --run B")
    parser.add_argument("--n-boot", type=int, default=500, help="bootstrap refits of the sweep's fits (default 500)")
    parser.add_argument("--out", required=True, metavar="report.html", help="the HTML file to write")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    parser.add_argument("--json", action="store_true", help="print one JSON object (what was written)")
    parser.set_defaults(func=cmd_report)
    return parser


def _existing(path: str | None, what: str, *, folder: bool = False) -> Path | None:
    if path is None:
        return None
    found = Path(path)
    if not (found.is_dir() if folder else found.is_file()):
        raise UsageError(f"{path}: no such {what}")
    return found


def cmd_report(args: argparse.Namespace) -> int:
    """Run the ``report`` subcommand (see the module docstring). Returns the exit code 0."""
    from alignscope.report import render_html, report_content, write_report

    out = Path(args.out)
    check_output(out, args.force, (".html", ".htm"))
    if args.n_boot < 0:
        raise UsageError("--n-boot must be >= 0")
    audit_path = _existing(args.audit, "audit file")
    selection_path = _existing(args.selection, "selection file")
    sweep = _existing(args.sweep, "sweep folder", folder=True)
    runs = [_existing(run, "run folder", folder=True) for run in args.run]
    data = load_data(args)
    audit = read_audit(audit_path) if audit_path else None
    content = report_content(data, audit=audit, selection=selection_path, sweep=sweep, runs=runs, n_boot=args.n_boot,
                             paths={"audit": args.audit, "selection": args.selection, "sweep": args.sweep,
                                    "runs": list(args.run)})
    document = render_html(content)
    write_report(out, document)
    result = {"out": str(out), "bytes": len(document.encode("utf-8")), "fingerprint": data.fingerprint,
              "sections": [name for name, part in (("audit", content.audit), ("selection", content.selection),
                                                   ("scaling", content.scaling), ("runs", content.runs)) if part]}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"wrote {out} ({result['bytes'] / 1e6:.1f} MB; data, {', '.join(result['sections']) or 'no other section'}); "
              "it opens offline in any browser", file=sys.stdout)
    return 0
