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
from typing import Any, Iterable, Sequence

import numpy as np
import pyomo.environ as pyo
from pyomo.core.base.block import BlockData

from .kkt import KKTResidual, KKTSystem, kkt, player_objective, player_variables
from .reformulation import HomotopyResult, InverseData, Reformulation, clone_with_map, make_mode

__all__ = [
    "Method",
    "GameStatus",
    "Sweep",
    "GameResult",
    "CertificateOptions",
    "solve_nash",
    "solve_bilevel",
    "solve_epec",
]


class Method(str, enum.Enum):
    """Diagonalisation order: each leader against the latest (Gauss-Seidel) or the previous
    sweep's (Jacobi) decisions of the others."""

    GAUSS_SEIDEL = "gauss-seidel"
    JACOBI = "jacobi"


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
    """

    grid: int = 41
    refine: bool = True
    refine_iter: int = 12
    directions: int = 8
    starts: int = 3
    unique_tol: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (("grid", 2), ("refine_iter", 1), ("directions", 1), ("starts", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name}: must be an integer >= {low}, got {v!r}")
        if not (isinstance(self.unique_tol, (int, float)) and self.unique_tol > 0):
            raise ValueError(f"unique_tol: must be > 0, got {self.unique_tol!r}")


@dataclass(frozen=True)
class Sweep:
    """One diagonalisation sweep: leader decisions after it, each leader's utility at its own
    solve, the step ``max |x_k - x_{k-1}|`` and the solver iterations it took."""

    index: int
    decisions: tuple[tuple[float, ...], ...]
    utilities: tuple[float, ...]
    step: float
    iterations: int


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
    user_vars: list
    vars: list  # in the transformed model
    objective: Any  # original objective in the transformed model (deactivated)
    solve_objective: Any  # what the mode hands to the solver
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
        self.user = model
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
            self.leaders.append(_Leader(name, list(uvars), wvars, wobj, mode.objective(data, wobj), lo, hi))
        self.all_vars = list(work.component_data_objects(pyo.Var, descend_into=True))
        for v in self.all_vars:  # an uninitialised Var starts at 0 projected on its bounds
            if v.value is None:
                v.set_value(min(max(0.0, v.lb if v.lb is not None else -math.inf),
                                v.ub if v.ub is not None else math.inf), skip_validation=True)
        self._capped = None
        self.build_seconds = time.perf_counter() - t0

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
        rs = [k.residual() for k in self.kkts]
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

    return IpoptSolver(options=options if options is not None else IpoptOptions(tol=1e-8, max_iter=3000))


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
    ``certify`` / ``certificate`` (see :func:`epec.certify`).
    """
    from .certificate import certify as _certify

    t0 = time.perf_counter()
    followers = _expand(followers)
    objs = [o for o in model.component_data_objects(pyo.Objective, active=True, descend_into=True)
            if not any(_inside(o, f) for f in followers)]
    if len(objs) != 1:
        raise ValueError(f"solve_bilevel: the leader needs exactly one active Objective outside the followers, found {len(objs)}")
    leader_vars = [v for v in model.component_data_objects(pyo.Var, descend_into=True, sort=True)
                   if not v.fixed and not any(_inside(v, f) for f in followers)]
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


def _inside(component: Any, block: BlockData) -> bool:
    b = component.parent_block()
    while b is not None:
        if b is block:
            return True
        b = b.parent_block()
    return False


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
) -> GameResult:
    """EPEC by diagonalisation: each leader in turn solves its MPEC, the others held fixed.

    Leader i: ``max_{x_i} V_i(x_i, x_-i, y) s.t. y solves the followers' KKT system``, others'
    decisions fixed; update ``x_i <- x_i + damping (x_i^new - x_i)``; stop when
    ``max |x^k - x^{k-1}| <= tol`` (Su 2005, ch. 3; Hu & Ralph, Oper. Res. 55(5), 2007).
    The transformed clone is built once; each MPEC re-solves it by fixing/unfixing leader Vars
    and switching the objective, so the NLP is compiled once.

    Parameters
    ----------
    model : BlockData
    leaders, followers : sequence of blocks
        Each leader block holds its objective and its decision Vars; followers as in
        :func:`solve_nash`.
    method : Method or str, default "gauss-seidel"
    mode : str, ModeKind or Reformulation, default "scholtes"
    damping : float in (0, 1], default 1.0
    tol : float, default 1e-6
        On the max change of leader decisions over a sweep.
    max_iter : int, default 50
        Sweeps; reaching it gives ``GameStatus.MAX_ITER``.
    lift, certify, certificate, solver, options
        As :func:`solve_bilevel`.

    Returns
    -------
    GameResult
        ``status`` CONVERGED, MAX_ITER, CYCLING or SOLVER_FAILED; ``history`` per sweep. The
        point loaded into the model on success is the followers' equilibrium at the final
        leader decisions.
    """
    from .certificate import certify as _certify

    method = Method(method)
    if not (isinstance(damping, (int, float)) and 0 < damping <= 1):
        raise ValueError(f"damping: must be in (0, 1], got {damping!r}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol: must be > 0, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter: must be an integer >= 1, got {max_iter!r}")
    t0 = time.perf_counter()
    leaders = _expand(leaders)
    specs = [(b.name, player_variables(b), player_objective(b)) for b in leaders]
    game = Game(model, _expand(followers), specs, make_mode(mode), _make_solver(solver, options), lift)
    runs = [game.respond(None, warm=False)]
    if not runs[0].ok:
        return _finish(game, GameStatus.SOLVER_FAILED, "initial follower equilibrium: " + runs[0].message,
                       runs[0].iterations, 0, t0, runs)
    x = [ld.values() for ld in game.leaders]
    seen: list[list[np.ndarray]] = [[a.copy() for a in x]]
    history: list[Sweep] = []
    iters = runs[0].iterations
    status, message = GameStatus.MAX_ITER, f"no convergence to tol {tol:g} in {max_iter} sweeps"
    for k in range(1, max_iter + 1):
        prev = [a.copy() for a in x]
        new = [a.copy() for a in x]
        utils = []
        sweep_iters = 0
        for i, ld in enumerate(game.leaders):
            others = x if method is Method.GAUSS_SEIDEL else prev
            game.fix_leaders([others[j] if j != i else others[i] for j in range(len(game.leaders))])
            for v in ld.vars:
                v.unfix()
            run = game.mode.solve(game.data, game.solver, ld.objective, warm=True)
            runs.append(run)
            sweep_iters += run.iterations
            if not run.ok:
                iters += sweep_iters
                return _finish(game, GameStatus.SOLVER_FAILED, f"sweep {k}, leader {ld.name}: {run.message}",
                               iters, k, t0, runs, tuple(history))
            utils.append(ld.utility())
            step_i = prev[i] + damping * (ld.values() - prev[i]) if method is Method.JACOBI else \
                x[i] + damping * (ld.values() - x[i])
            if method is Method.GAUSS_SEIDEL:
                x[i] = step_i
            new[i] = step_i
        x = new
        iters += sweep_iters
        step = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(x, prev))
        history.append(Sweep(k, tuple(tuple(float(t) for t in a) for a in x), tuple(utils), step, sweep_iters))
        if step <= tol:
            status, message = GameStatus.CONVERGED, ""
            break
        # An earlier iterate (not the last one) revisited: the sweeps go round in a cycle.
        if any(max(float(np.max(np.abs(a - b))) for a, b in zip(x, old)) <= tol for old in seen[:-1]):
            status, message = GameStatus.CYCLING, f"sweep {k} repeats an earlier iterate (step {step:.3g})"
            break
        seen.append([a.copy() for a in x])
    # The loaded point: the followers' equilibrium at the final leader decisions.
    final = game.respond(x, warm=True)
    runs.append(final)
    iters += final.iterations
    if status is GameStatus.CONVERGED and not final.ok:
        status, message = GameStatus.SOLVER_FAILED, "final follower equilibrium: " + final.message
    cert, cert_s = None, 0.0
    if status is GameStatus.CONVERGED and certify:
        tc = time.perf_counter()
        cert = _certify(game, certificate)
        cert_s = time.perf_counter() - tc
    if status is not GameStatus.CONVERGED:
        # A failed run still exposes where it stopped; nothing is loaded into the user model.
        pass
    return _finish(game, status, message, iters, len(history), t0, runs, tuple(history), cert, cert_s)
