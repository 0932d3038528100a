"""The one model shape the bilevel instances share, written once.

``min_x F(x, y) s.t. G(x, y) <= 0, y in argmin_y { f(x, y) : g(x, y) <= 0, y in box }``, with
``x`` the model-level Var ``x[1..n]`` (the leader: every Var outside the follower) and ``y``
the follower block's Var ``follower.y[1..m]``. Leader constraints ``G`` are model-level
constraints (a leader's own, issue 15 item 1); follower constraints ``g`` live on the follower.
"""
from __future__ import annotations

from typing import Callable, Sequence

import pyomo.environ as pyo

from .instance import Built, SkipInstance

__all__ = ["bilevel", "multiplier"]

Expr = Callable[[object, object], object]


def bilevel(
    x_bounds: Sequence[tuple[float | None, float | None]],
    y_bounds: Sequence[tuple[float | None, float | None]],
    F: Expr,
    f: Expr,
    g: Sequence[Expr] = (),
    G: Sequence[Expr] = (),
    x0: Sequence[float] | None = None,
    y0: Sequence[float] | None = None,
) -> Built:
    """A bilevel program as a Pyomo model.

    Parameters
    ----------
    x_bounds, y_bounds : sequences of (lb, ub)
        Bounds of ``x[1..n]`` and ``follower.y[1..m]`` (None: unbounded).
    F, f : callables ``(x, y) -> expression``
        The leader's and the follower's objectives, both minimised.
    g : callables ``(x, y) -> relational expression``
        The follower's constraints.
    G : callables ``(x, y) -> relational expression``
        The leader's constraints.
    x0, y0 : sequences of float, optional
        Starting values (default: the toolkit's, 0 projected on the bounds).
    """
    m = pyo.ConcreteModel()
    n, k = len(x_bounds), len(y_bounds)
    m.x = pyo.Var(range(1, n + 1), bounds=lambda _, i: x_bounds[i - 1],
                  initialize=(lambda _, i: x0[i - 1]) if x0 is not None else None)
    m.follower = fb = pyo.Block()
    fb.y = pyo.Var(range(1, k + 1), bounds=lambda _, j: y_bounds[j - 1],
                   initialize=(lambda _, j: y0[j - 1]) if y0 is not None else None)
    fb.obj = pyo.Objective(expr=f(m.x, fb.y), sense=pyo.minimize)
    fb.g = pyo.ConstraintList()
    for c in g:
        fb.g.add(c(m.x, fb.y))
    m.G = pyo.ConstraintList()
    for c in G:
        m.G.add(c(m.x, fb.y))
    m.obj = pyo.Objective(expr=F(m.x, fb.y), sense=pyo.minimize)
    return Built(m, followers=[fb], objectives=[m.obj])


def multiplier(constraint) -> object:
    """``epec.multiplier(constraint)``: the follower multiplier as an expression (issue 15 item 3).

    Raises
    ------
    SkipInstance
        When this installation of ``epec`` has no ``multiplier`` (the instance is then skipped).
    """
    try:
        from epec import multiplier as _multiplier
    except ImportError:
        raise SkipInstance("needs epec.multiplier") from None
    return _multiplier(constraint)
