"""``alignscope scaling fit POINTS.csv|SWEEP [--q 0.95] [--target plateau|gain] [--n-boot 500] [--json]``:
fit the exponential plateau R(x) = r − (r − a)·e^{−b·x} to one's own measurements (see
:mod:`alignscope.scaling.fit`), or refit a sweep directory; and ``alignscope sweep``.

The CSV has ``fraction`` (0–1) or ``percent`` (0–100), ``score``, and optionally ``method`` and
``seed``. Text output: one block per method (r, a, b and the size reaching q of the target, each
with its 95 % interval), then the headline of :func:`alignscope.scaling.recommend.recommend` — the
same lines the Scaling page shows. ``--json``: for one method, an object with ``r``, ``a``, ``b``,
``recommended_fraction`` (and the intervals, warnings, …, and ``recommendation``); for several,
``{"methods": {name: that object}, "recommendation": …}``. A method that cannot be fitted gets
``{"error": reason}``; when none can, exit 2. A sweep directory prints what ``alignscope sweep``
prints at its end (``--json``: the fit.json summary), without writing anything.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

from alignscope.cli.common import EXIT_CANCELLED, add_source_options, follow_jobs, load_data
from alignscope.cli.config_flags import add_config_arguments, fields_from_args
from alignscope.evaluate.metrics import LOWER_IS_BETTER, METRICS
from alignscope.jobs import JobStore
from alignscope.scaling.results import fit_sweep, read_points_jsonl, sweep_fits
from alignscope.scaling.sweep import SweepConfig, default_workers, submit_sweep

__all__ = ["add_scaling_command", "add_sweep_command", "cmd_scaling_fit", "cmd_sweep", "sweep_config"]


def add_scaling_command(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser("scaling", help="fit scaling curves (exponential plateau) to measured points")
    sub = parser.add_subparsers(dest="scaling_command", required=True, parser_class=type(parser))
    fit = sub.add_parser("fit", help="fit R(x) = r − (r − a)·exp(−b·x) per method and recommend a subset size")
    fit.add_argument("points", metavar="POINTS.csv|SWEEP", help="columns fraction (0–1) or percent (0–100), score, "
                                                                "optional method, seed; or a sweep directory (its "
                                                                "points refitted, nothing written)")
    fit.add_argument("--q", type=float, default=None,
                     help="recommend the smallest x with R(x) >= q·r (default 0.95; a sweep: its own)")
    _add_target(fit, default=None)
    fit.add_argument("--metric", choices=list(METRICS), default=None,
                     help="what the scores are: accuracy-like (higher is better, default accuracy) or log_loss "
                          "(lower is better; only --target gain applies); a sweep: which recorded metric to fit "
                          "(default its own)")
    fit.add_argument("--baseline", type=float, default=None,
                     help="the score of a trivial rule on the same pairs (e.g. the length rule): each plateau is "
                          "checked against it (default: a 'baseline' column of the CSV when present)")
    fit.add_argument("--n-boot", type=int, default=500, help="bootstrap refits for the intervals (default 500)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--json", action="store_true")
    fit.set_defaults(func=cmd_scaling_fit)
    return parser


def _add_target(parser: argparse.ArgumentParser, default: str | None = "plateau") -> None:
    from alignscope.scaling.fit import TARGETS

    parser.add_argument("--target", choices=list(TARGETS), default=default,
                        help="plateau: smallest x with R(x) >= q·r (default); gain: R(x) >= a + q·(r − a), "
                             "for scores with a high floor")


def add_sweep_command(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser("sweep", help="score subsets of every size per method; a plateau fit per method")
    parser.add_argument("path", metavar="DATA")
    add_source_options(parser)
    # Every sweep option is a field of SweepConfig, declared there once: its flag, help and default come from it.
    add_config_arguments(parser, [SweepConfig])
    parser.add_argument("--out", required=True, help="sweep directory")
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--address", help="Ray cluster address (e.g. auto); default: start a local Ray instance")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"long-lived workers that share the points (default: one per core, at most 4; here "
                             f"{default_workers()})")
    parser.add_argument("--detach", action="store_true", help="submit and return (local executor only)")
    parser.add_argument("--force", action="store_true", help="reuse a non-empty sweep directory")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=cmd_sweep)
    return parser


def sweep_config(args: argparse.Namespace) -> SweepConfig:
    """The :class:`~alignscope.scaling.sweep.SweepConfig` the ``sweep`` flags describe (unset ones keep its
    defaults; checkpoint mode without --max-steps trains one full epoch)."""
    fields = fields_from_args(args, SweepConfig)
    if fields.get("mode") == "checkpoints" and "max_steps" not in fields:
        fields["max_steps"] = None
    return SweepConfig(**fields)


def cmd_sweep(args: argparse.Namespace) -> int:
    config = sweep_config(args)
    config.validate()
    if args.detach and args.executor == "ray":
        raise ValueError("--detach works with the local executor only: Ray stops the tasks of a driver that exits")
    if args.address:
        if args.executor != "ray":
            raise ValueError("--address applies to --executor ray")
        os.environ["ALIGNSCOPE_RAY_ADDRESS"] = args.address
    data = load_data(args)
    store = JobStore()
    say = (lambda message: None) if args.json else (lambda message: print(message, file=sys.stderr, flush=True))
    started = time.monotonic()
    jobs = submit_sweep(data, config, args.out, executor=args.executor, workers=args.workers, store=store,
                        overwrite=args.force, report=say)
    n_points = config.n_points()
    say(f"sweep: {n_points} points, {len(config.units())} rankings, {len(jobs)} worker(s) ({args.executor} executor) "
        f"→ {args.out}")
    if args.detach:
        print(json.dumps({"jobs": jobs, "out": args.out}) if args.json else args.out)
        return 0
    shown = [0]

    def show(states: list) -> None:
        points = read_points_jsonl(args.out)
        for row in points.iloc[shown[0]:].itertuples():
            say(f"  {row.method:>11} {row.fraction:7.1%} seed {row.seed}: score {row.score:.4f} "
                f"({row.n_train_pairs:,} pairs)  [{len(points)}/{n_points}, ETA {_eta(points, n_points, started)}]")
        shown[0] = len(points)

    states = follow_jobs(store, jobs, show)
    if states is None:
        say("cancelled the sweep's jobs")
        return EXIT_CANCELLED
    failed = [state for state in states if state.status != "succeeded"]
    for state in failed[:5]:
        say(f"  worker {state.id} {state.status}: {state.error or ''}")
    measured = len(read_points_jsonl(args.out))
    fit = fit_sweep(args.out, n_boot=200)
    summary = {"out": str(args.out), "n_points": n_points, "n_measured": measured, "n_jobs": len(jobs),
               "n_failed": len(failed), "wall_s": round(time.monotonic() - started, 1), "executor": args.executor,
               "workers": len(jobs), "fit": fit}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_sweep_fit(fit)
        print(f"{measured} of {n_points} points in {summary['wall_s']} s by {len(jobs)} worker(s) "
              f"({len(failed)} failed); fit in {args.out}/fit.json")
    return 0 if not failed else 1


def print_sweep_fit(fit: dict[str, Any]) -> None:
    """A sweep's fit as text: each curve's numbers with their intervals, then the headline lines of
    :func:`alignscope.scaling.recommend.recommend` (the Scaling page shows the same lines) and the
    corrected verdicts against random."""
    print(f"{fit['metric']} curves; baseline {fit['baseline']} ({fit['baseline_rule']})")
    for method, result in fit["methods"].items():
        if "error" in result:
            print(f"{method}: cannot fit: {result['error']}")
            continue
        x = result["recommended_fraction"]
        print(f"{method}: plateau r {result['r']:.4f}{_interval(result['r_ci95'], '.4f')}, no-data a {result['a']:.4f}"
              f"{_interval(result['a_ci95'], '.4f')}; {fit['q']:.0%} of the {fit['target']} at "
              f"{'-' if x is None else format(x, '.1%')}{_interval(result['recommended_fraction_ci95'], '.1%')}")
        for note in result["warnings"]:
            print(f"  warning: {note}")
    for line in fit["recommendation"]["lines"]:
        print(line)
    for line in fit["verdicts"]:
        print(line)
    if fit.get("circular"):
        print(f"note: selectors and probe both use {fit['selection_encoder']}: pass --eval-encoder to judge "
              "with other features")


def _eta(points: Any, total: int, started: float) -> str:
    from alignscope.scaling.measure import format_eta

    done = len(points)
    return format_eta((time.monotonic() - started) / done * (total - done)) if done else "?"


def _interval(values: list[float] | None, fmt: str) -> str:
    return "" if not values else f"  [{format(values[0], fmt)}, {format(values[1], fmt)}]"


def cmd_scaling_fit(args: argparse.Namespace) -> int:
    from alignscope.scaling.fit import ScalingError, fit_points, read_points
    from alignscope.scaling.recommend import pooled_points_fit, recommend

    if args.q is not None and not (0 < args.q < 1):
        raise ScalingError(f"--q must be in (0, 1), got {args.q}")
    if args.n_boot < 0:
        raise ScalingError(f"--n-boot must be >= 0, got {args.n_boot}")
    if os.path.isdir(args.points):  # a sweep directory: refit its points (nothing is written)
        found = sweep_fits(args.points, q=args.q, n_boot=args.n_boot, metric=args.metric, seed=args.seed)
        if args.json:
            print(json.dumps(found["summary"], indent=2))
        else:
            print_sweep_fit(found["summary"])
        return 0
    q = 0.95 if args.q is None else args.q
    metric = args.metric or "accuracy"
    target = args.target or "plateau"
    lower = metric in LOWER_IS_BETTER
    if lower and target != "gain":
        raise ScalingError(f"--metric {metric} falls as quality rises: use --target gain")
    if args.baseline is not None and not math.isfinite(args.baseline):
        raise ScalingError(f"--baseline must be a finite number, got {args.baseline}")
    points = read_points(args.points)
    options = {"q": q, "n_boot": args.n_boot, "seed": args.seed, "target": target, "higher_is_better": not lower}
    fits = fit_points(points, baseline=args.baseline, **options)
    if all(isinstance(f, str) for f in fits.values()):
        raise ScalingError("; ".join(fits.values()))
    baseline = next((f.baseline for f in fits.values() if not isinstance(f, str)), None)
    headline = recommend(fits, metric=metric, q=q, baseline=baseline, baseline_label="the baseline you gave",
                         pool=lambda methods: pooled_points_fit(points, methods, baseline=baseline, **options))
    objects = {m: (f.to_dict() if not isinstance(f, str) else {"error": f}) for m, f in fits.items()}
    if args.json:
        print(json.dumps({**next(iter(objects.values())), "recommendation": headline.to_dict()} if len(objects) == 1
                         else {"methods": objects, "recommendation": headline.to_dict()}, indent=2))
        return 0
    for method, fit in fits.items():
        print(f"{method}:")
        if isinstance(fit, str):
            print(f"  cannot fit: {fit}")
            continue
        print(f"  r (plateau)       {fit.r:.4f}{_interval(fit.r_ci95, '.4f')}")
        print(f"  a (no data)       {fit.a:.4f}{_interval(fit.a_ci95, '.4f')}")
        print(f"  b (growth rate)   {fit.b:.3f}{_interval(fit.b_ci95, '.3f')}  per unit fraction")
        print(f"  intervals         {fit.interval_method}")
        if fit.baseline is not None:
            verdict = {True: "beats it", False: "does NOT beat it", None: "cannot tell"}[fit.beats_baseline]
            print(f"  baseline          {fit.baseline:.4f}: the plateau {verdict}")
        x = fit.recommended_fraction
        print(f"  {fit.q:.0%} of {fit.target} at  {'-' if x is None else format(x, '.1%')}"
              f"{_interval(fit.recommended_fraction_ci95, '.1%')}")
        for note in fit.warnings:
            print(f"  warning: {note}", file=sys.stderr)
    for line in headline.lines:
        print(line)
    return 0
