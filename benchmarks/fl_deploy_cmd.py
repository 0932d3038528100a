"""``metatrading fl-deploy``: the FL run on Flower's deployment engine, started on loopback.

One real ``flower-superlink``, K real ``flower-supernode`` processes (SuperNode k has
``--node-config 'partition-id=k num-partitions=K mu-id=n'``) and ``flwr run`` on the
packaged App (``fl.flower.app``). TLS by default, with a CA and a SuperLink certificate made
for the run (``DIR/deployment/tls``); ``--insecure`` (plain HTTP) is for loopback only.

Writes ``DIR/fl.json`` (the keys of ``metatrading fl``; ``path`` = ``flower-deployment``),
``DIR/fl_params.pt`` (final global weights), ``DIR/progress.json``, ``DIR/fl.png`` and the
processes' logs in ``DIR/deployment/logs``. Every process is stopped at the end, also on
failure and Ctrl-C. The ServerApp writes ``DIR/fl_checkpoint.pt`` after every round (the file
``metatrading fl`` writes); ``--resume`` checks it against the settings before any process
starts and continues from it.

Without ``--allocation`` the task is a generated scenario of K MUs and one MSP (``--seed``),
every MU giving its whole CPU to it (written to ``DIR/allocation.json``); with one, K must
equal the number of MUs that allocate CPU to ``--msp``.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from benchmarks.conventions import RegistryChoices, show_progress
from benchmarks.fl_cmd import add_training_arguments, flag_error
from models.errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nodes", type=int, required=True, help="SuperNodes K (one per participating MU)")
    p.add_argument("--rounds", type=int, default=3, help="FL rounds (default 3)")
    p.add_argument("--out", required=True, help="output folder")
    datasets = RegistryChoices("fl.data", "DATASETS")
    p.add_argument("--dataset", default="mnist5k", choices=datasets, metavar="NAME",
                   help=datasets.help("FL data set (default %(default)s; register more with fl.data.register_dataset "
                                      "and --plugin):"))
    p.add_argument("--data-root", default=None, help="folder of the data set (see fl.data)")
    p.add_argument("--allocation", default=None,
                   help="a 'metatrading solve' equilibrium.json; default: K MUs x 1 MSP generated from --seed")
    p.add_argument("--msp", type=int, default=0, help="which MSP's FL task m to train (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of partition, initial model and batches (default 0)")
    add_training_arguments(p)
    p.add_argument("--target", type=float, default=0.9, help="target test accuracy (default 0.9)")
    p.add_argument("--insecure", action="store_true",
                   help="plain HTTP without TLS; only on loopback (this command listens on 127.0.0.1 only)")
    p.add_argument("--supernode-auth", action="store_true",
                   help="SuperNode authentication: a key pair per SuperNode, registered with the SuperLink, "
                        "which refuses any other node")
    p.add_argument("--isolation", default="process", choices=["process", "subprocess"],
                   help="process (default): each SuperNode runs --isolation process with one long-lived ClientApp "
                        "process that serves all its messages; subprocess: Flower's default, a new ClientApp "
                        "process per message (slower: each pays the imports and the data load)")
    p.add_argument("--stock-waits", action="store_true",
                   help="run the stock flower-supernode command and Flower's own polling waits (a SuperNode "
                        "without a message asks again after 3 s); default: Flower's SuperNode entry point with "
                        "short, doubling waits (fl.flower.waits)")
    p.add_argument("--poll-cap", type=float, default=None,
                   help="longest wait in seconds between two polls of an idle SuperNode or ClientApp process "
                        "(default 0.2, measured best of 0.05-0.4 on a 2-core machine; each idle SuperNode asks the SuperLink about once per this, so a larger "
                        "value costs the SuperLink less CPU and answers later)")
    p.add_argument("--round-timeout", type=float, default=600.0,
                   help="seconds the server waits for a round's replies (default 600)")
    p.add_argument("--timeout", type=float, default=None,
                   help="bound on the whole run in seconds (default: rounds x round-timeout + 120)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run checkpointed in --out (DIR/fl_checkpoint.pt, written after every round; "
                        "its settings must match)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


#: resident memory of one SuperNode with its ClientApp process (torch, the data set): ~1 GiB measured;
#: fl-deploy refuses --nodes K when (K + 1) x this is more than the memory available
NODE_BYTES = 2**30

#: how the banner names the two polling modes
SHORT_WAITS, STOCK_WAITS = "short waits", "Flower's own waits"


def _check_args(args: argparse.Namespace) -> None:
    from fl.data import DATASETS

    if args.dataset not in DATASETS:
        raise InputError("--dataset", f"unknown data set {args.dataset!r}; choose one of {', '.join(DATASETS)}")
    if args.nodes < 1:
        raise InputError("--nodes", f"must be >= 1, got {args.nodes}")
    if args.seed < 0:
        raise InputError("--seed", f"must be >= 0, got {args.seed}")
    from benchmarks.conventions import check_memory

    check_memory("--nodes", (args.nodes + 1) * NODE_BYTES,
                 f"{args.nodes} SuperNodes (~{NODE_BYTES / 2**30:.0f} GiB resident each, with its ClientApp process, "
                 "and as much for the SuperLink and the ServerApp)")
    if args.rounds < 1:
        raise InputError("--rounds", f"must be >= 1, got {args.rounds}")
    if args.epochs is not None and args.epochs < 1:
        raise InputError("--epochs", f"must be >= 1, got {args.epochs}")
    if args.supernode_auth and args.insecure:
        raise InputError("--supernode-auth", "needs TLS (Flower refuses SuperNode authentication with --insecure)")
    if args.poll_cap is not None and not (0.005 <= args.poll_cap <= 60):
        raise InputError("--poll-cap", f"must be in [0.005, 60] seconds, got {args.poll_cap}")
    if args.poll_cap is not None and args.stock_waits:
        raise InputError("--poll-cap", "sets the short waits; --stock-waits keeps Flower's own")
    for name in ("round_timeout", "timeout"):
        v = getattr(args, name)
        if v is not None and not (math.isfinite(v) and v > 0):
            raise InputError(f"--{name.replace('_', '-')}", f"must be > 0 seconds, got {v}")


def run_config_of(args: argparse.Namespace, allocation: Path, out: Path) -> dict:
    """The App's run config (keys of ``fl.flower.runconfig.run_config_defaults``) for these flags."""
    return {
        "dataset": args.dataset, "data-root": str(Path(args.data_root).resolve()) if args.data_root else "",
        "allocation": str(allocation.resolve()), "msp": args.msp, "rounds": args.rounds,
        "aggregation": args.aggregation, "seed": args.seed, "alpha": float(args.alpha), "target": float(args.target),
        "epochs": args.epochs or 0, "batch-size": args.batch_size, "lr": float(args.lr),
        "momentum": float(args.momentum), "round-timeout": float(args.round_timeout), "out-dir": str(out.resolve()),
    }


def _check_resume(args: argparse.Namespace, task, rc, out: Path) -> int:
    """Rounds in ``DIR/fl_checkpoint.pt``, once it is readable and made with these settings."""
    import torch

    from fl.trainer import CHECKPOINT_FILE, checkpoint_fingerprint, load_checkpoint

    try:
        state = load_checkpoint(out / CHECKPOINT_FILE, torch.device("cpu"), checkpoint_fingerprint(task, rc.fl))
    except InputError as err:
        raise flag_error(err) from None
    done = len(state["history"]["accuracy"])
    if done > args.rounds:
        raise InputError("--rounds", f"the checkpoint holds {done} rounds already, more than --rounds {args.rounds}")
    return done


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    import json

    from fl.flower.deployment import DeploymentError, NodeSpec, run_local_deployment
    from fl.flower.runconfig import RESULT_FILE, AppRunConfig, task_from_run_config
    from models.io import atomic_write_json
    from models.scenario import generate

    out = Path(args.out)
    generated = None
    if args.allocation is None:
        if args.msp != 0:
            raise InputError("--msp", "the generated scenario has one MSP (0); give --allocation for more")
        sc = generate(args.nodes, 1, seed=args.seed)
        generated = {"allocations": sc.F[:, None].tolist(), "scenario": sc.to_dict(),
                     "note": f"generated by fl-deploy: {args.nodes} MUs x 1 MSP, seed {args.seed}, f = F"}
        allocation = out / "allocation.json"
    else:
        allocation = Path(args.allocation)
    # every input check (run config, allocation, data set, K) happens before anything is written
    run_config = run_config_of(args, allocation, out)
    try:
        if generated is not None:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                atomic_write_json(Path(tmp) / "allocation.json", generated)
                rc = AppRunConfig.from_run_config({**run_config, "allocation": str(Path(tmp) / "allocation.json")})
                task, _ = task_from_run_config(rc)
        else:
            rc = AppRunConfig.from_run_config(run_config)
            task, _ = task_from_run_config(rc)
    except InputError as err:  # the run config is made of the flags: name the flag
        raise flag_error(err) from None
    k = len(task.participants)
    if k != args.nodes:
        raise InputError("--nodes", f"MSP {task.msp} has {k} participants in {args.allocation}, got --nodes "
                                    f"{args.nodes}")
    done = _check_resume(args, task, rc, out) if args.resume else 0
    run_config["resume"] = bool(args.resume)
    out.mkdir(parents=True, exist_ok=True)
    if generated is not None:
        atomic_write_json(allocation, generated)
    nodes = [NodeSpec(i, k, int(n)) for i, n in enumerate(task.participants)]
    timeout = args.timeout or args.rounds * args.round_timeout + 120.0
    if done:
        print(f"resuming from round {done} of {args.rounds} ({out / 'fl_checkpoint.pt'})")
    print(f"Flower deployment: 1 SuperLink + {k} SuperNodes on 127.0.0.1, "
          f"{'INSECURE plain HTTP' if args.insecure else 'TLS (CA made for this run)'}"
          f"{', SuperNode authentication' if args.supernode_auth else ''}, {args.isolation} isolation, "
          f"{STOCK_WAITS if args.stock_waits else SHORT_WAITS}; "
          f"FL {task.dataset.name}, MSP {task.msp}, {args.rounds} rounds, {task.local.epochs} local epochs")
    bar = None
    if show_progress(args):
        from models.progress import progress_bar

        bar = progress_bar(total=args.rounds, initial=done, desc="fl-deploy", unit="round")

    def on_progress(p: dict) -> None:
        if bar is not None:
            bar.set_postfix(acc=f"{p['accuracy'][-1]:.3f}", round_s=f"{p['wall_time'][-1]:.1f}", refresh=False)
            bar.update(int(p["done"]) - bar.n)

    def on_status(text: str) -> None:
        if bar is not None:
            bar.set_postfix_str(text)

    try:
        res = run_local_deployment(Path(__file__).resolve().parents[1], nodes, run_config, out / "deployment",
                                   insecure=args.insecure, supernode_auth=args.supernode_auth, timeout_s=timeout,
                                   isolation=args.isolation, short_waits=not args.stock_waits,
                                   poll_cap_s=args.poll_cap,
                                   on_progress=on_progress, on_status=on_status)
    except DeploymentError as err:
        print(f"metatrading: fl-deploy failed: {err}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    report = json.loads((out / RESULT_FILE).read_text())
    from benchmarks.plots import accuracy_plot

    accuracy_plot(out / "fl.png", report["sim_time"], report["accuracy"], report["target"],
                  f"FL on {report['dataset']}, MSP {report['msp']} (Flower deployment, {k} SuperNodes)")
    ttt, rtt = report["time_to_target"], report["rounds_to_target"]
    reached = f"reached at {ttt:.1f} s simulated (round {rtt})" if ttt is not None else "not reached"
    print(f"final accuracy {report['final_accuracy']:.4f} after {report['rounds']} rounds "
          f"({', '.join(f'{w:.1f}' for w in report['wall_time'])} s per round), run {res.run_id}, "
          f"{res.wall_s:.1f} s wall in all; target {report['target']:g} {reached}")
    print(f"stopped all {len(res.pids)} processes of the deployment")
    print(f"wrote {out / RESULT_FILE}, {out / 'fl_params.pt'} and {out / 'fl.png'}")
    return 0
