"""The files of a run directory, named once: every job writes its run folder with these names and
every reader (the pages, the CLI, sweeps, re-runs) finds them by the same constants. See
``docs/ARCHITECTURE.md`` (Run directory) for what each holds. Imports nothing.
"""
from __future__ import annotations

__all__ = ["CONFIG_FILE", "STATUS_FILE", "LOG_FILE", "METRICS_FILE", "EVAL_FILE", "EVAL_PAIRS_FILE", "SELECTION_FILE",
           "SAMS_LOG", "CHECKPOINTS_LOG", "WARNINGS_FILE", "MAP_FILE", "SOURCE_FILE", "TRAINING_ARTEFACTS"]

# Every job's run folder (written by alignscope.jobs).
CONFIG_FILE = "config.json"          # {"job_id", "kind", "config", ...}: everything needed to re-run
STATUS_FILE = "status.json"          # the store's view of the job, mirrored on every change
LOG_FILE = "log.txt"                 # stdout and stderr of the job's processes
METRICS_FILE = "metrics.jsonl"       # one JSON object per logged training step (the live curves)

# A training run (alignscope.train).
EVAL_FILE = "eval.json"              # held-out evaluation: every score beside its baselines
EVAL_PAIRS_FILE = "eval_pairs.parquet"  # the held-out margins pair by pair
SELECTION_FILE = "selection.parquet"    # the rows trained on (in_test, trained, flipped under label noise)
SAMS_LOG = "sams.jsonl"              # per-step scheduler log of dpo-sams runs
CHECKPOINTS_LOG = "checkpoints.jsonl"   # held-out evaluations at intermediate steps (eval_checkpoints)
WARNINGS_FILE = "warnings.json"      # what TRL/transformers warned about while training (the pages show it)
# What a training run writes: cleared before a re-run into the same folder.
TRAINING_ARTEFACTS = (METRICS_FILE, EVAL_FILE, EVAL_PAIRS_FILE, SELECTION_FILE, SAMS_LOG, CHECKPOINTS_LOG, WARNINGS_FILE)

# Embedding and map jobs (alignscope.embed.tasks).
MAP_FILE = "map.npy"                 # the 2-D coordinates of a map job
SOURCE_FILE = "source.json"          # {"path": the cache entry, "unit": ...} of an embed job
