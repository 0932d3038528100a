"""Trained pricing deployed in a market driven from outside.

``pol = load_policy(dir)`` reads the ``policy.pt`` that :func:`drl.train_pricing` wrote.
Each MSP keeps its own :class:`drl.market.History`: ``pol.act()`` returns every MSP's reward
for the round, each computed from its own history only, and ``pol.feedback(...)`` hands MSP m
its own entries of the round's outcome and nothing else.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.errors import InputError
from models.io import load_torch_file
from models.scenario import fingerprint_of

from .agent import Actor, reward_of
from .market import FEATURES, History
from .train import POLICY_FILE, POLICY_VERSION

__all__ = ["DeployedAgent", "Policy", "load_policy"]


class DeployedAgent:
    """One MSP's trained actor and its own history (one market)."""

    def __init__(self, actor: Actor, Rmax: float, lam: float, n_mu: int, K: int) -> None:
        self.actor, self.Rmax = actor, float(Rmax)
        self.history = History(Rmax, lam, n_mu, K, 1)

    @torch.no_grad()
    def act(self, deterministic: bool = True) -> float:
        dist = self.actor(self.history.observation())
        a = dist.mean if deterministic else dist.sample()
        return float(reward_of(self.Rmax, a)[0])

    def feedback(self, R: float, total_iom: float, contributors: float, utility: float) -> None:
        t = lambda x: torch.tensor([float(x)], dtype=torch.float64)  # noqa: E731
        self.history.push(t(R), t(total_iom), t(contributors), t(utility))


class Policy:
    """The M trained MSPs of one market.

    Attributes
    ----------
    n_msp : int
    Rmax : ndarray (M,)
    budget : dict
        The training budget: ``{"seconds", "market_rounds", "updates"}``.
    scenario : dict
        The scenario it was trained on (``Scenario.to_dict``).
    fingerprint : str
        That scenario's fingerprint (``Scenario.fingerprint``).
    dynamic : bool
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self.n_msp = int(data["n_msp"])
        self.n_mu = int(data["n_mu"])
        self.Rmax = np.array(data["Rmax"], dtype=float)
        self.lam = np.array(data["lam"], dtype=float)
        self.budget = dict(data["budget"])
        self.scenario = dict(data["scenario"])
        self.fingerprint = fingerprint_of(self.scenario)
        self.dynamic = bool(data["dynamic"])
        K = int(data["history"])
        cfg = data["config"]
        self.agents = []
        for m in range(self.n_msp):
            actor = Actor(len(FEATURES) * K, int(cfg["hidden"]), float(cfg["init_logstd"]))
            actor.load_state_dict(data["actors"][m])
            actor.eval()
            self.agents.append(DeployedAgent(actor, self.Rmax[m], self.lam[m], self.n_mu, K))

    def reset(self) -> None:
        """Empty every agent's own history."""
        for ag in self.agents:
            ag.history.reset()

    def act(self, deterministic: bool = True) -> np.ndarray:
        """(M,) rewards for this round, MSP m's from its own history only."""
        return np.array([ag.act(deterministic) for ag in self.agents])

    def feedback(self, R: Any, total_iom: Any, contributors: Any, utility: Any) -> None:
        """The round's outcome, arrays (M,); MSP m is fed entry m of each and nothing else."""
        cols = [np.asarray(x, dtype=float).reshape(-1) for x in (R, total_iom, contributors, utility)]
        for name, c in zip(("R", "total_iom", "contributors", "utility"), cols):
            if c.shape != (self.n_msp,):
                raise InputError(name, f"expected shape ({self.n_msp},), got {c.shape}")
        for m, ag in enumerate(self.agents):
            ag.feedback(*(c[m] for c in cols))


def load_policy(policy_dir: str | Path, flag: str = "--policy") -> Policy:
    """The policy that ``metatrading train-pricing --out policy_dir`` wrote.

    Read without running anything stored in it (:func:`models.io.load_torch_file`: tensors,
    numbers, strings, lists and dicts only). Raises InputError(``flag``) naming the file when
    the folder or its ``policy.pt`` is missing, unreadable (truncated, a crafted pickle) or was
    written by an incompatible version.
    """
    path = Path(policy_dir)
    file = path / POLICY_FILE if path.is_dir() else path
    if not file.is_file():
        raise InputError(flag, f"no trained policy at {path} (expected {POLICY_FILE} written by train-pricing)")
    data = load_torch_file(file, flag)
    if not isinstance(data, dict) or data.get("version") != POLICY_VERSION:
        raise InputError(flag, f"{file} is not a version-{POLICY_VERSION} pricing policy")
    try:
        return Policy(data)
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
        raise InputError(flag, f"{file} is incompatible: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
