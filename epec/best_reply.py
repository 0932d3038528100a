"""Is each follower at its best reply? The followers' global optimality at a point.

A KKT point of a follower is its best reply when its problem, the other players fixed, is a
convex program; otherwise it may be a local optimum, a saddle, or even the worst reply (a
maximised convex objective). :func:`follower_replies` measures, for every follower, its
*best-response gain* ``max_{y_i'} U_i(y_i', rest) - U_i(y_i, rest)`` over its own feasible
set, everything else fixed at the point, by the first method that applies:

1. ``"declared <reason>"``: the modeller declared the problem a convex program
   (:func:`epec.convexity.declare_convex_program`); gain 0, trusted.
2. ``"convexity proven"``: the disciplined-convex rules prove it
   (:func:`epec.convexity.convex_program`); gain 0, exact.
3. ``"global (SCIP)"``: SCIP (spatial branch and bound; Achterberg, *Math. Prog. Comp.* 1,
   2009; Vigerske & Gleixner, *Optim. Methods Softw.* 33, 2018) solves the follower's problem
   at the point, the Pyomo expressions converted to SCIP's (polynomials, quotients, ``exp``,
   ``log``, ``sqrt``, ``abs``, ``sin``, ``cos``). The gain is SCIP's best value minus the
   point's; *proven* when SCIP closed its gap, or when its dual bound alone shows the gain is
   within tolerance. SCIP stops once its gap is within half the reply tolerance; its output
   (SoPlex's tolerance warnings included) is closed at the file-descriptor level, and an error
   of its LP solver is a status that sends the follower to the multistart, never an exception.
3a. ``"global (univariate polynomial)"``: before SCIP, a follower with one bounded decision, no
   constraint but its bounds, and an objective that is a polynomial in it (degree at most
   ``_MAX_DEGREE``, the other players fixed): its global optimum is at a bound or a real root
   of the derivative in the box (the polynomial interpolated at Chebyshev nodes, the roots
   polished by Newton, every candidate evaluated by Pyomo); *proven* up to that arithmetic,
   in milliseconds where SCIP's branch and bound took up to a second on a quartic.
4. ``"multistart (searched, not proven)"``: Ipopt on the follower's problem from
   ``reply_starts`` random points in its box (an unbounded side: ``+- max(1, |y|)`` around the
   point); the gain is the best found. Used where SCIP cannot take the expressions, is not
   installed, or ends without closing its gap.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pyomo.environ as pyo
from pyomo.core.expr import numeric_expr as ne
from pyomo.core.expr.visitor import ExpressionValueVisitor, identify_variables, replace_expressions
from pyomo.core.expr.numvalue import nonpyomo_leaf_types

from .convexity import convex_program, declared_reason

__all__ = ["FollowerReply", "follower_replies", "reply_problem", "is_convex_method", "optimistic_reply",
           "convex_everywhere", "univariate_best", "follower_utility"]

#: method names as the certificate reports them
CONVEX = "convexity proven"
SCIP = "global (SCIP)"
MULTISTART = "multistart (searched, not proven)"
UNIVARIATE = "global (univariate polynomial)"
#: the highest degree the univariate method takes (interpolation at Chebyshev nodes stays exact
#: to rounding far beyond it)
_MAX_DEGREE = 12


@dataclass(frozen=True)
class FollowerReply:
    """One follower's best-response gain at a point.

    Attributes
    ----------
    name : str
        The follower's block.
    method : str
        How the gain was found (module doc): ``"declared ..."``, ``"convexity proven"``,
        ``"global (SCIP)"`` or ``"multistart (searched, not proven)"``.
    proven : bool
        The gain is a proof (declared, convexity, or SCIP's bound), not a search's best.
    utility : float
        The follower's utility (its objective, maximised) at the point.
    gain : float
        Best utility found over its feasible set minus ``utility`` (0 when convex).
    reply : tuple of float
        Its best reply found (its decisions in block order; the point's when convex).
    detail : str
        Why the rules did not prove convexity, SCIP's status, ... (empty when proven convex).
    """

    name: str
    method: str
    proven: bool
    utility: float
    gain: float
    reply: tuple[float, ...]
    detail: str = ""


def is_convex_method(method: str) -> bool:
    """The method proves the follower a convex program (its KKT points are its best replies)."""
    return method == CONVEX or method.startswith("declared ")


def convex_everywhere(game: Any, box: dict | None = None) -> list[bool]:
    """Per follower of ``game`` (an :class:`epec.game.Game`): is its problem a convex program
    for *every* decision of the others within their bounds (declared, or proven by the rules
    with the leaders' Vars and every other unfixed Var of the game ranging over their boxes)?
    Only such a follower's KKT reply at a leader's deviation is its best reply there: convexity
    proven at the point alone (``-x y**2 + y**4 / 2`` is convex in ``y`` at ``x = 0``, not at
    ``x > 0``) says nothing of the deviations. Computed once per game (the structure and bounds
    are fixed). ``box`` (``{var: (lo, hi)}``): over that box instead (the range a certificate's
    deviations visited), Vars outside it at their values; not cached."""
    if box is None:
        cached = getattr(game, "_convex_everywhere", None)
        if cached is not None:
            return cached
    declared = [declared_reason(k.player) is not None for k in game.kkts]
    if all(declared):
        out = declared
    else:
        if box is None:
            lead = [v for ld in game.leaders for v in ld.vars]
            ids = {id(v) for v in lead}
            varying: Any = lead + [v for v in game.work.component_data_objects(pyo.Var, descend_into=True)
                                   if not v.fixed and id(v) not in ids]
        else:
            varying = box
        out = [d or convex_program(k.objective, k.constraints, k.variables, varying)[0]
               for d, k in zip(declared, game.kkts)]
    if box is None:
        game._convex_everywhere = out
    return out


class _SharedValues(ExpressionValueVisitor):
    """``pyo.value`` of expressions that share named Expressions, each of those evaluated once
    while the Vars keep their values. Every follower's utility holds the aggregates it shares
    (the MetaTrading totals, a sum over all MUs): evaluated one follower after another they were
    walked once per follower, 17.5 of the 26.8 CPU seconds of the batched 500x10 certificate."""

    def __init__(self) -> None:
        self.cache: dict[int, Any] = {}

    def visit(self, node: Any, values: list) -> Any:
        return node._apply_operation(values)

    def visiting_potential_leaf(self, node: Any) -> tuple[bool, Any]:
        if node.__class__ in nonpyomo_leaf_types:
            return True, node
        if node.is_expression_type():
            if not node.is_named_expression_type():
                return False, None
            key = id(node)
            if key not in self.cache:
                self.cache[key] = self.dfs_postorder_stack(node.expr)
            return True, self.cache[key]
        return True, pyo.value(node) if node.is_numeric_type() else node


def follower_utility(obj: Any, values: _SharedValues | None = None) -> float:
    """A follower's objective ``obj`` at the model's values as a utility (maximised: a minimised
    objective's negative); ``values`` a visitor that shares subexpressions' values."""
    v = float(pyo.value(obj.expr) if values is None else values.dfs_postorder_stack(obj.expr))
    return v if obj.sense == pyo.maximize else -v


def follower_replies(kkts: Sequence[Any], options: Any, search: bool = False,
                     utilities: Sequence[float] | None = None) -> list[FollowerReply]:
    """The best-response gain of every follower of ``kkts`` (:class:`epec.kkt.KKTSystem`) at the
    model's current values, by the methods of the module doc; ``options`` a
    :class:`epec.CertificateOptions` (``reply_starts``, ``reply_seconds``, ``reply_scip``).
    The model's values are restored. ``search=True`` skips methods 1 and 2 (followers already
    known not to be proven convex). ``utilities``: the followers' utilities at the point when
    the caller has them (:meth:`epec.game.Game.follower_utilities`), else walked here."""
    out = []
    if utilities is None:
        shared = _SharedValues()  # at the point: the searches below restore every value they move
        utilities = [follower_utility(k.objective, shared) for k in kkts]
    for k, u0 in zip(kkts, utilities):
        xs = list(k.variables)
        y0 = tuple(float(v.value) for v in xs)
        reason = None if search else declared_reason(k.player)
        if reason is not None:
            out.append(FollowerReply(k.player.name, f"declared {reason}", True, u0, 0.0, y0))
            continue
        convex, why = (False, "not proven convex") if search else convex_program(k.objective, k.constraints, xs)
        if convex:
            out.append(FollowerReply(k.player.name, CONVEX, True, u0, 0.0, y0))
            continue
        reply = _univariate_reply(k, u0, options, why) if options.reply_univariate else None
        if reply is None and options.reply_scip:
            reply = _scip_reply(k, u0, options, why)
        if not isinstance(reply, FollowerReply):  # SCIP not used, or its reason for no answer
            reply = _multistart_reply(k, u0, options, why if reply is None else f"{why}; {reply}")
        for v, val in zip(xs, y0):  # the searches leave their own values behind
            v.set_value(val, skip_validation=True)
        out.append(reply)
    return out


def reply_problem(k: Any) -> tuple[list, Any, list]:
    """``(decisions, objective, constraints)`` of follower ``k`` (a KKTSystem) as a standalone
    Pyomo model's parts: fresh Vars with the decisions' bounds, the objective and constraints with
    every other Var replaced by its current value (a constant)."""
    m = pyo.ConcreteModel()
    xs = list(k.variables)
    m.y = pyo.Var(range(len(xs)))
    sub: dict[int, Any] = {}
    for i, v in enumerate(xs):
        m.y[i].setlb(v.lb)
        m.y[i].setub(v.ub)
        m.y[i].set_value(v.value, skip_validation=True)
        sub[id(v)] = m.y[i]
    own = set(sub)

    def local(e: Any) -> Any:
        smap = dict(sub)
        for v in identify_variables(e, include_fixed=True):
            if id(v) not in own:
                smap[id(v)] = float(v.value)
        return replace_expressions(e, smap, descend_into_named_expressions=True, remove_named_expressions=True)

    m.obj = pyo.Objective(expr=local(k.objective.expr), sense=k.objective.sense)
    m.cons = pyo.ConstraintList()
    for con in k.constraints:
        body = local(con.body)
        if con.equality:
            m.cons.add(body == float(pyo.value(con.upper)))
            continue
        if con.has_lb():
            m.cons.add(body >= float(pyo.value(con.lower)))
        if con.has_ub():
            m.cons.add(body <= float(pyo.value(con.upper)))
    return [m.y[i] for i in range(len(xs))], m.obj, list(m.cons.values())


# --- SCIP --------------------------------------------------------------------------------------
class _Unsupported(Exception):
    """An expression SCIP's interface cannot take."""


def _to_scip(e: Any, vmap: dict[int, Any], scip: Any) -> Any:
    """The SCIP expression of Pyomo expression ``e``; Vars in ``vmap`` are SCIP's, anything else
    (a subexpression free of them included) is evaluated to a number."""
    if type(e) in (int, float) or isinstance(e, (np.floating, np.integer)):
        return float(e)
    if not hasattr(e, "is_expression_type"):
        raise _Unsupported(type(e).__name__)
    if e.is_variable_type():
        return vmap[id(e)] if id(e) in vmap else float(pyo.value(e))
    if not e.is_expression_type():
        return float(pyo.value(e))
    if e.is_named_expression_type():
        return _to_scip(e.expr, vmap, scip)
    if not any(id(v) in vmap for v in identify_variables(e, include_fixed=True)):
        return float(pyo.value(e))
    args = [_to_scip(a, vmap, scip) for a in e.args]
    if isinstance(e, (ne.LinearExpression, ne.SumExpression)):
        total = 0.0
        for a in args:
            total = total + a
        return total
    if isinstance(e, ne.NegationExpression):
        return -args[0]
    if isinstance(e, (ne.MonomialTermExpression, ne.ProductExpression)):
        return args[0] * args[1]
    if isinstance(e, ne.DivisionExpression):
        return args[0] / args[1]
    if isinstance(e, ne.PowExpression):
        base, p = args
        if isinstance(p, float):
            if p.is_integer() and p >= 0:
                return base ** int(p)
            return base ** p
        if isinstance(base, float) and base > 0:
            return scip.exp(p * math.log(base))
        raise _Unsupported("a power with a variable exponent")
    if isinstance(e, ne.AbsExpression):
        return abs(args[0])
    if isinstance(e, ne.UnaryFunctionExpression):
        name = e.getname()
        fns = {"exp": scip.exp, "log": scip.log, "sqrt": scip.sqrt, "sin": scip.sin, "cos": scip.cos}
        if name in fns:
            return fns[name](args[0])
        if name == "log10":
            return scip.log(args[0]) / math.log(10.0)
        raise _Unsupported(f"function {name}")
    raise _Unsupported(type(e).__name__)


def _scip_model(k: Any, options: Any) -> tuple[Any, dict, Any] | None:
    """SCIP's model of follower ``k``'s feasible set at the point (its decisions and its own
    constraints, everything else a constant): ``(model, {id(Var): SCIP var}, pyscipopt)``, or
    None without ``pyscipopt`` or for a constraint SCIP cannot take."""
    try:
        import pyscipopt as scip
    except ImportError:
        return None
    m = scip.Model()
    m.hideOutput()
    m.setParam("limits/time", float(options.reply_seconds))
    m.setParam("numerics/feastol", 1e-9)
    vmap = {id(v): m.addVar(name=f"y{i}", lb=v.lb, ub=v.ub) for i, v in enumerate(k.variables)}
    try:
        for con in k.constraints:
            body = _to_scip(con.body, vmap, scip)
            if isinstance(body, float):
                continue
            if con.equality:
                m.addCons(body == float(pyo.value(con.upper)))
                continue
            if con.has_lb():
                m.addCons(body >= float(pyo.value(con.lower)))
            if con.has_ub():
                m.addCons(body <= float(pyo.value(con.upper)))
    except (_Unsupported, KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return m, vmap, scip


def _optimize(m: Any) -> str:
    """``m.optimize()``; SCIP's status, or ``"error: <SCIP's message>"`` where SCIP stops on an
    error (an LP solver failure): a status the caller reports, never a crash."""
    try:
        with _quiet_fds():
            m.optimize()
    except Exception as exc:  # noqa: BLE001 - pyscipopt raises a bare Exception on SCIP's error codes
        if not str(exc).startswith("SCIP"):  # anything else (a caller's timeout) is not SCIP's
            raise
        return f"error: {exc}".strip()
    return str(m.getStatus())


@contextlib.contextmanager
def _quiet_fds():
    """Standard output and error closed to the C level while SCIP solves: SoPlex (without GMP)
    writes "Cannot set feasibility tolerance to small value 1e-12 without GMP" on every
    numerically troubled LP, and SCIP its error trail, past ``hideOutput``; what matters of
    them reaches the caller as SCIP's status."""
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or replaced stream
            pass
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [null]:
            os.close(fd)


def _solutions(m: Any) -> int:
    try:
        return int(m.getNSols())
    except Exception:  # noqa: BLE001 - after an error SCIP may be in no state to answer
        return 0


def univariate_candidates(k: Any) -> list[tuple[float, float]] | None:
    """Every candidate for follower ``k``'s global optimum with its utility, ``[(y, U(y)), ...]``,
    where its problem is a polynomial of degree at most ``_MAX_DEGREE`` in one bounded decision
    with no other constraint (the other players fixed at the model's values): the two bounds and
    the real roots of the derivative between them. None where the follower is not such a
    problem. The follower's value is restored."""
    xs = list(k.variables)
    if len(xs) != 1 or list(k.constraints):
        return None
    v = xs[0]
    if v.lb is None or v.ub is None or not v.ub > v.lb:
        return None
    ys, obj, _ = reply_problem(k)
    from pyomo.core.expr.visitor import polynomial_degree

    try:
        degree = polynomial_degree(obj.expr)
    except Exception:  # noqa: BLE001 - an expression Pyomo cannot grade is no polynomial here
        return None
    if degree is None or degree > _MAX_DEGREE:
        return None
    y, lo, hi = ys[0], float(v.lb), float(v.ub)
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)

    def utility(t: float) -> float:
        y.set_value(float(min(max(mid + half * t, lo), hi)), skip_validation=True)
        return follower_utility(obj)

    candidates = [-1.0, 1.0]
    if degree >= 2:
        nodes = np.cos(np.pi * (np.arange(degree + 1) + 0.5) / (degree + 1))
        try:
            poly = np.polynomial.Chebyshev.fit(nodes, [utility(t) for t in nodes], degree, domain=[-1, 1],
                                               window=[-1, 1])
        except (ValueError, OverflowError, ZeroDivisionError, np.linalg.LinAlgError):
            return None
        d1, d2 = poly.deriv(), poly.deriv(2)
        for r in d1.roots():
            if abs(r.imag) > 1e-6 or not -1.0 - 1e-9 <= r.real <= 1.0 + 1e-9:
                continue
            t = float(r.real)
            for _ in range(3):  # Newton on the derivative: roots of a fitted polynomial to rounding
                curv = float(d2(t))
                if curv == 0.0:
                    break
                t = min(max(t - float(d1(t)) / curv, -1.0), 1.0)
            candidates.append(t)
    out = [(mid + half * t, utility(t)) for t in candidates]
    return [(min(max(a, lo), hi), u) for a, u in out if math.isfinite(u)]


def _univariate_reply(k: Any, u0: float, options: Any, why: str) -> FollowerReply | None:
    """The univariate-polynomial method (module doc), or None where it does not apply."""
    v = list(k.variables)[0] if len(list(k.variables)) == 1 else None
    saved = None if v is None else v.value
    try:
        cands = univariate_candidates(k)
    finally:
        if v is not None:
            v.set_value(saved, skip_validation=True)
    if not cands:
        return None
    y, u = max(cands, key=lambda c: c[1])
    gain = max(u - u0, 0.0)
    return FollowerReply(k.player.name, UNIVARIATE, True, u0, gain, (y,) if gain > 0 else (float(saved),),
                         f"{why}; {len(cands)} candidates (bounds and the derivative's real roots)")


def _minimise(m: Any, vmap: dict, scip: Any, expr: Any) -> bool:
    """Set SCIP's objective to ``min expr`` (a Pyomo expression; SCIP takes a nonlinear one as
    its epigraph ``min t, t >= expr``); False where it cannot take the expression."""
    t = m.addVar(name="t", lb=None, ub=None)
    try:
        m.addCons(t >= _to_scip(expr, vmap, scip))
    except (_Unsupported, KeyError, TypeError, ValueError, ZeroDivisionError):
        return False
    m.setObjective(t, "minimize")
    return True


def _scip_reply(k: Any, u0: float, options: Any, why: str) -> FollowerReply | str | None:
    """The SCIP method (module doc), or None where SCIP cannot be used or found no reply, or a
    line saying why SCIP stopped (an error of its LP solver: the multistart then searches, and
    its reply's ``detail`` carries the line)."""
    built = _scip_model(k, options)
    if built is None:
        return None
    m, vmap, scip = built
    xs = list(k.variables)
    sign = 1.0 if k.objective.sense == pyo.minimize else -1.0  # minimise sign * objective
    if not _minimise(m, vmap, scip, sign * k.objective.expr):
        return None
    tol = options.reply_tolerance(u0)
    # SCIP stops once its gap is within half the tolerance: a gain found below tol / 2 is then
    # proven within tol (closing the gap further only costs time: a nonconvex follower's
    # branch and bound on numerically hard LPs ran into reply_seconds)
    m.setParam("limits/absgap", 0.5 * tol)
    status = _optimize(m)
    if status.startswith("error"):
        return f"SCIP stopped on an {status}"
    if _solutions(m) == 0:
        return None
    sol = m.getBestSol()
    y = [float(m.getSolVal(sol, vmap[id(v)])) for v in xs]
    # the gain at SCIP's reply, evaluated by Pyomo (SCIP's value carries its feasibility tolerance)
    for v, val in zip(xs, y):
        lo = -math.inf if v.lb is None else v.lb
        hi = math.inf if v.ub is None else v.ub
        v.set_value(min(max(val, lo), hi), skip_validation=True)
    gain = follower_utility(k.objective) - u0
    # SCIP's dual bound L <= min sign * objective = -max utility: the gain is at most -L - u0
    bound = -float(m.getDualbound()) - u0
    if status not in ("optimal", "gaplimit") and bound > tol:
        if gain <= tol:  # nothing better found and nothing proven: the multistart searches on
            return None
        # a better reply found is evidence enough, proven or not
        return FollowerReply(k.player.name, SCIP, False, u0, gain, tuple(y), f"{why}; SCIP {status}, gap open")
    return FollowerReply(k.player.name, SCIP, True, u0, gain, tuple(y),
                         f"{why}; SCIP {status}, gain bound {bound:.3g}")


# --- multistart --------------------------------------------------------------------------------
def _multistart_reply(k: Any, u0: float, options: Any, why: str) -> FollowerReply:
    """The multistart method (module doc): the best of Ipopt's local solutions from
    ``options.reply_starts`` random starts (seeded by ``options.seed``)."""
    from solvers import IpoptOptions, IpoptSolver

    ys, obj, cons = reply_problem(k)
    model = ys[0].model()
    solver = IpoptSolver(IpoptOptions(max_iter=500))
    rng = np.random.default_rng(options.seed)
    point = [float(v.value) for v in ys]
    best_u, best_y = u0, tuple(point)
    for _ in range(options.reply_starts):
        for v, x in zip(ys, point):
            w = max(1.0, abs(x))
            lo = v.lb if v.lb is not None else x - w
            hi = v.ub if v.ub is not None else x + w
            v.set_value(float(rng.uniform(lo, hi)), skip_validation=True)
        try:
            res = solver.solve(model)
        except Exception:  # noqa: BLE001 - a start Ipopt cannot evaluate is a start lost
            continue
        if not res.ok:
            continue
        u = follower_utility(obj)
        feasible = all(_violation(c) <= 1e-8 for c in cons)
        if feasible and u > best_u:
            best_u, best_y = u, tuple(float(v.value) for v in ys)
    return FollowerReply(k.player.name, MULTISTART, False, u0, best_u - u0, best_y, why)


def _violation(con: Any) -> float:
    v = float(pyo.value(con.body))
    out = 0.0
    if con.has_lb():
        out = max(out, float(pyo.value(con.lower)) - v)
    if con.has_ub():
        out = max(out, v - float(pyo.value(con.upper)))
    return out


def optimistic_reply(k: Any, objective: Any, options: Any, at_best: bool = False) -> tuple[float, ...] | None:
    """Among follower ``k``'s best replies, the one best for the leader of ``objective``: the
    optimistic convention of bilevel programming (Dempe 2002, sec. 1.3), where a follower
    indifferent between replies takes the leader's preferred one. The follower's current
    decisions should be a best reply; ``U*`` is the larger of their utility and SCIP's proven
    optimum (their utility alone with ``at_best``: the caller's global search just found them
    best). SCIP maximises the leader's utility over the follower's feasible set with
    ``U >= U* - 1e-4 reply_tolerance(U*)``. None where SCIP cannot be used or proves nothing.
    """
    u_best = follower_utility(k.objective)
    uni = _univariate_optimistic(k, objective, options, u_best) if options.reply_univariate else None
    if uni is not None:
        return uni
    sign = 1.0 if k.objective.sense == pyo.minimize else -1.0
    # U*: the follower's own global optimum where SCIP proves it better than the point's (a
    # smoothed response sits a little inside its optimal face: its utility as U* would let
    # slightly worse replies into the leader's choice)
    first = None if at_best else _scip_model(k, options)
    if first is not None:
        m, vmap, scip = first
        if not _minimise(m, vmap, scip, sign * k.objective.expr):
            return None
        m.setParam("limits/absgap", 0.5 * options.reply_tolerance(u_best))
        if _optimize(m) in ("optimal", "gaplimit") and _solutions(m) > 0:
            u_best = max(u_best, -float(m.getObjVal()))
    built = _scip_model(k, options)
    if built is None:
        return None
    m, vmap, scip = built
    lead = -1.0 if objective.sense == pyo.maximize else 1.0
    try:
        # the best replies: within 1e-4 reply_tolerance of U* (in effect SCIP's feastol, 1e-9),
        # not within reply_tolerance: near a strict quadratic optimum that band is sqrt(tol)
        # wide, and a leader would "gain" by the follower's slightly worse replies (mb_1_1_09:
        # 1.4e-4; b_1984_02: 2.7e-4); what is left of it lies within unique_tol of the reply
        # (and never below 1e-9 scaled, SCIP's own feasibility tolerance: a tighter band left
        # SCIP's LPs numerically infeasible, until its time limit, on d_1978_01)
        band = max(1e-4 * options.reply_tolerance(u_best), 1e-9 * max(1.0, abs(u_best)))
        m.addCons(sign * _to_scip(k.objective.expr, vmap, scip) <= -u_best + band)
    except (_Unsupported, KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if not _minimise(m, vmap, scip, lead * objective.expr):
        return None
    # the leader's preferred reply to within a tenth of its gain tolerance (1e-6 relative)
    lead_value = abs(float(pyo.value(objective.expr, exception=False) or 0.0))
    m.setParam("limits/absgap", 1e-7 * max(1.0, lead_value))
    # at most a second: the search runs at every deviation, and a reply it does not settle in
    # that time is left to the follower's own (None: the reply found stands)
    m.setParam("limits/time", min(1.0, float(options.reply_seconds)))
    if _optimize(m) not in ("optimal", "gaplimit") or _solutions(m) == 0:
        return None
    sol = m.getBestSol()
    return tuple(float(m.getSolVal(sol, vmap[id(v)])) for v in k.variables)


def univariate_best(k: Any, options: Any, u_point: float | None = None, wide: bool = False) -> list[float] | None:
    """Follower ``k``'s best replies by the univariate-polynomial method (:func:`univariate_candidates`):
    the candidates within a band of ``U*`` (the best candidate's utility, or ``u_point``, the
    point's, where larger), the band ``max(1e-4 reply_tolerance(U*), 1e-9 max(1, |U*|))``, that are
    local maxima of the follower's utility. A critical point that is a local minimum of the
    utility is no reply however close its value: in mb_1_1_05 (``-x y**2 + y**4 / 2`` minimised)
    the follower's ``y = 0`` at ``x = 1e-6`` is within 1e-12 of its optimum ``+-sqrt(x)`` and is
    the leader's favourite, a "gain" of ``x`` for the leader that no tolerance would end. The best
    candidate itself is always kept. ``wide``: the band is ``reply_tolerance(U*)`` itself, every
    reply the certificate would call best (for the uniqueness check: mb_1_1_07's follower at
    ``x = 1/4 + 1e-8`` is within 2e-8 of indifferent between ``y = 1/2`` and ``y = -1``). Sorted;
    None where the method does not apply. The follower's value is restored."""
    xs = list(k.variables)
    if len(xs) != 1:
        return None
    v, saved = xs[0], xs[0].value
    try:
        cands = univariate_candidates(k)
        if not cands:
            return None
        if saved is not None and u_point is not None:
            cands.append((float(saved), u_point))
        top = max(u for _, u in cands)
        band = options.reply_tolerance(top) if wide else max(1e-4 * options.reply_tolerance(top),
                                                             1e-9 * max(1.0, abs(top)))
        lo, hi = float(v.lb), float(v.ub)
        h = 1e-6 * (hi - lo)

        def at(y: float) -> float:
            v.set_value(y, skip_validation=True)
            return follower_utility(k.objective)

        def local_max(y: float, u: float) -> bool:
            return all(at(t) <= u for t in (y - h, y + h) if lo <= t <= hi)

        best = sorted({y for y, u in cands if u >= top or (u >= top - band and local_max(y, u))})
        return best or None
    finally:
        v.set_value(saved, skip_validation=True)


def _univariate_optimistic(k: Any, objective: Any, options: Any, u_best: float) -> tuple[float, ...] | None:
    """:func:`optimistic_reply` for a univariate polynomial follower: among its best replies
    (:func:`univariate_best`, the point's reply among them where it qualifies), the one the
    leader prefers; None where the method does not apply."""
    v = list(k.variables)[0] if len(list(k.variables)) == 1 else None
    if v is None:
        return None
    saved = v.value
    try:
        best = univariate_best(k, options, u_best)
        if not best:
            return None
        lead = 1.0 if objective.sense == pyo.maximize else -1.0

        def leader(y: float) -> float:
            v.set_value(y, skip_validation=True)
            val = pyo.value(objective.expr, exception=False)
            return -math.inf if val is None or not math.isfinite(val) else lead * float(val)

        return (max(best, key=leader),)
    finally:
        v.set_value(saved, skip_validation=True)
