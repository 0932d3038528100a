"""Non-IID partitions of a labelled data set among FL clients, and their data value.

``dirichlet_partition`` gives client i exactly ``sizes[i]`` distinct samples whose label mix
follows its own draw ``p_i ~ Dirichlet(alpha 1_K)`` (Hsu, Qi and Brown 2019, "Measuring the
effects of non-identical data distribution for federated visual classification",
arXiv 1909.06335). Small ``alpha`` -> few labels per client; large ``alpha`` -> near-IID.
``data_value`` is the potential value ``v_nm`` of docs/model.md section 1: the normalised entropy of
each client's label histogram (``models.label_entropy``).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.errors import InputError
from models.scenario import label_entropy


def dirichlet_partition(labels: np.ndarray, sizes: Sequence[int], alpha: float,
                        seed: int) -> list[np.ndarray]:
    """Split sample indices among clients with Dirichlet(alpha) label mixes and exact sizes.

    For client i (in order): draw ``p_i ~ Dir(alpha 1_K)``; its target class counts are
    ``sizes[i] p_i`` rounded by largest remainder; a class that has run out of unused samples
    passes its shortfall to the classes still available, in proportion to ``p_i`` (or to the
    remaining counts if ``p_i`` puts no mass there). Samples inside a class are taken in an
    order shuffled once, so no index is used twice. Reference: Hsu et al. 2019 (arXiv 1909.06335).

    Parameters
    ----------
    labels : np.ndarray
        Non-negative integer labels, shape ``[n]``.
    sizes : sequence of int
        Samples per client, each ``>= 0``, ``sum(sizes) <= n``.
    alpha : float
        Dirichlet concentration, ``> 0``.
    seed : int
        Seed of ``numpy.random.default_rng``; the partition is a pure function of the inputs.

    Returns
    -------
    list of np.ndarray
        ``idx[i]``: sorted int64 indices into ``labels``, ``len(idx[i]) == sizes[i]``,
        pairwise disjoint.

    Raises
    ------
    InputError
        Bad labels, sizes, alpha or seed.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError("labels", f"must be a 1-D integer array, got {labels.dtype} "
                                   f"of shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise InputError("labels", "must be non-negative")
    sizes_arr = np.asarray(sizes)
    if sizes_arr.ndim != 1 or (sizes_arr.size and not np.issubdtype(sizes_arr.dtype, np.integer)):
        raise InputError("sizes", f"must be a 1-D sequence of integers, got {sizes!r}")
    sizes_arr = sizes_arr.astype(np.int64)
    if (sizes_arr < 0).any():
        raise InputError("sizes", f"must be >= 0, got {int(sizes_arr.min())} at client "
                                  f"{int(np.argmin(sizes_arr))}")
    if sizes_arr.sum() > labels.size:
        raise InputError("sizes", f"ask for {int(sizes_arr.sum())} samples in total but only "
                                  f"{labels.size} exist")
    if isinstance(alpha, bool) or not np.isfinite(alpha) or not alpha > 0:
        raise InputError("alpha", f"must be a finite number > 0, got {alpha!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError("seed", f"must be an integer, got {seed!r}")

    if labels.size == 0:
        return [np.empty(0, dtype=np.int64) for _ in sizes_arr]
    rng = np.random.default_rng(int(seed))
    classes = np.unique(labels)
    pools = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    used = np.zeros(len(classes), dtype=np.int64)
    left = np.array([len(p) for p in pools], dtype=np.int64)
    out: list[np.ndarray] = []
    for size in sizes_arr:
        p = rng.dirichlet(np.full(len(classes), float(alpha)))
        take = _class_counts(int(size), p, left)
        out.append(np.sort(np.concatenate(
            [pools[k][used[k]:used[k] + take[k]] for k in range(len(classes))])).astype(np.int64))
        used += take
        left -= take
    return out


def _class_counts(size: int, p: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``size``, close to ``size p``, never above ``left``."""
    take = np.zeros_like(left)
    need = size
    weights = p.copy()
    while need > 0:
        open_ = left - take > 0
        w = np.where(open_, weights, 0.0)
        if w.sum() <= 0:  # p has no mass on the classes still available
            w = np.where(open_, (left - take).astype(float), 0.0)
        quota = need * w / w.sum()
        add = np.floor(quota).astype(np.int64)
        short = need - int(add.sum())
        if short > 0:
            order = np.argsort(-(quota - add), kind="stable")
            order = order[w[order] > 0][:short]
            add[order] += 1
        add = np.minimum(add, left - take)
        take += add
        need -= int(add.sum())
    return take


def data_value(labels: np.ndarray, idx: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Normalised entropy of each client's label histogram: ``v_i = H(hist_i) / ln K``.

    Parameters
    ----------
    labels : np.ndarray
        Integer labels ``[n]`` in ``0 .. num_classes - 1``.
    idx : sequence of np.ndarray
        Indices held by each client (as from ``dirichlet_partition``).
    num_classes : int
        ``K >= 2``.

    Returns
    -------
    np.ndarray
        ``[len(idx)]`` values in [0, 1]; 0 for a client with no sample or a single label
        (docs/model.md section 1, ``models.label_entropy``).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 2:
        raise InputError("num_classes", f"must be an integer >= 2, got {num_classes!r}")
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise InputError("labels", f"must lie in 0..{num_classes - 1}")
    counts = np.stack([np.bincount(labels[np.asarray(i, dtype=np.int64)],
                                   minlength=num_classes) for i in idx]) \
        if len(idx) else np.zeros((0, num_classes))
    return label_entropy(counts)
