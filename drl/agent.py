"""One MSP's pricing agent: its own actor, critic and optimiser, and the PPO update.

PPO with a clipped surrogate and GAE (Schulman et al., arXiv 1707.06347 and 1506.02438), in
the shape of CleanRL's ``ppo_continuous_action.py``: hyper-parameters in one frozen dataclass,
the update on one screen. The action is bounded: the Gaussian policy acts on an unbounded
``a`` and the reward posted is ``R_m = Rmax_m sigmoid(a)`` (a fixed bijection, so PPO's
probability ratios are those of ``a``); the deterministic action is ``Rmax_m sigmoid(mean)``.

An agent object holds only what its MSP may know: its networks, its optimiser, its cap. It is
given its own observation and its own reward, nothing else.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Normal

from models.errors import InputError

__all__ = ["PPOConfig", "Actor", "Critic", "PricingAgent", "reward_of"]


@dataclass(frozen=True)
class PPOConfig:
    """Hyper-parameters of independent PPO pricing (defaults in brackets).

    n_markets [64]: E parallel markets per rollout. num_steps [8]: rounds per market per update.
    gamma [0.0]: discount; 0 makes each MSP maximise its round utility ``V_m``, the objective of
    the per-round game whose equilibrium is the EPEC (a longer horizon lets independent learners
    settle into tacit collusion). gae_lambda [0.95]. learning_rate [1e-3]. anneal_lr [True]:
    linear decay over the update budget when one is given. update_epochs [4]. num_minibatches [4].
    clip_coef [0.2]. vf_coef [0.5]. ent_coef [0.0]. max_grad_norm [0.5]. norm_adv [True].
    hidden [64]: width of the two hidden layers. init_logstd [-1.0]: initial log std of ``a``.
    history [4]: K, own past rounds observed.
    """

    n_markets: int = 64
    num_steps: int = 8
    gamma: float = 0.0
    gae_lambda: float = 0.95
    learning_rate: float = 1e-3
    anneal_lr: bool = True
    update_epochs: int = 4
    num_minibatches: int = 4
    clip_coef: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5
    norm_adv: bool = True
    hidden: int = 64
    init_logstd: float = -1.0
    history: int = 4

    def __post_init__(self) -> None:
        for name in ("n_markets", "num_steps", "update_epochs", "num_minibatches", "hidden", "history"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(name, f"must be an integer >= 1, got {v!r}")
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(name, f"must be in [0, 1], got {getattr(self, name)}")
        for name in ("learning_rate", "clip_coef", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise InputError(name, f"must be > 0, got {getattr(self, name)}")
        if (self.n_markets * self.num_steps) % self.num_minibatches:
            raise InputError("num_minibatches", "must divide n_markets * num_steps")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _layer(n_in: int, n_out: int, std: float = np.sqrt(2)) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, 0.0)
    return layer


class Critic(nn.Module):
    """``v(o)``: two tanh layers."""

    def __init__(self, obs_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(_layer(obs_dim, hidden), nn.Tanh(), _layer(hidden, hidden), nn.Tanh(), _layer(hidden, 1, 1.0))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


class Actor(nn.Module):
    """Gaussian policy on the unbounded action ``a``: mean from two tanh layers, state-free log std."""

    def __init__(self, obs_dim: int, hidden: int, init_logstd: float) -> None:
        super().__init__()
        self.mean = nn.Sequential(_layer(obs_dim, hidden), nn.Tanh(), _layer(hidden, hidden), nn.Tanh(), _layer(hidden, 1, 0.01))
        self.logstd = nn.Parameter(torch.full((1,), float(init_logstd)))

    def forward(self, obs: torch.Tensor) -> Normal:
        return Normal(self.mean(obs).squeeze(-1), self.logstd.exp().expand(obs.shape[0]))


def reward_of(Rmax: float, a: torch.Tensor) -> torch.Tensor:
    """``R = Rmax sigmoid(a)``: the reward posted for the unbounded action ``a`` (training and
    deployment share it)."""
    return Rmax * torch.sigmoid(a)


class PricingAgent:
    """MSP m's learner (its own networks and optimiser).

    Parameters
    ----------
    Rmax : float
        The MSP's reward cap.
    obs_dim : int
    config : PPOConfig
    device : str
    """

    def __init__(self, Rmax: float, obs_dim: int, config: PPOConfig, device: str = "cpu") -> None:
        self.Rmax, self.config, self.device = float(Rmax), config, device
        self.actor = Actor(obs_dim, config.hidden, config.init_logstd).to(device)
        self.critic = Critic(obs_dim, config.hidden).to(device)
        self._params = list(self.actor.parameters()) + list(self.critic.parameters())
        self.optimizer = torch.optim.Adam(self._params, lr=config.learning_rate, eps=1e-5)

    def reward_of(self, a: torch.Tensor) -> torch.Tensor:
        """``R = Rmax sigmoid(a)`` (:func:`reward_of`)."""
        return reward_of(self.Rmax, a)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(a, log pi(a|o), v(o))`` for own observations (E, obs_dim)."""
        dist = self.actor(obs)
        a = dist.mean if deterministic else dist.sample()
        return a, dist.log_prob(a), self.critic(obs)

    def update(self, obs: torch.Tensor, a: torch.Tensor, logp: torch.Tensor, adv: torch.Tensor,
               ret: torch.Tensor, lr_frac: float = 1.0) -> dict[str, float]:
        """One PPO update on own flattened rollout data; returns its metrics."""
        c = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = lr_frac * c.learning_rate
        n = obs.shape[0]
        mb = n // c.num_minibatches
        clipfracs = []
        for _ in range(c.update_epochs):
            perm = torch.randperm(n, device=obs.device)
            for start in range(0, n, mb):
                i = perm[start:start + mb]
                dist = self.actor(obs[i])
                new_logp, entropy = dist.log_prob(a[i]), dist.entropy()
                ratio = (new_logp - logp[i]).exp()
                A = adv[i]
                if c.norm_adv:
                    A = (A - A.mean()) / (A.std() + 1e-8)
                pg_loss = torch.max(-A * ratio, -A * ratio.clamp(1 - c.clip_coef, 1 + c.clip_coef)).mean()
                v_loss = 0.5 * ((self.critic(obs[i]) - ret[i]) ** 2).mean()
                loss = pg_loss - c.ent_coef * entropy.mean() + c.vf_coef * v_loss
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self._params, c.max_grad_norm)
                self.optimizer.step()
                clipfracs.append(((ratio.detach() - 1.0).abs() > c.clip_coef).float().mean())
        # one device sync per update for the clip fractions, not one per minibatch
        return {"losses/policy": pg_loss.item(), "losses/value": v_loss.item(),
                "losses/clipfrac": float(np.mean(torch.stack(clipfracs).tolist())),
                "policy/std": float(self.actor.logstd.exp().item())}

    def state_dict(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.optimizer.load_state_dict(state["optimizer"])
