"""Nash, bilevel and EPEC solves of games written as Pyomo blocks.

Every solve clones the user's model once, adds the followers' KKT systems (:func:`epec.kkt`),
reformulates the complementarity with a mode (:mod:`epec.scholtes`, :mod:`epec.smoothing`,
:mod:`epec.penalty`), solves with Ipopt (:class:`solvers.IpoptSolver`) and loads the solution
into the user's Vars. The EPEC diagonalisation (Gauss-Seidel or Jacobi over the leaders' MPECs;
Su, *Equilibrium problems with equilibrium constraints*, PhD thesis, Stanford 2005, ch. 3)
re-solves the same compiled NLP by fixing/unfixing leader Vars and switching the objective.
"""
from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pyomo.environ as pyo
from pyomo.core.base.block import BlockData

from .kkt import KKTResidual, KKTSystem, _owned_by, kkt, player_objective, player_variables
from .reformulation import HomotopyResult, InverseData, Reformulation, _check_int, clone_with_map, make_mode
from .response import FollowerResponse, Response, ResponseOptions

__all__ = [
    "LeaderStep",
    "Method",
    "GameStatus",
    "Sweep",
    "GameResult",
    "CertificateOptions",
    "solve_nash",
    "solve_bilevel",
    "solve_epec",
    "certify",
]


class Method(str, enum.Enum):
    """Diagonalisation order: each leader against the latest (Gauss-Seidel) or the previous
    sweep's (Jacobi) decisions of the others."""

    GAUSS_SEIDEL = "gauss-seidel"
    JACOBI = "jacobi"


class LeaderStep(str, enum.Enum):
    """How one leader's MPEC is solved inside the diagonalisation.

    ``IMPLICIT`` (default): in the leader's own decisions only, the followers' response ``z(x)``
    solved by Newton on their smoothed KKT system (:mod:`epec.response`) and the gradient of the
    leader's utility from the implicit function theorem; one decision by bracketing and
    safeguarded secant steps on ``dV/dx`` (:func:`_scalar_ascent`), several by L-BFGS-B over the
    leader's box (implicit programming, Outrata, Kocvara & Zowe 1998, ch. 4; smoothing as Facchinei, Jiang &
    Qi, Math. Program. 85, 1999). Falls back to ``FULL_SPACE`` for a step it cannot take.
    ``FULL_SPACE``: Ipopt on the whole reformulated MPEC (the ``mode``'s homotopy).
    """

    IMPLICIT = "implicit"
    FULL_SPACE = "full-space"


class GameStatus(enum.Enum):
    """How a game solve ended; only ``CONVERGED`` is ``ok``."""

    CONVERGED = "converged"
    SOLVER_FAILED = "solver_failed"  #: an Ipopt solve failed or left the pairs non-complementary
    MAX_ITER = "max_iter"  #: diagonalisation stopped at max_iter without meeting tol
    CYCLING = "cycling"  #: diagonalisation revisited an earlier iterate without converging


@dataclass(frozen=True)
class CertificateOptions:
    """How :func:`solve_bilevel` / :func:`solve_epec` certify their point (MODEL.md section 5).

    Parameters
    ----------
    grid : int
        Points of the deviation grid per leader (per direction when multi-dimensional), >= 2.
        Default 41.
    refine : bool
        Bounded golden-section search around the best grid point. Default True.
    refine_iter : int
        Function evaluations of that search. Default 12.
    directions : int
        Random directions for a leader with several decision variables. Default 8.
    starts : int
        Random follower starts for the uniqueness check (0 skips it). Default 3.
    unique_tol : float
        Largest follower spread (max abs difference) still called unique. Default 1e-4.
    seed : int
        Seed of the random starts and directions. Default 0.
    fallbacks : int
        Ipopt solves (iteration-capped) the deviation check may spend, on the Newton path, on
        points where Newton and its continuation found no follower response; further such points
        count as failed evaluations (reported, and skipped in the maximum). Default 0: at 500x10
        one capped Ipopt homotopy on a point without an equilibrium (a reward of 0, where the
        proportional payment is 0/0) ran for minutes, and such points kept the certificate from
        finishing.
    """

    grid: int = 41
    refine: bool = True
    refine_iter: int = 12
    directions: int = 8
    starts: int = 3
    unique_tol: float = 1e-4
    seed: int = 0
    fallbacks: int = 0

    def __post_init__(self) -> None:
        for name, low in (("grid", 2), ("refine_iter", 1), ("directions", 1), ("starts", 0),
                          ("fallbacks", 0)):
            _check_int(name, getattr(self, name), low)
        if not (isinstance(self.unique_tol, (int, float)) and self.unique_tol > 0):
            raise ValueError(f"unique_tol: must be > 0, got {self.unique_tol!r}")


@dataclass(frozen=True)
class Sweep:
    """One diagonalisation sweep: leader decisions after it, each leader's utility at its own
    solve, the step ``max |x_k - x_{k-1}|`` and the solver iterations it took.

    ``relative_step`` is the step of each decision over its range (``max_i |dx_i| / (hi_i - lo_i)``,
    the range taken as ``max(1, |x_i|)`` when unbounded); ``stationarity`` the largest projected
    gradient of a leader's utility at its own step's answer, ``max_i |P(dV_i/dx_i)|`` (NaN for a
    full-space step; 0 for a one-decision maximum at a kink of ``V_i``, where ``dV_i/dx_i`` changes
    sign within a bracket of relative width ``2e-12``: stationary in Clarke's sense);
    ``accelerated`` whether the sweep started from an Anderson extrapolation.
    """

    index: int
    decisions: tuple[tuple[float, ...], ...]
    utilities: tuple[float, ...]
    step: float
    iterations: int
    relative_step: float = math.nan
    stationarity: float = math.nan
    accelerated: bool = False


@dataclass(frozen=True)
class GameResult:
    """Outcome of a game solve (the solution is loaded into the user's Vars when ``ok``).

    Attributes
    ----------
    ok : bool
        ``status is GameStatus.CONVERGED``.
    status : GameStatus
    message : str
        Why not ok ("" when ok).
    iterations : int
        Ipopt iterations in all (the solve only; the certificate's are not counted).
    sweeps : int
        Diagonalisation sweeps (1 for Nash and bilevel).
    seconds : float
        Wall-clock time of the solve (certificate excluded: see ``timings``).
    complementarity : float
        Final ``max |min(a, b)|`` over the followers' complementarity pairs.
    kkt_residual : KKTResidual
        Followers' KKT residual at the loaded point.
    certificate : Certificate or None
        For bilevel and EPEC solves with ``certify=True``.
    history : tuple of Sweep
        Diagonalisation history (EPEC only).
    homotopy : tuple of HomotopyResult
        Every homotopy run of the solve, in order.
    timings : dict
        Seconds per stage: ``build`` (clone + KKT + reformulation), ``solve``, ``certificate``.
    """

    ok: bool
    status: GameStatus
    message: str
    iterations: int
    sweeps: int
    seconds: float
    complementarity: float
    kkt_residual: KKTResidual
    certificate: Any = None
    history: tuple[Sweep, ...] = ()
    homotopy: tuple[HomotopyResult, ...] = ()
    timings: dict = field(default_factory=dict)


def _expand(blocks: Iterable[Any]) -> list[BlockData]:
    """Blocks given as BlockData or as indexed Blocks (expanded to their elements)."""
    out = []
    for b in blocks:
        if isinstance(b, BlockData):
            out.append(b)
        elif hasattr(b, "is_indexed") and b.is_indexed():
            out.extend(b.values())
        else:
            raise TypeError(f"players: expected Pyomo blocks, got {b!r}")
    return out


@dataclass
class _Leader:
    name: str
    vars: list  # in the transformed model
    objective: Any  # original objective in the transformed model (deactivated)
    lower: np.ndarray = field(default_factory=lambda: np.zeros(0))
    upper: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def values(self) -> np.ndarray:
        return np.array([float(v.value) for v in self.vars])

    def utility(self) -> float:
        """The leader's objective at the current point, as a utility (maximised)."""
        val = float(pyo.value(self.objective.expr))
        return val if self.objective.sense == pyo.maximize else -val


class Game:
    """A game prepared for solving: transformed clone, KKT systems, leaders, solver (internal,
    shared by the solve functions and the certificate)."""

    def __init__(
        self,
        model: BlockData,
        followers: Sequence[BlockData],
        leaders: Sequence[tuple[str, list, Any]],
        mode: Reformulation,
        solver: Any,
        lift: bool,
    ) -> None:
        t0 = time.perf_counter()
        self.mode = mode
        self.solver = solver
        work, memo = clone_with_map(model)
        self.work = work
        followers_w = [memo[id(b)] for b in followers]
        owned: set[int] = set()
        for b in followers_w:
            owned.update(id(v) for v in player_variables(b))
        leader_ids = {id(memo[id(v)]) for _, vs, _ in leaders for v in vs}
        # Vars that are neither a follower's nor a leader's are parameters of everyone.
        for v in work.component_data_objects(pyo.Var, descend_into=True):
            if not v.fixed and id(v) not in owned and id(v) not in leader_ids:
                v.fix()
        self.kkts: list[KKTSystem] = [kkt(b, lift=lift) for b in followers_w]
        self.follower_vars = [v for k in self.kkts for v in k.variables]
        self.follower_mults = [v for k in self.kkts for v in k.block.component_data_objects(pyo.Var)]
        for obj in list(work.component_data_objects(pyo.Objective, active=True, descend_into=True)):
            obj.deactivate()
        _, data = mode.apply(work, clone=False)
        data.var_map = [(v, memo[id(v)]) for v in model.component_data_objects(pyo.Var, descend_into=True)]
        self.data: InverseData = data
        self.leaders: list[_Leader] = []
        for name, uvars, uobj in leaders:
            wvars = [memo[id(v)] for v in uvars]
            wobj = memo[id(uobj)]
            lo = np.array([-math.inf if v.lb is None else float(v.lb) for v in wvars])
            hi = np.array([math.inf if v.ub is None else float(v.ub) for v in wvars])
            # the mode's objective for this leader is created now (the penalty mode adds a
            # penalised copy), before the model is first compiled, so it never forces a recompile
            mode.objective(data, wobj)
            self.leaders.append(_Leader(name, wvars, wobj, lo, hi))
        self.all_vars = list(work.component_data_objects(pyo.Var, descend_into=True))
        for v in self.all_vars:  # an uninitialised Var starts at 0 projected on its bounds
            if v.value is None:
                v.set_value(min(max(0.0, v.lb if v.lb is not None else -math.inf),
                                v.ub if v.ub is not None else math.inf), skip_validation=True)
        self._capped = None
        self._response: FollowerResponse | None = None
        self._response_error: str | None = None
        self.response_options = ResponseOptions()
        # per leader with one decision: the last secant curvature of its utility (the next
        # implicit step's first Newton step)
        self.curvature: dict[int, float | None] = {}
        self.build_seconds = time.perf_counter() - t0

    @property
    def response(self) -> FollowerResponse | None:
        """The Newton follower response (compiled on first use); None when the followers' KKT
        system cannot be written as a square smooth system (the Ipopt path is used then)."""
        if self._response is None and self._response_error is None:
            try:
                self._response = FollowerResponse(self.kkts, [ld.vars for ld in self.leaders],
                                                  [ld.objective for ld in self.leaders], self.response_options)
            except ValueError as err:  # not square, or not smooth (InputError): use Ipopt
                self._response_error = f"{type(err).__name__}: {err}"
        return self._response

    # -- state ------------------------------------------------------------------------------
    def snapshot(self) -> list:
        return [v.value for v in self.all_vars]

    def restore(self, snap: list) -> None:
        for v, x in zip(self.all_vars, snap):
            v.set_value(x, skip_validation=True)

    def fix_leaders(self, values: Sequence[np.ndarray] | None = None) -> None:
        for k, ld in enumerate(self.leaders):
            for j, v in enumerate(ld.vars):
                v.fix(float(values[k][j]) if values is not None else v.value)

    def residual(self) -> KKTResidual:
        """The followers' KKT residual at the current values: from the compiled functions when
        the Newton response exists (tested equal to the Pyomo walk, which costs ~0.5 s at 100x5),
        else by walking the Pyomo expressions (:meth:`epec.kkt.KKTSystem.residual`)."""
        if self._response is not None:
            z, y = self._response.read()
            return self._response.kkt_residual(z, y)
        return self.residual_pyomo()

    def residual_pyomo(self) -> KKTResidual:
        """The followers' KKT residual from the Pyomo expressions, independent of any compilation
        (the lifted aggregates, shared by every follower's system, checked once)."""
        seen: set[int] = set()
        rs = []
        for k in self.kkts:
            rs.append(k.residual(include_lifted=k.lifted is not None and id(k.lifted) not in seen))
            if k.lifted is not None:
                seen.add(id(k.lifted))
        return KKTResidual(
            max((r.stationarity for r in rs), default=0.0),
            max((r.feasibility for r in rs), default=0.0),
            max((r.complementarity for r in rs), default=0.0),
        )

    def respond(self, values: Sequence[np.ndarray] | None, warm: bool = True,
                capped: bool = False) -> HomotopyResult:
        """Followers' Nash equilibrium with every leader fixed at ``values`` (None: current);
        ``capped`` uses the certificate's iteration-capped solver."""
        self.fix_leaders(values)
        return self.mode.solve(self.data, self.capped if capped else self.solver, None, warm=warm)

    @property
    def capped(self) -> Any:
        if self._capped is None:
            self._capped = _CappedSolver(self.solver, CAPPED_MAX_ITER)
        return self._capped


#: Ipopt iterations allowed to one certificate solve: a deviation where the followers have no
#: equilibrium (infeasible, diverging multipliers) must not cost a full max_iter run.
CAPPED_MAX_ITER = 300


class _CappedSolver:
    """The same compiled NLP solved with fewer Ipopt iterations (no recompilation)."""

    def __init__(self, main: Any, max_iter: int) -> None:
        import dataclasses

        from solvers import IpoptSolver

        self.main = main
        self.inner = IpoptSolver(dataclasses.replace(main.options, max_iter=max_iter))

    def solve(self, model: Any, **kwargs: Any) -> Any:
        return self.inner.solve(self.main.compiled(model), **kwargs)


def _make_solver(solver: Any, options: Any) -> Any:
    if solver is not None:
        return solver
    from solvers import IpoptOptions, IpoptSolver

    return IpoptSolver(options=options if options is not None else IpoptOptions())


def _finish(game: Game, status: GameStatus, message: str, iterations: int, sweeps: int,
            t0: float, runs: list, history: tuple = (), certificate: Any = None,
            cert_seconds: float = 0.0) -> GameResult:
    ok = status is GameStatus.CONVERGED
    if ok:
        game.data.load()
    seconds = time.perf_counter() - t0
    return GameResult(
        ok=ok, status=status, message=message, iterations=iterations, sweeps=sweeps,
        seconds=seconds, complementarity=game.data.complementarity(), kkt_residual=game.residual(),
        certificate=certificate, history=history, homotopy=tuple(runs),
        timings={"build": game.build_seconds, "solve": seconds - game.build_seconds - cert_seconds,
                 "certificate": cert_seconds},
    )


def solve_nash(
    model: BlockData,
    players: Sequence[Any],
    mode: Any = "scholtes",
    *,
    lift: bool = True,
    solver: Any = None,
    options: Any = None,
) -> GameResult:
    """Nash equilibrium of ``players``: their KKT systems joined, complementarity via ``mode``.

    Find x with x_i in argmin_i f_i(x_i, x_-i) for every player i (Facchinei & Kanzow, 4OR 5,
    2007): the joint KKT system ``F(x, lambda) = 0, 0 <= a _|_ b >= 0`` under a zero (or the
    mode's penalty) objective. Vars outside every player's block are held fixed.

    Parameters
    ----------
    model : BlockData
        The user's model (not modified except for the loaded solution).
    players : sequence of blocks
        The players (BlockData or indexed Blocks, expanded).
    mode : str, ModeKind or Reformulation, default "scholtes"
    lift : bool, default True
        Lift shared aggregates (see :func:`epec.kkt`).
    solver : solvers.IpoptSolver, optional
        Reuse a solver (and its compiled-model cache); default a new one with ``options``.
    options : solvers.IpoptOptions, optional

    Returns
    -------
    GameResult
    """
    t0 = time.perf_counter()
    game = Game(model, _expand(players), [], make_mode(mode), _make_solver(solver, options), lift)
    run = game.mode.solve(game.data, game.solver, None)
    status = GameStatus.CONVERGED if run.ok else GameStatus.SOLVER_FAILED
    return _finish(game, status, run.message, run.iterations, 1, t0, [run])


def solve_bilevel(
    model: BlockData,
    followers: Sequence[Any],
    mode: Any = "scholtes",
    *,
    lift: bool = True,
    certify: bool = True,
    certificate: CertificateOptions = CertificateOptions(),
    solver: Any = None,
    options: Any = None,
) -> GameResult:
    """Bilevel program: the leader (the model's active objective, over every unfixed Var no
    follower owns) subject to the followers' Nash equilibrium, as one MPEC (Dempe,
    *Foundations of Bilevel Programming*, 2002, ch. 5; Luo, Pang & Ralph, 1996).

    ``min_x F(x, y) s.t. G(x) <= 0, y solves the followers' KKT system``, with the
    complementarity reformulated by ``mode``. Parameters as :func:`solve_nash`, plus
    ``certify`` / ``certificate`` (see :func:`epec.certify`, MODEL.md section 5).
    """
    from .certificate import certify_game as _certify

    t0 = time.perf_counter()
    followers = _expand(followers)
    objs = [o for o in model.component_data_objects(pyo.Objective, active=True, descend_into=True)
            if not any(_owned_by(o, f) for f in followers)]
    if len(objs) != 1:
        raise ValueError(f"solve_bilevel: the leader needs exactly one active Objective outside the followers, found {len(objs)}")
    leader_vars = [v for v in model.component_data_objects(pyo.Var, descend_into=True, sort=True)
                   if not v.fixed and not any(_owned_by(v, f) for f in followers)]
    game = Game(model, followers, [("leader", leader_vars, objs[0])], make_mode(mode),
                _make_solver(solver, options), lift)
    # Start the MPEC from the followers' equilibrium at the initial leader point.
    runs = [game.respond(None, warm=False)]
    for v in game.leaders[0].vars:
        v.unfix()
    ld = game.leaders[0]
    run = game.mode.solve(game.data, game.solver, ld.objective, warm=runs[0].ok)
    runs.append(run)
    iters = sum(r.iterations for r in runs)
    if not run.ok:
        return _finish(game, GameStatus.SOLVER_FAILED, run.message, iters, 1, t0, runs)
    cert, cert_s = None, 0.0
    if certify:
        tc = time.perf_counter()
        cert = _certify(game, certificate)
        cert_s = time.perf_counter() - tc
    return _finish(game, GameStatus.CONVERGED, "", iters, 1, t0, runs, certificate=cert, cert_seconds=cert_s)


class _StepFailed(Exception):
    """The implicit leader step could not find the followers' response at a trial point
    (``point``, None when the failure is not about one point)."""

    def __init__(self, message: str, point: np.ndarray | None = None) -> None:
        super().__init__(message)
        self.point = point


@dataclass
class _State:
    """Numpy state of the implicit path: followers' unknowns ``z`` at inputs ``y``."""

    z: np.ndarray
    y: np.ndarray
    p: np.ndarray


def _implicit_step(game: Game, i: int, state: _State) -> tuple[np.ndarray, _State, HomotopyResult, float]:
    """Leader ``i``'s MPEC in its own decisions: ``max_{x_i in box} V_i(x_i, x_-i, z(x))``.

    ``dV_i/dx_i`` comes from :meth:`FollowerResponse.utility_gradient`; one decision is
    maximised by :func:`_scalar_ascent` (bracket and regula falsi on ``dV_i/dx_i``), several by
    L-BFGS-B (:func:`_box_ascent`). Each trial point's response is warm-started from the last one
    (first-order predictor), then by continuation from the step's start. A trial point without a
    response (e.g. a reward of 0 under the proportional payment, where ``pay = R IoM / total`` is
    0/0) pulls the search back towards the good points, so the leader never needs Ipopt for it;
    the answer must still be stationary for the *original* box. Returns the decisions, the state,
    the run and the projected-gradient norm; raises :class:`_StepFailed`.
    """
    from solvers import SolverStatus

    resp = game.response
    ld = game.leaders[i]
    t0 = time.perf_counter()
    x0 = state.y[resp.leader_pos[i]].copy()
    start = state
    last = {"z": state.z}
    count = {"newton": 0, "evals": 0}
    cache: dict[bytes, tuple[float, np.ndarray, Response, np.ndarray]] = {}

    def evaluate(xi: np.ndarray) -> tuple[float, np.ndarray]:
        key = np.asarray(xi, dtype=float).tobytes()
        if key not in cache:
            y = start.y.copy()
            y[resp.leader_pos[i]] = xi
            # warm from the last trial point (first-order predictor, dF/dx from its gradient),
            # then continuation from the step's start (which ends in a cold solve): a cold retry
            # here too would triple the cost of a point without a response (R = 0 under the
            # proportional payment)
            dF = last["Fx"] @ (np.asarray(xi, dtype=float) - last["x"]) if "Fx" in last else None
            r = resp.follow(last["z"], y, start.p, lu=last.get("lu"), dF=dF, anchor=(start.z, start.y),
                            sensitivity=True)
            count["newton"] += r.iterations
            count["evals"] += 1
            if not r.ok or r.lu is None:
                raise _StepFailed(f"no follower response at {ld.name} = {xi.tolist()} ({r.status.name})",
                                  np.array(xi, dtype=float))
            Fx = resp.system.input_jacobian(r.z, y, start.p, resp.options.mu)[:, resp.leader_pos[i]]
            last.update(z=r.z, x=np.array(xi, dtype=float), lu=r.lu, Fx=Fx)
            v, g = resp.utility_gradient(i, r, y, start.p, Fx=Fx)
            cache[key] = (v, g, r, y)
        v, g, _, _ = cache[key]
        return -v, -g

    lo, hi = ld.lower.copy(), ld.upper.copy()
    v0, g0 = evaluate(x0)
    scale = max(1.0, abs(v0))
    if x0.size == 1:
        x_new, v, g, game.curvature[i], kink = _scalar_ascent(evaluate, x0, v0, g0, lo, hi, 1e-10 * scale,
                                                              game.curvature.get(i))
        opt_message = "scalar ascent"
    else:
        x_new, v, g, opt_message = _box_ascent(evaluate, cache, x0, lo, hi, ld, scale)
        kink = None
    _, _, r, y = cache[x_new.tobytes()]
    # projected gradient on the leader's own box: zero where a bound blocks the ascent direction
    pg = -g.copy()
    pg[(x_new <= ld.lower + 1e-12) & (pg < 0)] = 0.0
    pg[(x_new >= ld.upper - 1e-12) & (pg > 0)] = 0.0
    pg_max = float(np.max(np.abs(pg), initial=0.0))
    if not pg_max <= 1e-6 * scale and kink is not None and kink[0] > 0 > kink[1]:
        # dV/dx changes sign from + to - within 2 _XTOL: a maximum at a kink of V, stationary in
        # Clarke's sense (0 lies between the one-sided derivatives)
        opt_message = f"scalar ascent: maximum at a kink, dV/dx from {kink[0]:.3g} to {kink[1]:.3g}"
        pg_max = 0.0
    if not pg_max <= 1e-6 * scale:
        raise _StepFailed(f"{ld.name}: the ascent stopped at {x_new.tolist()} with projected gradient "
                          f"{pg_max:.3g} ({opt_message})")
    comp = resp.system.natural_residual(r.z, y, start.p)[2]
    run = HomotopyResult(True, SolverStatus.OPTIMAL, count["newton"], time.perf_counter() - t0, comp, -v, (),
                         f"implicit: {count['evals']} response evaluations ({opt_message})")
    return x_new, _State(r.z, y, start.p), run, pg_max


#: relative width of the bracket at which :func:`_scalar_ascent` stops (a maximum at a kink of
#: the utility, a follower entering or leaving, has no root of ``dV/dx`` to converge to)
_XTOL = 1e-12

#: times one implicit step may halve its box around a trial point without a follower response
_MAX_SHRINK = 6


def _box_ascent(evaluate: Any, cache: dict, x0: np.ndarray, lo: np.ndarray, hi: np.ndarray, ld: Any,
                scale: float) -> tuple[np.ndarray, float, np.ndarray, str]:
    """L-BFGS-B on ``-V`` over the box (several decisions); a trial point without a follower
    response halves the box towards the best point so far and restarts. Returns ``(x, -V, -g, message)``."""
    from scipy.optimize import minimize

    bad_lo, bad_hi = np.full_like(lo, -math.inf), np.full_like(hi, math.inf)
    x_start = x0
    for attempt in range(_MAX_SHRINK + 1):
        bounds = list(zip(np.where(np.isfinite(lo), lo, None), np.where(np.isfinite(hi), hi, None)))
        try:
            opt = minimize(evaluate, x_start, jac=True, method="L-BFGS-B", bounds=bounds,
                           options={"ftol": 0.0, "gtol": 1e-10 * scale, "maxiter": 200, "maxls": 40})
        except _StepFailed as err:
            if err.point is None or attempt == _MAX_SHRINK:
                raise
            # keep the half of the segment [best, bad] next to the best point evaluated so far
            best = min((np.frombuffer(k) for k in cache), key=lambda k: -cache[k.tobytes()][0])
            bad = err.point
            low, high = bad < best, bad > best
            bad_lo = np.where(low, np.maximum(bad_lo, bad), bad_lo)
            bad_hi = np.where(high, np.minimum(bad_hi, bad), bad_hi)
            lo = np.where(low, best - 0.5 * (best - bad), lo)
            hi = np.where(high, best + 0.5 * (bad - best), hi)
            x_start = best
            continue
        xo = np.asarray(opt.x, dtype=float)
        _, go = evaluate(xo)
        # stopped on a bound of the shrunk box while ascent points outside it: widen that bound
        # half way towards the failing point and go on from there
        out_lo = (xo <= lo + 1e-12) & (lo > ld.lower) & (go > 0)
        out_hi = (xo >= hi - 1e-12) & (hi < ld.upper) & (go < 0)
        if not (out_lo.any() or out_hi.any()) or attempt == _MAX_SHRINK:
            break
        with np.errstate(invalid="ignore"):  # inf - inf on the sides that did not fail
            lo = np.where(out_lo, bad_lo + 0.5 * (lo - bad_lo), lo)
            hi = np.where(out_hi, bad_hi - 0.5 * (bad_hi - hi), hi)
        x_start = xo
    x_new = np.asarray(opt.x, dtype=float)
    v, g = evaluate(x_new)
    return x_new, v, g, str(opt.message)


def _scalar_ascent(evaluate: Any, x0: np.ndarray, v0: float, g0: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   gtol: float, curvature: float | None = None,
                   max_evals: int = 80) -> tuple[np.ndarray, float, np.ndarray, float | None,
                                              tuple[float, float] | None]:
    """Maximise ``V`` over ``[lo, hi]`` in one decision: bracket a sign change of ``g = dV/dx``,
    then close the bracket by safeguarded secant / tangent-intersection steps.

    ``evaluate(x) -> (-V, -dV/dx)`` as for a minimiser; it raises :class:`_StepFailed` at a point
    without a follower response. Bracketing walks uphill by Newton steps ``x - g / c``, ``c`` the
    secant curvature of the last two points (at first ``curvature``, e.g. the previous step's,
    else a probe of relative size 1e-4); while ``c`` is not negative it jumps half the way to the
    *wall* (the nearest point without a response, else the bound; 4 times the last step when
    unbounded). No step goes more than half the way to the wall; the bound itself is tried after
    two such halvings. Inside a bracket ``g(a) > 0 > g(b)`` (up to the direction) a secant step
    through the last two points is taken when it falls inside and is under half the step before
    last, as in Brent's method (*Algorithms for Minimization without Derivatives*, 1973, ch. 4);
    else the point where the tangents of ``V`` at ``a`` and ``b`` cross, when it lies well inside
    (exact at a kink between two linear pieces); else bisection. Superlinear near a smooth
    maximum, at worst bisection at a kink of ``V`` (a follower entering or leaving; the smoothed
    KKT system turns it into a steep but continuous ``g``). Stops when ``|g| <= gtol``, at a bound where ``g`` points out, or when the bracket is
    narrower than ``2 _XTOL max(1, |x|)``. Returns ``(x, -V, -g, c, kink)``: the point with the
    smallest ``|g|`` (the bracket's side with the larger ``V`` when it closed; the caller checks
    the projected gradient), the last secant curvature, and
    ``kink = (g_left, g_right)``, the derivatives at the two sides of the bracket, when it closed
    on a sign change of ``g`` before ``|g| <= gtol`` (at a maximum at a kink of ``V`` neither is
    small), else None.
    """
    lo_, hi_ = float(lo[0]), float(hi[0])
    evals = 0

    def f(x: float) -> tuple[float, float] | None:
        nonlocal evals
        evals += 1
        try:
            mv, mg = evaluate(np.array([x]))
        except _StepFailed as err:
            if err.point is None:
                raise
            return None
        return -float(mv), -float(mg[0])

    def out(p: tuple[float, float, float], c: float | None, kink: tuple[float, float] | None = None) -> tuple:
        return np.array([p[0]]), -p[1], np.array([-p[2]]), c, kink

    def rounding(u: float, w: float) -> bool:
        return abs(u - w) <= 4e-16 * max(1.0, abs(u), abs(w))

    a = (float(x0[0]), -float(v0), -float(g0[0]))  # (x, V, g)
    c = curvature if curvature is not None and curvature < 0 and math.isfinite(curvature) else None
    if abs(a[2]) <= gtol or (a[2] < 0 and a[0] <= lo_) or (a[2] > 0 and a[0] >= hi_):
        return out(a, c)
    d = 1.0 if a[2] > 0 else -1.0
    bound = hi_ if d > 0 else lo_
    wall, wall_is_bound, halvings = bound, True, 0
    # --- bracketing: uphill until g changes sign (or the bound stops the ascent)
    probe, last_step = 1e-4 * max(1.0, abs(a[0])), 0.0
    while True:
        if c is not None:
            t = a[0] - a[2] / c
        elif last_step > 0:  # no concave curvature yet: expand
            t = a[0] + d * (0.5 * abs(wall - a[0]) if math.isfinite(wall) else 4.0 * last_step)
        else:
            t = a[0] + d * probe
        if math.isfinite(wall) and (not math.isfinite(t) or (t - wall) * d >= 0
                                    or abs(t - a[0]) > 0.5 * abs(wall - a[0])):
            halvings += 1
            t = wall if wall_is_bound and halvings > 2 else a[0] + 0.5 * (wall - a[0])
        elif not math.isfinite(t):
            t = a[0] + d * 4.0 * max(last_step, probe)
        else:
            halvings = 0
        if evals >= max_evals or rounding(t, a[0]):
            return out(a, c)
        r = f(t)
        if r is None:
            wall, wall_is_bound = t, False
            continue
        pt = (t, r[0], r[1])
        if abs(pt[2]) <= gtol or (pt[2] * d > 0 and t == bound):
            return out(pt, c)
        c_new = (pt[2] - a[2]) / (pt[0] - a[0])
        c = c_new if c_new < 0 and math.isfinite(c_new) else None
        if pt[2] * d < 0:
            b = pt
            break
        last_step, a = abs(pt[0] - a[0]), pt
    # --- inside the bracket [a, b]: g(a) d > 0 > g(b) d
    best = min((a, b), key=lambda q: abs(q[2]))
    last, prev = b, a
    older = step = abs(b[0] - a[0])
    while evals < max_evals:
        lo_b, hi_b = min(a[0], b[0]), max(a[0], b[0])
        xtol = _XTOL * max(1.0, abs(best[0]))
        if hi_b - lo_b <= 2.0 * xtol:
            left, right = (a, b) if a[0] < b[0] else (b, a)
            return out(max((a, b), key=lambda q: q[1]), c, (left[2], right[2]))
        t = math.nan
        if last[2] != prev[2]:
            t = last[0] - last[2] * (last[0] - prev[0]) / (last[2] - prev[2])
        # Brent's safeguard: the secant step must lie inside and be under half the step before
        # last, else the tangents' intersection, else bisect; and it moves at least xtol (so a
        # kink ends in a bracket of ~xtol)
        if not (lo_b < t < hi_b) or abs(t - last[0]) >= 0.5 * older:
            # where the tangents of V at a and b cross: exact at a kink between two linear
            # pieces (a follower entering or leaving), the midpoint for a quadratic
            t = (b[1] - a[1] + a[2] * a[0] - b[2] * b[0]) / (a[2] - b[2])
            if not (lo_b + 0.01 * (hi_b - lo_b) < t < hi_b - 0.01 * (hi_b - lo_b)):
                t = 0.5 * (lo_b + hi_b)
        t = min(max(t, lo_b + xtol), hi_b - xtol)
        older, step = step, abs(t - last[0])
        r = f(t)
        if r is None:
            break  # no response between two that have one: leave it to the caller's check
        pt = (t, r[0], r[1])
        if abs(pt[2]) < abs(best[2]):
            best = pt
        if abs(pt[2]) <= gtol:
            break
        if last[2] != pt[2]:
            c_new = (pt[2] - last[2]) / (pt[0] - last[0])
            c = c_new if c_new < 0 and math.isfinite(c_new) else c
        prev, last = last, pt
        if pt[2] * d > 0:
            a = pt
        else:
            b = pt
    return out(best, c)


def _full_space_step(game: Game, i: int, x: list, state: _State | None) -> tuple[HomotopyResult, _State | None]:
    """Leader ``i``'s MPEC through Ipopt on the reformulated model (others fixed at ``x``)."""
    if state is not None:
        game.response.load(state.z)
    game.fix_leaders(x)
    for v in game.leaders[i].vars:
        v.unfix()
    run = game.mode.solve(game.data, game.solver, game.leaders[i].objective, warm=True)
    if state is not None:
        z, y = game.response.read()
        state = _State(z, y, state.p)
    return run, state


def _implicit_response(game: Game, x: Sequence[np.ndarray] | None, state: _State | None,
                       cold: bool = False) -> tuple[HomotopyResult, _State | None]:
    """The followers' equilibrium at leader decisions ``x`` by Newton (Ipopt's homotopy as the
    fallback); the point is written into the transformed model."""
    from solvers import SolverStatus

    resp = game.response
    t0 = time.perf_counter()
    if resp is not None:
        if state is None:
            z, y = resp.read()
            state = _State(z, y, resp.system.read_params())
        y = resp.inputs_at(state.y, x)
        r = resp.solve(state.z, y, state.p, cold=cold)  # a warm solve retries cold itself
        if r.ok:
            resp.load(r.z)
            game.fix_leaders(x)
            comp = resp.system.natural_residual(r.z, y, state.p)[2]
            return (HomotopyResult(True, SolverStatus.OPTIMAL, r.iterations, time.perf_counter() - t0, comp, None, (),
                                   "newton"), _State(r.z, y, state.p))
    run = game.respond(x, warm=not cold)
    if resp is not None and run.ok:
        z, y = resp.read()
        state = _State(z, y, resp.system.read_params())
    return run, state


class _Anderson:
    """Anderson extrapolation (type II, memory ``m``) of a fixed-point map on the stacked leader
    decisions, projected on their boxes; see :func:`solve_epec`."""

    def __init__(self, m: int, lower: Sequence[np.ndarray], upper: Sequence[np.ndarray]) -> None:
        self.m = m
        self.sizes = [len(a) for a in lower]
        self.lo = np.concatenate(lower) if lower else np.zeros(0)
        self.hi = np.concatenate(upper) if upper else np.zeros(0)
        self.xs: list[np.ndarray] = []
        self.gs: list[np.ndarray] = []

    def reset(self) -> None:
        self.xs, self.gs = [], []

    def step(self, x_in: Sequence[np.ndarray], g_out: Sequence[np.ndarray]) -> list[np.ndarray] | None:
        """Record ``T(x_in) = g_out``; the extrapolated next input, or None (use ``g_out``)."""
        x = np.concatenate(x_in) if x_in else np.zeros(0)
        g = np.concatenate(g_out) if g_out else np.zeros(0)
        f = g - x
        if self.xs and np.max(np.abs(f), initial=0.0) > np.max(np.abs(self.gs[-1] - self.xs[-1]), initial=0.0):
            self.reset()  # the residual grew: the extrapolation is not helping, restart it
        self.xs.append(x)
        self.gs.append(g)
        if len(self.xs) > self.m + 1:
            self.xs.pop(0)
            self.gs.pop(0)
        if len(self.xs) < 2:
            return None
        F = np.array([gg - xx for gg, xx in zip(self.gs, self.xs)]).T
        G = np.array(self.gs).T
        dF, dG = np.diff(F, axis=1), np.diff(G, axis=1)
        gamma, *_ = np.linalg.lstsq(dF, f, rcond=1e-12)
        x_new = np.clip(g - dG @ gamma, self.lo, self.hi)
        if not np.all(np.isfinite(x_new)):
            self.reset()
            return None
        return list(np.split(x_new, np.cumsum(self.sizes)[:-1]))


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
    from .certificate import certify_game as _certify

    method = Method(method)
    leader_step = LeaderStep(leader_step)
    if not isinstance(response, ResponseOptions):
        raise ValueError(f"response: must be a ResponseOptions, got {type(response).__name__}")
    if not (isinstance(damping, (int, float)) and 0 < damping <= 1):
        raise ValueError(f"damping: must be in (0, 1], got {damping!r}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol: must be > 0, got {tol!r}")
    _check_int("max_iter", max_iter, 1)
    _check_int("acceleration", acceleration, 0)
    for name, fn in (("callback", callback), ("progress", progress)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name}: must be callable, got {fn!r}")
    t0 = time.perf_counter()
    leaders = _expand(leaders)
    specs = [(b.name, player_variables(b), player_objective(b)) for b in leaders]
    game = Game(model, _expand(followers), specs, make_mode(mode), _make_solver(solver, options), lift)
    game.response_options = response
    implicit = leader_step is LeaderStep.IMPLICIT and game.response is not None
    if implicit:
        game.build_seconds = time.perf_counter() - t0  # the response's compilation is part of the build
    state: _State | None = None
    if implicit:
        first, state = _implicit_response(game, None, None, cold=True)
    else:
        first = game.respond(None, warm=False)
    runs = [first]
    if not runs[0].ok:
        return _finish(game, GameStatus.SOLVER_FAILED, "initial follower equilibrium: " + runs[0].message,
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
    anderson = _Anderson(acceleration, [ld.lower for ld in game.leaders], [ld.upper for ld in game.leaders]) \
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
                    _, base = _implicit_response(game, point, state)
                try:
                    x_i, state_i, run, pg_i = _implicit_step(game, i, base)
                    utils.append(float(run.objective))
                    pgs.append(pg_i)
                    if method is Method.GAUSS_SEIDEL:
                        state = state_i
                except _StepFailed as err:
                    run = None
                    fallback_reason = str(err)
                    fallbacks.append(f"sweep {k}: {err}")
            if run is None:
                run, st = _full_space_step(game, i, point, state if implicit else None)
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
                return _finish(game, GameStatus.SOLVER_FAILED, f"sweep {k}, leader {ld.name}: {run.message}",
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
                acc_run, acc_state = _implicit_response(game, x_acc, state)
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
        final, state = _implicit_response(game, x, state)
    else:
        final = game.respond(x, warm=True)
    runs.append(final)
    iters += final.iterations
    if status is GameStatus.CONVERGED and not final.ok:
        status, message = GameStatus.SOLVER_FAILED, "final follower equilibrium: " + final.message
    cert, cert_s = None, 0.0
    if status is GameStatus.CONVERGED and certify:
        tc = time.perf_counter()
        cert = _certify(game, certificate, progress)
        cert_s = time.perf_counter() - tc
    return _finish(game, status, message, iters, len(history), t0, runs, tuple(history), cert, cert_s)


def certify(
    model: BlockData,
    leaders: Sequence[Any],
    followers: Sequence[Any],
    *,
    certificate: CertificateOptions = CertificateOptions(),
    mode: Any = "scholtes",
    lift: bool = True,
    response: ResponseOptions = ResponseOptions(),
    solver: Any = None,
    options: Any = None,
    progress: Callable[[str, int, int], Any] | None = None,
) -> Any:
    """Certify the leaders' decisions as they stand in ``model``: is this an equilibrium?

    For decisions from anywhere (another solver, a learned pricing policy, a paper's table):
    the followers' equilibrium at those decisions is solved first (Newton on their smoothed KKT
    system from a cold start, the ``mode``'s Ipopt homotopy as the fallback), then the
    certificate of MODEL.md section 5 is computed there, as :func:`solve_epec` does at its own
    answer: the followers' KKT residual, every leader's largest unilateral deviation gain over
    a grid plus refinement (each point at the followers' exact response) and the followers'
    agreement from random starts. A positive ``max_deviation_gain`` measures how far from an
    equilibrium the decisions are; ``best_deviations`` says where each leader would rather be.
    ``model`` is not modified (the work happens on a clone).

    Parameters
    ----------
    model : BlockData
    leaders, followers : sequence of blocks
        As :func:`solve_epec`; the leaders' decision Vars hold the point to certify.
    certificate : CertificateOptions
    mode, lift, response, solver, options, progress
        As :func:`solve_epec` (``progress`` sees the ``"certificate"`` stage only).

    Returns
    -------
    epec.Certificate

    Raises
    ------
    RuntimeError
        The followers have no equilibrium at the leaders' decisions (with the solver's status).
    """
    from .certificate import certify_game

    if not isinstance(certificate, CertificateOptions):
        raise ValueError(f"certificate: must be a CertificateOptions, got {type(certificate).__name__}")
    if not isinstance(response, ResponseOptions):
        raise ValueError(f"response: must be a ResponseOptions, got {type(response).__name__}")
    if progress is not None and not callable(progress):
        raise ValueError(f"progress: must be callable, got {progress!r}")
    leaders = _expand(leaders)
    specs = [(b.name, player_variables(b), player_objective(b)) for b in leaders]
    game = Game(model, _expand(followers), specs, make_mode(mode), _make_solver(solver, options), lift)
    game.response_options = response
    x = [ld.values() for ld in game.leaders]
    run, _ = _implicit_response(game, x, None, cold=True)  # Ipopt's homotopy without a Newton response
    if not run.ok:
        point = {ld.name: [float(t) for t in a] for ld, a in zip(game.leaders, x)}
        raise RuntimeError(f"certify: no follower equilibrium at the leaders' decisions {point} "
                           f"({run.status.name}: {run.message})")
    return certify_game(game, certificate, progress)
