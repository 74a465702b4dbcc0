"""Plotly figure builders for the pages. No Streamlit here: pages decide where figures go."""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from alignscope.scaling.recommend import percent_text
from alignscope.spectra import (
    IMBALANCE_SCORES,
    SpectraError,
    SpectralReport,
    spectrum_band,
)

COLOURS = {"prompt": "#7f7f7f", "chosen": "#2ca02c", "rejected": "#d62728"}


def length_histogram(lengths: pd.DataFrame, *, log_x: bool = False) -> go.Figure:
    """Overlaid histograms of words per prompt / chosen / rejected, binned here (60 bins, in log
    space for ``log_x``) and drawn as filled steps, so 60k+ pairs cost 60 numbers per field."""
    import numpy as np

    values = lengths.to_numpy(dtype=float)
    top = max(float(np.nanmax(values)) if values.size else 1.0, 2.0)
    edges = np.logspace(0, np.log10(top + 1), 61) if log_x else np.linspace(0, top, 61)
    centers = np.sqrt(edges[:-1] * edges[1:]) if log_x else (edges[:-1] + edges[1:]) / 2
    fig = go.Figure()
    for column in lengths.columns:
        column_values = lengths[column].to_numpy(dtype=float)
        counts, _ = np.histogram(np.clip(column_values, 1, None) if log_x else column_values, bins=edges)
        fig.add_trace(go.Scatter(x=centers, y=counts, name=column, mode="lines", line_shape="hvh", fill="tozeroy",
                                 opacity=0.55, line=dict(color=COLOURS.get(column)),
                                 hovertemplate="%{x:.0f} words · %{y} pairs<extra>" + str(column) + "</extra>"))
    fig.update_layout(title="Length distribution", xaxis_title="words",
                      yaxis_title="pairs", legend_title_text="field", margin=dict(t=50, b=40))
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def count_bar(counts: pd.Series, column: str) -> go.Figure:
    """Pairs per value of one metadata column: horizontal bars, the largest on top, so long labels
    and 15+ categories stay readable."""
    labels = [str(v) for v in counts.index][::-1]
    fig = go.Figure(go.Bar(y=labels, x=counts.to_numpy()[::-1], orientation="h", text=counts.to_numpy()[::-1],
                           textposition="auto"))
    fig.update_layout(title=f"Pairs per {column}", xaxis_title="pairs", yaxis_title=None,
                      height=max(260, 26 * len(labels) + 90), margin=dict(t=50, b=40, l=10))
    fig.update_yaxes(automargin=True)
    return fig


def value_histogram(counts: pd.Series, column: str) -> go.Figure:
    """Pairs per bin of a numeric metadata column (binned server-side: a few numbers per bar)."""
    fig = go.Figure(go.Bar(x=[str(v) for v in counts.index], y=counts.to_numpy()))
    fig.update_layout(title=f"Distribution of {column}", xaxis_title=column, yaxis_title="pairs", bargap=0.05,
                      margin=dict(t=50, b=40))
    return fig


def metric_curves(curves: dict[str, pd.DataFrame], metric: str, *, title: str | None = None) -> go.Figure:
    """One line per run of ``metric`` against ``step`` (curves: run label → metrics frame)."""
    fig = go.Figure()
    for label, frame in curves.items():
        if metric in frame.columns and "step" in frame.columns:
            points = frame[["step", metric]].dropna()
            fig.add_trace(go.Scatter(x=points["step"], y=points[metric], mode="lines+markers", name=label))
    fig.update_layout(title=title or metric, xaxis_title="training step", yaxis_title=metric,
                      legend_title_text="run", margin=dict(t=50, b=40), height=320)
    _integer_steps(fig, pd.concat([frame.get("step", pd.Series(dtype=float)) for frame in curves.values()])
                   if curves else pd.Series(dtype=float))
    return fig


def _integer_steps(fig: go.Figure, steps: pd.Series) -> None:
    """Steps are integers: on short runs put one tick per step instead of Plotly's 1.5, 2.5…"""
    if 0 < steps.nunique() <= 20:
        fig.update_xaxes(dtick=1)


KEPT, DROPPED = "#d62728", "#b0b0b0"
BACKGROUND = ("no flag",)  # categorical values drawn grey, under the others
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf"]


def scatter_map(coords, colour, colour_name: str, hover: list[str], *, title: str,
                categorical: bool = True) -> go.Figure:
    """2-D map as WebGL scatter (fast at 100k points). ``colour``: one value per drawn point."""
    import numpy as np

    fig = go.Figure()
    colour = np.asarray(colour)
    hover = np.asarray(hover, dtype=object)
    if categorical:
        values = pd.unique(pd.Series(colour.astype(str)))
        # The background value ("no flag" of the audit map, usually most points) is grey and drawn
        # first, under the rest: the dominant colour goes to what the map is about.
        ordered = sorted(values, key=lambda v: (v not in BACKGROUND, v in ("dropped", "False"), v))
        palette = iter(_PALETTE * 4)
        for value in ordered[:40]:
            rows = colour.astype(str) == value
            marker = dict(size=4 if value != "kept" else 6, opacity=0.75 if value not in BACKGROUND else 0.35,
                          color=KEPT if value == "kept" else DROPPED if value == "dropped" or value in BACKGROUND
                          else next(palette))
            fig.add_trace(go.Scattergl(x=coords[rows, 0], y=coords[rows, 1], mode="markers", name=str(value),
                                       marker=marker, text=hover[rows], hovertemplate="%{text}<extra></extra>"))
    else:
        fig.add_trace(go.Scattergl(x=coords[:, 0], y=coords[:, 1], mode="markers", name=colour_name,
                                   marker=dict(size=4, color=colour, colorscale="Viridis", showscale=True,
                                               colorbar=dict(title=colour_name)),
                                   text=hover, hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="map x", yaxis_title="map y", legend_title_text=colour_name,
                      height=620, margin=dict(t=50, b=40), dragmode="lasso")
    return fig


def kept_histogram(values, kept, *, name: str, title: str, cutoff: float | None = None,
                   labels: tuple[str, str] = ("kept", "dropped"), y_title: str = "points") -> go.Figure:
    """Histogram of one per-point quantity, kept vs dropped (``labels``), with the current cut-off."""
    import numpy as np

    values, kept = np.asarray(values, dtype=float), np.asarray(kept, dtype=bool)
    finite = np.isfinite(values)
    # Binned here, not by Plotly: 60 counts per trace instead of every raw value (124k points on
    # AlpacaEval) keeps each slider move's figure a few kB.
    edges = np.histogram_bin_edges(values[finite], bins=60) if finite.any() else np.array([0.0, 1.0])
    centers, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    fig = go.Figure()
    for label, mask, colour in ((labels[1], ~kept, DROPPED), (labels[0], kept, KEPT)):
        counts, _ = np.histogram(values[mask & finite], bins=edges)
        fig.add_trace(go.Bar(x=centers, y=counts, width=widths, name=label, marker_color=colour, opacity=0.8,
                             hovertemplate=f"{name} %{{x:.3g}} · %{{y}} {y_title}<extra>{label}</extra>"))
    if cutoff is not None:
        fig.add_vline(x=cutoff, line_dash="dash", annotation_text="cut-off", annotation_position="top")
    fig.update_layout(barmode="overlay", title=title, xaxis_title=name, yaxis_title=y_title,
                      legend_title_text="subset", height=330, margin=dict(t=50, b=40))
    return fig


def isa_curve(loglik_scaled, delta, kept, max_points: int = 1_500) -> go.Figure:
    """l′ against Δ: with the published p = e^{l′} the curve falls, so the top Δ are the lowest l′.
    Δ is a function of l′, so a 1,500-point sample draws the curve; plain SVG markers, because a
    WebGL trace costs the Select page a WebGL context on every visit (≈ 0.2 s of a 1.2 s switch in
    headless chromium at 62k pairs)."""
    import numpy as np

    loglik_scaled, delta, kept = np.asarray(loglik_scaled), np.asarray(delta), np.asarray(kept, dtype=bool)
    rows = np.arange(len(delta))
    if len(rows) > max_points:
        rows = np.sort(np.random.default_rng(0).choice(rows, max_points, replace=False))
    fig = go.Figure()
    for name, mask, color in (("dropped", ~kept[rows], DROPPED), ("kept", kept[rows], KEPT)):
        fig.add_trace(go.Scatter(x=loglik_scaled[rows][mask], y=delta[rows][mask], mode="markers", name=name,
                                   marker=dict(size=4, color=color)))
    fig.update_layout(title="Scaled log-likelihood l′ vs entropy contribution Δ", xaxis_title="l′ (min-max scaled GMM log-likelihood)",
                      yaxis_title="Δ = −p·log p, p = e^{l′}", legend_title_text="subset", height=330, margin=dict(t=50, b=40))
    return fig


def share_bars(shares: pd.DataFrame, column: str) -> go.Figure:
    """Share of each group in all data vs in the subset."""
    fig = go.Figure()
    fig.add_trace(go.Bar(x=shares["group"], y=shares["share_of_data"], name="all data", marker_color=DROPPED))
    fig.add_trace(go.Bar(x=shares["group"], y=shares["share_of_subset"], name="subset", marker_color=KEPT))
    fig.update_layout(barmode="group", title=f"Share per {column}: all data vs subset", xaxis_title=column,
                      yaxis_title="share of pairs", yaxis_tickformat=".0%", legend_title_text="set", height=330,
                      margin=dict(t=50, b=40))
    return fig


def defect_bars(defects: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Bar(x=defects["defect"], y=defects["rate_in_data"], name="all data", marker_color=DROPPED))
    fig.add_trace(go.Bar(x=defects["defect"], y=defects["rate_in_subset"], name="subset", marker_color=KEPT))
    fig.update_layout(barmode="group", title="Planted defects: rate in all data vs in the subset",
                      xaxis_title="defect", yaxis_title="share of pairs", yaxis_tickformat=".0%",
                      legend_title_text="set", height=330, margin=dict(t=50, b=40))
    return fig


def overlap_heatmap(matrix: pd.DataFrame) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=matrix.to_numpy(), x=list(matrix.columns), y=list(matrix.index), zmin=0, zmax=1,
                               colorscale="Blues", text=matrix.round(2).to_numpy(), texttemplate="%{text}",
                               colorbar=dict(title="Jaccard")))
    fig.update_layout(title="Overlap of the kept pairs between methods (Jaccard)", xaxis_title="method",
                      yaxis_title="method", height=360, margin=dict(t=50, b=40))
    return fig


def schedule_strip(log: pd.DataFrame, max_points: int = 50_000) -> go.Figure:
    """Every pair of every logged step: score against step, selected vs skipped."""
    rows = log.tail(max_points)
    fig = go.Figure()
    for name, mask, colour in (("skipped", ~rows["selected"], DROPPED), ("selected", rows["selected"], KEPT)):
        part = rows[mask]
        fig.add_trace(go.Scattergl(x=part["step"], y=part["score"], mode="markers", name=name,
                                   marker=dict(size=6, color=colour, opacity=0.8),
                                   text=[f"pair {i + 1}" for i in part["index"]],  # numbered from 1
                                   hovertemplate="step %{x} · %{text} · score %{y:.3f}<extra></extra>"))
    fig.update_layout(title="Scheduler scores per step: selected vs skipped pairs", xaxis_title="training step",
                      yaxis_title="scheduler score (exploit + λ·explore)", legend_title_text="pair", height=360,
                      margin=dict(t=50, b=40))
    _integer_steps(fig, rows["step"])
    return fig


def seed_agreement_chart(curve: pd.DataFrame, current_share: float) -> go.Figure:
    """:func:`alignscope.select.stats.seed_agreement` over subset sizes: the share of a subset kept
    under every seed and the range over two seeds, each beside independent random subsets."""
    x = curve["share"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=curve["pairwise_max"], mode="lines", line=dict(width=0), showlegend=False,
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=x, y=curve["pairwise_min"], mode="lines", line=dict(width=0), fill="tonexty",
                             fillcolor="rgba(31,119,180,0.2)", name="two seeds (range)",
                             hovertemplate="%{x:.1%} of pairs · two seeds share at least %{y:.1%}<extra></extra>"))
    fig.add_trace(go.Scatter(x=x, y=curve["kept_by_all"], mode="lines", line=dict(color=KEPT, width=2),
                             name="every seed",
                             hovertemplate="%{x:.1%} of pairs · %{y:.1%} kept under every seed<extra></extra>"))
    fig.add_trace(go.Scatter(x=x, y=curve["random_pairwise"], mode="lines", line=dict(color="#555", dash="dot"),
                             name="random subsets: two"))
    fig.add_trace(go.Scatter(x=x, y=curve["random_all"], mode="lines", line=dict(color="#555", dash="dash"),
                             name="random subsets: every one"))
    fig.add_vline(x=current_share, line_dash="dash", annotation_text="this size", annotation_position="top")
    fig.update_layout(title="Share of the subset that does not depend on the seed", xaxis_title="subset size "
                      "(share of pairs)", yaxis_title="share of the subset", xaxis_tickformat=".0%",
                      yaxis_tickformat=".0%", yaxis_range=[0, 1.02], height=330, margin=dict(t=50, b=40))
    return fig


def rate_bars(rates: pd.DataFrame, *, title: str, x_title: str, baseline: float | None = None) -> go.Figure:
    """Selection rate per group (``group, seen, selected, rate``) with the expected rate ρ."""
    fig = go.Figure(go.Bar(x=rates["group"].astype(str), y=rates["rate"], marker_color=KEPT,
                           text=[f"{s:,}/{n:,}" for s, n in zip(rates["selected"], rates["seen"])],
                           textposition="auto", name="selected / seen"))
    if baseline is not None:
        # Named in the legend, not annotated on the plot: an annotation collides with the bar labels
        # whenever a group's rate is near ρ.
        fig.add_hline(y=baseline, line_dash="dash", line_color="#555")
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(dash="dash", color="#555"),
                                 name=f"expected rate ρ = {baseline:.0%}"))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title="selected when in a batch",
                      yaxis_tickformat=".0%", yaxis_range=[0, 1], height=330, margin=dict(t=50, b=40))
    return fig


def calibration_curve(curve: list[dict], *, target: float, flagged: int | None = None) -> go.Figure:
    """The audit's self-calibration: estimated precision (with its 95 % band) against how many
    pairs a flip-score threshold flags, the target precision and the flag's own count."""
    rows = pd.DataFrame([r for r in curve if r["precision"] is not None]).sort_values("n_flagged")
    fig = go.Figure()
    if len(rows):
        band = rows
        low = [c[0] if c[0] is not None else np.nan for c in band["precision_ci95"]]
        high = [c[1] if c[1] is not None else np.nan for c in band["precision_ci95"]]
        fig.add_trace(go.Scatter(x=list(band["n_flagged"]) + list(band["n_flagged"])[::-1], y=high + low[::-1],
                                 fill="toself", fillcolor="rgba(31,119,180,0.18)", line=dict(width=0),
                                 name="95 % interval", hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=rows["n_flagged"], y=rows["precision"], mode="lines+markers", name="estimated precision",
                                 line=dict(color="#1f77b4"),
                                 hovertemplate="%{x:,} pairs flagged · precision %{y:.2f}<extra></extra>"))
    fig.add_hline(y=target, line_dash="dash", line_color="#555")
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(dash="dash", color="#555"),
                             name=f"target precision {target:g}"))
    if flagged:
        fig.add_vline(x=flagged, line_dash="dot", line_color=COLOURS["rejected"])
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(dash="dot", color=COLOURS["rejected"]),
                                 name=f"suspected flips ({flagged:,})"))
    fig.update_layout(title="How many flagged pairs are real flips, by how many you flag (planted copies)",
                      xaxis_title="pairs flagged (highest flip score first)", xaxis_type="log",
                      yaxis_title="estimated precision", yaxis_range=[0, 1.02], height=340, margin=dict(t=50, b=40))
    return fig


def frequency_histogram(rates: pd.DataFrame) -> go.Figure:
    """Distribution over pairs of the share of their batches in which they were selected."""
    fig = go.Figure(go.Histogram(x=rates["rate"], nbinsx=21, marker_color=KEPT))
    fig.update_layout(title="How often each pair was selected when it was in a batch", xaxis_title="selection rate",
                      xaxis_tickformat=".0%", yaxis_title="pairs", height=330, margin=dict(t=50, b=40))
    return fig


def scaling_chart(points: pd.DataFrame, fits: dict, *, q: float, metric: str = "accuracy",
                  baseline: float | None = None, baseline_label: str = "length rule") -> go.Figure:
    """Measured points per method, the fitted plateau R(x) with its bootstrap band, the recommended
    fraction as a marker, and the baseline every score must beat as a dashed line."""
    import numpy as np

    fig = go.Figure()
    grid = np.linspace(0, 1, 201)
    for i, method in enumerate(sorted(points["method"].unique())):
        colour = _PALETTE[i % len(_PALETTE)]
        rows = points[points["method"] == method]
        fig.add_trace(go.Scatter(x=rows["fraction"], y=rows["score"], mode="markers", name=f"{method} (points)",
                                 legendgroup=method, marker=dict(color=colour, size=8, opacity=0.7),
                                 hovertemplate="x %{x:.1%} · score %{y:.4f}<extra>" + str(method) + "</extra>"))
        fit = fits.get(method)
        if fit is None or isinstance(fit, str):
            continue
        band = fit.band(grid)
        if band is not None:
            fig.add_trace(go.Scatter(x=np.concatenate([grid, grid[::-1]]), y=np.concatenate([band[1], band[0][::-1]]),
                                     fill="toself", fillcolor=colour, opacity=0.15, line=dict(width=0),
                                     legendgroup=method, showlegend=False, hoverinfo="skip", name=f"{method} band"))
        fig.add_trace(go.Scatter(x=grid, y=fit.predict(grid), mode="lines", name=f"{method} fit", legendgroup=method,
                                 line=dict(color=colour, width=2)))
        if fit.recommended_fraction is not None and fit.beats_baseline is not False and fit.decisive:
            x = fit.recommended_fraction
            fig.add_trace(go.Scatter(x=[x], y=[float(fit.predict(x))], mode="markers", legendgroup=method,
                                     name=f"{method}: {q:.0%} of {getattr(fit, 'target', 'plateau')} at {x:.1%}",
                                     marker=dict(color=colour, size=14, symbol="star", line=dict(width=1, color="black"))))
    if baseline is not None:
        fig.add_trace(go.Scatter(x=[0, 1], y=[baseline, baseline], mode="lines", name=f"{baseline_label} {baseline:.3f}",
                                 line=dict(color="black", dash="dash", width=2), hoverinfo="name"))
    # The axis follows the measured points and the baseline; a wide bootstrap band near x = 0 is
    # clipped rather than allowed to squash the curves into a line.
    shown = [float(v) for v in points["score"]] + ([baseline] if baseline is not None else [])
    if shown:
        low, high = min(shown), max(shown)
        pad = max(0.15 * (high - low), 0.02)
        fig.update_yaxes(range=[low - pad, high + pad])
    fig.update_layout(title="Score against the share of the training pairs, fitted plateau R(x) = r − (r − a)·e^(−b·x)",
                      xaxis_title="share of the training pairs (every method trains on the same number)",
                      yaxis_title=METRIC_LABELS.get(metric, metric), xaxis_tickformat=".0%", legend_title_text="method",
                      height=480, margin=dict(t=60, b=40))
    return fig


METRIC_LABELS = {"accuracy": "held-out accuracy", "length_controlled_accuracy": "length-controlled accuracy",
                 "log_loss": "log loss (lower is better)"}


def vs_random_chart(vs_random: dict, metric: str) -> go.Figure:
    """Method − random per fraction with its 95 % interval; 0 = no difference. The hover gives the
    verdict after the Holm correction over every comparison. The x axis is logarithmic with one
    tick per measured fraction, labelled so that small fractions stay apart (0.5 %, 1 %, 2 %)."""
    fig = go.Figure()
    measured: set[float] = set()
    for i, (method, rows) in enumerate(sorted(vs_random.items())):
        rows = [r for r in rows if r["ci95"] is not None]
        if not rows:
            continue
        x = [r["fraction"] for r in rows]
        measured.update(x)
        y = [r["difference"] for r in rows]
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="lines+markers", name=method, line=dict(color=_PALETTE[(i + 1) % len(_PALETTE)]),
            error_y=dict(type="data", symmetric=False, array=[r["ci95"][1] - r["difference"] for r in rows],
                         arrayminus=[r["difference"] - r["ci95"][0] for r in rows]),
            text=[f"{percent_text(r['fraction'])}" + (f" ≈ {r['n_train_pairs']:,} pairs" if r.get("n_train_pairs") else "")
                  + f"<br>{r['verdict']} (Holm-corrected)" for r in rows],
            hovertemplate="%{text} · %{y:+.4f}<extra>" + method + "</extra>"))
    fig.add_hline(y=0, line_dash="dash", line_color="black")
    better = "below" if metric == "log_loss" else "above"
    ticks = sorted(measured)
    fig.update_layout(title=f"Method − random at the same number of training pairs ({better} 0 = better than random)",
                      xaxis_title="share of the training pairs", yaxis_title=f"difference in {METRIC_LABELS.get(metric, metric)}",
                      xaxis_type="log", height=360, margin=dict(t=60, b=40))
    fig.update_xaxes(tickmode="array", tickvals=ticks, ticktext=[percent_text(f) for f in ticks])
    return fig


# ------------------------------------------------------------------------------------------ spectra
# The Spectra page and `alignscope spectra` (which imports these lazily, without Streamlit) draw the
# numbers of alignscope.spectra (Kaushik et al., ICML 2024) with these three.
def scree_figure(report: SpectralReport, *, title: str = "Eigen-spectra per group",
                 max_rank: int | None = None) -> go.Figure:
    """Overlaid log-log scree plots, one line per group with its bootstrap band (central ``ci``)."""
    fig = go.Figure()
    ci = report.config.get("ci", 0.95)
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    for i, (g, spec) in enumerate(report.spectra.items()):
        colour = palette[i % len(palette)]
        lam = spec.eigenvalues[:max_rank]
        keep = lam > 0
        rank = np.arange(1, len(lam) + 1)[keep]
        if spec.bootstrap.size:
            lo, hi = spectrum_band(spec, ci)
            lo, hi = lo[:len(lam)][keep], hi[:len(lam)][keep]
            fig.add_trace(go.Scatter(x=np.concatenate([rank, rank[::-1]]),
                                     y=np.concatenate([np.clip(hi, 1e-12, None), np.clip(lo, 1e-12, None)[::-1]]),
                                     fill="toself", line=dict(width=0), fillcolor=colour, opacity=0.2,
                                     hoverinfo="skip", showlegend=False, name=f"{g} band"))
        fig.add_trace(go.Scatter(x=rank, y=lam[keep], mode="lines", name=str(g), line=dict(color=colour)))
    fig.update_xaxes(type="log", title="rank i")
    fig.update_yaxes(type="log", title="eigenvalue λ_i")
    fig.update_layout(title=title, legend_title_text="group", margin=dict(t=50, b=40))
    return fig


def error_figure(report: SpectralReport, *, title: str = "Predicted vs observed per-group error") -> go.Figure:
    """Gaussian plug-in prediction against the probe's observed per-group (one-vs-rest) error."""
    if report.probe is None:
        raise SpectraError("the report has no probe (spectral_imbalance(..., probe=False))")
    names = list(report.spectra)
    obs = [report.probe.ovr_error[g] for g in names]
    pred = [report.probe.predicted[g] for g in names]
    top = max(obs + pred + [0.05]) * 1.1
    fig = go.Figure([go.Scatter(x=[0, top], y=[0, top], mode="lines", line=dict(dash="dash", color="#999"),
                                name="prediction = observation"),
                     go.Scatter(x=pred, y=obs, mode="markers+text", text=names, textposition="top center",
                                marker=dict(size=11), name="group")])
    fig.update_layout(title=title, xaxis_title="predicted error (Gaussian plug-in)",
                      yaxis_title="observed error (held-out)", legend_title_text="", margin=dict(t=50, b=40))
    return fig


def encoder_figure(table: pd.DataFrame, score: str = "trace_ratio", *,
                   title: str | None = None) -> go.Figure:
    """Encoder map: one point per encoder, imbalance ``score`` (with interval) vs observed probe gap."""
    if score not in table.columns:
        raise SpectraError(f"unknown imbalance score {score!r}; use one of {', '.join(IMBALANCE_SCORES)}")
    error_x = None
    if f"{score}_lo" in table.columns:
        error_x = dict(type="data", symmetric=False, array=(table[f"{score}_hi"] - table[score]).tolist(),
                       arrayminus=(table[score] - table[f"{score}_lo"]).tolist())
    fig = go.Figure(go.Scatter(x=table[score].tolist(), y=table["probe_gap"].tolist(), mode="markers+text",
                               text=table["encoder"].tolist(), textposition="top center", error_x=error_x,
                               marker=dict(size=12), name="encoder"))
    fig.update_layout(title=title or f"Encoders: spectral imbalance ({score}) vs observed error gap",
                      xaxis_title=score, yaxis_title="probe error gap (max − min over groups)",
                      showlegend=True, legend_title_text="", margin=dict(t=50, b=40))
    return fig


# ------------------------------------------------------------------------------------------ report
def run_scores_chart(runs: list[dict]) -> go.Figure:
    """Held-out scores of training runs beside the rules they must beat: accuracy (95 % interval)
    next to the length rule on the same pairs, and the length-controlled accuracy next to 0.5 (what
    length alone, or a coin, scores). ``runs``: dicts with ``name`` and ``eval`` (eval.json)."""

    shown = [r for r in runs if r.get("eval")]
    names = [html.escape(str(r["name"])) for r in shown]

    def bars(key: str, interval: str) -> tuple[list, list, list]:
        values = [r["eval"].get(key) for r in shown]
        cis = [r["eval"].get(interval) or [v, v] for r, v in zip(shown, values)]
        return (values, [None if v is None else c[1] - v for v, c in zip(values, cis)],
                [None if v is None else v - c[0] for v, c in zip(values, cis)])

    fig = go.Figure()
    acc, acc_hi, acc_lo = bars("accuracy", "accuracy_ci95")
    fig.add_trace(go.Bar(x=names, y=acc, name="accuracy", marker_color=_PALETTE[0],
                         error_y=dict(type="data", symmetric=False, array=acc_hi, arrayminus=acc_lo)))
    rule, rule_hi, rule_lo = bars("length_baseline", "length_baseline_ci95")
    fig.add_trace(go.Bar(x=names, y=rule, name="length rule (same pairs)", marker_color=DROPPED,
                         error_y=dict(type="data", symmetric=False, array=rule_hi, arrayminus=rule_lo)))
    lc, lc_hi, lc_lo = bars("length_controlled_accuracy", "length_controlled_ci95")
    fig.add_trace(go.Bar(x=names, y=lc, name="length-controlled accuracy", marker_color=_PALETTE[2],
                         error_y=dict(type="data", symmetric=False, array=lc_hi, arrayminus=lc_lo)))
    fig.add_hline(y=0.5, line_dash="dash", line_color="#555")
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(dash="dash", color="#555"),
                             name="0.5: length only, or a coin"))
    fig.update_layout(barmode="group", title="Training runs: held-out scores beside the rules they must beat",
                      xaxis_title="run", yaxis_title="share of held-out pairs", yaxis_tickformat=".0%",
                      yaxis_range=[0, 1], height=380, margin=dict(t=60, b=40))
    return fig


def plotly_js() -> str:
    """plotly.js from the installed plotly package, to inline ONCE in a self-contained page."""
    import plotly.offline

    return plotly.offline.get_plotlyjs()


def figure_div(figure: go.Figure, div_id: str) -> str:
    """A figure as a ``<div>`` + script that draws it with the page's inlined plotly.js (no request:
    the data is in the page; plotly escapes ``<`` and ``/`` in it)."""
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                          config={"displaylogo": False, "responsive": True})
