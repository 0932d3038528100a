"""Independent PPO pricing: M learners, one per MSP, trained in E parallel markets.

:func:`train_pricing` is the loop (CleanRL's shape: one seeding block, rollout, GAE, one
update per agent, metrics under namespaces). Each agent acts on its own observation
(:class:`drl.market.History`) and learns from its own reward ``V_m / lambda_m``. The run stops
at its budget (wall-clock seconds, or a number of updates), writes checkpoints (``--resume``
continues from the last one and ends with the same weights as an uninterrupted run on CPU),
``training.json`` (per update: rewards, utilities, market rounds so far), ``training.png``
and the trained policy ``policy.pt`` (:func:`drl.load_policy`).
"""
from __future__ import annotations

import copy
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from models.errors import InputError
from models.io import atomic_save, atomic_write_json, load_torch_file
from models.scenario import Scenario

from .agent import PPOConfig, PricingAgent
from .market import FEATURES, History, Market, MarketOptions

__all__ = ["TrainingResult", "train_pricing", "POLICY_FILE", "CHECKPOINT_FILE", "POLICY_VERSION", "DEFAULT_SECONDS"]

POLICY_FILE = "policy.pt"
CHECKPOINT_FILE = "checkpoint.pt"
POLICY_VERSION = 1
#: 2: tensors, numbers, strings, lists and dicts only (read with weights_only); 1 pickled objects
CHECKPOINT_VERSION = 2
#: the wall-clock budget when neither seconds nor updates is given
DEFAULT_SECONDS = 300.0


@dataclass(frozen=True)
class TrainingResult:
    """What a training run did.

    ``budget``: ``{"seconds": s, "market_rounds": r, "updates": u}`` spent (``market_rounds``
    counts every round of every parallel market); ``log`` one entry per update;
    ``rewards``/``utilities`` the deterministic rewards at the end and the mean utilities of the
    last rollout per MSP; ``epec_rewards``/``epec_utilities`` the certified reference (None if
    unavailable or dynamic).
    """

    out: Path
    budget: dict[str, float]
    log: list[dict[str, Any]]
    rewards: np.ndarray
    utilities: np.ndarray
    epec_rewards: np.ndarray | None
    epec_utilities: np.ndarray | None


def _gae(r: torch.Tensor, v: torch.Tensor, v_next: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimates of a continuing rollout (S, E)."""
    adv = torch.zeros_like(r)
    last = torch.zeros_like(r[0])
    for t in reversed(range(r.shape[0])):
        nv = v_next if t == r.shape[0] - 1 else v[t + 1]
        delta = r[t] + gamma * nv - v[t]
        last = delta + gamma * lam * last
        adv[t] = last
    return adv


def _fingerprint(scenario: Scenario, config: PPOConfig, seed: int, dynamic: bool) -> dict[str, Any]:
    """What a checkpoint must match to be resumed, as it reads back from JSON (tuples as lists)."""
    fp = {"scenario": scenario.to_dict(), "config": config.to_dict(), "seed": int(seed), "dynamic": bool(dynamic)}
    return json.loads(json.dumps(fp))


def _reference(scenario: Scenario) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The certified EPEC rewards and MSP utilities, or (None, None) when the solve is not ok."""
    import epec
    from models.utility import msp_utilities

    sol = epec.solve_scenario(scenario, grid=21)
    if not sol.ok:
        return None, None
    return sol.R, msp_utilities(scenario, sol.R, sol.f)


def train_pricing(
    scenario: Scenario,
    out: str | Path,
    *,
    seconds: float | None = None,
    updates: int | None = None,
    seed: int = 0,
    dynamic: bool = False,
    device: str = "cpu",
    progress: bool | Callable[[dict[str, Any]], Any] = False,
    resume: bool = False,
    config: PPOConfig = PPOConfig(),
    market: MarketOptions | None = None,
    checkpoint_every: float = 30.0,
    reference: tuple[np.ndarray, np.ndarray] | None = None,
    solve_reference: bool = True,
) -> TrainingResult:
    """Train one PPO pricing agent per MSP of ``scenario`` until the budget is spent.

    Parameters
    ----------
    scenario : Scenario
    out : path
        Folder for ``checkpoint.pt``, ``policy.pt``, ``training.json`` and ``training.png``.
    seconds : float, optional
        Wall-clock budget of the training loop (> 0; the EPEC reference is solved before it
        starts). Default: none when ``updates`` is given (that budget is then reproducible), else
        :data:`DEFAULT_SECONDS`.
    updates : int, optional
        Stop after this many PPO updates (a reproducible budget; also the learning-rate schedule);
        ``seconds`` given too stops it earlier when the clock runs out first.
    seed : int
    dynamic : bool
        Train in the dynamic market (docs/model.md section 6) instead of the stationary one.
    device : "cpu" or "cuda"
    progress : bool or callable
        True: a tqdm bar on stderr with the current rewards (and the gap to the EPEC); a callable
        gets each update's log entry.
    resume : bool
        Continue from ``out/checkpoint.pt`` (same scenario, config, seed and mode required). A
        folder holding a finished run (``policy.pt`` or ``training.json``) but no checkpoint is
        refused; a folder holding neither starts afresh.
    config : PPOConfig
    market : MarketOptions, optional
        Default: ``MarketOptions(history=config.history, dynamic=dynamic)``.
    checkpoint_every : float
        Seconds between checkpoints (one is always written at the end, and on Ctrl-C, SIGTERM or
        SIGHUP: the state after the last finished update).
    reference : (rewards, utilities), optional
        The EPEC to compare with (default: :func:`epec.solve_scenario` of ``scenario``, stationary only).
    solve_reference : bool
        Solve that default reference (default True; False trains without one, e.g. for timing).

    Returns
    -------
    TrainingResult
    """
    seconds = _check_budget(seconds, updates, seed, device)
    out = Path(out)
    mopt = market or MarketOptions(history=config.history, dynamic=dynamic)
    fp = _fingerprint(scenario, config, seed, dynamic)
    state = _read_checkpoint(out, fp, resume, device)
    out.mkdir(parents=True, exist_ok=True)
    if reference is None and not dynamic and solve_reference:
        if state is not None:
            stored = state.get("reference")
            reference = None if stored is None else (np.array(stored[0], dtype=float), np.array(stored[1], dtype=float))
        else:
            reference = _reference(scenario)

    # Seeding: one block.
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    run = _Run(scenario, config, mopt, seed, device, fp, reference)
    if state is not None:
        run.restore(state, out / CHECKPOINT_FILE)
    run.train(out / CHECKPOINT_FILE, updates, seconds, progress, checkpoint_every)
    return _write_results(out, run, scenario, config, mopt, seed, dynamic, device)


def _check_budget(seconds: Any, updates: Any, seed: Any, device: Any) -> float | None:
    """The wall-clock budget (DEFAULT_SECONDS when neither budget is given), after checking the
    options of :func:`train_pricing` (InputError naming the flag)."""
    if seconds is None and updates is None:
        seconds = DEFAULT_SECONDS
    if seconds is not None and not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise InputError("--seconds", f"must be > 0, got {seconds!r}")
    if updates is not None and (isinstance(updates, bool) or not isinstance(updates, int) or updates < 1):
        raise InputError("--updates", f"must be an integer >= 1, got {updates!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError("--seed", f"must be an integer >= 0, got {seed!r}")
    if device not in ("cpu", "cuda") or (device == "cuda" and not torch.cuda.is_available()):
        raise InputError("--device", f"must be cpu or cuda (available: {torch.cuda.is_available()}), got {device!r}")
    return seconds


def _read_checkpoint(out: Path, fp: str, resume: bool, device: str) -> dict[str, Any] | None:
    """The checkpoint ``--resume`` continues from (None: start afresh); InputError("--resume")
    for a checkpoint of another run or version, or a finished run without one."""
    ckpt_path = out / CHECKPOINT_FILE
    if resume and ckpt_path.exists():
        state = load_torch_file(ckpt_path, "--resume", map_location=device)
        if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
            raise InputError("--resume", f"{ckpt_path} is not a version-{CHECKPOINT_VERSION} train-pricing checkpoint; "
                                         "delete it to start again")
        if state.get("fingerprint") != fp:
            raise InputError("--resume", f"checkpoint {ckpt_path} was made with another scenario, config, seed or mode")
        return state
    if resume and ((out / POLICY_FILE).exists() or (out / "training.json").exists()):
        raise InputError("--resume", f"{out} holds a finished run but no {CHECKPOINT_FILE} to continue from; "
                                     "train again with --force, or into another --out")
    return None


class _Run:
    """The state of one training run: the market, one agent and one history per MSP, the log and
    the counters; what a checkpoint holds."""

    def __init__(self, scenario: Scenario, config: PPOConfig, mopt: MarketOptions, seed: int, device: str, fp: str,
                 reference: tuple[np.ndarray, np.ndarray] | None) -> None:
        self.config, self.device, self.fp, self.reference = config, device, fp, reference
        self.ref_R, self.ref_V = reference if reference is not None else (None, None)
        self.M, self.N, self.E, self.S = scenario.n_msp, scenario.n_mu, config.n_markets, config.num_steps
        self.env = Market(scenario, self.E, mopt, seed=seed, device=device)
        self.obs_dim = len(FEATURES) * mopt.history
        self.agents = [PricingAgent(float(scenario.Rmax[m]), self.obs_dim, config, device) for m in range(self.M)]
        self.hists = [History(float(scenario.Rmax[m]), float(scenario.lam[m]), self.N, mopt.history, self.E, device)
                      for m in range(self.M)]
        self.lam = torch.as_tensor(np.maximum(np.array(scenario.lam), 1e-12), dtype=torch.float64, device=device)
        self.log: list[dict[str, Any]] = []
        self.update, self.rounds, self.elapsed = 0, 0, 0.0

    def restore(self, state: dict[str, Any], ckpt_path: Path) -> None:
        try:
            for ag, st in zip(self.agents, state["agents"], strict=True):
                ag.load_state_dict(st)
            for h, st in zip(self.hists, state["histories"], strict=True):
                h.load_state_dict(st)
            self.env.load_state_dict(state["market"])
            torch.set_rng_state(state["torch_rng"].cpu())
            self.update, self.rounds = int(state["update"]), int(state["rounds"])
            self.elapsed = float(state["elapsed"])
            self.log = list(state["log"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
            raise InputError("--resume", f"{ckpt_path} is not a usable train-pricing checkpoint "
                                         f"({type(exc).__name__}); delete it to start again") from None

    def snapshot(self) -> dict[str, Any]:
        """The whole training state after the last finished update (tensors, numbers, strings,
        lists and dicts only: it is read back with ``weights_only``)."""
        ref = None if self.reference is None else [np.asarray(r, dtype=float).tolist() for r in self.reference]
        st = copy.deepcopy({"version": CHECKPOINT_VERSION, "fingerprint": self.fp,
                            "agents": [a.state_dict() for a in self.agents],
                            "histories": [h.state_dict() for h in self.hists], "market": self.env.state_dict(),
                            "torch_rng": torch.get_rng_state(), "update": self.update, "rounds": self.rounds,
                            "elapsed": float(self.elapsed), "reference": ref})
        st["log"] = list(self.log)  # entries are never changed once logged
        return st

    def rollout(self) -> tuple[torch.Tensor, ...]:
        """``num_steps`` market rounds in ``n_markets`` markets: observations, actions, log-probs,
        values, rewards (utility / lambda) per step, MSP and market, and the summed utilities."""
        S, M, E, dev = self.S, self.M, self.E, self.device
        obs = torch.zeros(S, M, E, self.obs_dim, device=dev)
        acts, logps, vals, rews = (torch.zeros(S, M, E, device=dev) for _ in range(4))
        Vsum = torch.zeros(M, dtype=torch.float64, device=dev)
        for t in range(S):
            for m, (ag, h) in enumerate(zip(self.agents, self.hists)):
                obs[t, m] = h.observation()
                acts[t, m], logps[t, m], vals[t, m] = ag.act(obs[t, m])
            R = torch.stack([ag.reward_of(acts[t, m]) for m, ag in enumerate(self.agents)], -1)
            res = self.env.step(R)
            for m, h in enumerate(self.hists):
                h.push(*res.column(m))  # each MSP's own entries only
            rews[t] = (res.utility / self.lam).T.to(rews)
            Vsum += res.utility.mean(0)
        self.rounds += E * S
        return obs, acts, logps, vals, rews, Vsum

    def learn(self, batch: tuple[torch.Tensor, ...], lr_frac: float) -> tuple[dict[str, Any], list[float]]:
        """One PPO update of every agent on its own rollout; the metrics and each agent's
        deterministic reward after it."""
        obs, acts, logps, vals, rews, _ = batch
        S, E, c = self.S, self.E, self.config
        metrics: dict[str, Any] = {}
        R_det = []
        for m, (ag, h) in enumerate(zip(self.agents, self.hists)):
            o_next = h.observation()
            v_next = ag.act(o_next)[2]
            adv = _gae(rews[:, m], vals[:, m], v_next, c.gamma, c.gae_lambda)
            ret = adv + vals[:, m]
            mets = ag.update(obs[:, m].reshape(S * E, -1), acts[:, m].reshape(-1), logps[:, m].reshape(-1),
                             adv.reshape(-1), ret.reshape(-1), lr_frac)
            metrics.update({f"msp{m}/{k}": v for k, v in mets.items()})
            R_det.append(float(ag.reward_of(ag.act(o_next, deterministic=True)[0]).mean()))
        return metrics, R_det

    def train(self, ckpt_path: Path, updates: int | None, seconds: float | None,
              progress: bool | Callable[[dict[str, Any]], Any], checkpoint_every: float) -> None:
        """Roll out and update until the budget is spent, checkpointing every ``checkpoint_every``
        seconds, at the end and on Ctrl-C, SIGTERM or SIGHUP."""
        def save_checkpoint(st: dict[str, Any]) -> None:
            atomic_save(ckpt_path, lambda tmp: torch.save(st, tmp))

        bar = None
        if progress is True:
            from models.progress import progress_bar

            bar = progress_bar(total=updates if updates is not None else None, initial=self.update,
                               desc="train-pricing", unit="update", dynamic_ncols=True, min_interval=5.0)
        t_start, t_ckpt = time.perf_counter() - self.elapsed, time.perf_counter()
        last = self.snapshot()
        try:
            while (updates is None or self.update < updates) and (seconds is None or self.elapsed < seconds):
                batch = self.rollout()
                frac = 1.0 - (self.update / updates if updates is not None else self.elapsed / seconds)
                metrics, R_det = self.learn(batch, max(frac, 0.05) if self.config.anneal_lr else 1.0)
                self.update += 1
                self.elapsed = time.perf_counter() - t_start
                entry: dict[str, Any] = {"update": self.update, "market_rounds": self.rounds,
                                         "seconds": round(self.elapsed, 3), "rewards": R_det,
                                         "utilities": (batch[-1] / self.S).tolist(), **metrics}
                if self.ref_R is not None:
                    entry["reward_gap_pct"] = (100.0 * (np.array(R_det) - self.ref_R) / np.abs(self.ref_R)).tolist()
                self.log.append(entry)
                last = self.snapshot()
                if time.perf_counter() - t_ckpt >= checkpoint_every:
                    save_checkpoint(last)
                    t_ckpt = time.perf_counter()
                if callable(progress):
                    progress(entry)
                if bar is not None:
                    post = {"R": " ".join(f"{r:.2f}" for r in R_det)}
                    if self.ref_R is not None:
                        post["gap%"] = " ".join(f"{g:+.1f}" for g in entry["reward_gap_pct"])
                    bar.set_postfix(post, refresh=False)
                    bar.update(1)
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP: keep what was learned, then stop
            save_checkpoint(last)
            raise
        finally:
            if bar is not None:
                bar.close()
        save_checkpoint(self.snapshot())


def _write_results(out: Path, run: _Run, scenario: Scenario, config: PPOConfig, mopt: MarketOptions, seed: int,
                   dynamic: bool, device: str) -> TrainingResult:
    """``policy.pt``, ``training.json`` and ``training.png`` of a finished run (atomically)."""
    M, log, ref_R, ref_V = run.M, run.log, run.ref_R, run.ref_V
    budget = {"seconds": round(run.elapsed, 3), "market_rounds": run.rounds, "updates": run.update}
    R_final = np.array(log[-1]["rewards"]) if log else np.full(M, np.nan)
    V_final = np.array(log[-1]["utilities"]) if log else np.full(M, np.nan)
    policy = {"version": POLICY_VERSION, "n_msp": M, "n_mu": run.N, "Rmax": np.array(scenario.Rmax).tolist(),
              "lam": np.array(scenario.lam).tolist(), "config": config.to_dict(), "history": mopt.history,
              "actors": [{k: v.cpu() for k, v in a.actor.state_dict().items()} for a in run.agents],
              "budget": budget, "scenario": scenario.to_dict(), "dynamic": bool(dynamic), "seed": seed}
    atomic_save(out / POLICY_FILE, lambda tmp: torch.save(policy, tmp))
    atomic_write_json(out / "training.json", {
        "scenario": scenario.name, "dynamic": bool(dynamic), "seed": seed, "device": device,
        "config": config.to_dict(), "budget": budget,
        "epec_rewards": None if ref_R is None else np.asarray(ref_R).tolist(),
        "epec_msp_utility": None if ref_V is None else np.asarray(ref_V).tolist(),
        "updates": log,
    })
    _plot(out / "training.png", log, ref_R, ref_V, scenario.name, dynamic)
    return TrainingResult(out=out, budget=budget, log=log, rewards=R_final, utilities=V_final,
                          epec_rewards=None if ref_R is None else np.asarray(ref_R),
                          epec_utilities=None if ref_V is None else np.asarray(ref_V))


def _plot(path: Path, log: list[dict[str, Any]], ref_R: Any, ref_V: Any, name: str, dynamic: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    x = [e["market_rounds"] for e in log]
    M = len(log[0]["rewards"]) if log else 0
    for m in range(M):
        line = ax1.plot(x, [e["rewards"][m] for e in log], label=f"MSP {m}")[0]
        ax2.plot(x, [e["utilities"][m] for e in log], color=line.get_color(), label=f"MSP {m}")
        if ref_R is not None:
            ax1.axhline(ref_R[m], color=line.get_color(), ls="--", lw=1)
            ax2.axhline(ref_V[m], color=line.get_color(), ls="--", lw=1)
    ax1.set_xlabel("market rounds")
    ax1.set_ylabel("reward R_m (deterministic)")
    ax2.set_xlabel("market rounds")
    ax2.set_ylabel("utility V_m (rollout mean)")
    mode = "dynamic" if dynamic else "stationary"
    ax1.set_title(f"{name} ({mode}); dashed: EPEC" if ref_R is not None else f"{name} ({mode})")
    ax1.legend(fontsize=8)
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
