"""fl/partition.py: Dirichlet non-IID partitions on the real mnist5k labels."""
from __future__ import annotations

import numpy as np
import pytest

from fl.data import load_dataset
from fl.partition import data_value, dirichlet_partition
from models.errors import InputError


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return load_dataset("mnist5k").train_y.numpy()


SIZE_CASES = [
    [100, 200, 300, 150, 50],
    [0, 1, 2, 3],
    [4000],                       # every sample: the pools run dry and shortfalls move
    [1500, 1500, 1000],
    list(range(10, 280, 10)),  # 3,780 of 4,000
]


@pytest.mark.parametrize("sizes", SIZE_CASES)
@pytest.mark.parametrize("alpha", [0.05, 0.5, 100.0])
def test_sizes_exact_and_disjoint(labels, sizes, alpha):
    # Execute
    idx = dirichlet_partition(labels, sizes, alpha, seed=7)
    # Assert
    assert [len(i) for i in idx] == sizes
    flat = np.concatenate(idx)
    assert len(np.unique(flat)) == len(flat)
    assert flat.min(initial=0) >= 0 and flat.max(initial=0) < len(labels)
    assert all(i.dtype == np.int64 for i in idx)


def test_reproducible_from_seed(labels):
    a = dirichlet_partition(labels, [50, 80, 120], 0.3, seed=11)
    b = dirichlet_partition(labels, [50, 80, 120], 0.3, seed=11)
    c = dirichlet_partition(labels, [50, 80, 120], 0.3, seed=12)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_smaller_alpha_lower_entropy(labels):
    # Prepare
    sizes = [120] * 20
    # Execute
    mean_v = [data_value(labels, dirichlet_partition(labels, sizes, a, seed=3), 10).mean()
              for a in (0.05, 0.5, 5.0, 500.0)]
    # Assert
    assert np.all(np.diff(mean_v) > 0), mean_v
    assert mean_v[0] < 0.5 and mean_v[-1] > 0.95


@pytest.mark.parametrize("alpha", [0.01, 1.0, 1e4])
def test_entropy_in_unit_interval(labels, alpha):
    idx = dirichlet_partition(labels, [0, 1, 30, 400], alpha, seed=5)
    v = data_value(labels, idx, 10)
    assert v.shape == (4,)
    assert np.all((v >= 0) & (v <= 1 + 1e-12))
    assert v[0] == 0.0 and v[1] == 0.0  # empty and single-sample clients carry no label mix


def test_data_value_matches_hand_computed_entropy():
    labels = np.array([0, 0, 1, 1, 2, 3, 3, 3])
    v = data_value(labels, [np.array([0, 2]), np.arange(8), np.array([0, 1])], 4)
    counts = np.array([2, 2, 1, 3]) / 8
    expected = -(counts * np.log(counts)).sum() / np.log(4)
    np.testing.assert_allclose(v, [np.log(2) / np.log(4), expected, 0.0])


@pytest.mark.parametrize("sizes, alpha, seed, field", [
    ([3000, 1001], 1.0, 0, "sizes"),
    ([10, -1], 1.0, 0, "sizes"),
    ([10, 2.5], 1.0, 0, "sizes"),
    ([10], 0.0, 0, "alpha"),
    ([10], -1.0, 0, "alpha"),
    ([10], float("nan"), 0, "alpha"),
    ([10], 1.0, 1.5, "seed"),
])
def test_bad_input(labels, sizes, alpha, seed, field):
    with pytest.raises(InputError) as err:
        dirichlet_partition(labels, sizes, alpha, seed)
    assert err.value.field == field


def test_bad_labels():
    with pytest.raises(InputError, match="labels"):
        dirichlet_partition(np.array([0.5, 1.0]), [1], 1.0, 0)
    with pytest.raises(InputError, match="labels"):
        data_value(np.array([0, 12]), [np.array([1])], 10)
