"""Federated learning driven by the equilibrium (the model's FL section, docs/model.md).

Data sets (the registry ``fl.data``, the built-in readers ``fl.readers``) and non-IID
partitions (``fl.partition``), the shared CNN (``fl.nets``), sequential and vectorised local training (``fl.train``), aggregation
strategies (``fl.aggregate``), the FL loop with its simulated clock and checkpoints
(``fl.trainer``), a Flower adapter (``fl.flower``; ``run_flower_simulation`` imports
flwr only when called), the packaged Flower App (``fl.flower_app``, imported by Flower, not
here) and its local deployment (``fl.deploy``: SuperLink, SuperNodes, ``flwr run``; ``fl.tls``:
the certificates).
"""
from .aggregate import (AGGREGATIONS, FedAvg, IoMFedAvg, RoundUpdates, Strategy, make_strategy, normalise_weights,
                        register_aggregation, weighted_average)
from .data import DATASETS, DatasetSplits, RawSplits, load_dataset, register_dataset
from . import readers  # noqa: F401  (registers the built-in data sets)
from .deploy import DeploymentError, DeploymentResult, NodeSpec, ProcessSet, run_local_deployment
from .nets import grouped_forward, make_net, stack_params, supports_grouped, unstack_params
from .partition import data_value, dirichlet_partition
from .tls import LocalCertificates, make_local_certificates
from .trainer import (FLConfig, FLResult, FLTask, build_task, check_allocation, default_allocation, fl_report,
                      load_allocation, resolve_path, run_fl)
from .train import (
    CPU_CHUNK,
    LocalTrainConfig,
    TrainPath,
    batch_schedule,
    client_seed,
    evaluate,
    get_params,
    local_update,
    local_update_parallel,
    local_update_sequential,
    local_update_stacked,
    local_update_vectorised,
)

__all__ = [
    "AGGREGATIONS", "FedAvg", "IoMFedAvg", "RoundUpdates", "Strategy", "make_strategy", "normalise_weights",
    "register_aggregation", "weighted_average",
    "DATASETS", "DatasetSplits", "RawSplits", "load_dataset", "register_dataset", "data_value", "dirichlet_partition",
    "grouped_forward", "make_net", "stack_params", "supports_grouped", "unstack_params",
    "LocalTrainConfig", "TrainPath", "batch_schedule", "client_seed", "evaluate", "get_params",
    "local_update", "local_update_parallel", "local_update_sequential", "local_update_stacked",
    "local_update_vectorised",
    "CPU_CHUNK", "FLConfig", "FLResult", "FLTask", "build_task", "check_allocation", "default_allocation",
    "fl_report", "load_allocation", "resolve_path", "run_fl",
    "DeploymentError", "DeploymentResult", "NodeSpec", "ProcessSet", "run_local_deployment",
    "LocalCertificates", "make_local_certificates",
    "run_flower_simulation",
]


def __getattr__(name: str):
    # fl.flower imports flwr lazily itself, but keep the import of fl light either way
    if name == "run_flower_simulation":
        from .flower import run_flower_simulation

        return run_flower_simulation
    raise AttributeError(f"module 'fl' has no attribute {name!r}")
