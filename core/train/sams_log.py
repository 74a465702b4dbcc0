"""Reading what SamS did in a run: the per-step log ``sams.jsonl`` as a table, per-step and per-pair
aggregates, and which pairs had wrong labels. pandas only (no torch): the Scheduler page and
reports read logs through here without loading the scheduler.

The log has one JSON object per optimizer step (written by
:class:`alignscope.train.sams_trainer.SamsDPOTrainer`): ``step``, ``batch`` (data indices),
``scores``, ``selected`` (data indices that got gradient), ``rewards`` (the lagged reward of each
pair, once known), ``loss``, ``batch_reward``, ``scheduler_loss``, ``warmup``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from alignscope.evaluate.metrics import pair_word_lengths
from alignscope.files import read_jsonl
from alignscope.run_files import SAMS_LOG, SELECTION_FILE

__all__ = ["LOG_COLUMNS", "read_sams_log", "selection_rates", "step_summary", "step_decisions", "flip_groups",
           "pair_words", "words_selected_vs_skipped"]

LOG_COLUMNS = ["step", "index", "selected", "score", "reward", "loss", "batch_reward", "scheduler_loss", "warmup"]


def read_sams_log(path: str | os.PathLike) -> pd.DataFrame:
    """``sams.jsonl`` (a file or a run directory) as one row per (step, pair in the batch):
    ``step, index, selected, score, reward`` (NaN until the lagged reward is known), ``loss``,
    ``batch_reward``, ``scheduler_loss``, ``warmup``. An empty frame when there is no log yet."""
    path = Path(path)
    records = read_jsonl(path / SAMS_LOG if path.is_dir() else path)
    rows = []
    for record in records:
        chosen = set(record.get("selected") or [])
        rewards = record.get("rewards") or [None] * len(record["batch"])
        for index, score, reward in zip(record["batch"], record["scores"], rewards):
            rows.append((record["step"], index, index in chosen, score, reward, record.get("loss"),
                         record.get("batch_reward"), record.get("scheduler_loss"), bool(record.get("warmup"))))
    table = pd.DataFrame(rows, columns=LOG_COLUMNS)
    return table.astype({"reward": float, "batch_reward": float, "scheduler_loss": float})


def _decided(log: pd.DataFrame) -> pd.DataFrame:
    """The rows where the scheduler chose (warm-up steps select every pair)."""
    if log.empty or "warmup" not in log.columns:
        return log
    return log[~log["warmup"].astype(bool)]


def selection_rates(log: pd.DataFrame, groups: pd.Series | None = None, *,
                    include_warmup: bool = False) -> pd.DataFrame:
    """How often each pair (``groups=None``) or each group of pairs was selected when it was in a
    batch: ``group, seen, selected, rate``. ``groups`` maps a data index to its group (a Series
    indexed by data index, e.g. a ``source`` column or a ``flipped`` flag). Warm-up steps (every
    pair selected, no choice made) are left out unless ``include_warmup``."""
    if not include_warmup:
        log = _decided(log)
    if log.empty:
        return pd.DataFrame(columns=["group", "seen", "selected", "rate"])
    keys = log["index"] if groups is None else log["index"].map(groups)
    table = log.assign(group=keys.astype(str)).groupby("group")["selected"].agg(seen="size", selected="sum")
    table["rate"] = table["selected"] / table["seen"]
    return table.reset_index()


def step_summary(log: pd.DataFrame) -> pd.DataFrame:
    """One row per step (the index): ``batch`` (pairs), ``selected`` (pairs that got gradient),
    ``loss`` (DPO loss of the whole batch), ``batch_reward``, ``scheduler_loss``."""
    return log.groupby("step").agg(batch=("index", "size"), selected=("selected", "sum"), loss=("loss", "first"),
                                   batch_reward=("batch_reward", "first"),
                                   scheduler_loss=("scheduler_loss", "first"))


def step_decisions(log: pd.DataFrame) -> pd.DataFrame:
    """One row per step: ``step``, ``selected pairs`` and ``skipped pairs`` (pair numbers as the
    pages show them: data index + 1, comma-separated), ``loss``, ``batch reward``."""
    rows = []
    for step, group in log.groupby("step", sort=True):
        picked = group["selected"].astype(bool)
        rows.append({"step": step,
                     "selected pairs": ", ".join(map(str, group.loc[picked, "index"] + 1)),
                     "skipped pairs": ", ".join(map(str, group.loc[~picked, "index"] + 1)),
                     "loss": group["loss"].iloc[0], "batch reward": group["batch_reward"].iloc[0]})
    return pd.DataFrame(rows, columns=["step", "selected pairs", "skipped pairs", "loss", "batch reward"])


def flip_groups(run_dir: str | os.PathLike, frame: pd.DataFrame | None = None) -> tuple[pd.Series | None, str]:
    """Which pairs had wrong labels, when known, as ``("flipped" | "clean")`` by data index and a
    phrase saying how it is known: the run's own label noise (the ``flipped`` column of its
    ``selection.parquet``), else the ``is_flipped`` column of ``frame`` (the run's data: the demo
    set plants flips). ``(None, "")`` when neither says."""
    table_path = Path(run_dir) / SELECTION_FILE
    if table_path.exists():
        table = pd.read_parquet(table_path)
        if "flipped" in table.columns:
            key = "pair_index" if "pair_index" in table.columns else "index"
            flags = table.groupby(key)["flipped"].any()
            return flags.map({True: "flipped", False: "clean"}), "label noise injected by this run"
    if frame is not None and "is_flipped" in frame.columns:
        flags = frame["is_flipped"].astype(bool).reset_index(drop=True)
        return flags.map({True: "flipped", False: "clean"}), "flips marked in the data set (is_flipped)"
    return None, ""


def pair_words(frame: pd.DataFrame) -> pd.Series:
    """Mean completion length in words of each pair, (chosen + rejected) / 2, by data index (row
    position: the log's indices), counted by :func:`alignscope.evaluate.metrics.word_count` (the
    contents of a message list, not its repr)."""
    chosen, rejected = pair_word_lengths(frame)
    return pd.Series((chosen + rejected) / 2.0, dtype=np.float64)


def words_selected_vs_skipped(log: pd.DataFrame, words: pd.Series) -> tuple[pd.Series, pd.Series, float, float]:
    """Completion words of every decided (step, pair) row, whether it was selected, and the mean
    words of the selected and of the skipped rows (NaN when there are none): did the scheduler
    prefer long or short pairs? Warm-up rows are left out."""
    decided = _decided(log)
    lengths = decided["index"].map(words)
    selected = decided["selected"].astype(bool)
    return lengths, selected, float(lengths[selected].mean()), float(lengths[~selected].mean())
