"""Build a real-sized preference set from the shared AlpacaEval pairs: ``python -m
benchmarks.make_large_set [--pairs 250000] [--seed 0] --out FILE.jsonl.gz``.

Real preference sets have 60k–300k pairs; the shared one has 61,952. This command stacks copies of
it until ``--pairs`` is reached. Copy 0 is the data as it is; every later copy perturbs each text
with seeded word-level edits (about 3 % of the words: a neighbouring-word swap, a dropped word, a
doubled word, a changed letter case), so no text of a copy equals its original and deduplication
does not collapse the copies, while length, topic and label stay what they were. A text that
occurs in several pairs (a prompt, a reused answer) gets the same edit within a copy, so a copy
has the original's structure: as many distinct prompts, as many shared answers. ``source`` keeps its value; ``copy`` says which
copy a pair came from, ``id`` stays unique. The file is written atomically.
"""
from __future__ import annotations

import argparse
import gzip
import json
import time

import numpy as np

from alignscope.data.preferences import load_preferences
from alignscope.files import atomic_write
from benchmarks.common import SHARED_DATA

EDIT_RATE = 0.03


def perturb(text: str, rng: np.random.Generator, rate: float = EDIT_RATE) -> str:
    """``text`` with seeded word-level edits; always differs from ``text`` when it has a word."""
    words = text.split(" ")
    if not words or not text.strip():
        return text + " "
    n_edits = max(1, int(rng.binomial(len(words), rate)))
    for position in rng.integers(0, len(words), size=n_edits):
        kind = int(rng.integers(4))
        i = int(min(position, len(words) - 1))
        if kind == 0 and i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
        elif kind == 1 and len(words) > 1:
            del words[i]
        elif kind == 2:
            words.insert(i, words[i])
        else:
            words[i] = words[i].swapcase() if words[i] else "-"
    out = " ".join(words)
    return out if out != text else out + " ."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=str(SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"))
    parser.add_argument("--pairs", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    started = time.monotonic()
    frame = load_preferences(args.source).frame
    rng = np.random.default_rng(args.seed)
    written = 0
    with atomic_write(args.out, "wb") as raw, gzip.open(raw, "wt", encoding="utf-8", compresslevel=3) as out:
        copy = 0
        while written < args.pairs:
            edited: dict[str, str] = {}  # one edit per distinct text and copy: shared prompts stay shared
            for row in frame.itertuples(index=False):
                if written >= args.pairs:
                    break
                record = row._asdict()
                if copy:
                    for column in ("prompt", "chosen", "rejected"):
                        text = str(record[column])
                        if text not in edited:
                            edited[text] = perturb(text, rng)
                        record[column] = edited[text]
                record["id"] = f"{record.get('id', written)}-c{copy}"
                record["copy"] = copy
                out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
                written += 1
            copy += 1
    print(f"wrote {written:,} pairs ({copy} copies of {len(frame):,}) to {args.out} in "
          f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
