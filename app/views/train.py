"""Train page: launch DPO or KTO (TRL) on the active selection, watch the curves live, read the
held-out evaluation. Training runs as a job in its own process: the app never freezes, a crash never
takes it down, and reloading the page loses nothing."""
from __future__ import annotations

import math
from pathlib import Path

import streamlit as st

from alignscope.app import analysis, charts, scores, state
from alignscope.evaluate.probe import PROBE_ENCODER, eval_probe
from alignscope.jobs import JobError, format_wait
from alignscope.models import BUILTIN_MODELS
from alignscope.options import parse_list
from alignscope.run_files import EVAL_FILE, WARNINGS_FILE
from alignscope.train.config import (METHODS, REPORT_TO, option_defaults, option_fields, option_meta,
                                     report_to_names, train_config)
from alignscope.train.run_notes import warning_groups
from alignscope.train.submit import submit_training

st.title("Train")
st.caption("Align a model on the active selection with TRL and see whether the subset was worth it: "
           "held-out preference accuracy on pairs that training never sees. The run continues in the "
           "background; all runs are on the Runs page.")

data = state.require_data()

store = state.job_store()
selection = analysis.active_selection(data)
MAX_STEPS = 100_000
# Every default, choice list and tooltip below comes from the config dataclasses
# (alignscope.train.config): the page, `alignscope train` and sweeps train with the same defaults.
# Widgets for "None = the config decides" options (lr, max_steps, eval_max_pairs) show 0.
DEFAULTS = option_defaults()


@st.cache_data(show_spinner=False, max_entries=16)
def _training_rows(fingerprint: str, selection_path: str | None, stamp: float | None, method: str,
                   test_fraction: float, _data) -> int | str:
    """The rows a run would train on (pairs for DPO, completions for KTO): the selection's pairs
    minus the held-out ones, as :func:`alignscope.train.trainset.training_set` makes them; or the
    one-line reason the selection cannot be used."""
    from alignscope.train.trainset import training_set

    try:
        return len(training_set(_data, selection_path, method=method, test_fraction=test_fraction,
                                split_seed=int(DEFAULTS["split_seed"])).rows)
    except ValueError as err:  # TrainError: the submit path shows the same message
        return str(err)


def _duration_estimate(model: str, method: str, batch_size: int, max_steps: int, epochs: float,
                       selection_path: str | None) -> str:
    """How many steps the run takes, from the rows it will train on (the selection's, minus the
    held-out pairs), and how long, from the seconds per step of earlier runs of the same model and
    batch size on this machine (their eval.json)."""
    test_fraction = float(st.session_state.get("train_test_fraction", DEFAULTS["test_fraction"]))
    stamp = Path(selection_path).stat().st_mtime if selection_path and Path(selection_path).exists() else None
    rows = _training_rows(data.fingerprint, selection_path, stamp, "kto" if method == "kto" else "dpo", test_fraction,
                          data)
    if isinstance(rows, str):
        return f"Cannot estimate the steps: {rows}"
    per_epoch = math.ceil(math.ceil(rows / max(1, batch_size)) / max(1, int(DEFAULTS["grad_accum"])))
    steps = max_steps or max(1, math.ceil(epochs * per_epoch))
    unit = "completions" if method == "kto" else "pairs"
    basis = (f"{rows:,} training {unit} of {'the selection' if selection_path else 'all pairs'} after holding out "
             f"{test_fraction:.0%}, batch {batch_size}" + ("" if max_steps else f", {epochs:g} epoch(s)"))
    rates = []
    for job in store.list_jobs(kind="train", status="succeeded", limit=50):
        if job.config.get("model") == model and int(job.config.get("batch_size", DEFAULTS["batch_size"])) == batch_size:
            training = (state.read_json_file(Path(job.run_dir) / EVAL_FILE) or {}).get("training") or {}
            if training.get("s_per_step"):
                rates.append(float(training["s_per_step"]))
    if not rates:
        return (f"About {steps:,} steps ({basis}); no earlier run of {model} at batch {batch_size} on this machine "
                "to time them by.")
    rate = sorted(rates)[len(rates) // 2]
    seconds = steps * rate
    span = f"{seconds / 3600:.1f} h" if seconds > 5400 else f"{seconds / 60:.0f} min" if seconds > 90 else f"{seconds:.0f} s"
    return (f"About {steps:,} steps ({basis}) ≈ {span} of training at {rate:.2f} s/step (median of {len(rates)} "
            f"earlier run(s) of {model} at batch {batch_size} here), plus the evaluation.")


# ------------------------------------------------------------------------------------ the options
def _help(name: str) -> str:
    return option_meta(name)["help"]


def _choices(name: str) -> list:
    return list(option_meta(name)["choices"])


# Not an st.form: Enter in a number field submits a form, and nobody means "start a job" by Enter.
with st.container(border=True):
    source_options = (["active selection"] if selection else []) + ["all pairs"]
    cols = st.columns(3)
    train_on = cols[0].radio("Train on", source_options, key=f"train_on_{len(source_options)}",
                             help="Pick a subset on the Select or Map page to make it the active selection.")
    method = cols[1].radio("Method", list(METHODS), horizontal=True, key="train_method",
                           format_func={"dpo": "DPO (pairs)", "kto": "KTO (completions)",
                                        "dpo-sams": "DPO + SamS"}.get,
                           help="DPO + SamS: a learned scheduler picks, inside every batch, the pairs that get "
                                "gradient (see the Scheduler page).")
    models = list(dict.fromkeys([DEFAULTS["model"], *BUILTIN_MODELS]))
    model = cols[2].selectbox("Model", models, key="train_model",
                              help="tiny: a 2M-parameter random-init Llama (seconds per step on CPU, for "
                                   "plumbing and quick comparisons); smollm2-135m: SmolLM2-135M-Instruct "
                                   "(a GPU is recommended).")
    cols = st.columns(5)
    epochs = cols[0].number_input("Epochs", min_value=0.1, max_value=20.0, value=float(DEFAULTS["epochs"]), step=0.5,
                                  key="train_epochs", help=_help("epochs"))
    batch_size = cols[1].number_input("Batch size", min_value=2, max_value=256, value=int(DEFAULTS["batch_size"]),
                                      key="train_batch", help=_help("batch_size") + " (KTO needs at least 2)")
    beta = cols[2].number_input("β (DPO/KTO temperature)", min_value=0.01, max_value=5.0, value=float(DEFAULTS["beta"]),
                                step=0.05, key="train_beta")
    max_length = cols[3].number_input("Max length (tokens)", min_value=int(option_meta("max_length")["min"]),
                                      max_value=4096, value=int(DEFAULTS["max_length"]), step=16,
                                      key="train_max_length", help=_help("max_length"))
    max_steps = cols[4].number_input("Max steps (0 = full epochs)", min_value=0, max_value=MAX_STEPS,
                                     value=int(DEFAULTS["max_steps"] or 0), key="train_max_steps",
                                     help=f"at most {MAX_STEPS:,}; the estimated duration is shown below before you "
                                          "start")
    cols = st.columns(4)
    lr = cols[0].number_input("Learning rate (0 = default)", min_value=0.0, value=float(DEFAULTS["lr"] or 0.0),
                              format="%g", key="train_lr", help="default: " + option_meta("lr")["default_text"])
    test_fraction = cols[1].number_input("Held-out share", min_value=0.05, max_value=0.5,
                                         value=float(DEFAULTS["test_fraction"]), step=0.05,
                                         key="train_test_fraction", help=_help("test_fraction"))
    seed = cols[2].number_input("Seed", min_value=0, value=int(DEFAULTS["seed"]), key="train_seed")
    eval_max = cols[3].number_input("Evaluate at most (pairs, 0 = all)", min_value=0,
                                    value=int(DEFAULTS["eval_max_pairs"] or 0), key="train_eval_max",
                                    help="Evaluation runs two models per pair: cap it on CPU for big models.")
    with st.expander("SamS and label noise"):
        cols = st.columns(3)
        sams_ratio = cols[0].slider("SamS: share of each batch trained on (ρ)", 0.1, 1.0, float(DEFAULTS["sams_ratio"]),
                                    0.05, key="train_sams_ratio",
                                    help="DPO + SamS only: ⌈ρ·n⌉ pairs per batch get gradient.")
        selections = _choices("sams_selection")
        sams_selection = cols[1].selectbox("SamS: selection", selections,
                                           index=selections.index(DEFAULTS["sams_selection"]),
                                           key="train_sams_selection", help=_help("sams_selection"))
        contexts = _choices("sams_context")
        sams_context = cols[0].selectbox("SamS: what the scheduler sees of a pair", contexts,
                                         index=contexts.index(DEFAULTS["sams_context"]), key="train_sams_context",
                                         help=_help("sams_context"))
        rewards = _choices("sams_reward")
        sams_reward = cols[1].selectbox("SamS: reward", rewards, index=rewards.index(DEFAULTS["sams_reward"]),
                                        key="train_sams_reward", help=_help("sams_reward"))
        label_noise = cols[2].number_input("Label noise (share of training pairs flipped)", min_value=0.0,
                                           max_value=0.9, value=float(DEFAULTS["label_noise"]), step=0.05,
                                           key="train_label_noise",
                                           help=_help("label_noise") + ": tests robustness to noisy labels.")
    with st.expander("Real-model options"):
        st.caption("For smollm2-135m or your own model on a GPU: LoRA trains a small adapter instead of every "
                   "weight (the frozen base model is the DPO reference, so no second copy in memory; the adapter "
                   "is merged into the saved model). Experiment tracking sends the training logs to a tracker.")
        cols = st.columns(4)
        lora = cols[0].checkbox("LoRA adapter", value=bool(DEFAULTS["lora"]), key="train_lora",
                                help="needs the peft package (pip install 'alignscope[gpu]')")
        lora_r = cols[1].number_input("LoRA rank r", min_value=1, max_value=512, value=int(DEFAULTS["lora_r"]),
                                      key="train_lora_r")
        lora_alpha = cols[2].number_input("LoRA α", min_value=1, max_value=1024, value=int(DEFAULTS["lora_alpha"]),
                                          key="train_lora_alpha")
        lora_dropout = cols[3].number_input("LoRA dropout", min_value=0.0, max_value=0.9,
                                            value=float(DEFAULTS["lora_dropout"]), step=0.05, key="train_lora_dropout")
        cols = st.columns(2)
        default_targets = DEFAULTS["lora_target_modules"]
        lora_targets = cols[0].text_input("LoRA target modules", key="train_lora_targets", help=_help("lora_target_modules"),
                                          value=default_targets if isinstance(default_targets, str)
                                          else ",".join(default_targets))
        report_to = cols[1].multiselect("Experiment tracking", list(REPORT_TO), default=report_to_names(DEFAULTS["report_to"]),
                                        key="train_report_to",
                                        help="off by default; each tracker needs its package installed. "
                                             "TensorBoard logs go to the run folder's tensorboard/.")
    if model == "tiny":
        st.caption("**tiny checks the plumbing only**: a random-init 2M-parameter model; its scores say whether "
                   "the pipeline runs, not whether a subset is good. Use smollm2-135m (or your model) for evidence.")
    trains_on = selection["path"] if selection and train_on == "active selection" else None
    st.caption(_duration_estimate(model, method, int(batch_size), int(max_steps), float(epochs), trains_on))
    submitted = st.button("Start training", type="primary", key="train_start")

if selection:
    st.caption(f"Active selection: '{selection['name']}' ({analysis.selection_size_text(selection, data)}).")
else:
    st.caption("No active selection: training uses all pairs (minus the held-out share).")

if submitted:
    targets = lora_targets.strip()
    values = {"model": model, "epochs": float(epochs), "batch_size": int(batch_size), "beta": float(beta),
              "max_length": int(max_length), "test_fraction": float(test_fraction), "seed": int(seed),
              "max_steps": int(max_steps) or None, "lr": float(lr) or None, "eval_max_pairs": int(eval_max) or None,
              "label_noise": float(label_noise), "sams_ratio": float(sams_ratio), "sams_selection": sams_selection,
              "sams_context": sams_context, "sams_reward": sams_reward, "lora": bool(lora), "report_to": list(report_to) or "none"}
    if lora:
        values.update(lora_r=int(lora_r), lora_alpha=int(lora_alpha), lora_dropout=float(lora_dropout),
                      lora_target_modules=targets if targets in ("", "all-linear")
                      else parse_list(targets))
    own = option_fields(method)  # the SamS widgets apply to dpo-sams only
    try:
        config = train_config(method, **{k: v for k, v in values.items() if k in own})
        job_id = submit_training(data, config, selection=trains_on, store=store)
        st.session_state["train_job"] = job_id
        st.session_state["train_pick"] = job_id  # the run picker below switches to the new run
        st.success(f"Started {job_id}: {method} on {model}. Its curves appear below as it trains.")
    except (JobError, ValueError) as err:
        st.error(str(err))

# ---------------------------------------------------------------------------------- live view
@st.fragment(run_every=2)
def live_run(job_id: str) -> None:
    job = store.get(job_id)
    st.progress(job.progress, text=f"{job.status} · {job.message or ''}")
    if job.status == "queued":
        waiting = format_wait(store.jobs_ahead(job.id))
        if waiting:
            st.info(waiting.capitalize() + ". It starts when a worker slot frees (the Runs page lists them).",
                    icon=":material/hourglass_top:")
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
    warned = warning_groups(state.read_json_file(Path(job.run_dir) / WARNINGS_FILE))
    if warned:
        total = sum(count for _, count in warned)
        st.warning(f"TRL warned {total:,} time(s) while training ({len(warned)} kind(s)); these can change what the "
                   "model learns:", icon=":material/warning:")
        for message, count in warned:
            st.text(f"×{count:,}  {message}")  # may quote dataset text: plain text, never markdown
    evaluation = state.read_json_file(Path(job.run_dir) / EVAL_FILE)
    if job.status == "succeeded" and evaluation:
        st.subheader("Held-out evaluation")
        scores.show_scores(evaluation)
        own = evaluation.get("policy_logp") or {}
        if own.get("accuracy") is not None:
            st.caption(f"The policy's own log-prob prefers chosen in {own['accuracy']:.1%} of held-out pairs"
                       + (f" (reference before training: {evaluation['reference_logp']['accuracy']:.1%})."
                          if (evaluation.get("reference_logp") or {}).get("accuracy") is not None else "."))


runs = [j for j in store.list_jobs(kind="train", limit=200)
        if (j.config.get("data") or {}).get("fingerprint") == data.fingerprint]
if not runs:
    st.info("No training run on this data set yet: set the options above and start one.")
else:
    # No status in the label: it would go stale while the live view below updates.
    labels = {j.id: f"{j.id} · {j.config.get('method')} · {j.config.get('model')}" for j in runs}
    current = st.session_state.get("train_job")
    picked = st.selectbox("Run", list(labels), index=list(labels).index(current) if current in labels else 0,
                          format_func=labels.get, key="train_pick")
    live_run(picked)

# ------------------------------------------------------------------------------------- probe
st.subheader("Quick estimate without training (probe)")
st.caption(f"A Bradley–Terry linear reward model fitted in seconds on frozen {PROBE_ENCODER} features of the selected "
           "training pairs (the words of this data set: not the features the selectors chose with), scored on the "
           "same held-out pairs. A linear probe's score, not a trained model's: a PROXY for training, useful for "
           "comparing subsets quickly.")
probe_key = (data.fingerprint, trains_on, float(test_fraction))
if st.button("Run the probe", key="train_probe"):
    try:
        with st.spinner(f"Fitting the probe (the {PROBE_ENCODER} features are computed once per data set and cached)…"):
            result = eval_probe(data, trains_on, encoder=PROBE_ENCODER, test_fraction=float(test_fraction), seed=0,
                                progress=False)
        # Kept in the session: the result stays on the page across reruns until the inputs change.
        st.session_state["train_probe_result"] = (probe_key, result)
    except ValueError as err:
        st.error(str(err))
kept = st.session_state.get("train_probe_result")
if kept and kept[0] == probe_key:
    scores.show_scores(kept[1], label="Probe accuracy (proxy)")
    if kept[1].get("circular_note"):
        st.caption(kept[1]["circular_note"])
