"""``metatrading presets``: the scenario presets, their sizes and what they hold."""
from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of every random draw; here, of the presets' parameters shown (default 0)")


def run(args: argparse.Namespace) -> int:
    from models.errors import InputError
    from models.scenario import PRESETS, preset

    if args.seed < 0:
        raise InputError("--seed", f"must be >= 0, got {args.seed}")
    print(f"{'preset':>8} {'N MUs':>6} {'M MSPs':>7} {'mechanism':>13} {'F GHz':>11} {'D samples':>11} {'Rmax':>6}")
    for name, (n, m) in PRESETS.items():
        sc = preset(name, seed=args.seed)
        print(f"{name:>8} {n:>6} {m:>7} {sc.mechanism.value:>13} {sc.F.min():>5.2f}-{sc.F.max():<5.2f} "
              f"{int(sc.D.min()):>5}-{int(sc.D.max()):<5} {sc.Rmax.max():>6g}")
    print(f"(drawn from seed {args.seed}; 'metatrading solve --scenario NAME --seed S' solves one, "
          "a scenario file can start from one with 'preset = \"NAME\"')")
    return 0
