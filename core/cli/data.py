"""``alignscope data info|validate|demo``: inspect, validate and generate preference data."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from alignscope.cli.common import EXIT_OK, Parser, UsageError, add_load_options, load_data
from alignscope.data.preferences import DataError, demo_preferences
from alignscope.data.readers import split_compression

__all__ = ["add_data_commands", "cmd_data_info", "cmd_data_validate", "cmd_data_demo"]


def add_data_commands(commands: Any) -> None:
    data = commands.add_parser("data", help="inspect, validate and generate preference data")
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=Parser)
    info = data_commands.add_parser("info", help="summary of a data set (pairs, format, fingerprint)")
    add_load_options(info)
    info.set_defaults(func=cmd_data_info)
    validate = data_commands.add_parser("validate", help="exit 0 when valid, 2 with the error line")
    add_load_options(validate)
    validate.set_defaults(func=cmd_data_validate)
    demo = data_commands.add_parser("demo", help="write the seeded synthetic demo set")
    demo.add_argument("--out", required=True, help="output file (.jsonl/.json/.csv[.gz] or .parquet)")
    demo.add_argument("--n", type=int, default=3000, help="number of pairs (default 3000)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--force", action="store_true", help="overwrite an existing file")
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(func=cmd_data_demo)



def cmd_data_info(args: argparse.Namespace) -> int:
    data = load_data(args)
    info = data.info()
    if args.json:
        print(json.dumps(info, ensure_ascii=False, default=str))
        return EXIT_OK
    fmt = info["format"] + (" (prompt extracted from the shared prefix)" if info["prompt_extracted"] else "")
    rows = [("source", info["source"] + ("  [DEMO DATA]" if info["is_demo"] else "")),
            ("pairs", f"{info['n_pairs']:,}"), ("format", fmt),
            ("metadata", ", ".join(info["metadata_columns"]) or "(none)"),
            ("fingerprint", info["fingerprint"]), ("validation", data.report.summary())]
    for key, value in rows:
        print(f"{key:<12} {value}")
    return EXIT_OK


def cmd_data_validate(args: argparse.Namespace) -> int:
    try:
        data = load_data(args)
    except DataError as err:
        if args.json:
            print(json.dumps({"valid": False, **err.to_dict()}, ensure_ascii=False))
        raise
    result = {"valid": True, "n_pairs": data.n_pairs, "format": data.format,
              "summary": data.report.summary(), **data.report.to_dict()}
    if args.json:
        print(json.dumps(result, ensure_ascii=False, default=str))
    else:
        print(f"OK {args.path}: {data.n_pairs:,} pairs ({data.format}); {data.report.summary()}")
    return EXIT_OK


def cmd_data_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    fmt, gz = split_compression(out)
    if fmt not in (".jsonl", ".json", ".parquet", ".csv") or (gz and fmt == ".parquet"):
        raise UsageError(f"{out.name}: cannot write this type; use .jsonl, .json, .csv (optionally .gz) "
                         "or .parquet")
    if out.exists() and not args.force:
        raise UsageError(f"{out}: already exists (pass --force to overwrite)")
    if args.n < 20:
        raise UsageError("--n must be at least 20")
    data = demo_preferences(n=args.n, seed=args.seed)
    data.save(out)
    if args.json:
        print(json.dumps({"out": str(out), "n_pairs": data.n_pairs, "fingerprint": data.fingerprint}))
    else:
        print(f"wrote {data.n_pairs:,} demo pairs to {out} (fingerprint {data.fingerprint})")
    return EXIT_OK
