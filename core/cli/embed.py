"""``alignscope embed``: embed every completion (or pair) of a data set into ``OUT.npy`` (+ ``OUT.npy.json``)."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from alignscope.cli.common import EXIT_OK, UsageError, add_source_options, check_output, load_data
from alignscope.embed.encoders import DEFAULT_ENCODER, embed
from alignscope.embed.ray import embed_ray

__all__ = ["add_embed_command", "add_encoder_options", "cmd_embed"]


def add_embed_command(commands: Any) -> None:
    embed_cmd = commands.add_parser("embed", help="embed every completion (or pair) of a data set")
    embed_cmd.add_argument("path", metavar="DATA", help="data set (as for `data info`)")
    add_source_options(embed_cmd)
    add_encoder_options(embed_cmd)
    embed_cmd.add_argument("--out", required=True, help="output .npy (float32 matrix); meta in OUT.json")
    embed_cmd.add_argument("--force", action="store_true", help="overwrite an existing file")
    embed_cmd.add_argument("--json", action="store_true")
    embed_cmd.add_argument("--executor", default="local", choices=["local", "ray"],
                           help="ray: the distinct texts in shards as Ray tasks (same result and cache entry)")
    embed_cmd.add_argument("--address", default=None,
                           help="Ray cluster to join (auto, ray://host:10001); default a local Ray instance")
    embed_cmd.add_argument("--workers", type=int, default=None,
                           help="Ray shards run at once (CPUs of the local Ray instance; default all cores)")
    embed_cmd.set_defaults(func=cmd_embed)



def add_encoder_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--encoder", default=DEFAULT_ENCODER,
                        help=f"{DEFAULT_ENCODER} (default: Model2Vec distilled from MiniLM, seconds for any data set, "
                             "order-blind), minilm (the sentence encoder itself, ~100x slower on a CPU), lsa (the "
                             "data's own words) or lm-last-token:MODEL (tiny, smollm2-135m, an HF folder)")
    parser.add_argument("--unit", default=None, choices=["completion", "pair"],
                        help="completion (default): chosen and rejected are two points, as in the paper; "
                             "pair: one point per pair")
    parser.add_argument("--layer", type=int, default=None, help="hidden layer for lm-last-token (default last)")
    parser.add_argument("--batch-size", type=int, default=None)


def cmd_embed(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_output(out, args.force, (".npy",))
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.executor != "ray" and (args.address or args.workers is not None):
        raise UsageError("--address and --workers apply to --executor ray")
    data = load_data(args)
    started = time.perf_counter()
    unit = args.unit or "completion"
    if args.executor == "ray":
        embeddings = embed_ray(data, args.encoder, unit, args.layer, batch_size=args.batch_size,
                               address=args.address, workers=args.workers, progress=not args.json)
    else:
        embeddings = embed(data, args.encoder, unit, args.layer, batch_size=args.batch_size, progress=not args.json)
    run = {"out": str(out), "seconds": round(time.perf_counter() - started, 3), "executor": args.executor}
    embeddings.save(out, extra={**run, "data": data.spec()})  # OUT.npy + OUT.npy.json, atomically
    info = {"out": run["out"], **embeddings.info(), "seconds": run["seconds"], "executor": args.executor}
    if args.json:
        print(json.dumps(info))
    else:
        print(f"wrote {info['n']:,} × {info['dim']} float32 embeddings ({unit} unit, {args.encoder}) to {out}"
              + (" [from cache]" if embeddings.from_cache else ""))
    return EXIT_OK
