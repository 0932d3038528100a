"""The App's run config: its keys and defaults (one place: ``pyproject.toml``), typed and checked.

Flower gives the App its run config as ``[tool.flwr.app.config]`` of the App's
``pyproject.toml`` fused with the overrides of ``flwr run --run-config``; the simulation driver
(``fl.flower.simulation``) fuses the same file with its overrides. So the defaults are written
once, in ``pyproject.toml``; ``run_config_defaults`` reads them from the App folder this module
sits in (the repository, or the FAB Flower installed), and ``AppRunConfig.from_run_config``
refuses a key not declared there. Imports no ``flwr``: the commands check a run config before
any process starts.
"""
from __future__ import annotations

import functools
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from models.errors import InputError

from ..data import load_dataset
from ..allocation import default_allocation, load_allocation
from ..trainer import FLConfig, FLTask, build_task

__all__ = ["APP_DIR", "AppRunConfig", "run_config_defaults", "task_from_run_config", "node_identity",
           "RESULT_FILE", "PARAMS_FILE", "PROGRESS_FILE", "ENGINE_KEY", "SIMULATION", "DEPLOYMENT"]

#: The App's folder: ``pyproject.toml`` with ``[tool.flwr.app]`` and the packages ``fl``, ``models``.
APP_DIR = Path(__file__).resolve().parents[2]
#: Files the ServerApp writes into ``out-dir``.
RESULT_FILE = "fl.json"
PARAMS_FILE = "fl_params.pt"
PROGRESS_FILE = "progress.json"
#: ``node_config`` key of the ServerApp's context that names the engine running it; ``path`` of
#: ``fl.json`` for each (the deployment's SuperLink sets none: deployment).
ENGINE_KEY = "engine"
SIMULATION, DEPLOYMENT = "flower-simulation", "flower-deployment"

_INTEGERS = ("msp", "rounds", "seed", "epochs", "batch-size")
_NUMBERS = ("alpha", "target", "lr", "momentum", "round-timeout")
_SWITCHES = ("short-waits", "resume")


@functools.lru_cache(maxsize=4)
def _defaults(pyproject: Path) -> tuple[tuple[str, Any], ...]:
    try:
        data = tomllib.loads(pyproject.read_text())
    except FileNotFoundError:
        raise InputError("app_dir", f"no pyproject.toml at {pyproject} (the Flower App's folder)") from None
    config = data.get("tool", {}).get("flwr", {}).get("app", {}).get("config")
    if not isinstance(config, dict):
        raise InputError("app_dir", f"{pyproject} has no [tool.flwr.app.config]")
    return tuple(config.items())


def run_config_defaults(app_dir: str | Path | None = None) -> dict[str, Any]:
    """The run-config keys and defaults: ``[tool.flwr.app.config]`` of ``app_dir/pyproject.toml``
    (default ``APP_DIR``)."""
    return dict(_defaults((Path(app_dir) if app_dir is not None else APP_DIR).resolve() / "pyproject.toml"))


def _parse_deadline(value: Any) -> float | str:
    deadline = str(value).strip().lower()
    if deadline == "auto":
        return deadline
    try:
        return float(deadline)
    except ValueError:
        raise InputError("run-config.deadline", f"must be seconds, 'inf' or 'auto', got {value!r}") from None


def _check_types(c: Mapping[str, Any]) -> None:
    for key in _INTEGERS:
        if isinstance(c[key], bool) or not isinstance(c[key], int):
            raise InputError(f"run-config.{key}", f"must be an integer, got {c[key]!r}")
    for key in _NUMBERS:
        if isinstance(c[key], bool) or not isinstance(c[key], (int, float)):
            raise InputError(f"run-config.{key}", f"must be a number, got {c[key]!r}")
    for key in _SWITCHES:
        if not isinstance(c[key], bool):
            raise InputError(f"run-config.{key}", f"must be true or false, got {c[key]!r}")


@dataclass(frozen=True)
class AppRunConfig:
    """The run config of the App, typed and checked (keys of ``run_config_defaults``).

    ``allocation`` is an equilibrium.json of ``metatrading solve`` ("" = the ``scenario``'s
    followers' equilibrium at ``R = Rmax / 2``, as ``metatrading fl``); ``epochs`` 0 = the
    scenario's ``L``; relative paths are resolved against the ServerApp's working folder.
    """

    dataset: str
    data_root: str
    allocation: str
    scenario: str
    out_dir: str
    round_timeout: float
    fl: FLConfig
    short_waits: bool = True
    resume: bool = False

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any], app_dir: str | Path | None = None) -> "AppRunConfig":
        """Check ``run_config`` (fused over the defaults) and type it; InputError names the key."""
        defaults = run_config_defaults(app_dir)
        unknown = sorted(set(run_config) - set(defaults))
        if unknown:
            raise InputError(f"run-config.{unknown[0]}", f"unknown key (known: {', '.join(defaults)})")
        c = {**defaults, **dict(run_config)}
        _check_types(c)
        timeout = float(c["round-timeout"])
        if not (math.isfinite(timeout) and timeout > 0):
            raise InputError("run-config.round-timeout", f"must be > 0 seconds, got {timeout!r}")
        if c["epochs"] < 0:
            raise InputError("run-config.epochs", f"must be >= 0 (0 = the scenario's L), got {c['epochs']}")
        deadline = _parse_deadline(c["deadline"])
        try:
            fl = FLConfig(rounds=c["rounds"], msp=c["msp"], alpha=float(c["alpha"]), target=float(c["target"]),
                          seed=c["seed"], aggregation=c["aggregation"], epochs=c["epochs"] or None,
                          batch_size=c["batch-size"], lr=float(c["lr"]), momentum=float(c["momentum"]),
                          deadline=deadline)
        except InputError as err:
            raise InputError(f"run-config.{err.field.replace('_', '-')}", err.reason) from None
        return cls(dataset=str(c["dataset"]), data_root=str(c["data-root"]), allocation=str(c["allocation"]),
                   scenario=str(c["scenario"]), out_dir=str(c["out-dir"]), round_timeout=timeout, fl=fl,
                   short_waits=c["short-waits"], resume=c["resume"])


def task_from_run_config(rc: AppRunConfig) -> tuple[FLTask, str]:
    """The FL task the run config describes, and where its allocation came from."""
    if rc.allocation:
        sc, f = load_allocation(rc.allocation, field="run-config.allocation")
        source = f"allocation {rc.allocation}"
    else:
        sc, f = default_allocation(rc.scenario)
        source = f"scenario {rc.scenario}, follower equilibrium at R = Rmax/2"
    ds = load_dataset(rc.dataset, root=rc.data_root or None)
    return build_task(ds, sc, f, rc.fl), source


def node_identity(node_config: Mapping[str, Any]) -> tuple[int, int, int | None]:
    """``(partition-id, num-partitions, mu-id)`` of a SuperNode's ``--node-config``.

    ``mu-id`` is None when absent (the simulation engine's nodes know only their partition);
    a deployed node gives it, and the server checks it against the allocation.
    """
    out: list[int | None] = []
    for key in ("partition-id", "num-partitions", "mu-id"):
        if key not in node_config:
            if key == "mu-id":
                out.append(None)
                continue
            raise InputError(f"node-config.{key}", "missing (start the SuperNode with --node-config "
                                                   "'partition-id=k num-partitions=K mu-id=n')")
        v = node_config[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InputError(f"node-config.{key}", f"must be an integer >= 0, got {v!r}")
        out.append(int(v))
    k, n_parts, mu = out
    if k >= n_parts:
        raise InputError("node-config.partition-id", f"must be < num-partitions = {n_parts}, got {k}")
    return k, n_parts, mu
