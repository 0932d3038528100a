"""models.cache: exact digests (a changed input gives another key) and the bounded memo table."""
import numpy as np
import pytest
import torch

from models.cache import BoundedCache, digest
from models.scenario import preset


def test_digest_is_exact_and_stable():
    a = np.array([1.0, 2.0, 3.0])
    assert digest(a, 3, "x") == digest(a.copy(), 3, "x")
    # one ulp, the dtype, the shape, the order of the parts and int-vs-float all change the key
    assert digest(np.nextafter(a, 4.0)) != digest(a)
    assert digest(a.astype(np.float32)) != digest(a)
    assert digest(a.reshape(3, 1)) != digest(a)
    assert digest(1, 2) != digest(2, 1)
    assert digest(1) != digest(1.0)
    assert digest(0.1 + 0.2) != digest(0.3)
    t = torch.arange(6, dtype=torch.float32)
    assert digest(t) == digest(t.clone()) and digest(t) != digest(t.to(torch.float64))
    u = t.clone()
    u[5] = torch.nextafter(u[5], torch.tensor(np.inf))
    assert digest(u) != digest(t)
    assert digest({"a": 1, "b": 2}) == digest({"b": 2, "a": 1}) != digest({"a": 2, "b": 1})
    # lists of floats (the rows of a scenario's to_dict) take a fast path that stays exact
    assert digest([0.1, 0.2]) == digest([0.1, 0.2]) != digest([0.1, float(np.nextafter(0.2, 1.0))])
    assert digest([1.0, 2.0]) != digest([1, 2]) and digest([1.0, 2.0]) != digest([1.0, 2])
    assert digest([[1.0], [2.0]]) != digest([[1.0, 2.0]])


def test_digest_of_a_scenario_covers_every_parameter():
    sc = preset("tiny")
    assert digest(sc) == digest(preset("tiny"))
    D = sc.D.copy()
    D[0, 0] += 1
    assert digest(sc.replace(D=D)) != digest(sc)
    assert digest(sc.replace(eps0=sc.eps0 * (1 + 1e-15))) != digest(sc)
    from models.scenario import Metric

    assert digest(sc.replace(metric=Metric.AOI)) != digest(sc)


def test_digest_refuses_what_it_cannot_fingerprint_exactly():
    with pytest.raises(TypeError, match="cannot fingerprint"):
        digest(object())


def test_bounded_cache_counts_and_evicts_least_recently_used():
    c = BoundedCache(max_entries=2, max_bytes=100)
    calls = []
    val = lambda v: (lambda: (calls.append(v), v)[1])
    assert c.get_or_compute("a", val(1)) == 1
    assert c.get_or_compute("b", val(2)) == 2
    assert c.get_or_compute("a", val(99)) == 1  # hit: not recomputed; "a" is now the most recent
    c.get_or_compute("c", val(3))  # evicts "b"
    assert "b" not in c and "a" in c and "c" in c
    assert calls == [1, 2, 3] and c.stats()["hits"] == 1 and c.stats()["misses"] == 3
    # the byte bound: an entry larger than it is not stored; the total stays within it
    c.get_or_compute("big", val(4), size=lambda v: 101)
    assert "big" not in c
    c.get_or_compute("d", val(5), size=lambda v: 60)
    c.get_or_compute("e", val(6), size=lambda v: 60)
    assert c.bytes <= 100 and "d" not in c and "e" in c


def test_disabled_cache_always_computes():
    c = BoundedCache(enabled=False)
    calls = []
    for _ in range(3):
        c.get_or_compute("k", lambda: calls.append(1))
    assert len(calls) == 3 and len(c) == 0
