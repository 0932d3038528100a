"""Server-side aggregation: a small strategy interface with the maths in pure functions.

As in Flower's strategies, :class:`Strategy` owns the aggregation step (a template
method: validate, ask the hook for raw weights, normalise, average); a variant
overrides the one hook :meth:`Strategy.weights`.

- :class:`IoMFedAvg` (default, MODEL.md section 7): ``w_n = IoM_nm / sum_k IoM_km``.
- :class:`FedAvg` (McMahan et al., 2017): ``w_n = D_nm / sum_k D_km``.
"""
from __future__ import annotations

import abc
import enum
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from models.errors import InputError

from .nets import stack_params

__all__ = [
    "Aggregation",
    "Strategy",
    "IoMFedAvg",
    "FedAvg",
    "normalise_weights",
    "weighted_average",
    "make_strategy",
]


class Aggregation(str, enum.Enum):
    """Named aggregation rules (the CLI's ``--aggregation``)."""

    IOM = "iom"  #: IoM-weighted FedAvg
    FEDAVG = "fedavg"  #: weights proportional to the data amount


def normalise_weights(raw: Sequence[float] | np.ndarray, field: str = "weights") -> np.ndarray:
    """``w_k = raw_k / sum_j raw_j``; raw weights must be finite, >= 0, with a positive sum."""
    w = np.asarray(raw, dtype=float).reshape(-1)
    if w.size == 0:
        raise InputError(field, "no participants to aggregate")
    if not np.all(np.isfinite(w)):
        raise InputError(f"{field}[{int(np.argmax(~np.isfinite(w)))}]", "must be finite (got NaN or inf)")
    if np.any(w < 0):
        raise InputError(f"{field}[{int(np.argmax(w < 0))}]", f"must be >= 0, got {w[w < 0][0]:g}")
    total = w.sum()
    if total <= 0:
        raise InputError(field, "weights sum to zero")
    return w / total


def weighted_average(
    params: Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]], weights: Sequence[float] | np.ndarray
) -> dict[str, Tensor]:
    """``theta = sum_k w_k theta_k / sum_k w_k`` per tensor.

    ``params`` is a list of K weight dicts or one dict of stacked ``[K, ...]`` tensors;
    ``weights`` are raw (finite, >= 0, positive sum) and normalised here.
    """
    stacked = dict(params) if isinstance(params, Mapping) else stack_params(params)
    w = normalise_weights(weights)
    out = {}
    for name, t in stacked.items():
        if t.shape[0] != w.size:
            raise InputError("weights", f"{w.size} weights for {t.shape[0]} models")
        wt = torch.as_tensor(w, dtype=torch.float64, device=t.device)
        # accumulate in float64 so that the average does not depend on the client order's rounding
        out[name] = torch.tensordot(wt, t.double(), dims=1).to(t.dtype)
    return out


class Strategy(abc.ABC):
    """Aggregation strategy: :meth:`aggregate` is the template, :meth:`weights` the hook."""

    name: str = "strategy"

    @abc.abstractmethod
    def weights(self, iom: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """Raw (unnormalised, >= 0) weight of each participant from its IoM and data amount."""

    def aggregate(
        self,
        params: Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]],
        iom: Sequence[float] | np.ndarray,
        sizes: Sequence[float] | np.ndarray,
    ) -> dict[str, Tensor]:
        """The new global model from the participants' updated weights.

        Parameters
        ----------
        params : list of K dicts, or dict of stacked ``[K, ...]`` tensors
        iom : (K,) the participants' immersion ``IoM_nm``
        sizes : (K,) their data amounts ``D_nm``
        """
        iom = np.asarray(iom, dtype=float).reshape(-1)
        sizes = np.asarray(sizes, dtype=float).reshape(-1)
        if sizes.shape != iom.shape:
            raise InputError("iom", f"{iom.size} IoM values for {sizes.size} participants")
        for field, v in (("iom", iom), ("sizes", sizes)):  # checked whatever the rule reads
            if not np.all(np.isfinite(v)) or np.any(v < 0):
                raise InputError(field, "must be finite and >= 0")
        w = normalise_weights(self.weights(iom, sizes), field=f"{self.name}.weights")
        return weighted_average(params, w)


class IoMFedAvg(Strategy):
    """IoM-weighted FedAvg (MODEL.md section 7): ``w_n = IoM_nm / sum_k IoM_km``."""

    name = Aggregation.IOM.value

    def weights(self, iom: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        return iom


class FedAvg(Strategy):
    """FedAvg (McMahan et al., AISTATS 2017): ``w_n = D_nm / sum_k D_km``."""

    name = Aggregation.FEDAVG.value

    def weights(self, iom: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        return sizes


def make_strategy(kind: Aggregation | str) -> Strategy:
    """The strategy named ``kind`` (``"iom"`` or ``"fedavg"``)."""
    try:
        kind = Aggregation(kind)
    except ValueError:
        raise InputError("aggregation", f"unknown rule {kind!r} (choose: {', '.join(a.value for a in Aggregation)})") from None
    return IoMFedAvg() if kind is Aggregation.IOM else FedAvg()
