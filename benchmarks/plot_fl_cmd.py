"""``metatrading plot-fl``: several FL runs on one plot, from their ``fl.json`` files.

Writes ``DIR/fl_overlay.png`` (test accuracy against simulated time, one line per run) and
prints each run's final accuracy and time to target. Typical use: IoM-weighted FedAvg against
plain FedAvg on the same allocation::

    metatrading fl --aggregation iom --out results/fl_iom ...
    metatrading fl --aggregation fedavg --out results/fl_fedavg ...
    metatrading plot-fl results/fl_iom/fl.json results/fl_fedavg/fl.json --out results/fl_compare
"""
from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="FL_JSON", help="fl.json files written by 'metatrading fl'")
    parser.add_argument("--out", required=True, help="output folder (writes fl_overlay.png)")
    parser.add_argument("--labels", default=None,
                        help="comma-separated legend labels, one per run (default: folder, aggregation, seed)")
    parser.add_argument("--title", default=None, help="plot title (default: the data sets and MSPs of the runs)")


def run(args: argparse.Namespace) -> int:
    from benchmarks.plots import fl_overlay_plot
    from models.errors import InputError
    from models.results import load_fl

    runs = [load_fl(p, field=f"FL_JSON {p}") for p in args.runs]
    if args.labels is not None:
        labels = [s.strip() for s in args.labels.split(",")]
        if len(labels) != len(runs) or not all(labels):
            raise InputError("--labels", f"expected {len(runs)} non-empty comma-separated labels, got {args.labels!r}")
    else:
        labels = [f"{Path(p).parent.name or p}: {r.aggregation}, seed {r.seed}" for p, r in zip(args.runs, runs)]
    title = args.title or "FL on " + ", ".join(sorted({f"{r.dataset} MSP {r.msp}" for r in runs}))
    out = Path(args.out) / "fl_overlay.png"
    fl_overlay_plot(out, [(lab, r.sim_time, r.accuracy) for lab, r in zip(labels, runs)],
                    targets=[r.target for r in runs], title=title)
    for lab, r in zip(labels, runs):
        hit = (f"target {r.target:g} at {r.time_to_target:.1f} s simulated (round {r.rounds_to_target})"
               if r.time_to_target is not None else f"target {r.target:g} not reached")
        print(f"{lab}: final accuracy {r.final_accuracy:.4f} after {r.rounds} rounds; {hit}")
    print(f"wrote {out}")
    return 0
