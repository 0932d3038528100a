"""``metatrading fl``: federated learning of one MSP's task driven by an allocation.

Writes ``DIR/fl.json`` (per round ``accuracy``, ``sim_time``, ``participants``, ``missed``
(updates that missed the round deadline, ``--deadline``); ``target``, ``time_to_target``), ``DIR/fl.png`` (accuracy against simulated time) and checkpoints
``DIR/fl_checkpoint.pt`` after every round (``--resume`` continues from it).
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from benchmarks.conventions import RegistryChoices
from models.errors import InputError

ALLOCATION_HELP = (
    "a 'metatrading solve' result (equilibrium.json: keys 'allocations' N x M GHz and 'scenario'). "
    "Default: the --scenario preset/file at the MUs' exact follower equilibrium for the 'fixed' "
    "scheme's rewards R_m = Rmax_m / 2 (models.follower_equilibrium)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    datasets = RegistryChoices("fl.data", "DATASETS")
    p.add_argument("--dataset", default="mnist5k", choices=datasets, metavar="NAME",
                   help=datasets.help("FL data set (default %(default)s; register more with fl.data.register_dataset "
                                      "and --plugin):"))
    p.add_argument("--data-root", default=None, help="folder of the data set (see fl.data)")
    p.add_argument("--rounds", type=int, default=30, help="FL rounds (default 30)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--allocation", default=None, help=ALLOCATION_HELP)
    p.add_argument("--scenario", default=None,
                   help="preset name or scenario file (or an equilibrium.json, whose scenario it reruns) for the "
                        "default allocation; not with --allocation, whose file carries its scenario (default: default)")
    p.add_argument("--msp", type=int, default=0, help="which MSP's FL task m to train (default 0)")
    p.add_argument("--deadline", default="inf",
                   help="round deadline T_m in simulated seconds: a participant slower than it misses the round "
                        "(not aggregated, still paid) and the round lasts min(T_m, slowest); 'inf' (default): wait "
                        "for the slowest; 'auto': 2 x the median participant's Tcmp + Tup at the allocation "
                        "(docs/model.md section 7)")
    p.add_argument("--target", type=float, default=0.9, help="target test accuracy (default 0.9)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of every random draw: the partition, initial model and batch orders, and the "
                        "--scenario preset unless --scenario-seed is given (default 0)")
    p.add_argument("--scenario-seed", type=int, default=None,
                   help="seed of the --scenario preset or file base alone (default: --seed; a scenario file's own "
                        "seed when neither is given)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run checkpointed in --out (DIR/fl_checkpoint.pt; its settings must match)")
    add_training_arguments(p)
    p.add_argument("--path", default="auto", choices=["auto", "vectorised", "parallel", "sequential"],
                   help="local-training implementation (default auto: the faster one on the device)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the same as --quiet)")


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """The FL training options ``fl`` and ``fl-deploy`` share (aggregation, split, local SGD)."""
    rules = RegistryChoices("fl.aggregate", "AGGREGATIONS")
    p.add_argument("--aggregation", default="iom", choices=rules, metavar="RULE",
                   help=rules.help("aggregation rule (default %(default)s; register more with "
                                   "fl.aggregate.register_aggregation and --plugin):"))
    p.add_argument("--alpha", type=float, default=0.5, help="Dirichlet label-split concentration (default 0.5)")
    p.add_argument("--epochs", type=int, default=None, help="local epochs (default: the scenario's L)")
    p.add_argument("--batch-size", type=int, default=32, help="local batch size (default 32)")
    p.add_argument("--lr", type=float, default=0.05, help="local learning rate (default 0.05)")
    p.add_argument("--momentum", type=float, default=0.5, help="local SGD momentum (default 0.5)")


def parse_deadline(value: str) -> float | str:
    """``--deadline``: seconds > 0, ``inf`` or ``auto``."""
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    try:
        d = float(text)
    except ValueError:
        d = math.nan
    if not d > 0:
        raise InputError("--deadline", f"must be a number of seconds > 0, 'inf' or 'auto', got {value!r}")
    return d


def _check_args(args: argparse.Namespace) -> None:
    if args.rounds < 1:
        raise InputError("--rounds", f"must be >= 1, got {args.rounds}")
    if not (math.isfinite(args.target) and 0 < args.target <= 1):
        raise InputError("--target", f"must be in (0, 1], got {args.target}")
    if args.threads is not None and args.threads < 1:
        raise InputError("--threads", f"must be >= 1, got {args.threads}")
    for flag, value in (("--seed", args.seed), ("--scenario-seed", args.scenario_seed)):
        if value is not None and value < 0:
            raise InputError(flag, f"must be >= 0, got {value}")
    if args.allocation is not None:
        for flag, value in (("--scenario", args.scenario), ("--scenario-seed", args.scenario_seed)):
            if value is not None:
                raise InputError(flag, "cannot be combined with --allocation (the allocation file carries its "
                                       "own scenario)")


#: fl.trainer's settings (FLConfig's fields, the checkpoint's settings, fl-deploy's run config)
#: -> the flag that sets them
_SETTING_FLAGS = {"seed": "--seed", "alpha": "--alpha", "aggregation": "--aggregation", "dataset": "--dataset",
                  "n_train": "--dataset", "msp": "--msp", "local.epochs": "--epochs", "local.batch_size": "--batch-size",
                  "local.lr": "--lr", "local.momentum": "--momentum", "rounds": "--rounds", "checkpoint": "--resume",
                  "epochs": "--epochs", "batch_size": "--batch-size", "batch-size": "--batch-size", "lr": "--lr",
                  "momentum": "--momentum", "target": "--target", "path": "--path", "round-timeout": "--round-timeout",
                  "data-root": "--data-root",
                  "deadline": "--deadline"}


def flag_error(err: InputError) -> InputError:
    """A trainer error about a setting (``lr``, ``run-config.batch-size``, ``checkpoint.seed``, ...),
    named by the flag that sets it (``--lr``, ``--batch-size``, ``--seed``, ...)."""
    key = err.field.removeprefix("checkpoint.") if err.field != "checkpoint" else "checkpoint"
    key = key.removeprefix("run-config.")
    flag = _SETTING_FLAGS.get(key, "--allocation/--scenario" if err.field.startswith("checkpoint.") else None)
    if flag is None:
        return err
    return InputError(flag, err.reason)


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    import torch

    from benchmarks.plots import accuracy_plot
    from fl.data import load_dataset
    from fl.allocation import default_allocation, load_allocation
    from fl.trainer import FLConfig, build_task, fl_report, run_fl
    from models.io import atomic_write_json

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    from benchmarks.conventions import show_progress

    seed = 0 if args.seed is None else args.seed
    if args.allocation is not None:
        sc, f = load_allocation(args.allocation)
        source = f"allocation {args.allocation}"
    else:
        spec = args.scenario or "default"
        sc, f = default_allocation(spec, args.scenario_seed if args.scenario_seed is not None else args.seed)
        source = f"scenario {spec} (seed {sc.seed}), follower equilibrium at R = Rmax/2"
    try:
        cfg = FLConfig(
            rounds=args.rounds, msp=args.msp, alpha=args.alpha, target=args.target, seed=seed,
            aggregation=args.aggregation, path=args.path, epochs=args.epochs, batch_size=args.batch_size,
            lr=args.lr, momentum=args.momentum, deadline=parse_deadline(args.deadline),
        )
    except InputError as err:
        raise flag_error(err) from None
    ds = load_dataset(args.dataset, root=args.data_root)
    try:
        task = build_task(ds, sc, f, cfg)  # every input check happens before anything is written
    except InputError as err:
        if args.allocation is not None and err.field.startswith("allocations"):
            raise InputError(f"--allocation {args.allocation}: {err.field}", err.reason) from None
        if err.field == "msp":
            raise flag_error(err) from None
        raise
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "fl_checkpoint.pt"
    print(f"FL {ds.name}, MSP {task.msp}: {len(task.participants)} participants "
          f"({int(task.sizes.sum())} samples), {task.local.epochs} local epochs, "
          f"{task.round_time:.2f} s simulated per round; {source}")
    if task.missed:
        print(f"deadline {task.deadline:.2f} s: {task.missed} of {len(task.participants)} participants miss every "
              f"round (MU {', '.join(str(int(n)) for n in task.participants[~task.on_time])}; not aggregated)")
    if task.data_scale < 1:
        print(f"note: {ds.name} holds fewer samples than the scenario's D; each participant trains on "
              f"{task.data_scale:.3f} x D_nm (IoM and clock use D_nm)")
    def on_resume(done: int) -> None:
        print(f"resuming from {ckpt}: {done} of {cfg.rounds} rounds done, continuing with round {done + 1}")

    try:
        res = run_fl(task, cfg, checkpoint=ckpt, resume=args.resume, progress=show_progress(args),
                     on_resume=on_resume)
    except InputError as err:
        raise flag_error(err) from None
    rtt, ttt = res.rounds_to_target, res.time_to_target
    report = fl_report(task, cfg, res, source, scenario_seed=sc.seed)
    atomic_write_json(out / "fl.json", report)
    accuracy_plot(out / "fl.png", res.sim_time, res.accuracy, cfg.target,
                  f"FL on {ds.name}, MSP {task.msp} of {sc.name}: {len(task.participants)} MUs, "
                  f"{cfg.aggregation} aggregation, seed {cfg.seed}")
    reached = f"reached at {ttt:.1f} s simulated (round {rtt})" if ttt is not None else "not reached"
    print(f"final accuracy {res.accuracy[-1]:.4f} after {res.rounds} rounds, {sum(res.missed)} missed update(s), "
          f"{res.sim_time[-1]:.1f} s simulated, {sum(res.wall_time):.1f} s wall; "
          f"target {cfg.target:g} {reached}")
    print(f"wrote {out / 'fl.json'} and {out / 'fl.png'}")
    return 0
