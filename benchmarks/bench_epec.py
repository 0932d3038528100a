"""``metatrading bench epec``: EPEC solve time against the rebuild-every-step approach.

For each size ``NxM`` (a generated scenario, seed ``--seed``) it times

* ``epec``: :func:`epec.solve_epec` (the transformed model is built and compiled once; each
  leader's MPEC re-solves it with Vars fixed / unfixed), certificate timed apart (its deviation
  responses batched, as ``solve`` does; ``bench certificate`` times it against the sequential one);
* ``naive``: what a researcher writes first: at every diagonalisation step rebuild the game,
  re-derive the followers' KKT, re-apply the reformulation, recompile and solve the leader's
  MPEC, with the same leader step (implicit), options, stop rule and tolerance.

Writes ``DIR/epec_scaling.json`` (``{"rows": [...], "options": {..., "time_exponents": ...}}``)
and ``DIR/epec_scaling.png`` (time vs N, log-log, one line per M with its least-squares slope
``b`` of ``t ~ a N^b``), and prints a table and the fitted exponents. The naive run is skipped (``null``) above ``--naive-max-n`` MUs.
"""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from benchmarks.solve_cmd import add_epec_arguments, check_epec_args
from models.errors import InputError

__all__ = ["add_arguments", "run", "parse_sizes", "naive_epec", "bench_size"]

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"20x3,100x5"`` -> ``[(20, 3), (100, 5)]``; InputError("--sizes") otherwise."""
    sizes = []
    for part in text.split(","):
        mt = _SIZE.match(part)
        if not mt or int(mt.group(1)) < 1 or int(mt.group(2)) < 1:
            raise InputError("--sizes", f"expected comma-separated NxM with N, M >= 1, got {part.strip()!r}")
        sizes.append((int(mt.group(1)), int(mt.group(2))))
    return sizes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="20x3,100x5,500x10", help="comma-separated NxM (default 20x3,100x5,500x10)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of every random draw: here the generated scenarios (default 0)")
    add_epec_arguments(parser)
    parser.add_argument("--naive-max-n", type=int, default=100, help="skip the naive run above this many MUs (default 100; 0 skips it everywhere)")


def naive_epec(sc: Any, *, method: str, mode: str, tol: float, max_iter: int, options: Any) -> dict[str, Any]:
    """Diagonalisation that rebuilds and re-transforms the Pyomo model at every leader step.

    Same leader step (implicit: the leader's reward by a safeguarded secant search on its
    utility's exact derivative, Newton follower response),
    same update rule (Gauss-Seidel or Jacobi, no damping) and same stop rule as
    :func:`epec.solve_epec` (``max_m |R_m^k - R_m^{k-1}| / max(1, Rmax_m) <= tol``), but each
    leader step is a fresh :func:`models.game.build_game` + :func:`epec.solve_epec` over that one
    leader (clone, KKT, reformulation, CasADi compilation, initial response, one sweep).
    """
    import numpy as np

    import epec
    from models.game import build_game

    t0 = time.perf_counter()
    R = sc.Rmax / 2.0
    width = np.maximum(1.0, sc.Rmax)
    sweeps, status = 0, "max_iter"
    for k in range(1, max_iter + 1):
        prev = R.copy()
        new = R.copy()
        for i in range(sc.n_msp):
            base = R if method == "gauss-seidel" else prev
            model = build_game(sc, R0=base)
            for j in range(sc.n_msp):
                if j != i:
                    model.msp[j].R.fix()
                    model.msp[j].utility.deactivate()
            res = epec.solve_epec(model, leaders=[model.msp[i]], followers=[model.mu], mode=mode, tol=tol,
                                  max_iter=1, certify=False, options=options)
            if res.status not in (epec.GameStatus.UNCERTIFIED, epec.GameStatus.MAX_ITER) or not res.history:
                return {"ok": False, "status": res.status.value, "seconds": time.perf_counter() - t0, "sweeps": k}
            new[i] = float(res.history[-1].decisions[0][0])
            if method == "gauss-seidel":
                R[i] = new[i]
        R = new
        sweeps = k
        if float(np.max(np.abs(R - prev) / width)) <= tol:
            status = "converged"
            break
    return {"ok": status == "converged", "status": status, "seconds": time.perf_counter() - t0,
            "sweeps": sweeps, "rewards": R}


def bench_size(n: int, m: int, args: argparse.Namespace, options: Any, bar: Any = None) -> dict[str, Any]:
    """One row of the table: the epec solve (and certificate) and, if asked, the naive run;
    ``bar`` (a tqdm bar) shows the stage as its postfix."""
    import numpy as np

    import epec
    from epec.scenario import batch_response
    from models.equilibrium import follower_kkt_residual
    from models.game import allocations, build_game, rewards
    from models.scenario import generate

    def show(text: str) -> None:
        if bar is not None:
            bar.set_postfix_str(f"{n}x{m}: {text}")

    show("building")
    sc = generate(n, m, seed=args.seed, name=f"bench-{n}x{m}")
    t0 = time.perf_counter()
    model = build_game(sc)
    t_build = time.perf_counter() - t0
    res = epec.solve_epec(model, leaders=[model.msp], followers=[model.mu], method=args.method, mode=args.mode,
                          tol=args.tol, max_iter=args.max_iter, certify=True,
                          certificate=epec.CertificateOptions(grid=args.grid), options=options,
                          global_search=epec.GlobalOptions(moves=args.global_moves, starts=args.starts),
                          batch_response=batch_response(sc),
                          progress=lambda stage, done, total: show(f"{stage} {done}"
                                                                   + (f"/{total}" if stage == "certificate" else "")))
    cert = res.certificate
    row: dict[str, Any] = {
        "n": n, "m": m, "status": res.status.value,
        "seconds": t_build + res.timings.get("build", 0.0) + res.timings.get("solve", 0.0),
        "certificate_seconds": res.timings.get("certificate", 0.0),
        "total_seconds": t_build + res.seconds,
        "game_build_seconds": t_build,
        "transform_seconds": res.timings.get("build", 0.0),
        "solve_seconds": res.timings.get("solve", 0.0),
        "iterations": res.iterations, "sweeps": res.sweeps,
        "max_deviation_gain": cert.max_deviation_gain if cert is not None else None,
        "kkt_residual": cert.kkt_residual if cert is not None else None,
        "follower_unique": cert.follower_unique if cert is not None else None,
        # deviation-check follower solves and those without a response (skipped in max gain)
        "certificate_evaluations": cert.evaluations if cert is not None else None,
        "certificate_failed_evaluations": cert.failed_evaluations if cert is not None else None,
        "numpy_kkt_residual": follower_kkt_residual(sc, rewards(model), allocations(model)).max if res.ok else None,
        "naive_seconds": None, "naive_status": None, "naive_sweeps": None, "speedup": None, "ratio": None,
        "naive_reward_diff": None,
    }
    if n <= args.naive_max_n:
        show("straightforward approach")
        nv = naive_epec(sc, method=args.method, mode=args.mode, tol=args.tol, max_iter=args.max_iter, options=options)
        row.update(naive_seconds=nv["seconds"], naive_status=nv["status"], naive_sweeps=nv["sweeps"])
        if res.ok and nv["ok"]:
            row["speedup"] = row["ratio"] = nv["seconds"] / row["seconds"]
            row["naive_reward_diff"] = float(np.max(np.abs(nv["rewards"] - rewards(model))))
    return row


def _fmt(x: Any, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def run(args: argparse.Namespace) -> int:
    sizes = parse_sizes(args.sizes)
    check_epec_args(args)
    if args.naive_max_n < 0:
        raise InputError("--naive-max-n", f"must be >= 0 (0 skips the naive run), got {args.naive_max_n}")
    if args.seed < 0:
        raise InputError("--seed", f"must be >= 0, got {args.seed}")
    out = Path(args.out)
    from benchmarks.conventions import show_progress
    from benchmarks.plots import loglog_slope, scaling_plot
    from models.io import atomic_write_json
    from models.progress import progress_bar
    from solvers import IpoptOptions

    options = IpoptOptions(tol=1e-8, max_iter=3000)
    rows = []
    with progress_bar(total=len(sizes), desc="bench epec", unit="size", leave=False,
              enabled=show_progress(args)) as bar:
        for n, m in sizes:
            rows.append(bench_size(n, m, args, options, bar))
            bar.update(1)
    meta = {"method": args.method, "mode": args.mode, "tol": args.tol, "max_iter": args.max_iter,
            "grid": args.grid, "seed": args.seed, "ipopt_tol": options.tol}
    ns = [r["n"] for r in rows]
    series: dict[str, list] = {}
    exponents: dict[str, dict[str, float | None]] = {}
    for m in sorted({r["m"] for r in rows}):
        # one line per M: the time's growth in N is read at fixed M
        for key, label in (("seconds", "solve"), ("total_seconds", "solve + certificate"),
                           ("naive_seconds", "naive rebuild")):
            ys = [r[key] if r["m"] == m else None for r in rows]
            if any(y is not None for y in ys):
                series[f"{label}, M={m}"] = ys
                exponents.setdefault(str(m), {})[key] = loglog_slope(ns, ys)
    meta["time_exponents"] = exponents
    atomic_write_json(out / "epec_scaling.json", {"rows": rows, "options": meta})
    scaling_plot(out / "epec_scaling.png", ns, series, fit=True,
                 title="EPEC time vs N (log-log)")
    print(f"{'size':>8} {'status':>10} {'solve s':>8} {'cert s':>8} {'naive s':>8} {'speedup':>8} "
          f"{'sweeps':>6} {'iters':>6} {'max gain':>9} {'kkt res':>9} {'failed':>9}")
    for r in rows:
        print(f"{r['n']:>4}x{r['m']:<3} {r['status']:>10} {r['seconds']:>8.2f} {r['certificate_seconds']:>8.2f} "
              f"{_fmt(r['naive_seconds'], '8.2f'):>8} {_fmt(r['speedup'], '8.1f'):>8} {r['sweeps']:>6} "
              f"{r['iterations']:>6} {_fmt(r['max_deviation_gain'], '9.2e'):>9} {_fmt(r['kkt_residual'], '9.2e'):>9} "
              f"{_fmt(r['certificate_failed_evaluations'], 'd'):>4}/{_fmt(r['certificate_evaluations'], 'd'):<4}")
    for m, ex in exponents.items():
        if ex.get("seconds") is not None:
            print(f"M={m}: time ~ N^b, fitted b = {ex['seconds']:.2f} (solve), "
                  f"{_fmt(ex.get('total_seconds'), '.2f')} (solve + certificate)")
    print(f"wrote {out / 'epec_scaling.json'} and {out / 'epec_scaling.png'}")
    return 0 if all(r["status"] == "converged" for r in rows) else 1
