"""Whose is each constraint of a game outside the followers' blocks (issue 15).

A follower's constraints are those declared on its block (they enter its KKT system). Every
other active constraint is sorted once, on the transformed clone, by the unfixed Vars it uses:

- a *leader's constraint* ``lo <= g(x_i) <= up``: it uses the decisions of exactly one leader
  ``i`` (and fixed Vars or Params). Declared on that leader's block or at model level, it belongs
  to that leader: the leader steps, the full-space MPEC, the global moves and the certificate's
  deviation search all keep to it (:class:`LeaderConstraints`). A constraint linear in one
  decision only (``q <= 5``) tightens that decision's bounds; any other (several decisions, or
  nonlinear) is a *general* one, kept by a constrained leader step and a filtered deviation search;
- a *shared constraint*: it uses the decisions of two leaders or more. Refused
  (:class:`GameStructureError` naming it): a generalised Nash equilibrium needs a convention for
  how the leaders share its multiplier, and none is implemented;
- a *coupling constraint* ``G(x, y) <= 0``: it uses a leader's decisions (or none) and a
  follower's variables. :func:`epec.solve_bilevel` keeps it (its MPEC holds it, and the
  certificate admits only deviations ``x'`` with ``G(x', y(x')) <= 0`` at the followers'
  response); :func:`epec.solve_epec` refuses it: its implicit leader steps see the followers
  only through their response, and cannot keep such a constraint;
- a *helper variable*: a Var on no player's block, defined by an equality linear in it (a price
  ``p == a - Q``). It is substituted by its definition everywhere (:func:`substitute_helpers`)
  and its value is written back with the answer; a Var on no player's block that a non-follower
  constraint uses without defining it is refused. A Var on no player's block that no such
  constraint uses stays what it always was: a parameter of every player.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pyomo.environ as pyo
from pyomo.core.base.block import BlockData
from pyomo.core.expr.visitor import identify_variables, replace_expressions
from pyomo.repn import generate_standard_repn

__all__ = ["GameStructureError", "LeaderConstraints", "substitute_helpers", "leader_constraints",
           "helper_candidates", "follower_helpers", "coupling_broken"]


class GameStructureError(ValueError):
    """A constraint or Var the game cannot honour (a shared or coupling constraint, a helper
    Var without a definition); the message names it and says why, in one line."""


def _unfixed(expr: Any) -> list:
    return list(identify_variables(expr, include_fixed=False))


def _non_follower_constraints(model: BlockData, followers: Sequence[BlockData]) -> list:
    """The active constraints on no follower's block (one walk up each constraint's parents:
    ``owned_by`` per follower would cost constraints x followers, 250k walks at 500x10)."""
    fids = {id(f) for f in followers}
    out = []
    for c in model.component_data_objects(pyo.Constraint, active=True, descend_into=True):
        b = c.parent_block()
        while b is not None and id(b) not in fids:
            b = b.parent_block()
        if b is None:
            out.append(c)
    return out


def _definition(c: Any, v: Any) -> Any | None:
    """``v``'s value from the equality ``c`` when ``c`` is linear in ``v`` with a nonzero
    constant coefficient: ``v = (rhs - rest) / a`` for ``a v + rest == rhs``; else None."""
    repn = generate_standard_repn(c.body, compute_values=False, quadratic=False)
    if any(w is v for w in repn.nonlinear_vars or ()):
        return None
    coef, rest = None, [repn.constant]
    for a, w in zip(repn.linear_coefs, repn.linear_vars):
        if w is v:
            coef = a
        else:
            rest.append(a * w)
    if coef is None or not math.isfinite(float(pyo.value(coef))) or float(pyo.value(coef)) == 0.0:
        return None
    if repn.nonlinear_expr is not None:
        rest.append(repn.nonlinear_expr)
    return (pyo.value(c.upper) - sum(rest)) / coef


def _defined_side(c: Any) -> Any | None:
    """The Var ``v`` of an equality written ``v == expr`` (or ``expr == v``), else None."""
    args = getattr(c.expr, "args", ())
    if len(args) != 2:
        return None
    for side, other in ((args[0], args[1]), (args[1], args[0])):
        if getattr(side, "is_variable_type", lambda: False)() and \
                not any(w is side for w in identify_variables(other, include_fixed=True)):
            return side
    return None


def helper_candidates(model: BlockData, followers: Sequence[BlockData], players: set[int]) -> list:
    """The unfixed Vars of ``model`` outside every player's decisions (ids in ``players``) that
    an active constraint outside the followers' blocks uses: helpers or refused Vars."""
    seen: dict[int, Any] = {}
    for c in _non_follower_constraints(model, followers):
        for v in _unfixed(c.body):
            if id(v) not in players:
                seen.setdefault(id(v), v)
    return list(seen.values())


def substitute_helpers(model: BlockData, followers: Sequence[BlockData], players: set[int],
                       strict: bool) -> list[tuple[Any, Any]]:
    """Substitute every helper Var of ``model`` (in place) by its definition.

    A helper is an unfixed Var outside every player's decisions (``players``: their ids) with an
    active equality outside the followers' blocks that is linear in it and whose other such Vars
    are helpers defined before it (chains ``p == a - Q``, ``Q == q_1 + q_2`` resolve in order).
    Its definition replaces it in every constraint, objective and named Expression; the
    definition is deactivated and the Var fixed. ``strict``: a non-player Var that a constraint
    outside the followers' blocks still uses is refused (:class:`GameStructureError`), as in a
    game with leaders, where it would otherwise be held fixed as a parameter of a constraint
    meant to move with the players (a price that never follows the quantities).

    Returns ``[(Var, expression)]``: each helper and its definition in players' variables (and
    parameters), to write the helper's value back (:meth:`epec.game.Game.sync_helpers`).
    """
    candidates = {id(v): v for v in helper_candidates(model, followers, players)}
    if not candidates:
        return []
    equalities = [c for c in _non_follower_constraints(model, followers) if c.equality]
    defined: dict[int, tuple[Any, Any, Any]] = {}  # id(var) -> (var, constraint, expression)
    progress = True
    while progress:
        progress = False
        for c in equalities:
            if any(c is d for _, d, _ in defined.values()):
                continue
            free = [v for v in _unfixed(c.body) if id(v) in candidates and id(v) not in defined]
            if len(free) != 1:
                continue
            expr = _definition(c, free[0])
            if expr is not None:
                defined[id(free[0])] = (free[0], c, expr)
                progress = True
    # resolve the chains in definition order: each expression in players' variables only
    resolved: dict[int, Any] = {}
    out = []
    for key, (v, c, expr) in defined.items():
        e = replace_expressions(expr, resolved, descend_into_named_expressions=True,
                                remove_named_expressions=False)
        resolved[key] = e
        out.append((v, e))
        c.deactivate()
    if resolved:
        _replace_everywhere(model, resolved)
        for v, e in out:
            v.set_value(pyo.value(e, exception=False), skip_validation=True)
            v.fix()
    if strict:
        for c in _non_follower_constraints(model, followers):
            for v in _unfixed(c.body):
                if id(v) in candidates:
                    raise GameStructureError(
                        f"Var {v.name} is declared on no leader's or follower's block, and constraint {c.name} "
                        f"uses it without defining it (an equality linear in it, {v.name} == f(others)): "
                        f"declare {v.name} on the block of the player who chooses it, write it as a pyo.Expression, "
                        f"or fix it if it is a parameter")
    return out


def follower_helpers(model: BlockData, followers: Sequence[BlockData], candidates: Sequence[Any]) -> set[int]:
    """Of ``candidates`` (a bilevel leader's Vars: every unfixed Var on no follower's block), the
    ids of those defined by the followers: an equality outside the followers' blocks, linear in
    the Var, whose other unfixed Vars include a follower's variable or such a helper (a price
    ``p == a - Q(y)``). They are helpers, not the leader's decisions."""
    fids = {id(v) for f in followers for v in f.component_data_objects(pyo.Var, descend_into=True) if not v.fixed}
    cand = {id(v) for v in candidates}
    helpers: set[int] = set()
    equalities = [c for c in _non_follower_constraints(model, followers) if c.equality]
    progress = True
    used: set[int] = set()  # an equality defines one Var
    while progress:
        progress = False
        for c in equalities:
            if id(c) in used:
                continue
            vs = _unfixed(c.body)
            free = [v for v in vs if id(v) in cand and id(v) not in helpers]
            if len(free) > 1:  # the leader's decisions are candidates too: p == f(x, y) defines p
                free = [v for v in free if v is _defined_side(c)]
            if len(free) == 1 and any(id(v) in fids or id(v) in helpers for v in vs) \
                    and _definition(c, free[0]) is not None:
                helpers.add(id(free[0]))
                used.add(id(c))
                progress = True
    return helpers


def _replace_everywhere(model: BlockData, sub: dict[int, Any]) -> None:
    """Replace the Vars keyed in ``sub`` (by id) in every active constraint, objective and named
    Expression of ``model`` (named Expressions are kept, so lifted aggregates stay named)."""
    def rep(e: Any) -> Any:
        return replace_expressions(e, sub, descend_into_named_expressions=False, remove_named_expressions=False)

    for e in model.component_data_objects(pyo.Expression, descend_into=True):
        if e.expr is not None:
            e.set_value(rep(e.expr))
    for c in model.component_data_objects(pyo.Constraint, active=True, descend_into=True):
        if any(id(v) in sub for v in identify_variables(c.expr, include_fixed=True)):
            c.set_value(rep(c.expr))
    for o in model.component_data_objects(pyo.Objective, descend_into=True):
        if any(id(v) in sub for v in identify_variables(o.expr, include_fixed=True)):
            o.set_value(rep(o.expr))


def leader_constraints(model: BlockData, followers: Sequence[BlockData], follower_ids: set[int],
                       leaders: Sequence[tuple[str, list]],
                       coupling: bool = False) -> tuple[list[list], list]:
    """Each leader's own constraints (``leaders``: ``(name, decision Vars)`` in ``model``), and
    the coupling constraints ``G(x, y) <= 0``. Refuses a shared constraint, and a coupling one
    unless ``coupling`` (one leader, :func:`epec.solve_bilevel`), with :class:`GameStructureError`
    naming it in one line."""
    owner = {id(v): k for k, (_, vs) in enumerate(leaders) for v in vs}
    out: list[list] = [[] for _ in leaders]
    coupled: list = []
    for c in _non_follower_constraints(model, followers):
        vs = _unfixed(c.body)
        who = sorted({owner[id(v)] for v in vs if id(v) in owner})
        ys = [v for v in vs if id(v) in follower_ids]
        if len(who) > 1:
            names = " and ".join(leaders[k][0] for k in who)
            raise GameStructureError(
                f"constraint {c.name} couples the decisions of leaders {names} (a shared constraint): not "
                f"supported (a generalised Nash equilibrium needs a convention for sharing its multiplier); "
                f"give each leader its own constraint")
        if ys and coupling and len(leaders) == 1:
            coupled.append(c)
            continue
        if ys:
            whose = f"leader {leaders[who[0]][0]}'s decisions and " if who else ""
            from .multipliers import bound_multipliers

            bound = {id(p): con for p, con in bound_multipliers(model)}
            mults = [bound[id(v)] for v in ys if id(v) in bound]
            if mults:
                raise GameStructureError(
                    f"constraint {c.name} uses the multiplier of follower constraint {mults[0].name} "
                    f"(epec.multiplier): not supported in a leader's constraint by solve_epec, whose leader steps "
                    f"keep only constraints on the leaders' own decisions (solve_bilevel keeps it); use the "
                    f"multiplier in the objective, or state the limit on the leaders' decisions")
            raise GameStructureError(
                f"constraint {c.name} involves {whose}the follower variable {ys[0].name} (an upper-level "
                f"constraint G(x, y) <= 0): not supported, the leader steps and the certificate see the "
                f"followers only through their response (solve_bilevel keeps it); move it into the follower's "
                f"block if it is theirs")
        if who:
            out[who[0]].append(c)
    return out, coupled


def coupling_broken(constraints: Sequence[Any], tol: float) -> list[str]:
    """One line per coupling constraint broken at the model's current values by more than
    ``tol max(1, |bound|)``."""
    out = []
    for c in constraints:
        g = float(pyo.value(c.body, exception=False) or 0.0)
        lo = -math.inf if c.lower is None else float(pyo.value(c.lower))
        up = math.inf if c.upper is None else float(pyo.value(c.upper))
        viol = max(0.0, lo - g, g - up)
        scale = max(1.0, *(abs(b) for b in (lo, up) if math.isfinite(b)))
        if not viol <= tol * scale:  # a NaN body is broken too
            side = f"<= {up:.6g}" if g > up else f">= {lo:.6g}"
            out.append(f"constraint {c.name} (G(x, y) <= 0) is broken at the followers' response: {g:.6g} is "
                       f"not {side} (by {viol:.3g})")
    return out


class LeaderConstraints:
    """One leader's own constraints ``lo_k <= g_k(x) <= up_k`` (``x`` its decisions; every other
    Var they use is fixed), compiled once with their Jacobian (CasADi, :func:`solvers.compile_equations`).

    Parameters
    ----------
    name : str
        The leader (for messages).
    variables : list of VarData
        The leader's decisions, in the order of its decision vector.
    constraints : list of ConstraintData

    Attributes
    ----------
    lower, upper : ndarray
        Bounds on the decisions implied by the constraints linear in one decision (-inf / inf
        where none); the caller intersects them with the Vars' own bounds.
    general : ndarray of int
        The other constraints (several decisions, or nonlinear): kept by
        :func:`epec.leader_steps.constrained_ascent` and the certificate's feasibility filter.
    """

    def __init__(self, name: str, variables: list, constraints: list) -> None:
        from solvers import compile_equations

        self.name = name
        self.constraints = list(constraints)
        n = len(variables)
        pos = {id(v): j for j, v in enumerate(variables)}
        self.lo = np.array([-math.inf if c.lower is None else float(pyo.value(c.lower)) for c in constraints])
        self.up = np.array([math.inf if c.upper is None else float(pyo.value(c.upper)) for c in constraints])
        self.lower, self.upper = np.full(n, -math.inf), np.full(n, math.inf)
        general = []
        for k, c in enumerate(constraints):
            vs = _unfixed(c.body)
            repn = generate_standard_repn(c.body, compute_values=True, quadratic=False)
            if len(vs) == 1 and repn.is_linear() and len(repn.linear_vars) == 1:
                a, b, j = float(repn.linear_coefs[0]), float(repn.constant), pos[id(vs[0])]
                lo, up = (self.lo[k] - b) / a, (self.up[k] - b) / a
                lo, up = (lo, up) if a > 0 else (up, lo)
                self.lower[j], self.upper[j] = max(self.lower[j], lo), min(self.upper[j], up)
                continue
            if c.equality and not repn.is_linear():
                raise GameStructureError(
                    f"constraint {c.name} of leader {name} is a nonlinear equality: not supported (the deviation "
                    f"search follows straight lines); write it as an inequality or substitute it")
            general.append(k)
        self.general = np.array(general, dtype=np.int64)
        used = sorted({pos[id(v)] for c in constraints for v in _unfixed(c.body)})
        self._used = np.array(used, dtype=np.int64)
        self._n = n
        self.system = compile_equations([], (), [variables[j] for j in used], [c.body for c in constraints],
                                        name=f"constraints of leader {name}")
        self._y, self._p = self.system.read_inputs(), self.system.read_params()

    def values(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(g(x), dg/dx)`` (dense, one row per constraint, one column per decision)."""
        g, gz, _ = self.system.outputs(np.asarray(x, dtype=float)[self._used], self._y, self._p)
        jac = np.zeros((len(self.constraints), self._n))
        jac[:, self._used] = gz.toarray()
        return g, jac

    def violations(self, x: np.ndarray) -> np.ndarray:
        """``max(lo - g, g - up, 0)`` per constraint."""
        g, _ = self.values(x)
        with np.errstate(invalid="ignore"):
            return np.maximum(0.0, np.maximum(self.lo - g, g - self.up))

    def feasible(self, x: np.ndarray, tol: float = 1e-9) -> bool:
        """Every constraint within ``tol max(1, |bound|)``."""
        return bool(np.all(self.violations(x) <= tol * self._scale()))

    def _scale(self) -> np.ndarray:
        return np.maximum(1.0, np.maximum(np.where(np.isfinite(self.lo), np.abs(self.lo), 0.0),
                                          np.where(np.isfinite(self.up), np.abs(self.up), 0.0)))

    def broken(self, x: np.ndarray, tol: float) -> list[str]:
        """One line per constraint broken by more than ``tol max(1, |bound|)`` at ``x``."""
        g, _ = self.values(x)
        viol = self.violations(x)
        out = []
        for k in np.flatnonzero(viol > tol * self._scale()):
            c = self.constraints[k]
            side = f"<= {self.up[k]:.6g}" if g[k] > self.up[k] else f">= {self.lo[k]:.6g}"
            out.append(f"leader {self.name} breaks its constraint {c.name}: {g[k]:.6g} is not {side} "
                       f"(by {viol[k]:.3g})")
        return out

    def slack(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The general constraints as SLSQP takes them: ``(s_in, ds_in/dx, s_eq, ds_eq/dx)`` with
        ``s_in >= 0`` (``g - lo`` and ``up - g`` for each finite side) and ``s_eq = g - lo = 0``."""
        g, jac = self.values(x)
        rows_in, d_in, rows_eq, d_eq = [], [], [], []
        for k in self.general:
            if self.constraints[k].equality:
                rows_eq.append(g[k] - self.lo[k])
                d_eq.append(jac[k])
                continue
            if math.isfinite(self.lo[k]):
                rows_in.append(g[k] - self.lo[k])
                d_in.append(jac[k])
            if math.isfinite(self.up[k]):
                rows_in.append(self.up[k] - g[k])
                d_in.append(-jac[k])
        n = self._n
        return (np.array(rows_in), np.array(d_in).reshape(-1, n), np.array(rows_eq), np.array(d_eq).reshape(-1, n))

    def equality_rows(self, x: np.ndarray) -> np.ndarray:
        """The gradients of the general equalities at ``x`` (linear ones: the same everywhere),
        whose null space holds the deviation lines that keep them."""
        return self.slack(x)[3]

    def project(self, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """The nearest point to ``x`` in the box that keeps the general constraints (SLSQP on
        ``|x' - x|^2``); ``x`` itself when it keeps them or the projection fails."""
        from scipy.optimize import minimize

        x = np.clip(np.asarray(x, dtype=float), lo, hi)
        if self.feasible(x):
            return x
        cons = self.scipy_constraints()
        bounds = list(zip(np.where(np.isfinite(lo), lo, None), np.where(np.isfinite(hi), hi, None)))
        opt = minimize(lambda z: (float(np.sum((z - x) ** 2)), 2.0 * (z - x)), x, jac=True, method="SLSQP",
                       bounds=bounds, constraints=cons, options={"ftol": 1e-14, "maxiter": 200})
        z = np.clip(np.asarray(opt.x, dtype=float), lo, hi)
        return z if self.feasible(z) else x

    def scipy_constraints(self) -> list[dict]:
        """The general constraints as ``scipy.optimize.minimize(method="SLSQP")`` takes them."""
        eq = any(self.constraints[k].equality for k in self.general)
        ineq = any(not self.constraints[k].equality for k in self.general)
        cons = []
        if ineq:
            cons.append({"type": "ineq", "fun": lambda z: self.slack(z)[0], "jac": lambda z: self.slack(z)[1]})
        if eq:
            cons.append({"type": "eq", "fun": lambda z: self.slack(z)[2], "jac": lambda z: self.slack(z)[3]})
        return cons
