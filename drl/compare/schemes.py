"""Pricing schemes compared in the benchmarks (docs/model.md section 8), and their registry.

A scheme is a small object that maps a round's information to the MSPs' rewards. Its whole
contract (:class:`Scheme`):

- ``prepare(setup)`` once per comparison (load or train a model; default: nothing);
- ``reset(base, seed)`` at the start of each seed's market trajectory;
- ``rewards(info) -> Decision`` each trading round: the rewards ``R`` (M,) the MSPs post;
- ``feedback(outcome)`` after the followers have responded (learning schemes read it);
- ``metric``: the quality the MSPs reward and the MUs respond to (:class:`models.Metric`;
  the full IoM except for the partial-metric ablations). Outcomes are always measured with the
  real IoM;
- ``group``: where the report puts it (:class:`Group`): the naive baselines (the headline's
  average is over these only), the full-information references, the metric ablations, the
  learned pricing, or another (a scheme of yours).

Naive baselines at a reward level (docs/model.md section 8): ``fixed`` posts ``b_m`` every round and
``random`` draws uniformly in ``[0, 2 b_m]``. The level has two settings (:class:`LevelSetting`),
both registered: ``fixed`` / ``random`` are *budget-matched* (``b_m`` = the reference scheme's
mean payment of MSP m over the same seed's run), ``fixed_cap`` / ``random_cap`` are
*cap-relative* (``b_m = level * Rmax_m``). The comparison sets ``b`` before each seed's run
(:meth:`LevelledScheme.set_level`).

A full-information scheme (``epec``, ``static``, ``single_leader``, the ablations) whose solve is
not certified keeps its last certified rewards and counts the round (``Decision.certified =
False``); with no certified rewards yet it stops (:class:`UncertifiedStart`): it never posts
another scheme's rewards under its own name.

``info.scenario`` is the round's whole market (full information). A scheme that models private
information (``drl``) must not read it; it learns only from :meth:`Scheme.feedback`, which
hands each MSP its own entries.

Register your own with :func:`register_scheme`::

    from drl.compare import Decision, Scheme, register_scheme

    class Half(Scheme):
        name = "half"
        def rewards(self, info):
            return Decision(info.scenario.Rmax / 2)

    register_scheme("half", Half)

and run it with ``run_comparison(..., schemes=["half", "epec"])`` or from the command line
with ``metatrading compare --scheme-module my_module --schemes half,epec`` (the module
registers its schemes when imported).
"""
from __future__ import annotations

import abc
import enum
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from models.errors import InputError
from models.scenario import Metric, Scenario

__all__ = [
    "RoundInfo", "Decision", "RoundOutcome", "SchemeSetup", "Scheme", "Group", "LevelSetting", "UncertifiedStart",
    "EpecScheme", "LevelledScheme", "FixedScheme", "RandomScheme", "StaticScheme", "HillClimbOptions",
    "HillClimber", "HillClimbScheme", "SingleLeaderScheme", "DRLScheme",
    "SCHEMES", "BUILTIN_SCHEMES", "register_scheme", "make_scheme", "scheme_names", "drl_available", "DRL_MISSING",
]


class Group(str, enum.Enum):
    """The report's groups of schemes (docs/model.md section 8)."""

    NAIVE = "naive"  #: the headline's average is over these only
    FULL_INFORMATION = "full_information"  #: references that read the whole market
    ABLATION = "ablation"  #: equilibria of a partial metric
    LEARNED = "learned"  #: the learned pricing (drl)
    OTHER = "other"  #: a registered scheme of yours, unless it says otherwise


class LevelSetting(str, enum.Enum):
    """How a naive baseline's reward level ``b_m`` is set (docs/model.md section 8)."""

    BUDGET = "budget_matched"  #: the reference scheme's mean payment of MSP m, same seed
    CAP = "cap_relative"  #: ``level * Rmax_m``


class UncertifiedStart(RuntimeError):
    """A full-information scheme has no certified rewards to keep (its first solve failed)."""


@dataclass(frozen=True)
class RoundInfo:
    """What a scheme may use to post this round's rewards.

    Attributes
    ----------
    round : int
        Trading round t (0-based).
    scenario : Scenario
        The round's market restricted to its active MUs (full information: only the oracle
        schemes read it; ``Rmax`` is public).
    seed : int
        The comparison seed (the market trajectory's).
    rng : numpy Generator
        The scheme's own random stream for this (seed, round).
    shared : drl.compare.cache.SharedWork or None
        The comparison's shared computations (:meth:`~drl.compare.cache.SharedWork.solve_scenario`
        returns what ``epec.solve_scenario`` would, computed once per distinct market); None
        outside a comparison. Full-information schemes only: it solves the whole market.
    """

    round: int
    scenario: Scenario
    seed: int
    rng: np.random.Generator
    shared: Any = None


def _solve(info: RoundInfo, sc: Scenario, grid: int) -> Any:
    """``epec.solve_scenario(sc, grid=grid)``, through the comparison's shared work when there is one."""
    if info.shared is not None:
        return info.shared.solve_scenario(sc, grid=grid)
    from epec import solve_scenario

    return solve_scenario(sc, grid=grid)


@dataclass(frozen=True)
class Decision:
    """A scheme's rewards for one round.

    Attributes
    ----------
    R : array (M,)
        Rewards in ``[0, Rmax]``.
    certified : bool or None
        For equilibrium schemes: whether this round's equilibrium was certified (None: the
        scheme makes no equilibrium claim). An uncertified round is counted and reported.
    note : str
        Why a round was not certified (the solver's status), or anything worth recording.
    """

    R: Any
    certified: bool | None = None
    note: str = ""


@dataclass(frozen=True)
class RoundOutcome:
    """What happened in the market after the followers responded (each array (M,), one entry
    per MSP; :meth:`Scheme.feedback` must give MSP m only entry m)."""

    R: np.ndarray
    total_iom: np.ndarray  #: the real IoM each MSP received
    contributors: np.ndarray  #: how many MUs worked for each MSP
    utility: np.ndarray  #: each MSP's utility V_m


@dataclass(frozen=True)
class SchemeSetup:
    """What :meth:`Scheme.prepare` may use: the comparison's base market and its options."""

    base: Scenario
    out: Path
    seeds: int
    rounds: int
    drl_policy: str | None = None  #: a folder written by ``metatrading train-pricing``
    drl_seconds: float = 300.0  #: training budget when no policy is given (wall-clock seconds)
    drl_updates: int | None = None  #: or a number of PPO updates (reproducible)
    progress: bool = False


class Scheme(abc.ABC):
    """A pricing scheme: the rewards the MSPs post each round (see the module docstring)."""

    name: str = "scheme"
    #: the quality the MSPs reward and the MUs respond to
    metric: Metric = Metric.FULL
    #: the report's group
    group: Group = Group.OTHER

    def prepare(self, setup: SchemeSetup) -> None:
        """Once per comparison, before any round (load or train what the scheme needs)."""

    def reset(self, base: Scenario, seed: int) -> None:
        """At the start of each seed's trajectory."""

    @abc.abstractmethod
    def rewards(self, info: RoundInfo) -> Decision:
        """The rewards (M,) for round ``info.round``."""

    def feedback(self, outcome: RoundOutcome) -> None:
        """After the followers' response (learning schemes)."""

    def describe(self) -> dict[str, Any]:
        """What the comparison records about the scheme (e.g. a training budget)."""
        return {"metric": self.metric.value}


class EpecScheme(Scheme):
    """``epec``: the certified full-information EPEC of each round (:func:`epec.solve_scenario`).

    With ``metric`` other than the IoM this is a partial-metric ablation (``aoi_only``,
    ``accuracy_only``, ``data_only``): the equilibrium of the game whose IoM is that metric
    (``Scenario.metric``), to which the MUs then respond.

    A round whose solve is not certified keeps the last certified rewards and is reported
    (``Decision.certified = False`` with the solver's status); an uncertified first round stops
    the run (:class:`UncertifiedStart`).
    """

    def __init__(self, name: str = "epec", metric: Metric = Metric.FULL, grid: int = 41) -> None:
        self.name, self.metric, self.grid = name, Metric(metric), grid
        self.group = Group.FULL_INFORMATION if self.metric is Metric.FULL else Group.ABLATION
        self._last: np.ndarray | None = None

    def reset(self, base: Scenario, seed: int) -> None:
        self._last = None

    def rewards(self, info: RoundInfo) -> Decision:
        sc = info.scenario.replace(metric=self.metric)
        sol = _solve(info, sc, self.grid)
        if sol.ok:
            self._last = np.asarray(sol.R, dtype=float)
            return Decision(self._last, certified=True)
        if self._last is None:
            raise UncertifiedStart(f"scheme {self.name!r}, round {info.round} (seed {info.seed}): the equilibrium "
                                   f"is not certified ({sol.result.status.name}: {sol.result.message}) and no "
                                   "earlier round's is, so there are no certified rewards to keep")
        return Decision(self._last, certified=False,
                        note=f"round {info.round}: {sol.result.status.name} ({sol.result.message}); "
                             "kept the last certified rewards")

    def describe(self) -> dict[str, Any]:
        return {"metric": self.metric.value, "solver": "epec.solve_scenario", "grid": self.grid}


class LevelledScheme(Scheme):
    """A naive baseline at an explicit reward level ``b`` (M,) (docs/model.md section 8), set by the
    comparison before each seed's run with :meth:`set_level` according to ``setting``."""

    group = Group.NAIVE

    def __init__(self, setting: LevelSetting = LevelSetting.BUDGET) -> None:
        self.setting = LevelSetting(setting)
        self.level: np.ndarray | None = None

    def set_level(self, b: Any) -> None:
        """The level ``b_m`` of each MSP (finite, >= 0)."""
        b = np.asarray(b, dtype=float).reshape(-1)
        if not np.all(np.isfinite(b)) or np.any(b < 0):
            raise InputError("level", f"a reward level must be finite and >= 0, got {b!r}")
        self.level = b

    def _b(self, info: RoundInfo) -> np.ndarray:
        if self.level is None:
            raise RuntimeError(f"scheme {self.name!r} has no reward level: call set_level(b) before its run")
        if self.level.shape != info.scenario.Rmax.shape:
            raise InputError("level", f"{self.level.size} levels for {info.scenario.n_msp} MSPs")
        return self.level

    def describe(self) -> dict[str, Any]:
        return {"metric": self.metric.value, "level_setting": self.setting.value,
                "level": None if self.level is None else self.level.tolist()}


class FixedScheme(LevelledScheme):
    """``fixed``: each MSP posts its level ``b_m`` every round."""

    name = "fixed"

    def rewards(self, info: RoundInfo) -> Decision:
        return Decision(self._b(info).copy())


class RandomScheme(LevelledScheme):
    """``random``: each MSP posts a reward uniform in ``[0, 2 b_m]`` each round (mean ``b_m``;
    clipped to ``Rmax_m`` by the comparison, which lowers the mean when ``2 b_m > Rmax_m``)."""

    name = "random"

    def rewards(self, info: RoundInfo) -> Decision:
        return Decision(info.rng.uniform(0.0, 2.0 * self._b(info)))


class StaticScheme(Scheme):
    """``static``: the certified EPEC of the first round's market, posted unchanged every round
    (a static Stackelberg design that does not adapt). An uncertified first solve stops the run
    (:class:`UncertifiedStart`)."""

    name = "static"
    group = Group.NAIVE

    def __init__(self, grid: int = 41) -> None:
        self.grid = grid
        self._R: np.ndarray | None = None

    def reset(self, base: Scenario, seed: int) -> None:
        self._R = None

    def rewards(self, info: RoundInfo) -> Decision:
        if self._R is None:
            sol = _solve(info, info.scenario, self.grid)
            if not sol.ok:
                raise UncertifiedStart(f"scheme {self.name!r}, seed {info.seed}: the first round's equilibrium is "
                                       f"not certified ({sol.result.status.name}: {sol.result.message})")
            self._R = np.asarray(sol.R, dtype=float)
            return Decision(self._R.copy(), certified=True)
        return Decision(self._R.copy())

    def describe(self) -> dict[str, Any]:
        return {"metric": self.metric.value, "solver": "epec.solve_scenario of round 0", "grid": self.grid}


@dataclass(frozen=True)
class HillClimbOptions:
    """``hill_climb``'s rule, as fractions of the MSP's own ``Rmax_m``.

    start [0.5]: the first reward. step [0.1]: the first step. shrink [0.5]: the step's factor
    when the utility fell (the direction reverses too). min_step [1e-3]: the step never falls
    below it.
    """

    start: float = 0.5
    step: float = 0.1
    shrink: float = 0.5
    min_step: float = 1e-3

    def __post_init__(self) -> None:
        if not 0.0 <= self.start <= 1.0:
            raise InputError("start", f"must be in [0, 1], got {self.start}")
        for name in ("step", "min_step"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise InputError(name, f"must be in (0, 1], got {getattr(self, name)}")
        if not 0.0 < self.shrink < 1.0:
            raise InputError("shrink", f"must be in (0, 1), got {self.shrink}")


class HillClimber:
    """One MSP's hill climbing on its own history (reward posted, utility received) only.

    It keeps moving its reward in the direction that raised its utility last round, and reverses
    with a smaller step (``shrink``) when the utility fell; a bound of ``[0, Rmax_m]`` also turns
    it back.
    """

    def __init__(self, Rmax: float, options: HillClimbOptions = HillClimbOptions()) -> None:
        self.Rmax, self.opt = float(Rmax), options
        self.R = options.start * self.Rmax
        self.step = options.step * self.Rmax
        self.direction = 1.0
        self.last_utility: float | None = None

    def act(self) -> float:
        return self.R

    def feedback(self, R: float, utility: float) -> None:
        """The MSP's own reward and utility of the round just played."""
        if self.last_utility is not None and utility < self.last_utility:
            self.direction = -self.direction
            self.step = max(self.step * self.opt.shrink, self.opt.min_step * self.Rmax)
        self.last_utility = float(utility)
        nxt = float(R) + self.direction * self.step
        if not 0.0 <= nxt <= self.Rmax:
            self.direction = -self.direction
            nxt = min(max(nxt, 0.0), self.Rmax)
        self.R = nxt


class HillClimbScheme(Scheme):
    """``hill_climb``: each MSP adjusts its reward from its own history only (one
    :class:`HillClimber` per MSP, the information ``drl`` has; it never reads ``info.scenario``:
    ``Rmax`` comes from :meth:`reset`). The baseline that asks whether learning is needed."""

    name = "hill_climb"
    group = Group.NAIVE

    def __init__(self, options: HillClimbOptions = HillClimbOptions()) -> None:
        self.options = options
        self.agents: list[HillClimber] = []

    def reset(self, base: Scenario, seed: int) -> None:
        self.agents = [HillClimber(float(r), self.options) for r in base.Rmax]

    def rewards(self, info: RoundInfo) -> Decision:
        return Decision(np.array([a.act() for a in self.agents]))

    def feedback(self, outcome: RoundOutcome) -> None:
        for m, agent in enumerate(self.agents):  # MSP m is given its own entries only
            agent.feedback(outcome.R[m], outcome.utility[m])

    def describe(self) -> dict[str, Any]:
        return {"metric": self.metric.value, "options": {k: getattr(self.options, k)
                                                          for k in ("start", "step", "shrink", "min_step")}}


class SingleLeaderScheme(Scheme):
    """``single_leader``: each MSP solves its own Stackelberg problem as if it were the only MSP
    (``Scenario.subset(msps=[m])`` and :func:`epec.solve_bilevel`, certified), then all post
    together. A round where some MSP's bilevel solve is not certified keeps that MSP's last
    certified reward and is reported; with none yet it stops (:class:`UncertifiedStart`)."""

    name = "single_leader"
    group = Group.FULL_INFORMATION

    def __init__(self) -> None:
        self._last: np.ndarray | None = None

    def reset(self, base: Scenario, seed: int) -> None:
        self._last = np.full(base.n_msp, np.nan)  # NaN: no certified reward yet

    def rewards(self, info: RoundInfo) -> Decision:
        from epec import solve_bilevel
        from models.game import build_game, rewards

        sc = info.scenario
        if self._last is None or self._last.shape != sc.Rmax.shape:
            self._last = np.full(sc.n_msp, np.nan)
        R = self._last.copy()
        notes = []
        for m in range(sc.n_msp):
            mus = np.flatnonzero(sc.D[:, m] > 0)  # an MU without this MSP's data is not in its game
            if mus.size == 0:
                R[m] = 0.0
                continue
            game = build_game(sc.subset(mus=mus, msps=[m]))
            res = solve_bilevel(game, followers=[game.mu])
            if res.ok:
                R[m] = float(rewards(game)[0])
            elif math.isnan(R[m]):
                raise UncertifiedStart(f"scheme {self.name!r}, round {info.round} (seed {info.seed}): MSP {m}'s "
                                       f"Stackelberg problem is not certified ({res.status.name}) and no earlier "
                                       "round's is, so there is no certified reward to keep")
            else:
                notes.append(f"MSP {m}: {res.status.name}")
        self._last = R
        if notes:
            return Decision(R, certified=False, note=f"round {info.round}: " + "; ".join(notes)
                            + "; kept the last certified rewards")
        return Decision(R, certified=True)

    def describe(self) -> dict[str, Any]:
        return {"metric": self.metric.value, "solver": "epec.solve_bilevel per MSP (Scenario.subset)"}


def drl_available() -> bool:
    """Whether ``drl/`` provides the learned pricing (``drl.load_policy``, ``drl.train_pricing``)."""
    try:
        import drl
    except ImportError:
        return False
    return hasattr(drl, "load_policy") and hasattr(drl, "train_pricing")


DRL_MISSING = ("scheme 'drl' needs the learned pricing of drl/ (drl.load_policy and drl.train_pricing), "
               "which this build does not have yet; leave 'drl' out of --schemes")


class DRLScheme(Scheme):
    """``drl``: the trained pricing agents of ``drl/``, one per MSP, each acting on its own
    history only (it never reads ``info.scenario`` beyond the round number).

    :meth:`prepare` loads ``setup.drl_policy``; without one it trains the agents for the base
    scenario with ``drl.train_pricing(..., dynamic=True)`` into ``OUT/drl_policy`` (reused on
    ``--resume``). The training budget is recorded by :meth:`describe`.
    """

    name = "drl"
    group = Group.LEARNED

    def __init__(self) -> None:
        self._policy: Any = None
        self._source = ""

    def prepare(self, setup: SchemeSetup) -> None:
        if not drl_available():
            raise InputError("--schemes", DRL_MISSING)
        import drl

        if setup.drl_policy is not None:
            folder = Path(setup.drl_policy)
            self._source = f"loaded from {folder}"
        else:
            folder = setup.out / "drl_policy"
            if not (folder / "policy.pt").is_file():  # absent, or a training interrupted: (re)start it
                drl.train_pricing(setup.base, out=folder, seconds=setup.drl_seconds, updates=setup.drl_updates,
                                  seed=0, dynamic=True, device="cpu", progress=setup.progress,
                                  resume=folder.exists())
                self._source = f"trained for {setup.base.name} (dynamic market) into {folder}"
            else:
                self._source = f"trained for {setup.base.name} (dynamic market), reused from {folder}"
        self._policy = drl.load_policy(folder, flag="--drl-policy")
        pol, base = self._policy, setup.base
        if (int(pol.n_msp), int(getattr(pol, "n_mu", base.n_mu))) != (base.n_msp, base.n_mu):
            raise InputError("--drl-policy", f"the policy was trained for {getattr(pol, 'n_mu', '?')} MUs x "
                                             f"{pol.n_msp} MSPs, the scenario has {base.n_mu} x {base.n_msp}")

    def reset(self, base: Scenario, seed: int) -> None:
        self._policy.reset()

    def rewards(self, info: RoundInfo) -> Decision:
        return Decision(np.asarray(self._policy.act(deterministic=True), dtype=float))

    def feedback(self, outcome: RoundOutcome) -> None:
        self._policy.feedback(outcome.R, outcome.total_iom, outcome.contributors, outcome.utility)

    def describe(self) -> dict[str, Any]:
        budget = getattr(self._policy, "budget", None)
        if budget is not None and not isinstance(budget, dict):
            budget = {k: getattr(budget, k) for k in ("seconds", "market_rounds", "updates") if hasattr(budget, k)}
        return {"metric": self.metric.value, "policy": self._source, "training_budget": budget}


#: name -> factory; :func:`register_scheme` adds to it
SCHEMES: dict[str, Callable[[], Scheme]] = {}


def register_scheme(name: str, factory: Callable[[], Scheme], *, replace: bool = False) -> None:
    """Make ``factory()`` available as scheme ``name`` (``--schemes name``)."""
    if not isinstance(name, str) or not name or "," in name or name == "all":
        raise InputError("scheme", f"a scheme name must be a non-empty string without ',' and not 'all', got {name!r}")
    if name in SCHEMES and not replace:
        raise InputError("scheme", f"scheme {name!r} is already registered (pass replace=True)")
    SCHEMES[name] = factory


register_scheme("epec", lambda: EpecScheme("epec"))
register_scheme("drl", DRLScheme)
register_scheme("fixed", FixedScheme)
register_scheme("random", RandomScheme)
register_scheme("fixed_cap", lambda: FixedScheme(LevelSetting.CAP))
register_scheme("random_cap", lambda: RandomScheme(LevelSetting.CAP))
register_scheme("static", StaticScheme)
register_scheme("hill_climb", HillClimbScheme)
register_scheme("single_leader", SingleLeaderScheme)
register_scheme("aoi_only", lambda: EpecScheme("aoi_only", Metric.AOI))
register_scheme("accuracy_only", lambda: EpecScheme("accuracy_only", Metric.ACCURACY))
register_scheme("data_only", lambda: EpecScheme("data_only", Metric.DATA))
#: the schemes of docs/model.md section 8, in the order they are reported
BUILTIN_SCHEMES: tuple[str, ...] = tuple(SCHEMES)


def scheme_names(spec: str) -> list[str]:
    """``"all"`` or a comma list -> registered scheme names (duplicates dropped, order kept)."""
    if not isinstance(spec, str) or not spec.strip():
        raise InputError("--schemes", "give 'all' or a comma-separated list of schemes")
    if spec.strip() == "all":
        return list(SCHEMES)
    names: list[str] = []
    for raw in spec.split(","):
        name = raw.strip()
        if name not in SCHEMES:
            raise InputError("--schemes", f"unknown scheme {name!r} (known: {', '.join(SCHEMES)})")
        if name not in names:
            names.append(name)
    return names


def make_scheme(name: str) -> Scheme:
    """A fresh instance of the registered scheme ``name``."""
    if name not in SCHEMES:
        raise InputError("--schemes", f"unknown scheme {name!r} (known: {', '.join(SCHEMES)})")
    scheme = SCHEMES[name]()
    if not isinstance(scheme, Scheme):
        raise InputError("scheme", f"the factory of {name!r} returned {type(scheme).__name__}, not a Scheme")
    scheme.name = name
    return scheme
