"""The audit's options, declared once (:func:`alignscope.options.option`): ``alignscope audit``'s
flags (:func:`alignscope.cli.config_flags.add_config_arguments`), the Audit page's widgets and
:func:`alignscope.audit.audit`'s keyword arguments all come from :class:`AuditConfig`. Cheap to
import (numpy only), so the CLI builds its parser without scikit-learn.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from alignscope.errors import AlignscopeError
from alignscope.options import fields_problem, flag_name, option

__all__ = ["AuditError", "AuditConfig", "CalibrationConfig", "audit_option_fields", "audit_option_defaults"]


class AuditError(AlignscopeError):
    """Bad audit input (too few pairs, embeddings of the wrong shape, unknown flag); one line."""


@dataclass(frozen=True)
class AuditConfig:
    """How every pair is audited (see :mod:`alignscope.audit` for each rule)."""

    cli_group = "audit options"

    encoder: str = option("static", help="encoder of the completion embeddings: static, minilm, lsa or "
                                         "lm-last-token:<model>")
    second_encoder: str | None = option(
        None, default_text="none",
        help="a second encoder whose own cross-fitted probe joins the flip model (e.g. static)")
    folds: int = option(5, min=2, max=50,
                        help="folds of the cross-fitted flip model (no pair is scored by a model that saw it)")
    seed: int = option(0, min=0, help="seed of the folds, samples and planted defects")
    C: float = option(1.0, min=0, min_open=True, help="inverse L2 strength of the embedding probe")
    length: bool = option(True, help="the length signal (the data's own length rule, learned out of fold) joins the "
                                     "flip model")
    neighbours: bool = option(True, help="the neighbour signal (answers to the same prompt with the opposite verdict "
                                         "elsewhere) joins the flip model")
    lexical: bool = option(True, help="a word-level probe (hashed word 1- and 2-grams of the answers) joins the flip "
                                      "model")
    flip_filter: str = option(
        "confident_learning", choices=("confident_learning", "prune_by_noise_rate", "both", "predicted_neq_given"),
        help="cleanlab's rule that turns flip scores into suspect_flip flags: confident_learning (the confident "
             "joint's off-diagonal: fewer, surer flags) or prune_by_noise_rate (as many flags as the estimated noise: "
             "more recall)")
    dup_embed_threshold: float = option(0.9, min=0, max=1,
                                        help="near-copies: embedding cosine of both answers at least this")
    dup_text_threshold: float = option(0.8, min=0, max=1,
                                       help="near-copies: character 3-shingle Jaccard of both answers at least this")
    max_block: int = option(20_000, min=2, help="pairs of one prompt compared all against all; a larger block falls "
                                               "back to exact matches")
    outlier_k: int = option(10, min=1, help="outliers: nearest completions averaged")
    outlier_reference: int = option(2000, min=2, help="outliers: completions in the seeded reference sample")
    outlier_z: float = option(3.5, min=0, min_open=True,
                              help="outliers: robust z-score above which a pair is an outlier")

    def validate(self) -> "AuditConfig":
        """Self, or a one-line :class:`AuditError` naming the first bad option."""
        problem = fields_problem(self)
        if problem is not None:
            raise AuditError(problem)
        if not isinstance(self.encoder, str) or not self.encoder.strip():
            raise AuditError(f"encoder must be a non-empty name, got {self.encoder!r}")
        if self.second_encoder is not None and (not isinstance(self.second_encoder, str) or not self.second_encoder.strip()):
            raise AuditError(f"second_encoder must be an encoder name or None, got {self.second_encoder!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CalibrationConfig:
    """Self-calibration: plant known defects in copies of the data and audit them the same way
    (:func:`alignscope.audit.calibrate_audit`)."""

    cli_group = "self-calibration (with --calibrate)"

    calibrate: bool = option(False, help="plant known flips and near-copies in copies of the data, audit them the "
                                         "same way and estimate how often the flags are right on THIS data "
                                         "(repeats + 1 audits)")
    planted_rate: float = option(0.05, min=0, min_open=True, max=0.25, requires="calibrate",
                                 help="share of pairs flipped (and as many near-copies added) in each planted copy")
    repeats: int = option(3, min=1, max=20, requires="calibrate", help="planted copies, each with its own seeded sample")
    target_precision: float = option(0.8, min=0, min_open=True, max=1, max_open=True, requires="calibrate",
                                     help="the precision asked of a flip threshold: how many pairs can be flagged at it")
    fix_threshold: float = option(0.5, min=0.5, max=1, max_open=True, requires="calibrate",
                                  help="flip probability at or above which a flagged pair's label is swapped back "
                                       "(--fix-out); 0.5 is the Bayes rule: a swap is then more likely right than wrong")

    def validate(self) -> "CalibrationConfig":
        """Self, or a one-line :class:`AuditError` naming the first bad option."""
        problem = fields_problem(self)
        if problem is not None:
            raise AuditError(problem)
        return self


def audit_option_fields(*classes: type) -> dict[str, dataclasses.Field]:
    """Field name → field of the audit's option classes (default: both), in declaration order."""
    out: dict[str, dataclasses.Field] = {}
    for cls in classes or (AuditConfig, CalibrationConfig):
        for f in dataclasses.fields(cls):
            out.setdefault(f.name, f)
    return out


def audit_option_defaults(*classes: type) -> dict[str, Any]:
    """Field name → dataclass default (what a page's widget starts at)."""
    return {name: f.default for name, f in audit_option_fields(*classes).items()}


def requirement_problem(given: dict[str, Any], classes: tuple[type, ...] = (AuditConfig, CalibrationConfig)) -> str | None:
    """Why options set in ``given`` need another that is off (``--repeats`` without ``--calibrate``), or None."""
    fields = audit_option_fields(*classes)
    for name, value in given.items():
        needs = fields[name].metadata.get("requires") if name in fields else None
        if needs and value is not None and not given.get(needs, fields[needs].default):
            return f"{flag_name(name)} only applies with {flag_name(needs)}"
    return None
