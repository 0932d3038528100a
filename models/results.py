"""Typed loaders of the result files the ``metatrading`` commands write.

Each file is validated by a pydantic model on reading, so a result that does not have the
shape it claims is an :class:`~models.errors.InputError` naming the field, never a surprise
later. Arrays come back as numpy arrays through the ``*_array`` properties; the resolved
scenario of a solve comes back as a validated :class:`~models.scenario.Scenario`.

>>> from models.results import load_equilibrium
>>> eq = load_equilibrium("results/default/equilibrium.json")       # doctest: +SKIP
>>> eq.status, eq.rewards_array, eq.certificate.max_deviation_gain  # doctest: +SKIP
>>> eq.to_scenario().n_mu                                           # doctest: +SKIP

``load_result(path)`` picks the model from the file's keys: ``equilibrium.json``,
``failure.json``, ``fl.json``, ``compare.json`` (:class:`CompareResult`), ``validation.json``
(:class:`ValidationResult`) and ``training.json`` (:class:`TrainingResult`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import InputError
from .scenario import Scenario, scenario_from_dict

__all__ = [
    "CertificateRecord",
    "SweepRecord",
    "EquilibriumResult",
    "AllocationRecord",
    "FailureResult",
    "FLRunResult",
    "Interval",
    "CompareSchemeRecord",
    "CompareResult",
    "ValidationRound",
    "ValidationResult",
    "TrainingUpdate",
    "TrainingResult",
    "load_equilibrium",
    "load_allocation_record",
    "load_failure",
    "load_fl",
    "load_compare",
    "load_validation",
    "load_training",
    "load_result",
]


class _Record(BaseModel):
    # results written by a newer version may carry more keys: keep them, do not fail
    model_config = ConfigDict(extra="allow", frozen=True, strict=False)

    def to_json(self) -> dict[str, Any]:
        """The record as the JSON object its file holds (fields in declared order, extras after;
        infinities and NaN stay floats for :func:`models.io.atomic_write_json`)."""
        return self.model_dump()


class CertificateRecord(_Record):
    """The equilibrium certificate (docs/model.md section 5)."""

    # in the order metatrading solve writes them
    holds: Optional[bool] = None
    reasons: list[str] = []
    max_deviation_gain: Optional[float]
    deviation_gains: list[Optional[float]] = []
    relative_gains: list[Optional[float]] = []
    best_deviations: list[Optional[float]] = []
    utilities: list[Optional[float]] = []
    kkt_residual: Optional[float]
    follower_unique: Optional[bool]
    follower_spread: Optional[float] = None
    evaluations: Optional[int] = None
    failed_evaluations: Optional[int] = None
    numpy_kkt_residual: Optional[float] = None


class SweepRecord(_Record):
    """One diagonalisation sweep of the history."""

    sweep: int
    rewards: list[float]
    utilities: list[float]
    step: float
    relative_step: Optional[float] = None
    stationarity: Optional[float] = None
    iterations: int = 0


class _ResolvedScenario:
    """``to_scenario`` of the records of ``metatrading solve``, whose ``scenario`` field holds the
    resolved scenario (declared by each record, so that it keeps its place among their fields)."""

    def to_scenario(self) -> Scenario:
        """The resolved scenario the solve ran on (validated; an InputError names the field as
        ``scenario.<field>``)."""
        try:
            return scenario_from_dict(self.scenario)
        except InputError as err:
            raise InputError(f"scenario.{err.field}", err.reason) from None


class EquilibriumResult(_ResolvedScenario, _Record):
    """``equilibrium.json`` of ``metatrading solve``: rewards ``R_m``, allocations ``f_nm`` (GHz),
    IoM, utilities, certificate, per-sweep history, options and the resolved scenario.

    The one record of the file: ``metatrading solve`` writes it through this model
    (:meth:`to_json`) and every reader loads it through :func:`load_equilibrium`."""

    status: str
    rewards: list[float]
    allocations: list[list[float]]
    iom: list[list[float]]
    msp_utility: list[float]
    mu_utility: list[float]
    certificate: CertificateRecord
    iterations: int
    sweeps: int
    seconds: float
    timings: dict[str, float] = {}
    history: list[SweepRecord] = []
    options: dict[str, Any] = {}
    scenario: dict[str, Any]

    @property
    def rewards_array(self) -> np.ndarray:
        """``R``, shape (M,)."""
        return np.asarray(self.rewards, dtype=float)

    @property
    def allocations_array(self) -> np.ndarray:
        """``f``, shape (N, M), GHz."""
        return np.asarray(self.allocations, dtype=float)

    @property
    def iom_array(self) -> np.ndarray:
        return np.asarray(self.iom, dtype=float)


class AllocationRecord(_ResolvedScenario, _Record):
    """What FL reads of an ``equilibrium.json``: the allocations ``f_nm`` (GHz) and the resolved
    scenario. A subset of :class:`EquilibriumResult`'s fields, so an ``equilibrium.json`` is one,
    and so is any JSON object with these two keys (an allocation written by hand)."""

    allocations: list[list[float]]
    scenario: dict[str, Any]


class FailureResult(_ResolvedScenario, _Record):
    """``failure.json`` of a ``metatrading solve`` that did not converge: the evidence (the
    certificate that failed, the global moves, a cycle, the history), never an answer."""

    status: str
    message: str = ""
    iterations: int = 0
    sweeps: int = 0
    seconds: float = 0.0
    starts: Any = None
    certificate: Optional[CertificateRecord] = None
    global_moves: list[dict[str, Any]] = []
    cycle: list[list[float]] = []
    history: list[SweepRecord] = []
    options: dict[str, Any] = {}
    scenario: dict[str, Any]


class FLRunResult(_Record):
    """``fl.json`` of ``metatrading fl``: per-round test accuracy and simulated time (s)."""

    dataset: str
    msp: int
    aggregation: str
    seed: int
    rounds: int
    accuracy: list[float]
    sim_time: list[float]
    participants: list[int] = []
    wall_time: list[float] = []
    target: float
    time_to_target: Optional[float] = None
    rounds_to_target: Optional[int] = None
    final_accuracy: float
    allocation_source: str = ""
    path: str = ""
    round_time: Optional[float] = None

    def model_post_init(self, _context: Any) -> None:
        if not (len(self.accuracy) == len(self.sim_time) == self.rounds):
            raise ValueError(f"accuracy ({len(self.accuracy)}) and sim_time ({len(self.sim_time)}) "
                             f"must hold one value per round ({self.rounds})")


class Interval(_Record):
    """A mean over seeds (or policies) with its 95% confidence interval (``half_width`` None
    for one value; ``mean`` None when there is no value)."""

    mean: Optional[float]
    half_width: Optional[float] = None
    n: int = 0


class CompareSchemeRecord(_Record):
    """One scheme of ``compare.json``: means and intervals over seeds."""

    iom: Interval
    final_accuracy: Interval
    msp_utility: Optional[Interval] = None
    mu_utility: Optional[Interval] = None
    time_to_target: Optional[Interval] = None
    uncertified_rounds: int = 0


class CompareResult(_Record):
    """``compare.json`` of ``metatrading compare``: settings, per scheme the means and 95%
    intervals over seeds, and the headline."""

    settings: dict[str, Any]
    schemes: dict[str, CompareSchemeRecord]
    headline: dict[str, Any]

    def model_post_init(self, _context: Any) -> None:
        for key in ("dataset", "seeds", "rounds"):
            if key not in self.settings:
                raise ValueError(f"settings has no {key!r}")


class ValidationRound(_Record):
    """One (seed, round) of a dynamic validation (the EPEC fields are None where the round's
    oracle failed)."""

    seed: int
    round: int
    rewards: list[float]
    oracle_ok: bool
    epec_rewards: Optional[list[Optional[float]]] = None
    utility_gap_pct: Optional[list[Optional[float]]] = None
    mean_gap_pct: Optional[float] = None


class ValidationResult(_Record):
    """``validation.json`` of ``metatrading validate``: the validated rewards against the
    certified EPEC, per MSP (``mode`` stationary or dynamic)."""

    mode: Literal["stationary", "dynamic"]
    scenario: str
    rewards: list[float]
    epec_rewards: list[float]
    msp_utility: list[float]
    epec_msp_utility: list[float]
    reward_gap_pct: list[Optional[float]]
    utility_gap_pct: list[Optional[float]]
    deviation_gain_pct: list[Optional[float]]
    max_deviation_gain_pct: float
    per_round: list[ValidationRound] = []
    mean_gap_pct: Optional[Interval] = None

    def model_post_init(self, _context: Any) -> None:
        m = len(self.rewards)
        for key in ("epec_rewards", "msp_utility", "epec_msp_utility", "reward_gap_pct", "utility_gap_pct",
                    "deviation_gain_pct"):
            if len(getattr(self, key)) != m:
                raise ValueError(f"{key} holds {len(getattr(self, key))} values, rewards {m} (one per MSP)")
        if self.mode == "dynamic" and self.mean_gap_pct is None:
            raise ValueError("a dynamic validation needs mean_gap_pct")


class TrainingUpdate(_Record):
    """One PPO update of ``training.json`` (its per-MSP metrics are kept as extra keys)."""

    update: int
    market_rounds: int
    seconds: float
    rewards: list[float]
    utilities: list[float]
    reward_gap_pct: Optional[list[float]] = None


class TrainingResult(_Record):
    """``training.json`` of ``metatrading train-pricing``: the log per update, the budget spent
    and the EPEC reference (None in the dynamic market)."""

    scenario: str
    dynamic: bool
    seed: int
    config: dict[str, Any]
    budget: dict[str, float]
    epec_rewards: Optional[list[float]] = None
    epec_msp_utility: Optional[list[float]] = None
    updates: list[TrainingUpdate]
    device: str = "cpu"

    def model_post_init(self, _context: Any) -> None:
        for key in ("seconds", "market_rounds", "updates"):
            if key not in self.budget:
                raise ValueError(f"budget has no {key!r}")


def _read_json(path: str | Path, field: str) -> Any:
    p = Path(path)
    if not p.is_file():
        raise InputError(field, f"file not found: {path}")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(field, f"not a JSON file: {exc}") from None


def _validate(model: type[_Record], data: Any, field: str, path: str | Path) -> Any:
    if not isinstance(data, dict):
        raise InputError(field, f"{path}: expected a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in err["loc"]).lstrip(".")
        where = f"{field}: {loc}" if loc else field
        raise InputError(where, f"{err['msg']} (in {path})") from None


def load_equilibrium(path: str | Path, field: str = "equilibrium") -> EquilibriumResult:
    """An ``equilibrium.json`` as an :class:`EquilibriumResult` (InputError naming the field)."""
    return _validate(EquilibriumResult, _read_json(path, field), field, path)


def load_allocation_record(path: str | Path, field: str = "allocation") -> AllocationRecord:
    """The allocations and scenario of an ``equilibrium.json`` (or of any JSON object with
    those two keys) as an :class:`AllocationRecord` (InputError naming the field)."""
    return _validate(AllocationRecord, _read_json(path, field), field, path)


def load_failure(path: str | Path, field: str = "failure") -> FailureResult:
    """A ``failure.json`` as a :class:`FailureResult`."""
    return _validate(FailureResult, _read_json(path, field), field, path)


def load_fl(path: str | Path, field: str = "fl") -> FLRunResult:
    """An ``fl.json`` as an :class:`FLRunResult`."""
    return _validate(FLRunResult, _read_json(path, field), field, path)


def load_compare(path: str | Path, field: str = "compare") -> CompareResult:
    """A ``compare.json`` as a :class:`CompareResult`."""
    return _validate(CompareResult, _read_json(path, field), field, path)


def load_validation(path: str | Path, field: str = "validation") -> ValidationResult:
    """A ``validation.json`` as a :class:`ValidationResult`."""
    return _validate(ValidationResult, _read_json(path, field), field, path)


def load_training(path: str | Path, field: str = "training") -> TrainingResult:
    """A ``training.json`` as a :class:`TrainingResult`."""
    return _validate(TrainingResult, _read_json(path, field), field, path)


#: (keys that identify a result file, its model), tried in this order by :func:`load_result`
_KINDS: tuple[tuple[tuple[str, ...], type[_Record]], ...] = (
    (("accuracy",), FLRunResult),
    (("allocations",), EquilibriumResult),
    (("schemes", "headline"), CompareResult),
    (("mode", "epec_rewards"), ValidationResult),
    (("updates", "budget"), TrainingResult),
    (("status", "scenario"), FailureResult),
)


def load_result(path: str | Path, field: str = "result") -> (EquilibriumResult | FailureResult | FLRunResult
                                                              | CompareResult | ValidationResult | TrainingResult):
    """Any result file of the toolkit, typed by its keys."""
    data = _read_json(path, field)
    if isinstance(data, dict):
        for keys, model in _KINDS:
            if all(k in data for k in keys):
                return _validate(model, data, field, path)
    raise InputError(field, f"{path}: not a result of metatrading solve, fl, compare, validate or train-pricing")
