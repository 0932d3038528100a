"""``metatrading sweep``: the certified EPEC of a scenario along one parameter (or over a grid of
two), by continuation, with the sensitivities at every certified point (:func:`epec.sweep`).

Writes ``DIR/sweep.json`` (the options, the resolved scenario and one record per point:
parameter values, status, rewards, allocations, MSP utilities, the MU utilities' mean / min /
max / total, total IoM and participation per MSP, the sensitivities or the kink found there,
warm or cold start, seconds) atomically, at most once a second as the points come and at any
stop (Ctrl-C, an error): it is the checkpoint that ``--resume`` continues from (a killed process
loses at most the last second's points). At the end, ``DIR/rewards.png``, ``DIR/utilities.png`` and
``DIR/iom.png`` (curves for one parameter, heat maps for two). ``--cold`` solves every point
cold too, side by side, and prints the time ratio and the largest difference of the rewards.
Exit 0 when every point is certified, 1 when some are not (they are marked in the file and the
plots), 2 on bad input.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import InputError

__all__ = ["add_arguments", "run", "parse_values"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from benchmarks.parallel import add_parallel_arguments
    from benchmarks.solve_cmd import add_epec_arguments

    parser.add_argument("--scenario", default="default",
                        help="preset (tiny, default, large, xl), a .toml/.yaml/.json scenario file, or an "
                             "equilibrium.json of metatrading solve (default: default)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the scenario drawn from the preset or the "
                                                               "file's base (default: the file's seed, else 0)")
    parser.add_argument("--param", required=True,
                        help="the parameter of each path: a scenario field with a number (rho, Rmax, lam, w_acc, A0, "
                             "eps0, ...; an array field takes the value everywhere) or n_mu / n_msp (the scenario "
                             "redrawn from its seed at that size); the sensitivities are with respect to it")
    parser.add_argument("--values", required=True,
                        help="its values: a:b:n (n evenly spaced from a to b) or v1,v2,... (in this order)")
    parser.add_argument("--param2", default=None,
                        help="optional second parameter: one path over --values per value of it (a 2-D grid)")
    parser.add_argument("--values2", default=None, help="the values of --param2 (as --values)")
    parser.add_argument("--out", required=True, help="output folder (sweep.json and the plots)")
    parser.add_argument("--resume", action="store_true", help="continue the sweep whose sweep.json is in --out")
    parser.add_argument("--cold", action="store_true",
                        help="also solve every point cold (no continuation, no sensitivities), side by side, and "
                             "print the time ratio and the largest difference of the rewards")
    parser.add_argument("--cold-tol", type=float, default=None,
                        help="the --cold solves' stop tolerance (default: --tol): e.g. 1e-10 to compare the "
                             "continuation's points with equilibria solved far tighter than both")
    parser.add_argument("--no-continuation", action="store_true",
                        help="solve every point cold (the sensitivities are still computed)")
    parser.add_argument("--no-sensitivities", action="store_true",
                        help="skip the sensitivities (the continuation then starts from the previous point, "
                             "without the first-order predictor)")
    add_epec_arguments(parser)
    add_parallel_arguments(parser)


def parse_values(text: str, flag: str) -> list[float]:
    """``a:b:n`` (n >= 1 evenly spaced values from a to b) or a comma-separated list; an
    InputError naming ``flag`` otherwise."""
    from benchmarks.conventions import parse_numbers

    if text is None or not text.strip():
        raise InputError(flag, "expected a:b:n or v1,v2,..., got nothing")
    if ":" in text:
        parts = text.split(":")
        try:
            if len(parts) != 3:
                raise ValueError
            a, b, n = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise InputError(flag, f"expected a:b:n (two numbers and a whole count), got {text!r}") from None
        if n < 1 or not (math.isfinite(a) and math.isfinite(b)):
            raise InputError(flag, f"expected finite ends and a count >= 1 in a:b:n, got {text!r}")
        return [float(v) for v in np.linspace(a, b, n)] if n > 1 else [a]
    values = parse_numbers(text, flag)
    if not values:
        raise InputError(flag, f"expected a:b:n or v1,v2,..., got {text!r}")
    if not all(math.isfinite(v) for v in values):
        raise InputError(flag, f"expected finite numbers, got {text!r}")
    return values


def _check(args: argparse.Namespace, sc: Any) -> tuple[list[float], list[float] | None]:
    from benchmarks.parallel import check_workers
    from benchmarks.solve_cmd import check_epec_args
    from epec.sweep import PARAMETERS, check_values

    check_epec_args(args)
    check_workers(args.workers, args.ray_address)
    for flag, name in (("--param", args.param), ("--param2", args.param2)):
        if name is not None and name not in PARAMETERS:
            raise InputError(flag, f"unknown parameter {name!r} (choose: {', '.join(PARAMETERS)})")
    if args.cold_tol is not None and not (0 < args.cold_tol < 1 and args.cold):
        raise InputError("--cold-tol", f"must be in (0, 1) and go with --cold, got {args.cold_tol!r}")
    if (args.param2 is None) != (args.values2 is None):
        raise InputError("--param2" if args.param2 is None else "--values2",
                         "--param2 and --values2 go together")
    if args.param2 is not None and args.param2 == args.param:
        raise InputError("--param2", f"must differ from --param ({args.param})")
    values = parse_values(args.values, "--values")
    values2 = parse_values(args.values2, "--values2") if args.param2 is not None else None
    for flag, name, vals in (("--values", args.param, values), ("--values2", args.param2, values2)):
        if name is None:
            continue
        try:
            check_values(sc, name, vals)
        except InputError as err:
            raise InputError(flag, f"{err.field}: {err.reason}") from None
    return values, values2


def _plain(obj: Any) -> Any:
    from models.io import to_jsonable

    return json.loads(json.dumps(to_jsonable(obj)))


def _progress(rec: dict, total: int, param: str, param2: str | None) -> str:
    where = f"{param}={rec['value']:.6g}" + (f", {param2}={rec['params'][param2]:.6g}" if param2 else "")
    head = f"[{rec['index'] + 1:>{len(str(total))}}/{total}] {where}: {rec['status']}"
    if not rec.get("ok"):
        return f"{head} ({rec.get('start', '')}) {rec.get('message', '')[:200]}"
    sens = rec.get("sensitivity", {})
    extra = {"ok": "dR/d" + param + "=[" + ", ".join(f"{d:.4g}" for d in sens.get("dR", [])) + "]",
             "kink": "kink: " + "; ".join(sens.get("kinks", []))[:200]}.get(sens.get("status"),
                                                                           f"sensitivity {sens.get('status')}")
    R = ", ".join(f"{r:.5g}" for r in rec["rewards"])
    return f"{head} ({rec['start']}) R=[{R}] {rec['seconds']:.2f} s; {extra}"


def run(args: argparse.Namespace) -> int:
    from benchmarks.parallel import map_tasks
    from benchmarks.sweep_plots import sweep_plots
    from epec.sweep import SweepOptions, sweep
    from models.io import atomic_write_json
    from models.scenario import load_scenario

    sc = load_scenario(args.scenario, seed=args.seed)
    values, values2 = _check(args, sc)
    opts = SweepOptions(method=args.method, mode=args.mode, tol=args.tol, max_iter=args.max_iter, grid=args.grid,
                        global_moves=args.global_moves, starts=args.starts,
                        continuation=not args.no_continuation, predict=not args.no_sensitivities,
                        sensitivities=not args.no_sensitivities)
    out = Path(args.out)
    head = _plain({"scenario": sc.to_dict(), "param": args.param, "values": values, "param2": args.param2,
                   "values2": values2, "options": opts.to_dict()})
    done = _resumed_points(out, head) if args.resume else []
    total = len(values) * (len(values2) if values2 else 1)
    points: dict[int, dict] = {int(r["index"]): r for r in done}
    t0 = time.perf_counter()

    def checkpoint(complete: bool = False, **extra: Any) -> None:
        atomic_write_json(out / "sweep.json", {**head, "complete": complete,
                                               "points": [points[k] for k in sorted(points)], **extra})

    last = {"write": -math.inf}

    def on_point(rec: dict) -> None:
        points[int(rec["index"])] = rec
        # at most one checkpoint a second (and one at any stop, below): a write after every
        # point cost 0.65 s of a 50-point sweep's 3 s (the file grows with the points)
        if time.perf_counter() - last["write"] >= 1.0:
            checkpoint()
            last["write"] = time.perf_counter()
        if not args.quiet:
            print(_progress(rec, total, args.param, args.param2), flush=True)

    def on_path(recs: list) -> None:
        fresh = [r for r in recs if int(r["index"]) not in points]
        for r in recs:
            points[int(r["index"])] = r
        checkpoint()
        if parallel and not args.quiet:
            for r in fresh:
                print(_progress(r, total, args.param, args.param2), flush=True)

    # a 1-D sweep is one path: nothing to run side by side, and in this process it checkpoints
    # after every point (a Ray task reports only when its whole path is done)
    parallel = (args.workers > 1 or bool(args.ray_address)) and args.param2 is not None
    if (args.workers > 1 or args.ray_address) and not parallel and not args.quiet:
        print("one path (no --param2): it runs in this process, point after point")
    mapper = (lambda fn, tasks: map_tasks(fn, tasks, workers=args.workers, address=args.ray_address)) \
        if parallel else None
    cold_opts = SweepOptions(**{**opts.to_dict(), "continuation": False, "predict": False, "sensitivities": False,
                                **({"tol": args.cold_tol, "max_iter": max(args.max_iter, 200)} if args.cold_tol else {})})
    if args.cold and not parallel:
        # one untimed solve first: the first solve of a process pays the imports and CasADi's
        # set-up (~0.6 s on default), which would otherwise count against whichever side ran first
        sweep(sc, args.param, values[:1], options=cold_opts)
        gc.collect()
        t0 = time.perf_counter()
    c0 = time.process_time()
    if done and not args.quiet:
        print(f"resuming: {len(done)}/{total} points already in {out / 'sweep.json'}")
    try:
        records = sweep(sc, args.param, values, param2=args.param2, values2=values2, options=opts, done=done,
                        on_point=None if parallel else on_point, on_path=on_path, map_paths=mapper)
    except BaseException:  # Ctrl-C, an error: every point computed so far is kept for --resume
        checkpoint()
        raise
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    summary = _summary(records)
    extra: dict[str, Any] = {"summary": summary}
    if args.cold:
        # each side from a collected heap: the garbage of the side before (Pyomo models with
        # reference cycles) made the side after it 7-15% slower, whichever it was
        gc.collect()
        tc, cc = time.perf_counter(), time.process_time()
        cold = sweep(sc, args.param, values, param2=args.param2, values2=values2, options=cold_opts,
                     map_paths=mapper)
        extra["baseline"] = _baseline(records, cold, time.perf_counter() - tc, wall if not done else None)
        if not parallel and not done:
            # this process's CPU time (the solvers run on one thread): steadier than the wall
            # clock on a shared machine
            b = extra["baseline"]
            b.update(continuation_cpu_seconds=cpu, cold_cpu_seconds=time.process_time() - cc)
            b["cpu_ratio"] = b["cold_cpu_seconds"] / cpu if cpu > 0 else math.inf
    checkpoint(complete=True, **extra)
    files = sweep_plots(out, records, args.param, values, sc.n_msp, args.param2, values2, name=sc.name)
    _report(args, sc.name, summary, extra.get("baseline"))
    print(f"wrote {out / 'sweep.json'} and {', '.join(Path(f).name for f in files)}")
    return 0 if summary["certified"] == summary["points"] else 1


def _resumed_points(out: Path, head: dict[str, Any]) -> list[dict]:
    """The points of the sweep.json that ``--resume`` continues (InputError("--resume") when
    there is none, or when it holds a sweep with other settings)."""
    path = out / "sweep.json"
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError("--resume", f"no readable sweep.json in {out} ({err})") from None
    diff = [k for k in head if old.get(k) != head[k]]
    if diff:
        raise InputError("--resume", f"{path} holds a different sweep (its {', '.join(diff)} differ from "
                                     "these flags); pass the same flags, or --force to start again")
    return old.get("points", [])


def _report(args: argparse.Namespace, name: str, s: dict[str, Any], b: dict[str, Any] | None) -> None:
    """The closing lines: the summary, and the cold baseline beside it when one was run."""
    print(f"sweep of {args.param}" + (f" x {args.param2}" if args.param2 else "") +
          f" on {name}: {s['certified']}/{s['points']} points certified ({s['warm']} warm, {s['cold']} cold, "
          f"{s['cold_after_warm']} cold after a failed warm start); sensitivities: {s['sensitivities']}; "
          f"{s['seconds']:.2f} s in the points (solves and certificates {s['solve_seconds']:.2f} s, "
          f"sensitivities {s['sensitivity_seconds']:.2f} s)")
    if b is not None:
        print(f"cold baseline: {b['cold_seconds']:.2f} s for {b['points']} cold solves; continuation "
              f"{b['continuation_seconds']:.2f} s: ratio cold / continuation {b['ratio']:.2f}x "
              f"(without the sensitivities {b['ratio_without_sensitivities']:.2f}x); rewards: largest difference "
              f"{b['max_reward_difference']:.3g} over {b['compared']} points certified both ways "
              f"({b['max_reward_difference_smooth']:.3g} away from kinks)")
        if "cpu_ratio" in b:
            print(f"CPU time: continuation {b['continuation_cpu_seconds']:.2f} s, cold {b['cold_cpu_seconds']:.2f} s: "
                  f"ratio {b['cpu_ratio']:.2f}x")


def _summary(records: list[dict]) -> dict[str, Any]:
    import collections

    ok = [r for r in records if r.get("ok")]
    return {
        "points": len(records), "certified": len(ok),
        "not_certified": [r["index"] for r in records if not r.get("ok")],
        "warm": sum(1 for r in records if r.get("start") in ("corrected", "predicted", "previous")),
        "cold": sum(1 for r in records if r.get("start") == "cold"),
        "cold_after_warm": sum(1 for r in records if str(r.get("start", "")).startswith("cold (")),
        "sensitivities": dict(collections.Counter((r.get("sensitivity") or {}).get("status") for r in records)),
        "kinks": [r["index"] for r in records if (r.get("sensitivity") or {}).get("status") == "kink"],
        "seconds": float(sum(r.get("seconds", 0.0) for r in records)),
        "solve_seconds": float(sum(r.get("seconds", 0.0) - r.get("sensitivity_seconds", 0.0) for r in records)),
        "sensitivity_seconds": float(sum(r.get("sensitivity_seconds", 0.0) for r in records)),
        "sweeps": int(sum(r.get("sweeps", 0) for r in records)),
    }


def _baseline(records: list[dict], cold: list[dict], cold_wall: float, wall: float | None) -> dict[str, Any]:
    """The continuation against every point solved cold: times (sums over the points, and the
    wall clocks when both ran in this process), and the largest difference of the rewards over
    the points certified both ways (all of them, and those where the path has no kink)."""
    both = [(a, b) for a, b in zip(records, cold) if a.get("ok") and b.get("ok")]
    smooth = [(a, b) for a, b in both if (a.get("sensitivity") or {}).get("status") != "kink"]

    def gap(pairs: list) -> float:
        return float(max((np.max(np.abs(np.subtract(a["rewards"], b["rewards"]))) for a, b in pairs), default=0.0))

    cont = float(sum(r.get("seconds", 0.0) for r in records))
    cont_solve = float(sum(r.get("seconds", 0.0) - r.get("sensitivity_seconds", 0.0) for r in records))
    cold_s = float(sum(r.get("seconds", 0.0) for r in cold))
    return {
        "points": len(cold), "cold_certified": sum(1 for r in cold if r.get("ok")),
        "cold_seconds": cold_s, "continuation_seconds": cont, "continuation_solve_seconds": cont_solve,
        "ratio": cold_s / cont if cont > 0 else math.inf,
        "ratio_without_sensitivities": cold_s / cont_solve if cont_solve > 0 else math.inf,
        "cold_wall_seconds": cold_wall, "continuation_wall_seconds": wall,
        "cold_sweeps": int(sum(r.get("sweeps", 0) for r in cold)),
        "continuation_sweeps": int(sum(r.get("sweeps", 0) for r in records)),
        "compared": len(both), "max_reward_difference": gap(both), "max_reward_difference_smooth": gap(smooth),
        "cold_rewards": [r.get("rewards") for r in cold], "cold_status": [r.get("status") for r in cold],
    }
