"""Everything Flower: the one place a Flower upgrade touches (``flwr`` is imported nowhere else).

- ``records``: the record layout of the App's messages (keys, the packed model ``ParamLayout``);
- ``strategy``: ``WeightedFedAvg`` (Flower's FedAvg with ``fl.aggregate``'s rule) and ``PromptGrid``;
- ``runconfig``: the App's run config (defaults in ``pyproject.toml``), typed and checked; the task;
- ``app``: the App, ``client_app`` and ``server_app``, defined once (``[tool.flwr.app.components]``);
- ``simulation``: Flower's simulation engine running that App with a run config (``run_flower_simulation``);
- ``deployment``: a local deployment of that App (SuperLink, SuperNodes, ``flwr run``, TLS);
- ``processes``: supervision of the deployment's processes (``/proc``), ports and logs;
- ``gate``: the version gate in front of every Flower internal;
- ``waits``, ``supernode_launcher.py``, ``worker.py``: the short polls and the long-lived ClientApp
  process of a deployed SuperNode (both behind the gate).

Importing this package imports no ``flwr``; the names below load their module on first use.
"""
from __future__ import annotations

import importlib

__all__ = ["run_flower_simulation", "FlowerOptions", "FlowerResult", "run_local_deployment", "NodeSpec",
           "DeploymentError", "DeploymentResult", "ProcessSet", "AppRunConfig", "ParamLayout"]

_WHERE = {"run_flower_simulation": "simulation", "FlowerOptions": "simulation", "FlowerResult": "simulation",
          "run_local_deployment": "deployment", "NodeSpec": "deployment", "DeploymentResult": "deployment",
          "DeploymentError": "processes", "ProcessSet": "processes", "AppRunConfig": "runconfig",
          "ParamLayout": "records"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'fl.flower' has no attribute {name!r}")
