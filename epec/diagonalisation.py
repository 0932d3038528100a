"""The EPEC by diagonalisation over the leaders (Gauss-Seidel or Jacobi), each leader's MPEC
solved by a leader step (:mod:`epec.leader_steps`) and the answer certified
(:mod:`epec.certificate`)."""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

import numpy as np
from pyomo.core.base.block import BlockData

from .acceleration import Anderson
from .certificate import certify_game
from .game import Game, expand_players, finish, make_solver
from .kkt import player_objective, player_variables
from .leader_steps import FollowerState, StepFailed, full_space_step, implicit_response, implicit_step
from .options import CertificateOptions, LeaderStep, Method
from .reformulation import HomotopyResult, check_int, make_mode
from .response import ResponseOptions
from .results import GameResult, GameStatus, Sweep

__all__ = ["solve_epec"]


def solve_epec(
    model: BlockData,
    leaders: Sequence[Any],
    followers: Sequence[Any],
    *,
    method: Method | str = Method.GAUSS_SEIDEL,
    mode: Any = "scholtes",
    damping: float = 1.0,
    tol: float = 1e-6,
    max_iter: int = 50,
    lift: bool = True,
    certify: bool = True,
    certificate: CertificateOptions = CertificateOptions(),
    solver: Any = None,
    options: Any = None,
    leader_step: LeaderStep | str = LeaderStep.IMPLICIT,
    response: ResponseOptions = ResponseOptions(),
    acceleration: int = 0,
    callback: Callable[[int, tuple[tuple[float, ...], ...], float], Any] | None = None,
    progress: Callable[[str, int, int], Any] | None = None,
) -> GameResult:
    """EPEC by diagonalisation: each leader in turn solves its MPEC, the others held fixed.

    Leader i: ``max_{x_i} V_i(x_i, x_-i, y) s.t. y solves the followers' KKT system``, others'
    decisions fixed; update ``x_i <- x_i + damping (x_i^new - x_i)``; stop when
    ``max_i |x_i^k - x_i^{k-1}| / range_i <= tol`` (Su 2005, ch. 3; Hu & Ralph, Oper. Res. 55(5), 2007).
    The transformed clone is built once; each MPEC is solved in the leader's own decisions
    (``leader_step="implicit"``, see :class:`LeaderStep`) or by Ipopt on the reformulated
    model (``"full-space"``, the ``mode``'s homotopy, re-solving one compiled NLP).

    Parameters
    ----------
    model : BlockData
    leaders, followers : sequence of blocks
        Each leader block holds its objective and its decision Vars; followers as in
        :func:`solve_nash`.
    method : Method or str, default "gauss-seidel"
    mode : str, ModeKind or Reformulation, default "scholtes"
        The reformulation of the full-space path (and of every Ipopt fallback).
    damping : float in (0, 1], default 1.0
    tol : float, default 1e-6
        Stop when every leader decision moved by at most ``tol`` times its range over a sweep,
        ``max_i |x_i^k - x_i^{k-1}| / max(1, hi_i - lo_i) <= tol`` (range ``max(1, |x_i|)`` when
        unbounded); on the implicit path each step is also a stationary point of the leader's
        utility (projected gradient ``<= 1e-6 max(1, |V_i|)``, see ``Sweep.stationarity``).
    max_iter : int, default 50
        Sweeps; reaching it gives ``GameStatus.MAX_ITER``.
    lift, certify, certificate, solver, options
        As :func:`solve_bilevel`.
    leader_step : LeaderStep or str, default "implicit"
    response : ResponseOptions
        The Newton follower response (implicit steps and the certificate).
    acceleration : int, default 0
        Memory of the Anderson extrapolation of the sweep map ``x <- T(x)`` on the implicit path
        (0: plain diagonalisation). ``x_{k+1} = T(x_k) - dG gamma``, ``gamma = argmin |f_k - dF gamma|``,
        ``f = T(x) - x`` (Anderson, J. ACM 12, 1965; Walker & Ni, SIAM J. Numer. Anal. 49, 2011),
        projected on the leaders' boxes; reset when the residual grows. Off by default: at 100x5 the
        leaders' best responses sit at kinks of their utilities (a follower entering or leaving),
        the sweep map is not smooth there and the extrapolation oscillated (steps 7e-6..6e-4 over
        30 sweeps) where the plain map settles.
    callback : callable, optional
        ``callback(sweep, decisions, step)`` after every sweep (decisions as in :class:`Sweep`).
    progress : callable, optional
        ``progress(stage, done, total)`` for progress bars: ``("sweep", k, max_iter)`` after
        every sweep, then ``("certificate", j, leaders + starts)`` after each leader's deviation
        check and each random follower start.

    Returns
    -------
    GameResult
        ``status`` CONVERGED, MAX_ITER, CYCLING or SOLVER_FAILED; ``history`` per sweep. The
        point loaded into the model on success is the followers' equilibrium at the final
        leader decisions. ``iterations`` counts Ipopt and Newton iterations.
    """
    method = Method(method)
    leader_step = LeaderStep(leader_step)
    if not isinstance(response, ResponseOptions):
        raise ValueError(f"response: must be a ResponseOptions, got {type(response).__name__}")
    if not (isinstance(damping, (int, float)) and 0 < damping <= 1):
        raise ValueError(f"damping: must be in (0, 1], got {damping!r}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol: must be > 0, got {tol!r}")
    check_int("max_iter", max_iter, 1)
    check_int("acceleration", acceleration, 0)
    for name, fn in (("callback", callback), ("progress", progress)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name}: must be callable, got {fn!r}")
    t0 = time.perf_counter()
    leaders = expand_players(leaders)
    specs = [(b.name, player_variables(b), player_objective(b)) for b in leaders]
    game = Game(model, expand_players(followers), specs, make_mode(mode), make_solver(solver, options), lift)
    game.response_options = response
    implicit = leader_step is LeaderStep.IMPLICIT and game.response is not None
    if implicit:
        game.build_seconds = time.perf_counter() - t0  # the response's compilation is part of the build
    state: FollowerState | None = None
    if implicit:
        first, state = implicit_response(game, None, None, cold=True)
    else:
        first = game.respond(None, warm=False)
    runs = [first]
    if not runs[0].ok:
        return finish(game, GameStatus.SOLVER_FAILED, "initial follower equilibrium: " + runs[0].message,
                       runs[0].iterations, 0, t0, runs)
    x = [ld.values() for ld in game.leaders]
    seen: list[list[np.ndarray]] = [[a.copy() for a in x]]
    history: list[Sweep] = []
    fallbacks: list[str] = []
    iters = runs[0].iterations
    status, message = GameStatus.MAX_ITER, f"no convergence to tol {tol:g} in {max_iter} sweeps"
    # the stop rule's yardstick: each decision's range (at least 1, so it is never looser than
    # the absolute step on a range below 1)
    widths = [np.maximum(1.0, np.where(np.isfinite(ld.upper - ld.lower), ld.upper - ld.lower, np.abs(a)))
              for ld, a in zip(game.leaders, x)]
    anderson = Anderson(acceleration, [ld.lower for ld in game.leaders], [ld.upper for ld in game.leaders]) \
        if implicit and acceleration > 0 else None
    accelerated = False
    for k in range(1, max_iter + 1):
        prev = [a.copy() for a in x]
        new = [a.copy() for a in x]
        utils = []
        pgs: list[float] = []
        sweep_iters = 0
        for i, ld in enumerate(game.leaders):
            others = x if method is Method.GAUSS_SEIDEL else prev
            point = list(others)
            run, x_i = None, None
            if implicit:
                base = state
                if method is Method.JACOBI or damping != 1.0:
                    # the step starts from the followers' response at exactly ``point``
                    _, base = implicit_response(game, point, state)
                try:
                    x_i, state_i, run, pg_i = implicit_step(game, i, base)
                    utils.append(float(run.objective))
                    pgs.append(pg_i)
                    if method is Method.GAUSS_SEIDEL:
                        state = state_i
                except StepFailed as err:
                    run = None
                    fallback_reason = str(err)
                    fallbacks.append(f"sweep {k}: {err}")
            if run is None:
                run, st = full_space_step(game, i, point, state if implicit else None)
                if implicit:
                    state = st
                if run.ok:
                    x_i = ld.values()
                    utils.append(ld.utility())
                    pgs.append(math.nan)
                elif implicit:
                    run = HomotopyResult(False, run.status, run.iterations, run.seconds, run.complementarity,
                                         None, run.steps, f"implicit step failed ({fallback_reason}); "
                                                           f"full-space fallback: {run.message}")
            runs.append(run)
            sweep_iters += run.iterations
            if not run.ok:
                iters += sweep_iters
                return finish(game, GameStatus.SOLVER_FAILED, f"sweep {k}, leader {ld.name}: {run.message}",
                               iters, k, t0, runs, tuple(history))
            step_i = prev[i] + damping * (x_i - prev[i])  # under Gauss-Seidel x[i] is still prev[i] here
            if method is Method.GAUSS_SEIDEL:
                x[i] = step_i
            new[i] = step_i
        x = new
        iters += sweep_iters
        step = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(x, prev))
        rel = max(float(np.max(np.abs(a - b) / w)) if a.size else 0.0 for a, b, w in zip(x, prev, widths))
        decisions = tuple(tuple(float(t) for t in a) for a in x)
        history.append(Sweep(k, decisions, tuple(utils), step, sweep_iters, rel,
                             max(pgs) if pgs and not any(math.isnan(g) for g in pgs) else math.nan,
                             accelerated))
        if callback is not None:
            callback(k, decisions, step)
        if progress is not None:
            progress("sweep", k, max_iter)
        if rel <= tol:
            status, message = GameStatus.CONVERGED, ""
            break
        accelerated = False
        if anderson is not None:
            x_acc = anderson.step(prev, x)
            if x_acc is not None:
                # the next sweep starts from the extrapolated point: the followers' response there
                acc_run, acc_state = implicit_response(game, x_acc, state)
                if acc_run.ok and acc_run.message == "newton":
                    x, state, accelerated = x_acc, acc_state, True
                    iters += acc_run.iterations
                else:
                    anderson.reset()
                    game.fix_leaders(x)
        # An earlier iterate (not the last one) revisited: the sweeps go round in a cycle.
        if any(max(float(np.max(np.abs(a - b))) for a, b in zip(x, old)) <= tol for old in seen[:-1]):
            status, message = GameStatus.CYCLING, f"sweep {k} repeats an earlier iterate (step {step:.3g})"
            break
        seen.append([a.copy() for a in x])
    # The loaded point: the followers' equilibrium at the final leader decisions.
    if implicit:
        final, state = implicit_response(game, x, state)
    else:
        final = game.respond(x, warm=True)
    runs.append(final)
    iters += final.iterations
    if status is GameStatus.CONVERGED and not final.ok:
        status, message = GameStatus.SOLVER_FAILED, "final follower equilibrium: " + final.message
    cert, cert_s = None, 0.0
    if status is GameStatus.CONVERGED and certify:
        tc = time.perf_counter()
        cert = certify_game(game, certificate, progress)
        cert_s = time.perf_counter() - tc
    return finish(game, status, message, iters, len(history), t0, runs, tuple(history), cert, cert_s)
