"""Typed, validated MetaTrading scenarios (docs/model.md section 1).

A :class:`Scenario` holds every parameter of one trading round as numpy arrays
of fixed shapes: per MU ``(N,)``, per MU-MSP pair ``(N, M)``, per MSP ``(M,)``,
plus global scalars. It is immutable and validated at construction, so every
consumer (the Pyomo game, the FL clock, the pricing environment) can trust it.

Scenarios come from named presets generated from a seed (:func:`preset`) or
from TOML / YAML / JSON files (:func:`load_scenario`). A file may start from a
preset (keys ``preset``, ``seed``, ``n_mu``, ``n_msp``) and override any field;
a scalar given for an array field is broadcast to its shape.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import InputError

__all__ = [
    "clip_rewards",
    "fingerprint_of",
    "Mechanism",
    "Metric",
    "Scenario",
    "PRESETS",
    "preset",
    "scenario_from_dict",
    "load_scenario",
    "MU_FIELDS",
    "PAIR_FIELDS",
    "MSP_FIELDS",
    "SCALAR_FIELDS",
]


class Mechanism(str, enum.Enum):
    """How an MSP's reward is paid out (docs/model.md section 4)."""

    PROPORTIONAL = "proportional"  #: MU n gets R_m IoM_nm / (sum_k IoM_km + eps0)
    UNIT_PRICE = "unit_price"  #: MU n gets R_m IoM_nm; R_m is a price per unit IoM


class Metric(str, enum.Enum):
    """Which quality the IoM values (docs/model.md sections 3 and 8): ``IoM_nm(f) = Q_nm phi_nm(f)``
    with ``Q`` given by :func:`models.iom.quality`.

    The partial metrics are the ablations of the scheme comparison: MSPs that reward only one
    part of the immersion, and MUs that respond to that part. ``FULL`` is the model's IoM.
    """

    FULL = "iom"  #: Q = w_acc zeta + w_amt ln(1 + D)/ln(1 + Dref) + w_val v (the IoM)
    AOI = "aoi"  #: Q = 1: the freshness phi = 1 / (1 + AoI / A0) alone
    ACCURACY = "accuracy"  #: Q = zeta: local accuracy times freshness
    DATA = "data"  #: Q = (w_amt amount + w_val v) / (w_amt + w_val): data amount and value times freshness


# name -> (unit, lower bound, lower bound inclusive?, upper bound or None)
_BOUNDS: dict[str, tuple[str, float, bool, float | None]] = {
    # per MU
    "F": ("GHz, CPU budget", 0.0, False, None),
    "c": ("CPU cycles per sample", 0.0, False, None),
    "kappa": ("J per cycle per Hz^2", 0.0, False, None),
    "rho": ("price per J", 0.0, True, None),
    "p": ("W, transmit power", 0.0, False, None),
    # per pair
    "D": ("samples", 0.0, True, None),
    "tau": ("s, data age at collection", 0.0, True, None),
    "zeta": ("local accuracy", 0.0, False, 1.0),
    "v": ("data value (normalised label entropy)", 0.0, True, 1.0),
    "h": ("channel gain", 0.0, False, None),
    "B": ("Hz, bandwidth", 0.0, False, None),
    # per MSP
    "S": ("bits, model size", 0.0, False, None),
    "lam": ("value scale", 0.0, True, None),
    "Rmax": ("reward cap", 0.0, True, None),
    # scalars
    "L": ("local epochs", 1.0, True, None),
    "A0": ("s, freshness time scale", 0.0, False, None),
    "N0": ("W/Hz, noise density", 0.0, False, None),
    "eps0": ("share reserve", 0.0, False, None),
    "w_acc": ("IoM weight of accuracy", 0.0, True, 1.0),
    "w_amt": ("IoM weight of data amount", 0.0, True, 1.0),
    "w_val": ("IoM weight of data value", 0.0, True, 1.0),
    "Dref": ("samples, data amount reference", 0.0, False, None),
}

MU_FIELDS = ("F", "c", "kappa", "rho", "p")
PAIR_FIELDS = ("D", "tau", "zeta", "v", "h", "B")
MSP_FIELDS = ("S", "lam", "Rmax")
SCALAR_FIELDS = ("L", "A0", "N0", "eps0", "w_acc", "w_amt", "w_val", "Dref")
_META_KEYS = ("name", "seed", "mechanism", "metric")
_BASE_KEYS = ("preset", "n_mu", "n_msp")


def _reject_non_numbers(name: str, value: Any, index: tuple[int, ...] = ()) -> None:
    """Booleans and strings are not numbers, inside an array as for a scalar field (numpy
    would turn ``"30"`` into 30.0 and ``True`` into 1.0)."""
    where = f"{name}{list(index)}" if index else name
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise InputError(where, f"expected a number, got {type(value).__name__} {value!r}")
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf":
            raise InputError(name, f"expected numbers, got an array of {value.dtype}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _reject_non_numbers(name, v, index + (i,))


def _check_array(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    _reject_non_numbers(name, value)
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(name, f"expected numbers, got {type(value).__name__}") from None
    if arr.ndim == 0:
        arr = np.full(shape, float(arr))
    if arr.shape != shape:
        raise InputError(name, f"expected shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise InputError(f"{name}{list(idx)}", "must be a finite number (got NaN or inf)")
    unit, lo, lo_incl, hi = _BOUNDS[name]
    bad = arr < lo if lo_incl else arr <= lo
    if hi is not None:
        bad |= arr > hi
    if np.any(bad):
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f"{name}{list(idx)}" if arr.ndim else name
        rng = f"{'>=' if lo_incl else '>'} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
        raise InputError(where, f"must be {rng} ({unit}), got {arr[idx]:g}")
    arr = arr.copy()
    arr.setflags(write=False)
    return arr


def _check_scalar(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(name, f"expected a number, got {type(value).__name__}")
    x = float(value)
    if not math.isfinite(x):
        raise InputError(name, "must be a finite number (got NaN or inf)")
    unit, lo, lo_incl, hi = _BOUNDS[name]
    if (x < lo if lo_incl else x <= lo) or (hi is not None and x > hi):
        rng = f"{'>=' if lo_incl else '>'} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
        raise InputError(name, f"must be {rng} ({unit}), got {x:g}")
    return x


@dataclass(frozen=True, eq=False)
class Scenario:
    """All parameters of one MetaTrading round (docs/model.md section 1).

    Shapes: per MU ``(N,)``: ``F`` (GHz), ``c``, ``kappa``, ``rho``, ``p``;
    per pair ``(N, M)``: ``D``, ``tau`` (s), ``zeta``, ``v``, ``h``, ``B`` (Hz);
    per MSP ``(M,)``: ``S`` (bits), ``lam``, ``Rmax``. Scalars: ``L`` (local
    epochs), ``A0`` (s), ``N0`` (W/Hz), ``eps0``, IoM weights
    ``w_acc + w_amt + w_val = 1``, ``Dref``. ``mechanism`` picks the payment rule, ``metric`` the
    quality the IoM values (default the full IoM; the others are the partial-metric games).
    """

    F: np.ndarray
    c: np.ndarray
    kappa: np.ndarray
    rho: np.ndarray
    p: np.ndarray
    D: np.ndarray
    tau: np.ndarray
    zeta: np.ndarray
    v: np.ndarray
    h: np.ndarray
    B: np.ndarray
    S: np.ndarray
    lam: np.ndarray
    Rmax: np.ndarray
    L: int = 5
    A0: float = 30.0
    N0: float = 4e-21
    eps0: float = 1e-3
    w_acc: float = 0.4
    w_amt: float = 0.3
    w_val: float = 0.3
    Dref: float = 1000.0
    mechanism: Mechanism = Mechanism.PROPORTIONAL
    metric: Metric = Metric.FULL
    name: str = "custom"
    seed: int | None = None

    def __post_init__(self) -> None:
        n, m = self._sizes()
        for name in MU_FIELDS:
            object.__setattr__(self, name, _check_array(name, getattr(self, name), (n,)))
        for name in PAIR_FIELDS:
            object.__setattr__(self, name, _check_array(name, getattr(self, name), (n, m)))
        for name in MSP_FIELDS:
            object.__setattr__(self, name, _check_array(name, getattr(self, name), (m,)))
        if np.any(self.D != np.round(self.D)):
            idx = tuple(int(i) for i in np.argwhere(self.D != np.round(self.D))[0])
            raise InputError(f"D{list(idx)}", "must be a whole number of samples")
        for name in SCALAR_FIELDS:
            object.__setattr__(self, name, _check_scalar(name, getattr(self, name)))
        if self.L != int(self.L):
            raise InputError("L", f"must be a whole number of epochs, got {self.L:g}")
        object.__setattr__(self, "L", int(self.L))
        wsum = self.w_acc + self.w_amt + self.w_val
        if abs(wsum - 1.0) > 1e-9:
            raise InputError("w_acc", f"IoM weights w_acc + w_amt + w_val must sum to 1, got {wsum:g}")
        try:
            object.__setattr__(self, "mechanism", Mechanism(self.mechanism))
        except ValueError:
            options = ", ".join(x.value for x in Mechanism)
            raise InputError("mechanism", f"unknown mechanism {self.mechanism!r} (choose: {options})") from None
        try:
            object.__setattr__(self, "metric", Metric(self.metric))
        except ValueError:
            options = ", ".join(x.value for x in Metric)
            raise InputError("metric", f"unknown metric {self.metric!r} (choose: {options})") from None
        if not isinstance(self.name, str):
            raise InputError("name", "must be a string")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer))):
            raise InputError("seed", f"must be an integer, got {self.seed!r}")

    def _sizes(self) -> tuple[int, int]:
        """``(N, M)`` read from the first array-shaped field of each kind, so that any field,
        ``F`` and ``D`` included, may be a scalar broadcast to its shape."""
        def dims(name: str) -> tuple[int, ...]:
            value = getattr(self, name)
            _reject_non_numbers(name, value)
            try:
                return np.shape(value)
            except ValueError:  # ragged nested lists
                raise InputError(name, "expected a rectangular array of numbers") from None

        n = m = None
        for name in MU_FIELDS:
            shape = dims(name)
            if len(shape) == 1:
                n = shape[0]
                break
        for name in MSP_FIELDS:
            shape = dims(name)
            if len(shape) == 1:
                m = shape[0]
                break
        for name in PAIR_FIELDS:
            shape = dims(name)
            if len(shape) == 2:
                n = shape[0] if n is None else n
                m = shape[1] if m is None else m
                break
        if n is None or n == 0:
            raise InputError("F", f"cannot tell the number of MUs N: give F (or another per-MU field) one value "
                                  f"per MU, got shape {dims('F')}")
        if m is None or m == 0:
            raise InputError("Rmax", "cannot tell the number of MSPs M: give Rmax (or another per-MSP field) one "
                                     f"value per MSP, got shape {dims('Rmax')}")
        return int(n), int(m)

    # ------------------------------------------------------------------ shape
    @property
    def n_mu(self) -> int:
        """N, the number of MUs (followers)."""
        return int(self.F.shape[0])

    @property
    def n_msp(self) -> int:
        """M, the number of MSPs (leaders)."""
        return int(self.S.shape[0])

    # ------------------------------------------------------------- conversion
    def to_dict(self) -> dict[str, Any]:
        """Every resolved parameter as JSON types; ``scenario_from_dict`` inverts it."""
        out: dict[str, Any] = {"name": self.name, "seed": self.seed, "mechanism": self.mechanism.value,
                               "metric": self.metric.value}
        for name in MU_FIELDS + PAIR_FIELDS + MSP_FIELDS:
            out[name] = getattr(self, name).tolist()
        for name in SCALAR_FIELDS:
            out[name] = getattr(self, name)
        return out

    def fingerprint(self) -> str:
        """12 hex digits of the SHA-256 of every parameter but ``name`` and ``seed`` (:func:`fingerprint_of`)."""
        return fingerprint_of(self.to_dict())

    def replace(self, **changes: Any) -> "Scenario":
        """A validated copy with some fields changed (the original is untouched)."""
        return dataclasses.replace(self, **changes)

    def subset(self, mus: Any = None, msps: Any = None) -> "Scenario":
        """The scenario restricted to some MUs and/or MSPs (index arrays)."""
        mus = np.arange(self.n_mu) if mus is None else np.asarray(mus)
        msps = np.arange(self.n_msp) if msps is None else np.asarray(msps)
        ch: dict[str, Any] = {k: getattr(self, k)[mus] for k in MU_FIELDS}
        ch.update({k: getattr(self, k)[np.ix_(mus, msps)] for k in PAIR_FIELDS})
        ch.update({k: getattr(self, k)[msps] for k in MSP_FIELDS})
        return self.replace(**ch)


# ---------------------------------------------------------------- presets
#: name -> (N MUs, M MSPs)
PRESETS: dict[str, tuple[int, int]] = {"tiny": (4, 2), "default": (20, 3), "large": (100, 5), "xl": (500, 10)}


def clip_rewards(R: Any, Rmax: Any) -> Any:
    """Rewards ``R`` clipped to the leaders' boxes ``[0, Rmax]`` (docs/model.md section 3): the one
    reward clip of the toolkit, used by the solver, the batched market and every scheme.

    ``R`` is an array of shape (..., M) (numpy, a number, or a torch tensor, which stays a tensor
    on its device); ``Rmax`` broadcasts against it. A NaN stays NaN, so a caller's finiteness
    check still sees it.
    """
    if hasattr(R, "clamp"):  # a torch tensor (models does not import torch)
        return R.clamp(min=0.0).minimum(R.new_tensor(Rmax) if not hasattr(Rmax, "clamp") else Rmax)
    return np.clip(np.asarray(R, dtype=float), 0.0, Rmax)


def label_entropy(counts: np.ndarray) -> np.ndarray:
    """Normalised Shannon entropy of label histograms along the last axis, in [0, 1]."""
    counts = np.asarray(counts, dtype=float)
    tot = counts.sum(-1, keepdims=True)
    p = np.divide(counts, tot, out=np.zeros_like(counts), where=tot > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log(p), 0.0).sum(-1)
    return ent / math.log(counts.shape[-1])


#: the most MU-MSP pairs (n_mu x n_msp) a scenario may have (xl has 5000). Measured: drawing a
#: scenario takes ~40 us and ~120 bytes per pair (100000 x 100 took 400 s and 1.2 GB), and the
#: EPEC's models, the certificate and the FL partition grow with every pair beyond that.
MAX_PAIRS = 200_000
#: bytes per MU-MSP pair of the arrays of a drawn scenario (the measured figure above)
BYTES_PER_PAIR = 120


def check_size(n_mu: int, n_msp: int) -> None:
    """Refuse a scenario of more than :data:`MAX_PAIRS` MU-MSP pairs, stating its size and the
    expected memory and time, before anything is drawn (InputError naming ``n_mu``)."""
    pairs = n_mu * n_msp
    if pairs > MAX_PAIRS:
        raise InputError("n_mu", f"{n_mu} MUs x {n_msp} MSPs = {pairs} MU-MSP pairs, more than the {MAX_PAIRS} this "
                                 f"toolkit takes: drawing it alone would take ~{pairs * 40e-6:.0f} s and "
                                 f"~{pairs * BYTES_PER_PAIR / 1e9:.1f} GB, and every solve grows from there")


def generate(n_mu: int, n_msp: int, seed: int = 0, name: str | None = None) -> Scenario:
    """A random scenario with the default parameter ranges (reproducible from ``seed``).

    Ranges (uniform unless stated): F in [0.3, 1.5] GHz; c in [1e7, 5e7] cycles/sample;
    kappa = 1e-28; rho in [0.3, 1.0] per J; p in [0.1, 0.3] W; D integer in [20, 400];
    tau in [0, 15] s; zeta in [0.6, 0.95]; v the normalised entropy of a Dirichlet(0.5)
    split of D samples over 10 labels; distance d in [50, 300] m and
    h = 1e-3 d^-3; B in [0.5, 2] MHz; S in [5e6, 2e7] bits; lam in [15, 90];
    Rmax = 30. Scalars take the dataclass defaults.

    The ranges make the default equilibrium exercise every regime: rewards strictly inside
    ``(0, Rmax)``, some CPU budgets binding and some slack, and a few ``f_nm = 0`` (an MU
    skipping a poorly paying MSP), with decisions and utilities of order 1-100.
    """
    for key, val in (("n_mu", n_mu), ("n_msp", n_msp)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise InputError(key, f"must be a positive integer, got {val!r}")
    check_size(int(n_mu), int(n_msp))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError("seed", f"must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    n, m = int(n_mu), int(n_msp)
    D = rng.integers(20, 401, size=(n, m)).astype(float)
    v = np.empty((n, m))
    for i in range(n):
        for j in range(m):
            probs = rng.dirichlet(np.full(10, 0.5))
            v[i, j] = label_entropy(rng.multinomial(int(D[i, j]), probs))
    v = np.clip(v, 0.0, 1.0)
    dist = rng.uniform(50.0, 300.0, size=(n, m))
    return Scenario(
        F=rng.uniform(0.3, 1.5, n),
        c=rng.uniform(1e7, 5e7, n),
        kappa=np.full(n, 1e-28),
        rho=rng.uniform(0.3, 1.0, n),
        p=rng.uniform(0.1, 0.3, n),
        D=D,
        tau=rng.uniform(0.0, 15.0, (n, m)),
        zeta=rng.uniform(0.6, 0.95, (n, m)),
        v=v,
        h=1e-3 * dist**-3.0,
        B=rng.uniform(0.5e6, 2e6, (n, m)),
        S=rng.uniform(5e6, 2e7, m),
        lam=rng.uniform(15.0, 90.0, m),
        Rmax=np.full(m, 30.0),
        name=name or f"random-{n}x{m}",
        seed=int(seed),
    )


def preset(name: str, seed: int = 0) -> Scenario:
    """A named preset (``tiny`` 4x2, ``default`` 20x3, ``large`` 100x5, ``xl`` 500x10)."""
    if name not in PRESETS:
        raise InputError("preset", f"unknown preset {name!r} (choose: {', '.join(PRESETS)})")
    n, m = PRESETS[name]
    return generate(n, m, seed=seed, name=name)


def scenario_from_dict(data: Mapping[str, Any]) -> Scenario:
    """Build a scenario from a mapping (as read from a file).

    Keys: optional base ``preset`` (or ``n_mu`` + ``n_msp``) and ``seed``; then any
    field of :class:`Scenario`. Unknown keys are an error.
    """
    if not isinstance(data, Mapping):
        raise InputError("scenario", f"expected a table of parameters, got {type(data).__name__}")
    known = set(_META_KEYS) | set(_BASE_KEYS) | {f.name for f in fields(Scenario)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(str(unknown[0]), f"unknown key (known: {', '.join(sorted(known))})")
    data = dict(data)
    seed = data.get("seed", 0)
    base: Scenario | None = None
    if "preset" in data:
        base = preset(str(data.pop("preset")), seed=seed if seed is not None else 0)
    elif "n_mu" in data or "n_msp" in data:
        if "n_mu" not in data or "n_msp" not in data:
            missing = "n_msp" if "n_mu" in data else "n_mu"
            raise InputError(missing, "n_mu and n_msp must be given together")
        base = generate(data.pop("n_mu"), data.pop("n_msp"), seed=seed if seed is not None else 0)
    data.pop("n_mu", None)
    data.pop("n_msp", None)
    if base is not None:
        data.setdefault("name", base.name)
        return base.replace(**data)
    required = MU_FIELDS + PAIR_FIELDS + MSP_FIELDS
    missing = [k for k in required if k not in data]
    if missing:
        raise InputError(missing[0], "missing (give it, or start from a 'preset')")
    return Scenario(**data)


def load_scenario(spec: str | Path, seed: int | None = None) -> Scenario:
    """A preset name or a ``.toml`` / ``.yaml`` / ``.yml`` / ``.json`` file path.

    A JSON result of ``metatrading solve`` (``equilibrium.json`` or ``failure.json``, whose
    ``scenario`` key holds the resolved scenario) reruns that scenario. ``seed`` replaces the
    file's seed (the preset or base the file starts from is drawn again). A file without a
    ``name`` is named after the file.
    """
    spec_s = str(spec)
    if spec_s in PRESETS:
        return preset(spec_s, seed=0 if seed is None else seed)
    path = Path(spec_s)
    if not path.exists():
        if path.suffix:
            raise InputError("scenario", f"file not found: {path}")
        raise InputError("scenario", f"unknown preset {spec_s!r} (choose: {', '.join(PRESETS)}) and no such file")
    if path.is_dir():
        raise InputError("scenario", f"{path} is a folder, not a scenario file (give a preset or a .toml, .yaml, "
                                     ".yml or .json file)")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(path.read_text())
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(path.read_text())
        elif suffix == ".json":
            data = json.loads(path.read_text())
        else:
            raise InputError("scenario", f"unsupported file type {suffix!r} (use .toml, .yaml, .yml or .json)")
    except InputError:
        raise
    except Exception as exc:  # parse errors of the three formats
        raise InputError("scenario", f"cannot parse {path}: {str(exc).splitlines()[0]}") from None
    if data is None:
        raise InputError("scenario", f"{path} is empty: expected a table of parameters")
    if not isinstance(data, Mapping):
        raise InputError("scenario", f"{path}: expected a table of parameters, got a {type(data).__name__}")
    prefix = ""
    if suffix == ".json" and isinstance(data.get("scenario"), Mapping):
        data, prefix = data["scenario"], "scenario."  # a result file: its resolved scenario
        if seed is not None:
            raise InputError("seed", f"{path} holds a resolved scenario (every parameter already drawn); "
                                     "its seed cannot be replaced")
    else:
        data = {"name": path.stem, **data}
    if seed is not None:
        data = {**data, "seed": seed}
    try:
        return scenario_from_dict(data)
    except InputError as err:
        if not prefix:
            raise
        raise InputError(f"{prefix}{err.field}", f"{err.reason} (in {path})") from None


def fingerprint_of(scenario: Mapping[str, Any]) -> str:
    """The fingerprint of a scenario stored as ``Scenario.to_dict`` wrote it: 12 hex digits of the
    SHA-256 of its parameters (``name`` and ``seed`` aside: two files holding the same market have
    the same fingerprint)."""
    import hashlib

    data = {k: v for k, v in scenario.items() if k not in ("name", "seed")}
    text = json.dumps(data, sort_keys=True, default=lambda x: x.tolist() if hasattr(x, "tolist") else str(x))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
