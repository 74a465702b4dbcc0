"""Audit a preference set: suspected flipped labels, near-duplicates, outliers and length bias,
and — on request — how often those flags are right on this very data.

:func:`audit` returns one row per pair (a ``pandas.DataFrame``, columns :data:`AUDIT_COLUMNS` +
``chosen_words``, ``rejected_words`` and one ``margin_<signal>`` per flip signal);
:func:`audit_summary` condenses it (counts, rates, per metadata column); :func:`clean_selection`
turns it into an ordinary pair-level selection (method ``"clean"``) that ``alignscope train
--selection``, ``export`` and ``eval-probe`` read unchanged. :func:`calibrate_audit` plants known
flips and near-copies in copies of the data, audits them the same way and adds a calibrated
``flip_probability`` per pair and the flag's estimated precision, recall and the number of real
flips, with intervals (:mod:`alignscope.audit.calibrate`); :func:`fix_flips` /
:func:`fixed_frame` swap the labels back where that probability says so. Everything works on
the completion embeddings of :func:`alignscope.embed.encoders.embed` (``unit="completion"``: a
``(2N, d)`` matrix, rows ``0..N-1`` the chosen and ``N..2N-1`` the rejected completions).
Options: :class:`AuditConfig` and :class:`CalibrationConfig` (declared once; the CLI's flags and
the page's widgets come from them).

The rules (each an adjustable, documented default):

``flip_score`` / ``suspect_flip``
    Several flip signals (:mod:`alignscope.audit.signals`), each an out-of-fold Bradley–Terry
    margin (positive = agrees with the label): a reward probe on the embeddings (Bradley & Terry
    1952), the data's own length rule, neighbour agreement (answers to the same prompt with the
    opposite verdict elsewhere), a word-level probe on hashed word 1–2-grams and, optionally, a
    second encoder's probe. One cross-fitted logistic regression without intercept stacks them;
    ``flip_score`` = 1 − σ(combined margin), the out-of-fold probability that the REJECTED answer
    is the better one. No pair is scored by a model that saw its label. ``suspect_flip`` is
    confident learning (Northcutt, Jiang & Chuang, JAIR 2021) as implemented by
    ``cleanlab.filter.find_label_issues`` on the ``2N`` rows (each pair as labelled and negated).
    ``flip_score`` is NOT the probability that a pair is flipped; ``flip_probability`` (after
    calibration) is.
``dup_group`` / ``is_duplicate``
    Whole-pair near-duplicates: pairs are blocked by their normalised prompt (lower case, every run
    of non-alphanumeric characters a single space). Inside a block, candidates need an embedding
    cosine ≥ ``dup_embed_threshold`` (0.9) for BOTH the chosen and the rejected completions, then a
    Jaccard similarity ≥ ``dup_text_threshold`` (0.8) of the character 3-shingle sets of BOTH
    normalised responses. Accepted links are merged (union-find); ``dup_group`` is the lowest pair
    index of the group (−1 when none), which is also the kept representative, and
    ``is_duplicate`` marks every other member. A block of more than ``max_block`` pairs (20,000)
    falls back to exact matches of the normalised texts. No all-pairs matrix is ever formed.
``outlier_score`` / ``is_outlier``
    k-nearest-neighbour distance (Ramaswamy, Rastogi & Shim, SIGMOD 2000): the mean cosine
    distance of each completion to its ``outlier_k`` (10) nearest completions in a seeded reference
    sample of ``outlier_reference`` (2,000) completions (itself excluded), as a robust z-score
    ``(x − median) / (1.4826·MAD)``; a pair's ``outlier_score`` is the larger z of its two
    completions and ``is_outlier`` is ``outlier_score > outlier_z`` (3.5, Iglewicz & Hoaglin 1993).
``length_ratio`` / ``identical``
    Chosen words over rejected words (whitespace tokens; a 0-word rejected counts as 1 word), and
    whether chosen and rejected are equal after lower-casing and collapsing whitespace.

Measured in ``benchmarks/bench_audit.py`` (``benchmarks/results/audit.json``).
"""
from __future__ import annotations

import importlib
from typing import Any

# What each name is exported from. The submodules are imported on first use (PEP 562), so that
# ``alignscope.audit.config`` stays cheap for the command line's parser (no pandas, no sklearn).
_EXPORTS = {
    "config": ("AuditError", "AuditConfig", "CalibrationConfig", "audit_option_fields", "audit_option_defaults"),
    "table": ("AUDIT_COLUMNS", "FLAGS", "SIGNAL_LABELS", "AUDIT_META_KEY", "audit", "audit_summary",
              "clean_selection", "fix_flips", "fixed_frame", "write_fixed", "write_audit", "read_audit",
              "signal_columns"),
    "calibrate": ("calibrate_audit", "calibration_sentences", "estimate_from_scores", "flip_probabilities",
                  "plant_defects", "near_copy_text"),
    "signals": ("SIGNALS", "fit_bt_probe", "oof_flip_scores", "oof_probe_margins", "fold_assignment",
                "length_margins", "neighbour_margins", "lexical_margins", "combine_margins"),
    "vectors": ("pair_matrices", "unit_rows"),
    "duplicates": ("normalise_prompt", "normalise_text", "duplicate_groups", "knn_outlier_scores"),
    "review": ("nearest_pairs", "word_diff", "search_pairs", "duplicate_members", "keep_duplicates"),
    "cache": ("audit_cache_path", "cached_audit", "audit_cached", "audit_job"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = list(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'alignscope.audit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"alignscope.audit.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
