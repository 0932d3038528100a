"""Federated learning driven by the equilibrium (the model's FL section, docs/model.md).

Data sets (the registry ``fl.data``, the built-in readers ``fl.readers``) and non-IID
partitions (``fl.partition``), the shared CNN (``fl.nets``), sequential and vectorised local training (``fl.train``), aggregation
strategies (``fl.aggregate``), the allocation an FL run is driven by (``fl.allocation``), one FL
round with its deadline and the clients' update cache (``fl.round``) and the FL loop with its
simulated clock and checkpoints (``fl.trainer``) import no ``flwr``. Everything Flower lives in ``fl.flower`` (the App, its
simulation driver and its local deployment; imported on first use), and ``fl.tls`` makes the
deployment's certificates.
"""
from .aggregate import (AGGREGATIONS, FedAvg, IoMFedAvg, RoundUpdates, Strategy, make_strategy, normalise_weights,
                        register_aggregation, weighted_average)
from .data import DATASETS, DatasetSplits, RawSplits, load_dataset, register_dataset
from . import readers  # noqa: F401  (registers the built-in data sets)
from .nets import grouped_forward, make_net, stack_params, supports_grouped, unstack_params
from .partition import data_value, dirichlet_partition
from .tls import LocalCertificates, make_local_certificates
from .allocation import check_allocation, default_allocation, load_allocation
from .trainer import FLConfig, FLResult, FLTask, build_task, fl_report, resolve_path, run_fl
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


_FLOWER = ("DeploymentError", "DeploymentResult", "NodeSpec", "ProcessSet", "run_local_deployment",
           "run_flower_simulation")


def __getattr__(name: str):
    # the Flower names come from fl.flower on first use: importing fl imports neither it nor flwr
    if name in _FLOWER:
        from . import flower

        return getattr(flower, name)
    raise AttributeError(f"module 'fl' has no attribute {name!r}")
