"""`metatrading bench fl`: smoke run on a tiny budget."""
import json

import pytest

from benchmarks.bench_fl import client_sizes
from benchmarks.cli import main


def test_bench_fl_smoke(tmp_path):
    # Execute
    rc = main(["bench", "fl", "--out", str(tmp_path), "--clients", "2", "3", "--samples", "60", "--epochs", "1",
               "--reps", "1", "--flower-rounds", "0", "--deploy-rounds", "0", "--accuracy-rounds", "1", "--accuracy-clients", "2",
               "--threads", "1"])
    rep = json.loads((tmp_path / "fl_throughput.json").read_text())
    # Assert
    assert rc == 0
    assert [r["clients"] for r in rep["cpu"]] == [2, 3]
    for r in rep["cpu"]:
        assert r["samples"] == 60
        assert r["vectorised_ratio"] > 0 and r["sequential_ratio"] > 0
    assert "skipped" in rep["flower"] and "skipped" in rep["gpu"] and "skipped" in rep["deployment"]
    assert rep["accuracy"]["rounds"] == 1 and 0 <= rep["accuracy"]["final_accuracy"] <= 1
    assert (tmp_path / "fl_throughput.png").stat().st_size > 1000  # issue 11: bench fl has a plot
    assert (tmp_path / "fl_accuracy.png").stat().st_size > 1000


@pytest.mark.parametrize("total,k", [(100, 10), (3000, 50), (7, 7)])
def test_client_sizes_unequal_and_exact(total, k):
    sizes = client_sizes(total, k, seed=0)
    assert sum(sizes) == total and len(sizes) == k and min(sizes) >= 1


def test_bench_fl_bad_input(tmp_path):
    assert main(["bench", "fl", "--out", str(tmp_path), "--clients", "0"]) == 2
    assert not (tmp_path / "fl_throughput.json").exists()
