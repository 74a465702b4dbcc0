"""The options of the pair selectors, declared once and cheap to import (no scikit-learn, no torch).

Each pair method (:data:`PAIR_OPTIONS`) has a dataclass of :func:`alignscope.options.option` fields
(help, choices, bounds). The estimators of :mod:`alignscope.select.pairwise` and
:mod:`alignscope.select.lm_margin` inherit these fields (a dataclass's generated ``__init__`` only
stores them, as scikit-learn requires, and ``fit`` checks them with
:func:`alignscope.options.fields_problem`); ``alignscope select`` generates its flags and the Select
page its widgets from the same fields (:func:`method_options`), so neither imports the estimators to
build a form. The papers behind each method are cited on its estimator.
"""
from __future__ import annotations

import dataclasses

from alignscope.options import option

__all__ = ["PAIR_OPTIONS", "PAIR_METHODS", "KEEP_CHOICES", "KEEP_HELP", "LengthOptions", "MarginOptions",
           "RDSOptions", "LMMarginOptions", "method_options"]

KEEP_CHOICES = ("easy", "hard", "middle")
KEEP_HELP = ("easy: the largest margins (margin maximisation; what Selective DPO keeps); hard: the smallest "
             "(the smallest implicit-reward gap); middle: nearest the median, both tails dropped")
_TEST_FRACTION_HELP = ("share of pairs held out by the split that training, eval-probe and sweeps use; "
                       "their labels never shape the ranking")
_SEED_HELP = "seed (breaks ties between equal scores)"
# Fields that are not options of a method (the CLI's --seed and the page's seed input set them).
_NOT_OPTIONS = frozenset({"seed"})


# eq=False: an estimator compares (and hashes) by identity, as scikit-learn's estimators do.
@dataclasses.dataclass(kw_only=True, eq=False)
class LengthOptions:
    seed: int = option(0, help=_SEED_HELP, min=0)
    by: str = option("gap", choices=("gap", "chosen"),
                     help="gap: largest chosen − rejected word gap in the direction the data's length rule learned; "
                          "chosen: the longest chosen answers (Zhao et al. 2024)")
    test_fraction: float = option(0.2, min=0, max=1, max_open=True, help=_TEST_FRACTION_HELP)
    split_seed: int = option(0, min=0, help="seed of that split")


@dataclasses.dataclass(kw_only=True, eq=False)
class MarginOptions:
    seed: int = option(0, help="seed of the folds (and of ties)", min=0)
    keep: str = option("easy", choices=KEEP_CHOICES, help=KEEP_HELP)
    folds: int = option(5, min=2, help="cross-fitting folds of the probe")
    C: float = option(1.0, min=0, min_open=True, help="inverse L2 strength of the probe's logistic regression")
    test_fraction: float = option(0.2, min=0, max=1, max_open=True, help=_TEST_FRACTION_HELP)
    split_seed: int = option(0, min=0, help="seed of that split")
    eval_encoder: str | None = option(None, default_text="the selector's encoder (circular)",
                                      help="the encoder the evaluator judges with (eval-probe --eval-encoder); "
                                           "when it is the selection's, the selection is marked circular")


@dataclasses.dataclass(kw_only=True, eq=False)
class RDSOptions:
    seed: int = option(0, help=_SEED_HELP, min=0)
    target: str | None = option(None, default_text="the held-out prompts of the data's own split",
                                help="a file of prompts (.txt, one a line) or pairs (.jsonl/.json/.parquet/.csv with "
                                     "a prompt column) to select toward")
    query: str = option("prompt", choices=("prompt", "prompt+chosen"),
                        help="what of each pair is compared with the target: its prompt, or prompt + chosen answer")
    top_k: int = option(10, min=1, help="similarity = mean cosine to this many most similar target points")
    test_fraction: float = option(0.2, min=0, max=1, max_open=True, help=_TEST_FRACTION_HELP)
    split_seed: int = option(0, min=0, help="seed of that split")


@dataclasses.dataclass(kw_only=True, eq=False)
class LMMarginOptions:
    seed: int = option(0, help=_SEED_HELP, min=0)
    model: str = option("tiny", help="reference causal LM: tiny (random weights: proves the plumbing only), "
                                     "smollm2-135m or a model folder")
    keep: str = option("easy", choices=KEEP_CHOICES, help=KEEP_HELP)
    normalise: bool = option(False, help="per-token (length-normalised) log-probabilities instead of sums")
    batch_size: int = option(8, min=1, help="sequences per forward pass")
    max_length: int = option(512, min=2, help="tokens of prompt + answer kept (cut from the right, as TRL does)")
    device: str | None = option(None, default_text="a GPU when present, else the CPU", help="torch device")
    cpu_max_pairs: int = option(2000, min=1, help="on a CPU, refuse more pairs than this (a GPU has no limit)")


PAIR_OPTIONS: dict[str, type] = {"length": LengthOptions, "margin": MarginOptions, "rds": RDSOptions,
                                 "lm-margin": LMMarginOptions}
PAIR_METHODS = tuple(PAIR_OPTIONS)


def method_options(method: str) -> list[dataclasses.Field]:
    """The user options of a pair method (seed excluded), in declaration order; ``[]`` for others."""
    cls = PAIR_OPTIONS.get(method)
    return [] if cls is None else [f for f in dataclasses.fields(cls) if f.name not in _NOT_OPTIONS]
