"""The trading market as a PettingZoo ``ParallelEnv`` (one market), for other MARL libraries.

Agents ``msp_0 .. msp_{M-1}``. Action: the reward ``R_m``, a Box ``[0, Rmax_m]`` of shape (1,).
Observation: the MSP's own last K rounds (:class:`drl.market.History`), Box of shape (4K,).
Reward: ``V_m``. Episodes are truncated after ``max_rounds`` rounds (the market itself never
terminates). Inside it is :class:`drl.market.Market` with E = 1.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from models.errors import InputError
from models.scenario import Scenario

from .market import FEATURES, History, Market, MarketOptions

__all__ = ["PricingParallelEnv"]


class PricingParallelEnv(ParallelEnv):
    """PettingZoo parallel API over one MetaTrading market.

    Parameters
    ----------
    scenario : Scenario
    options : MarketOptions
        Stationary (default) or dynamic, history length K.
    max_rounds : int
        Rounds per episode (default 32).
    """

    metadata = {"name": "metatrading_pricing_v0", "render_modes": []}

    def __init__(self, scenario: Scenario, options: MarketOptions = MarketOptions(), max_rounds: int = 32) -> None:
        if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
            raise InputError("max_rounds", f"must be an integer >= 1, got {max_rounds!r}")
        self.scenario, self.options, self.max_rounds = scenario, options, max_rounds
        self.possible_agents = [f"msp_{m}" for m in range(scenario.n_msp)]
        self.agents: list[str] = []
        self._market = Market(scenario, 1, options, seed=0)
        self._hist: list[History] = []
        self._t = 0

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent: str) -> spaces.Box:
        return spaces.Box(-np.inf, np.inf, shape=(len(FEATURES) * self.options.history,), dtype=np.float32)

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent: str) -> spaces.Box:
        m = self.possible_agents.index(agent)
        return spaces.Box(0.0, float(self.scenario.Rmax[m]), shape=(1,), dtype=np.float32)

    def _obs(self) -> dict[str, np.ndarray]:
        return {a: self._hist[m].observation()[0].numpy() for m, a in enumerate(self.possible_agents) if a in self.agents}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        self._market.reset(seed)  # reseeded only when a seed is given
        self.agents = list(self.possible_agents)
        self._hist = [History(float(self.scenario.Rmax[m]), float(self.scenario.lam[m]), self.scenario.n_mu,
                              self.options.history, 1) for m in range(self.scenario.n_msp)]
        self._t = 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("step() after the episode ended: call reset()")
        R = np.array([[float(np.asarray(actions[a]).reshape(-1)[0]) for a in self.possible_agents]])
        out = self._market.step(R)
        for m, h in enumerate(self._hist):
            h.push(*out.column(m))
        self._t += 1
        obs = self._obs()
        rewards = {a: float(out.utility[0, m]) for m, a in enumerate(self.possible_agents)}
        trunc = self._t >= self.max_rounds
        terminations = {a: False for a in self.agents}
        truncations = {a: trunc for a in self.agents}
        infos = {a: {"total_iom": float(out.total_iom[0, m]), "contributors": int(out.contributors[0, m])}
                 for m, a in enumerate(self.possible_agents)}
        if trunc:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> None:
        return None

    def close(self) -> None:
        return None
