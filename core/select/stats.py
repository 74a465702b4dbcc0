"""What a selection kept, in numbers people compare: shares per group, planted-defect rates,
lengths, the overlap between methods and between seeds of one method. Pure pandas/numpy; the
Select page draws these."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

DEMO_DEFECTS = {"is_flipped": "flipped label", "is_low_quality": "low quality", "duplicate_of": "near-duplicate"}


def kept_pairs_mask(pair_table: pd.DataFrame, n_pairs: int) -> np.ndarray:
    """Boolean mask (n_pairs,) of the pairs a pair-level table selects."""
    mask = np.zeros(n_pairs, dtype=bool)
    mask[pair_table.loc[pair_table["selected"].to_numpy(dtype=bool), "index"].to_numpy(dtype=np.int64)] = True
    return mask


def group_codes(values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(groups, codes, pairs)`` of one column: its sorted distinct values (as text), each row's
    index into them, and the rows per group. The slow part of :func:`share_by_group`, which the
    app computes once per data set and column."""
    groups, codes = np.unique(np.asarray(values).astype(str), return_inverse=True)
    return groups, codes, np.bincount(codes, minlength=len(groups))


def shares_from_codes(groups: np.ndarray, codes: np.ndarray, pairs: np.ndarray, kept: np.ndarray) -> pd.DataFrame:
    """:func:`share_by_group` from :func:`group_codes` of the column (a slider move counts only
    the kept rows per group)."""
    kept_counts = np.bincount(codes[np.asarray(kept, dtype=bool)], minlength=len(groups))
    out = pd.DataFrame({"group": groups, "pairs": pairs, "kept": kept_counts})
    out["kept_share_of_group"] = out["kept"] / out["pairs"]
    out["share_of_data"] = out["pairs"] / out["pairs"].sum()
    out["share_of_subset"] = out["kept"] / max(int(out["kept"].sum()), 1)
    return out


def share_by_group(frame: pd.DataFrame, column: str, kept: np.ndarray) -> pd.DataFrame:
    """Per value of ``column``: pairs, pairs kept, share of the group kept, share of all data vs
    share of the subset (the two numbers that reveal over- or under-representation)."""
    return shares_from_codes(*group_codes(frame[column].to_numpy()), kept)


def defect_rates(frame: pd.DataFrame, kept: np.ndarray) -> pd.DataFrame:
    """For demo data: the rate of each planted defect in all data vs in the kept subset."""
    rows = []
    for column, name in DEMO_DEFECTS.items():
        if column not in frame.columns:
            continue
        flag = frame[column].to_numpy()
        flag = flag >= 0 if column == "duplicate_of" else flag.astype(bool)
        rows.append({"defect": name, "rate_in_data": float(flag.mean()),
                     "rate_in_subset": float(flag[kept].mean()) if kept.any() else float("nan")})
    return pd.DataFrame(rows)


def overlap_matrix(selections: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Jaccard overlap |A∩B| / |A∪B| between the kept sets of several methods (boolean masks)."""
    names = list(selections)
    values = np.ones((len(names), len(names)))
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            union = np.logical_or(selections[a], selections[b]).sum()
            values[i, j] = np.logical_and(selections[a], selections[b]).sum() / union if union else 1.0
    return pd.DataFrame(values, index=names, columns=names)


def pair_first_rank(table: pd.DataFrame, n_pairs: int) -> np.ndarray:
    """Each pair's best (smallest) rank over its points in a full ranking table (``rank`` and
    ``pair_index``, or ``index`` for pair rows), shape ``(n_pairs,)``, ``inf`` for a pair without a
    point: the pairs a top-k cut keeps (rule ``any``) are those with ``first_rank <= k``."""
    rank = table["rank"].to_numpy(dtype=np.float64)
    pairs = table["pair_index" if "pair_index" in table.columns else "index"].to_numpy(dtype=np.int64)
    first = np.full(n_pairs, np.inf)
    np.minimum.at(first, pairs, rank)
    return first


def seed_agreement(first_ranks: Mapping[int, np.ndarray], sizes) -> pd.DataFrame:
    """How much of a ranking method's subset survives a change of seed, at every subset size.

    ``first_ranks``: for each seed, each pair's best rank over its points, shape ``(n_pairs,)``
    (``inf`` for a pair without a point); the subset of size k is the k pairs ranked first (pair rule
    ``any``). Returns one row per size in ``sizes`` (pairs): ``share`` (k / n), ``kept_by_all`` (the
    share of a subset kept under every seed), ``pairwise_min`` / ``pairwise_mean`` / ``pairwise_max``
    (|A_k ∩ B_k| / k over every two seeds) and, as their baselines, what independent random subsets
    of the same size share in expectation: ``random_pairwise`` = k / n and ``random_all`` =
    (k / n)^(S-1) for S seeds."""
    seeds = list(first_ranks)
    if len(seeds) < 2:
        raise ValueError(f"seed agreement needs at least 2 seeds, got {len(seeds)}")
    n = len(first_ranks[seeds[0]])
    sizes = np.clip(np.asarray(sizes, dtype=np.int64), 1, n)
    # each pair's position in each seed's pair order (0 = kept first); two subsets of size k share
    # exactly the pairs whose later position is below k, so one cumulative count serves every size
    position = {}
    for seed in seeds:
        ranks = np.asarray(first_ranks[seed], dtype=np.float64)
        if ranks.shape != (n,):
            raise ValueError(f"seed {seed}: {ranks.shape} ranks for {n} pairs")
        position[seed] = np.empty(n, dtype=np.int64)
        position[seed][np.argsort(ranks, kind="stable")] = np.arange(n)

    def shared(later: np.ndarray) -> np.ndarray:
        return np.cumsum(np.bincount(later, minlength=n))[sizes - 1] / sizes

    pairwise = np.array([shared(np.maximum(position[a], position[b]))
                         for i, a in enumerate(seeds) for b in seeds[i + 1:]])
    share = sizes / n
    return pd.DataFrame({"size": sizes, "share": share,
                         "kept_by_all": shared(np.max([position[s] for s in seeds], axis=0)),
                         "pairwise_min": pairwise.min(axis=0), "pairwise_mean": pairwise.mean(axis=0),
                         "pairwise_max": pairwise.max(axis=0),
                         "random_pairwise": share, "random_all": share ** (len(seeds) - 1)})


def seed_agreement_at(first_ranks: Mapping[int, np.ndarray], size: int, *, counted: str = "pairs") -> dict:
    """:func:`seed_agreement` at one subset size, as the plain record a selection's config keeps
    (``seed_agreement``: the CLI's ``--check-seeds``, the Select page, the report)."""
    row = seed_agreement(first_ranks, [size]).iloc[0]
    return {"seeds": [int(seed) for seed in first_ranks], "counted": counted, "n_kept": int(row["size"]),
            **{key: round(float(row[key]), 4) for key in
               ("kept_by_all", "pairwise_min", "pairwise_max", "random_all", "random_pairwise")}}


def seed_agreement_text(record: Mapping) -> str:
    """One sentence for a ``seed_agreement`` record (CLI output, report)."""
    return (f"{record['kept_by_all']:.1%} of the {record['n_kept']:,} kept {record['counted']} are kept under every "
            f"seed ({', '.join(map(str, record['seeds']))}); two seeds share {record['pairwise_min']:.1%}–"
            f"{record['pairwise_max']:.1%} (random subsets of this size: {record['random_all']:.1%} and "
            f"{record['random_pairwise']:.1%})")
