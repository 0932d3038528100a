"""``metatrading bench sweep``: a sweep by continuation against the same points solved cold,
interleaved.

``metatrading sweep --cold`` times each side once, one after the other: the continuation's path
takes about 2 s and the cold solves about 10 s, so a slow spell of the shared machine that lasts
a few seconds lands on one side only and moves the ratio by 10-20% (measured: 4.59x-6.30x over
eight back-to-back runs of the same code). Here both sides meet the machine alike: the
continuation's path is run ``--repeats`` times, each run followed by the next share of the cold
solves (the points in ``repeats`` consecutive chunks), so the cold solves and the paths are spread
over the same minutes. The ratio is the cold solves' seconds (every point once) over the paths'
mean seconds, in the points' seconds and in CPU time (``time.process_time``; the solvers run on
one thread); each path's own ratio (the cold total over that path) is printed beside it, which is
what one run of ``sweep --cold`` measures. Every path must certify the same points with the same
rewards (the continuation is deterministic); the largest reward difference between the two sides
is printed as ``sweep --cold`` prints it (kinks apart). Writes ``DIR/sweep_bench.json``.
"""
from __future__ import annotations

import argparse
import gc
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import InputError

__all__ = ["add_arguments", "run", "interleaved"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from benchmarks.solve_cmd import add_epec_arguments

    parser.add_argument("--scenario", default="default", help="preset or scenario file (default: default)")
    parser.add_argument("--param", default="rho", help="the swept parameter (default rho)")
    parser.add_argument("--values", default="0.3:1.0:50", help="its values, a:b:n or v1,v2,... (default 0.3:1.0:50)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="runs of the continuation's path, each followed by a share of the cold solves "
                             "(default 5)")
    parser.add_argument("--out", required=True, help="output folder (sweep_bench.json)")
    add_epec_arguments(parser)


def _timed(fn: Any) -> tuple[Any, float, float]:
    """``fn()`` from a collected heap, with its wall and CPU seconds."""
    gc.collect()
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def interleaved(sc: Any, param: str, values: list[float], options: Any, repeats: int,
                progress: Any = None) -> dict[str, Any]:
    """The continuation's path ``repeats`` times, each followed by the next chunk of the cold
    solves (module doc); the plain record of both sides and their ratios."""
    from epec.sweep import SweepOptions, sweep

    cold_opts = SweepOptions(**{**options.to_dict(), "continuation": False, "predict": False,
                                "sensitivities": False})
    sweep(sc, param, values[:1], options=cold_opts)  # untimed: imports and CasADi's set-up
    chunks = [list(c) for c in np.array_split(np.arange(len(values)), repeats)]
    paths, cold = [], []
    for k, chunk in enumerate(chunks):
        recs, wall, cpu = _timed(lambda: sweep(sc, param, values, options=options))
        paths.append({"seconds": float(sum(r.get("seconds", 0.0) for r in recs)), "wall_seconds": wall,
                      "cpu_seconds": cpu, "certified": sum(1 for r in recs if r.get("ok")),
                      "rewards": [r.get("rewards") for r in recs],
                      "kinks": [r["i"] for r in recs if (r.get("sensitivity") or {}).get("status") == "kink"]})
        if chunk:
            part, wall, cpu = _timed(lambda: sweep(sc, param, [values[i] for i in chunk], options=cold_opts))
            cold.append({"points": chunk, "seconds": float(sum(r.get("seconds", 0.0) for r in part)),
                         "wall_seconds": wall, "cpu_seconds": cpu, "certified": sum(1 for r in part if r.get("ok")),
                         "rewards": [r.get("rewards") for r in part]})
        if progress is not None:
            progress(k + 1, len(chunks), paths[-1])
    return _record(values, paths, cold)


def _record(values: list[float], paths: list[dict], cold: list[dict]) -> dict[str, Any]:
    cold_s = sum(c["seconds"] for c in cold)
    cold_cpu = sum(c["cpu_seconds"] for c in cold)
    mean_s = float(np.mean([p["seconds"] for p in paths]))
    mean_cpu = float(np.mean([p["cpu_seconds"] for p in paths]))
    cold_R = [None] * len(values)
    for c in cold:
        for i, R in zip(c["points"], c["rewards"]):
            cold_R[i] = R
    first = paths[0]["rewards"]
    same = all(p["rewards"] == first for p in paths)
    kinks = set(paths[0]["kinks"])

    def gap(skip: set) -> float:
        return float(max((np.max(np.abs(np.subtract(a, b))) for i, (a, b) in enumerate(zip(first, cold_R))
                          if a is not None and b is not None and i not in skip), default=0.0))

    return {"points": len(values), "repeats": len(paths),
            "cold_seconds": cold_s, "cold_cpu_seconds": cold_cpu,
            "cold_certified": sum(c["certified"] for c in cold),
            "continuation_seconds_mean": mean_s, "continuation_cpu_seconds_mean": mean_cpu,
            "ratio": cold_s / mean_s if mean_s > 0 else math.inf,
            "cpu_ratio": cold_cpu / mean_cpu if mean_cpu > 0 else math.inf,
            "path_ratios": [cold_s / p["seconds"] if p["seconds"] > 0 else math.inf for p in paths],
            "path_cpu_ratios": [cold_cpu / p["cpu_seconds"] if p["cpu_seconds"] > 0 else math.inf for p in paths],
            "paths_certified": [p["certified"] for p in paths], "paths_same_rewards": same,
            "kinks": sorted(kinks), "max_reward_difference": gap(set()),
            "max_reward_difference_smooth": gap(kinks),
            "paths": [{k: v for k, v in p.items() if k != "rewards"} for p in paths],
            "cold": [{k: v for k, v in c.items() if k != "rewards"} for c in cold],
            "continuation_rewards": first, "cold_rewards": cold_R}


def run(args: argparse.Namespace) -> int:
    from benchmarks.solve_cmd import check_epec_args
    from benchmarks.sweep_cmd import parse_values
    from epec.sweep import PARAMETERS, SweepOptions, check_values
    from models.io import atomic_write_json
    from models.scenario import load_scenario

    check_epec_args(args)
    if isinstance(args.repeats, bool) or args.repeats < 1:
        raise InputError("--repeats", f"must be an integer >= 1, got {args.repeats!r}")
    if args.param not in PARAMETERS:
        raise InputError("--param", f"unknown parameter {args.param!r} (choose: {', '.join(PARAMETERS)})")
    sc = load_scenario(args.scenario)
    values = parse_values(args.values, "--values")
    try:
        check_values(sc, args.param, values)
    except InputError as err:
        raise InputError("--values", f"{err.field}: {err.reason}") from None
    if args.repeats > len(values):
        raise InputError("--repeats", f"must be at most the number of values ({len(values)}), got {args.repeats}")
    opts = SweepOptions(method=args.method, mode=args.mode, tol=args.tol, max_iter=args.max_iter, grid=args.grid,
                        global_moves=args.global_moves, starts=args.starts)

    def progress(k: int, n: int, path: dict) -> None:
        if not args.quiet:
            print(f"[{k}/{n}] continuation {path['seconds']:.2f} s ({path['certified']}/{len(values)} certified), "
                  f"then cold chunk {k}", flush=True)

    rec = interleaved(sc, args.param, values, opts, args.repeats, progress)
    rec.update(scenario=sc.name, param=args.param, values=values, options=opts.to_dict())
    out = Path(args.out)
    atomic_write_json(out / "sweep_bench.json", rec)
    pr = rec["path_ratios"]
    print(f"{len(values)} points of {args.param} on {sc.name}, interleaved {args.repeats}x: cold "
          f"{rec['cold_seconds']:.2f} s ({rec['cold_certified']}/{len(values)} certified), continuation "
          f"{rec['continuation_seconds_mean']:.2f} s per path (paths {min(p['seconds'] for p in rec['paths']):.2f}-"
          f"{max(p['seconds'] for p in rec['paths']):.2f} s, certified {rec['paths_certified']}, same rewards "
          f"{rec['paths_same_rewards']})")
    print(f"ratio cold / continuation {rec['ratio']:.2f}x (each path {min(pr):.2f}x-{max(pr):.2f}x); CPU time "
          f"{rec['cpu_ratio']:.2f}x (each path {min(rec['path_cpu_ratios']):.2f}x-{max(rec['path_cpu_ratios']):.2f}x); "
          f"rewards: largest difference {rec['max_reward_difference']:.3g} "
          f"({rec['max_reward_difference_smooth']:.3g} away from the {len(rec['kinks'])} kinks)")
    print(f"wrote {out / 'sweep_bench.json'}")
    ok = rec["paths_same_rewards"] and all(c == len(values) for c in rec["paths_certified"])
    return 0 if ok else 1
