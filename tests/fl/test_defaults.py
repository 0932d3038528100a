"""One place per FL default (issue 19 item 4).

The local-SGD defaults live in :class:`fl.train.LocalTrainConfig`, the FL run defaults in
:class:`fl.trainer.FLConfig`. Every other place that states one (``CompareConfig``, the command
line, the Flower App's run config in ``pyproject.toml``) must say the same, and these tests
fail the day one of them drifts.
"""
from __future__ import annotations

from dataclasses import fields

import pytest

from benchmarks.cli import build_parser
from drl.compare.config import CompareConfig
from fl.flower.runconfig import run_config_defaults
from fl.train import LocalTrainConfig
from fl.trainer import FLConfig

LOCAL = ("batch_size", "lr", "momentum", "weight_decay")
SHARED = ("alpha", "aggregation", "batch_size", "lr", "momentum")


def _defaults(cls) -> dict:
    return {f.name: f.default for f in fields(cls)}


def test_flconfig_takes_its_local_sgd_defaults_from_localtrainconfig():
    fl, local = _defaults(FLConfig), _defaults(LocalTrainConfig)
    assert {k: fl[k] for k in LOCAL} == {k: local[k] for k in LOCAL}


def test_compare_config_takes_its_fl_defaults_from_flconfig():
    fl, cmp = _defaults(FLConfig), _defaults(CompareConfig)
    assert {k: cmp[k] for k in SHARED} == {k: fl[k] for k in SHARED}


@pytest.mark.parametrize("command, keys", [
    ("fl", ("alpha", "aggregation", "batch_size", "lr", "momentum", "target", "msp", "rounds")),
    ("fl-deploy", ("alpha", "aggregation", "batch_size", "lr", "momentum")),
    ("compare", ("alpha", "aggregation")),
])
def test_the_command_line_defaults_are_flconfig_s(command, keys):
    # Prepare: the parser's defaults, as a run with no flags sees them
    sub = next(a for a in build_parser()._subparsers._group_actions).choices[command]
    parsed = {k: sub.get_default(k) for k in keys}
    # Assert
    fl = _defaults(FLConfig)
    assert parsed == {k: fl[k] for k in keys}


def test_the_flower_run_config_defaults_are_flconfig_s():
    # Prepare: [tool.flwr.app.config] of pyproject.toml (Flower reads its run config there)
    rc = run_config_defaults()
    fl = _defaults(FLConfig)
    # Assert: the keys it shares with FLConfig, written with dashes; rounds (3) and deadline ("inf")
    # are the deployment's own short defaults, epochs 0 means the scenario's L, as FLConfig's None
    assert {k: rc[k.replace("_", "-")] for k in ("alpha", "aggregation", "batch_size", "lr", "momentum", "target",
                                                 "seed", "msp")} == \
        {k: fl[k] for k in ("alpha", "aggregation", "batch_size", "lr", "momentum", "target", "seed", "msp")}
    assert rc["epochs"] == 0 and fl["epochs"] is None
