"""Server-side aggregation: a small strategy interface with the maths in pure functions.

As in Flower's strategies, :class:`Strategy` owns the aggregation step (a template
method: validate, ask the hook for raw weights, normalise, average); a variant
overrides the one hook :meth:`Strategy.weights`, which sees the whole round
(:class:`RoundUpdates`: the participants' IoM, data amounts and updated models, the global
model they started from and the round number).

- :class:`IoMFedAvg` (default, the model's FL section): ``w_n = IoM_nm / sum_k IoM_km``.
- :class:`FedAvg` (McMahan et al., 2017): ``w_n = D_nm / sum_k D_km``.

The rules are named in the registry :data:`AGGREGATIONS` (the CLI's ``--aggregation``);
add your own with :func:`register_aggregation`::

    import numpy as np
    from fl.aggregate import Strategy, register_aggregation

    class SqrtData(Strategy):  # w_n ~ sqrt(D_nm)
        def weights(self, r):
            return np.sqrt(r.sizes)

    register_aggregation("sqrt-data", SqrtData)
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from models.errors import InputError

from .nets import stack_params

__all__ = [
    "AGGREGATIONS",
    "RoundUpdates",
    "Strategy",
    "IoMFedAvg",
    "FedAvg",
    "normalise_weights",
    "weighted_average",
    "make_strategy",
    "register_aggregation",
]


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


@dataclass(frozen=True)
class RoundUpdates:
    """What an aggregation rule sees of one round (the argument of :meth:`Strategy.weights`).

    Attributes
    ----------
    iom : numpy.ndarray
        ``(K,)`` the participants' immersion ``IoM_nm`` (finite, >= 0).
    sizes : numpy.ndarray
        ``(K,)`` their data amounts ``D_nm`` (finite, >= 0).
    params : dict of str to torch.Tensor
        Their updated models, stacked: ``name -> [K, ...]``.
    global_params : dict of str to torch.Tensor or None
        The global model they started from, when the caller passes it.
    server_round : int or None
        The round number (1-based), when the caller passes it.
    """

    iom: np.ndarray
    sizes: np.ndarray
    params: Mapping[str, Tensor]
    global_params: Mapping[str, Tensor] | None = None
    server_round: int | None = None


class Strategy(abc.ABC):
    """Aggregation strategy: :meth:`aggregate` is the template, :meth:`weights` the hook."""

    name: str = "strategy"

    @abc.abstractmethod
    def weights(self, r: RoundUpdates) -> np.ndarray:
        """Raw (unnormalised, finite, >= 0) weight of each of the ``K`` participants of round ``r``."""

    def aggregate(
        self,
        params: Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]],
        iom: Sequence[float] | np.ndarray,
        sizes: Sequence[float] | np.ndarray,
        *,
        global_params: Mapping[str, Tensor] | None = None,
        server_round: int | None = None,
    ) -> dict[str, Tensor]:
        """The new global model from the participants' updated weights.

        Parameters
        ----------
        params : list of K dicts, or dict of stacked ``[K, ...]`` tensors
            The participants' updated models.
        iom : array_like
            ``(K,)`` the participants' immersion ``IoM_nm``.
        sizes : array_like
            ``(K,)`` their data amounts ``D_nm``.
        global_params : dict, optional
            The global model of the round's start (passed on to :meth:`weights`).
        server_round : int, optional
            The round number (passed on to :meth:`weights`).

        Returns
        -------
        dict of str to torch.Tensor
            ``sum_k w_k theta_k`` with ``w = weights(r) / sum(weights(r))``.
        """
        iom = np.asarray(iom, dtype=float).reshape(-1)
        sizes = np.asarray(sizes, dtype=float).reshape(-1)
        if sizes.shape != iom.shape:
            raise InputError("iom", f"{iom.size} IoM values for {sizes.size} participants")
        for field, v in (("iom", iom), ("sizes", sizes)):  # checked whatever the rule reads
            if not np.all(np.isfinite(v)) or np.any(v < 0):
                raise InputError(field, "must be finite and >= 0")
        stacked = dict(params) if isinstance(params, Mapping) else stack_params(params)
        r = RoundUpdates(iom, sizes, stacked, global_params, server_round)
        w = normalise_weights(self.weights(r), field=f"{self.name}.weights")
        return weighted_average(stacked, w)


class IoMFedAvg(Strategy):
    """IoM-weighted FedAvg (docs/model.md section 7): ``w_n = IoM_nm / sum_k IoM_km``."""

    name = "iom"

    def weights(self, r: RoundUpdates) -> np.ndarray:
        """``IoM_nm`` of each participant."""
        return r.iom


class FedAvg(Strategy):
    """FedAvg (McMahan et al., AISTATS 2017): ``w_n = D_nm / sum_k D_km``."""

    name = "fedavg"

    def weights(self, r: RoundUpdates) -> np.ndarray:
        """``D_nm`` of each participant."""
        return r.sizes


#: name -> (factory of a Strategy, one-line help); :func:`register_aggregation` adds to it
AGGREGATIONS: dict[str, tuple[Callable[[], Strategy], str]] = {}


def register_aggregation(name: str, factory: Callable[[], Strategy], *, help: str = "",
                         replace: bool = False) -> None:
    """Make ``factory()`` available as aggregation rule ``name`` (``--aggregation name``).

    Parameters
    ----------
    name : str
        Non-empty, without ``,`` or spaces.
    factory : callable
        Returns a :class:`Strategy` (a Strategy subclass itself will do).
    help : str
        One line for the CLI's help; default: the first line of the factory's docstring.
    replace : bool
        Allow replacing a registered name. Default False.

    Raises
    ------
    InputError
        A bad or already registered name, or a factory that is not callable.
    """
    if not isinstance(name, str) or not name or "," in name or any(c.isspace() for c in name):
        raise InputError("aggregation", f"a rule name must be a non-empty string without ',' or spaces, got {name!r}")
    if not callable(factory):
        raise InputError("aggregation", f"the factory of {name!r} must be callable, got {factory!r}")
    if name in AGGREGATIONS and AGGREGATIONS[name][0] is not factory and not replace:
        raise InputError("aggregation", f"rule {name!r} is already registered (pass replace=True)")
    AGGREGATIONS[name] = (factory, help or (factory.__doc__ or name).strip().splitlines()[0])


def make_strategy(kind: Strategy | str) -> Strategy:
    """The strategy registered as ``kind`` (a fresh instance), or ``kind`` itself if a Strategy.

    Parameters
    ----------
    kind : str or Strategy
        A name of :data:`AGGREGATIONS` (``"iom"``, ``"fedavg"`` or one registered).

    Returns
    -------
    Strategy

    Raises
    ------
    InputError
        An unknown name (``aggregation``; the message lists the registered ones).
    """
    if isinstance(kind, Strategy):
        return kind
    name = getattr(kind, "value", kind)
    if not isinstance(name, str) or name not in AGGREGATIONS:
        raise InputError("aggregation", f"unknown rule {kind!r} (choose: {', '.join(AGGREGATIONS)})")
    strategy = AGGREGATIONS[name][0]()
    if not isinstance(strategy, Strategy):
        raise InputError("aggregation", f"the factory of {name!r} returned {type(strategy).__name__}, not a Strategy")
    strategy.name = name
    return strategy


register_aggregation("iom", IoMFedAvg, help="IoM-weighted FedAvg, w_n ~ IoM_nm")
register_aggregation("fedavg", FedAvg, help="FedAvg, w_n ~ D_nm (data amount)")
