"""Train page: launch DPO or KTO (TRL) on the active selection, watch the curves live, read the
held-out evaluation. Training runs as a job in its own process: the app never freezes, a crash never
takes it down, and reloading the page loses nothing."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from alignscope.app import analysis, charts, state
from alignscope.jobs import JobError

st.title("Train")
st.caption("Align a model on the active selection with TRL and see whether the subset was worth it: "
           "held-out preference accuracy on pairs that training never sees. The run continues in the "
           "background; all runs are on the Runs page.")

data = state.require_data()

store = state.job_store()
selection = analysis.active_selection(data)

# ------------------------------------------------------------------------------------ the form
with st.form("train_form"):
    source_options = (["active selection"] if selection else []) + ["all pairs"]
    cols = st.columns(3)
    train_on = cols[0].radio("Train on", source_options, key=f"train_on_{len(source_options)}",
                             help="Pick a subset on the Select or Map page to make it the active selection.")
    method = cols[1].radio("Method", ["dpo", "kto", "dpo-sams"], horizontal=True, key="train_method",
                           format_func={"dpo": "DPO (pairs)", "kto": "KTO (completions)",
                                        "dpo-sams": "DPO + SamS"}.get,
                           help="DPO + SamS: a learned scheduler picks, inside every batch, the pairs that get "
                                "gradient (see the Scheduler page).")
    model = cols[2].selectbox("Model", ["tiny", "smollm2-135m"], key="train_model",
                              help="tiny: a 3M-parameter random-init Llama (seconds per step on CPU, for "
                                   "plumbing and quick comparisons); smollm2-135m: SmolLM2-135M-Instruct "
                                   "(a GPU is recommended).")
    cols = st.columns(5)
    epochs = cols[0].number_input("Epochs", min_value=0.1, max_value=20.0, value=1.0, step=0.5, key="train_epochs")
    batch_size = cols[1].number_input("Batch size", min_value=2, max_value=256, value=8, key="train_batch")
    beta = cols[2].number_input("β (DPO/KTO temperature)", min_value=0.01, max_value=5.0, value=0.1,
                                step=0.05, key="train_beta")
    max_length = cols[3].number_input("Max length (tokens)", min_value=16, max_value=4096, value=128, step=16,
                                      key="train_max_length")
    max_steps = cols[4].number_input("Max steps (0 = full epochs)", min_value=0, value=0, key="train_max_steps")
    cols = st.columns(4)
    lr = cols[0].number_input("Learning rate (0 = default)", min_value=0.0, value=0.0, format="%.1e",
                              key="train_lr", help="default: 1e-4 for tiny, 5e-6 otherwise")
    test_fraction = cols[1].number_input("Held-out share", min_value=0.05, max_value=0.5, value=0.2, step=0.05,
                                         key="train_test_fraction")
    seed = cols[2].number_input("Seed", min_value=0, value=0, key="train_seed")
    eval_max = cols[3].number_input("Evaluate at most (pairs, 0 = all)", min_value=0, value=200,
                                    key="train_eval_max", help="Evaluation runs two models per pair: cap it on CPU.")
    with st.expander("SamS and label noise"):
        cols = st.columns(3)
        sams_ratio = cols[0].slider("SamS: share of each batch trained on (ρ)", 0.1, 1.0, 0.5, 0.05,
                                    key="train_sams_ratio", help="DPO + SamS only: ⌈ρ·n⌉ pairs per batch get gradient.")
        sams_selection = cols[1].selectbox("SamS: selection", ["topk", "softmax", "random"], key="train_sams_selection",
                                           help="topk: the paper; softmax: sampling; random: the random-subset "
                                                "baseline (same ρ, no learned choice).")
        sams_context = cols[0].selectbox("SamS: what the scheduler sees of a pair", ["pair", "diff", "mean"],
                                         key="train_sams_context",
                                         help="pair: chosen and rejected hidden states side by side (default); "
                                              "diff: chosen − rejected; mean: their average (the reference "
                                              "code's: a pair and its flipped copy look the same).")
        sams_reward = cols[1].selectbox("SamS: reward", ["ranked", "published"], key="train_sams_reward",
                                        help="ranked: sample reward ranked within the batch + batch reward "
                                             "credited to the selected pairs (default); published: the paper's "
                                             "formula (nearly constant in practice).")
        label_noise = cols[2].number_input("Label noise (share of training pairs flipped)", min_value=0.0,
                                           max_value=0.9, value=0.0, step=0.05, key="train_label_noise",
                                           help="Swap chosen/rejected of this share of the training pairs (the "
                                                "held-out pairs are never flipped): tests robustness to noisy labels.")
    submitted = st.form_submit_button("Start training", type="primary")

if selection:
    st.caption(f"Active selection: '{selection['name']}' ({selection['n_selected']:,} points).")
else:
    st.caption("No active selection: training uses all pairs (minus the held-out share).")

if submitted:
    config = {"data": data.spec(), "selection": selection["path"] if train_on == "active selection" else None,
              "method": method, "model": model, "epochs": float(epochs), "batch_size": int(batch_size),
              "beta": float(beta), "max_length": int(max_length), "test_fraction": float(test_fraction),
              "seed": int(seed)}
    if max_steps:
        config["max_steps"] = int(max_steps)
    if lr:
        config["lr"] = float(lr)
    if eval_max:
        config["eval_max_pairs"] = int(eval_max)
    if label_noise:
        config["label_noise"] = float(label_noise)
    if method == "dpo-sams":
        config.update(sams_ratio=float(sams_ratio), sams_selection=sams_selection, sams_context=sams_context,
                      sams_reward=sams_reward)
    try:
        from alignscope.train import config_from_dict

        config_from_dict({k: v for k, v in config.items() if k not in ("data", "selection")}).validate()
        job_id = store.submit("train", config)
        st.session_state["train_job"] = job_id
        st.toast(f"Started {job_id}")
    except (JobError, ValueError) as err:
        st.error(str(err))

# ---------------------------------------------------------------------------------- live view
runs = [j for j in store.list_jobs(kind="train", limit=200)
        if (j.config.get("data") or {}).get("fingerprint") == data.fingerprint]
if not runs:
    st.info("No training run on this data set yet: set the options above and start one.")
    st.stop()
# No status in the label: it would go stale while the live view below updates.
labels = {j.id: f"{j.id} · {j.config.get('method')} · {j.config.get('model')}" for j in runs}
current = st.session_state.get("train_job")
picked = st.selectbox("Run", list(labels), index=list(labels).index(current) if current in labels else 0,
                      format_func=labels.get, key="train_pick")


@st.fragment(run_every=2)
def live_run(job_id: str) -> None:
    job = store.get(job_id)
    st.progress(job.progress, text=f"{job.status} · {job.message or ''}")
    metrics = state.run_metrics(job.run_dir)
    shown = [m for m in ("loss", "rewards/margins", "rewards/accuracies") if m in metrics.columns
             and metrics[m].notna().any()]
    if shown:
        cols = st.columns(len(shown))
        for col, metric in zip(cols, shown):
            col.plotly_chart(charts.metric_curves({job.id: metrics}, metric, title=f"{metric} (live)"),
                             key=f"train_curve_{metric}")
    elif job.is_active:
        st.caption("Curves appear after the first logged step.")
    if job.status == "failed":
        st.error(f"Training failed: {job.error}")
        with st.expander("Log"):
            st.code(store.logs(job.id, tail=80) or "(empty)", language=None)
    evaluation = state.read_json_file(Path(job.run_dir) / "eval.json")
    if job.status == "succeeded" and evaluation:
        st.subheader("Held-out evaluation")
        low, high = evaluation["accuracy_ci95"]
        cols = st.columns(4)
        cols[0].metric("Preference accuracy", f"{evaluation['accuracy']:.1%}",
                       help="share of held-out pairs where the implicit reward β·log(π/π_ref) ranks chosen above rejected")
        cols[1].metric("95 % interval", f"{low:.1%} – {high:.1%}")
        cols[2].metric("Mean margin", f"{evaluation['margin_mean']:.4f}")
        cols[3].metric("Held-out pairs", f"{evaluation.get('n_pairs', 0):,}")
        own = evaluation.get("policy_logp") or {}
        if own.get("accuracy") is not None:
            st.caption(f"The policy's own log-prob prefers chosen in {own['accuracy']:.1%} of held-out pairs"
                       + (f" (reference before training: {evaluation['reference_logp']['accuracy']:.1%})."
                          if (evaluation.get("reference_logp") or {}).get("accuracy") is not None else "."))


live_run(picked)

# ------------------------------------------------------------------------------------- probe
with st.expander("Quick estimate without training (probe)"):
    st.caption("A Bradley–Terry linear reward model fitted in seconds on frozen MiniLM embeddings of the "
               "selected training pairs, scored on the same held-out pairs. It is a PROXY for training, "
               "useful for comparing subsets quickly; it is not the accuracy of a trained policy.")
    embedded = any(j.status == "succeeded" for j in analysis.embed_jobs(data, "minilm", "completion"))
    if not embedded:
        st.caption("Needs the MiniLM embeddings: compute them on the Map or Select page first.")
    elif st.button("Run the probe", key="train_probe"):
        from alignscope.evaluate import eval_probe

        try:
            with st.spinner("Fitting the probe…"):
                result = eval_probe(data, selection["path"] if selection and train_on == "active selection" else None,
                                    encoder="minilm", test_fraction=float(test_fraction), seed=0)
            low, high = result["accuracy_ci95"]
            st.metric("Probe accuracy (proxy)", f"{result['accuracy']:.1%}", help=f"95 % interval {low:.1%} – {high:.1%}")
        except ValueError as err:
            st.error(str(err))
