"""``metatrading bench pricing``: follower equilibria per second and market rounds per second.

All timed in one run on one scenario (default ``default``, 20x3), random rewards uniform in
``[0, Rmax]`` (seeded):

* ``batched``: :func:`drl.solve_followers` (torch, semismooth Newton), cold start (each budget
  split evenly), at batch 1, 64, 1024 and 8192;
* ``reference``: the followers' Nash game through the compiled Ipopt path (Pyomo game, KKT,
  smoothed Fischer-Burmeister complementarity ``a b = 1e-20``, Ipopt tol 1e-12), warm-started
  from the previous solution, one R after another;
* ``numpy``: :func:`models.follower_equilibrium` (damped Jacobi best response) on a batch;
* training: market rounds per second of :func:`drl.train_pricing` for ``--train-seconds``.

Every batched result is checked against the numpy solver on a sample (max |f difference| is
reported). Each row has wall-clock ``per_s`` and ``per_cpu_s`` (this process's CPU time): on a
shared machine the second is the one less distorted by the other processes; the 1-minute load
average is recorded. Writes ``DIR/pricing_throughput.json`` (``{"rows": [{"method", "batch", "per_s",
...}], "training": {...}, ...}``) and prints a table.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.conventions import parse_numbers
from models.errors import InputError

__all__ = ["add_arguments", "run", "reference_solver"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--scenario", default="default", help="preset or scenario file (default: default)")
    p.add_argument("--batches", default="1,64,1024,8192", help="batched-solver batch sizes (default 1,64,1024,8192)")
    p.add_argument("--reference-solves", type=int, default=20, help="Ipopt reference solves timed (default 20)")
    p.add_argument("--numpy-batch", type=int, default=1024, help="batch of the numpy solver (default 1024)")
    p.add_argument("--train-seconds", type=float, default=20.0, help="training run timed for market rounds per second (default 20; 0 skips)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of each batched size, best kept (default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device of the batched solver (default cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the rewards (default 0)")


class reference_solver:  # noqa: N801 (used as a callable factory)
    """The per-instance reference: the followers' Nash game through the compiled Ipopt path,
    warm-started from the previous solve; ``solve(R) -> f`` (N, M)."""

    def __init__(self, sc: Any) -> None:
        import epec
        from epec.game import Game, expand_players as _expand
        from models.game import build_game
        from solvers import IpoptOptions, IpoptSolver

        self.model = build_game(sc)
        leaders = [(f"msp{m}", [self.model.msp[m].R], self.model.msp[m].utility) for m in self.model.MSP]
        self.game = Game(self.model, _expand([self.model.mu]), leaders,
                         epec.FischerBurmeisterSmoothing(mu_end=1e-10, comp_tol=1e-8),
                         IpoptSolver(IpoptOptions(tol=1e-12, constr_viol_tol=1e-12)), True)
        self.warm = False

    def solve(self, R: np.ndarray) -> np.ndarray:
        from models.game import allocations

        run = self.game.respond([np.array([r]) for r in R], warm=self.warm)
        if not run.ok:
            raise RuntimeError(f"reference solve failed: {run.message}")
        self.warm = True
        self.game.data.load()
        return allocations(self.model)


def run(args: argparse.Namespace) -> int:
    batches = parse_numbers(args.batches, "--batches", int, minimum=1)
    for flag, v in (("--reference-solves", args.reference_solves), ("--numpy-batch", args.numpy_batch),
                    ("--repeats", args.repeats), ("--threads", args.threads)):
        if v < 1:
            raise InputError(flag, f"must be >= 1, got {v}")
    if not args.train_seconds >= 0:
        raise InputError("--train-seconds", f"must be >= 0, got {args.train_seconds}")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device", "cuda requested but no CUDA device is available")
    from drl import Coefficients, solve_followers, train_pricing
    from models.equilibrium import follower_equilibrium
    from models.io import atomic_write_json
    from models.scenario import load_scenario

    sc = load_scenario(args.scenario)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    rows: list[dict[str, Any]] = []
    cf = Coefficients.of(sc, args.device)
    solve_followers(cf, rng.uniform(0, 1, (8, sc.n_msp)) * sc.Rmax)  # warm-up of torch
    check = min(8, min(batches))
    for B in batches:
        R = rng.uniform(0, 1, (B, sc.n_msp)) * sc.Rmax
        best, best_cpu, eq = np.inf, np.inf, None
        for _ in range(args.repeats):
            t, c = time.perf_counter(), time.process_time()
            eq = solve_followers(cf, R)
            if args.device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
            best_cpu = min(best_cpu, time.process_time() - c)
        f = eq.f.cpu().numpy()
        err = max(float(np.abs(f[i] - follower_equilibrium(sc, R[i]).f).max()) for i in range(min(check, B)))
        rows.append({"method": "batched", "batch": B, "per_s": B / best, "seconds": best, "cpu_seconds": best_cpu,
                     "per_cpu_s": B / max(best_cpu, 1e-9), "iterations": eq.iterations,
                     "converged": bool(eq.converged.all()), "max_abs_f_diff_numpy": err, "device": args.device})
        print(f"batched  B={B:>5}: {B / best:>10.1f} equilibria/s ({eq.iterations} Newton iterations, max |f - numpy| {err:.1e})", flush=True)
    # per-instance reference, warm-started one R after another
    ref = reference_solver(sc)
    Rr = rng.uniform(0, 1, (args.reference_solves + 1, sc.n_msp)) * sc.Rmax
    ref.solve(Rr[0])  # compile and first (cold) solve, not timed
    t, c = time.perf_counter(), time.process_time()
    fr = [ref.solve(Rr[k]) for k in range(1, len(Rr))]
    dt, dc = time.perf_counter() - t, time.process_time() - c
    eq = solve_followers(cf, Rr[1:])
    err = float(np.abs(eq.f.cpu().numpy() - np.array(fr)).max())
    rows.append({"method": "reference", "batch": 1, "per_s": args.reference_solves / dt, "seconds": dt,
                 "cpu_seconds": dc, "per_cpu_s": args.reference_solves / max(dc, 1e-9),
                 "solves": args.reference_solves, "max_abs_f_diff_batched": err})
    print(f"reference (Ipopt, warm): {args.reference_solves / dt:>8.2f} equilibria/s (max |f - batched| {err:.1e})", flush=True)
    # numpy
    Rn = rng.uniform(0, 1, (args.numpy_batch, sc.n_msp)) * sc.Rmax
    t, c = time.perf_counter(), time.process_time()
    follower_equilibrium(sc, Rn)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    rows.append({"method": "numpy", "batch": args.numpy_batch, "per_s": args.numpy_batch / dt, "seconds": dt,
                 "cpu_seconds": dc, "per_cpu_s": args.numpy_batch / max(dc, 1e-9)})
    print(f"numpy    B={args.numpy_batch:>5}: {args.numpy_batch / dt:>10.1f} equilibria/s", flush=True)
    training = None
    if args.train_seconds > 0:
        with tempfile.TemporaryDirectory() as tmp:
            res = train_pricing(sc, Path(tmp) / "run", seconds=args.train_seconds, seed=args.seed, device=args.device,
                                solve_reference=False)
        b = res.budget
        training = {"seconds": b["seconds"], "market_rounds": b["market_rounds"], "updates": b["updates"],
                    "market_rounds_per_s": b["market_rounds"] / b["seconds"]}
        print(f"training: {training['market_rounds_per_s']:.0f} market rounds/s ({b['market_rounds']} in {b['seconds']:.1f} s, "
              f"{b['updates']} PPO updates)")
    by = {(r["method"], r["batch"]): r["per_s"] for r in rows}
    ref_rate = by[("reference", 1)]
    summary = {f"batched_{B}_over_reference": by[("batched", B)] / ref_rate for B in batches}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    out = Path(args.out)
    atomic_write_json(out / "pricing_throughput.json", {
        "scenario": sc.name, "n_mu": sc.n_mu, "n_msp": sc.n_msp, "torch_threads": args.threads,
        "device": args.device, "load_average_1min": load, "rows": rows, "training": training, "speedups": summary,
    })
    print(f"{'method':>10} {'batch':>6} {'per second':>12} {'per CPU second':>15}")
    for r in rows:
        print(f"{r['method']:>10} {r['batch']:>6} {r['per_s']:>12.1f} {r['per_cpu_s']:>15.1f}")
    for k, v in summary.items():
        print(f"{k}: {v:.0f}x")
    print(f"wrote {out}/pricing_throughput.json")
    return 0
