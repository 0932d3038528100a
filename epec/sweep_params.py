"""What a sweep moves and how it solves: the parameters a sweep can sweep (:data:`PARAMETERS`),
a parameter set on a scenario (:func:`apply_parameter`, the IoM weights kept on the simplex,
``n_mu`` / ``n_msp`` redrawn), the values checked before any solve (:func:`check_values`), and
:class:`SweepOptions` (:mod:`epec.sweep`, :mod:`epec.sensitivity`)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from models.errors import InputError

__all__ = ["DISCRETE", "PARAMETERS", "SweepOptions", "apply_parameter", "check_values"]

#: the parameters whose values a sweep redraws the scenario for (not continuous: no derivative)
DISCRETE = ("n_mu", "n_msp")
_WEIGHTS = ("w_acc", "w_amt", "w_val")


def _fields() -> tuple[str, ...]:
    from models.scenario import MSP_FIELDS, MU_FIELDS, PAIR_FIELDS, SCALAR_FIELDS

    return MU_FIELDS + PAIR_FIELDS + MSP_FIELDS + SCALAR_FIELDS


#: every parameter a sweep can move
PARAMETERS: tuple[str, ...] = _fields() + DISCRETE


@dataclass(frozen=True)
class SweepOptions:
    """How each point is solved and what is computed there.

    Parameters
    ----------
    method, mode, tol, max_iter, grid, leader_step
        As :func:`epec.solve_scenario` (defaults Gauss-Seidel, Scholtes, 1e-6, 50, 41, implicit).
    global_moves, starts : int
        :class:`epec.GlobalOptions` of each solve (defaults 8 and 2).
    continuation : bool
        Start each point from the previous certified one (default True); False solves every
        point cold (the baseline).
    predict : bool
        Move that start along the previous point's tangent (default True; needs
        ``sensitivities``).
    sensitivities : bool
        Compute the derivatives at every certified point (default True).
    fd_step : float
        Relative step ``h`` of the parameter's central differences: of the followers' inputs and
        Params (the direction of ``dG/dtheta``) and of the tangent's responses at
        ``theta -+ h`` (default 1e-4: the responses are solved to ``max |F| <= 1e-10``, so the
        truncation ``~h^2`` and the noise ``~1e-10 / h`` are both below 1e-6 relative).
    kink_tol : float
        A multiplier or a reward gradient within ``kink_tol`` times its scale counts as zero (a
        kink). Default 1e-6.
    together : int
        With continuation: up to this many consecutive points are solved one after another and
        then certified together (:mod:`epec.certify_together`: their deviation scans searched in
        lockstep, each round of all of them one batch); the first that fails is solved again
        alone, as without it, and the next block starts at 2 points, doubling back up to
        ``together`` (the points solved after a failure are solved again). 1 certifies every
        point alone. Default 25 (measured on 50 points of ``rho`` on ``default``: 5-8% faster
        than 10; 50 was slower, its batches no longer fit the caches).
    """

    method: str = "gauss-seidel"
    mode: str = "scholtes"
    tol: float = 1e-6
    max_iter: int = 50
    grid: int = 41
    leader_step: str = "implicit"
    global_moves: int = 8
    starts: int = 2
    continuation: bool = True
    predict: bool = True
    sensitivities: bool = True
    fd_step: float = 1e-4
    kink_tol: float = 1e-6
    together: int = 25

    def __post_init__(self) -> None:
        for name in ("tol", "fd_step", "kink_tol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise InputError(name, f"must be in (0, 1), got {value!r}")
        for name, low in (("max_iter", 1), ("grid", 2), ("global_moves", 0), ("starts", 0), ("together", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(name, f"must be an integer >= {low}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------- the parameter
def apply_parameter(scenario: Any, name: str, value: float) -> Any:
    """``scenario`` with parameter ``name`` set to ``value`` (validated; InputError naming the
    parameter otherwise).

    An array field takes ``value`` everywhere (``rho = 0.5`` for every MU). ``w_acc``, ``w_amt``
    or ``w_val`` set to ``value`` rescales the other two in proportion so the three still sum to
    1 (equally when both are 0). ``n_mu`` / ``n_msp`` redraw the scenario: the per-MU, per-pair
    and per-MSP fields are drawn again by :func:`models.scenario.generate` from the scenario's
    seed (0 when it has none) at the new size, so a file's overrides of those fields are not
    kept; the scalars, the mechanism, the metric and the name are.
    """
    from models.scenario import MSP_FIELDS, MU_FIELDS, PAIR_FIELDS, SCALAR_FIELDS, generate

    if name not in PARAMETERS:
        raise InputError("param", f"unknown parameter {name!r} (choose: {', '.join(PARAMETERS)})")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise InputError(name, f"expected a finite number, got {value!r}")
    value = float(value)
    sc = scenario
    if name in DISCRETE:
        if value != int(value) or value < 1:
            raise InputError(name, f"must be a whole number >= 1, got {value:g}")
        n, m = (int(value), sc.n_msp) if name == "n_mu" else (sc.n_mu, int(value))
        base = generate(n, m, seed=sc.seed if sc.seed is not None else 0, name=sc.name)
        return base.replace(mechanism=sc.mechanism, metric=sc.metric, **{k: getattr(sc, k) for k in SCALAR_FIELDS})
    if name in _WEIGHTS:
        if not 0 <= value <= 1:
            raise InputError(name, f"must be in [0, 1], got {value:g}")
        others = [k for k in _WEIGHTS if k != name]
        rest = sum(getattr(sc, k) for k in others)
        share = [getattr(sc, k) / rest if rest > 0 else 0.5 for k in others]
        w = {name: value, others[0]: (1 - value) * share[0]}
        w[others[1]] = 1.0 - value - w[others[0]]  # the sum is exactly 1 in floating point
        return sc.replace(**{k: max(v, 0.0) for k, v in w.items()})
    if name in MU_FIELDS + PAIR_FIELDS + MSP_FIELDS:
        return sc.replace(**{name: np.full(getattr(sc, name).shape, value)})
    return sc.replace(**{name: value})


def check_values(scenario: Any, name: str, values: Sequence[float]) -> list[float]:
    """The sweep values of ``name`` as floats, each checked by :func:`apply_parameter` (an
    InputError names the parameter and the first bad value)."""
    if not len(values):
        raise InputError(name, "no values to sweep")
    out = []
    for v in values:
        apply_parameter(scenario, name, v)
        out.append(float(v))
    return out
