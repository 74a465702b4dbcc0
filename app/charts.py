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
