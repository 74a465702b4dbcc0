"""What a finished training run's files say, in sentences the Train and Runs pages (and the CLI) show.

* :func:`warning_groups`: the TRL/transformers warnings of ``warnings.json`` as (example, count),
  one per kind of warning (the same wording with other numbers is one kind);
* :func:`truncation_note`: how many held-out completions ``max_length`` cut, and how many it left
  without a single token of their answer, with the setting that fixes it;
* :func:`is_plumbing_model`: a model whose scores say only that the pipeline runs (``tiny``).

Torch-free and cheap: pages import it.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

__all__ = ["PLUMBING_MODELS", "warning_key", "warning_groups", "truncation_note", "is_plumbing_model"]

# Random-init models for plumbing and tests: their scores never support a claim about content.
PLUMBING_MODELS = frozenset({"tiny"})
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def warning_key(message: str) -> str:
    """The kind of a warning: its words with every number replaced by ``#``."""
    return _NUMBER.sub("#", " ".join(str(message).split()))


def warning_groups(record: Mapping[str, Any] | None) -> list[tuple[str, int]]:
    """``[(example message, count), …]`` from a ``warnings.json`` record, most frequent first.
    Records written before the counts existed (``{"warnings": [...]}``) are grouped here."""
    if not record:
        return []
    if record.get("groups"):
        groups = [(str(g["message"]), int(g.get("count", 1))) for g in record["groups"]]
    else:
        seen: dict[str, list] = {}
        for message in record.get("warnings") or []:
            key = warning_key(message)
            seen.setdefault(key, [str(message), 0])[1] += 1
        groups = [(message, count) for message, count in seen.values()]
    return sorted(groups, key=lambda group: -group[1])


def truncation_note(evaluation: Mapping[str, Any] | None) -> str | None:
    """One sentence when ``max_length`` cut held-out completions (None when it cut nothing or the
    evaluation does not say): how many of how many, how many kept no token of their answer, and
    the setting that fixes it."""
    if not evaluation:
        return None
    counts = evaluation.get("truncation") or {}
    cut = int(counts.get("n_completions_truncated") or 0)
    empty = int(counts.get("n_completions_without_tokens") or 0)
    if not cut and not empty:
        return None
    total = 2 * int(evaluation.get("n_pairs") or evaluation.get("n_heldout") or 0)
    limit = evaluation.get("max_length")
    share = f" ({cut / total:.1%})" if total else ""
    text = (f"{cut:,}{f' of {total:,}' if total else ''} held-out completions{share} were longer than max_length"
            f"{f' = {limit}' if limit else ''} tokens (prompt + answer) and were cut")
    if empty:
        text += f"; {empty:,} kept no token of their answer (the prompt filled the limit) and score as empty answers"
    return text + (". Training cuts the same way. Raise max_length (the Train page's 'Max length (tokens)', "
                   "`alignscope train --max-length`) so that the answers are seen whole.")


def is_plumbing_model(model: str | None) -> bool:
    """True for a model whose scores check the plumbing only (the random-init ``tiny``)."""
    return str(model or "") in PLUMBING_MODELS
