"""One way to show an evaluation on every page: each score beside the rule it must beat.

``show_scores(result)`` takes what ``eval.json``, ``eval-probe`` or a checkpoint line holds
(:func:`alignscope.evaluate.metrics.preference_metrics` keys) and draws accuracy beside the length rule,
the length-controlled accuracy (0.5 = length only) and the log loss, each with its interval, plus a
sentence saying whether the score shows more than length — except for a plumbing model (``tiny``),
whose scores support no such claim — and how many held-out completions ``max_length`` cut. Older
results without those keys show what they have.
"""
from __future__ import annotations

from typing import Any, Mapping

import streamlit as st

from alignscope.train.run_notes import is_plumbing_model, truncation_note


def _span(values: Any) -> str:
    return f"95 % interval {values[0]:.1%} – {values[1]:.1%}" if values else "no interval"


def show_scores(result: Mapping[str, Any], *, label: str = "Preference accuracy") -> None:
    """Metric cards for one evaluation; see the module docstring."""
    cols = st.columns(4)
    cols[0].metric(label, f"{result['accuracy']:.1%}", help=_span(result.get("accuracy_ci95")))
    if result.get("length_baseline") is None:
        cols[1].metric("95 % interval", _span(result.get("accuracy_ci95")).replace("95 % interval ", ""))
        cols[2].metric("Held-out pairs", f"{result.get('n_pairs') or result.get('n_test') or 0:,}")
        st.caption("Evaluated before alignscope recorded baselines: re-run it to see the length rule beside it.")
        return
    direction = result.get("length_baseline_direction", "longer")
    cols[1].metric(f"Length rule ({direction} wins)", f"{result['length_baseline']:.1%}",
                   delta=f"{result['accuracy'] - result['length_baseline']:+.1%} vs rule",
                   help="the trivial rule every score must beat: its direction is learned from the training pairs, "
                        "its accuracy measured on the same held-out pairs")
    cols[2].metric("Length-controlled accuracy", f"{result['length_controlled_accuracy']:.1%}",
                   help=_span(result.get("length_controlled_ci95")) + "; 50 % = length only (or a coin): the mean "
                        "of the accuracy where the chosen answer is longer and where it is shorter")
    cols[3].metric("Log loss", f"{result['log_loss']:.3f}",
                   help=("Bradley–Terry −log σ(margin); 0.693 = no information; "
                         + (f"interval {result['log_loss_ci95'][0]:.3f} – {result['log_loss_ci95'][1]:.3f}; "
                            if result.get("log_loss_ci95") else "")
                         + (f"the length rule's: {result['length_baseline_log_loss']:.3f}"
                            if result.get("length_baseline_log_loss") is not None else "")))
    n = result.get("n_heldout") or result.get("n_pairs")
    model = (result.get("training") or {}).get("model")
    if is_plumbing_model(model):
        st.caption(f"{model} is a random-init model that checks the plumbing: these scores say the run works, not what "
                   f"the pairs teach; no claim about content or length is made from them ({n:,} held-out pairs). "
                   "Train smollm2-135m or your own model for evidence.")
        _truncation(result)
        return
    content = result.get("length_controlled_ci95")
    if result.get("beats_length_baseline"):
        verdict = "The accuracy interval lies above the length rule."
    else:
        verdict = "The accuracy does not beat the length rule: on its own it shows nothing length does not."
    if content and content[0] > 0.5:
        verdict += " The length-controlled accuracy is above 50 %: it sees more than length."
    elif content:
        verdict += " The length-controlled accuracy is not clear of 50 %: no content signal is resolved."
    st.caption(f"{verdict} ({n:,} held-out pairs; {_span(result.get('accuracy_ci95'))} for the accuracy.)")
    _truncation(result)


def _truncation(result: Mapping[str, Any]) -> None:
    note = truncation_note(result)
    if note:
        st.warning(note, icon=":material/content_cut:")
