"""The simulation driver: Flower's simulation engine runs the App (``fl.flower.app``) with a run config.

``run_flower_simulation(run_config)`` runs the very ``server_app`` / ``client_app`` objects that
``flwr run`` deploys, in this process: the ServerApp in a thread, one virtual SuperNode per
participant (``partition-id`` k) on Ray actors. The run config is the deployment's
(``[tool.flwr.app.config]`` fused with the overrides, ``fl.flower.runconfig``), so the task,
the seeds, the aggregation and the files written into ``out-dir`` are those of ``metatrading
fl-deploy``; ``fl.json``'s ``path`` is ``flower-simulation``.

The engine: Flower 1.42's public ``flwr.simulation.run_simulation`` takes no run config (every
ClientApp and the ServerApp would see an empty one), so the driver calls the function behind it,
``_run_simulation``, with a ``Run`` holding the overrides and the App's folder, as ``flwr run``
does for a simulation federation. That is a Flower internal: it goes through the version gate
(``fl.flower.gate``), which under another Flower release refuses with the public way out,
``flwr run`` on the deployment engine (``metatrading fl-deploy``). Flower logs the engine as
deprecated in favour of ``flwr run``; that one warning is filtered out (``quiet_flower``).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models.errors import InputError

from . import gate
from .runconfig import (APP_DIR, ENGINE_KEY, PARAMS_FILE, RESULT_FILE, SIMULATION, AppRunConfig,
                        run_config_defaults, task_from_run_config)

# Flower reads this once, at import: no telemetry calls from an offline research machine.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
# Ray 2.55 warns that it will stop hiding accelerators from num_gpus=0 actors; CPU-only here.
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")

__all__ = ["FlowerOptions", "FlowerResult", "run_flower_simulation", "quiet_flower"]

#: What the version gate names when it refuses another Flower release.
WHAT = "the in-process Flower simulation (a run config for run_simulation)"
INSTEAD = "run the App with flwr run on the deployment engine (metatrading fl-deploy)"


@dataclass(frozen=True)
class FlowerOptions:
    """How the Flower simulation engine runs (not what it computes: that is the run config).

    Attributes
    ----------
    client_num_cpus : float
        Ray CPUs reserved per ClientApp actor (default 1.0: one actor per core).
    ray_num_cpus : int or None
        CPUs Ray may use in all; default ``os.cpu_count()``.
    verbose : bool
        Keep Flower's INFO log (default False: warnings only).
    """

    client_num_cpus: float = 1.0
    ray_num_cpus: int | None = None
    verbose: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.client_num_cpus, (int, float)) and self.client_num_cpus > 0):
            raise InputError("client_num_cpus", f"must be > 0, got {self.client_num_cpus!r}")
        if self.ray_num_cpus is not None and (not isinstance(self.ray_num_cpus, int) or self.ray_num_cpus < 1):
            raise InputError("ray_num_cpus", f"must be a positive integer, got {self.ray_num_cpus!r}")


@dataclass(frozen=True)
class FlowerResult:
    """Outcome of ``run_flower_simulation``.

    Attributes
    ----------
    params : dict[str, torch.Tensor]
        Final global model (``fl_params.pt``; names of ``fl.nets.make_net``).
    report : dict
        ``fl.json`` (the keys of ``metatrading fl``, ``path`` = ``flower-simulation``).
    rounds : list of dict
        Per round (0-based ``round``): ``clients`` (participants), ``test_acc`` (global model on
        the test split), ``wall_s`` (seconds of the round, the server's evaluation included, as
        ``metatrading fl`` counts them) and ``train_s`` (from sending the model to the aggregate).
    wall_s : float
        Seconds of the whole simulation, Ray start-up and shutdown included.
    """

    params: dict[str, torch.Tensor]
    report: dict[str, Any] = field(default_factory=dict)
    rounds: list[dict[str, float]] = field(default_factory=list)
    wall_s: float = 0.0


def run_flower_simulation(run_config: Mapping[str, Any], *, options: FlowerOptions = FlowerOptions(),
                          app_dir: str | os.PathLike | None = None) -> FlowerResult:
    """Run the App in Flower's simulation engine (Ray), one virtual SuperNode per participant.

    Parameters
    ----------
    run_config : mapping
        Overrides of the App's run config (keys of ``[tool.flwr.app.config]``: ``allocation``,
        ``dataset``, ``rounds``, ``seed``, ...). Without ``out-dir`` the files go to a temporary
        folder, read back and removed.
    options : FlowerOptions
        Engine settings (CPUs per actor, log level).
    app_dir : path, optional
        The App's folder (default: this repository, ``fl.flower.runconfig.APP_DIR``).

    Returns
    -------
    FlowerResult

    Raises
    ------
    InputError
        A bad run config (named ``run-config.<key>``), before Ray starts.
    gate.FlowerVersionError
        Another Flower release than the tested one (the message says what to run instead).
    RuntimeError
        A ClientApp failed or a round timed out (the message says which).
    """
    app_dir = Path(app_dir).resolve() if app_dir is not None else APP_DIR
    overrides = dict(run_config)
    with contextlib.ExitStack() as stack:
        if not overrides.get("out-dir"):
            overrides["out-dir"] = stack.enter_context(tempfile.TemporaryDirectory(prefix="flower-sim-"))
        overrides["out-dir"] = str(Path(str(overrides["out-dir"])).resolve())
        rc = AppRunConfig.from_run_config(overrides, app_dir)
        task, _ = task_from_run_config(rc)  # every input check happens before Ray starts
        engine = gate.internal("flwr.simulation.run_simulation", what=WHAT, instead=INSTEAD)
        t0 = time.perf_counter()
        _run_engine(engine, overrides, app_dir, len(task.participants), options)
        wall = time.perf_counter() - t0
        out = Path(rc.out_dir)
        if not (out / RESULT_FILE).is_file():
            raise RuntimeError("the Flower ServerApp ended without a result (see the log)")
        report = json.loads((out / RESULT_FILE).read_text())
        params = torch.load(out / PARAMS_FILE, weights_only=True)
    rounds = [{"round": r, "clients": c, "test_acc": a, "wall_s": w, "train_s": t} for r, (c, a, w, t) in
              enumerate(zip(report["participants"], report["accuracy"], report["wall_time"],
                            report["train_aggregate_time"]))]
    return FlowerResult(params=params, report=report, rounds=rounds, wall_s=wall)


def _run_engine(engine, overrides: dict[str, Any], app_dir: Path, nodes: int, options: FlowerOptions) -> None:
    """Flower's simulation engine on the App's objects, the run config given as ``flwr run`` gives it."""
    from flwr.app import Context, RecordDict

    from .app import client_app, server_app

    def flwr(module: str):
        return gate.internal(module, what=WHAT, instead=INSTEAD)

    # the Run that run_simulation makes for itself, with the overrides ``flwr run`` would put in it
    constant, supercore = flwr("flwr.common.constant"), flwr("flwr.supercore.constant")
    rand = flwr("flwr.server.superlink.linkstate.utils").generate_rand_int_from_bytes
    run = flwr("flwr.supercore.run").Run.create_empty(run_id=rand(constant.RUN_ID_NUM_BYTES))
    run.override_config = dict(overrides)
    run.primary_task_id = rand(constant.TASK_ID_NUM_BYTES)
    run.federation_id = supercore.NOOP_FEDERATION_ID
    identity = flwr("flwr.supercore.task_identity").TaskIdentity
    identity.task_id, identity.run_id, identity.node_id = 1, run.run_id, constant.SUPERLINK_NODE_ID
    events = flwr("flwr.supercore.telemetry")
    fused = {**run_config_defaults(app_dir), **overrides}
    # the ServerApp's context: the same fused run config the ClientApps get from app_dir
    context = Context(run_id=run.run_id, node_id=0, node_config={ENGINE_KEY: SIMULATION}, state=RecordDict(),
                      run_config=fused)
    n_cpus = options.ray_num_cpus or os.cpu_count() or 1
    backend_config = {
        "client_resources": {"num_cpus": float(options.client_num_cpus), "num_gpus": 0.0},
        "init_args": {"num_cpus": int(n_cpus), "num_gpus": 0, "include_dashboard": False,
                      "log_to_driver": bool(options.verbose),
                      "logging_level": logging.INFO if options.verbose else logging.ERROR},
    }
    with quiet_flower(options.verbose):
        try:
            engine._run_simulation(num_supernodes=nodes, exit_event=events.EventType.PYTHON_API_RUN_SIMULATION_LEAVE,
                                   client_app=client_app, server_app=server_app, backend_config=backend_config,
                                   server_app_context=context, app_dir=str(app_dir), run=run, is_app=True)
        finally:
            _shutdown_ray()


class _NoRunSimulationDeprecation(logging.Filter):
    """Drops Flower 1.42's "run_simulation is deprecated" warning, and only that one.

    Why: the in-process engine is kept on purpose for the tests and ``bench fl`` (no processes,
    no ports); users who deploy get ``flwr run`` on the same App through ``metatrading
    fl-deploy``, so the warning's advice is already followed where it matters.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "`run_simulation` function is deprecated" not in record.getMessage()


@contextlib.contextmanager
def quiet_flower(verbose: bool):
    """Flower's log at WARNING unless verbose, without the run_simulation deprecation."""
    logger = logging.getLogger("flwr")
    level = logger.level
    quiet = _NoRunSimulationDeprecation()
    logger.addFilter(quiet)
    if not verbose:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
        logger.removeFilter(quiet)


def _shutdown_ray() -> None:
    """The Ray backend shuts Ray down on success; make sure it also does after a failure."""
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()
