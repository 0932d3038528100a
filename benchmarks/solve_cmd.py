"""``metatrading solve``: compute and certify the EPEC equilibrium of a scenario.

Writes ``DIR/equilibrium.json`` (rewards, allocations, IoM, utilities, certificate, the
resolved scenario) and ``DIR/convergence.png`` (the diagonalisation history), both atomically.

A run whose solve did not converge writes neither: it prints the status, writes only
``DIR/failure.json`` (status, message, options, scenario: enough to reproduce it) and exits 1.
Bad input (scenario file, options) prints one line naming the field, writes nothing, exits 2.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

from benchmarks.conventions import RegistryChoices
from models.errors import InputError

__all__ = ["add_arguments", "run", "add_epec_arguments", "check_epec_args", "METHODS",
           "LEADER_STEPS"]

METHODS = ("gauss-seidel", "jacobi")
LEADER_STEPS = ("implicit", "full-space")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default="default",
                        help="preset (tiny, default, large, xl; see 'metatrading presets'), a .toml/.yaml/.json "
                             "scenario file, or an equilibrium.json/failure.json of an earlier solve (reruns its "
                             "scenario) (default: default)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=None, help="seed of every random draw: here the scenario drawn from the preset or the file's base "
                             "(default: the file's seed, else 0)")
    add_epec_arguments(parser)
    parser.add_argument("--leader-step", choices=LEADER_STEPS, default="implicit",
                        help="implicit (default): each leader's reward by a bracketing secant search over the followers' exact "
                             "response (Newton on their smoothed KKT system); full-space: Ipopt on the whole "
                             "reformulated MPEC of --mode (the reference; slow and fragile beyond ~20x3)")
    parser.add_argument("--damping", type=float, default=1.0, help="diagonalisation step weight in (0, 1] (default 1)")


def add_epec_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``solve`` and ``bench epec`` share (checked by :func:`check_epec_args`)."""
    parser.add_argument("--method", choices=METHODS, default="gauss-seidel", help="diagonalisation order")
    modes = RegistryChoices("epec.modes", "MODES")
    parser.add_argument("--mode", choices=modes, default="scholtes", metavar="MODE",
                        help=modes.help("MPEC reformulation (default %(default)s; register more with "
                                        "epec.register_mode and --plugin):"))
    parser.add_argument("--tol", type=float, default=1e-6, help="tolerance on the leaders' step per sweep (default 1e-6)")
    parser.add_argument("--max-iter", type=int, default=50, help="most diagonalisation sweeps (default 50)")
    parser.add_argument("--grid", type=int, default=41, help="deviation-grid points per leader in the certificate (default 41)")
    parser.add_argument("--global-moves", type=int, default=8,
                        help="times a leader that gains by deviating from a stopped point is moved to its best deviation "
                             "before the start is given up (default 8; 0: stop at the first refuted point)")
    parser.add_argument("--starts", type=int, default=2,
                        help="further random start profiles tried when a start ends without a certified point (default 2)")


def check_epec_args(args: argparse.Namespace) -> None:
    """The options ``solve`` and ``bench epec`` share: ``--tol``, ``--max-iter``, ``--grid``
    (``--out`` is checked by :func:`benchmarks.cli.main` for every command)."""
    if not (math.isfinite(args.tol) and args.tol > 0):
        raise InputError("--tol", f"must be a positive number, got {args.tol}")
    if args.max_iter < 1:
        raise InputError("--max-iter", f"must be >= 1, got {args.max_iter}")
    from benchmarks.conventions import check_grid

    check_grid(args.grid)
    if args.global_moves < 0:
        raise InputError("--global-moves", f"must be >= 0, got {args.global_moves}")
    if args.starts < 0:
        raise InputError("--starts", f"must be >= 0, got {args.starts}")


def _check_args(args: argparse.Namespace) -> None:
    check_epec_args(args)
    if args.seed is not None and args.seed < 0:
        raise InputError("--seed", f"must be >= 0, got {args.seed}")
    if not (math.isfinite(args.damping) and 0 < args.damping <= 1):
        raise InputError("--damping", f"must be in (0, 1], got {args.damping}")


class _Bars:
    """Progress on stderr: a counter of diagonalisation sweeps (their number is not known in
    advance), then a bar over the certificate's checks (whose number is); off a terminal, one line
    per sweep and a line every few seconds of the certificate (:mod:`models.progress`). Nothing
    when ``enabled`` is false (``--quiet``)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.sweeps, self.cert = enabled, None, None
        if enabled:
            from models.progress import progress_bar

            self._bar = progress_bar
            self.sweeps = progress_bar(desc="solving EPEC", unit="sweep", leave=False)

    def on_sweep(self, k: int, decisions: Any, step: float) -> None:
        if self.sweeps is not None:
            self.sweeps.set_postfix_str(f"step {step:.2e}", refresh=False)
            self.sweeps.update(1)

    def on_progress(self, stage: str, done: int, total: int) -> None:
        if not self.enabled or stage != "certificate":
            return
        if self.cert is None:
            self.sweeps.close()
            self.cert = self._bar(total=total, desc="certificate", unit="check", leave=False, min_interval=5.0)
        self.cert.update(done - self.cert.n)

    def close(self) -> None:
        for bar in (self.sweeps, self.cert):
            if bar is not None:
                bar.close()


#: an MU takes part in an MSP's task (the summary's ``MUs>0`` column) when it gives it more than
#: this fraction of its CPU budget: f_nm > PARTICIPATION_SHARE x F_n (a solver's 2e-8 GHz is zero)
PARTICIPATION_SHARE = 1e-6


def participants(sc: Any, f: Any) -> Any:
    """Per MSP, the MUs that give it more than ``PARTICIPATION_SHARE`` of their CPU budget."""
    import numpy as np

    f = np.asarray(f, dtype=float)
    return (f > PARTICIPATION_SHARE * np.asarray(sc.F, dtype=float)[:, None]).sum(0)


def _summary(sc: Any, R: Any, I: Any, V: Any, U: Any, res: Any, numpy_kkt: Any, f: Any) -> str:
    lines = [f"EPEC equilibrium of {sc.name} (N={sc.n_mu} MUs, M={sc.n_msp} MSPs, {sc.mechanism.value})",
             f"{'MSP':>4} {'reward':>10} {'Rmax':>8} {'total IoM':>10} {'utility V':>11} {'MUs>0':>6}"]
    taking_part = participants(sc, f)
    for m in range(sc.n_msp):
        lines.append(f"{m:>4} {R[m]:>10.4f} {sc.Rmax[m]:>8.2f} {I[:, m].sum():>10.4f} {V[m]:>11.4f} "
                     f"{int(taking_part[m]):>6}")
    lines.append(f"MU utility U: min {U.min():.4f}  mean {U.mean():.4f}  max {U.max():.4f}")
    cert = res.certificate
    lines.append(f"status {res.status.value}: {res.sweeps} sweeps, {res.iterations} solver iterations (Newton + Ipopt), "
                 f"{res.seconds:.2f} s (build {res.timings.get('build', 0):.2f}, solve {res.timings.get('solve', 0):.2f}, "
                 f"certificate {res.timings.get('certificate', 0):.2f})")
    if cert is not None:
        lines.append(f"certificate {'holds' if cert.holds else 'FAILS'}: max deviation gain {cert.max_deviation_gain:.3e}, KKT residual "
                     f"{cert.kkt_residual:.3e}, followers unique {cert.follower_unique} (spread {cert.follower_spread:.1e})")
    lines.append(f"independent numpy follower KKT residual {numpy_kkt.max:.3e}")
    return "\n".join(lines)


def _certificate_json(cert: Any) -> dict[str, Any]:
    """The certificate's numbers and verdict as JSON (one reward per MSP)."""
    return {
        "holds": cert.holds, "reasons": list(cert.reasons),
        "max_deviation_gain": cert.max_deviation_gain, "deviation_gains": cert.deviation_gains,
        "relative_gains": cert.relative_gains, "best_deviations": [d[0] for d in cert.best_deviations],
        "utilities": cert.utilities, "kkt_residual": cert.kkt_residual,
        "follower_unique": cert.follower_unique, "follower_spread": cert.follower_spread,
        "evaluations": cert.evaluations, "failed_evaluations": cert.failed_evaluations,
    }


def _history_json(history: Any) -> list[dict[str, Any]]:
    return [{"sweep": s.index, "rewards": [d[0] for d in s.decisions], "utilities": s.utilities,
             "step": s.step, "relative_step": s.relative_step, "stationarity": s.stationarity,
             "iterations": s.iterations} for s in history]


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    import numpy as np

    from benchmarks.conventions import show_progress
    from benchmarks.plots import convergence_plot
    from epec import GlobalOptions, solve_scenario
    from models.io import atomic_write_json
    from models.iom import iom_matrix
    from models.results import EquilibriumResult, FailureResult
    from models.scenario import load_scenario
    from models.utility import msp_utilities, mu_utilities

    sc = load_scenario(args.scenario, seed=args.seed)
    out = Path(args.out)
    solve_options = {"method": args.method, "mode": args.mode, "tol": args.tol, "max_iter": args.max_iter,
                     "damping": args.damping, "grid": args.grid, "leader_step": args.leader_step}
    options = {**solve_options, "global_moves": args.global_moves, "starts": args.starts}  # as the JSON records them
    t0 = time.perf_counter()
    bars = _Bars(show_progress(args))
    try:
        sol = solve_scenario(sc, callback=bars.on_sweep, progress=bars.on_progress,
                             global_search=GlobalOptions(moves=args.global_moves, starts=args.starts), **solve_options)
    finally:
        bars.close()
    res = sol.result
    if not res.ok:
        # not certified, or no point at all: the evidence goes to failure.json, nothing else
        print(f"metatrading solve: {res.status.value}: {res.message}")
        atomic_write_json(out / "failure.json", FailureResult(**{
            "status": res.status.value, "message": res.message, "iterations": res.iterations,
            "sweeps": res.sweeps, "seconds": res.seconds, "starts": res.starts,
            "certificate": None if res.certificate is None else _certificate_json(res.certificate),
            "global_moves": [{"sweep": mv.sweep, "rewards": [d[0] for d in mv.decisions], "utilities": mv.utilities,
                              "deviation_gains": mv.gains, "best_deviations": [d[0] for d in mv.best_deviations],
                              "moved": mv.leader} for mv in res.moves],
            "cycle": [[d[0] for d in prof] for prof in res.cycle],
            "history": _history_json(res.history), "options": options, "scenario": sc.to_dict(),
        }).to_json())
        return 1
    R, f = sol.R, sol.f
    I = iom_matrix(sc, f)
    V, U = msp_utilities(sc, R, f), mu_utilities(sc, R, f)
    cert = res.certificate
    nk = sol.numpy_kkt
    result = EquilibriumResult(**{  # the file's one typed record (models.results)
        "status": res.status.value,
        "rewards": np.asarray(R, dtype=float).tolist(),
        "allocations": np.asarray(f, dtype=float).tolist(),
        "iom": np.asarray(I, dtype=float).tolist(),
        "msp_utility": np.asarray(V, dtype=float).tolist(),
        "mu_utility": np.asarray(U, dtype=float).tolist(),
        "certificate": {**_certificate_json(cert), "numpy_kkt_residual": nk.max},
        "iterations": res.iterations,
        "sweeps": res.sweeps,
        "seconds": res.seconds,
        "timings": res.timings,
        "history": _history_json(res.history),
        "options": options,
        "scenario": sc.to_dict(),
    })
    convergence_plot(out / "convergence.png", [[d[0] for d in s.decisions] for s in res.history],
                     [s.step for s in res.history], [f"MSP {m}" for m in range(sc.n_msp)],
                     title=f"EPEC diagonalisation of {sc.name} ({sc.n_mu}x{sc.n_msp}, {sc.mechanism.value} mechanism): "
                           f"{args.leader_step} leader step, {args.method}, {args.mode}")
    atomic_write_json(out / "equilibrium.json", result.to_json())
    print(_summary(sc, R, I, V, U, res, nk, f))
    print(f"wrote {out / 'equilibrium.json'} and {out / 'convergence.png'} ({time.perf_counter() - t0:.2f} s in all)")
    return 0
