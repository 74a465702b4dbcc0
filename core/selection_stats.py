"""What a selection kept, in numbers people compare: shares per group, planted-defect rates,
lengths, and the overlap between methods. Pure pandas/numpy; the Select page draws these."""
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


def share_by_group(frame: pd.DataFrame, column: str, kept: np.ndarray) -> pd.DataFrame:
    """Per value of ``column``: pairs, pairs kept, share of the group kept, share of all data vs
    share of the subset (the two numbers that reveal over- or under-representation)."""
    values = frame[column].astype(str).to_numpy()
    table = pd.DataFrame({"group": values, "kept": kept})
    out = table.groupby("group", sort=True).agg(pairs=("kept", "size"), kept=("kept", "sum"))
    out["kept_share_of_group"] = out["kept"] / out["pairs"]
    out["share_of_data"] = out["pairs"] / out["pairs"].sum()
    out["share_of_subset"] = out["kept"] / max(int(out["kept"].sum()), 1)
    return out.reset_index()


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
