"""How far learned (or any) pricing is from the equilibrium (docs/model.md section 6, validation).

*Stationary*: the rewards against the certified EPEC of the scenario (:func:`epec.solve_scenario`),
as signed percentage gaps of reward, MSP utility and IoM per MSP (positive: above the EPEC; all
MSPs above it with lower utilities for the MUs is the signature of tacit collusion), and every
MSP's deviation gain at those rewards from :func:`epec.certify` as a percentage of its utility.

*Dynamic*: the pricing plays the rounds of :func:`models.trajectory` (one trajectory per seed,
common to every scheme); each round's full-information EPEC (the round's active MUs) is the
oracle. Per-round gaps, their mean, and a 95% confidence interval over seeds (Student t on
the per-seed means).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from models.dynamics import DynamicsOptions, trajectory
from models.equilibrium import follower_equilibrium
from models.errors import InputError
from models.iom import iom_matrix
from models.scenario import Scenario, clip_rewards
from models.utility import msp_utilities

from .followers import Coefficients, solve_followers, market_utilities

__all__ = ["validate_stationary", "validate_dynamic", "check_rewards", "confidence_interval", "play_stationary"]


def _pct(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Signed ``100 (x - ref) / |ref|`` (0 where both are 0)."""
    x, ref = np.asarray(x, float), np.asarray(ref, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 * (x - ref) / np.abs(ref)
    return np.where((x == ref), 0.0, out)


def confidence_interval(samples: Any, level: float = 0.95) -> dict[str, float | int | None]:
    """Mean and Student-t confidence interval of independent samples (half-width None if < 2)."""
    from scipy import stats

    x = np.asarray(samples, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return {"mean": None, "low": None, "high": None, "half_width": None, "n": 0}
    mean = float(x.mean())
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "half_width": None, "n": n}
    hw = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "low": mean - hw, "high": mean + hw, "half_width": hw, "n": n}


def check_rewards(scenario: Scenario, rewards: Any, field: str = "--rewards") -> np.ndarray:
    """Rewards (M,) inside ``[0, Rmax]``, else InputError naming ``field``."""
    R = np.asarray(rewards, dtype=float).reshape(-1)
    if R.shape != (scenario.n_msp,):
        raise InputError(field, f"expected {scenario.n_msp} rewards (one per MSP), got {R.size}")
    for m, (r, cap) in enumerate(zip(R, scenario.Rmax)):
        if not (math.isfinite(r) and 0.0 <= r <= cap):
            raise InputError(f"{field}[{m}]", f"must be in [0, Rmax = {cap:g}], got {r:g}")
    return R


def play_stationary(policy: Any, scenario: Scenario, rounds: int = 32) -> np.ndarray:
    """The deterministic rewards (rounds, M) of a :class:`drl.Policy` playing ``rounds`` rounds of
    the stationary market (exact followers), each MSP fed its own outcome; the last row is the
    policy's settled pricing once its history holds real rounds."""
    policy.reset()
    Rs = []
    for _ in range(int(rounds)):
        R = clip_rewards(policy.act(deterministic=True), scenario.Rmax)
        f = follower_equilibrium(scenario, R).f
        policy.feedback(R, _iom(scenario, f), (f > 0).sum(0), msp_utilities(scenario, R, f))
        Rs.append(R)
    return np.array(Rs)


def validate_stationary(scenario: Scenario, rewards: Any, *, reference: Any = None, grid: int = 41,
                        progress: Callable[[str, int, int], Any] | None = None) -> dict[str, Any]:
    """Gaps of ``rewards`` to the certified EPEC of ``scenario`` and the deviation gains there.

    ``reference`` is a :class:`epec.ScenarioSolution` (default: solved here). Raises RuntimeError
    when the EPEC reference is not certified.
    """
    import epec
    from models.game import build_game

    R = check_rewards(scenario, rewards)
    ref = reference if reference is not None else epec.solve_scenario(scenario, grid=grid, progress=progress)
    if not ref.ok:
        raise RuntimeError(f"the EPEC reference is not certified: {ref.result.status.name} {ref.result.message}")
    f = follower_equilibrium(scenario, R).f
    V = msp_utilities(scenario, R, f)
    V_ref = msp_utilities(scenario, ref.R, ref.f)
    I, I_ref = _iom(scenario, f), _iom(scenario, ref.f)
    game = build_game(scenario, R0=R)
    cert = epec.certify(game, leaders=[game.msp], followers=[game.mu],
                        certificate=epec.CertificateOptions(grid=grid), progress=progress)
    gains = np.maximum(np.array(cert.deviation_gains, dtype=float), 0.0)
    gain_pct = 100.0 * gains / np.maximum(np.abs(V), 1e-12)
    return {
        "mode": "stationary",
        "scenario": scenario.name,
        "rewards": R, "epec_rewards": ref.R,
        "msp_utility": V, "epec_msp_utility": V_ref,
        "iom": I, "epec_iom": I_ref,
        "reward_gap_pct": _pct(R, ref.R), "utility_gap_pct": _pct(V, V_ref), "iom_gap_pct": _pct(I, I_ref),
        "deviation_gain": gains, "deviation_gain_pct": gain_pct,
        "max_deviation_gain_pct": float(gain_pct.max()),
        "best_deviations": [list(b) for b in cert.best_deviations],
        "certificate": {"kkt_residual": cert.kkt_residual, "max_deviation_gain": cert.max_deviation_gain,
                        "follower_unique": cert.follower_unique, "evaluations": cert.evaluations,
                        "failed_evaluations": cert.failed_evaluations},
        "epec_status": ref.result.status.name.lower(),
    }


def _iom(scenario: Scenario, f: np.ndarray) -> np.ndarray:
    """Each MSP's total IoM ``sum_n IoM_nm`` (M,) at ``f``."""
    return iom_matrix(scenario, f).sum(0)


def _deviation_gains(sc: Scenario, R: np.ndarray, V: np.ndarray, grid: int) -> np.ndarray:
    """Each MSP's best gain over ``grid`` rewards on ``[0, Rmax_m]`` (others fixed), batched."""
    cf = Coefficients.of(sc)
    M = sc.n_msp
    Rs = np.repeat(R[None, None, :], grid, 1).repeat(M, 0)  # (M, grid, M)
    for m in range(M):
        Rs[m, :, m] = np.linspace(0.0, sc.Rmax[m], grid)
    Rs = torch.as_tensor(Rs.reshape(M * grid, M))
    eq = solve_followers(cf, Rs)
    Vs = market_utilities(cf, Rs, eq.iom).reshape(M, grid, M).numpy()
    best = np.array([Vs[m, :, m].max() for m in range(M)])
    return np.maximum(best - V, 0.0)


def validate_dynamic(base: Scenario, pricing: Any, *, rounds: int, seeds: Any = (0,),
                     options: DynamicsOptions = DynamicsOptions(), grid: int = 21,
                     progress: Callable[[str, int, int], Any] | None = None) -> dict[str, Any]:
    """Per-round gaps of ``pricing`` to the full-information EPEC oracle of each round.

    ``pricing`` is a :class:`drl.Policy` (reset per seed, acting from each MSP's own history and fed
    its own outcome) or fixed rewards (M,). For every seed the same :func:`models.trajectory` is
    played; the oracle is :func:`epec.solve_scenario` of the round's active MUs (rounds whose
    oracle is not certified are reported and left out of the means). Deviation gains are each
    MSP's best gain over a ``grid``-point reward grid at the round (exact batched followers).
    """
    import epec

    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise InputError("--rounds", f"must be an integer >= 1, got {rounds!r}")
    fixed = None if hasattr(pricing, "act") else check_rewards(base, pricing)
    per_round: list[dict[str, Any]] = []
    seed_means: list[float] = []
    seeds = [int(s) for s in seeds]
    total, done = len(seeds) * rounds, 0
    for seed in seeds:
        traj = trajectory(base, rounds, seed, options)
        if fixed is None:
            pricing.reset()
        gaps = []
        for t in range(rounds):
            sc = traj.active_scenario(t)
            R = fixed if fixed is not None else clip_rewards(pricing.act(deterministic=True), base.Rmax)
            f = follower_equilibrium(sc, R).f
            V = msp_utilities(sc, R, f)
            if fixed is None:
                pricing.feedback(R, _iom(sc, f), (f > 0).sum(0), V)
            sol = epec.solve_scenario(sc, grid=grid)
            row: dict[str, Any] = {"seed": seed, "round": t, "active_mus": int(sc.n_mu), "rewards": R,
                                   "msp_utility": V, "oracle_ok": bool(sol.ok)}
            if sol.ok:
                V_o = msp_utilities(sc, sol.R, sol.f)
                ug = _pct(V, V_o)
                gains = _deviation_gains(sc, R, V, 4 * grid + 1)
                row.update({"epec_rewards": sol.R, "epec_msp_utility": V_o, "utility_gap_pct": ug,
                            "reward_gap_pct": _pct(R, sol.R), "mean_gap_pct": float(ug.mean()),
                            "deviation_gain_pct": 100.0 * gains / np.maximum(np.abs(V), 1e-12)})
                gaps.append(float(ug.mean()))
            per_round.append(row)
            done += 1
            if progress is not None:
                progress("rounds", done, total)
        if gaps:
            seed_means.append(float(np.mean(gaps)))
    ok = [r for r in per_round if r["oracle_ok"]]
    if not ok:
        raise RuntimeError("no round's EPEC oracle was certified")
    stack = lambda k: np.array([r[k] for r in ok])  # noqa: E731
    dev = stack("deviation_gain_pct")
    return {
        "mode": "dynamic",
        "scenario": base.name, "rounds": rounds, "seeds": seeds,
        "rewards": stack("rewards").mean(0), "epec_rewards": stack("epec_rewards").mean(0),
        "msp_utility": stack("msp_utility").mean(0), "epec_msp_utility": stack("epec_msp_utility").mean(0),
        "utility_gap_pct": stack("utility_gap_pct").mean(0), "reward_gap_pct": stack("reward_gap_pct").mean(0),
        "deviation_gain_pct": dev.mean(0), "max_deviation_gain_pct": float(dev.max()),
        "mean_gap_pct": confidence_interval(seed_means),
        "mean_gap_pct_per_seed": seed_means,
        # per MSP: the CI over seeds of each seed's mean gap
        "utility_gap_pct_ci": [confidence_interval([np.mean([r["utility_gap_pct"][m] for r in ok if r["seed"] == s])
                                                    for s in seeds if any(r["seed"] == s for r in ok)])
                               for m in range(base.n_msp)],
        "oracle_failed_rounds": len(per_round) - len(ok),
        "per_round": per_round,
    }
