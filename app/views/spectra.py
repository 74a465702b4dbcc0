"""Spectra page: spectral imbalance of an encoder across groups of the active data (Kaushik et al.,
ICML 2024, arXiv:2402.11742) — scree plots with bootstrap bands, the metric table, predicted vs
observed per-group error of a balanced linear probe, and a comparison of the encoders computed."""
from __future__ import annotations

import streamlit as st

from alignscope.app import analysis, state
from alignscope.app.charts import encoder_figure, error_figure, scree_figure
from alignscope.embed.encoders import cached_path
from alignscope.spectra import IMBALANCE_SCORES, SpectraError, compare_encoders, embeddings_report

st.title("Spectra")
st.caption("How differently an encoder represents groups of your data: per-group covariance spectra, "
           "their imbalance, and whether a linear probe errs more on the group with the larger spectrum "
           "(Kaushik et al., ICML 2024). Compute the embeddings of every encoder you consider, then compare "
           "them below before selecting on the Select page.")

data = state.require_data()

top = st.columns([2, 2, 3])
ctx = analysis.context()
encoder = top[0].selectbox("Encoder", analysis.ENCODERS, key="spectra_encoder",
                           index=analysis.ENCODERS.index(ctx["encoder"]) if ctx["encoder"] in analysis.ENCODERS else 0,
                           help="Spectra use completion-level embeddings (chosen and rejected are two points).")
ctx["encoder"] = encoder
columns = analysis.column_kinds(data)["groups"]  # cached per data set
choices = ["label"] + columns + ["component"]
grouping = top[1].selectbox("Groups", choices, index=choices.index(analysis.default_group(choices)),
                            key="spectra_groups",
                            format_func=lambda c: {"label": "chosen vs rejected",
                                                   "component": "GMM component (ISA)"}.get(c, c))
with top[2].expander("Options"):
    n_boot = st.number_input("Bootstrap replicates", min_value=0, max_value=500, value=100, step=10,
                             key="spectra_boot")
    seed = st.number_input("Seed", min_value=0, value=0, key="spectra_seed")

source = analysis.source_of(analysis.require_embeddings(data, encoder, "completion", "spectra"))


@st.cache_data(show_spinner="Computing spectra…", max_entries=16)
def _report(source: str, stamp: float, fingerprint: str, grouping: str, n_boot: int, seed: int, _data):
    emb = analysis.load_embeddings(source)
    return embeddings_report(emb, _data, grouping, n_boot=n_boot, seed=seed)


def report_for(source: str, grouping):
    return _report(source, analysis.embedding_stamp(source), data.fingerprint, grouping, int(n_boot), int(seed), data)


try:
    report = report_for(source, grouping)
except SpectraError as err:
    st.error(f"Cannot compare these groups: {err}")
    st.stop()

summary = report.summary()
cols = st.columns(4)
cols[0].metric("Groups", f"{summary['n_groups']}", help="each subsampled (seeded) to the same size")
cols[1].metric("Points per group", f"{summary['n_per_group']:,}")
cols[2].metric("Trace ratio (max/min)", f"{summary['trace_ratio']:.2f}",
               help="1 = every group spreads equally; interval: "
                    f"{summary.get('trace_ratio_lo', float('nan')):.2f}–{summary.get('trace_ratio_hi', float('nan')):.2f}")
cols[3].metric("Probe error gap", f"{summary['probe_gap']:.1%}",
               help=f"max − min per-group error of a balanced logistic probe; plug-in prediction "
                    f"{summary['predicted_gap']:.1%}")

st.caption("**Trace ratio**: the largest group's total variance (the trace of its covariance) over the smallest "
           "group's; 1 means every group spreads equally, 2 means one group spreads twice as much. **Probe error "
           "gap**: a balanced linear probe tells each group from the rest; the gap is its highest per-group error "
           "minus its lowest (0 = it errs alike on every group). Kaushik et al. predict that the group with the "
           "larger spectrum gets the larger error; hover the cards for the intervals and the predicted gap.")
cols = st.columns(2)
cols[0].plotly_chart(scree_figure(report, title=f"Eigen-spectra per group ({encoder}, log-log, "
                                              f"{report.config['ci']:.0%} bootstrap bands)"), key="spectra_scree")
cols[1].plotly_chart(error_figure(report), key="spectra_error")
st.caption("Left: eigenvalues of each group's covariance by rank; a higher or flatter curve means the group "
           "spreads over more directions. Right: each group's held-out probe error against the Gaussian "
           "plug-in Φ(−s(wᵀμ+b)/√(wᵀΣw)); points on the diagonal mean the spectra explain the error.")

st.subheader("Metrics per group")
table = report.table()
shown = table[["group", "n", "trace", "lambda1", "topk_share", "effective_rank", "participation_ratio", "alpha",
               "probe_error", "predicted_error"]].copy()
for key in ("trace", "effective_rank", "alpha"):
    if f"{key}_lo" in table.columns:
        shown[f"{key} interval"] = [f"{lo:.3g}–{hi:.3g}" for lo, hi in zip(table[f"{key}_lo"], table[f"{key}_hi"])]
st.dataframe(shown, key="spectra_table", hide_index=True)
st.download_button("Metrics (.csv)", table.to_csv(index=False), file_name=f"spectra-{grouping}.csv",
                   key="spectra_download")

# ------------------------------------------------------------------------------ encoders
st.subheader("Compare encoders")
# The other encoders' reports are computed on request: each is seconds at 60k pairs, and a first
# visit must show this encoder's spectra without waiting for every encoder ever computed.
reports = {encoder: report}
others = {name: path for name in analysis.ENCODERS if name != encoder
          if (path := cached_path(data, name)) is not None}
COMPARE = "spectra_compare_all"
if others and not st.session_state.get(COMPARE):
    if st.button(f"Add {', '.join(others)} (computed before; their spectra take a few seconds each)",
                 key="spectra_compare"):
        st.session_state[COMPARE] = True
if others and st.session_state.get(COMPARE):
    for name, path in others.items():
        try:
            reports[name] = report_for(f"{path}#completion", grouping)
        except SpectraError:
            pass
missing = [n for n in analysis.ENCODERS if n not in reports and n not in others]
if missing:
    st.caption("Not computed yet (pick one above and compute its embeddings to add it): " + ", ".join(missing))
encoders = compare_encoders(reports)
score = st.selectbox("Imbalance score (x axis)", list(IMBALANCE_SCORES), key="spectra_score")
st.plotly_chart(encoder_figure(encoders, score), key="spectra_encoders")
st.dataframe(encoders[["encoder", "dim", *IMBALANCE_SCORES, "probe_gap", "predicted_gap", "probe_accuracy"]],
             key="spectra_encoder_table", hide_index=True)
st.caption("One point per encoder: a larger imbalance should go with a larger gap in per-group error. "
           f"An encoder that represents some {grouping} groups poorly makes ISA's rarity scores about them less reliable.")
