"""The EPEC by diagonalisation over the leaders (Gauss-Seidel or Jacobi), each leader's MPEC
solved by a leader step (:mod:`epec.leader_steps`) and the answer certified
(:mod:`epec.certificate`).

Global moves: the leader steps are local, so the sweeps can stop where a leader sits at a local
maximum of its utility (a reward of 0 that attracts no MU, say, while a larger one would pay).
Where the sweeps stop, the certificate scans every leader's whole range; if a leader gains by
deviating, it is moved to its best deviation and the sweeps go on (a *global move*, see
:class:`GlobalOptions`), and if a start ends without a certified point, further start profiles
are tried.

Acceleration (``acceleration=m`` in :func:`solve_epec`): the Anderson extrapolation of the sweep
map ``x <- T(x)`` on the implicit path, ``x_{k+1} = T(x_k) - dG gamma``,
``gamma = argmin |f_k - dF gamma|``, ``f = T(x) - x`` (Anderson, J. ACM 12, 1965; Walker & Ni,
SIAM J. Numer. Anal. 49, 2011), projected on the leaders' boxes; reset when the residual grows.
Off by default: at 100x5 the leaders' best responses sit at kinks of their utilities (a follower
entering or leaving), the sweep map is not smooth there and the extrapolation oscillated (steps
7e-6..6e-4 over 30 sweeps) where the plain map settles."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from pyomo.core.base.block import BlockData

from .acceleration import Anderson
from .certificate import certify_game, format_decision
from .game import Game, Workspace, finish, leaders_game
from .leader_steps import FollowerState, StepFailed, full_space_step, implicit_response, implicit_step
from .options import CertificateOptions, GlobalOptions, LeaderStep, Method
from .checks import check_int
from .reformulation import HomotopyResult
from .response import ResponseOptions
from .results import GameResult, GameStatus, GlobalMove, Sweep

__all__ = ["solve_epec"]


def solve_epec(
    model: BlockData, leaders: Sequence[Any], followers: Sequence[Any], *,
    method: Method | str = Method.GAUSS_SEIDEL, mode: Any = "scholtes",
    damping: float = 1.0, tol: float = 1e-6, max_iter: int = 50, lift: bool = True,
    certify: bool = True, certificate: CertificateOptions = CertificateOptions(),
    solver: Any = None, options: Any = None,
    leader_step: LeaderStep | str = LeaderStep.IMPLICIT, response: ResponseOptions = ResponseOptions(),
    acceleration: int = 0, global_search: GlobalOptions = GlobalOptions(),
    callback: Callable[[int, tuple[tuple[float, ...], ...], float], Any] | None = None,
    progress: Callable[[str, int, int], Any] | None = None,
    follower_start: Callable[[list[np.ndarray], np.random.Generator | None], Any] | None = None,
    batch_response: Callable[[list[list[np.ndarray]]], tuple[Any, Any]] | None = None,
    batch_starts: Callable[[list, np.random.Generator, int], list] | None = None, workspace: Workspace | None = None,
) -> GameResult:
    """EPEC by diagonalisation: each leader in turn solves its MPEC, the others held fixed.

    Leader i: ``max_{x_i} V_i(x_i, x_-i, y) s.t. y solves the followers' KKT system``, others'
    decisions fixed; ``x_i <- x_i + damping (x_i^new - x_i)`` until the stop rule (``tol``; Su 2005,
    ch. 3; Hu & Ralph, Oper. Res. 55(5), 2007). The transformed clone is built once; each MPEC is
    solved in the leader's own decisions (``leader_step="implicit"``, :class:`LeaderStep`) or by Ipopt
    on the reformulated model (``"full-space"``, the ``mode``'s homotopy, re-solving one compiled
    NLP). Where the sweeps stop, the certificate checks the point; a refuted one is left by a global
    move, and further start profiles are tried (module doc). ``ok`` only for a certified point.

    Parameters
    ----------
    model : BlockData
    leaders, followers : sequence of blocks
        Each leader block holds its objective and its decision Vars; followers as in :func:`solve_nash`.
        A leader's objective may use a follower constraint's multiplier, :func:`epec.multiplier`
        (differentiated through the followers' response); a constraint on a leader's block, or at model
        level over one leader's decisions, is that leader's and is kept throughout (:mod:`epec.constraints`).
    method, leader_step : Method or str, LeaderStep or str (defaults "gauss-seidel", "implicit")
    mode : str or Reformulation, default "scholtes"
        The reformulation of the full-space path and of every Ipopt fallback: a name registered in
        :mod:`epec.modes` or an instance.
    damping : float in (0, 1], default 1.0
    tol : float, default 1e-6
        Stop when ``max_i |x_i^k - x_i^{k-1}| / max(1, hi_i - lo_i) <= tol`` over a sweep (range
        ``max(1, |x_i|)`` when unbounded) and, on the implicit path, each step is a stationary point
        of the leader's utility (projected gradient ``<= 1e-6 max(1, |V_i|)``, ``Sweep.stationarity``).
    max_iter : int, default 50
        Sweeps; reaching it gives ``GameStatus.MAX_ITER``.
    lift, certify, certificate, solver, options
        As :func:`solve_bilevel`; ``certify=False`` skips the certificate and the global moves (the
        stopped point loaded, the status ``UNCERTIFIED``, not ok).
    global_search : GlobalOptions
        Global moves out of refuted points and further start profiles.
    follower_start, batch_starts : callable, optional
        ``follower_start(decisions, rng) -> [(follower Var, value), ...]`` (or a ``ComponentMap``, or
        None): a start for the followers at leader decisions (one array per leader), e.g. their
        equilibrium from a problem-specific solver (:func:`epec.solve_scenario`); with ``rng`` None a
        warm Newton start where the response's own starts fail, with a generator a random start for
        the uniqueness check (c); ``batch_starts(decisions, rng, count)``: ``count`` of those in one
        call (a hint or None each), tried first. Never trusted: every answer is Newton's, checked.
    batch_response : callable, optional
        ``batch_response(points) -> (utilities (B, leaders), solved (B,))``: every leader's utility at
        the followers' equilibrium at each of ``B`` decision profiles (one array per leader each), e.g.
        :mod:`models.batch_followers`, for the certificate's deviation scan (``CertificateOptions.batched``;
        a profile not solved is left to Newton); it must solve the followers' KKT to ``kkt_tol``.
    workspace : Workspace, optional
        Keeps the prepared game for the next solve of the same model, players and settings: only
        its Params, Var values and bounds are taken in again (:class:`epec.Workspace`).
    response : ResponseOptions
        The Newton follower response (implicit steps and the certificate).
    acceleration : int, default 0
        Memory of the Anderson extrapolation of the sweep map on the implicit path (module doc).
    callback : callable, optional
        ``callback(sweep, decisions, step)`` after every sweep (decisions as in :class:`Sweep`).
    progress : callable, optional
        ``progress(stage, done, total)``: ``("sweep", k, max_iter)`` after every sweep (``k`` counts
        every sweep of the solve), ``("certificate", j, leaders + starts)`` as the certificate goes.

    Returns
    -------
    GameResult
        ``status`` CONVERGED (certified), NOT_CERTIFIED (the certificate fails for a reason a move
        cannot mend; the message names it), UNCERTIFIED, NO_EQUILIBRIUM (``moves`` holds the evidence:
        each refuted profile with every leader's gain), CYCLING (``cycle``), MAX_ITER or SOLVER_FAILED;
        ``history`` per sweep. The point loaded into the model when the solve stopped is the followers'
        equilibrium at the final leader decisions. ``iterations`` counts Ipopt and Newton iterations.

    Raises
    ------
    epec.GameStructureError
        A shared constraint (two leaders' decisions), a coupling constraint (a follower's variables
        outside its block), or a Var on no player's block that a constraint uses without defining it.
    """
    method, leader_step = Method(method), LeaderStep(leader_step)
    _check_arguments(response, certificate, global_search, damping, tol, max_iter, acceleration, {"callback": callback, "progress": progress, "follower_start": follower_start, "batch_response": batch_response, "batch_starts": batch_starts})
    t0 = time.perf_counter()
    game = _built(model, leaders, followers, mode, solver, options, lift, response, workspace)
    game.follower_start, game.batch_response, game.batch_starts = follower_start, batch_response, batch_starts
    implicit = leader_step is LeaderStep.IMPLICIT and game.response is not None
    game.build_seconds = time.perf_counter() - t0 if implicit or workspace else game.build_seconds  # the response's too
    sweeps = _Sweeps(game, implicit, method, damping, tol, max_iter, acceleration, callback, progress)
    search = _Search(sweeps, certify, certificate, global_search, progress)
    status, message, starts, cycle = search.run()
    return finish(game, status, message, sweeps.iterations, len(sweeps.history), t0, sweeps.runs, tuple(sweeps.history),
                  search.cert, search.cert_s, moves=tuple(sweeps.moves), cycle=cycle if status is GameStatus.CYCLING else (), starts=starts)


def _built(model: BlockData, leaders: Sequence[Any], followers: Sequence[Any], mode: Any, solver: Any, options: Any,
           lift: bool, response: ResponseOptions, workspace: Workspace | None) -> Game:
    """:func:`solve_epec`'s game: built for this solve, or the one ``workspace`` prepared for the
    same model, players, mode, solver, ``lift`` and ``response`` (its numbers taken in again)."""
    if workspace is None:
        return leaders_game(model, leaders, followers, mode, solver, options, lift, response)
    if not isinstance(workspace, Workspace):
        raise ValueError(f"workspace: must be an epec.Workspace, got {type(workspace).__name__}")
    key = (id(model), tuple(map(id, leaders)), tuple(map(id, followers)), mode if isinstance(mode, str) else id(mode),
           id(solver), id(options), lift, response)
    return workspace.prepared(key, lambda: leaders_game(model, leaders, followers, mode, solver, options, lift,
                                                        response), (model, leaders, followers, mode, solver, options))


def _check_arguments(response: Any, certificate: Any, global_search: Any, damping: Any, tol: Any, max_iter: Any,
                     acceleration: Any, callables: dict[str, Any]) -> None:
    """:func:`solve_epec`'s arguments checked, in its order; a ValueError naming the first wrong one."""
    if not isinstance(response, ResponseOptions):
        raise ValueError(f"response: must be a ResponseOptions, got {type(response).__name__}")
    if not isinstance(certificate, CertificateOptions):
        raise ValueError(f"certificate: must be a CertificateOptions, got {type(certificate).__name__}")
    if not isinstance(global_search, GlobalOptions):
        raise ValueError(f"global_search: must be a GlobalOptions, got {type(global_search).__name__}")
    if not (isinstance(damping, (int, float)) and 0 < damping <= 1):
        raise ValueError(f"damping: must be in (0, 1], got {damping!r}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol: must be > 0, got {tol!r}")
    check_int("max_iter", max_iter, 1)
    check_int("acceleration", acceleration, 0)
    for name, fn in callables.items():
        if fn is not None and not callable(fn):
            raise ValueError(f"{name}: must be callable, got {fn!r}")


@dataclass
class _Search:
    """:func:`solve_epec`'s start profiles, each swept to a stop (:class:`_Sweeps`), certified and,
    when a leader gains by deviating, moved to its best deviation (a global move) and swept
    again; keeps the last certificate and the certificates' seconds."""

    sweeps: _Sweeps
    certify: bool
    certificate: CertificateOptions
    global_search: GlobalOptions
    progress: Any
    cert: Any = None
    cert_s: float = 0.0

    def run(self) -> tuple[GameStatus, str, int, tuple]:
        """Every start profile until one ends in a point that a move cannot mend; ``(status,
        message, start profiles tried, cycle)``."""
        game, sweeps, global_search = self.sweeps.game, self.sweeps, self.global_search
        rng = np.random.default_rng(global_search.seed)
        # a start that breaks a leader's general constraint is moved to the nearest one that keeps it
        x_first = [game.feasible_start(i, ld.values()) for i, ld in enumerate(game.leaders)]
        outcomes: list[str] = []
        cycle: tuple = ()
        for start in range(1 + global_search.starts):
            x = x_first if start == 0 else _random_profile(game, rng)
            first, state = sweeps.respond(x, None, cold=start > 0)
            if not first.ok:
                status, message = GameStatus.SOLVER_FAILED, "initial follower equilibrium: " + first.message
                outcomes.append(f"start {start + 1}: {status.value}: {message}")
                continue
            status, message, cycle = self._from(x, state)
            outcomes.append(f"start {start + 1}: {status.value}: {message}")
            if status in (GameStatus.CONVERGED, GameStatus.UNCERTIFIED, GameStatus.NOT_CERTIFIED):
                # another start helps a run that found no certified point, not one whose point fails
                # a check no leader's move could mend (the followers' residual or uniqueness)
                break
        if not status.stopped and len(outcomes) > 1:
            message = f"{len(outcomes)} start profiles, none certified; " + " | ".join(outcomes)
        return status, message, start + 1, cycle

    def _from(self, x: list, state: Any) -> tuple[GameStatus, str, tuple]:
        """Sweeps from the start ``x`` (the followers' response ``state`` there), the certificate
        where they stop and global moves out of refuted points; ``(status, message, cycle)``."""
        sweeps, game, global_search = self.sweeps, self.sweeps.game, self.global_search
        refuted: list[list[np.ndarray]] = []
        while True:
            status, message, x, state, cycle = sweeps.run(x, state)
            if status is not GameStatus.CONVERGED:
                return status, message, cycle
            final, state = sweeps.respond(x, state)  # the point: the followers' equilibrium at x
            if not final.ok:
                return GameStatus.SOLVER_FAILED, "final follower equilibrium: " + final.message, cycle
            if not self.certify:
                return GameStatus.UNCERTIFIED, "stopped, not certified (certify=False)", cycle
            tc = time.perf_counter()
            cert = self.cert = certify_game(game, self.certificate, self.progress)
            self.cert_s += time.perf_counter() - tc
            if cert.holds:
                return status, message, cycle
            status, message = GameStatus.NOT_CERTIFIED, "certificate fails: " + "; ".join(cert.reasons)
            if not cert.profitable or global_search.moves == 0:
                return status, message, cycle
            i = max(cert.profitable, key=lambda j: cert.relative_gains[j])
            sweeps.moves.append(GlobalMove(len(sweeps.history), tuple(tuple(float(t) for t in a) for a in x),
                                           cert.utilities, cert.deviation_gains, cert.best_deviations, i))
            revisit = any(_close(x, old, sweeps.tol) for old in refuted)
            if revisit or len(refuted) >= global_search.moves:
                return GameStatus.NO_EQUILIBRIUM, _no_equilibrium(game, sweeps.moves, revisit, len(refuted)), cycle
            refuted.append([a.copy() for a in x])
            x = [a.copy() for a in x]
            x[i] = np.clip(np.asarray(cert.best_deviations[i], dtype=float), game.leaders[i].lower,
                           game.leaders[i].upper)
            moved, state = sweeps.respond(x, state)
            if not moved.ok:
                return GameStatus.SOLVER_FAILED, f"global move of {game.leaders[i].name}: {moved.message}", cycle


def _close(x: list, y: list, tol: float) -> bool:
    """Two leader profiles within ``tol`` relative to ``max(1, |x|)`` in every decision."""
    return all(np.all(np.abs(a - b) <= tol * np.maximum(1.0, np.abs(a))) for a, b in zip(x, y))


def _random_profile(game: Game, rng: np.random.Generator) -> list[np.ndarray]:
    """A start profile uniform in the leaders' boxes (an unbounded side: ``x -+ max(1, |x|)``
    around the current decision), each draw moved into its leader's general constraints."""
    out = []
    for i, ld in enumerate(game.leaders):
        x = ld.values()
        width = np.maximum(1.0, np.abs(x))
        lo = np.where(np.isfinite(ld.lower), ld.lower, x - width)
        hi = np.where(np.isfinite(ld.upper), ld.upper, x + width)
        out.append(game.feasible_start(i, rng.uniform(lo, hi)))
    return out


def _no_equilibrium(game: Game, moves: list[GlobalMove], revisit: bool, count: int) -> str:
    """The evidence of a run without a pure equilibrium: the last refuted profiles, each with
    every leader's gain."""
    def profile(mv: GlobalMove) -> str:
        xs = ", ".join(f"{ld.name}={format_decision(d)} (gain {g:.4g})" for ld, d, g in zip(game.leaders, mv.decisions, mv.gains))
        return f"[{xs}]"

    why = "came back to a refuted profile" if revisit else f"{count} global moves"
    last = "; ".join(profile(mv) for mv in moves[-3:])
    return f"no pure equilibrium found ({why}); last refuted profiles: {last}"


class _Sweeps:
    """The diagonalisation's sweeps from a start point until the stop rule, a cycle or
    ``max_iter``; keeps the history, the solver runs and the iteration count of the whole solve."""

    def __init__(self, game: Game, implicit: bool, method: Method, damping: float, tol: float, max_iter: int,
                 acceleration: int, callback: Any, progress: Any) -> None:
        self.game, self.implicit, self.method, self.damping = game, implicit, method, damping
        self.tol, self.max_iter, self.callback, self.progress = tol, max_iter, callback, progress
        self.acceleration = acceleration
        self.history: list[Sweep] = []
        self.runs: list[HomotopyResult] = []
        self.moves: list[GlobalMove] = []
        self.iterations = 0
        # the stop rule's yardstick: each decision's range (at least 1, so it is never looser
        # than the absolute step on a range below 1)
        self.widths = [np.maximum(1.0, np.where(np.isfinite(ld.upper - ld.lower), ld.upper - ld.lower,
                                                np.abs(ld.values()))) for ld in game.leaders]

    def respond(self, x: list, state: FollowerState | None, cold: bool = False) -> tuple[HomotopyResult, Any]:
        """The followers' equilibrium at leader decisions ``x`` (written into the model)."""
        if self.implicit:
            run, state = implicit_response(self.game, x, state, cold=cold)
        else:
            run = self.game.respond(x, warm=not cold)
        self.runs.append(run)
        self.iterations += run.iterations
        return run, state

    def run(self, x: list, state: FollowerState | None) -> tuple[GameStatus, str, list, Any, tuple]:
        """Sweeps from ``x`` (the followers' response ``state`` there). Returns ``(status,
        message, x, state, cycle)``: CONVERGED when the stop rule holds (not yet certified)."""
        game, implicit, method, damping = self.game, self.implicit, self.method, self.damping
        x = [a.copy() for a in x]
        seen: list[list[np.ndarray]] = [[a.copy() for a in x]]
        anderson = Anderson(self.acceleration, [ld.lower for ld in game.leaders], [ld.upper for ld in game.leaders]) \
            if implicit and self.acceleration > 0 else None
        accelerated = False
        for _ in range(self.max_iter):
            k = len(self.history) + 1
            prev = [a.copy() for a in x]
            new = [a.copy() for a in x]
            utils: list[float] = []
            pgs: list[float] = []
            sweep_iters = 0
            for i, ld in enumerate(game.leaders):
                point = list(x if method is Method.GAUSS_SEIDEL else prev)
                run, x_i, fallback_reason = None, None, ""
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
                        run, fallback_reason = None, str(err)
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
                self.runs.append(run)
                sweep_iters += run.iterations
                if not run.ok:
                    self.iterations += sweep_iters
                    return GameStatus.SOLVER_FAILED, f"sweep {k}, leader {ld.name}: {run.message}", x, state, ()
                step_i = prev[i] + damping * (x_i - prev[i])  # under Gauss-Seidel x[i] is still prev[i] here
                if method is Method.GAUSS_SEIDEL:
                    x[i] = step_i
                new[i] = step_i
            x = new
            self.iterations += sweep_iters
            step = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(x, prev))
            rel = max(float(np.max(np.abs(a - b) / w)) if a.size else 0.0 for a, b, w in zip(x, prev, self.widths))
            decisions = tuple(tuple(float(t) for t in a) for a in x)
            self.history.append(Sweep(k, decisions, tuple(utils), step, sweep_iters, rel,
                                      max(pgs) if pgs and not any(math.isnan(g) for g in pgs) else math.nan,
                                      accelerated))
            if self.callback is not None:
                self.callback(k, decisions, step)
            if self.progress is not None:
                self.progress("sweep", k, max(self.max_iter, k))
            if rel <= self.tol:
                return GameStatus.CONVERGED, "", x, state, ()
            accelerated = False
            if anderson is not None:
                x_acc = anderson.step(prev, x)
                if x_acc is not None:
                    # the next sweep starts from the extrapolated point: the followers' response there
                    acc_run, acc_state = implicit_response(game, x_acc, state)
                    if acc_run.ok and acc_run.message == "newton":
                        x, state, accelerated = x_acc, acc_state, True
                        self.iterations += acc_run.iterations
                    else:
                        anderson.reset()
                        game.fix_leaders(x)
            # An earlier iterate (not the last one) revisited: the sweeps go round in a cycle.
            for j, old in enumerate(seen[:-1]):
                if max(float(np.max(np.abs(a - b))) for a, b in zip(x, old)) <= self.tol:
                    cycle = tuple(tuple(tuple(float(t) for t in a) for a in c) for c in seen[j:]) + (decisions,)
                    return (GameStatus.CYCLING, f"sweep {k} repeats an earlier iterate (step {step:.3g}); the "
                            f"cycle has {len(seen) - j} profiles", x, state, cycle)
            seen.append([a.copy() for a in x])
        return (GameStatus.MAX_ITER, f"no convergence to tol {self.tol:g} in {self.max_iter} sweeps", x, state, ())
