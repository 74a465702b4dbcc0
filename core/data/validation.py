"""Checking preference rows one by one: which format a table is in (standard, conversational,
implicit-prompt), whether every row is usable (one-line reasons naming the column), the
implicit-prompt split of Anthropic HH dialogues, and the :class:`ValidationReport` of a load.
:func:`alignscope.data.preferences.canonicalise` drives it row by row.
"""
from __future__ import annotations

import difflib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd

from alignscope.data.readers import DataError, is_missing

__all__ = ["ValidationReport", "RowProblem", "CANONICAL", "HH_ASSISTANT", "DEFAULT_MAX_ROW_CHARS", "render_text",
           "apply_column_map", "missing_column_reason", "detect_format", "validate_row"]

CANONICAL = ("prompt", "chosen", "rejected")
HH_ASSISTANT = "\n\nAssistant:"
DEFAULT_MAX_ROW_CHARS = 200_000
def render_text(value: Any) -> str:
    """Plain text of a canonical value: strings as they are, message lists as ``role: content``."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in value)
    return "" if is_missing(value) else str(value)



# Names people actually use for the three columns; used only to suggest a --column mapping.
_ALIASES = {
    "prompt": ["question", "instruction", "input", "query", "context", "history"],
    "chosen": ["chosen_response", "response_chosen", "preferred", "accepted", "winner", "good",
               "output_1", "response_a"],
    "rejected": ["rejected_response", "response_rejected", "dispreferred", "loser", "bad",
                 "output_2", "response_b"],
}

@dataclass
class ValidationReport:
    """What loading found: how many rows were read and kept, and each dropped row with why."""

    n_read: int = 0
    n_kept: int = 0
    dropped: list[dict[str, Any]] = field(default_factory=list)  # {"row", "column", "reason"}
    warnings: dict[str, int] = field(default_factory=dict)  # kept rows worth knowing about

    @property
    def n_dropped(self) -> int:
        return len(self.dropped)

    def reasons(self) -> dict[str, int]:
        """Dropped rows counted by reason (the reason text without row-specific numbers)."""
        return dict(Counter(_reason_kind(d["reason"]) for d in self.dropped).most_common())

    def summary(self) -> str:
        notes = "".join(f"; note: {n} {what}" for what, n in self.warnings.items())
        if not self.dropped:
            return f"all {self.n_read} rows valid{notes}"
        parts = ", ".join(f"{n} {reason}" for reason, n in self.reasons().items())
        return f"dropped {self.n_dropped} of {self.n_read} rows: {parts}{notes}"

    def to_dict(self) -> dict[str, Any]:
        return {"n_read": self.n_read, "n_kept": self.n_kept, "n_dropped": self.n_dropped,
                "reasons": self.reasons(), "warnings": self.warnings, "dropped": self.dropped[:1000]}


class RowProblem(Exception):
    def __init__(self, column: str | None, reason: str):
        super().__init__(reason)
        self.column, self.reason = column, reason


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        return "messages"
    if is_missing(value):
        return "missing"
    return "other"


def detect_format(frame: pd.DataFrame, rows: list[int], has_prompt: bool) -> tuple[str, int]:
    """Format of the file, from its first row with a usable ``chosen`` value."""
    for value, row in zip(frame["chosen"].tolist(), rows):
        kind = _kind(value)
        if kind == "messages":
            return "conversational", row
        if kind == "text" and value.strip():
            return ("standard" if has_prompt else "implicit_prompt"), row
    return ("standard" if has_prompt else "implicit_prompt"), rows[0]


def validate_row(values: dict[str, Any], *, fmt: str, has_prompt: bool, first_row: int,
                  max_row_chars: int) -> tuple[Any, Any, Any]:
    conversational = fmt == "conversational"
    for column, value in values.items():
        kind = _kind(value)
        if kind == "missing":
            if column == "prompt" and isinstance(values["chosen"], str) and HH_ASSISTANT in values["chosen"]:
                raise RowProblem(column, "no prompt here although other rows have one "
                                          "(mixed explicit- and implicit-prompt rows in one file)")
            raise RowProblem(column, "missing value (null or NaN)")
        if conversational and kind == "text" and column != "prompt":  # a text prompt: see below
            raise RowProblem(column, f"a string, but row {first_row} is a message list "
                                      "(mixed standard and conversational rows in one file)")
        if not conversational and kind == "messages":
            raise RowProblem(column, f"a message list, but row {first_row} is a string "
                                      "(mixed standard and conversational rows in one file)")
        if kind == "other":
            want = "a list of {role, content} messages" if conversational else "a string"
            raise RowProblem(column, f"expected {want}, got {_type_name(value)}")
        # An empty *response* is data (a model that said nothing lost or won); an empty prompt is
        # not. Empty responses are kept and counted in the report's warnings.
        if kind == "text" and not value.strip() and (column == "prompt" or not has_prompt):
            raise RowProblem(column, "empty string")
        if kind == "messages":
            _check_messages(column, value)

    total = sum(len(render_text(v)) for v in values.values())
    if total > max_row_chars:
        largest = max(values, key=lambda c: len(render_text(values[c])))
        raise RowProblem(largest, f"row has {total:,} characters, over the limit of "
                                   f"{max_row_chars:,} (raise it with --max-row-chars)")

    if has_prompt and conversational and isinstance(values["prompt"], str):
        prompt, chosen, rejected = _text_prompt_with_messages(values["prompt"], values["chosen"], values["rejected"])
    elif has_prompt:
        prompt, chosen, rejected = values["prompt"], values["chosen"], values["rejected"]
    elif conversational:
        prompt, chosen, rejected = _split_shared_messages(values["chosen"], values["rejected"])
    else:
        prompt, chosen, rejected = _split_hh(values["chosen"], values["rejected"])
    if chosen == rejected:
        raise RowProblem("rejected", "identical to 'chosen'")
    return prompt, chosen, rejected


def _check_messages(column: str, messages: list[dict]) -> None:
    for j, message in enumerate(messages, start=1):
        if "role" not in message or "content" not in message:
            raise RowProblem(column, f"message {j} needs 'role' and 'content' keys")
        if not isinstance(message["content"], str) or not message["content"].strip():
            raise RowProblem(column, f"message {j} has empty or non-string content")


def _split_hh(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Anthropic HH: prompt = shared prefix up to and including the last ``\\n\\nAssistant:``."""
    shared = os.path.commonprefix([chosen, rejected])
    cut = shared.rfind(HH_ASSISTANT)
    if cut < 0:
        raise RowProblem("chosen", "cannot extract the prompt: chosen and rejected share no "
                                    "'\\n\\nAssistant:' prefix (add a prompt column)")
    end = cut + len(HH_ASSISTANT)
    # An empty final turn is kept: HH has a few ("Assistant: " with nothing after it), and an
    # empty reply preferred over a harmful one is a real preference. The report counts them.
    return chosen[:end], chosen[end:], rejected[end:]


def _split_shared_messages(chosen: list, rejected: list) -> tuple[list, list, list]:
    """Conversational without a prompt column: prompt = the shared leading messages."""
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    if n == 0:
        raise RowProblem("chosen", "cannot extract the prompt: chosen and rejected share no "
                                    "leading messages (add a prompt column)")
    prompt, chosen_reply, rejected_reply = chosen[:n], chosen[n:], rejected[n:]
    for column, reply in (("chosen", chosen_reply), ("rejected", rejected_reply)):
        if not reply:
            raise RowProblem(column, "no response messages after the shared prompt")
    return prompt, chosen_reply, rejected_reply


def _text_prompt_with_messages(prompt: str, chosen: list, rejected: list) -> tuple[list, list, list]:
    """A text prompt beside message-list answers, as in UltraFeedback (``HuggingFaceH4/
    ultrafeedback_binarized``): the answers usually repeat the prompt as their first message, so the
    shared leading messages are the prompt (what the model was shown); answers that hold only the
    replies get the text as one user message."""
    if chosen and rejected and chosen[0] == rejected[0]:
        return _split_shared_messages(chosen, rejected)
    return [{"role": "user", "content": prompt}], chosen, rejected


def apply_column_map(frame: pd.DataFrame, columns: Mapping[str, str], name: str) -> pd.DataFrame:
    if not columns:
        return frame
    for canonical, source in columns.items():
        if canonical not in CANONICAL:
            raise DataError(f"cannot map {canonical!r}: only prompt, chosen and rejected can be mapped",
                            file=name)
        if source not in frame.columns:
            raise DataError(missing_column_reason(source, list(frame.columns)), file=name,
                            row=1, column=source)
    renamed = {source: canonical for canonical, source in columns.items()}
    clashes = [c for c in renamed.values() if c in frame.columns and c not in renamed]
    frame = frame.drop(columns=clashes) if clashes else frame
    return frame.rename(columns=renamed)


def missing_column_reason(column: str, available: list[str]) -> str:
    shown = ", ".join(repr(str(c)) for c in available[:12]) + (" ..." if len(available) > 12 else "")
    candidates = [str(c) for c in available]
    guess = difflib.get_close_matches(column, candidates, n=1, cutoff=0.6)
    if not guess:
        guess = [c for c in candidates if c.lower() in _ALIASES.get(column, [])][:1]
    suggestion = f"; did you mean {guess[0]!r}?" if guess else ""
    return f"column not found (columns are {shown}){suggestion}"


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    return f"a {type(value).__name__}"


def _reason_kind(reason: str) -> str:
    """Group reasons that differ only by numbers ("row has 250,001 characters ...")."""
    return re.sub(r"\d[\d,]*", "N", reason)
