"""Ask-LLM (Sachdeva et al., "How to Train Data-Efficient LLMs", arXiv:2402.09668, 2024): a causal
LM is asked whether an example is good training data; its score is the probability of answering
"yes". Takes texts (:func:`ask_llm_texts`), not a matrix.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from alignscope.models import load_causal_lm
from alignscope.select.base import Selector, _check_positive_int
from alignscope.select.selection import SelectionError

__all__ = ["AskLLMSelector", "ask_llm_texts"]


# ============================================================================== Ask-LLM
_LM_CACHE: dict[str, Any] = {}
ASK_LLM_TEMPLATE = (
    "###\n{example}\n###\n"
    "Does the previous example, demarcated within ### and ###, show a good response to the user "
    "that is worth training an AI assistant on? A good example is helpful, correct, clearly "
    "written and harmless.\n"
    "OPTIONS:\n- yes\n- no\nANSWER:"
)


class AskLLMSelector(Selector):
    """Ask-LLM (Sachdeva et al. 2024, "How to Train Data-Efficient LLMs", arXiv:2402.09668).

    Each example text is wrapped in a yes/no question (:data:`ASK_LLM_TEMPLATE`, adapted from the
    paper's prompt to preference data) and the score is the model's next-token probability of
    answering "yes" (the sum over the single-token spellings ``yes``, `` yes``, ``Yes``,
    `` Yes``). ``normalise=True`` returns ``P(yes) / (P(yes) + P(no))`` instead. ``model`` is any
    spec of :func:`alignscope.models.load_causal_lm` (``"tiny"``, ``"smollm2-135m"``, a local
    folder). Inputs are sorted by length and batched (right padding, the last real token's logits),
    under ``torch.inference_mode``, with a progress bar. Long examples are cut to ``max_length``
    tokens, keeping their start and the whole question.
    """

    method = "llm"
    takes_text = True
    score_meaning = "P('yes') of the causal LM asked whether the example is good training data"

    def __init__(self, *, model: str = "tiny", seed: int = 0, batch_size: int = 16,
                 max_length: int = 512, template: str = ASK_LLM_TEMPLATE, normalise: bool = False,
                 device: str | None = None, progress: bool = True):
        self.model = model
        self.seed = seed
        self.batch_size = batch_size
        self.max_length = max_length
        self.template = template
        self.normalise = normalise
        self.device = device
        self.progress = progress

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.model, str) or not self.model:
            raise SelectionError(f"model must be a model name or folder, got {self.model!r}")
        _check_positive_int("batch_size", self.batch_size)
        _check_positive_int("max_length", self.max_length)
        if not isinstance(self.template, str) or "{example}" not in self.template:
            raise SelectionError("the Ask-LLM template must contain '{example}'")

    def _check_input(self, X, *, reset: bool = True):
        if isinstance(X, (str, bytes)) or not hasattr(X, "__iter__"):
            raise SelectionError("the llm selector takes a list of example texts")
        texts = list(X)
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise SelectionError(f"the llm selector takes texts; item {bad} is {type(texts[bad]).__name__}")
        if not texts:
            raise SelectionError("no texts to score")
        return texts

    def _fit(self, X):
        import torch


        torch.manual_seed(self.seed)
        key = (self.model, self.device, os.environ.get("ALIGNSCOPE_HOME"))
        if _LM_CACHE.get("key") != key:  # keep the last model loaded: re-scoring is common
            _LM_CACHE.clear()
            _LM_CACHE.update(key=key, value=load_causal_lm(self.model, device=self.device))
        self._lm, self._tok = _LM_CACHE["value"]
        self._yes_ids = _single_token_ids(self._tok, ("yes", " yes", "Yes", " Yes"))
        self._no_ids = _single_token_ids(self._tok, ("no", " no", "No", " No"))
        if not self._yes_ids:
            raise SelectionError(f"the tokenizer of {self.model!r} has no single-token 'yes'")

    def _score(self, texts):
        import torch

        tok = self._tok
        head, tail = self.template.split("{example}", 1)
        head_ids = tok(head, add_special_tokens=False)["input_ids"]
        tail_ids = tok(tail, add_special_tokens=False)["input_ids"]
        bos = [tok.bos_token_id] if tok.bos_token_id is not None and getattr(tok, "add_bos_token", False) else []
        budget = max(1, self.max_length - len(bos) - len(head_ids) - len(tail_ids))
        sequences = []
        for text in texts:
            ids = tok(text, add_special_tokens=False)["input_ids"][:budget]
            sequences.append(bos + head_ids + ids + tail_ids)
        order = sorted(range(len(sequences)), key=lambda i: (len(sequences[i]), i))
        scores = np.empty(len(texts), dtype=np.float64)
        p_yes_all = np.empty(len(texts), dtype=np.float64)
        device = next(self._lm.parameters()).device
        pad = tok.pad_token_id
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        try:
            from tqdm.auto import tqdm

            iterator = tqdm(batches, desc="ask-llm", unit="batch", disable=not self.progress)
        except ImportError:  # pragma: no cover - tqdm is a dependency
            iterator = batches
        with torch.inference_mode():
            for batch in iterator:
                width = max(len(sequences[i]) for i in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    seq = sequences[i]
                    ids[row, :len(seq)] = torch.tensor(seq)
                    mask[row, :len(seq)] = 1
                logits = self._lm(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                last = mask.sum(1) - 1
                final = logits[torch.arange(len(batch)), last.to(device)].float()
                probs = torch.softmax(final, dim=-1)
                p_yes = probs[:, self._yes_ids].sum(1)
                if self.normalise:
                    p_no = probs[:, self._no_ids].sum(1) if self._no_ids else torch.zeros_like(p_yes)
                    value = p_yes / (p_yes + p_no).clamp(min=torch.finfo(p_yes.dtype).tiny)
                else:
                    value = p_yes
                scores[batch] = value.double().cpu().numpy()
                p_yes_all[batch] = p_yes.double().cpu().numpy()
        return np.clip(scores, 0.0, 1.0), {"p_yes": np.clip(p_yes_all, 0.0, 1.0)}


def ask_llm_texts(data: Any, unit: str = "completion") -> list[str]:
    """Example texts for the ``llm`` selector, row-aligned with the embedding units.

    ``unit="completion"``: ``2N`` texts, rows ``0..N-1`` the chosen and ``N..2N-1`` the rejected
    completion of pairs ``0..N-1`` ("User: <prompt>\\nAssistant: <completion>"). ``unit="pair"``:
    ``N`` texts showing the prompt and both responses, the preferred one first.
    """
    prompts, chosen, rejected = data.texts("prompt"), data.texts("chosen"), data.texts("rejected")
    if unit == "completion":
        return ([f"User: {p}\nAssistant: {c}" for p, c in zip(prompts, chosen)]
                + [f"User: {p}\nAssistant: {r}" for p, r in zip(prompts, rejected)])
    if unit == "pair":
        return [f"User: {p}\nPreferred answer: {c}\nWorse answer: {r}"
                for p, c, r in zip(prompts, chosen, rejected)]
    raise SelectionError(f"unit must be 'completion' or 'pair', got {unit!r}")


# ============================================================================== helpers
def _single_token_ids(tokenizer: Any, words: Sequence[str]) -> list[int]:
    ids = []
    for word in words:
        enc = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(enc) == 1 and enc[0] not in ids:
            ids.append(enc[0])
    return ids
