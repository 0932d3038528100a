"""Nonconvex followers from the Mitsos-Barton test set (Mitsos & Barton, *A Test Set for Bilevel
Programs*, MIT technical report, 2006, updated 19 Sept. 2007; instances ``mb_1_1_xx`` as coded in
BASBLib's ``QP-NLP`` / ``LP-NLP`` folders, ``mb_2007_xx``), with their published optimal solutions.

A follower that minimises a nonconvex function has KKT points that are not its best reply, so a
solver that certifies only the KKT conditions returns wrong answers here (issue 15 item 2). Some
instances are built so that at the published optimum the follower has two global minimisers: the
published (optimistic) answer then has no unique reply and must not come back ``ok``. Where we
say so, the tie is derived by hand from the published objective.
"""
from __future__ import annotations

import pyomo.environ as pyo

from .build import bilevel
from .instance import Expect, Instance, Kind, Need

__all__ = ["INSTANCES"]

NC = frozenset({Need.NONCONVEX_FOLLOWER})
BOX = [(-1, 1)]


def _mb(mb: str, basblib: str) -> str:
    return f"Mitsos & Barton 2007 test set, {mb} (BASBLib {basblib})"


INSTANCES = [
    Instance(
        "mb_1_1_02",
        _mb("Example 3.9, mb_1_1_02", "LP-NLP/mb_2007_09"),
        Kind.BILEVEL,
        lambda: bilevel([(-10, 10)], BOX, F=lambda x, y: x[1], f=lambda x, y: y[1] ** 3,
                        G=[lambda x, y: -x[1] + y[1] <= 0]),
        objective=(-1.0,), point={"x[1]": -1.0, "follower.y[1]": -1.0},
        needs=NC | {Need.LEADER_CONSTRAINTS},
    ),
    Instance(
        "mb_1_1_03",
        _mb("Example 3.10, mb_1_1_03", "LP-NLP/mb_2007_10"),
        Kind.BILEVEL,
        # every x in [0.1, 1] is optimal (x is not compared); by hand the quartic's minimisers are
        # y = 1/2 (global, -1) and y = -1/2 (local, 0)
        lambda: bilevel([(0.1, 1)], BOX, F=lambda x, y: y[1],
                        f=lambda x, y: x[1] * (16 * y[1] ** 4 + 2 * y[1] ** 3 - 8 * y[1] ** 2 - 1.5 * y[1] + 0.5)),
        objective=(0.5,), point={"follower.y[1]": 0.5}, needs=NC,
    ),
    Instance(
        "mb_1_1_05",
        _mb("Example 3.12, mb_1_1_05", "QP-NLP/mb_2007_12"),
        Kind.BILEVEL,
        lambda: bilevel(BOX, BOX, F=lambda x, y: -x[1] + x[1] * y[1] + 10 * y[1] ** 2,
                        f=lambda x, y: -x[1] * y[1] ** 2 + 0.5 * y[1] ** 4),
        objective=(0.0,), point={"x[1]": 0.0, "follower.y[1]": 0.0}, needs=NC,
    ),
    Instance(
        "mb_1_1_06v",
        "BASBLib LP-NLP/mb_2007_13v (a variation of Mitsos & Barton 2007, Example 3.13, mb_1_1_06)",
        Kind.BILEVEL,
        lambda: bilevel(BOX, BOX, F=lambda x, y: x[1] + y[1],
                        f=lambda x, y: 0.5 * x[1] * y[1] ** 2 - y[1] * x[1] ** 3),
        objective=(-2.0,), point={"x[1]": -1.0, "follower.y[1]": -1.0}, needs=NC,
    ),
    Instance(
        "mb_1_1_08",
        _mb("Example 3.15, mb_1_1_08", "LP-NLP/mb_2007_15"),
        Kind.BILEVEL,
        lambda: bilevel(BOX, BOX, F=lambda x, y: x[1] + y[1],
                        f=lambda x, y: 0.5 * x[1] * y[1] ** 2 - y[1] ** 3 / 3),
        objective=(0.0,), point={"x[1]": -1.0, "follower.y[1]": 1.0}, needs=NC,
    ),
    Instance(
        "mb_1_1_09",
        _mb("Example 3.16, mb_1_1_09", "LP-NLP/mb_2007_16"),
        Kind.BILEVEL,
        lambda: bilevel(BOX, BOX, F=lambda x, y: 2 * x[1] + y[1],
                        f=lambda x, y: -0.5 * x[1] * y[1] ** 2 - y[1] ** 4 / 4),
        objective=(-2.0,), point={"x[1]": -1.0, "follower.y[1]": 0.0}, needs=NC,
        note="published with two optima, (-1, 0) and (-0.5, -1); at x = -0.5 the follower ties "
             "y = 0 and y = +-1 (objective 0, by hand), so only (-1, 0) has a unique reply",
    ),
    Instance(
        "mb_1_1_11",
        _mb("Example 3.18, mb_1_1_11", "QP-NLP/mb_2007_18"),
        Kind.BILEVEL,
        lambda: bilevel(BOX, BOX, F=lambda x, y: -x[1] ** 2 + y[1] ** 2,
                        f=lambda x, y: x[1] * y[1] ** 2 - y[1] ** 4 / 2),
        objective=(-1.0,), point={"x[1]": 1.0, "follower.y[1]": 0.0}, needs=NC,
    ),
    # --- the follower ties at the published optimum ----------------------------------------
    Instance(
        "mb_1_1_01",
        _mb("Example 3.8, mb_1_1_01", "QP-NLP/mb_2007_08"),
        Kind.BILEVEL,
        lambda: bilevel(BOX, BOX, F=lambda x, y: y[1] ** 2,
                        f=lambda x, y: x[1] * y[1] + pyo.exp(x[1]) * y[1],
                        G=[lambda x, y: y[1] <= 0.1, lambda x, y: -y[1] <= 0.1]),
        objective=(0.0,), point={"x[1]": -0.567, "follower.y[1]": 0.0}, digits=3,
        expect=Expect.INDIFFERENT, needs=NC | {Need.LEADER_CONSTRAINTS},
        note="the follower is linear in y with slope x + exp(x), zero at the published x (by hand): "
             "every y is a best reply there, and elsewhere y = +-1 breaks |y| <= 0.1",
    ),
    Instance(
        "mb_1_1_06",
        _mb("Example 3.13, mb_1_1_06", "LP-NLP/mb_2007_13"),
        Kind.BILEVEL,
        lambda: bilevel(BOX, BOX, F=lambda x, y: x[1] - y[1],
                        f=lambda x, y: 0.5 * x[1] * y[1] ** 2 - y[1] * x[1] ** 3),
        objective=(-1.0,), point={"x[1]": 0.0, "follower.y[1]": 1.0},
        expect=Expect.INDIFFERENT, needs=NC,
        note="at x = 0 the follower's objective is 0 for every y (by hand)",
    ),
    Instance(
        "mb_1_1_07",
        _mb("Example 3.14, mb_1_1_07", "QP-NLP/mb_2007_14"),
        Kind.BILEVEL,
        lambda: bilevel(BOX, BOX, F=lambda x, y: (x[1] - 0.25) ** 2 + y[1] ** 2,
                        f=lambda x, y: y[1] ** 3 / 3 - x[1] * y[1]),
        objective=(0.25,), point={"x[1]": 0.25, "follower.y[1]": 0.5},
        expect=Expect.INDIFFERENT, needs=NC,
        note="at x = 1/4 the follower ties y = 1/2 and y = -1 (both -1/12, by hand)",
    ),
    Instance(
        "mb_1_1_13",
        _mb("Example 3.20, mb_1_1_13", "QP-NLP/mb_2007_20"),
        Kind.BILEVEL,
        lambda: bilevel(BOX, BOX, F=lambda x, y: (x[1] - 0.25) ** 2 + y[1] ** 2,
                        f=lambda x, y: -x[1] ** 2 * y[1] + y[1] ** 3 / 3),
        objective=(0.313,), point={"x[1]": 0.5, "follower.y[1]": 0.5}, digits=3,
        expect=Expect.INDIFFERENT, needs=NC,
        note="F* = 0.3125 exactly (printed 0.313); at x = 1/2 the follower ties y = 1/2 and "
             "y = -1 (both -1/12, by hand)",
    ),
]
