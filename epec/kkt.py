"""Automatic KKT systems of Pyomo players, with lifting of shared aggregates.

A *player* is a ``pyo.Block`` (or one element of an indexed block): its decision variables are
the unfixed Vars declared on it (sub-blocks included), its objective is its one active
Objective, its constraints are its active Constraints. Every other Var is a parameter to it.

:func:`kkt` writes the player's first-order conditions (Nocedal & Wright, *Numerical
Optimization*, 2nd ed., Thm. 12.1) beside the model, in minimisation form ``f = +-obj``::

    grad f + sum_eq mu grad h + sum_up lam_up grad g - sum_lo lam_lo grad g - nu_lb + nu_ub = 0
    0 <= lam_lo  _|_  g - lo >= 0,   0 <= lam_up  _|_  up - g >= 0,
    0 <= nu_lb   _|_  x - lb >= 0,   0 <= nu_ub   _|_  ub - x >= 0,

with each complementarity a :class:`pyomo.mpec.Complementarity` component.

Multipliers named by the user (:func:`epec.multiplier`): a placeholder registered for one of the
player's constraints is bound to that constraint's multipliers by one equality in the KKT block,
``p == -w`` (minimised) or ``p == w`` (maximised), ``w = mu`` or ``lam_up - lam_lo``: the shadow
price ``d obj* / d bound`` (see :mod:`epec.multipliers`).

Lifting: a named ``pyo.Expression`` declared outside the player's block that its objective or
constraints reference (a shared aggregate such as ``S_m = sum_k IoM_km``) is replaced by one
auxiliary Var ``s`` with ``s == S`` added once per model, and gradients use the chain rule
``dU/dx = dU/dx|_s + dU/ds dS/dx``. Each stationarity row then touches the player's own
variables and ``s`` only, so the Jacobian stays sparse (O(N M) instead of O(N^2 M)).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyomo.environ as pyo
from pyomo.common.modeling import unique_component_name
from pyomo.core.base.block import BlockData
from pyomo.core.expr.calculus.derivatives import Modes, differentiate
from pyomo.core.expr.visitor import (
    StreamBasedExpressionVisitor,
    identify_variables,
    replace_expressions,
)
from pyomo.mpec import Complementarity, complements

from .multipliers import bound_multipliers

__all__ = [
    "KKTError",
    "KKTResidual",
    "KKTSystem",
    "LiftedAggregates",
    "kkt",
    "player_variables",
    "player_objective",
]


class KKTError(ValueError):
    """A player that :func:`kkt` cannot differentiate (no objective, integer variables...)."""


def owned_by(component: Any, block: BlockData) -> bool:
    """True if ``component`` lives on ``block`` or one of its sub-blocks."""
    b = component.parent_block()
    while b is not None:
        if b is block:
            return True
        b = b.parent_block()
    return False


def player_variables(block: BlockData) -> list:
    """The player's decision variables: unfixed VarData declared on ``block`` (sub-blocks too)."""
    out = []
    for v in block.component_data_objects(pyo.Var, descend_into=True, sort=True):
        if v.fixed:
            continue
        if not v.is_continuous():
            raise KKTError(f"{block.name}: variable {v.name} is not continuous; KKT needs a continuous domain")
        out.append(v)
    return out


def player_objective(block: BlockData) -> Any:
    """The player's single active Objective (sub-blocks searched too)."""
    objs = list(block.component_data_objects(pyo.Objective, active=True, descend_into=True))
    if len(objs) != 1:
        raise KKTError(f"{block.name}: a player needs exactly one active Objective, found {len(objs)}")
    return objs[0]


class _ExternalNamed(StreamBasedExpressionVisitor):
    """Collect named Expressions declared outside ``block`` (descending through local ones)."""

    def __init__(self, block: BlockData) -> None:
        super().__init__()
        self.block = block
        self.found: dict[int, Any] = {}

    def beforeChild(self, node: Any, child: Any, child_idx: int) -> tuple[bool, Any]:
        if type(child) in (int, float) or not hasattr(child, "is_expression_type"):
            return False, None
        if not child.is_expression_type():
            return False, None
        if child.is_named_expression_type() and not owned_by(child, self.block):
            self.found[id(child)] = child
            return False, None
        return True, None

    def initializeWalker(self, expr: Any) -> tuple[bool, Any]:
        walk, _ = self.beforeChild(None, expr, 0)
        return walk, None

    def exitNode(self, node: Any, data: Any) -> None:
        return None


class LiftedAggregates:
    """The auxiliary variables ``s == S`` of the shared aggregates of one model.

    Created on demand by :func:`kkt` (one instance per model, stored on the model's
    ``_epec_aggregates`` block); players that use the same aggregate share its ``s``.
    """

    def __init__(self, model: BlockData) -> None:
        self.model = model
        self.block = pyo.Block(concrete=True)
        model.add_component(unique_component_name(model, "_epec_aggregates"), self.block)
        self.block.s = pyo.VarList()
        self.block.define = pyo.ConstraintList()
        self._var: dict[int, Any] = {}
        self._grad: dict[int, dict[int, Any]] = {}
        self.pairs: list[tuple[Any, Any, Any]] = []  # (named expression, s, defining constraint)

    @staticmethod
    def of(model: BlockData) -> "LiftedAggregates":
        """The registry of ``model``, created the first time."""
        reg = getattr(model, "_epec_lifted", None)
        if reg is None or reg.model is not model:
            reg = LiftedAggregates(model)
            object.__setattr__(model, "_epec_lifted", reg)
        return reg

    def var(self, named: Any) -> Any:
        """The auxiliary Var of aggregate ``named``, with its defining equality added once."""
        key = id(named)
        if key not in self._var:
            s = self.block.s.add()
            try:
                s.set_value(pyo.value(named, exception=False), skip_validation=True)
            except (ValueError, TypeError, ZeroDivisionError):
                pass
            con = self.block.define.add(s == named.expr)
            self._var[key] = s
            self.pairs.append((named, s, con))
        return self._var[key]

    def gradient(self, named: Any) -> dict[int, Any]:
        """``dS/dx`` for every variable of aggregate ``named``, by id (computed once, one sweep)."""
        key = id(named)
        if key not in self._grad:
            xs = list(identify_variables(named.expr, include_fixed=False))
            ders = differentiate(named.expr, wrt_list=xs, mode=Modes.reverse_symbolic) if xs else []
            self._grad[key] = {id(x): d for x, d in zip(xs, ders)}
        return self._grad[key]


def _is_zero(e: Any) -> bool:
    return type(e) in (int, float) and e == 0


def _gradient(expr: Any, xs: list, block: BlockData, lifted: LiftedAggregates | None) -> list:
    """``d expr / d x`` for each x in ``xs`` (chain rule through lifted aggregates)."""
    if lifted is None:
        return differentiate(expr, wrt_list=xs, mode=Modes.reverse_symbolic)
    finder = _ExternalNamed(block)
    finder.walk_expression(expr)
    ids = {id(x) for x in xs}
    external = []
    for named in finder.found.values():
        g = lifted.gradient(named)
        if any(k in ids for k in g):  # an aggregate free of this player's variables stays a parameter
            external.append(named)
    if not external:
        return differentiate(expr, wrt_list=xs, mode=Modes.reverse_symbolic)
    svars = [lifted.var(named) for named in external]
    lifted_expr = replace_expressions(
        expr,
        {id(named): s for named, s in zip(external, svars)},
        descend_into_named_expressions=True,
        remove_named_expressions=True,
    )
    ders = differentiate(lifted_expr, wrt_list=xs + svars, mode=Modes.reverse_symbolic)
    direct, via_s = ders[: len(xs)], ders[len(xs):]
    out = []
    for x, d in zip(xs, direct):
        terms = [] if _is_zero(d) else [d]
        for named, dU_ds in zip(external, via_s):
            dS_dx = lifted.gradient(named).get(id(x))
            if dS_dx is not None and not _is_zero(dU_ds) and not _is_zero(dS_dx):
                terms.append(dU_ds * dS_dx)
        out.append(sum(terms) if terms else 0)
    return out


@dataclass(frozen=True)
class KKTResidual:
    """Numerical residuals of a KKT system at the current variable values (all >= 0).

    ``stationarity`` = max |grad L|, ``feasibility`` = max violation of the player's
    constraints, bounds and multiplier signs, ``complementarity`` = max |min(a, b)| over the
    pairs ``a >= 0 _|_ b >= 0``; ``max`` is the largest of the three.
    """

    stationarity: float
    feasibility: float
    complementarity: float

    @property
    def max(self) -> float:
        return max(self.stationarity, self.feasibility, self.complementarity)


@dataclass
class KKTSystem:
    """The KKT system :func:`kkt` built for one player.

    Attributes
    ----------
    player : BlockData
        The player's block.
    block : BlockData
        Block holding multipliers, ``stationarity[k]`` (row k belongs to ``variables[k]``) and
        the ``complementarity`` component.
    variables : list
        The player's decision variables.
    objective : ObjectiveData
        The player's objective (deactivated when ``deactivate=True``).
    equalities : list
        ``(constraint, multiplier)`` for each equality constraint.
    pairs : list
        ``(a, b)`` expressions with ``a >= 0 _|_ b >= 0``, in the order of ``complementarity``.
    lifted : LiftedAggregates or None
        The registry of lifted aggregates, when lifting was on.
    multipliers : list
        ``(placeholder, constraint, definition)`` for each :func:`epec.multiplier` of one of the
        player's constraints: ``definition`` (in ``block``) binds the placeholder Var to the
        constraint's multipliers.
    constraints : list
        The player's own constraints (active when derived; the inequalities are deactivated
        with ``deactivate=True``): its problem, for the certificate's best-reply check.
    """

    player: BlockData
    block: BlockData
    variables: list
    objective: Any
    equalities: list = field(default_factory=list)
    pairs: list = field(default_factory=list)
    lifted: LiftedAggregates | None = None
    multipliers: list = field(default_factory=list)
    constraints: list = field(default_factory=list)

    def residual(self, include_lifted: bool = True) -> KKTResidual:
        """Evaluate stationarity, feasibility and ``min(a, b)`` at the current values.

        Computed from the Pyomo expressions directly, independently of any solver report.
        ``include_lifted=False`` leaves out the lifted aggregates' definitions ``s = S(y)``
        (shared by every player of a game: a caller walking all players checks them once).
        """
        val = lambda e: float(pyo.value(e))  # noqa: E731
        stat = max((abs(val(c.body)) for c in self.block.stationarity.values()), default=0.0)
        feas = 0.0
        for con, _ in self.equalities:
            feas = max(feas, abs(val(con.body) - val(con.lower)))
        for _, _, definition in self.multipliers:
            feas = max(feas, abs(val(definition.body) - val(definition.lower)))
        comp = 0.0
        for a, b in self.pairs:
            va, vb = val(a), val(b)
            feas = max(feas, -va, -vb)
            comp = max(comp, abs(min(va, vb)))
        if include_lifted and self.lifted is not None:
            for named, s, _ in self.lifted.pairs:
                feas = max(feas, abs(val(s) - val(named)))
        return KKTResidual(stat, max(feas, 0.0), comp)


def kkt(
    block: BlockData,
    *,
    lift: bool = True,
    into: BlockData | None = None,
    deactivate: bool = True,
) -> KKTSystem:
    """Derive and add the KKT system of player ``block`` to its model.

    ``grad_x f(x) + J(x)^T lambda - nu_lb + nu_ub = 0`` with complementarity
    ``0 <= multiplier _|_ slack >= 0`` per inequality side and bound (Nocedal & Wright, 2006,
    Thm. 12.1); a maximised objective is minimised as ``-obj``.

    Parameters
    ----------
    block : BlockData
        The player (see module doc).
    lift : bool, default True
        Replace named Expressions declared outside ``block`` by shared auxiliary variables
        (chain rule), keeping the Jacobian sparse. ``False`` differentiates through them.
    into : BlockData, optional
        Where to add the KKT components; default a new block ``kkt_<player>`` on the model.
    deactivate : bool, default True
        Deactivate the player's objective and its inequality constraints: the complementarity
        conditions carry them from now on. Equalities stay active (primal feasibility).

    Returns
    -------
    KKTSystem
        The added components and the data to evaluate residuals.

    Raises
    ------
    KKTError
        No or several active objectives, a non-continuous variable, no decision variable.
    """
    model = block.model()
    xs = player_variables(block)
    if not xs:
        raise KKTError(f"{block.name}: a player needs at least one unfixed Var declared on its block")
    obj = player_objective(block)
    lifted = LiftedAggregates.of(model) if lift else None
    if into is None:
        into = pyo.Block(concrete=True)
        name = "kkt_" + "".join(ch if ch.isalnum() else "_" for ch in block.name)
        model.add_component(unique_component_name(model, name), into)
    built = _KKTBuilder(block, into, xs, lifted, 1.0 if obj.sense == pyo.minimize else -1.0)
    for k, d in enumerate(_gradient(obj.expr, xs, block, lifted)):
        if not _is_zero(d):
            built.rows[k].append(d if built.sign > 0 else -d)
    into.mu = pyo.VarList()
    into.lam = pyo.VarList(domain=pyo.NonNegativeReals)
    # the user's named multipliers of this player's constraints (epec.multiplier)
    built.named = {id(c): p for p, c in bound_multipliers(model) if owned_by(c, block)}
    into.multiplier_definition = pyo.ConstraintList()
    cons = list(block.component_data_objects(pyo.Constraint, active=True, descend_into=True, sort=True))
    for con in cons:
        built.add_constraint(con, deactivate)
    built.add_bounds()
    pairs = built.pairs
    into.stationarity = pyo.Constraint(range(len(xs)), rule=lambda b, k: sum(built.rows[k]) == 0 if built.rows[k]
                                       else pyo.Constraint.Skip)
    into.complementarity = Complementarity(
        range(len(pairs)), rule=lambda b, i: complements(pairs[i][0] >= 0, pairs[i][1] >= 0)
    )
    if deactivate:
        obj.deactivate()
    return KKTSystem(block, into, xs, obj, built.equalities, pairs, lifted, built.multipliers, cons)


@dataclass
class _KKTBuilder:
    """The KKT system of one player as :func:`kkt` builds it: the stationarity rows (the terms of
    ``grad_x f + J^T lambda - nu_lb + nu_ub`` per decision), the complementarity pairs
    ``(multiplier, slack)``, the equalities with their multipliers, and the definitions of the
    user's named multipliers (:func:`epec.multiplier`).

    Attributes
    ----------
    block, into : BlockData
        The player and where its KKT components go.
    xs : list
        The player's decision Vars.
    lifted : LiftedAggregates or None
    sign : float
        1 for a minimised objective, -1 for a maximised one (minimised as ``-obj``).
    named : dict
        ``id(constraint) -> placeholder`` of the user's named multipliers.
    """

    block: Any
    into: Any
    xs: list
    lifted: Any
    sign: float
    named: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)
    index: dict = field(default_factory=dict)
    pairs: list = field(default_factory=list)
    equalities: list = field(default_factory=list)
    multipliers: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.index = {id(x): k for k, x in enumerate(self.xs)}
        self.rows = [[] for _ in self.xs]

    def bind(self, con: Any, w: Any) -> None:
        """``placeholder == -sign w``: ``d obj* / d t`` with the bounds of ``con`` raised by ``t``."""
        p = self.named.get(id(con))
        if p is None:
            return
        p.unfix()
        p.set_value(0.0, skip_validation=True)
        definition = self.into.multiplier_definition.add(p + self.sign * w == 0)
        self.multipliers.append((p, con, definition))

    def add_terms(self, body: Any, mult: Any, coef: float) -> None:
        """``coef mult grad body`` added to the stationarity rows of the player's decisions in ``body``."""
        local = [x for x in identify_variables(body, include_fixed=False) if id(x) in self.index]
        if not local:
            return
        for x, d in zip(local, _gradient(body, local, self.block, self.lifted)):
            if not _is_zero(d):
                self.rows[self.index[id(x)]].append(coef * mult * d)

    def add_constraint(self, con: Any, deactivate: bool) -> None:
        """An equality's multiplier ``mu`` (free), or an inequality's ``lam`` per side with its
        complementarity pair; the inequality deactivated with ``deactivate``."""
        into = self.into
        if con.equality:
            mu = into.mu.add()
            mu.set_value(0.0)
            self.add_terms(con.body, mu, 1.0)
            self.equalities.append((con, mu))
            self.bind(con, mu)
            return
        w = []  # the coefficient of grad body in the stationarity rows: lam_up - lam_lo
        if con.has_lb():
            lam = into.lam.add()
            lam.set_value(0.0)
            self.add_terms(con.body, lam, -1.0)
            self.pairs.append((lam, con.body - con.lower))
            w.append(-lam)
        if con.has_ub():
            lam = into.lam.add()
            lam.set_value(0.0)
            self.add_terms(con.body, lam, 1.0)
            self.pairs.append((lam, con.upper - con.body))
            w.append(lam)
        self.bind(con, sum(w))
        if deactivate:
            con.deactivate()

    def add_bounds(self) -> None:
        """The bounds' multipliers ``nu_lb``, ``nu_ub`` of every decision and their pairs."""
        for k, x in enumerate(self.xs):
            if x.lower is not None:
                nu = self.into.lam.add()
                nu.set_value(0.0)
                self.rows[k].append(-nu)
                self.pairs.append((nu, x - x.lower))
            if x.upper is not None:
                nu = self.into.lam.add()
                nu.set_value(0.0)
                self.rows[k].append(nu)
                self.pairs.append((nu, x.upper - x))

