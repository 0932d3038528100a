"""The trading market for learned pricing: E parallel markets, one step per trading round.

One step (docs/model.md section 6): the MSPs post rewards ``R`` (E, M); the MUs answer with their exact
Nash equilibrium (:func:`drl.followers.solve_followers`, warm-started from the previous round);
each MSP gets its utility ``V_m``. *Stationary* mode keeps the base scenario; *dynamic* mode moves
every market to its next round (:class:`models.dynamics.MarketState`: distances walk, data are
refreshed, MUs join and leave as masks).

What an MSP may know is kept apart: the market returns an :class:`Outcome` of arrays with one
column per MSP, and :class:`History` (one per MSP) is fed that MSP's column only. An MSP's
observation is its own last K rounds: reward, total IoM received, MUs that contributed,
utility, each normalised by constants the MSP itself knows (its cap ``Rmax_m``, its value scale
``lambda_m``, the number of MUs N).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from models.dynamics import DynamicsOptions, MarketState
from models.errors import InputError
from models.scenario import Mechanism, Scenario, clip_rewards

from .followers import BatchEquilibrium, Coefficients, SolverOptions, market_utilities, scenario_arrays, solve_followers

__all__ = ["MarketOptions", "Outcome", "History", "Market", "FEATURES"]

#: per round, what an MSP observes of itself
FEATURES = ("reward", "total_iom", "contributors", "utility")


@dataclass(frozen=True)
class MarketOptions:
    """Options of :class:`Market`.

    Parameters
    ----------
    history : int
        K, the rounds of its own history an MSP observes (default 4).
    dynamic : bool
        Move the market every round (docs/model.md section 6); default False (stationary).
    dynamics : DynamicsOptions
        How it moves.
    solver : SolverOptions
        The follower solver's options.
    """

    history: int = 4
    dynamic: bool = False
    dynamics: DynamicsOptions = field(default_factory=DynamicsOptions)
    solver: SolverOptions = field(default_factory=SolverOptions)

    def __post_init__(self) -> None:
        if isinstance(self.history, bool) or not isinstance(self.history, int) or self.history < 1:
            raise InputError("history", f"must be an integer >= 1, got {self.history!r}")


@dataclass(frozen=True)
class Outcome:
    """One round of E markets, one column per MSP (all tensors (E, M)).

    ``R`` the rewards posted, ``total_iom`` ``sum_n IoM_nm``, ``contributors`` the MUs with
    ``f_nm > 0``, ``utility`` ``V_m``; ``residual`` (E,) the followers' natural KKT residual.
    """

    R: torch.Tensor
    total_iom: torch.Tensor
    contributors: torch.Tensor
    utility: torch.Tensor
    residual: torch.Tensor

    def column(self, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """MSP m's own entries ``(R_m, total_m, contributors_m, V_m)``, each (E,)."""
        return self.R[:, m], self.total_iom[:, m], self.contributors[:, m], self.utility[:, m]


class History:
    """One MSP's own last K rounds, for E markets; its observation is all it may act on.

    Parameters
    ----------
    Rmax, lam : float
        The MSP's own reward cap and value scale (normalisers).
    n_mu : int
        N, the number of MUs (normaliser).
    K : int
    E : int
    """

    def __init__(self, Rmax: float, lam: float, n_mu: int, K: int, E: int, device: Any = "cpu") -> None:
        self.scale = torch.tensor([Rmax, float(n_mu), float(n_mu), max(lam, 1e-12)], dtype=torch.float64, device=device)
        self.K, self.E = K, E
        self.buf = torch.zeros(E, K, len(FEATURES), dtype=torch.float64, device=device)

    def reset(self, done: torch.Tensor | None = None) -> None:
        """Empty the history (of the markets where ``done``; all by default)."""
        if done is None:
            self.buf.zero_()
        else:
            self.buf[done] = 0.0

    def push(self, R: torch.Tensor, total: torch.Tensor, contributors: torch.Tensor, utility: torch.Tensor) -> None:
        """Append this MSP's own round (each (E,)); the oldest round drops out."""
        row = torch.stack([R, total, contributors, utility], -1).to(self.buf) / self.scale
        self.buf = torch.cat([self.buf[:, 1:], row.unsqueeze(1)], 1)

    def observation(self) -> torch.Tensor:
        """(E, 4K) float32, oldest round first."""
        return self.buf.reshape(self.E, -1).to(torch.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"buf": self.buf.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buf = state["buf"].to(self.buf)


class Market:
    """E parallel MetaTrading markets (stationary or dynamic), seeded.

    Parameters
    ----------
    base : Scenario
    n_markets : int
        E.
    options : MarketOptions
    seed : int
        Seeds the dynamics (stationary markets draw nothing).
    device : str
    """

    def __init__(self, base: Scenario, n_markets: int = 1, options: MarketOptions = MarketOptions(),
                 seed: int = 0, device: str = "cpu") -> None:
        if isinstance(n_markets, bool) or not isinstance(n_markets, (int, np.integer)) or n_markets < 1:
            raise InputError("n_markets", f"must be a positive integer, got {n_markets!r}")
        self.base, self.E, self.options, self.device = base, int(n_markets), options, device
        self.n_msp, self.n_mu = base.n_msp, base.n_mu
        self.Rmax = torch.as_tensor(np.array(base.Rmax), dtype=torch.float64, device=device)
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        """Back to the base round in every market, warm start dropped; reseed when ``seed`` given."""
        if seed is not None:
            self.rng = np.random.default_rng(int(seed))
        self.state = MarketState.start(self.base, self.E, self.options.dynamics) if self.options.dynamic else None
        self.cf = Coefficients.of(self.base, self.device)
        self.f: torch.Tensor | None = None
        self.rounds = 0

    def step(self, R: Any) -> Outcome:
        """Play one round with rewards ``R`` (E, M), clipped to ``[0, Rmax]``; then move (dynamic)."""
        R = torch.as_tensor(R, dtype=torch.float64, device=self.device)
        if R.shape != (self.E, self.n_msp):
            raise InputError("R", f"expected shape ({self.E}, {self.n_msp}), got {tuple(R.shape)}")
        R = clip_rewards(R, self.Rmax)
        eq = solve_followers(self.cf, R, f0=self.f, options=self.options.solver)
        if not bool(eq.converged.all()):  # a cold start for the few that a warm start failed
            cold = solve_followers(self.cf.take(~eq.converged),
                                   R[~eq.converged], options=self.options.solver)
            eq = _merge(eq, cold, ~eq.converged)
        V = market_utilities(self.cf, R, eq.iom)
        out = Outcome(R=R, total_iom=eq.iom.sum(-2), contributors=(eq.f > 0).sum(-2).to(torch.float64),
                      utility=V, residual=eq.residual)
        self.f = eq.f
        self.rounds += 1
        if self.state is not None:
            self.state.advance(self.rng)
            view = scenario_arrays(self.base, D=self.state.D, tau=self.state.tau, zeta=self.state.zeta,
                                   v=self.state.v, h=self.state.h)
            self.cf = Coefficients.of(view, self.device)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (rng, dynamic state, warm start), as tensors,
        numbers and strings only: a checkpoint is read back without unpickling any object."""
        st = None
        if self.state is not None:
            st = {f.name: torch.as_tensor(np.array(getattr(self.state, f.name))) for f in fields(MarketState)
                  if f.name not in ("base", "options")}
        cf = {k: getattr(self.cf, k).detach().clone() for k in _COEFFICIENT_TENSORS}
        cf.update(eps0=float(self.cf.eps0), mechanism=self.cf.mechanism.value)
        return {"rng": json.dumps(self.rng.bit_generator.state), "state": st, "cf": cf,
                "f": None if self.f is None else self.f.detach().clone(), "rounds": int(self.rounds)}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.rng.bit_generator.state = json.loads(st["rng"])
        if st["state"] is None:
            self.state = None
        else:
            arrays = {k: v.cpu().numpy().copy() for k, v in st["state"].items()}
            self.state = MarketState(base=self.base, options=self.options.dynamics, **arrays)
        cf = st["cf"]
        self.cf = Coefficients(**{k: cf[k].to(self.device) for k in _COEFFICIENT_TENSORS}, eps0=float(cf["eps0"]),
                               mechanism=Mechanism(cf["mechanism"]))
        self.f = None if st["f"] is None else st["f"].to(self.device)
        self.rounds = int(st["rounds"])


#: the tensors of :class:`Coefficients` (the rest: ``eps0``, ``mechanism``)
_COEFFICIENT_TENSORS = ("Q", "alpha", "beta", "e", "F", "lam")


def _merge(eq: BatchEquilibrium, cold: BatchEquilibrium, mask: torch.Tensor) -> BatchEquilibrium:
    f, mu, I, res, conv = eq.f.clone(), eq.mu.clone(), eq.iom.clone(), eq.residual.clone(), eq.converged.clone()
    f[mask], mu[mask], I[mask], res[mask], conv[mask] = cold.f, cold.mu, cold.iom, cold.residual, cold.converged
    return BatchEquilibrium(f=f, mu=mu, iom=I, residual=res, converged=conv, iterations=eq.iterations + cold.iterations)
