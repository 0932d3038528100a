"""The dynamic market of docs/model.md section 6: one scenario per trading round, in numpy, seeded.

Round 0 is the base scenario itself, every MU active. From one round to the next:

- the vehicles move: each MU-MSP distance takes a reflected Gaussian step inside
  ``[d_min, d_max]`` (a bounded random walk) and the channel follows it through the path loss
  ``h = gain d^-exponent`` (the convention of :func:`models.scenario.generate`; the base
  distances are recovered from the base channels by inverting it);
- the data are refreshed around the base: ``D_nm = round(D0_nm u)``, ``tau_nm = tau0_nm u'``,
  ``zeta_nm = clip(zeta0_nm u'', 0.01, 1)`` with ``u, u', u''`` uniform in
  ``[1 - spread, 1 + spread]``; ``v_nm`` is the normalised label entropy of a fresh
  Dirichlet(0.5) split of the new ``D_nm`` samples over 10 labels (as in ``generate``).
  A pair without data in the base (``D0_nm = 0``) never gets data;
- MUs join and leave: an active MU leaves with probability ``leave``, an inactive one joins with
  probability ``join``; at least ``min_active`` stay (random ones are kept if too few would).

Every state is a mask over the same N MUs, never a reshape. An inactive MU keeps all its
parameters but holds no data this round: ``D_nm = 0`` for every MSP, so its IoM is 0 and its
allocation is 0 (:func:`models.iom.iom_matrix`, :func:`models.game.build_game`); its budget
``F_n`` stays positive, as a :class:`Scenario` requires.

:class:`MarketState` evolves a batch of E independent markets at once (the learned-pricing
environment); :func:`trajectory` runs one market for a fixed number of rounds and stores it, so the
same ``(base, rounds, seed, options)`` always gives the same rounds (common random numbers
when several pricing schemes are compared).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError
from .scenario import Scenario, label_entropy

__all__ = ["DynamicsOptions", "MarketState", "Trajectory", "trajectory", "base_distances"]

_LABELS = 10  #: labels of the data-value split (as in models.scenario.generate)


@dataclass(frozen=True)
class DynamicsOptions:
    """How the market moves from one round to the next (docs/model.md section 6).

    Parameters
    ----------
    step : float
        Standard deviation of a distance step per round, m (default 10).
    d_min, d_max : float
        Bounds of the distance walk, m (default 50 and 300, the range of ``generate``). A base
        distance outside them widens that pair's bounds to include it.
    gain, exponent : float
        Path loss ``h = gain d^-exponent`` (default 1e-3 and 3, as ``generate``).
    spread : float
        Relative spread of the refreshed ``D``, ``tau``, ``zeta`` around the base, in [0, 1)
        (default 0.3).
    join, leave : float
        Per-round probabilities that an inactive MU joins and that an active MU leaves
        (default 0.2 and 0.05: about 80% of the MUs active in the long run).
    min_active : int
        Fewest MUs active in any round (default 2).
    """

    step: float = 10.0
    d_min: float = 50.0
    d_max: float = 300.0
    gain: float = 1e-3
    exponent: float = 3.0
    spread: float = 0.3
    join: float = 0.2
    leave: float = 0.05
    min_active: int = 2

    def __post_init__(self) -> None:
        if not (self.step >= 0):
            raise InputError("step", f"must be >= 0 m, got {self.step}")
        if not (0 < self.d_min < self.d_max):
            raise InputError("d_min", f"need 0 < d_min < d_max, got {self.d_min}, {self.d_max}")
        if not (self.gain > 0 and self.exponent > 0):
            raise InputError("gain", "gain and exponent must be > 0")
        if not (0 <= self.spread < 1):
            raise InputError("spread", f"must be in [0, 1), got {self.spread}")
        for name in ("join", "leave"):
            if not (0 <= getattr(self, name) <= 1):
                raise InputError(name, f"must be a probability in [0, 1], got {getattr(self, name)}")
        if isinstance(self.min_active, bool) or not isinstance(self.min_active, (int, np.integer)) or self.min_active < 1:
            raise InputError("min_active", f"must be an integer >= 1, got {self.min_active!r}")


def base_distances(base: Scenario, options: DynamicsOptions = DynamicsOptions()) -> np.ndarray:
    """Distances (N, M) in m that give the base channels: ``(gain / h)^(1 / exponent)``."""
    return (options.gain / base.h) ** (1.0 / options.exponent)


@dataclass
class MarketState:
    """E markets' current round: distances, data and activity, arrays with a leading axis E.

    Build with :meth:`start` (round 0 = the base, all active), then call :meth:`advance`.
    """

    base: Scenario
    options: DynamicsOptions
    dist: np.ndarray  #: (E, N, M) m
    D: np.ndarray  #: (E, N, M) samples (0 for an inactive MU)
    tau: np.ndarray  #: (E, N, M) s
    zeta: np.ndarray  #: (E, N, M)
    v: np.ndarray  #: (E, N, M)
    active: np.ndarray  #: (E, N) bool
    _lo: np.ndarray = field(repr=False)
    _hi: np.ndarray = field(repr=False)

    @classmethod
    def start(cls, base: Scenario, n_markets: int = 1, options: DynamicsOptions = DynamicsOptions()) -> "MarketState":
        """E copies of the base scenario's round, every MU active."""
        if isinstance(n_markets, bool) or not isinstance(n_markets, (int, np.integer)) or n_markets < 1:
            raise InputError("n_markets", f"must be a positive integer, got {n_markets!r}")
        if options.min_active > base.n_mu:
            raise InputError("min_active", f"must be <= N = {base.n_mu}, got {options.min_active}")
        E = int(n_markets)
        d0 = base_distances(base, options)
        rep = lambda a: np.repeat(np.asarray(a, dtype=float)[None], E, axis=0)  # noqa: E731
        return cls(
            base=base, options=options, dist=rep(d0), D=rep(base.D), tau=rep(base.tau), zeta=rep(base.zeta),
            v=rep(base.v), active=np.ones((E, base.n_mu), dtype=bool),
            _lo=np.minimum(options.d_min, d0), _hi=np.maximum(options.d_max, d0),
        )

    @property
    def h(self) -> np.ndarray:
        """Channel gains (E, N, M) from the distances."""
        return self.options.gain * self.dist ** (-self.options.exponent)

    def advance(self, rng: np.random.Generator) -> None:
        """Move every market to its next round (in place), drawing from ``rng``."""
        o, b = self.options, self.base
        E, N, M = self.dist.shape
        # Bounded random walk, reflected at the bounds (twice covers any step < the interval).
        d = self.dist + o.step * rng.standard_normal((E, N, M))
        for _ in range(2):
            d = np.where(d < self._lo, 2 * self._lo - d, d)
            d = np.where(d > self._hi, 2 * self._hi - d, d)
        self.dist = np.clip(d, self._lo, self._hi)
        u = lambda: rng.uniform(1 - o.spread, 1 + o.spread, (E, N, M))  # noqa: E731
        D = np.round(b.D[None] * u())
        self.tau = b.tau[None] * u()
        self.zeta = np.clip(b.zeta[None] * u(), 0.01, 1.0)
        probs = rng.dirichlet(np.full(_LABELS, 0.5), size=(E, N, M))
        counts = rng.multinomial(D.astype(np.int64), probs)
        self.v = np.clip(label_entropy(counts), 0.0, 1.0)
        # Joins and leaves as masks.
        r = rng.uniform(size=(E, N))
        active = np.where(self.active, r >= o.leave, r < o.join)
        short = active.sum(1) < o.min_active
        if np.any(short):
            for e in np.flatnonzero(short):
                keep = rng.choice(N, size=o.min_active, replace=False)
                active[e, keep] = True
        self.active = active
        self.D = np.where(active[..., None], D, 0.0)

    def fields(self, e: int) -> dict[str, np.ndarray]:
        """Market ``e``'s round as Scenario fields (``D``, ``tau``, ``zeta``, ``v``, ``h``)."""
        return {"D": self.D[e], "tau": self.tau[e], "zeta": self.zeta[e], "v": self.v[e], "h": self.h[e]}


@dataclass(frozen=True)
class Trajectory:
    """A stored run of one dynamic market (see :func:`trajectory`).

    Attributes
    ----------
    base : Scenario
    D, tau, zeta, v, h : ndarray (T, N, M)
        Each round's refreshed pair parameters (``D = 0`` for an inactive MU).
    active : ndarray (T, N) bool
        Which MUs are in the market each round.
    """

    base: Scenario
    D: np.ndarray
    tau: np.ndarray
    zeta: np.ndarray
    v: np.ndarray
    h: np.ndarray
    active: np.ndarray

    @property
    def rounds(self) -> int:
        """T, the number of rounds."""
        return int(self.active.shape[0])

    def _check(self, t: Any) -> int:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < self.rounds:
            raise InputError("t", f"must be a round in 0..{self.rounds - 1}, got {t!r}")
        return int(t)

    def scenario(self, t: int) -> Scenario:
        """Round ``t`` with all N MUs (an inactive MU has ``D_nm = 0``: no data, no IoM, f = 0)."""
        t = self._check(t)
        return self.base.replace(D=self.D[t], tau=self.tau[t], zeta=self.zeta[t], v=self.v[t], h=self.h[t],
                                 name=f"{self.base.name}@{t}")

    def active_scenario(self, t: int) -> Scenario:
        """Round ``t`` restricted to its active MUs (:meth:`Scenario.subset`)."""
        t = self._check(t)
        return self.scenario(t).subset(mus=np.flatnonzero(self.active[t]))


def trajectory(base: Scenario, rounds: int, seed: int, options: DynamicsOptions = DynamicsOptions()) -> Trajectory:
    """``rounds`` rounds of the dynamic market started from ``base`` (round 0 = ``base``).

    Deterministic in ``(base, rounds, seed, options)``; a longer run extends a shorter one with
    the same seed (round t does not depend on ``rounds``).
    """
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
        raise InputError("rounds", f"must be a positive integer, got {rounds!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError("seed", f"must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    st = MarketState.start(base, 1, options)
    keys = ("D", "tau", "zeta", "v", "h")
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    act = []
    for t in range(int(rounds)):
        if t:
            st.advance(rng)
        for k, a in st.fields(0).items():
            out[k].append(a)
        act.append(st.active[0].copy())
    arrays = {k: np.stack(v) for k, v in out.items()}
    for a in arrays.values():
        a.setflags(write=False)
    active = np.stack(act)
    active.setflags(write=False)
    return Trajectory(base=base, active=active, **arrays)
