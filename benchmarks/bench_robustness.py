"""``metatrading bench robustness``: the EPEC solve over random scenarios from the model's whole range.

Each scenario is :func:`models.sampling.random_scenario` of one seed (1-40 MUs x 1-6 MSPs, both
mechanisms, reward caps from 1e-2 to 1e2 and some 0, extreme energy prices, value scales,
freshness scales, data ages, share reserves and IoM weights). Each is solved by
:func:`epec.solve_scenario`, and the run records its status, its message, its certificate and
its time. A solve that raises, returns a NaN, or lets numpy or scipy emit a RuntimeWarning is
counted as such: none should. Every ``ok`` answer is also checked independently of ``epec``:
each MSP's best deviation gain over a grid of its reward range at the followers' exact
response from the numpy solver (:func:`models.leader_deviation_gain`), relative to its utility.

Writes ``DIR/robustness.json`` (the summary and one row per scenario) and prints the count per
status, the certified fraction and the time per scenario.

``--workers N`` runs the scenarios as Ray tasks on a local Ray instance of N CPUs, ``--ray-address``
on an existing cluster (:mod:`benchmarks.parallel`): each task is :func:`solve_task`, the rows come
back in seed order, and they are the sequential run's rows (their ``seconds`` aside).
"""
from __future__ import annotations

import argparse
import collections
import math
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import InputError

__all__ = ["add_arguments", "run", "solve_one", "solve_task", "summarise"]

#: relative deviation gain above which the independent numpy check refutes an ``ok`` answer
#: (its grid and follower tolerance are coarser than the certificate's)
VERIFY_RTOL = 1e-4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=200, help="random scenarios to solve (default 200)")
    parser.add_argument("--seed", type=int, default=0,
                        help="first scenario seed; the scenarios are seeds S, S+1, ..., S+count-1 (default 0)")
    parser.add_argument("--out", required=True, help="output folder (robustness.json)")
    parser.add_argument("--grid", type=int, default=41, help="deviation-grid points per MSP in the certificate (default 41)")
    parser.add_argument("--verify-grid", type=int, default=41,
                        help="grid points of the independent numpy check of every ok answer; 0 skips it (default 41)")
    from benchmarks.parallel import add_parallel_arguments

    add_parallel_arguments(parser)


def solve_one(seed: int, *, grid: int = 41, verify_grid: int = 41, **options: Any) -> dict[str, Any]:
    """Solve the random scenario of ``seed`` and describe the outcome as a JSON row.

    Keys: ``seed``, ``n_mu``, ``n_msp``, ``mechanism``, ``status``, ``ok``, ``message``,
    ``seconds``, ``sweeps``, ``moves`` (global moves), ``starts``; ``holds``,
    ``max_relative_gain``, ``kkt_residual``, ``follower_unique`` and ``reasons`` when a
    certificate was computed; ``rewards`` when ok; ``independent_gain`` (the numpy check's largest
    relative gain) when ok and ``verify_grid > 0``; ``exception`` (the traceback's last lines)
    when the solve raised; ``warnings`` (RuntimeWarnings emitted); ``nan`` whether a number in the
    answer was not finite.
    """
    from epec import CertificateOptions, solve_scenario
    from models.equilibrium import leader_deviation_gain
    from models.sampling import random_scenario

    sc = random_scenario(seed)
    row: dict[str, Any] = {"seed": seed, "n_mu": sc.n_mu, "n_msp": sc.n_msp, "mechanism": sc.mechanism.value}
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            sol = solve_scenario(sc, certificate=CertificateOptions(grid=grid, max_failed=0.5), **options)
        except Exception:  # counted and reported: the benchmark's job is to find these
            sol = None
            row.update(status="exception", ok=False, exception=traceback.format_exc(limit=3)[-800:])
        row["seconds"] = time.perf_counter() - t0
        if sol is not None:
            res = sol.result
            row.update(status=res.status.value, ok=res.ok, message=res.message, sweeps=res.sweeps,
                       moves=len(res.moves), starts=res.starts)
            numbers = [res.seconds]
            cert = res.certificate
            if cert is not None:
                row.update(holds=cert.holds, max_relative_gain=max(cert.relative_gains, default=0.0),
                           kkt_residual=cert.kkt_residual, follower_unique=cert.follower_unique,
                           reasons=list(cert.reasons))
                numbers += [cert.kkt_residual, *cert.deviation_gains, *cert.utilities]
            if res.ok:
                row["rewards"] = sol.R.tolist()
                numbers += [*sol.R.tolist(), *sol.f.ravel().tolist()]
                if verify_grid > 0:
                    from models.utility import msp_utilities

                    gains = leader_deviation_gain(sc, sol.R, grid_points=verify_grid)
                    V = msp_utilities(sc, sol.R, sol.f)
                    row["independent_gain"] = float(np.max(gains / np.maximum(1.0, np.abs(V)), initial=0.0))
                    numbers.append(row["independent_gain"])
            row["nan"] = not all(math.isfinite(x) for x in numbers)
    row["warnings"] = [f"{w.category.__name__}: {w.message} ({Path(w.filename).name}:{w.lineno})"
                       for w in caught if issubclass(w.category, RuntimeWarning)]
    return row


def solve_task(task: dict[str, Any]) -> dict[str, Any]:
    """The unit of work of the bench (plain data in, a plain row out; in-process or a Ray task):
    ``solve_one(task["seed"], grid=task["grid"], verify_grid=task["verify_grid"])``, with
    ``task_seconds``, the whole task's seconds (the solve's ``seconds`` and the independent
    check), which the Ray summary weighs the wall clock against."""
    t0 = time.perf_counter()
    row = solve_one(int(task["seed"]), grid=int(task["grid"]), verify_grid=int(task["verify_grid"]))
    row["task_seconds"] = time.perf_counter() - t0
    return row


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per status, the certified fraction, ok answers whose certificate does not hold or
    that the independent check refutes (both must be 0), exceptions, NaNs, warnings, times."""
    secs = np.array([r["seconds"] for r in rows]) if rows else np.zeros(1)
    ok = [r for r in rows if r["ok"]]
    return {
        "count": len(rows),
        "statuses": dict(collections.Counter(r["status"] for r in rows)),
        "certified": len(ok),
        "certified_fraction": len(ok) / max(1, len(rows)),
        "ok_not_holding": sum(1 for r in ok if not r.get("holds", False)),
        "ok_refuted_independently": sum(1 for r in ok if r.get("independent_gain", 0.0) > VERIFY_RTOL),
        "exceptions": sum(1 for r in rows if r["status"] == "exception"),
        "nan": sum(1 for r in rows if r.get("nan")),
        "runtime_warnings": sum(len(r["warnings"]) for r in rows),
        "not_ok_without_message": sum(1 for r in rows if not r["ok"] and not (r.get("message") or r.get("exception"))),
        "seconds": {"total": float(secs.sum()), "mean": float(secs.mean()), "median": float(np.median(secs)),
                    "max": float(secs.max())},
    }


def run(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise InputError("--count", f"must be >= 1, got {args.count}")
    if args.seed < 0:
        raise InputError("--seed", f"must be >= 0, got {args.seed}")
    from benchmarks.conventions import check_grid

    check_grid(args.grid)
    check_grid(args.verify_grid, "--verify-grid", minimum=0)
    from benchmarks.conventions import show_progress
    from benchmarks.parallel import check_workers, map_tasks
    from models.progress import progress_bar
    from models.io import atomic_write_json

    check_workers(args.workers, args.ray_address)
    out = Path(args.out)
    t0 = time.perf_counter()
    tasks = [{"seed": seed, "grid": args.grid, "verify_grid": args.verify_grid}
             for seed in range(args.seed, args.seed + args.count)]
    with progress_bar(total=args.count, desc="random scenarios", unit="scenario", leave=False,
              enabled=show_progress(args)) as bar:
        rows = []
        for row in map_tasks(solve_task, tasks, workers=args.workers, address=args.ray_address):
            rows.append(row)
            bar.set_postfix_str(f"seed {row['seed']}: {row['status']}")
            bar.update(1)
    wall = time.perf_counter() - t0
    summary = summarise(rows)
    print(f"EPEC robustness: {args.count} random scenarios (seeds {args.seed}..{args.seed + args.count - 1}, "
          f"1-40 MUs x 1-6 MSPs, both mechanisms)")
    print(f"{'status':>16} {'count':>6}")
    for status, n in sorted(summary["statuses"].items(), key=lambda kv: -kv[1]):
        print(f"{status:>16} {n:>6}")
    s = summary["seconds"]
    print(f"certified {summary['certified']}/{summary['count']} = {100 * summary['certified_fraction']:.1f}%; "
          f"ok with a failing certificate {summary['ok_not_holding']}; ok refuted by the independent numpy check "
          f"{summary['ok_refuted_independently']}; exceptions {summary['exceptions']}, NaN {summary['nan']}, "
          f"RuntimeWarnings {summary['runtime_warnings']}")
    print(f"time per scenario: mean {s['mean']:.2f} s, median {s['median']:.2f} s, max {s['max']:.2f} s "
          f"({wall:.1f} s in all)")
    parallel = None
    if args.workers > 1 or args.ray_address:
        # what running as Ray tasks cost beyond the solves: the wall clock the workers held, less
        # the seconds the tasks themselves measured, per task (start-up and transfers included)
        cpus = args.workers if not args.ray_address else None
        tasks_s = float(sum(r.get("task_seconds", r["seconds"]) for r in rows))
        parallel = {"workers": args.workers, "ray_address": args.ray_address, "wall_seconds": wall,
                    "task_seconds": tasks_s,
                    "overhead_per_task": (cpus * wall - tasks_s) / args.count if cpus else None}
        print(f"Ray: {wall:.1f} s wall for {tasks_s:.1f} s of tasks (solves and independent checks)"
              + (f" on {cpus} workers (tasks' seconds / wall {tasks_s / wall:.2f}; a sequential run takes about "
                 f"the tasks' seconds); overhead {parallel['overhead_per_task']:.3f} s per task (start-up "
                 f"included)" if cpus else ""))
    for r in rows:
        if not r["ok"]:
            print(f"  seed {r['seed']} ({r['n_mu']}x{r['n_msp']} {r['mechanism']}): {r['status']}: "
                  f"{(r.get('message') or r.get('exception', ''))[:300]}")
    atomic_write_json(out / "robustness.json", {"summary": summary, "rows": rows,
                                                "options": {"count": args.count, "seed": args.seed, "grid": args.grid,
                                                            "verify_grid": args.verify_grid, "workers": args.workers,
                                                            "ray_address": args.ray_address},
                                                "parallel": parallel})
    print(f"wrote {out / 'robustness.json'}")
    return 0
