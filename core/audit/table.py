"""The audit table: :func:`audit` (one row per pair), :func:`audit_summary`, the clean subset as a
selection (:func:`clean_selection`), the fixed labels (:func:`fix_flips`, :func:`fixed_frame`)
and the table's one file format (:func:`write_audit` / :func:`read_audit`)."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from alignscope import __version__
from alignscope.audit.config import AuditConfig, AuditError
from alignscope.audit.duplicates import (
    duplicate_groups,
    knn_outlier_scores,
    normalise_text,
)
from alignscope.audit.signals import (
    SIGNALS,
    combine_margins,
    flip_score_of,
    fold_assignment,
    label_issues,
    length_margins,
    lexical_margins,
    neighbour_margins,
    oof_probe_margins,
)
from alignscope.audit.vectors import pair_matrices
from alignscope.data.preferences import swap_labels
from alignscope.embed.encoders import embed
from alignscope.evaluate.metrics import word_count
from alignscope.files import atomic_path
from alignscope.select.selection import (
    SELECTION_FORMAT_VERSION,
    Selection,
    order_by_score,
)

__all__ = ["AUDIT_COLUMNS", "FLAGS", "AUDIT_META_KEY", "SIGNAL_LABELS", "audit", "audit_summary", "clean_selection",
           "fix_flips", "fixed_frame", "write_fixed", "write_audit", "read_audit", "signal_columns"]

AUDIT_COLUMNS = ("index", "flip_score", "suspect_flip", "dup_group", "is_duplicate", "outlier_score",
                 "is_outlier", "length_ratio", "identical", "reasons")
FLAGS = ("suspect_flip", "is_duplicate", "is_outlier", "identical")
AUDIT_META_KEY = b"alignscope.audit"
SIGNAL_LABELS = {"probe": "embedding probe", "length": "length rule", "neighbours": "neighbours",
                 "lexical": "word probe", "second": "second encoder"}
FIXED_COLUMN = "audit_swapped"  # --fix-out: True where the audit swapped chosen and rejected back


def _texts(data: Any, column: str) -> list[str]:
    from alignscope.data.preferences import render_text

    frame = getattr(data, "frame", data)
    return [render_text(v) for v in frame[column].tolist()]


def signal_columns(table: pd.DataFrame) -> list[str]:
    """The per-signal margin columns of an audit table (``margin_probe``, ``margin_length``, ...)."""
    return [f"margin_{name}" for name in SIGNALS if f"margin_{name}" in table.columns]


# ============================================================================== the audit
def audit(data: Any, embeddings: Any = None, *, config: AuditConfig | None = None, second_embeddings: Any = None,
          progress: bool = False, report: Callable[[float, str], None] | None = None, **options: Any) -> pd.DataFrame:
    """Audit every pair of ``data`` (a PreferenceData, or a DataFrame with prompt/chosen/rejected).

    ``embeddings``: completion embeddings (see :func:`~alignscope.audit.vectors.pair_matrices`);
    ``None`` embeds ``data`` with ``config.encoder`` (cached on disk). ``second_embeddings``: the
    same for ``config.second_encoder`` (embedded when None and a second encoder is set).
    ``options``: any :class:`~alignscope.audit.config.AuditConfig` field instead of ``config``.
    ``report(fraction, message)`` is told each step. Returns one row per pair with
    :data:`AUDIT_COLUMNS`, ``chosen_words``, ``rejected_words`` and one ``margin_<signal>`` column
    per flip signal used; the configuration, the combiner's weights and timings in
    ``table.attrs["alignscope_audit"]``. Raises :class:`AuditError` for fewer pairs than folds,
    a bad option or embeddings that do not fit the data.
    """
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(AuditConfig)})
    if unknown:
        raise AuditError(f"unknown audit option(s) {', '.join(unknown)}")
    config = dataclasses.replace(config or AuditConfig(), **options).validate()
    tell = report or (lambda fraction, message: None)
    frame = getattr(data, "frame", data)
    if not isinstance(frame, pd.DataFrame) or not {"prompt", "chosen", "rejected"} <= set(frame.columns):
        raise AuditError("the audit needs preference data with prompt, chosen and rejected columns")
    n = len(frame)
    if n < config.folds:
        raise AuditError(f"the data has {n} pairs, fewer than the {config.folds} folds of the cross-fitted probe")
    used_encoder = config.encoder
    if embeddings is None:
        tell(0.0, f"embedding with {config.encoder} (cached)")
        embeddings = _embed(data, config.encoder, progress)
    else:
        used_encoder = getattr(embeddings, "encoder", None) or None
        _check_fingerprint(embeddings, data)
    chosen, rejected = pair_matrices(embeddings, n)
    second = None
    if config.second_encoder:
        if second_embeddings is None:
            tell(0.05, f"embedding with {config.second_encoder} (cached)")
            second_embeddings = _embed(data, config.second_encoder, progress)
        else:
            _check_fingerprint(second_embeddings, data)
        second = pair_matrices(second_embeddings, n)
    started = time.perf_counter()  # the audit proper, once the embeddings exist
    timings: dict[str, float] = {}
    prompts, chosen_texts, rejected_texts = (_texts(data, c) for c in ("prompt", "chosen", "rejected"))
    words_c = np.fromiter((word_count(t) for t in chosen_texts), dtype=np.int64, count=n)
    words_r = np.fromiter((word_count(t) for t in rejected_texts), dtype=np.int64, count=n)

    fold_of = fold_assignment(n, config.folds, config.seed)
    margins: dict[str, np.ndarray] = {}
    steps = [("probe", lambda: oof_probe_margins(chosen, rejected, fold_of, seed=config.seed, C=config.C))]
    if config.length:
        steps.append(("length", lambda: length_margins(words_c, words_r, fold_of)))
    if config.neighbours:
        steps.append(("neighbours", lambda: neighbour_margins(prompts, chosen, rejected, max_block=config.max_block,
                                                              seed=config.seed)))
    if config.lexical:
        steps.append(("lexical", lambda: lexical_margins(chosen_texts, rejected_texts, fold_of, seed=config.seed)))
    if second is not None:
        steps.append(("second", lambda: oof_probe_margins(*second, fold_of, seed=config.seed, C=config.C)))
    for i, (name, compute) in enumerate(steps):
        tell(0.1 + 0.6 * i / len(steps), f"flip signal: {SIGNAL_LABELS[name]}")
        tick = time.perf_counter()
        margins[name] = compute()
        timings[f"{name}_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    combined, weights = combine_margins(margins, fold_of, seed=config.seed)
    flip_score = flip_score_of(combined)
    suspect = label_issues(flip_score, config.flip_filter)
    timings["combine_s"] = time.perf_counter() - tick

    tell(0.75, "near-copies")
    tick = time.perf_counter()
    dup_group = duplicate_groups(prompts, chosen_texts, rejected_texts, chosen, rejected,
                                 embed_threshold=config.dup_embed_threshold, text_threshold=config.dup_text_threshold,
                                 max_block=config.max_block)
    index = np.arange(n, dtype=np.int64)
    is_duplicate = (dup_group >= 0) & (dup_group != index)
    timings["duplicates_s"] = time.perf_counter() - tick

    tell(0.9, "outliers")
    tick = time.perf_counter()
    z = knn_outlier_scores(np.vstack([chosen, rejected]), k=config.outlier_k, reference=config.outlier_reference,
                           seed=config.seed)
    outlier_score = np.maximum(z[:n], z[n:])
    is_outlier = outlier_score > config.outlier_z
    timings["outliers_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    length_ratio = words_c / np.maximum(words_r, 1)
    identical = np.zeros(n, dtype=bool)
    for i in np.nonzero(words_c == words_r)[0].tolist():  # equal texts have equal word counts
        identical[i] = normalise_text(chosen_texts[i]) == normalise_text(rejected_texts[i])
    reasons = _reasons(flip_score, suspect, margins, dup_group, is_duplicate, outlier_score, is_outlier, identical)
    timings["text_s"] = time.perf_counter() - tick

    table = pd.DataFrame({
        "index": index, "flip_score": flip_score, "suspect_flip": suspect.astype(bool), "dup_group": dup_group,
        "is_duplicate": is_duplicate, "outlier_score": outlier_score, "is_outlier": is_outlier,
        "length_ratio": length_ratio.astype(np.float64), "identical": identical, "reasons": reasons,
        "chosen_words": words_c, "rejected_words": words_r,
        **{f"margin_{name}": values for name, values in margins.items()},
    })
    timings["total_s"] = time.perf_counter() - started
    table.attrs["alignscope_audit"] = {
        **config.to_dict(), "n_pairs": n, "encoder": used_encoder, "dim": int(chosen.shape[1]),
        "signals": list(margins), "signal_weights": {k: round(v, 6) for k, v in weights.items()},
        "data_fingerprint": getattr(data, "fingerprint", None),
        "timings": {k: round(v, 3) for k, v in timings.items()}, "alignscope_version": _version(),
    }
    tell(1.0, "audited")
    return table


def _embed(data: Any, encoder: str, progress: bool) -> Any:
    from alignscope.data.preferences import PreferenceData, load_preferences

    if not isinstance(data, PreferenceData):
        data = load_preferences(getattr(data, "frame", data))
    return embed(data, encoder, "completion", progress=progress)


def _check_fingerprint(embeddings: Any, data: Any) -> None:
    made_on, this = getattr(embeddings, "fingerprint", None), getattr(data, "fingerprint", None)
    if isinstance(made_on, str) and isinstance(this, str) and made_on != this:
        raise AuditError(f"the embeddings were made on data with fingerprint {made_on}, this data has {this}")


def _reasons(flip_score, suspect, margins, dup_group, is_duplicate, outlier_score, is_outlier, identical) -> list[str]:
    names = list(margins)
    against = np.column_stack([margins[name] < 0 for name in names]) if names else np.zeros((len(flip_score), 0), bool)
    out = []
    for i in range(len(flip_score)):
        parts = []
        if identical[i]:
            parts.append("chosen = rejected (case/space)")
        if suspect[i]:
            disagree = [SIGNAL_LABELS[name] for j, name in enumerate(names) if against[i, j]]
            why = f": {', '.join(disagree)} disagree" if disagree else ""
            parts.append(f"label looks flipped (p={flip_score[i]:.2f}{why})")
        if is_duplicate[i]:
            parts.append(f"near-copy of pair #{int(dup_group[i]) + 1}")  # pairs are shown numbered from 1
        if is_outlier[i]:
            parts.append(f"outlier (z={outlier_score[i]:.1f})")
        out.append("; ".join(parts))
    return out


# ============================================================================== summary
def _agreement(margin: np.ndarray) -> float:
    """Share of pairs whose margin agrees with the label (ties ½)."""
    return float((margin > 0).mean() + 0.5 * (margin == 0).mean()) if len(margin) else float("nan")


def _rates(table: pd.DataFrame) -> dict[str, Any]:
    n = len(table)
    longer = (table["chosen_words"] > table["rejected_words"]).to_numpy()
    ties = (table["chosen_words"] == table["rejected_words"]).to_numpy()
    acc_longer = float(longer.mean() + 0.5 * ties.mean()) if n else float("nan")
    out = {
        "n_pairs": int(n),
        "suspect_flip": int(table["suspect_flip"].sum()),
        "duplicates": int(table["is_duplicate"].sum()),
        "dup_groups": int(table.loc[table["dup_group"] >= 0, "dup_group"].nunique()),
        "outliers": int(table["is_outlier"].sum()),
        "identical": int(table["identical"].sum()),
        "suspect_flip_rate": float(table["suspect_flip"].mean()) if n else float("nan"),
        "duplicate_rate": float(table["is_duplicate"].mean()) if n else float("nan"),
        "outlier_rate": float(table["is_outlier"].mean()) if n else float("nan"),
        "identical_rate": float(table["identical"].mean()) if n else float("nan"),
        "mean_flip_score": float(table["flip_score"].mean()) if n else float("nan"),
        # how well the cross-fitted flip model agrees with the labels out of fold (ties ½): how far to
        # trust suspect_flip; beside it, the length rule's accuracy on the same labels
        "probe_oof_accuracy": _agreement(0.5 - table["flip_score"].to_numpy()),
        "chosen_longer_share": float(longer.mean()) if n else float("nan"),
        "tie_share": float(ties.mean()) if n else float("nan"),
        "length_baseline": max(acc_longer, 1.0 - acc_longer) if n else float("nan"),
        "length_baseline_direction": "longer wins" if acc_longer >= 0.5 else "shorter wins",
    }
    out["signal_agreement"] = {column.removeprefix("margin_"): _agreement(table[column].to_numpy())
                               for column in signal_columns(table)}
    return out


def audit_summary(data: Any, table: pd.DataFrame, *, max_levels: int = 20) -> dict[str, Any]:
    """Counts and rates of every flag, the length bias, each flip signal's out-of-fold agreement
    with the labels (``signal_agreement``) and the same per metadata column with
    2..``max_levels`` distinct scalar values (``by_column``: column → list of per-value dicts);
    ``calibration`` when the table was calibrated (:func:`~alignscope.audit.calibrate_audit`).

    ``length_baseline`` is the accuracy of the "longer answer wins" rule with its direction chosen
    by majority (ties count ½), i.e. ``max(acc, 1 − acc)``. ``probe_oof_accuracy`` is the combined
    flip model's out-of-fold agreement with the labels.
    """
    _check_table(table, data)
    summary = _rates(table)
    by_column: dict[str, list[dict[str, Any]]] = {}
    frame = getattr(data, "frame", data)
    metadata = [c for c in frame.columns if c not in ("prompt", "chosen", "rejected")]
    for column in metadata:
        values = frame[column]
        if not values.map(lambda v: isinstance(v, (str, bool, int, np.integer, np.bool_))).all():
            continue
        levels = values.nunique()
        if not 2 <= levels <= max_levels:
            continue
        rows = []
        for value, idx in values.groupby(values, sort=True).indices.items():
            rates = _rates(table.iloc[idx])
            rates.pop("signal_agreement")
            rows.append({"value": value.item() if hasattr(value, "item") else value, **rates})
        by_column[column] = rows
    summary["by_column"] = by_column
    config = dict(table.attrs.get("alignscope_audit", {}))
    summary["calibration"] = config.pop("calibration", None)
    summary["config"] = config
    return summary


def _check_table(table: pd.DataFrame, data: Any) -> None:
    missing = [c for c in AUDIT_COLUMNS if c not in table.columns]
    if missing:
        raise AuditError(f"not an audit table: missing column(s) {', '.join(missing)}")
    n = len(getattr(data, "frame", data))
    if len(table) != n:
        raise AuditError(f"the audit has {len(table):,} rows but the data {n:,} pairs: audit this data again")


# ============================================================================== clean selection
def clean_selection(data: Any, table: pd.DataFrame, drop: Sequence[str] = FLAGS) -> Selection:
    """The pairs that carry none of the ``drop`` flags, as a pair-level
    :class:`~alignscope.select.selection.Selection` (method ``"clean"``; columns ``index, score, selected,
    rank`` + the flags), the same type ``select`` returns.

    ``score`` = 1 for kept and 0 for dropped pairs, minus ½·``flip_score`` to order pairs within
    each, so ``selected`` is exactly the top of the ranking. Raises :class:`AuditError` for an
    unknown flag or when nothing is left.
    """
    drop = tuple(drop)
    unknown = [name for name in drop if name not in FLAGS]
    if unknown:
        raise AuditError(f"unknown flag(s) {', '.join(map(repr, unknown))} to drop; choose from {', '.join(FLAGS)}")
    _check_table(table, data)
    flagged = np.zeros(len(table), dtype=bool)
    for name in drop:
        flagged |= table[name].to_numpy(dtype=bool)
    kept = ~flagged
    if not kept.any():
        raise AuditError(f"every pair carries one of the flags {', '.join(drop)}: nothing is left to keep")
    score = kept.astype(np.float64) - 0.5 * table["flip_score"].to_numpy(dtype=np.float64)
    order = order_by_score(score)
    rank = np.empty(len(score), dtype=np.int64)
    rank[order] = np.arange(1, len(score) + 1)
    out = pd.DataFrame({"index": table["index"].to_numpy(dtype=np.int64), "score": score, "selected": kept,
                        "rank": rank})
    for name in FLAGS:
        out[name] = table[name].to_numpy(dtype=bool)
    audit_config = dict(table.attrs.get("alignscope_audit", {}))
    audit_config.pop("calibration", None)
    n_kept = int(kept.sum())
    config = {
        "format_version": SELECTION_FORMAT_VERSION, "method": "clean", "unit": "pair", "k": n_kept,
        "k_requested": None, "fraction": None, "n_points": int(len(out)), "n_selected": n_kept,
        "seed": audit_config.get("seed"), "options": {"drop": list(drop)},
        "dropped": {name: int(table[name].sum()) for name in drop},
        "score": "1 for pairs without the dropped flags, 0 otherwise, minus flip_score/2",
        "encoder": audit_config.get("encoder"), "audit": audit_config, "alignscope_version": _version(),
    }
    return Selection(out, config, getattr(data, "fingerprint", None) or audit_config.get("data_fingerprint"))


# ============================================================================== fixed labels
def fix_flips(table: pd.DataFrame, threshold: float = 0.5) -> np.ndarray:
    """Pair indices (the table's ``index`` values, int64, ascending) whose labels the audit would
    swap back: flagged ``suspect_flip`` AND calibrated ``flip_probability ≥ threshold``.

    ``threshold`` 0.5 is the Bayes rule (a swap is then more likely right than wrong); higher
    values swap fewer, surer pairs. Needs a calibrated table (:func:`~alignscope.audit.calibrate_audit`:
    the flip score alone is not a probability of a flip); raises :class:`AuditError` otherwise.
    """
    if "flip_probability" not in table.columns:
        raise AuditError("fixing labels needs a calibrated audit (flip_probability): run it with --calibrate "
                         "(alignscope.audit.calibrate_audit)")
    if not (isinstance(threshold, (int, float)) and 0.0 <= float(threshold) <= 1.0):
        raise AuditError(f"the fix threshold must be a probability in [0, 1], got {threshold!r}")
    swap = table["suspect_flip"].to_numpy(dtype=bool) & (table["flip_probability"].to_numpy() >= float(threshold))
    return np.sort(table["index"].to_numpy(dtype=np.int64)[swap])


def fixed_frame(data: Any, table: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """A copy of ``data``'s frame (every column, same rows) with chosen and rejected swapped on
    :func:`fix_flips`'s pairs and a bool column ``audit_swapped`` saying which.

    ``table`` may cover only some of the pairs (e.g. a sweep's training pool) as long as its
    ``index`` column holds ``data``'s row numbers: the other rows are copied unchanged."""
    frame = getattr(data, "frame", data)
    swap = fix_flips(table, threshold)
    if len(swap) and (swap.min() < 0 or swap.max() >= len(frame)):
        raise AuditError(f"the audit names pair {int(swap.max())}, but the data has {len(frame):,} pairs: "
                         "audit this data again")
    frame = swap_labels(frame, swap)
    flag = np.zeros(len(frame), dtype=bool)
    flag[swap] = True
    frame[FIXED_COLUMN] = flag
    return frame


def write_fixed(data: Any, table: pd.DataFrame, path: Any, threshold: float = 0.5) -> Path:
    """Write :func:`fixed_frame` atomically as ``.parquet`` or ``.jsonl`` (a data file every
    alignscope command reads). Returns the path."""

    path = Path(path)
    if not path.name.endswith((".parquet", ".jsonl")):
        raise AuditError(f"{path.name}: the fixed data must end with .parquet or .jsonl")
    frame = fixed_frame(data, table, threshold)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if path.name.endswith(".parquet"):
            frame.to_parquet(tmp, index=False)
        else:
            tmp.write_text(frame.to_json(orient="records", lines=True, force_ascii=False), encoding="utf-8")
    return path


# ============================================================================== I/O
def write_audit(table: pd.DataFrame, path: Any) -> Any:
    """Write the audit table to parquet atomically, its config in the schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq


    path = Path(path)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    metadata = dict(arrow.schema.metadata or {})
    metadata[AUDIT_META_KEY] = json.dumps(table.attrs.get("alignscope_audit", {}), default=str).encode("utf-8")
    with atomic_path(path) as tmp:
        pq.write_table(arrow.replace_schema_metadata(metadata), tmp)
    return path


def read_audit(path: Any) -> pd.DataFrame:
    """Read an audit parquet back (config in ``attrs["alignscope_audit"]``)."""
    import pyarrow.parquet as pq

    try:
        arrow = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for non-parquet input
        raise AuditError(f"{path}: not an audit parquet file ({type(exc).__name__})") from None
    table = arrow.to_pandas()
    raw = (arrow.schema.metadata or {}).get(AUDIT_META_KEY)
    table.attrs["alignscope_audit"] = json.loads(raw.decode("utf-8")) if raw else {}
    missing = [c for c in AUDIT_COLUMNS if c not in table.columns]
    if missing:
        raise AuditError(f"{path}: not an audit table (missing {', '.join(missing)})")
    return table


def _version() -> str:

    return __version__
