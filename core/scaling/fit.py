"""Scaling curves: how alignment quality grows with the share of the data, and how much is enough.

ISA paper (Khera, Ghosh, Dutta, arXiv 2411.10545, §1 of the shared design): quality follows an
exponential plateau in the data size x,

    R(x) = r − (r − a) · exp(−b · x)

with r the plateau, a the score without alignment data, b the growth rate. Here x is the FRACTION
of the data in [0, 1] (the paper writes x in percent: b_percent = b / 100).

* :func:`fit_plateau` ``(fractions (n,), scores (n,), q=0.95, n_boot=500, seed=0) -> PlateauFit``:
  least squares (variable projection: (r, a) linear given b, b profiled over its bounds), percentile
  bootstrap intervals
  (points resampled within each fraction, so every fraction stays represented), and the
  recommendation: the smallest x whose predicted R reaches q·r,
  ``x* = ln((r − a) / ((1 − q)·r)) / b``, with its interval and the saving 1 − x*.
  ``target="gain"`` asks instead for q of the GAIN, R(x) ≥ a + q·(r − a), so ``x* = −ln(1 − q) / b``:
  the useful rule for accuracy-like scores with a high floor, where a ≥ q·r makes the q·r rule
  answer 0 % (a warning says so).
* :func:`fit_points` fits every method of a points table; :func:`read_points` reads a CSV with
  ``fraction`` (0–1) or ``percent`` (0–100), ``score``, optional ``method`` and ``seed``, failing
  with a :class:`~alignscope.data.readers.DataError` that names the file, row and column.

A fit says when it cannot be trusted: fewer than 3 distinct fractions is an error; a fit that does
not converge, a growth rate at its bounds (no visible plateau, or a jump before the first point) or
an unstable bootstrap come back as ``warnings`` and ``converged=False``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from alignscope.errors import AlignscopeError
from alignscope.data.readers import DataError

__all__ = ["ScalingError", "PlateauFit", "TARGETS", "plateau", "recommended_fraction", "fit_plateau", "fit_points",
           "read_points", "B_BOUNDS"]

B_BOUNDS = (1e-3, 1e3)  # growth rate per unit fraction: 0.1 %…99.9 % of the way within the data
# A recommendation whose 95 % interval is wider than this share of the data is not one: the page and
# the CLI say the points cannot tell instead of naming a size.
MAX_DECISIVE_WIDTH = 0.5


class ScalingError(AlignscopeError):
    """A scaling fit that cannot be made; one line for the user."""


def plateau(x: Any, r: float, a: float, b: float) -> np.ndarray:
    """R(x) = r − (r − a)·e^{−b·x}."""
    return r - (r - a) * np.exp(-b * np.asarray(x, dtype=float))


TARGETS = ("plateau", "gain")
# What each target means, in words a reader of the headline understands.
TARGET_RULES = {"plateau": "the smallest share of the data whose predicted score reaches {q:.0%} of the plateau r",
                "gain": "the smallest share of the data that brings {q:.0%} of the improvement from no data (a) "
                        "to the plateau (r)"}


def recommended_fraction(r: float, a: float, b: float, q: float, target: str = "plateau",
                         higher_is_better: bool = True) -> float:
    """Smallest x ≥ 0 with R(x) ≥ q·r (``target="plateau"``) or R(x) ≥ a + q·(r − a) (``"gain"``);
    inf when R never gets there (r ≤ 0, or a curve that does not rise to the target). For a score
    that falls as quality rises (a loss), only ``gain`` is defined: q of the fall from a to r."""
    if target == "gain":
        improves = r > a if higher_is_better else r < a
        return -math.log(1 - q) / b if improves and b > 0 else math.inf
    if not higher_is_better:
        return math.inf
    if a >= q * r:
        return 0.0
    if r <= 0 or r <= a or b <= 0:
        return math.inf
    return math.log((r - a) / ((1 - q) * r)) / b


@dataclass
class PlateauFit:
    """One fitted curve. Intervals are 95 % percentile bootstrap intervals (None without bootstrap)."""

    r: float
    a: float
    b: float
    q: float
    recommended_fraction: float | None   # clipped to [0, 1]; None when R never reaches the target
    saving: float | None                 # 1 − recommended_fraction
    reaches_plateau_within_data: bool    # x* ≤ 1
    n_points: int
    fractions: list[float]
    rmse: float
    converged: bool
    r_ci95: list[float] | None = None
    a_ci95: list[float] | None = None
    b_ci95: list[float] | None = None
    recommended_fraction_ci95: list[float] | None = None
    n_boot: int = 0
    n_boot_failed: int = 0
    warnings: list[str] = field(default_factory=list)
    method: str | None = None
    target: str = "plateau"              # q of the plateau (q·r) or of the gain (a + q·(r − a))
    interval_method: str | None = None   # how the intervals were drawn (see fit_plateau)
    higher_is_better: bool = True
    baseline: float | None = None        # the score a trivial rule reaches (e.g. the length rule)
    beats_baseline: bool | None = None   # the plateau's interval lies beyond the baseline (None: cannot tell)
    targets: dict[str, Any] = field(default_factory=dict)  # both rules side by side: target → x*, its interval
    decisive: bool = False               # the recommendation's interval is narrow enough to act on
    boot_params: np.ndarray | None = field(default=None, repr=False)  # (n_ok, 3): r, a, b per refit

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("boot_params")
        return _clean(values)

    def band(self, x: Any, level: float = 0.95) -> tuple[np.ndarray, np.ndarray] | None:
        """Pointwise bootstrap band of R at ``x`` (None without bootstrap refits)."""
        if self.boot_params is None or not len(self.boot_params):
            return None
        curves = np.stack([plateau(x, *params) for params in self.boot_params])
        tail = (1 - level) / 2 * 100
        return np.percentile(curves, tail, axis=0), np.percentile(curves, 100 - tail, axis=0)

    def predict(self, x: Any) -> np.ndarray:
        return plateau(x, self.r, self.a, self.b)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else round(float(value), 6)
    return value


_B_GRID = np.geomspace(B_BOUNDS[0], B_BOUNDS[1], 241)


def _linear_part(x: np.ndarray, y: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each growth rate in ``b`` (G,), the least-squares (r, a) and the SSE: with b fixed,
    R(x) = r·(1 − e^{−bx}) + a·e^{−bx} is linear in (r, a), so they come from a 2×2 solve."""
    e = np.exp(-np.outer(b, x))                       # (G, n)
    u = 1.0 - e
    suu, svv, suv = (u * u).sum(1), (e * e).sum(1), (u * e).sum(1)
    suy, svy = u @ y, e @ y
    det = suu * svv - suv * suv
    ok = det > 1e-12 * np.maximum(suu * svv, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(ok, (suy * svv - svy * suv) / det, np.nan)
        a = np.where(ok, (svy * suu - suy * suv) / det, np.nan)
    sse = ((r[:, None] * u + a[:, None] * e - y) ** 2).sum(1)
    return r, a, np.where(ok, sse, np.inf)


def _least_squares(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The least-squares (r, a, b) with b in :data:`B_BOUNDS`, or None when no fit is usable.

    Variable projection: (r, a) are linear given b, so the SSE is profiled over a log-spaced grid of
    b and refined by a bounded scalar search around the best grid point. Exact and fast (no
    iterative solver from several starts), which is what makes hundreds of bootstrap refits per
    method affordable on a page."""
    from scipy.optimize import minimize_scalar

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    low_x = y[x == x.min()].mean()
    high = y[x == x.max()].mean()
    spread = max(float(np.ptp(y)), 1e-6)
    r, a, sse = _linear_part(x, y, _B_GRID)
    # Reject fits whose plateau is absurdly far from the data (a degenerate near-linear fit).
    sse = np.where((np.abs(r - high) > 100 * spread) | (np.abs(a - low_x) > 100 * spread), np.inf, sse)
    if not np.isfinite(sse).any():
        return None
    best = int(np.argmin(sse))
    lo, hi = np.log(_B_GRID[max(best - 1, 0)]), np.log(_B_GRID[min(best + 1, len(_B_GRID) - 1)])

    def profile(log_b: float) -> float:
        return float(_linear_part(x, y, np.array([np.exp(log_b)]))[2][0])

    found = minimize_scalar(profile, bounds=(lo, hi), method="bounded", options={"xatol": 1e-7})
    b = float(np.exp(found.x)) if found.success and found.fun <= sse[best] else float(_B_GRID[best])
    r_b, a_b, sse_b = (v[0] for v in _linear_part(x, y, np.array([b])))
    if not (np.isfinite(sse_b) and np.isfinite(r_b) and np.isfinite(a_b)):
        return None
    if abs(r_b - high) > 100 * spread or abs(a_b - low_x) > 100 * spread:
        return None
    return np.array([r_b, a_b, b]), float(sse_b)


def fit_plateau(fractions: Sequence[float], scores: Sequence[float], *, q: float = 0.95, n_boot: int = 500,
                seed: int = 0, method: str | None = None, target: str = "plateau", groups: Sequence[Any] | None = None,
                resamples: Sequence[tuple[np.ndarray, np.ndarray]] | None = None, higher_is_better: bool = True,
                baseline: float | None = None) -> PlateauFit:
    """Fit R(x) to points (x = fraction of the data in [0, 1]); see the module docstring.

    Intervals (95 %, percentile) never pretend to a precision the points do not have:

    * ``resamples``: bootstrap replicates made by the caller, e.g. a sweep's paired bootstrap over
      seeds and held-out pairs (``(x*, y*)`` arrays per replicate) — used as given;
    * else, with ``groups`` (e.g. the seed of each point) and every fraction measured by 2+ groups:
      whole groups are resampled (a seed's curve stays together, so fractions stay paired);
    * else, every fraction measured 2+ times: points are resampled within each fraction;
    * else (one score per fraction): a residual bootstrap, y* = R̂(x) + resampled residuals scaled
      by √(n / (n − 3)) for the three fitted parameters. With exactly 3 fractions the curve passes
      through every point and nothing is known about the noise: no interval, and a warning says so.

    ``higher_is_better=False`` for losses (only the gain target applies). ``baseline``: the score of a
    trivial rule on the same pairs; ``beats_baseline`` is True when the plateau's interval lies above
    it (below it for a loss), False when not, None when there is no interval; a warning says when the
    curve does not beat it.
    """
    x = np.asarray(fractions, dtype=float)
    y = np.asarray(scores, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ScalingError(f"fractions and scores must be two 1-D sequences of one length, got {x.shape} and {y.shape}")
    if not (0 < q < 1):
        raise ScalingError(f"q must be in (0, 1), got {q!r}")
    if target not in TARGETS:
        raise ScalingError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    if not higher_is_better and target != "gain":
        raise ScalingError("for a score where lower is better (a loss) only the target 'gain' is defined")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ScalingError("fractions and scores must be finite numbers")
    if np.any(x < 0) or np.any(x > 1):
        raise ScalingError("fractions must be in [0, 1] (give percent as a 'percent' column, 0–100)")
    if baseline is not None and not math.isfinite(float(baseline)):
        raise ScalingError(f"baseline must be a finite number, got {baseline!r}")
    levels = np.unique(x)
    name = f"method {method!r}: " if method else ""
    if len(levels) < 3:
        raise ScalingError(f"{name}a plateau has 3 parameters: it needs points at 3 or more distinct fractions, "
                           f"got {len(levels)}")
    found = _least_squares(x, y)
    if found is None:
        raise ScalingError(f"{name}the fit did not converge to a plateau from any starting point: do the scores "
                           "level off as the fraction grows? (measure larger fractions)")
    (r, a, b), sse = found
    notes: list[str] = []
    converged = True
    if b <= B_BOUNDS[0] * 1.01:
        notes.append("the growth rate hit its lower bound: no plateau is visible in these points (still rising "
                     "linearly); measure larger fractions")
        converged = False
    if b >= B_BOUNDS[1] * 0.99:
        notes.append("the growth rate hit its upper bound: the curve is flat from the smallest fraction on; "
                     "measure smaller fractions")
        converged = False
    if (r < a) if higher_is_better else (r > a):
        notes.append("the fitted curve gets worse with more data")
    x_star = recommended_fraction(r, a, b, q, target, higher_is_better)
    within = bool(x_star <= 1.0)
    if not within:
        notes.append(f"R reaches {q:.0%} of the {target} only beyond the full data set (x* = {x_star:.3g})")
    if target == "plateau" and a >= q * r:
        notes.append(f"the no-data score a = {a:.3g} is already ≥ {q:.0%} of the plateau, so the q·r rule answers 0 %: "
                     "ask for q of the gain instead (target 'gain'), the question this curve can answer")

    interval_method, replicates = _replicates(x, y, (r, a, b), groups, resamples, n_boot, seed)
    if interval_method == "none":
        notes.append("one score per fraction at exactly 3 fractions: the curve passes through every point, so the "
                     "noise cannot be estimated and no interval is given; measure more fractions or seeds")
    boot: list[tuple[float, float, float, float]] = []
    failed = 0
    for xb, yb in replicates:
        again = _least_squares(xb, yb)
        if again is None:
            failed += 1
            continue
        rb, ab, bb = again[0]
        boot.append((rb, ab, bb, recommended_fraction(rb, ab, bb, q, target, higher_is_better)))
    if replicates and failed > len(replicates) / 2:
        notes.append(f"{failed} of {len(replicates)} bootstrap fits failed: the intervals are unreliable")
        converged = False

    def interval(column: int, clip: bool = False) -> list[float] | None:
        if not boot:
            return None
        values = np.array([row[column] for row in boot], dtype=float)
        if clip:
            values = np.clip(values, 0.0, 1.0)
        values = values[np.isfinite(values)]
        return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if len(values) else None

    r_ci = interval(0)
    beats = None
    if baseline is not None:
        baseline = float(baseline)
        if r_ci is not None:
            beats = bool(r_ci[0] > baseline) if higher_is_better else bool(r_ci[1] < baseline)
        if beats is False:
            notes.append(f"the plateau {r:.4g} [{r_ci[0]:.4g}, {r_ci[1]:.4g}] does not beat the baseline {baseline:.4g}: "
                         "this evaluator cannot say how much data is enough; do not read the recommendation as advice")
        elif beats is None:
            notes.append(f"without an interval it cannot be told whether the plateau {r:.4g} beats the baseline "
                         f"{baseline:.4g}")
    recommended = None if not math.isfinite(x_star) else float(min(max(x_star, 0.0), 1.0))
    x_ci = interval(3, clip=True)
    decisive = x_ci is not None and x_ci[1] - x_ci[0] <= MAX_DECISIVE_WIDTH
    if x_ci is not None and not decisive:
        notes.append(f"the recommended share's interval spans {x_ci[0]:.0%}–{x_ci[1]:.0%}: these points cannot tell "
                     "how much data is enough; measure more seeds or more held-out pairs")
    side_by_side = {}
    for name in (TARGETS if higher_is_better else ("gain",)):
        value = recommended_fraction(r, a, b, q, name, higher_is_better)
        values = np.clip([recommended_fraction(*row[:3], q, name, higher_is_better) for row in boot], 0.0, 1.0)
        values = values[np.isfinite(values)] if len(boot) else values
        side_by_side[name] = {
            "recommended_fraction": None if not math.isfinite(value) else float(min(max(value, 0.0), 1.0)),
            "recommended_fraction_ci95": ([float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]
                                          if len(values) else None),
            "rule": TARGET_RULES[name].format(q=q)}
    return PlateauFit(r=float(r), a=float(a), b=float(b), q=float(q), recommended_fraction=recommended,
                      saving=None if recommended is None else 1.0 - recommended,
                      reaches_plateau_within_data=within, n_points=int(len(x)),
                      fractions=[float(v) for v in levels], rmse=math.sqrt(sse / len(x)), converged=converged,
                      r_ci95=r_ci, a_ci95=interval(1), b_ci95=interval(2),
                      recommended_fraction_ci95=x_ci, decisive=decisive, n_boot=len(boot) + failed,
                      n_boot_failed=failed, warnings=notes, method=method, target=target,
                      interval_method=interval_method, higher_is_better=bool(higher_is_better), baseline=baseline,
                      beats_baseline=beats, targets=side_by_side,
                      boot_params=np.array([row[:3] for row in boot], dtype=float) if boot else None)


def _replicates(x: np.ndarray, y: np.ndarray, params: tuple[float, float, float], groups: Sequence[Any] | None,
                resamples: Sequence[tuple[np.ndarray, np.ndarray]] | None, n_boot: int,
                seed: int) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    """(how, bootstrap replicates (x*, y*)) by the rules of :func:`fit_plateau`."""
    if resamples is not None:
        return "paired bootstrap over seeds and held-out pairs", [(np.asarray(a, float), np.asarray(b, float))
                                                                  for a, b in resamples]
    if not n_boot:
        return "none", []
    rng = np.random.default_rng(seed)
    levels = np.unique(x)
    if groups is not None:
        groups = np.asarray(groups)
        names = np.unique(groups)
        if len(names) >= 2 and all(len(np.unique(groups[x == level])) >= 2 for level in levels):
            members = [np.flatnonzero(groups == g) for g in names]
            out = []
            for _ in range(int(n_boot)):
                rows = np.concatenate([members[i] for i in rng.integers(0, len(names), size=len(names))])
                out.append((x[rows], y[rows]))
            return "bootstrap over seeds (whole curves)", out
    per_level = [np.flatnonzero(x == level) for level in levels]
    if all(len(rows) >= 2 for rows in per_level):
        out = []
        for _ in range(int(n_boot)):
            rows = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in per_level])
            out.append((x[rows], y[rows]))
        return "bootstrap of points within each fraction", out
    fitted = plateau(x, *params)
    residuals = y - fitted
    n = len(x)
    if n <= 3 or not np.any(np.abs(residuals) > 1e-12 * max(1.0, float(np.abs(y).max()))):
        return "none", []
    residuals = (residuals - residuals.mean()) * math.sqrt(n / (n - 3))
    return "residual bootstrap (one score per fraction)", [
        (x, fitted + rng.choice(residuals, size=n, replace=True)) for _ in range(int(n_boot))]


def fit_points(points: pd.DataFrame, *, q: float = 0.95, n_boot: int = 500, seed: int = 0,
               target: str = "plateau", higher_is_better: bool = True,
               baseline: float | None = None) -> dict[str, PlateauFit | str]:
    """Fit each method of a points table (``fraction``, ``score``, optional ``method``, ``seed``,
    ``baseline``): method → :class:`PlateauFit`, or → the one-line reason it could not be fitted.
    ``baseline`` (else the mean of a ``baseline`` column) is compared with every plateau."""
    table = points if "method" in points.columns else points.assign(method="all")
    if baseline is None and "baseline" in table.columns and table["baseline"].notna().any():
        baseline = float(table["baseline"].dropna().mean())
    fits: dict[str, PlateauFit | str] = {}
    for method, rows in table.groupby("method", sort=True):
        try:
            fits[str(method)] = fit_plateau(rows["fraction"], rows["score"], q=q, n_boot=n_boot, seed=seed,
                                            method=str(method), target=target,
                                            groups=rows["seed"].to_numpy() if "seed" in rows.columns else None,
                                            higher_is_better=higher_is_better, baseline=baseline)
        except ScalingError as exc:
            fits[str(method)] = str(exc)
    return fits


def read_points(path: str | Path) -> pd.DataFrame:
    """A points CSV → ``fraction`` (0–1), ``score``, ``method`` (str), ``seed`` (when given).
    Rows are counted from 1 after the header."""
    file = Path(path)
    shown = str(path)
    if not file.is_file():
        raise DataError("no such file", file=shown)
    try:
        table = pd.read_csv(file)
    except UnicodeDecodeError:
        raise DataError("is not UTF-8 text", file=shown) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"is not a readable CSV ({str(exc).splitlines()[0][:120]})", file=shown) from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    if "score" not in table.columns:
        raise DataError("has no 'score' column", file=shown, hint="columns: fraction or percent, score, optional method, seed")
    if "fraction" in table.columns:
        size_col, scale, upper = "fraction", 1.0, 1.0
    elif "percent" in table.columns:
        size_col, scale, upper = "percent", 100.0, 100.0
    else:
        raise DataError("has neither a 'fraction' (0–1) nor a 'percent' (0–100) column", file=shown)
    if table.empty:
        raise DataError("has no data rows", file=shown)
    out = pd.DataFrame(index=table.index)
    for column in (size_col, "score"):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{table[column].iloc[row]!r} is not a finite number", file=shown, row=row + 1, column=column)
        out[column] = values.astype(float)
    outside = (out[size_col] < 0) | (out[size_col] > upper)
    if outside.any():
        row = int(np.flatnonzero(outside.to_numpy())[0])
        raise DataError(f"{out[size_col].iloc[row]:g} is outside [0, {upper:g}]", file=shown, row=row + 1, column=size_col)
    result = pd.DataFrame({"fraction": out[size_col] / scale, "score": out["score"]})
    if "method" in table.columns:
        result["method"] = table["method"].fillna("").astype(str).str.strip().replace("", "all")
    else:
        result["method"] = "all"
    if "seed" in table.columns:
        result["seed"] = table["seed"]
    if "baseline" in table.columns:
        values = pd.to_numeric(table["baseline"], errors="coerce")
        bad = table["baseline"].notna() & (values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=0.0)))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{table['baseline'].iloc[row]!r} is not a finite number", file=shown, row=row + 1,
                            column="baseline")
        result["baseline"] = values.astype(float)
    return result.reset_index(drop=True)
