"""Select page: a method and a subset-size slider with the pairs kept, then (lazy tabs, only the
open one is built) what the subset keeps and drops, the method's score anatomy (ISA: GMM
components, l′, Δ), other methods side by side, and use/export."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from alignscope import settings
from alignscope.app import analysis, charts, state
from alignscope.files import PathOutsideRootError, resolve_in_root
from alignscope.options import field_kind
from alignscope.run_files import SELECTION_FILE
from alignscope.select.pair_options import PAIR_METHODS, method_options
from alignscope.select.stats import defect_rates, overlap_matrix, seed_agreement, seed_agreement_at

# The column each pair method's histogram shows, its label, and what it means (papers on the estimators).
PAIR_DETAIL = {
    "length": ("gap", "chosen − rejected words",
               "gap: pairs whose chosen and rejected lengths differ most in the direction the data's own length "
               "rule learned (its training pairs); chosen: the longest chosen answers. Length filtering was the one "
               "stable method in a large comparison (Xia et al. 2024); Zhao et al. 2024 keep the longest."),
    "margin": ("margin", "probe margin w·(e_c − e_r)",
               "A Bradley–Terry probe cross-fitted on the embedding differences: easy keeps the largest margins "
               "(margin maximisation), hard the smallest (smallest implicit-reward gap), middle drops both tails."),
    "rds": ("similarity", "mean top-k cosine to the target",
            "Similarity of each pair's prompt (or prompt + chosen) to a target set, by default the held-out "
            "prompts, which are ranked last (RDS+)."),
    "lm-margin": ("log_ratio", "log π(chosen) − log π(rejected)",
                  "The reference LM's own preference between the two answers (the tiny model has random weights: "
                  "its ranking means nothing). Scores are cached on disk per data, model and max length."),
}


def option_widgets(fields, *, prefix: str) -> dict:
    """A widget per option field (help, choices and bounds from its declaration); the values set."""
    values = {}
    columns = st.columns(3)
    for i, f in enumerate(fields):
        kind, nullable = field_kind(f)
        meta, where = f.metadata, columns[i % 3]
        label, key, help_text = f.name.replace("_", " "), f"{prefix}_{f.name}", meta["help"]
        if "choices" in meta:
            values[f.name] = where.selectbox(label, list(meta["choices"]), index=list(meta["choices"]).index(f.default),
                                             key=key, help=help_text)
        elif kind == "bool":
            values[f.name] = where.checkbox(label, value=bool(f.default), key=key, help=help_text)
        elif kind in ("int", "float"):
            cast = int if kind == "int" else float
            low = meta.get("min")
            values[f.name] = cast(where.number_input(
                label, value=cast(f.default), key=key, help=help_text,
                min_value=None if low is None else cast(low) + (0.01 if meta.get("min_open") and kind == "float" else 0),
                max_value=None if meta.get("max") is None else cast(meta["max"]) - (0.01 if meta.get("max_open") else 0),
                step=1 if kind == "int" else 0.05))
        else:
            text = where.text_input(label, value="" if f.default is None else str(f.default), key=key,
                                    help=help_text + (f" (empty: {meta['default_text']})" if meta.get("default_text")
                                                      else ""))
            if text.strip() or not nullable:
                values[f.name] = text.strip()
    return values


st.title("Select")
st.caption("Score every point with a selection method and keep the top of the ranking. ISA (Khera et "
           "al. 2024) fits a 2-component Gaussian mixture to the embeddings and keeps the points with "
           "the largest entropy contribution Δ. Move the slider to change the subset size. Next: train "
           "on the subset (Train page) or export it.")

data = state.require_data()

encoder, unit = analysis.encoder_controls("select")
embeddings = analysis.require_embeddings(data, encoder, unit, "select")
source = analysis.source_of(embeddings)

# ----------------------------------------------------------------------------- method and size
METHOD_NAMES = {"isa": "ISA (published rule)", "random": "random",
                "density": "density (inverse-propensity, Sachdeva et al.)", "kcenter": "k-center greedy (diversity)",
                "length": "length (the data's length pattern; Zhao et al. 2024)",
                "margin": "margin (preference-probe margin; Deng et al. / Gao et al. 2025)",
                "rds": "rds (similarity to a target set; RDS+, Ivison et al. 2025)",
                "lm-margin": "lm-margin (reference LM log-ratio)"}
top = st.columns([2, 3])
method = top[0].selectbox("Method", list(METHOD_NAMES), key="select_method", format_func=METHOD_NAMES.get)
ranks_pairs = method in PAIR_METHODS
percent = top[1].slider("Subset size (% of pairs)", min_value=0.5, max_value=100.0,
                        value=float(st.session_state.get("alignscope_fraction", 0.05) * 100), step=0.5,
                        key="select_percent",
                        help="A share of the data set's pairs (a pair is kept when the method keeps either of its "
                             "completions; length, margin, rds and lm-margin rank pairs themselves). The ISA paper "
                             "keeps 3.5 % (HH) to 10 % (OASST1, UltraFeedback).")
st.session_state["alignscope_fraction"] = percent / 100  # plain key: the Map page reads it too (a share of pairs)
k_pairs = max(1, int(round(percent / 100 * data.n_pairs)))
options: dict = {}
with st.expander("Method options"):
    seed = st.number_input("Seed", min_value=0, value=0, key="select_seed")
    if method == "isa":
        opt = st.columns(3)
        covariances = ["full", "diag", "tied", "spherical"]
        options["covariance_type"] = opt[0].selectbox(
            "GMM covariance", covariances, key="select_cov",
            index=covariances.index(analysis.ISA_PAGE_DEFAULTS["covariance_type"]))
        pca = opt[1].number_input("PCA dimension before the GMM (0 = none)", min_value=0,
                                  max_value=int(embeddings.matrix.shape[1]), value=0, key="select_pca")
        if pca:
            options["pca_dim"] = int(pca)
        variants = ["published", "renormalised"]
        options["variant"] = opt[2].selectbox("Variant", variants, key="select_variant",
                                              index=variants.index(analysis.ISA_PAGE_DEFAULTS["variant"]),
                                              help="renormalised p = p/Σp flips the ranking (keeps typical points); "
                                                   "the published rule is the default.")
    elif ranks_pairs:
        options = option_widgets(method_options(method), prefix=f"select_{method}")

try:
    if ranks_pairs:
        if options.get("target"):  # a typed path stays inside the data root
            options["target"] = str(resolve_in_root(settings.data_root(), options["target"]))
        bar = st.empty()
        selection = analysis.pair_selection_at(data, embeddings, encoder, unit, method, k_pairs, seed=int(seed),
                                               options=options, fraction=percent / 100,
                                               on_progress=lambda done, message: bar.progress(min(1.0, done), message))
        bar.empty()
    else:
        selection = analysis.selection_for_pairs(source, method, k_pairs, data.n_pairs, seed=int(seed),
                                                 options=options, pair_fraction=percent / 100)
except (ValueError, PathOutsideRootError) as err:  # selection errors are one-line ValueErrors
    st.error(str(err))
    st.stop()
# ISA's subset under two more seeds, once their rankings exist (the button in Score anatomy makes
# them): a few ms a move from the cached ranks, kept in the selection's config (export, report).
check_seeds = [int(seed), int(seed) + 1, int(seed) + 2]
seed_ranks = None
if method == "isa" and all(analysis.ranking_on_disk(source, "isa", s, options) for s in check_seeds):
    seed_ranks = analysis.seed_first_ranks(source, "isa", check_seeds, data.n_pairs, options=options)
    selection = selection.replace(config={**selection.config,
                                          "seed_agreement": seed_agreement_at(seed_ranks, k_pairs)})
table = selection.table
# Read from the ranking's cached per-pair best rank (ISA, random), not re-derived per move.
kept = analysis.kept_pairs_for(source, method, k_pairs, data.n_pairs, seed=int(seed), options=options,
                               table=selection)
n_kept = int(kept.sum())

summary = st.columns(3)
summary[0].metric("Pairs kept", f"{n_kept:,} of {data.n_pairs:,}",
                  help="pairs with at least one kept completion (rule 'any')" if unit == "completion" else "pairs kept")
summary[1].metric("Share of pairs", f"{n_kept / max(1, data.n_pairs):.1%}")
if method == "isa":
    weights = selection.config.get("gmm", {}).get("weights")
    if weights:
        summary[2].metric("GMM weights", " / ".join(f"{w:.2f}" for w in weights))

if ranks_pairs and selection.config.get("circular"):
    st.warning(f"Circular: {selection.config['circular_note']}")

# Lazy tabs: only the open tab is built and sent. Each Plotly chart costs the browser ~0.1 s on
# every visit and slider move (benchmarks/bench_pages), and a slider move should show the counts
# and one view, not redraw five charts nobody is looking at.
tab_keeps, tab_score, tab_compare, tab_export = st.tabs(
    ["What it keeps", "Score anatomy", "Compare methods", "Use or export"], key="select_tab", on_change="rerun")
is_kept = table["selected"].to_numpy()
groups = analysis.column_kinds(data)["groups"]  # scalar columns with 2–30 levels, cached per data set
group = None
if groups:
    # The "Compare by" choice lives in the first tab (kept while another tab is open); the Compare
    # tab uses it too.
    state.keep_choices("select_group")
    if st.session_state.get("select_group") not in groups:
        st.session_state["select_group"] = analysis.default_group(groups)
    group = st.session_state["select_group"]

# ------------------------------------------------------------------------- what is kept / dropped
if tab_keeps.open:  # lazy: only the open tab is built
    with tab_keeps:
        cols = st.columns(2)
        if groups:
            group = cols[0].selectbox("Compare by", groups, key="select_group")
            shares = analysis.group_shares(data, group, kept)
            cols[0].plotly_chart(charts.share_bars(shares, group), key="select_shares")
        lengths = analysis.lengths(data)
        chosen_len = lengths["chosen"].to_numpy()
        cols[1].plotly_chart(charts.kept_histogram(np.log10(chosen_len + 1), kept, name="log10(words in chosen + 1)",
                                                   title="Chosen-response length: kept vs dropped pairs"),
                             key="select_lengths")
        if data.is_demo:
            st.plotly_chart(charts.defect_bars(defect_rates(data.frame, kept)), key="select_defects")
            st.caption("Demo data only: the planted defects are known, so you can see whether a method avoids or "
                       "seeks them at this subset size.")

# ------------------------------------------------------------------------------- ISA anatomy
if tab_score.open and method == "isa":
    with tab_score:
        st.subheader("ISA anatomy")
        st.caption("With the published rule p = e^{l′}, Δ = −p·log p falls as the scaled likelihood l′ rises, so "
                   "the top of the Δ ranking is the set of LOWEST-likelihood points: the rarest, most atypical "
                   "completions under the mixture. The renormalised variant keeps typical points instead.")
        cutoff_l = float(table.loc[is_kept, "loglik_scaled"].max()) if is_kept.any() else None
        cutoff_d = float(table.loc[is_kept, "delta"].min()) if is_kept.any() else None
        cols = st.columns(2)
        # ISA scores points: these two count them (completions, or pairs for the pair unit).
        counted = "completions" if unit == "completion" else "pairs"
        cols[0].plotly_chart(charts.kept_histogram(table["loglik_scaled"], is_kept, name="l′", cutoff=cutoff_l,
                                                   title="Scaled log-likelihood l′", y_title=counted),
                             key="select_hist_l")
        cols[1].plotly_chart(charts.kept_histogram(table["delta"], is_kept, name="Δ", cutoff=cutoff_d,
                                                   y_title=counted,
                                                   title="ISA keep-score Δ = −e^{l′}·l′ (highest kept)"),
                             key="select_hist_d")
        cols = st.columns(2)
        cols[0].plotly_chart(charts.isa_curve(table["loglik_scaled"], table["delta"], is_kept), key="select_curve")
        components = table.groupby("component").agg(**{counted: ("selected", "size"), "kept": ("selected", "sum")})
        components["kept share"] = (components["kept"] / components[counted]).map("{:.1%}".format)
        with cols[1]:
            st.markdown("**GMM components**")
            st.dataframe(components, key="select_components")
            st.caption(f"{counted.capitalize()} per mixture component (argmax responsibility) and how many of each "
                       "are kept.")

        # EM ends in different, nearly equally likely mixtures from different starts: on AlpacaEval
        # about one pair in ten of a 5 % subset changes with the seed (benchmarks/bench_isa --seeds).
        st.markdown("**Does the subset depend on the seed?**")
        if seed_ranks is None and st.button(
                f"Rank with seeds {check_seeds[1]} and {check_seeds[2]} too", key="select_seed_check",
                help="Fits ISA's mixture twice more (as long as the first fit took), kept for later visits."):
            bar = st.progress(0.0, "ranking with other seeds…")
            seed_ranks = analysis.seed_first_ranks(
                source, "isa", check_seeds, data.n_pairs, options=options,
                on_seed=lambda i, s: bar.progress(i / len(check_seeds),
                                                  f"ranking with seed {s} ({i + 1} of {len(check_seeds)})…"))
            bar.empty()
            st.rerun()  # from the top: the selection's config takes the agreement too
        if seed_ranks is not None:
            here = selection.config["seed_agreement"]
            st.markdown(
                f"At this size ({k_pairs:,} pairs), **{here['kept_by_all']:.0%} of the subset is kept under all "
                f"three seeds** ({', '.join(map(str, check_seeds))}); any two of them share "
                f"{here['pairwise_min']:.0%}–{here['pairwise_max']:.0%}. Independent random subsets of this size "
                f"would share {here['random_all']:.1%} and {here['random_pairwise']:.1%}. What the seed changes is "
                f"EM's start: read the other {1 - here['kept_by_all']:.0%} as one draw among equally good fits.")
            sizes = np.unique(np.r_[np.linspace(1, data.n_pairs, 101).round().astype(np.int64), k_pairs])
            st.plotly_chart(charts.seed_agreement_chart(seed_agreement(seed_ranks, sizes), k_pairs / data.n_pairs),
                            key="select_seed_curve")

if tab_score.open and ranks_pairs:
    with tab_score:
        detail, label, what = PAIR_DETAIL[method]
        st.subheader(f"{method}: what the score is")
        st.caption(what)
        values = table[detail].to_numpy(dtype=float)
        cutoff = float(table.loc[is_kept, "score"].min()) if is_kept.any() and detail == "score" else None
        st.plotly_chart(charts.kept_histogram(values, is_kept, name=label, cutoff=cutoff,
                                              title=f"{label}: kept vs dropped pairs"), key="select_pair_hist")

if tab_score.open and method not in ("isa",) and not ranks_pairs:
    with tab_score:
        st.caption(f"{METHOD_NAMES[method]} has no score of its own to show: its ranking is the order it keeps "
                   "points in. 'What it keeps' and 'Compare methods' show what it picks.")

# ---------------------------------------------------------------------------------- compare
if tab_compare.open:  # lazy: three more selections at 100k+ points cost seconds, only when asked for
    with tab_compare:
        st.caption("Overlap (Jaccard) and per-group shares of several methods' subsets of the same size.")
        choices = ["isa", "random", "density", "kcenter"]
        # The method on screen is always among the defaults (the comparison is about it).
        default = list(dict.fromkeys([method] + ["isa", "random", "density"]))[:3] if method in choices else \
            ["isa", "random", "density"]
        others = st.multiselect("Methods", choices, default=default, key=f"select_compare_{method}")
        if len(others) >= 2:
            masks = {m: analysis.kept_pairs_for(source, m, k_pairs, data.n_pairs, seed=int(seed)) for m in others}
            st.plotly_chart(charts.overlap_heatmap(overlap_matrix(masks)), key="select_overlap")
            if group is not None:
                rows = {m: analysis.group_shares(data, group, mask).set_index("group")["share_of_subset"]
                        for m, mask in masks.items()}
                compare = pd.DataFrame(rows)
                compare.insert(0, "all data",
                               analysis.group_shares(data, group, kept).set_index("group")["share_of_data"])
                st.dataframe(compare.style.format("{:.1%}"), key="select_compare_table")
                st.caption(f"Share of each {group} in each method's subset ({k_pairs:,} pairs for every method).")

# ----------------------------------------------------------------------------------- export
def _table_parquet() -> bytes:
    with tempfile.TemporaryDirectory() as folder:  # the one selection writer: config + fingerprint kept
        return selection.write(Path(folder) / SELECTION_FILE).read_bytes()


def _pairs_jsonl() -> str:
    return data.frame.loc[kept, ["prompt", "chosen", "rejected"]].to_json(orient="records", lines=True,
                                                                           force_ascii=False)


if tab_export.open:  # lazy: only the open tab is built
    with tab_export:
        name_default = f"{method}-{k_pairs}pairs"
        cols = st.columns([2, 1, 1, 1])
        name = cols[0].text_input("Name", value=name_default, key=f"select_name_{name_default}")
        if cols[1].button("Use for training", type="primary", key="select_use"):
            path = analysis.save_active_selection(data, selection, name)
            st.success(f"'{name}' is the active selection ({n_kept:,} pairs). The Train page trains on it.")
        # Callables: the files are built when clicked, not on every slider move (MBs at 100k+ points).
        cols[2].download_button("Selection (.parquet)", _table_parquet, file_name=f"{name}.parquet",
                                key="select_download_table")
        cols[3].download_button("Pairs (.jsonl)", _pairs_jsonl, file_name=f"{name}.jsonl",
                                key="select_download_pairs")
        with st.form("select_export_form"):
            st.markdown("**Export into the data root** in TRL's format, with the selection config alongside.")
            form = st.columns([3, 1, 1])
            # Keyed by the name: when the slider renames the subset, the path follows (a stale path
            # would put the new subset in a file named after the old one).
            target = form[0].text_input("Path relative to the data root", value=f"exports/{name}.jsonl",
                                        key=f"select_target_{name}")
            fmt = form[1].selectbox("Format", ["jsonl", "parquet", "hf"], key="select_format")
            kind = form[2].selectbox("Rows", ["pairs", "kto"], key="select_kind",
                                     format_func={"pairs": "pairs (DPO)", "kto": "completions (KTO)"}.get)
            overwrite = st.checkbox("Replace the file if it exists", value=False, key="select_overwrite")
            if st.form_submit_button("Export"):
                from alignscope.export import export_selection

                try:
                    out = resolve_in_root(settings.data_root(), target)
                    export_selection(data, selection, out, format=fmt, kind=kind, keep_metadata=True,
                                     overwrite=overwrite)
                    st.success(f"Exported {n_kept:,} pairs ({n_kept / max(1, data.n_pairs):.1%} of the pairs, "
                               f"{method}) to {out}")
                except (PathOutsideRootError, ValueError) as err:
                    st.error(str(err).replace("pass overwrite=True (--force) to replace it",
                                              "tick 'Replace the file if it exists' to replace it"))
chosen_selection = analysis.active_selection(data)
if chosen_selection:
    st.caption(f"Active selection for training: '{chosen_selection['name']}' "
               f"({analysis.selection_size_text(chosen_selection, data)}) — {json.dumps(chosen_selection['path'])}")
