"""A game prepared for solving: the user's model cloned once, the followers' KKT systems added
(:func:`epec.kkt`), the complementarity reformulated by a mode, the leaders' decisions and
objectives located in the clone, and the solver. Shared by the Nash, bilevel and EPEC solves and
by the certificate."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pyomo.environ as pyo
from pyomo.core.base.block import BlockData

from .constraints import (GameStructureError, LeaderConstraints, coupling_broken, leader_constraints,
                          substitute_helpers)
from .kkt import KKTResidual, KKTSystem, kkt, player_objective, player_variables
from .multipliers import check_multipliers
from .modes import make_mode
from .reformulation import HomotopyResult, InverseData, Reformulation, clone_with_map
from .response import FollowerResponse, ResponseOptions
from .results import GameResult, GameStatus

__all__ = ["Game", "Workspace", "leaders_game", "expand_players", "make_solver", "finish", "CAPPED_MAX_ITER"]


def expand_players(blocks: Iterable[Any]) -> list[BlockData]:
    """Blocks given as BlockData or as indexed Blocks (expanded to their elements).

    A deactivated block sits out: it is no player (``models.build_game`` deactivates an MU
    without data for any MSP, whose allocation is fixed at 0 and who has nothing to decide).
    """
    out = []
    for b in blocks:
        if isinstance(b, BlockData):
            out.append(b)
        elif hasattr(b, "is_indexed") and b.is_indexed():
            out.extend(b.values())
        else:
            raise TypeError(f"players: expected Pyomo blocks, got {b!r}")
    return [b for b in out if b.active]


@dataclass
class _Leader:
    name: str
    vars: list  # in the transformed model
    objective: Any  # original objective in the transformed model (deactivated)
    lower: np.ndarray = field(default_factory=lambda: np.zeros(0))
    upper: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: the leader's general constraints (several decisions, or nonlinear), None without any
    constraints: LeaderConstraints | None = None
    #: all of the leader's own constraints (for the certificate's feasibility check), or None
    own: LeaderConstraints | None = None

    def broken(self, x: np.ndarray, tol: float) -> list[str]:
        """One line per own constraint broken at ``x`` by more than ``tol`` (scaled)."""
        return [] if self.own is None else self.own.broken(x, tol)

    def admissible(self, x: np.ndarray) -> bool:
        """``x`` keeps the leader's general constraints (its box is the caller's)."""
        return self.constraints is None or self.constraints.feasible(x)

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
        coupling: bool = False,
    ) -> None:
        t0 = time.perf_counter()
        self.mode = mode
        self.solver = solver
        work, memo = clone_with_map(model)
        self.work = work
        # the user's mutable Params and their clones (:meth:`refresh`)
        self.param_map = [(p, memo[id(p)]) for p in model.component_data_objects(pyo.Param, descend_into=True)
                          if p.parent_component().mutable and id(p) in memo]
        followers_w = [memo[id(b)] for b in followers]
        owned: set[int] = set()
        for b in followers_w:
            owned.update(id(v) for v in player_variables(b))
        leader_ids = {id(memo[id(v)]) for _, vs, _ in leaders for v in vs}
        # the placeholders of epec.multiplier: bound to their constraint's multiplier by the KKT
        # system of the follower that owns it (refused here, by name, when no follower does)
        owned.update(id(p) for p, _ in check_multipliers(work, followers_w))
        # helper Vars (a price p == a - Q on no player's block) are replaced by their definition;
        # with leaders, a non-player Var some non-follower constraint uses otherwise is refused
        self.helpers = substitute_helpers(work, followers_w, owned | leader_ids, strict=bool(leaders))
        # each remaining constraint outside the followers' blocks is one leader's (shared and
        # coupling constraints are refused here, naming them)
        own, self.coupling = leader_constraints(
            work, followers_w, owned, [(name, [memo[id(v)] for v in vs]) for name, vs, _ in leaders],
            coupling=coupling) if leaders else ([], [])
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
        for k, (name, uvars, uobj) in enumerate(leaders):
            wvars = [memo[id(v)] for v in uvars]
            wobj = memo[id(uobj)]
            lo = np.array([-math.inf if v.lb is None else float(v.lb) for v in wvars])
            hi = np.array([math.inf if v.ub is None else float(v.ub) for v in wvars])
            cons = None
            if own and own[k]:
                # constraints linear in one decision (q <= 5) tighten its bounds; the others
                # are kept by the constrained leader step and the certificate's filter
                cons = LeaderConstraints(name, wvars, own[k])
                lo, hi = np.maximum(lo, cons.lower), np.minimum(hi, cons.upper)
                if np.any(lo > hi):
                    j = int(np.flatnonzero(lo > hi)[0])
                    raise GameStructureError(
                        f"leader {name}: its constraints ({', '.join(c.name for c in own[k])}) and bounds leave "
                        f"{wvars[j].name} no value (lower {lo[j]:.6g} > upper {hi[j]:.6g})")
            # the mode's objective for this leader is created now (the penalty mode adds a
            # penalised copy), before the model is first compiled, so it never forces a recompile
            mode.objective(data, wobj)
            self.leaders.append(_Leader(name, wvars, wobj, lo, hi,
                                        cons if cons is not None and cons.general.size else None, cons))
        self.all_vars = list(work.component_data_objects(pyo.Var, descend_into=True))
        for v in self.all_vars:  # an uninitialised Var starts at 0 projected on its bounds
            if v.value is None:
                v.set_value(min(max(0.0, v.lb if v.lb is not None else -math.inf),
                                v.ub if v.ub is not None else math.inf), skip_validation=True)
        self._capped = None
        self._response: FollowerResponse | None = None
        self._response_error: str | None = None
        self.response_options = ResponseOptions()
        #: optional ``follower_start(decisions, rng) -> [(user Var, value), ...]`` (or a
        #: ComponentMap): a start for the followers' variables (see :func:`epec.solve_epec`)
        self.follower_start: Any = None
        #: optional ``batch_response(points) -> (utilities (B, L), solved (B,))``: every leader's
        #: utility at the followers' equilibrium of each decision profile of a batch (see
        #: :func:`epec.solve_epec`); the certificate's deviation scan uses it
        self.batch_response: Any = None
        #: optional ``batch_starts(decisions, rng, count) -> [hint or None, ...]``: ``count`` random
        #: starts for the followers at once, each as :attr:`follower_start` gives one (see
        #: :func:`epec.solve_epec`); the certificate's uniqueness check uses it. Its optional
        #: deferred form, attributes ``draw`` and ``solve_many``: :meth:`draw_batch_starts`
        self.batch_starts: Any = None
        self._start_index: dict[int, int] | None = None
        # per leader with one decision: the last secant curvature of its utility (the next
        # implicit step's first Newton step)
        self.curvature: dict[int, float | None] = {}
        self._utilities: Any = None  # the followers' utilities compiled (follower_utilities)
        self._utility_calls = 0
        self.build_seconds = time.perf_counter() - t0

    def follower_utilities(self) -> list[float] | None:
        """Every follower's utility (its objective, maximised) at the model's current values
        through one compiled function, built at the second call (a game prepared once and
        visited again, a sweep's path: walking the followers' expressions took 2.5 ms of a
        point's 30 on ``default``); None at the first call, where the caller walks them."""
        if self._utilities is None:
            self._utility_calls += 1
            if self._utility_calls < 2:
                return None
            from solvers import compile_equations

            system = compile_equations([], outputs=[k.objective.expr for k in self.kkts], name="follower utilities")
            signs = np.array([1.0 if k.objective.sense == pyo.maximize else -1.0 for k in self.kkts])
            self._utilities = (system, signs)
        system, signs = self._utilities
        return (signs * system.outputs(np.zeros(0), system.read_inputs(), system.read_params())[0]).tolist()

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

    def hinted_start(self, z: np.ndarray, x: Sequence[np.ndarray] | None,
                     rng: np.random.Generator | None = None) -> np.ndarray | None:
        """``z`` with the followers' variables set from :attr:`follower_start` at decisions ``x``
        (None without a hint, a response, or decisions); with ``rng``, the hint's random start."""
        if self.follower_start is None or self._response is None or x is None:
            return None
        return self._hinted(z, self.follower_start([np.asarray(a, dtype=float) for a in x], rng))

    def batch_hinted_starts(self, z: np.ndarray, x: Sequence[np.ndarray] | None, rng: np.random.Generator,
                            count: int) -> list[np.ndarray | None]:
        """``count`` copies of ``z``, each with the followers' variables set from one of the random
        starts :attr:`batch_starts` gives at decisions ``x`` in one call, as :meth:`hinted_start`
        sets them; None for a start without a hint (all None without the hook, a response, or
        decisions)."""
        if self.batch_starts is None or self._response is None or x is None or count <= 0:
            return [None] * max(0, count)
        return self.hinted_starts(z, self.batch_starts([np.asarray(a, dtype=float) for a in x], rng, count), count)

    def draw_batch_starts(self, x: Sequence[np.ndarray] | None, rng: np.random.Generator, count: int) -> Any:
        """The deferred form of :meth:`batch_hinted_starts`: the random draws of :attr:`batch_starts`
        at decisions ``x``, made now from ``rng`` (the same draws in the same order) and left
        unsolved, ``batch_starts.draw(decisions, rng, count)``; solve it with
        ``batch_starts.solve_many([request, ...])`` (several requests in one call, e.g.
        :func:`epec.scenario.solve_start_requests`) and pass its hints to :meth:`hinted_starts`.
        None (use :meth:`batch_hinted_starts`) where the hook has no ``draw`` or ``solve_many``, or there is no
        response, decisions or start."""
        draw = getattr(self.batch_starts, "draw", None)
        if draw is None or getattr(self.batch_starts, "solve_many", None) is None:
            return None
        if self._response is None or x is None or count <= 0:
            return None
        return draw([np.asarray(a, dtype=float) for a in x], rng, count)

    def hinted_starts(self, z: np.ndarray, hints: Sequence[Any], count: int) -> list[np.ndarray | None]:
        """``count`` copies of ``z``, each with the followers' variables set from one of the hints
        :attr:`batch_starts` gave (as :meth:`hinted_start` sets them); None for a start without one."""
        hints = list(hints)
        if len(hints) != count:
            raise ValueError(f"batch_starts: returned {len(hints)} starts, expected {count}")
        return [self._hinted(z, hint) for hint in hints]

    def _hinted(self, z: np.ndarray, hint: Any) -> np.ndarray | None:
        """A copy of ``z`` with the followers' variables that ``hint`` names (``[(user Var,
        value), ...]`` or a ComponentMap) set to its finite values; None without a hint."""
        if hint is None:
            return None
        if self._start_index is None:
            pos = {id(v): k for k, v in enumerate(self._response.system.unknowns)}
            self._start_index = {id(u): pos[id(w)] for u, w in self.data.var_map if id(w) in pos}
        z = np.array(z, dtype=float)
        for var, value in (hint.items() if hasattr(hint, "items") else hint):
            k = self._start_index.get(id(var))
            if k is not None and math.isfinite(float(value)):
                z[k] = float(value)
        return z

    def coupling_broken(self, tol: float) -> list[str]:
        """The coupling constraints ``G(x, y) <= 0`` (:func:`epec.solve_bilevel`) broken at the
        model's current values, one line each."""
        return coupling_broken(self.coupling, tol) if self.coupling else []

    def sync_helpers(self) -> None:
        """Each substituted helper Var set to its definition's value at the current point."""
        for v, expr in self.helpers:
            v.set_value(pyo.value(expr, exception=False), skip_validation=True)

    def feasible_start(self, i: int, x: np.ndarray) -> np.ndarray:
        """Leader ``i``'s decision ``x`` in its box and, when it has general constraints, moved
        to the nearest point that keeps them (a start, a random profile)."""
        ld = self.leaders[i]
        x = np.clip(np.asarray(x, dtype=float), ld.lower, ld.upper)
        return x if ld.constraints is None else ld.constraints.project(x, ld.lower, ld.upper)

    def refresh(self) -> None:
        """Take the user model's current numbers into the prepared game: every mutable Param's
        value, every Var's value and bounds, and the leaders' boxes from them (a :class:`Workspace`
        reusing this game for a model whose Params moved). The compiled functions read Params
        and bounds at every call, so nothing is compiled again. Leaders with constraints of their
        own are refused (their boxes are derived from the constraints' numbers once)."""
        if any(ld.own is not None for ld in self.leaders):
            raise GameStructureError("a prepared game with leader constraints cannot be refreshed: build it again")
        for user, work in self.param_map:
            if work.value != user.value:  # a sweep moves a few of them: the rest are not written again
                work.set_value(user.value)
        for user, work in self.data.var_map:
            lb, ub = user.lb, user.ub
            if work.lb != lb:
                work.setlb(lb)
            if work.ub != ub:
                work.setub(ub)
            if user.value is not None:
                work.set_value(user.value, skip_validation=True)
        for ld in self.leaders:
            ld.lower = np.array([-math.inf if v.lb is None else float(v.lb) for v in ld.vars])
            ld.upper = np.array([math.inf if v.ub is None else float(v.ub) for v in ld.vars])
        self.curvature = {}

    def state(self) -> tuple:
        """Everything :meth:`refresh` takes in, as the prepared game holds it now: the mutable
        Params' values, the Vars' values and bounds, the leaders' boxes (:meth:`set_state`)."""
        return ([w.value for _, w in self.param_map], self.snapshot(), [(v.lb, v.ub) for v in self.all_vars],
                [(ld.lower.copy(), ld.upper.copy()) for ld in self.leaders])

    def set_state(self, state: tuple) -> None:
        """Back to a :meth:`state` (a path of points certified together visits each again)."""
        params, snap, bounds, boxes = state
        for (_, w), value in zip(self.param_map, params):
            if w.value != value:
                w.set_value(value)
        for v, (lb, ub) in zip(self.all_vars, bounds):
            if v.lb != lb:
                v.setlb(lb)
            if v.ub != ub:
                v.setub(ub)
        self.restore(snap)
        for ld, (lo, hi) in zip(self.leaders, boxes):
            ld.lower, ld.upper = lo.copy(), hi.copy()

    # -- state ------------------------------------------------------------------------------
    def snapshot(self) -> list:
        return [v.value for v in self.all_vars]

    def restore(self, snap: list) -> None:
        for v, x in zip(self.all_vars, snap):
            v.set_value(x, skip_validation=True)

    def fix_leaders(self, values: Sequence[np.ndarray] | None = None) -> None:
        """Fix every leader's decisions at ``values`` (None: their current values), projected on
        their bounds (a decision from a solver or an extrapolation can be one rounding outside)."""
        for k, ld in enumerate(self.leaders):
            for j, v in enumerate(ld.vars):
                x = float(values[k][j]) if values is not None else v.value
                if x is not None:
                    x = min(max(x, ld.lower[j]), ld.upper[j])
                v.fix(x)

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


def make_solver(solver: Any, options: Any) -> Any:
    if solver is not None:
        return solver
    from solvers import IpoptOptions, IpoptSolver

    return IpoptSolver(options=options if options is not None else IpoptOptions())


def leaders_game(model: BlockData, leaders: Sequence[Any], followers: Sequence[Any], mode: Any, solver: Any,
                 options: Any, lift: bool, response: ResponseOptions) -> Game:
    """The :class:`Game` of leader blocks (each holding its objective and decision Vars) over
    ``followers``, as :func:`epec.solve_epec` and :func:`epec.certify` build it."""
    specs = [(b.name, player_variables(b), player_objective(b)) for b in expand_players(leaders)]
    game = Game(model, expand_players(followers), specs, make_mode(mode), make_solver(solver, options), lift)
    game.response_options = response
    return game


class Workspace:
    """The prepared game of :func:`epec.solve_epec` kept between solves of one model: the clone,
    the followers' KKT systems, the reformulation and everything compiled from them are built
    at the first solve and reused while the model, its players and the solve's structural options
    stay the same, with the model's current Param values, Var values and bounds taken in
    (:meth:`Game.refresh`). For a sequence of solves of one game whose numbers are mutable Params
    (a sweep's points: :func:`models.build_game` with ``parametric=True``). The answers are those
    of a fresh solve; the multipliers start from the previous solve's values.

    Attributes
    ----------
    game : Game or None
        The prepared game (None before the first solve).
    builds, reuses : int
        How many solves built the game, and how many reused it.
    scenario_model : pyomo model or None
        :func:`epec.solve_scenario`'s parametric game, kept for the next scenario of its structure.
    """

    def __init__(self) -> None:
        self.game: Game | None = None
        self.key: tuple | None = None
        self._held: tuple = ()  # the objects whose ids make the key (kept alive: ids stay unique)
        self.builds = 0
        self.reuses = 0
        self.scenario_model: Any = None

    def prepared(self, key: tuple, build: Any, held: tuple = ()) -> Game:
        """The game for ``key`` (refreshed), or ``build()``'s, kept with ``held`` (the objects
        whose ids ``key`` holds)."""
        if self.game is not None and self.key == key:
            self.game.refresh()
            self.reuses += 1
            return self.game
        self.game, self.key, self._held = build(), key, held
        self.builds += 1
        return self.game


def finish(game: Game, status: GameStatus, message: str, iterations: int, sweeps: int,
           t0: float, runs: list, history: tuple = (), certificate: Any = None,
           cert_seconds: float = 0.0, **extra: Any) -> GameResult:
    """The :class:`GameResult` of a solve; the point is loaded into the user's Vars when the
    solve stopped at one (``status.stopped``). ``extra``: ``moves``, ``cycle``, ``starts``."""
    if status.stopped:
        game.sync_helpers()
        game.data.load()
    seconds = time.perf_counter() - t0
    return GameResult(
        ok=status is GameStatus.CONVERGED, status=status, message=message, iterations=iterations, sweeps=sweeps,
        seconds=seconds, complementarity=game.data.complementarity(), kkt_residual=game.residual(),
        certificate=certificate, history=history, homotopy=tuple(runs),
        timings={"build": game.build_seconds, "solve": seconds - game.build_seconds - cert_seconds,
                 "certificate": cert_seconds},
        **extra,
    )
