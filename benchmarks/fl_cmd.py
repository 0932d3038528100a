"""``metatrading fl``: federated learning of one MSP's task driven by an allocation.

Writes ``DIR/fl.json`` (per round ``accuracy``, ``sim_time``, ``participants``; ``target``,
``time_to_target``), ``DIR/fl.png`` (accuracy against simulated time) and checkpoints
``DIR/fl_checkpoint.pt`` after every round (``--resume`` continues from it).
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from models.errors import InputError

ALLOCATION_HELP = (
    "a 'metatrading solve' result (equilibrium.json: keys 'allocations' N x M GHz and 'scenario'). "
    "Default: the --scenario preset/file at the MUs' exact follower equilibrium for the 'fixed' "
    "scheme's rewards R_m = Rmax_m / 2 (models.follower_equilibrium)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="mnist5k", help="mnist5k (default), fashion-mnist, mnist or gtsrb")
    p.add_argument("--data-root", default=None, help="folder of the data set (see fl.data)")
    p.add_argument("--rounds", type=int, default=30, help="FL rounds (default 30)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--allocation", default=None, help=ALLOCATION_HELP)
    p.add_argument("--scenario", default="default",
                   help="preset name or scenario file, used when no --allocation is given (default: default)")
    p.add_argument("--msp", type=int, default=0, help="which MSP's FL task m to train (default 0)")
    p.add_argument("--target", type=float, default=0.9, help="target test accuracy (default 0.9)")
    p.add_argument("--seed", type=int, default=0, help="seed of partition, initial model and batches (default 0)")
    p.add_argument("--resume", action="store_true", help="continue from DIR/fl_checkpoint.pt")
    p.add_argument("--aggregation", default="iom", choices=["iom", "fedavg"],
                   help="iom: IoM-weighted FedAvg (default); fedavg: weights by data amount")
    p.add_argument("--alpha", type=float, default=0.5, help="Dirichlet label-split concentration (default 0.5)")
    p.add_argument("--epochs", type=int, default=None, help="local epochs (default: the scenario's L)")
    p.add_argument("--batch-size", type=int, default=32, help="local batch size (default 32)")
    p.add_argument("--lr", type=float, default=0.05, help="local learning rate (default 0.05)")
    p.add_argument("--momentum", type=float, default=0.5, help="local SGD momentum (default 0.5)")
    p.add_argument("--path", default="auto", choices=["auto", "vectorised", "parallel", "sequential"],
                   help="local-training implementation (default auto: the faster one on the device)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check_args(args: argparse.Namespace) -> None:
    if args.rounds < 1:
        raise InputError("--rounds", f"must be >= 1, got {args.rounds}")
    if not (math.isfinite(args.target) and 0 < args.target <= 1):
        raise InputError("--target", f"must be in (0, 1], got {args.target}")
    if args.threads is not None and args.threads < 1:
        raise InputError("--threads", f"must be >= 1, got {args.threads}")


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    import numpy as np
    import torch

    from benchmarks.plots import accuracy_plot
    from fl.data import load_dataset
    from fl.trainer import FLConfig, build_task, default_allocation, fl_report, load_allocation, run_fl
    from models.io import atomic_write_json

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    if args.allocation is not None:
        sc, f = load_allocation(args.allocation)
        source = f"allocation {args.allocation}"
    else:
        sc, f = default_allocation(args.scenario)
        source = f"scenario {args.scenario}, follower equilibrium at R = Rmax/2"
    cfg = FLConfig(
        rounds=args.rounds, msp=args.msp, alpha=args.alpha, target=args.target, seed=args.seed,
        aggregation=args.aggregation, path=args.path, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, momentum=args.momentum,
    )
    ds = load_dataset(args.dataset, root=args.data_root)
    task = build_task(ds, sc, f, cfg)  # every input check happens before anything is written
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "fl_checkpoint.pt"
    print(f"FL {ds.name}, MSP {task.msp}: {len(task.participants)} participants "
          f"({int(task.sizes.sum())} samples), {task.local.epochs} local epochs, "
          f"{task.round_time:.2f} s simulated per round; {source}")
    if task.data_scale < 1:
        print(f"note: {ds.name} holds fewer samples than the scenario's D; each participant trains on "
              f"{task.data_scale:.3f} x D_nm (IoM and clock use D_nm)")
    res = run_fl(task, cfg, checkpoint=ckpt, resume=args.resume, progress=not args.no_progress)
    rtt, ttt = res.rounds_to_target, res.time_to_target
    report = fl_report(task, cfg, res, source)
    atomic_write_json(out / "fl.json", report)
    accuracy_plot(out / "fl.png", res.sim_time, res.accuracy, cfg.target, f"FL on {ds.name}, MSP {task.msp}")
    reached = f"reached at {ttt:.1f} s simulated (round {rtt})" if ttt is not None else "not reached"
    print(f"final accuracy {res.accuracy[-1]:.4f} after {res.rounds} rounds, "
          f"{res.sim_time[-1]:.1f} s simulated, {sum(res.wall_time):.1f} s wall; "
          f"target {cfg.target:g} {reached}")
    print(f"wrote {out / 'fl.json'} and {out / 'fl.png'}")
    return 0
