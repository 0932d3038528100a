"""The options of a scheme comparison (:class:`CompareConfig`, the ``compare`` command's flags),
checked on construction, and the fingerprint a stored run record must agree with to be reused
on ``--resume``.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fl.trainer import FLConfig
from models.errors import InputError
from models.scenario import Scenario

from .schemes import DRL_MISSING, LevelledScheme, LevelSetting, drl_available, make_scheme, SCHEMES

__all__ = ["CompareConfig", "DEFAULT_TARGETS", "RECORD_VERSION", "level_setting"]

#: the version of the run records and the stored frontier (a record of another version is not reused)
RECORD_VERSION = 2

#: test accuracy whose first simulated time is the "time to target", per data set (--target)
DEFAULT_TARGETS: dict[str, float] = {"mnist5k": 0.90, "mnist": 0.95, "fashion-mnist": 0.70, "gtsrb": 0.80}


@dataclass(frozen=True)
class CompareConfig:
    """Options of a comparison (the CLI's flags).

    Parameters
    ----------
    scenario : str
        Preset name or scenario file of the base market (default ``default``).
    dataset : str
        FL data set of every MSP (``mnist5k``, ``fashion-mnist``, ``mnist``, ``gtsrb``).
    data_root : str or None
        Its folder (see :mod:`fl.data`).
    schemes : tuple of str
        Registered scheme names.
    seeds : int
        Seeds 0..seeds-1, each a market trajectory (>= 1).
    rounds : int
        Trading rounds T per trajectory, one FL round each (>= 1).
    target : float or None
        Target test accuracy; None: ``DEFAULT_TARGETS[dataset]``.
    epochs : int or None
        Local epochs; None: the scenario's ``L`` (docs/model.md). ``--quick`` sets 1.
    alpha : float
        Dirichlet concentration of the label split (default 0.5).
    batch_size, lr, momentum
        Local SGD (defaults 32, 0.05, 0.5, as ``metatrading fl``).
    aggregation : str
        A rule of :data:`fl.aggregate.AGGREGATIONS`: ``iom`` (IoM-weighted FedAvg, default),
        ``fedavg`` or one registered.
    drl_policy : str or None
        Folder of trained pricing for ``drl``; None: trained into ``OUT/drl_policy``.
    drl_seconds : float
        Training budget of ``drl`` when it is trained here (default 300 s of wall clock).
    drl_updates : int or None
        Or stop its training after this many PPO updates (reproducible).
    image_size : int or None
        Image side (GTSRB default 32).
    reference : str
        The scheme the headline compares with the others (default ``drl``); the budget-matched
        baselines spend its mean payment.
    level : float
        Cap-relative level of ``fixed_cap`` and ``random_cap``: ``b_m = level * Rmax_m``, in
        (0, 1], default 0.5.
    deadline : float or "auto"
        Round deadline: ``auto`` (default: 2 x the median ``Tcmp + Tup`` at each round's
        equilibrium), seconds > 0, or ``inf`` (no deadline, the old rule).
    """

    scenario: str = "default"
    dataset: str = "mnist5k"
    data_root: str | None = None
    schemes: tuple[str, ...] = ()
    seeds: int = 3
    rounds: int = 10
    target: float | None = None
    epochs: int | None = None
    alpha: float = FLConfig.alpha  # the FL defaults live in fl.trainer.FLConfig
    batch_size: int = FLConfig.batch_size
    lr: float = FLConfig.lr
    momentum: float = FLConfig.momentum
    aggregation: str = FLConfig.aggregation
    drl_policy: str | None = None
    drl_seconds: float = 300.0
    drl_updates: int | None = None
    image_size: int | None = None
    reference: str = "drl"
    level: float = 0.5
    deadline: float | str = "auto"

    def __post_init__(self) -> None:
        for name in ("seeds", "rounds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError(f"--{name}", f"must be an integer >= 1, got {v!r}")
        if not self.schemes:
            raise InputError("--schemes", "no scheme chosen")
        for s in self.schemes:
            if s not in SCHEMES:
                raise InputError("--schemes", f"unknown scheme {s!r} (known: {', '.join(SCHEMES)})")
        if self.reference not in SCHEMES:
            raise InputError("--reference", f"unknown scheme {self.reference!r} (known: {', '.join(SCHEMES)})")
        if "drl" in self.schemes and not drl_available():
            raise InputError("--schemes", DRL_MISSING)
        if self.target is not None and not (math.isfinite(self.target) and 0 < self.target <= 1):
            raise InputError("--target", f"must be in (0, 1], got {self.target}")
        if self.epochs is not None and (isinstance(self.epochs, bool) or self.epochs < 1):
            raise InputError("--epochs", f"must be an integer >= 1, got {self.epochs!r}")
        if not (math.isfinite(self.alpha) and self.alpha > 0):
            raise InputError("--alpha", f"must be a finite number > 0, got {self.alpha}")
        if not (math.isfinite(self.drl_seconds) and self.drl_seconds > 0):
            raise InputError("--drl-seconds", f"must be > 0, got {self.drl_seconds}")
        if self.drl_updates is not None and (isinstance(self.drl_updates, bool) or self.drl_updates < 1):
            raise InputError("--drl-updates", f"must be an integer >= 1, got {self.drl_updates!r}")
        from fl.aggregate import AGGREGATIONS

        if self.aggregation not in AGGREGATIONS:
            raise InputError("--aggregation", f"unknown rule {self.aggregation!r} (choose: {', '.join(AGGREGATIONS)})")
        if isinstance(self.level, bool) or not (isinstance(self.level, (int, float)) and 0 < self.level <= 1):
            raise InputError("--level", f"must be in (0, 1] (a fraction of Rmax), got {self.level!r}")
        if self.deadline != "auto":
            try:
                d = float(self.deadline)
            except (TypeError, ValueError):
                d = math.nan
            if isinstance(self.deadline, bool) or not d > 0:
                raise InputError("--deadline", f"must be seconds > 0, 'inf' or 'auto', got {self.deadline!r}")
            object.__setattr__(self, "deadline", d)
        budget = [s for s in self.schemes if level_setting(s) is LevelSetting.BUDGET]
        if budget and self.reference not in self.schemes:
            raise InputError("--reference", f"the budget-matched {', '.join(budget)} spend the mean payment of the "
                                            f"reference scheme {self.reference!r}, which is not in --schemes (add "
                                            "it, choose another --reference, or use the cap-relative *_cap schemes)")
        if level_setting(self.reference) is not None:
            raise InputError("--reference", f"{self.reference!r} is a naive baseline at a reward level; the "
                                            "reference must set its own rewards")

    @property
    def accuracy_target(self) -> float:
        return self.target if self.target is not None else DEFAULT_TARGETS[self.dataset]

    def fingerprint(self, base: Scenario) -> dict[str, Any]:
        """What a stored run record must agree with to be reused on ``--resume``.

        Not the target accuracy: a record holds the accuracy of every round, and the time to the
        target is computed from it by the report, so ``--resume --target ACC`` re-reports a
        finished comparison at another target without training again.
        """
        d = asdict(self)
        for key in ("schemes", "seeds", "drl_seconds", "drl_updates", "reference", "target", "level"):
            d.pop(key)  # the levels are checked per record (a changed --level reruns the *_cap runs only)
        d["deadline"] = str(self.deadline)
        d["base"] = base.to_dict()
        d["version"] = RECORD_VERSION
        return json.loads(json.dumps(d))


def level_setting(name: str) -> LevelSetting | None:
    """The level setting of a registered scheme (None: it sets its own rewards)."""
    scheme = make_scheme(name)
    return scheme.setting if isinstance(scheme, LevelledScheme) else None

