"""A follower's constraint multiplier, named in the user's model: :func:`multiplier`.

A leader is often paid a dual: a generator the locational price, the multiplier of the system
operator's node balance (Hobbs, *IEEE Trans. Power Syst.* 15, 2000); MacMPEC's objectives use
multipliers too. The followers' multipliers exist only in the KKT system that :func:`epec.kkt`
derives on the toolkit's clone, so :func:`multiplier` hands the user a placeholder instead: a
Var on the model's ``_epec_multipliers`` block, registered with its constraint. When the KKT
system of the follower that owns the constraint is derived, the placeholder is bound to that
constraint's own multipliers by one equality (in the KKT block), so it is one more unknown of
the followers' response: the implicit leader step differentiates through it, the full-space MPEC
carries it, the certificate evaluates it at every deviation, and after a solve it holds the
multiplier's value.

Sign convention: the shadow price. Pyomo stores a constraint as ``lower <= body <= upper``
(``con.lower``, ``con.body``, ``con.upper``; a constant side is the bound, otherwise
``body = left - right`` against 0). The multiplier is the derivative of the follower's optimal
objective value, in the objective's own sense (minimised or maximised), when every bound of the
constraint is raised by ``t``::

    multiplier(con) = d V*(t) / dt  at t = 0,   V*(t) = opt { obj : lower + t <= body <= upper + t, ... }

In terms of :func:`epec.kkt`'s multipliers (stationarity ``grad f + w grad body + ... = 0`` of
``f = +-obj``, with ``w = mu`` for an equality and ``w = lam_up - lam_lo`` for an inequality),
``multiplier = -w`` for a minimised objective and ``+w`` for a maximised one. Examples: the
balance ``g - d == D`` of a cost-minimising operator has multiplier ``d cost* / d D``, the
locational price; a capacity ``y <= x`` of a maximising follower has ``d obj* / d x >= 0``;
of a minimising one ``<= 0``.
"""
from __future__ import annotations

from typing import Any, Iterable

import pyomo.environ as pyo
from pyomo.core.base.block import BlockData
from pyomo.core.base.constraint import ConstraintData

__all__ = ["MultiplierError", "multiplier", "bound_multipliers", "check_multipliers"]

#: the block that holds the placeholders on the user's (root) model
BLOCK_NAME = "_epec_multipliers"


class MultiplierError(ValueError):
    """A multiplier placeholder that cannot be bound (its constraint is no follower's)."""


def _registry(model: BlockData, create: bool) -> BlockData | None:
    """The model's placeholder block (created on demand), None when absent and not created."""
    block = model.component(BLOCK_NAME)
    if block is None:
        if not create:
            return None
        block = pyo.Block(concrete=True)
        model.add_component(BLOCK_NAME, block)
        block.value = pyo.VarList(doc="multipliers of followers' constraints (epec.multiplier)")
        # (placeholder VarData, ConstraintData) in creation order; a clone of the model maps both
        block.pairs = []
        block.index = {}
    elif not hasattr(block, "pairs"):
        raise MultiplierError(f"epec.multiplier: the model already has a component {BLOCK_NAME!r} "
                              f"that is not the multipliers' block")
    return block


def _placeholder(con: ConstraintData) -> Any:
    block = _registry(con.model(), create=True)
    entry = block.index.get(id(con))
    if entry is None or entry[0] is not con:  # a cloned registry keys the original's ids: rebuild
        block.index = {id(c): (c, v) for v, c in block.pairs}
        entry = block.index.get(id(con))
    if entry is not None:
        return entry[1]
    var = block.value.add()
    block.pairs.append((var, con))
    block.index[id(con)] = (con, var)
    return var


def multiplier(constraint: Any) -> Any:
    """The multiplier of a follower's constraint, as a Var for a leader's objective or constraints.

    ``V'(t)`` of the follower's optimal value when the constraint's bounds are raised by ``t``
    (the shadow price; see the module doc for the sign). The placeholder lives on the model's
    ``_epec_multipliers`` block; :func:`epec.solve_bilevel`, :func:`epec.solve_epec`,
    :func:`epec.solve_nash` and :func:`epec.certify` bind it to the constraint's multiplier and,
    after a solve, leave the multiplier's value in it (ask before the solve: a placeholder made
    afterwards has no value yet). Calling again with the same constraint returns the same Var.
    A follower's own objective or constraints may use another follower's multiplier too: it
    takes it as given, as a price-taker does (a Nash game among the followers).

    Parameters
    ----------
    constraint : ConstraintData or IndexedConstraint
        A constraint of a follower's block (an element ``m.iso.balance[n]``, a scalar
        constraint, or an indexed constraint for all its elements).

    Returns
    -------
    VarData or dict
        The placeholder; for an indexed constraint, ``{index: placeholder}``.

    Raises
    ------
    TypeError
        ``constraint`` is not a Pyomo constraint (a Var's bounds have no placeholder: write
        such a bound as a Constraint on the follower's block to name its multiplier).

    Examples
    --------
    >>> lmp = multiplier(m.iso.balance)                          # doctest: +SKIP
    >>> m.gen1.profit = pyo.Objective(expr=(lmp[1] - c1) * m.gen1.q, sense=pyo.maximize)  # doctest: +SKIP
    """
    if isinstance(constraint, ConstraintData):
        return _placeholder(constraint)
    if isinstance(constraint, pyo.Constraint) and constraint.is_indexed():
        return {k: _placeholder(c) for k, c in constraint.items()}
    raise TypeError(f"epec.multiplier: expected a Pyomo Constraint, got {type(constraint).__name__} {constraint!r}")


def bound_multipliers(model: BlockData) -> list[tuple[Any, ConstraintData]]:
    """``(placeholder, constraint)`` for every :func:`multiplier` of ``model`` (empty when none)."""
    block = _registry(model, create=False)
    return [] if block is None else list(block.pairs)


def check_multipliers(model: BlockData, followers: Iterable[BlockData]) -> list[tuple[Any, ConstraintData]]:
    """:func:`bound_multipliers` of ``model``, each checked to name an active constraint of one of
    ``followers`` (whose KKT systems bind them).

    Raises
    ------
    MultiplierError
        Naming the constraint that is not a follower's, or not active.
    """
    from .kkt import owned_by

    followers = list(followers)
    pairs = bound_multipliers(model)
    for _, con in pairs:
        if not any(owned_by(con, f) for f in followers):
            names = ", ".join(f.name for f in followers) or "none"
            raise MultiplierError(f"epec.multiplier({con.name}): {con.name} is not a constraint of a follower "
                                  f"(followers: {names}); only a follower's constraint has a multiplier")
        if not con.active:
            raise MultiplierError(f"epec.multiplier({con.name}): {con.name} is deactivated, so it has no multiplier")
    return pairs
