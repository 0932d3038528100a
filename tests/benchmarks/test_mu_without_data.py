"""Issue 16: a valid scenario with an MU that holds no data for any MSP (a zero row of ``D``)
runs in every command; that MU sits out (``f = 0``) and the game is that of the others.
(``fl`` ran such a scenario before this fix.)"""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.cli import main
from models.scenario import preset


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("mu0")
    D = preset("tiny").D.copy()
    D[3] = 0.0
    (d / "mu3_no_data.toml").write_text(f'preset = "tiny"\nD = {D.tolist()}\n')
    (d / "no_data.toml").write_text(f'preset = "tiny"\nD = {np.zeros_like(D).tolist()}\n')
    return d


def test_solve_lets_the_mu_sit_out(scenario_file, tmp_path, capsys):
    import epec

    # Execute
    rc = main(["solve", "--scenario", str(scenario_file / "mu3_no_data.toml"), "--out", str(tmp_path / "o"),
               "--quiet"])
    # Assert: certified, MU 3 allocates nothing, the rewards those of the game without MU 3
    assert rc == 0, capsys.readouterr().err
    eq = json.loads((tmp_path / "o" / "equilibrium.json").read_text())
    f = np.array(eq["allocations"])
    assert np.all(f[3] == 0.0) and np.all(f[:3].sum(1) > 0)
    others = epec.solve_scenario(preset("tiny").subset(mus=[0, 1, 2]))
    assert others.ok
    np.testing.assert_allclose(eq["rewards"], others.R, rtol=1e-5)


def test_solve_with_no_data_at_all(scenario_file, tmp_path, capsys):
    rc = main(["solve", "--scenario", str(scenario_file / "no_data.toml"), "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    eq = json.loads((tmp_path / "o" / "equilibrium.json").read_text())
    assert np.all(np.array(eq["allocations"]) == 0.0)


def test_validate_rewards(scenario_file, tmp_path, capsys):
    rc = main(["validate", "--rewards", "7.3,4.9", "--scenario", str(scenario_file / "mu3_no_data.toml"),
               "--out", str(tmp_path / "v"), "--grid", "11", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    v = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert np.all(np.isfinite(v["epec_rewards"])) and abs(v["reward_gap_pct"][0]) < 5


def test_train_pricing_then_validate_the_policy(scenario_file, tmp_path, capsys):
    sc = str(scenario_file / "mu3_no_data.toml")
    rc = main(["train-pricing", "--scenario", sc, "--updates", "1", "--markets", "8", "--out", str(tmp_path / "t"),
               "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "t" / "training.json").read_text())["epec_rewards"] is not None
    rc = main(["validate", "--policy", str(tmp_path / "t"), "--scenario", sc, "--out", str(tmp_path / "v"),
               "--grid", "5", "--warmup", "2", "--quiet"])
    assert rc == 0, capsys.readouterr().err


def test_compare(scenario_file, tmp_path, capsys):
    rc = main(["compare", "--scenario", str(scenario_file / "mu3_no_data.toml"), "--schemes", "epec,single_leader",
               "--seeds", "1", "--rounds", "1", "--threads", "1", "--out", str(tmp_path / "c"), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "c" / "compare.json").is_file()
