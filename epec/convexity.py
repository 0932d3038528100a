"""Disciplined-convex curvature of Pyomo expressions, and convex programs among the followers.

A follower whose problem, with every other player's decisions fixed, is a convex program (a
convex objective minimised, or a concave one maximised, over affine equalities, convex ``<=``
and concave ``>=`` constraints and bounds) has its KKT points as its best replies (Boyd &
Vandenberghe, *Convex Optimization*, 2004, sec. 5.5.3): the certificate then needs no search.

:func:`curvature` proves curvature with the disciplined-convex-programming rules (Grant, Boyd &
Ye, *Disciplined Convex Programming*, 2006; the rules cvxpy applies): constants and affine maps;
sums; products and quotients by constants of known sign; ``e**p`` (``p`` even: convex of an
affine ``e``; ``p >= 1``: convex increasing on ``e >= 0``; ``0 < p < 1``: concave increasing on
``e >= 0``; ``p < 0``: convex decreasing on ``e > 0``); ``exp``, ``log``, ``sqrt``, ``abs``;
each function composed with an argument by the rule *convex of convex when nondecreasing, of
concave when nonincreasing, of affine always* (and the mirror rule for concave functions). A
product of two non-constant factors is proven when it is a quadratic form in the decisions with
a semi-definite Hessian (``y1*y2 + y1**2 + y2**2``, say). Signs come from interval bounds of
every subexpression (the decisions' bounds, the constants' values). Any other expression is
``UNKNOWN``: the rules are sufficient, never necessary, and an unproven expression may well be
convex.

:func:`hessian_curvature` proves what those rules cannot (a product of a decision and a
function of it, such as a Cournot revenue ``y p(x + y)``): the symbolic Hessian bounded by
interval arithmetic over the decisions' box, then Gershgorin's discs; :func:`convex_program`
tries it where the rules prove nothing.

The Vars in ``decisions`` are the variables; every other Var and every Param is a constant at
its current value (the other players' decisions fixed at the point), except the Vars given as
``varying``: constants anywhere within their bounds (a proof for every decision of the other
players, which a certificate's deviations need, not only for the point's).

:func:`declare_convex_program` records an analytic proof the rules cannot find (the MetaTrading
followers' proportional share, docs/model.md section 4): the certificate trusts it and names it.
"""
from __future__ import annotations

import enum
import math
from typing import Any, Iterable

import numpy as np
import pyomo.environ as pyo
from pyomo.core.expr import numeric_expr as ne
from pyomo.core.expr.calculus.derivatives import Modes, differentiate
from pyomo.core.expr.visitor import identify_variables

__all__ = ["Curvature", "curvature", "hessian_curvature", "convex_program", "declare_convex_program", "declared_reason",
           "DECLARED_ATTRIBUTE"]


class Curvature(str, enum.Enum):
    """The curvature of an expression in the decisions, as far as the rules prove it."""

    CONSTANT = "constant"
    AFFINE = "affine"
    CONVEX = "convex"
    CONCAVE = "concave"
    UNKNOWN = "unknown"

    @property
    def is_convex(self) -> bool:
        return self in (Curvature.CONSTANT, Curvature.AFFINE, Curvature.CONVEX)

    @property
    def is_concave(self) -> bool:
        return self in (Curvature.CONSTANT, Curvature.AFFINE, Curvature.CONCAVE)

    @property
    def is_affine(self) -> bool:
        return self in (Curvature.CONSTANT, Curvature.AFFINE)


C, A, VX, CV, U = Curvature.CONSTANT, Curvature.AFFINE, Curvature.CONVEX, Curvature.CONCAVE, Curvature.UNKNOWN


def _flip(c: Curvature) -> Curvature:
    return {VX: CV, CV: VX}.get(c, c)


def _add(a: Curvature, b: Curvature) -> Curvature:
    if a is C:
        return b
    if b is C:
        return a
    if a.is_affine and b.is_affine:
        return A
    if a.is_convex and b.is_convex:
        return VX
    if a.is_concave and b.is_concave:
        return CV
    return U


def _scale(c: Curvature, lo: float, hi: float) -> Curvature:
    """``k e``, ``e`` of curvature ``c``, the constant ``k`` in ``[lo, hi]``."""
    if c.is_affine or (lo == 0.0 and hi == 0.0):
        return c if not (lo == 0.0 and hi == 0.0) else C
    if lo >= 0:
        return c
    if hi <= 0:
        return _flip(c)
    return U


def _compose(f_curv: Curvature, increasing: bool | None, arg: Curvature) -> Curvature:
    """``h(g)``, ``h`` of curvature ``f_curv`` (CONVEX or CONCAVE) and monotonicity
    ``increasing`` (True, False, or None for neither) over the argument's range."""
    if arg is C:
        return C
    if arg.is_affine:
        return f_curv
    if f_curv is VX and ((increasing is True and arg is VX) or (increasing is False and arg is CV)):
        return VX
    if f_curv is CV and ((increasing is True and arg is CV) or (increasing is False and arg is VX)):
        return CV
    return U


def _mul(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    ps = [x * y if not ((x == 0 and math.isinf(y)) or (y == 0 and math.isinf(x))) else 0.0
          for x in a for y in b]
    return min(ps), max(ps)


_WHOLE = (-math.inf, math.inf)


class _Walker:
    """Bottom-up ``(curvature, (lo, hi))`` of every subexpression."""

    def __init__(self, decisions: Iterable[Any], varying: Any = ()) -> None:
        self.ids = {id(v) for v in decisions}
        self.varying = {i: b for i, b in _boxes(varying).items() if i not in self.ids}

    def _constant(self, e: Any) -> tuple[float, float]:
        """The range of a subexpression free of the decisions: its value, or, where it holds a
        ``varying`` Var, interval arithmetic over their bounds (the whole line where unbounded)."""
        if not self.varying or not any(id(v) in self.varying for v in identify_variables(e, include_fixed=True)):
            v = float(pyo.value(e))
            return v, v
        return _range(e, self.varying)

    def __call__(self, e: Any) -> tuple[Curvature, tuple[float, float]]:
        if type(e) in (int, float) or isinstance(e, (np.floating, np.integer)):
            return C, (float(e), float(e))
        if not hasattr(e, "is_expression_type"):
            return U, _WHOLE
        if e.is_variable_type():
            if id(e) not in self.ids:
                return C, self._constant(e)
            lo = -math.inf if e.lb is None else float(e.lb)
            hi = math.inf if e.ub is None else float(e.ub)
            return A, (lo, hi)
        if not e.is_expression_type():  # Param, NumericConstant
            v = float(pyo.value(e))
            return C, (v, v)
        if e.is_named_expression_type():
            return self(e.expr)
        if not any(id(v) in self.ids for v in identify_variables(e, include_fixed=True)):
            return C, self._constant(e)
        return self._node(e)

    def _node(self, e: Any) -> tuple[Curvature, tuple[float, float]]:
        if isinstance(e, (ne.LinearExpression, ne.SumExpression)):
            curv, lo, hi = C, 0.0, 0.0
            for a in e.args:
                c, (l, h) = self(a)
                curv, lo, hi = _add(curv, c), lo + l, hi + h
            if curv is U:  # terms of no curvature alone may make a semi-definite form together
                curv = self._quadratic(e)
            return curv, (lo, hi)
        if isinstance(e, ne.NegationExpression):
            c, (l, h) = self(e.args[0])
            return _flip(c), (-h, -l)
        if isinstance(e, (ne.MonomialTermExpression, ne.ProductExpression)):
            (ca, ia), (cb, ib) = self(e.args[0]), self(e.args[1])
            box = _mul(ia, ib)
            if ca is C:
                return _scale(cb, *ia), box
            if cb is C:
                return _scale(ca, *ib), box
            return self._quadratic(e), box
        if isinstance(e, ne.DivisionExpression):
            (ca, ia), (cb, ib) = self(e.args[0]), self(e.args[1])
            if ib[0] > 0 or ib[1] < 0:
                inv = (1.0 / ib[1], 1.0 / ib[0])
                box = _mul(ia, inv)
            else:
                inv, box = _WHOLE, _WHOLE
            if cb is C:
                return _scale(ca, *inv), box
            if ca is C and ib[0] > 0:  # k / g = k g**-1: convex decreasing on g > 0
                return _scale(_compose(VX, False, cb), *ia), box
            return U, box
        if isinstance(e, ne.PowExpression):
            return self._power(e)
        if isinstance(e, ne.AbsExpression):
            c, (l, h) = self(e.args[0])
            box = (0.0 if l <= 0 <= h else min(abs(l), abs(h)), max(abs(l), abs(h)))
            inc = True if l >= 0 else (False if h <= 0 else None)
            return _compose(VX, inc, c), box
        if isinstance(e, ne.UnaryFunctionExpression):
            return self._function(e)
        return U, _WHOLE

    def _power(self, e: Any) -> tuple[Curvature, tuple[float, float]]:
        (cb, (l, h)), (ce, ie) = self(e.args[0]), self(e.args[1])
        if ce is not C:
            if cb is C and l > 0:  # k**g = exp(g ln k), increasing in g where k >= 1
                return _compose(VX, True if l >= 1 else (False if h <= 1 else None), ce), (0.0, math.inf)
            return U, _WHOLE
        if ie[0] != ie[1]:  # an exponent that varies: no rule
            return U, _WHOLE
        p = ie[0]
        if p == 0:
            return C, (1.0, 1.0)
        if p == 1:
            return cb, (l, h)
        even = float(p).is_integer() and int(p) % 2 == 0 and p > 0
        with np.errstate(all="ignore"):
            ends = [float(np.power(abs(t), p)) if t >= 0 or float(p).is_integer() else math.nan for t in (l, h)]
            if float(p).is_integer() and p > 0 and not even:
                ends = [math.copysign(abs(t) ** p, t) if math.isfinite(t) else t for t in (l, h)]
        if even:
            box = (0.0 if l <= 0 <= h else min(ends), max(ends))
            inc = True if l >= 0 else (False if h <= 0 else None)
            return _compose(VX, inc, cb), box
        if p > 1:
            if l >= 0:
                return _compose(VX, True, cb), (min(ends), max(ends))
            if float(p).is_integer():  # odd: concave on e <= 0
                return (_compose(CV, True, cb) if h <= 0 else U), (ends[0], ends[1])
            return U, _WHOLE
        if 0 < p < 1:
            return (_compose(CV, True, cb), (min(ends), max(ends))) if l >= 0 else (U, _WHOLE)
        # p < 0: convex decreasing on e > 0
        if l > 0:
            return _compose(VX, False, cb), (min(ends), max(ends))
        return U, _WHOLE

    def _function(self, e: Any) -> tuple[Curvature, tuple[float, float]]:
        c, (l, h) = self(e.args[0])
        name = e.getname()
        with np.errstate(all="ignore"):
            if name == "exp":
                return _compose(VX, True, c), (math.exp(min(l, 700)), math.exp(min(h, 700)))
            if name in ("log", "log10") and l > 0:
                f = math.log if name == "log" else math.log10
                return _compose(CV, True, c), (f(l), f(h) if math.isfinite(h) else math.inf)
            if name == "sqrt" and l >= 0:
                return _compose(CV, True, c), (math.sqrt(l), math.sqrt(h) if math.isfinite(h) else math.inf)
        return U, _WHOLE

    def _quadratic(self, e: Any) -> Curvature:
        """A product of non-constant factors: a quadratic form in the decisions whose Hessian
        (constant: no decision left in a second derivative) is positive or negative
        semi-definite, else UNKNOWN."""
        xs = [v for v in identify_variables(e, include_fixed=False) if id(v) in self.ids]
        if not xs or len(xs) > 50:  # a dense Hessian beyond that is not worth the symbolic work
            return U
        first = differentiate(e, wrt_list=xs, mode=Modes.reverse_symbolic)
        H = np.zeros((len(xs), len(xs)))
        for i, d in enumerate(first):
            if type(d) in (int, float):
                continue
            second = differentiate(d, wrt_list=xs, mode=Modes.reverse_symbolic)
            for j, s in enumerate(second):
                if hasattr(s, "is_expression_type") and any(id(v) in self.ids or id(v) in self.varying
                                                            for v in identify_variables(s)):
                    return U
                H[i, j] = float(pyo.value(s))
        eig = np.linalg.eigvalsh(0.5 * (H + H.T))
        scale = max(1.0, float(np.max(np.abs(eig))))
        if np.all(np.abs(eig) <= 1e-12 * scale):
            return A
        if eig[0] >= -1e-12 * scale:
            return VX
        if eig[-1] <= 1e-12 * scale:
            return CV
        return U


def _boxes(varying: Any) -> dict[int, tuple[float, float]]:
    """``varying`` as ``{id(var): (lo, hi)}``: a mapping of Vars to ``(lo, hi)`` as given (a
    narrower box than the bounds: the range a certificate's deviations visited), or Vars at
    their bounds (None: infinite)."""
    if isinstance(varying, dict) and all(isinstance(k, int) for k in varying):
        return varying
    if hasattr(varying, "items"):
        return {id(v): (float(lo), float(hi)) for v, (lo, hi) in varying.items()}
    return {id(v): (-math.inf if v.lb is None else float(v.lb), math.inf if v.ub is None else float(v.ub))
            for v in varying}


def _range(e: Any, varying: dict) -> tuple[float, float]:
    """Interval bounds of ``e``: the ``varying`` Vars (id -> (lo, hi)) over their boxes, every
    other Var at its value; the whole line where arithmetic cannot bound it."""
    from pyomo.common.collections import ComponentMap
    from pyomo.contrib.fbbt.expression_bounds_walker import ExpressionBoundsVisitor

    leaf = ComponentMap()
    for v in identify_variables(e, include_fixed=True):
        if id(v) in varying:
            leaf[v] = varying[id(v)]
        elif v.value is None:
            return _WHOLE
        else:
            leaf[v] = (float(v.value), float(v.value))
    try:
        lo, hi = ExpressionBoundsVisitor(leaf_bounds=leaf).walk_expression(e)
    except Exception:  # noqa: BLE001 - an operation the interval arithmetic cannot bound
        return _WHOLE
    lo, hi = float(lo), float(hi)
    return (lo, hi) if not (math.isnan(lo) or math.isnan(hi)) else _WHOLE


def curvature(expr: Any, decisions: Iterable[Any], varying: Any = ()) -> Curvature:
    """The curvature of ``expr`` in ``decisions`` proven by the rules of the module doc (every
    other Var and Param a constant at its current value; ``varying`` Vars anywhere within their
    bounds, or within the ``(lo, hi)`` a mapping (a ComponentMap) of each to ``(lo, hi)`` gives).

    Parameters
    ----------
    expr : Pyomo expression, Var, Param or number
    decisions : iterable of VarData
        The variables; the bounds of each give the signs the rules need.

    Returns
    -------
    Curvature
        ``CONSTANT``, ``AFFINE``, ``CONVEX``, ``CONCAVE`` or ``UNKNOWN`` (not proven).
    """
    return _Walker(decisions, varying)(expr)[0]


#: decisions beyond which the interval-Hessian rule is not tried (a dense symbolic Hessian)
_HESSIAN_MAX = 12
#: symbolic second derivatives, per (expression, decisions): ``(expr, [[d2 / dxi dxj]])``; the
#: structure of a follower's objective does not change between certificates, its constants do
_HESSIANS: dict[tuple, tuple] = {}


def _second_derivatives(expr: Any, xs: list) -> list | None:
    key = (id(expr), tuple(id(v) for v in xs))
    hit = _HESSIANS.get(key)
    if hit is not None and hit[0] is expr:
        return hit[1]
    try:
        first = differentiate(expr, wrt_list=xs, mode=Modes.reverse_symbolic)
        H = [[0.0] * len(xs) for _ in xs]
        for i, d in enumerate(first):
            if type(d) in (int, float):
                continue
            for j, s in enumerate(differentiate(d, wrt_list=xs, mode=Modes.reverse_symbolic)):
                H[i][j] = s
    except Exception:  # noqa: BLE001 - an expression the symbolic differentiation cannot take
        H = None
    if len(_HESSIANS) > 512:
        _HESSIANS.clear()
    _HESSIANS[key] = (expr, H)
    return H


def hessian_curvature(expr: Any, decisions: Iterable[Any], varying: Any = ()) -> Curvature:
    """The curvature of ``expr`` proven by interval bounds on its Hessian (the rule the
    disciplined-convex rules lack for a nonlinear term of several decisions, such as a Cournot
    revenue ``y p(x + y + ...)``): every second derivative, symbolic, is bounded by interval
    arithmetic over the decisions' box (:mod:`pyomo.contrib.fbbt`; every other Var a constant
    at its value), and the interval Hessian is proven semi-definite by Gershgorin's discs
    (``H_ii >= sum_{j != i} |H_ij|`` at the bounds' worst case, convex; the mirror for concave).
    A Hessian whose bounds vanish is affine. Sufficient, never necessary: UNKNOWN for a
    decision without finite bounds, more than ``_HESSIAN_MAX`` decisions, or bounds that do not
    settle the sign on any of up to ``_SPLITS`` boxes the decisions' box is bisected into.
    ``varying`` Vars range over their bounds (as in :func:`curvature`)."""
    from pyomo.common.collections import ComponentMap

    ids = {id(v) for v in decisions}
    moving = {i: b for i, b in _boxes(varying).items() if i not in ids}
    xs = [v for v in identify_variables(expr, include_fixed=False) if id(v) in ids]
    if not xs:
        return C
    if len(xs) > _HESSIAN_MAX or any(v.lb is None or v.ub is None for v in xs):
        return U
    H = _second_derivatives(expr, xs)
    if H is None:
        return U
    fixed = ComponentMap()  # the other Vars: their box (varying) or their value
    for row in H:
        for s in row:
            if type(s) in (int, float):
                continue
            for v in identify_variables(s, include_fixed=True):
                if id(v) in ids or v in fixed:
                    continue
                if id(v) in moving:
                    if not all(map(math.isfinite, moving[id(v)])):
                        return U
                    fixed[v] = moving[id(v)]
                elif v.value is None:
                    return U
                else:
                    fixed[v] = (float(v.value), float(v.value))
    box = [(float(v.lb), float(v.ub)) for v in xs]
    # bisect the decisions' box where the interval bounds over the whole of it do not settle the
    # sign (their dependency problem: y Q**-3 - Q**-2 for a Cournot revenue, Q = y + rest, is
    # negative for every y, its intervals over y in [0, 150] are not), up to _SPLITS boxes
    boxes, found, done = [box], [], 0
    while boxes:
        b = boxes.pop()
        c = _hessian_box(H, xs, b, fixed)
        done += 1
        if c is U:
            if len(boxes) + done + 2 > _SPLITS:
                return U
            k = max(range(len(b)), key=lambda t: b[t][1] - b[t][0])
            mid = 0.5 * (b[k][0] + b[k][1])
            boxes += [b[:k] + [(b[k][0], mid)] + b[k + 1:], b[:k] + [(mid, b[k][1])] + b[k + 1:]]
            continue
        found.append(c)
    if all(c is A for c in found):
        return A
    if all(c in (A, VX) for c in found):
        return VX
    if all(c in (A, CV) for c in found):
        return CV
    return U


#: the most boxes :func:`hessian_curvature` bounds its Hessian over (the decisions' box bisected)
_SPLITS = 32


def _hessian_box(H: list, xs: list, box: list, fixed: Any) -> Curvature:
    """The curvature the interval Hessian ``H`` proves over the decisions ``xs`` in ``box``
    (``[(lo, hi), ...]``), the other Vars in ``fixed`` (a ComponentMap to their ranges)."""
    from pyomo.common.collections import ComponentMap
    from pyomo.contrib.fbbt.expression_bounds_walker import ExpressionBoundsVisitor

    leaf = ComponentMap(fixed.items())
    for v, b in zip(xs, box):
        leaf[v] = b
    n = len(xs)
    lo, hi = np.zeros((n, n)), np.zeros((n, n))
    try:
        for i in range(n):
            for j in range(n):
                s = H[i][j]
                if type(s) in (int, float):
                    lo[i, j] = hi[i, j] = float(s)
                    continue
                lo[i, j], hi[i, j] = ExpressionBoundsVisitor(leaf_bounds=leaf).walk_expression(s)
    except Exception:  # noqa: BLE001 - an operation the interval arithmetic cannot bound
        return U
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return U
    if np.all(lo == 0.0) and np.all(hi == 0.0):
        return A
    off = np.maximum(np.abs(lo), np.abs(hi))
    np.fill_diagonal(off, 0.0)
    radius = off.sum(axis=1)
    if np.all(np.diag(lo) - radius >= 0.0):
        return VX
    if np.all(np.diag(hi) + radius <= 0.0):
        return CV
    return U


def strictly_convex_quadratic(objective: Any, decisions: Iterable[Any]) -> bool:
    """``objective`` (minimised; maximised: its negative) is a quadratic in ``decisions`` whose
    Hessian, the same everywhere (no Var left in a second derivative), is positive definite:
    over a convex feasible set its minimiser is unique, whatever the other players do."""
    xs = list(decisions)
    if not xs or len(xs) > _HESSIAN_MAX:
        return False
    H = _second_derivatives(objective.expr, xs)
    if H is None:
        return False
    M = np.zeros((len(xs), len(xs)))
    for i, row in enumerate(H):
        for j, h in enumerate(row):
            if type(h) not in (int, float):
                if hasattr(h, "is_expression_type") and any(True for _ in identify_variables(h)):
                    return False
                h = float(pyo.value(h))
            M[i, j] = h
    if objective.sense == pyo.maximize:
        M = -M
    eig = np.linalg.eigvalsh(0.5 * (M + M.T))
    return bool(eig[0] > 1e-9 * max(1.0, float(np.max(np.abs(eig)))))


def _proven(walker: Any, expr: Any, decisions: list) -> Curvature:
    """The rules' curvature of ``expr``, the interval-Hessian rule where they prove none."""
    c = walker(expr)[0]
    if c is U:
        c = hessian_curvature(expr, decisions, walker.varying)
    return c


def convex_program(objective: Any, constraints: Iterable[Any], decisions: Iterable[Any],
                   varying: Any = ()) -> tuple[bool, str]:
    """Is ``objective`` over ``constraints`` (bounds of ``decisions`` included) a convex program
    in ``decisions``: a convex objective minimised or a concave one maximised, equalities affine,
    ``body <= upper`` with a convex body and ``body >= lower`` with a concave one? With
    ``varying`` (other players' Vars), proven for all their values within their bounds.

    Returns
    -------
    (bool, str)
        Proven, and the first part the rules could not prove ("" when proven).
    """
    decisions = list(decisions)
    walker = _Walker(decisions, varying)
    c = _proven(walker, objective.expr, decisions)
    if objective.sense == pyo.minimize and not c.is_convex:
        return False, f"objective {objective.name} minimised is {c.value}, not proven convex"
    if objective.sense == pyo.maximize and not c.is_concave:
        return False, f"objective {objective.name} maximised is {c.value}, not proven concave"
    for con in constraints:
        b = _proven(walker, con.body, decisions)
        if con.equality:
            if not b.is_affine:
                return False, f"equality {con.name} is {b.value}, not proven affine"
            continue
        if con.has_ub() and not b.is_convex:
            return False, f"constraint {con.name} (<=) is {b.value}, not proven convex"
        if con.has_lb() and not b.is_concave:
            return False, f"constraint {con.name} (>=) is {b.value}, not proven concave"
    return True, ""


#: the attribute that :func:`declare_convex_program` sets on a player's block (public: a package
#: below ``epec``, such as ``models.build_game``, declares its players by setting it directly)
DECLARED_ATTRIBUTE = "epec_convex_program"
_DECLARED = DECLARED_ATTRIBUTE


def declare_convex_program(block: Any, reason: str) -> None:
    """Declare player ``block``'s problem a convex program (with the other players fixed) for
    a reason the rules of :func:`curvature` cannot prove, e.g. ``"concave (docs/model.md §4)"``.

    The certificate then takes the player's KKT points as its best replies and names the
    method ``"declared <reason>"``. The declaration is the modeller's proof: a wrong one makes a
    wrong certificate. It travels with the model when the model is cloned.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"reason: must be a non-empty string, got {reason!r}")
    setattr(block, _DECLARED, reason)


def declared_reason(block: Any) -> str | None:
    """The reason :func:`declare_convex_program` gave for ``block`` (None when undeclared)."""
    return getattr(block, _DECLARED, None)
