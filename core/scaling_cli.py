"""``alignscope scaling fit POINTS.csv [--q 0.95] [--n-boot 500] [--json]``: fit the exponential
plateau R(x) = r − (r − a)·e^{−b·x} to one's own measurements (see :mod:`alignscope.scaling`).

The CSV has ``fraction`` (0–1) or ``percent`` (0–100), ``score``, and optionally ``method`` and
``seed``. Text output: one block per method (r, a, b with 95 % intervals, the recommended fraction
and the saving). ``--json``: for one method, an object with ``r``, ``a``, ``b``,
``recommended_fraction`` (and the intervals, warnings, …); for several, ``{"methods": {name: that
object}}``. A method that cannot be fitted gets ``{"error": reason}``; when none can, exit 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_scaling_command", "cmd_scaling_fit"]


def add_scaling_command(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser("scaling", help="fit scaling curves (exponential plateau) to measured points")
    sub = parser.add_subparsers(dest="scaling_command", required=True, parser_class=type(parser))
    fit = sub.add_parser("fit", help="fit R(x) = r − (r − a)·exp(−b·x) per method and recommend a subset size")
    fit.add_argument("points", metavar="POINTS.csv", help="columns fraction (0–1) or percent (0–100), score, "
                                                          "optional method, seed")
    fit.add_argument("--q", type=float, default=0.95, help="recommend the smallest x with R(x) >= q·r (default 0.95)")
    fit.add_argument("--n-boot", type=int, default=500, help="bootstrap refits for the intervals (default 500)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--json", action="store_true")
    fit.set_defaults(func=cmd_scaling_fit)
    return parser


def _interval(values: list[float] | None, fmt: str) -> str:
    return "" if not values else f"  [{format(values[0], fmt)}, {format(values[1], fmt)}]"


def cmd_scaling_fit(args: argparse.Namespace) -> int:
    from alignscope.scaling import ScalingError, fit_points, read_points

    if not (0 < args.q < 1):
        raise ScalingError(f"--q must be in (0, 1), got {args.q}")
    if args.n_boot < 0:
        raise ScalingError(f"--n-boot must be >= 0, got {args.n_boot}")
    points = read_points(args.points)
    fits = fit_points(points, q=args.q, n_boot=args.n_boot, seed=args.seed)
    objects = {m: (f.to_dict() if not isinstance(f, str) else {"error": f}) for m, f in fits.items()}
    if all(isinstance(f, str) for f in fits.values()):
        raise ScalingError("; ".join(fits.values()))
    if args.json:
        print(json.dumps(next(iter(objects.values())) if len(objects) == 1 else {"methods": objects}, indent=2))
        return 0
    for method, fit in fits.items():
        print(f"{method}:")
        if isinstance(fit, str):
            print(f"  cannot fit: {fit}")
            continue
        print(f"  r (plateau)       {fit.r:.4f}{_interval(fit.r_ci95, '.4f')}")
        print(f"  a (no data)       {fit.a:.4f}{_interval(fit.a_ci95, '.4f')}")
        print(f"  b (growth rate)   {fit.b:.3f}{_interval(fit.b_ci95, '.3f')}  per unit fraction")
        if fit.recommended_fraction is None:
            print(f"  recommendation    none: R never reaches {fit.q:.0%} of the plateau")
        else:
            print(f"  {fit.q:.0%} of plateau at  x = {fit.recommended_fraction:.1%}"
                  f"{_interval(fit.recommended_fraction_ci95, '.1%')}  → saving {fit.saving:.1%} of the data")
        for note in fit.warnings:
            print(f"  warning: {note}", file=sys.stderr)
    return 0
