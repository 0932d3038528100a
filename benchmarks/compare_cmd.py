"""``metatrading compare``: pricing schemes side by side on the same dynamic markets, with FL
on real images per trading round (docs/model.md section 8; :mod:`benchmarks.compare`).

Writes ``DIR/compare.json`` (the groups; per scheme the means and 95% intervals over seeds of
IoM, payment, IoM per unit paid, utilities, final accuracy, time to target and missed updates;
``headline``: the reference scheme's IoM and MSP-utility improvement and time-to-target
reduction over each scheme, and on average over the naive baselines in both level settings,
beside the paper's figures; ``frontier``: ``fixed`` swept over levels and its consistency check),
``DIR/report.md`` (the same as tables), ``DIR/iom.png``, ``DIR/accuracy.png``,
``DIR/time_to_target.png``, ``DIR/frontier.png``, one record per (scheme, seed) in
``DIR/runs/`` (the checkpoints ``--resume`` skips) and ``DIR/timing.json`` (wall-clock seconds,
kept out of ``compare.json``).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from benchmarks.conventions import RegistryChoices, show_progress
from models.errors import InputError

#: --quick: a smoke-size comparison (all schemes, minutes on a CPU)
QUICK = {"seeds": 2, "rounds": 3, "epochs": 1, "drl_seconds": 60.0}
#: wall-clock training budget of drl when it is trained here (without --drl-policy)
DRL_SECONDS = 300.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", default="default", help="preset name or scenario file of the base market (default: default)")
    datasets = RegistryChoices("fl.data", "DATASETS")
    p.add_argument("--dataset", default="mnist5k", choices=datasets, metavar="NAME",
                   help=datasets.help("FL data set (default %(default)s; register more with fl.data.register_dataset "
                                      "and --plugin):"))
    p.add_argument("--data-root", default=None, help="folder of the data set (see fl.data)")
    p.add_argument("--schemes", default="all",
                   help="'all' (default) or a comma list of: epec, drl, fixed, random, fixed_cap, random_cap, "
                        "static, hill_climb, single_leader, aoi_only, accuracy_only, data_only, and any "
                        "registered by --scheme-module")
    p.add_argument("--scheme-module", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it registers its own schemes with benchmarks.compare.register_scheme): "
                        "a module name, found in the current folder too, or a .py file's path; repeatable")
    p.add_argument("--seeds", type=int, default=3, help="market trajectories (seeds 0..K-1; default 3)")
    p.add_argument("--rounds", type=int, default=10, help="trading rounds T per trajectory, one FL round each (default 10)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke size: {QUICK['seeds']} seeds, {QUICK['rounds']} rounds, {QUICK['epochs']} local epoch, "
                        f"drl trained for {QUICK['drl_seconds']:g} s (overrides --seeds, --rounds and --epochs; "
                        "--drl-seconds when not given)")
    p.add_argument("--resume", action="store_true", help="skip the (scheme, seed) runs already in DIR/runs")
    from drl.compare.config import DEFAULT_TARGETS

    p.add_argument("--target", type=float, default=None,
                   help="target test accuracy (default per data set: "
                        + ", ".join(f"{name} {t:g}" for name, t in DEFAULT_TARGETS.items()) + ")")
    p.add_argument("--reference", default="drl",
                   help="the scheme the headline compares with the others, whose mean payment per MSP and seed the "
                        "budget-matched fixed and random spend (default drl)")
    p.add_argument("--level", type=float, default=0.5,
                   help="cap-relative reward level of fixed_cap and random_cap, a fraction of Rmax in (0, 1] (default 0.5)")
    p.add_argument("--deadline", default="auto",
                   help="FL round deadline: 'auto' (default: 2 x the median Tcmp + Tup of the participants at each "
                        "round's equilibrium, shared by every scheme), seconds, or 'inf' (wait for the slowest)")
    p.add_argument("--epochs", type=int, default=None, help="local epochs (default: the scenario's L)")
    p.add_argument("--alpha", type=float, default=0.5, help="Dirichlet label-split concentration (default 0.5)")
    rules = RegistryChoices("fl.aggregate", "AGGREGATIONS")
    p.add_argument("--aggregation", default="iom", choices=rules, metavar="RULE",
                   help=rules.help("aggregation rule (default %(default)s; register more with "
                                   "fl.aggregate.register_aggregation and --plugin):"))
    p.add_argument("--drl-policy", default=None,
                   help="folder written by 'metatrading train-pricing' for the drl scheme (default: train one into DIR/drl_policy)")
    p.add_argument("--drl-seconds", type=float, default=None,
                   help=f"wall-clock training budget of drl when trained here (default {DRL_SECONDS:g} s)")
    p.add_argument("--drl-updates", type=int, default=None,
                   help="or stop the drl training after this many PPO updates (reproducible budget)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def import_scheme_module(spec: str) -> None:
    """Import the user's scheme module ``spec`` (:func:`benchmarks.conventions.import_user_module`,
    errors naming ``--scheme-module``)."""
    from benchmarks.conventions import import_user_module

    import_user_module(spec, "--scheme-module")


def config(args: argparse.Namespace):
    """The :class:`~benchmarks.compare.CompareConfig` of the flags; every check before any work."""
    for module in args.scheme_module:
        import_scheme_module(module)
    from benchmarks.compare import CompareConfig, scheme_names
    from fl.data import DATASETS

    if args.dataset not in DATASETS:
        raise InputError("--dataset", f"unknown data set {args.dataset!r}; choose one of {', '.join(DATASETS)}")
    if args.threads is not None and args.threads < 1:
        raise InputError("--threads", f"must be >= 1, got {args.threads}")
    if args.drl_policy is not None and not Path(args.drl_policy).is_dir():
        raise InputError("--drl-policy", f"not a folder: {args.drl_policy}")
    if args.drl_policy is not None:
        for flag, value in (("--drl-seconds", args.drl_seconds), ("--drl-updates", args.drl_updates)):
            if value is not None:
                raise InputError(flag, "sets the training budget of drl, but --drl-policy loads a trained policy "
                                       "(nothing is trained): give one of the two")
    seeds, rounds, epochs = args.seeds, args.rounds, args.epochs
    drl_seconds = DRL_SECONDS if args.drl_seconds is None else args.drl_seconds
    if args.quick:
        seeds, rounds, epochs = QUICK["seeds"], QUICK["rounds"], QUICK["epochs"]
        drl_seconds = QUICK["drl_seconds"] if args.drl_seconds is None else args.drl_seconds
    return CompareConfig(
        scenario=args.scenario, dataset=args.dataset, data_root=args.data_root,
        schemes=tuple(scheme_names(args.schemes)), seeds=seeds, rounds=rounds, target=args.target,
        epochs=epochs, alpha=args.alpha, aggregation=args.aggregation, drl_policy=args.drl_policy,
        drl_seconds=drl_seconds, drl_updates=args.drl_updates, reference=args.reference,
        level=args.level, deadline=_deadline(args.deadline),
    )


def _deadline(value: str) -> float | str:
    from benchmarks.fl_cmd import parse_deadline

    return parse_deadline(value)


def print_report(compare: dict) -> None:
    from benchmarks.compare import report_text

    print(report_text(compare))


def run(args: argparse.Namespace) -> int:
    cfg = config(args)
    import torch

    from benchmarks.compare import run_comparison

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    t0, c0 = time.perf_counter(), time.process_time()
    compare, timing = run_comparison(cfg, args.out, resume=args.resume, progress=show_progress(args))
    print_report(compare)
    out = Path(args.out)
    phases = ", ".join(f"{name} {p['wall_seconds']:.1f}" for name, p in timing.get("phases", {}).items()
                       if p["wall_seconds"] >= 0.05)
    print(f"wrote {out / 'compare.json'}, {out / 'report.md'}, {out / 'iom.png'}, {out / 'accuracy.png'}, "
          f"{out / 'time_to_target.png'}, {out / 'frontier.png'}, {out / 'timing.json'} "
          f"({time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU; phases, s wall: {phases})")
    bad = {n: e["uncertified_rounds"] for n, e in compare["schemes"].items() if e["uncertified_rounds"]}
    if bad:
        print("not certified: " + ", ".join(f"{n} {k} round(s)" for n, k in bad.items())
              + " (kept the last certified rewards; listed under 'uncertified' in compare.json)")
        return 1
    return 0
