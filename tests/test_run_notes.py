"""What a run's files say in sentences (alignscope.train.run_notes): warnings grouped by kind with a
count, truncation in numbers with the setting that fixes it, the plumbing model named."""
from __future__ import annotations

import logging

from alignscope.train.run_notes import is_plumbing_model, truncation_note, warning_groups, warning_key
from alignscope.train.callbacks import TrainingWarnings


def test_one_warning_with_other_numbers_is_one_kind_with_a_count():
    with TrainingWarnings() as caught:
        log = logging.getLogger("trl")
        for n in range(15):
            log.warning("Token indices sequence length is longer than the maximum (%d > 128)", 200 + n)
        logging.getLogger("transformers").warning("use_cache=True is incompatible with gradient checkpointing")
    record = caught.record
    assert record["total"] == 16 and len(record["groups"]) == 2
    assert warning_groups(record) == [("Token indices sequence length is longer than the maximum (200 > 128)", 15),
                                      ("use_cache=True is incompatible with gradient checkpointing", 1)]
    # warnings.json written before the counts existed: grouped when read
    old = {"warnings": [f"Cut at {n} tokens" for n in (130, 140, 150)] + ["Another"]}
    assert warning_groups(old) == [("Cut at 130 tokens", 3), ("Another", 1)]
    assert warning_groups(None) == [] and warning_key("a 1.5 b 22") == "a # b #"


def test_truncation_is_stated_with_its_numbers_and_the_setting_that_fixes_it():
    evaluation = {"n_pairs": 1200, "max_length": 128,
                  "truncation": {"n_completions_truncated": 884, "n_completions_without_tokens": 38}}
    note = truncation_note(evaluation)
    assert note.startswith("884 of 2,400 held-out completions (36.8%) were longer than max_length = 128 tokens")
    assert "38 kept no token of their answer" in note and "--max-length" in note
    assert truncation_note({"n_pairs": 10, "truncation": {"n_completions_truncated": 0,
                                                          "n_completions_without_tokens": 0}}) is None
    assert truncation_note({"accuracy": 0.6}) is None  # older evaluations say nothing about it


def test_the_plumbing_model():
    assert is_plumbing_model("tiny") and not is_plumbing_model("smollm2-135m") and not is_plumbing_model(None)
