"""The MetaTrading game: scenarios, immersion (IoM), utilities and mechanisms.

The bottom layer of the toolkit: it imports no other package of the project.
"""
from .equilibrium import (
    EquilibriumOptions,
    FollowerEquilibrium,
    FollowerKKTResidual,
    best_response,
    follower_equilibrium,
    follower_gradient,
    follower_kkt_residual,
    follower_uniqueness,
    leader_deviation_gain,
)
from .dynamics import DynamicsOptions, MarketState, Trajectory, base_distances, trajectory
from .errors import InputError
from .game import allocations, build_game, rewards, set_allocations, set_rewards
from .io import atomic_save, atomic_write_bytes, atomic_write_json, atomic_write_text, to_jsonable
from .iom import (
    GHZ,
    aoi,
    compute_cycles,
    compute_time,
    freshness,
    freshness_coefficients,
    iom,
    iom_matrix,
    quality,
    full_quality,
    round_time,
    participant_times,
    median_deadline,
    on_time,
    DEADLINE_MULTIPLE,
    upload_rate,
    upload_time,
)
from .results import (
    CertificateRecord,
    EquilibriumResult,
    FailureResult,
    FLRunResult,
    SweepRecord,
    CompareResult,
    ValidationResult,
    TrainingResult,
    load_compare,
    load_equilibrium,
    load_failure,
    load_fl,
    load_result,
    load_training,
    load_validation,
)
from .scenario import (
    PRESETS,
    Mechanism,
    Metric,
    Scenario,
    generate,
    label_entropy,
    load_scenario,
    preset,
    scenario_from_dict,
)
from .utility import (
    energy_cost,
    energy_cost_coefficient,
    msp_payment,
    msp_utilities,
    msp_value,
    mu_utilities,
    payment,
)

__all__ = [
    "InputError",
    "DynamicsOptions", "MarketState", "Trajectory", "base_distances", "trajectory",
    "EquilibriumOptions", "FollowerEquilibrium", "FollowerKKTResidual", "best_response", "follower_equilibrium",
    "follower_gradient", "follower_kkt_residual", "follower_uniqueness", "leader_deviation_gain",
    "allocations", "build_game", "rewards", "set_allocations", "set_rewards",
    "atomic_save", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "to_jsonable",
    "GHZ", "aoi", "compute_cycles", "compute_time", "freshness", "freshness_coefficients", "iom",
    "iom_matrix", "quality", "full_quality", "round_time", "participant_times", "median_deadline", "on_time",
    "DEADLINE_MULTIPLE", "upload_rate", "upload_time",
    "CertificateRecord", "EquilibriumResult", "FailureResult", "FLRunResult", "SweepRecord", "load_equilibrium",
    "load_failure", "load_fl", "load_result", "CompareResult", "ValidationResult", "TrainingResult",
    "load_compare", "load_training", "load_validation",
    "PRESETS", "Mechanism", "Metric", "Scenario", "generate", "label_entropy", "load_scenario", "preset",
    "scenario_from_dict",
    "energy_cost", "energy_cost_coefficient", "msp_payment", "msp_utilities", "msp_value",
    "mu_utilities", "payment",
]
