"""The FL model, defined once and shared by every training path.

:func:`make_net` builds a small LeNet-style CNN as a plain ``nn.Sequential``
of standard layers. The sequential reference path, the Flower adapter and the
vectorised trainer all use that one definition: the vectorised path does not
define another model, it *interprets* the same layer list with K clients'
parameters stacked (:func:`grouped_forward`):

- ``Conv2d`` -> one grouped convolution: the K clients' kernels are the K
  groups, the input is ``[B, K*C, H, W]`` (client k's batch in channels
  ``k*C .. k*C + C - 1``);
- ``Linear`` -> one batched matrix product (``torch.baddbmm``) over clients;
- ``ReLU`` / ``MaxPool2d`` act per channel, so they need no change.

So the K local models run in the same kernels as one model with K times the
channels, which is what makes a round of K clients about as fast as training
one model on the same number of samples (see ``metatrading bench fl``).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from models.errors import InputError

__all__ = ["make_net", "supports_grouped", "grouped_forward", "stack_params", "unstack_params"]


def make_net(shape: Sequence[int], num_classes: int) -> nn.Sequential:
    """A small CNN for ``shape = (C, H, W)`` images with ``num_classes`` labels.

    ``conv(C->16, 5) - maxpool 2 - relu - conv(16->32, 5) - maxpool 2 - relu -
    fc(->64) - relu - fc(64->num_classes)`` (LeNet-5 style; LeCun et al., 1998).
    1x28x28 (MNIST-style) gives a 512-wide flattened feature, 3x32x32 (GTSRB) 800.
    Pooling comes before the ReLU: ``relu(maxpool(z)) = maxpool(relu(z))`` (both are
    monotone), and the ReLU then touches a quarter of the values.

    Parameters
    ----------
    shape : (C, H, W)
        Image shape; H, W >= 16 so that both conv/pool stages fit.
    num_classes : int
        Number of labels (>= 2).
    """
    if len(tuple(shape)) != 3:
        raise InputError("shape", f"expected (C, H, W), got {tuple(shape)}")
    c, h, w = (int(s) for s in shape)
    if c < 1 or h < 16 or w < 16:
        raise InputError("shape", f"need C >= 1 and H, W >= 16, got {(c, h, w)}")
    if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
        raise InputError("num_classes", f"must be an integer >= 2, got {num_classes!r}")
    fh, fw = ((h - 4) // 2 - 4) // 2, ((w - 4) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(c, 16, 5),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Conv2d(16, 32, 5),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * fh * fw, 64),
        nn.ReLU(),
        nn.Linear(64, int(num_classes)),
    )


_GROUPABLE = (nn.Conv2d, nn.Linear, nn.ReLU, nn.MaxPool2d, nn.Flatten)


def supports_grouped(net: nn.Module) -> bool:
    """Whether :func:`grouped_forward` can run ``net`` (a Sequential of conv/linear/relu/pool/flatten
    layers, convs ungrouped with bias, at most one Flatten, before every Linear)."""
    if not isinstance(net, nn.Sequential):
        return False
    flat = False
    for layer in net:
        if not isinstance(layer, _GROUPABLE):
            return False
        if isinstance(layer, nn.Conv2d):
            if flat or layer.groups != 1 or layer.bias is None or layer.padding_mode != "zeros":
                return False
        if isinstance(layer, nn.Linear) and (not flat or layer.bias is None):
            return False
        if isinstance(layer, nn.Flatten):
            if flat:
                return False
            flat = True
    return flat


def grouped_forward(net: nn.Sequential, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """Forward K models at once: ``logits[k] = net(x[:, k]; params[k])``.

    Parameters
    ----------
    net : nn.Sequential
        The shared definition (its own parameters are not used); see :func:`supports_grouped`.
    params : dict name -> Tensor [K, ...]
        The K clients' parameters stacked along a new first axis (:func:`stack_params`).
    x : Tensor [B, K*C, H, W]
        Client k's batch of B images in channels ``k*C .. (k+1)*C - 1``.

    Returns
    -------
    Tensor [K, B, num_classes]
    """
    k = next(iter(params.values())).shape[0]
    h = x
    for i, layer in enumerate(net):
        if isinstance(layer, nn.Conv2d):
            w, b = params[f"{i}.weight"], params[f"{i}.bias"]
            h = nn.functional.conv2d(
                h, w.reshape(-1, *w.shape[2:]), b.reshape(-1),
                stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=k,
            )
        elif isinstance(layer, nn.Flatten):
            # [B, K*C', H', W'] -> [K, B, C'*H'*W'], the feature order of nn.Flatten per client
            h = h.reshape(h.shape[0], k, -1).transpose(0, 1)
        elif isinstance(layer, nn.Linear):
            w, b = params[f"{i}.weight"], params[f"{i}.bias"]
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        else:  # ReLU, MaxPool2d: per channel / per element
            h = layer(h)
    return h


def stack_params(params: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """List of K parameter dicts -> one dict of ``[K, ...]`` tensors."""
    return {name: torch.stack([p[name] for p in params]) for name in params[0]}


def unstack_params(stacked: Mapping[str, Tensor]) -> list[dict[str, Tensor]]:
    """Inverse of :func:`stack_params`."""
    k = next(iter(stacked.values())).shape[0]
    return [{name: t[i] for name, t in stacked.items()} for i in range(k)]
