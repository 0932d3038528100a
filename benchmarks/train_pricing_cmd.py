"""``metatrading train-pricing``: independent PPO pricing, one learner per MSP.

Writes into ``--out``: ``checkpoint.pt`` (every ``--checkpoint-every`` seconds, at the end, and
when Ctrl-C, SIGTERM or SIGHUP stops it; ``--resume`` continues from it), ``policy.pt`` (for ``metatrading validate --policy`` and
:func:`drl.load_policy`), ``training.json`` (per update: deterministic rewards, rollout utilities,
market rounds so far, PPO metrics; the budget spent; the EPEC reference) and ``training.png``
(each MSP's reward and utility against market rounds, the EPEC as dashed lines). The progress
bar (stderr) shows the current rewards and, in stationary mode, the signed gap to the EPEC.
Bad input (unknown scenario, ``--seconds`` <= 0, ...) prints one line, writes nothing, exits 2.
"""
from __future__ import annotations

import argparse
import math

from benchmarks.conventions import show_progress
from models.errors import InputError

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", default="default", help="preset (tiny, default, large, xl) or a scenario file (default: default)")
    p.add_argument("--dynamic", action="store_true", help="train in the dynamic market (docs/model.md section 6)")
    p.add_argument("--seconds", type=float, default=None,
                   help="wall-clock training budget in seconds (default 300, or none when --updates is given)")
    p.add_argument("--updates", type=int, default=None,
                   help="stop after this many PPO updates, a reproducible budget: the clock cuts it short only "
                        "when --seconds is given too")
    p.add_argument("--seed", type=int, default=0, help="training seed: networks, sampling, dynamics (default 0)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true",
                   help="continue from DIR/checkpoint.pt (written every --checkpoint-every seconds, at the end, "
                        "and on Ctrl-C or SIGTERM)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="torch device (default cpu)")
    p.add_argument("--markets", type=int, default=None, help="E, parallel markets per rollout (default 64)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the batched solver's tensors are small)")
    p.add_argument("--checkpoint-every", type=float, default=30.0, help="seconds between checkpoints (default 30)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check(args: argparse.Namespace) -> None:
    if args.seconds is not None and not (math.isfinite(args.seconds) and args.seconds > 0):
        raise InputError("--seconds", f"must be > 0, got {args.seconds:g}")
    if args.updates is not None and args.updates < 1:
        raise InputError("--updates", f"must be >= 1, got {args.updates}")
    if args.seed < 0:
        raise InputError("--seed", f"must be >= 0, got {args.seed}")
    if args.markets is not None and args.markets < 1:
        raise InputError("--markets", f"must be >= 1, got {args.markets}")
    if args.threads < 1:
        raise InputError("--threads", f"must be >= 1, got {args.threads}")
    if not (math.isfinite(args.checkpoint_every) and args.checkpoint_every > 0):
        raise InputError("--checkpoint-every", f"must be > 0, got {args.checkpoint_every:g}")


def run(args: argparse.Namespace) -> int:
    _check(args)
    import dataclasses

    import numpy as np
    import torch

    from drl import PPOConfig, train_pricing
    from models.scenario import load_scenario

    sc = load_scenario(args.scenario)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device", "cuda requested but no CUDA device is available")
    torch.set_num_threads(args.threads)
    cfg = PPOConfig() if args.markets is None else dataclasses.replace(PPOConfig(), n_markets=args.markets)
    if (cfg.n_markets * cfg.num_steps) % cfg.num_minibatches:
        raise InputError("--markets", f"markets x {cfg.num_steps} rounds must be divisible by {cfg.num_minibatches}")
    res = train_pricing(sc, args.out, seconds=args.seconds, updates=args.updates, seed=args.seed, dynamic=args.dynamic,
                        device=args.device, progress=show_progress(args), resume=args.resume, config=cfg,
                        checkpoint_every=args.checkpoint_every)
    b = res.budget
    print(f"trained {sc.name} ({'dynamic' if args.dynamic else 'stationary'}, seed {args.seed}): {b['updates']} updates, "
          f"{b['market_rounds']} market rounds, {b['seconds']:.1f} s")
    print(f"{'MSP':>4} {'reward':>9} {'EPEC':>9} {'gap %':>8} {'utility':>9} {'EPEC V':>9}")
    for m in range(sc.n_msp):
        if res.epec_rewards is not None:
            gap = 100 * (res.rewards[m] - res.epec_rewards[m]) / abs(res.epec_rewards[m])
            print(f"{m:>4} {res.rewards[m]:>9.4f} {res.epec_rewards[m]:>9.4f} {gap:>+8.2f} {res.utilities[m]:>9.3f} "
                  f"{res.epec_utilities[m]:>9.3f}")
        else:
            print(f"{m:>4} {res.rewards[m]:>9.4f} {'-':>9} {'-':>8} {res.utilities[m]:>9.3f} {'-':>9}")
    print(f"wrote {args.out}/policy.pt, training.json, training.png, checkpoint.pt")
    return 0 if np.all(np.isfinite(res.rewards)) else 1
