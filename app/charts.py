"""Plotly figure builders for the pages. No Streamlit here: pages decide where figures go."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

COLOURS = {"prompt": "#7f7f7f", "chosen": "#2ca02c", "rejected": "#d62728"}


def length_histogram(lengths: pd.DataFrame, *, log_x: bool = False) -> go.Figure:
    """Overlaid histograms of words per prompt / chosen / rejected."""
    fig = go.Figure()
    for column in lengths.columns:
        values = lengths[column]
        fig.add_trace(go.Histogram(x=values.clip(lower=1) if log_x else values, name=column,
                                   opacity=0.55, marker_color=COLOURS.get(column), nbinsx=60))
    fig.update_layout(barmode="overlay", title="Length distribution", xaxis_title="words",
                      yaxis_title="pairs", legend_title_text="field", margin=dict(t=50, b=40))
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def count_bar(counts: pd.Series, column: str) -> go.Figure:
    """Pairs per value of one metadata column."""
    fig = go.Figure(go.Bar(x=[str(v) for v in counts.index], y=counts.to_numpy(),
                           text=counts.to_numpy(), textposition="auto"))
    fig.update_layout(title=f"Pairs per {column}", xaxis_title=column, yaxis_title="pairs",
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
    return fig
