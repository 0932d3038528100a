"""Learned pricing: the batched follower equilibrium, the trading market (also as a PettingZoo
``ParallelEnv``), independent PPO agents per MSP, deployment and validation against the EPEC
(docs/model.md section 6).

One import line::

    from drl import solve_followers, Market, train_pricing, load_policy, validate_stationary
"""
from .agent import PPOConfig, PricingAgent
from .followers import BatchEquilibrium, Coefficients, SolverOptions, market_utilities, scenario_arrays, solve_followers
from .market import FEATURES, History, Market, MarketOptions, Outcome
from .pettingzoo_env import PricingParallelEnv
from .policy import Policy, load_policy
from .train import TrainingResult, train_pricing
from .validate import check_rewards, confidence_interval, play_stationary, validate_dynamic, validate_stationary

__all__ = [
    "PPOConfig", "PricingAgent",
    "BatchEquilibrium", "Coefficients", "SolverOptions", "market_utilities", "scenario_arrays", "solve_followers",
    "FEATURES", "History", "Market", "MarketOptions", "Outcome",
    "PricingParallelEnv",
    "Policy", "load_policy",
    "TrainingResult", "train_pricing",
    "check_rewards", "confidence_interval", "play_stationary", "validate_dynamic", "validate_stationary",
]
