"""Random scenarios over the model's whole documented range, for robustness tests and benchmarks.

:func:`generate` draws the parameters a preset uses; :func:`random_scenario` goes further, to
the corners a user may reach with a scenario file: one MU or forty, one MSP or six, both
mechanisms, reward caps from a cent to a hundred (some 0), value scales that make an MSP worth
nothing or a thousand, energy prices over five decades, freshness scales and data ages from
seconds to hours, share reserves from 1e-6 to 1, and IoM weights anywhere on the simplex
(some on its edges). Every draw is a valid :class:`Scenario` and is reproducible from its seed.
"""
from __future__ import annotations

import numpy as np

from .errors import InputError
from .scenario import Mechanism, Scenario, generate

__all__ = ["RANDOM_RANGES", "random_scenario"]

#: field -> the range :func:`random_scenario` draws it from (log-uniform where it says "log")
RANDOM_RANGES: dict[str, str] = {
    "n_mu": "integer in [1, 40]",
    "n_msp": "integer in [1, 6]",
    "mechanism": "proportional or unit_price, equally likely",
    "Rmax": "per MSP log-uniform in [1e-2, 1e2]; each 0 with probability 0.1",
    "lam": "per MSP log-uniform in [1e-1, 1e3]; each 0 with probability 0.05",
    "rho": "per MU log-uniform in [1e-3, 1e2]",
    "A0": "log-uniform in [1, 1e4] s",
    "tau": "per pair uniform in [0, T], T log-uniform in [1, 1e4] s",
    "eps0": "log-uniform in [1e-6, 1]",
    "w_acc, w_amt, w_val": "Dirichlet(1, 1, 1); with probability 0.2 one weight is 1 and the others 0",
    "L": "integer in [1, 10]",
    "others": "as models.generate (the presets' ranges)",
}


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, size: int | tuple | None = None) -> np.ndarray:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def random_scenario(seed: int) -> Scenario:
    """A scenario drawn from :data:`RANDOM_RANGES`, reproducible from ``seed`` (an integer >= 0).

    The draw is named ``random-<seed>`` and records ``seed``; ``scenario.to_dict()`` holds every
    resolved parameter, so a failing draw is reproduced from the dict alone.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError("seed", f"must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng([int(seed), 0x5EED])
    n, m = int(rng.integers(1, 41)), int(rng.integers(1, 7))
    base = generate(n, m, seed=int(seed), name=f"random-{seed}")
    rmax = _log_uniform(rng, 1e-2, 1e2, m)
    rmax[rng.random(m) < 0.1] = 0.0
    lam = _log_uniform(rng, 1e-1, 1e3, m)
    lam[rng.random(m) < 0.05] = 0.0
    if rng.random() < 0.2:
        w = np.zeros(3)
        w[rng.integers(3)] = 1.0
    else:
        w = rng.dirichlet(np.ones(3))
        w[2] = 1.0 - w[0] - w[1]  # the sum is exactly 1 in floating point
    return base.replace(
        mechanism=Mechanism.PROPORTIONAL if rng.random() < 0.5 else Mechanism.UNIT_PRICE,
        Rmax=rmax,
        lam=lam,
        rho=_log_uniform(rng, 1e-3, 1e2, n),
        A0=float(_log_uniform(rng, 1.0, 1e4)),
        tau=rng.uniform(0.0, float(_log_uniform(rng, 1.0, 1e4)), (n, m)),
        eps0=float(_log_uniform(rng, 1e-6, 1.0)),
        w_acc=float(w[0]), w_amt=float(w[1]), w_val=float(max(w[2], 0.0)),
        L=int(rng.integers(1, 11)),
    )
