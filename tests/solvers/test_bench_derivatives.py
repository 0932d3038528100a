"""Smoke test of benchmarks/bench_derivatives.py on a tiny budget."""
from __future__ import annotations

import json

import pytest

from benchmarks import bench_derivatives


def test_bench_derivatives_smoke(tmp_path, capsys):
    # Prepare
    out = tmp_path / "bench_derivatives.json"
    # Execute
    rc = bench_derivatives.main(["--sizes", "5", "--repeats", "2", "--resolve-sizes", "5",
                                 "--resolves", "2", "--out", str(tmp_path)])
    # Assert
    data = json.loads(out.read_text())
    assert rc == 0
    assert {r["family"] for r in data["derivatives"]} == set(bench_derivatives.FAMILIES)
    assert all(r["max_abs_diff"] < 1e-9 and r["structure_mismatch"] == 0 for r in data["derivatives"])
    assert data["resolve_overhead"][0]["compile_count"] == 1
    assert "build CasADi" in capsys.readouterr().out


@pytest.mark.parametrize("args,field", [(["--sizes", "2"], "--sizes"), (["--resolve-sizes", "2"], "--resolve-sizes"),
                                        (["--repeats", "0"], "--repeats"), (["--resolves", "0"], "--resolves")])
def test_bench_derivatives_bad_input_names_the_flag(tmp_path, capsys, args, field):
    rc = bench_derivatives.main([*args, "--out", str(tmp_path / "x")])
    assert rc == 2
    assert f"{field}:" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
