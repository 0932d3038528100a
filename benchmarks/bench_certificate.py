"""``metatrading bench certificate``: the batched certificate against the sequential one, side by side.

For each size ``NxM`` (a generated scenario, seed ``--seed``, as ``bench epec`` draws it) the EPEC
is solved and certified twice in one process, the same way ``bench epec`` does
(:func:`epec.solve_epec` on :func:`models.build_game`):

* ``sequential``: the deviation responses of the certificate one after another (Newton, each
  warm-started from its grid neighbour), ``CertificateOptions(batched=False)``: the old path;
* ``batched``: the same lines and points, every leader's line searched in lockstep and each round
  of points solved at once by the batched follower equilibrium of
  :mod:`models.batch_followers` (``batch_response``).

It prints the solve and certificate seconds of both, their ratio, and whether the verdicts are
the same (status, holds, reasons with their numbers masked, profitable leaders) and how far the
leaders' gains differ (relative to ``max(1, |V_i|)``); writes ``DIR/certificate_bench.json``.
The two runs share the machine and the process, so their ratio is meaningful where a single
time is not (a shared machine's times vary run to run); the process's CPU time
(``time.process_time``, the solvers run on one thread) is printed beside the wall clock, as it
varies less with the machine's load.
"""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_epec import parse_sizes
from benchmarks.solve_cmd import add_epec_arguments, check_epec_args
from models.errors import InputError

__all__ = ["add_arguments", "run", "certify_both"]

#: the paths compared, in the order they run
PATHS = ("sequential", "batched")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="500x10", help="comma-separated NxM (default 500x10)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of every random draw: here the generated scenarios (default 0)")
    add_epec_arguments(parser)


def _masked(reasons: Any) -> list[str]:
    """Reasons with their numbers masked: the two paths agree on the numbers to a tolerance only."""
    return [re.sub(r"-?\d[\d.e+-]*", "#", r) for r in reasons or ()]


def _one(sc: Any, batched: bool, args: argparse.Namespace, options: Any) -> dict[str, Any]:
    """Build, solve and certify ``sc`` once; the row of one path."""
    import epec
    from epec.scenario import batch_response
    from models.game import build_game

    t0, c0 = time.perf_counter(), time.process_time()
    model = build_game(sc)
    t_build = time.perf_counter() - t0
    res = epec.solve_epec(model, leaders=[model.msp], followers=[model.mu], method=args.method, mode=args.mode,
                          tol=args.tol, max_iter=args.max_iter, certify=True,
                          certificate=epec.CertificateOptions(grid=args.grid, batched=batched), options=options,
                          global_search=epec.GlobalOptions(moves=args.global_moves, starts=args.starts),
                          batch_response=batch_response(sc))
    cpu = time.process_time() - c0
    cert = res.certificate
    cert_cpu = cert.cpu_seconds if cert is not None else 0.0
    solve = t_build + res.timings.get("build", 0.0) + res.timings.get("solve", 0.0)
    return {
        "path": PATHS[int(batched)], "status": res.status.value, "solve_seconds": solve,
        "certificate_seconds": res.timings.get("certificate", 0.0), "total_seconds": t_build + res.seconds,
        "solve_cpu_seconds": cpu - cert_cpu, "certificate_cpu_seconds": cert_cpu, "total_cpu_seconds": cpu,
        "holds": cert.holds if cert is not None else None,
        "reasons": list(cert.reasons) if cert is not None else [],
        "profitable": list(cert.profitable) if cert is not None else [],
        "deviation_gains": list(cert.deviation_gains) if cert is not None else [],
        "utilities": list(cert.utilities) if cert is not None else [],
        "evaluations": cert.evaluations if cert is not None else None,
        "failed_evaluations": cert.failed_evaluations if cert is not None else None,
        "rewards": [float(model.msp[m].R.value) for m in model.MSP],
    }


def certify_both(n: int, m: int, args: argparse.Namespace, options: Any) -> dict[str, Any]:
    """Both paths on the ``n x m`` scenario, back to back; their rows and the comparison."""
    import numpy as np

    from models.scenario import generate

    sc = generate(n, m, seed=args.seed, name=f"bench-{n}x{m}")
    rows = {p: _one(sc, p == "batched", args, options) for p in PATHS}
    a, b = rows["sequential"], rows["batched"]
    scale = np.maximum(1.0, np.abs(np.array(a["utilities"], dtype=float)))
    gain_diff = (float(np.max(np.abs(np.array(a["deviation_gains"]) - np.array(b["deviation_gains"])) / scale,
                              initial=0.0)) if len(a["deviation_gains"]) == len(b["deviation_gains"]) else None)
    same = (a["status"] == b["status"] and a["holds"] == b["holds"] and a["profitable"] == b["profitable"]
            and _masked(a["reasons"]) == _masked(b["reasons"]))
    return {
        "n": n, "m": m, "sequential": a, "batched": b, "same_verdict": same, "max_relative_gain_diff": gain_diff,
        "reward_diff": float(np.max(np.abs(np.array(a["rewards"]) - np.array(b["rewards"])), initial=0.0)),
        "certificate_ratio": a["certificate_seconds"] / max(b["certificate_seconds"], 1e-12),
        "total_ratio": a["total_seconds"] / max(b["total_seconds"], 1e-12),
        "certificate_cpu_ratio": a["certificate_cpu_seconds"] / max(b["certificate_cpu_seconds"], 1e-12),
        "total_cpu_ratio": a["total_cpu_seconds"] / max(b["total_cpu_seconds"], 1e-12),
    }


def run(args: argparse.Namespace) -> int:
    sizes = parse_sizes(args.sizes)
    check_epec_args(args)
    if args.seed < 0:
        raise InputError("--seed", f"must be >= 0, got {args.seed}")
    from models.io import atomic_write_json
    from solvers import IpoptOptions

    options = IpoptOptions(tol=1e-8, max_iter=3000)
    out = Path(args.out)
    rows = []
    print(f"{'size':>8} {'path':>10} {'status':>10} {'solve s':>8} {'cert s':>8} {'total s':>8} {'cpu s':>8} "
          f"{'cert cpu':>8} {'holds':>6} {'evals':>6}")
    for n, m in sizes:
        row = certify_both(n, m, args, options)
        rows.append(row)
        for p in PATHS:
            r = row[p]
            print(f"{n:>4}x{m:<3} {p:>10} {r['status']:>10} {r['solve_seconds']:>8.2f} "
                  f"{r['certificate_seconds']:>8.2f} "
                  f"{r['total_seconds']:>8.2f} {r['total_cpu_seconds']:>8.2f} {r['certificate_cpu_seconds']:>8.2f} "
                  f"{str(r['holds']):>6} {r['evaluations'] or 0:>6}", flush=True)
        diff = row["max_relative_gain_diff"]
        print(f"{n:>4}x{m:<3} batched / sequential: certificate {row['certificate_ratio']:.1f}x faster "
              f"({row['certificate_cpu_ratio']:.1f}x in CPU time), solve + certificate {row['total_ratio']:.2f}x "
              f"({row['total_cpu_ratio']:.2f}x in CPU time); same verdict: {row['same_verdict']}; gains differ by "
              f"{'-' if diff is None else format(diff, '.2e')} (relative), rewards by {row['reward_diff']:.2e}")
    atomic_write_json(out / "certificate_bench.json",
                      {"rows": rows, "options": {"method": args.method, "mode": args.mode, "tol": args.tol,
                                                 "max_iter": args.max_iter, "grid": args.grid, "seed": args.seed}})
    print(f"wrote {out / 'certificate_bench.json'}")
    return 0 if all(r["same_verdict"] for r in rows) else 1
