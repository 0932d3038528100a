"""What one published test instance is: its model, who plays, what the literature says the
answer is, and how close the toolkit's answer must come to it.

An :class:`Instance` builds a fresh Pyomo model each time (:meth:`Instance.build`), names its
players (leaders, followers or Nash players, all Pyomo blocks; a bilevel leader is the model's
objective outside the follower), and carries the published answer: the leaders' objective
values as published (minimisation form, as the library prints them) and the published point
(Var name -> value; a Var left out is not compared). Numbers that a paper prints rounded to
``digits`` decimals are compared to that precision, never tighter.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import pyomo.environ as pyo

__all__ = ["Kind", "Expect", "Need", "Built", "Instance", "SkipInstance", "REL_TOL"]

#: the relative precision "right" asks for where the published numbers are exact
REL_TOL = 1e-4


class Kind(str, enum.Enum):
    """Which solve the instance is: one leader over followers, several leaders, or a Nash game."""

    BILEVEL = "bilevel"
    EPEC = "epec"
    NASH = "nash"


class Expect(str, enum.Enum):
    """What a correct toolkit must return.

    ``UNIQUE``: ``ok`` at the published point (a unique, certifiable answer). ``NONE``: no pure
    equilibrium exists, so never ``ok``. ``INDIFFERENT``: at the published optimum the follower
    has several best replies (the published answer is the optimistic one), so never ``ok``.
    """

    UNIQUE = "unique"
    NONE = "none"
    INDIFFERENT = "indifferent"


class Need(str, enum.Enum):
    """A feature of the toolkit the instance needs to be solved right (issue 15)."""

    LEADER_CONSTRAINTS = "leader_constraints"
    MULTIPLIERS = "multipliers"
    NONCONVEX_FOLLOWER = "nonconvex_follower"
    SHARED_CONSTRAINTS = "shared_constraints"


class SkipInstance(RuntimeError):
    """Raised by a builder that needs a toolkit feature this installation lacks (the reason)."""


@dataclass
class Built:
    """A fresh model with its players.

    Attributes
    ----------
    model : pyo.ConcreteModel
    leaders : list of blocks
        The leaders of an EPEC (empty for a bilevel: its leader is the model's objective).
    followers : list of blocks
        The followers of a bilevel or EPEC; the players of a Nash game.
    objectives : list of Objective
        The objectives whose values are compared with the published ones, in order.
    """

    model: pyo.ConcreteModel
    followers: list
    leaders: list = field(default_factory=list)
    objectives: list = field(default_factory=list)


@dataclass(frozen=True)
class Instance:
    """One published instance and its published answer.

    Parameters
    ----------
    name : str
        Short id (the library's name where it has one).
    source : str
        Citation: the paper and the library entry the numbers were transcribed from.
    kind : Kind
    builder : callable
        ``builder() -> Built``; may raise :class:`SkipInstance`.
    objective : tuple of float
        The published objective value of each leader (minimisation form of the library, or the
        sense of the leader's own Pyomo objective for games); empty when none is published.
    point : dict
        Published values of Vars by their Pyomo name (``"x[1]"``, ``"follower.y[2]"``).
    expect : Expect
    needs : frozenset of Need
    digits : int or None
        Decimals the source prints its numbers with; None where they are exact.
    note : str
        Why the expectation holds, where the source does not say it (derivations are marked).
    """

    name: str
    source: str
    kind: Kind
    builder: Callable[[], Built]
    objective: tuple = ()
    point: dict = field(default_factory=dict)
    expect: Expect = Expect.UNIQUE
    needs: frozenset = frozenset()
    digits: int | None = None
    note: str = ""

    def build(self) -> Built:
        """A fresh model (raises :class:`SkipInstance` where a needed feature is missing)."""
        return self.builder()

    def tolerance(self, published: float) -> float:
        """How far a value may be from ``published`` and still match: ``REL_TOL`` relative
        (scale ``max(1, |published|)``) or, for a rounded publication, half its last digit."""
        tol = REL_TOL * max(1.0, abs(published))
        if self.digits is not None:
            tol = max(tol, 0.5 * 10.0 ** (-self.digits) * (1.0 + 1e-9))
        return tol

    def compare(self, objective: list[float], point: dict[str, float]) -> tuple[bool, float]:
        """Whether ``objective`` and ``point`` match the published answer, and the largest relative
        error ``|v - v*| / max(1, |v*|)`` over the published numbers (nan when none compared)."""
        pairs = list(zip(objective, self.objective)) + [(point.get(k, math.nan), v) for k, v in self.point.items()]
        if not pairs:
            return False, math.nan
        match, worst = True, 0.0
        for got, want in pairs:
            if got is None or not math.isfinite(got):
                return False, math.inf
            err = abs(got - want)
            worst = max(worst, err / max(1.0, abs(want)))
            match = match and err <= self.tolerance(want)
        return match, worst

    @staticmethod
    def values(model: pyo.ConcreteModel, names: Any) -> dict[str, float]:
        """The current values of the Vars ``names`` of ``model`` (None for an unset Var)."""
        out = {}
        for n in names:
            v = model.find_component(n)
            if v is None:
                raise KeyError(f"instance point names {n!r}, which the model does not have")
            out[n] = None if v.value is None else float(v.value)
        return out
