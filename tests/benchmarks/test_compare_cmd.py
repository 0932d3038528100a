"""``metatrading compare``: a tiny run and bad input refused before any work (benchmarks/compare_cmd.py)."""
from __future__ import annotations

import json

import pytest

from benchmarks.cli import main


def test_tiny_compare_command(tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(["compare", "--scenario", "tiny", "--schemes", "fixed_cap,hill_climb", "--seeds", "1", "--rounds", "2",
               "--epochs", "1", "--reference", "hill_climb", "--level", "0.25", "--deadline", "inf",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    data = json.loads((out / "compare.json").read_text())
    assert list(data["schemes"]) == ["fixed_cap", "hill_climb"] and data["settings"]["rounds"] == 2
    assert data["headline"]["reference"] == "hill_climb" and data["headline"]["available"]
    assert data["schemes"]["fixed_cap"]["reward"]["mean"] == 0.25 * 30.0  # tiny's Rmax is 30
    assert data["settings"]["deadline"] == "inf"
    assert "Headline" in capsys.readouterr().out
    for name in ("report.md", "frontier.png"):
        assert (out / name).stat().st_size > 0


@pytest.mark.parametrize("argv, named", [
    (["--schemes", "epec,nope"], "--schemes"),
    (["--dataset", "cifar"], "--dataset"),
    (["--seeds", "0"], "--seeds"),
    (["--rounds", "0"], "--rounds"),
    (["--target", "1.5"], "--target"),
    (["--epochs", "0"], "--epochs"),
    (["--reference", "oracle"], "--reference"),
    (["--schemes", "fixed"], "--reference"),  # budget-matched without its reference
    (["--level", "0"], "--level"),
    (["--level", "1.5"], "--level"),
    (["--deadline", "soon"], "--deadline"),
    (["--deadline", "-1"], "--deadline"),
    (["--scenario", "nowhere.toml"], "scenario"),
    (["--scheme-module", "no_such_module_here"], "--scheme-module"),
    (["--drl-policy", "/nonexistent/policy"], "--drl-policy"),
    (["--dataset", "gtsrb", "--data-root", "EMPTY"], "gtsrb/GTSRB/Training"),
    (["--dataset", "mnist"], "--data-root"),
])
def test_bad_input_refused_before_any_work(tmp_path, capsys, argv, named):
    out = tmp_path / "out"
    argv = [str(tmp_path) if a == "EMPTY" else a for a in argv]
    rc = main(["compare", "--schemes", "fixed_cap", "--out", str(out), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and named in err and err.count("\n") == 1
    assert not out.exists()


def test_drl_refused_in_a_build_without_learned_pricing(tmp_path, capsys, monkeypatch):
    import drl.compare.config as config_mod

    monkeypatch.setattr(config_mod, "drl_available", lambda: False)
    rc = main(["compare", "--schemes", "all", "--out", str(tmp_path / "o"), "--no-progress"])
    assert rc == 2 and "drl.load_policy" in capsys.readouterr().err


def test_compare_on_a_generated_gtsrb_folder_with_some_classes(tmp_path):
    # Prepare: torchvision's GTSRB layout with 12 of the 43 class folders (issue 9, point 4)
    from tests.fl.conftest import write_gtsrb

    write_gtsrb(tmp_path / "data", per_class=20, n_test=24, classes=list(range(0, 43, 4)))
    out = tmp_path / "cmp"
    # Execute
    rc = main(["compare", "--scenario", "tiny", "--dataset", "gtsrb", "--data-root", str(tmp_path / "data"),
               "--schemes", "fixed_cap,hill_climb", "--seeds", "1", "--rounds", "2", "--epochs", "1",
               "--reference", "hill_climb", "--out", str(out), "--no-progress"])
    # Assert
    data = json.loads((out / "compare.json").read_text())
    assert rc == 0 and data["settings"]["dataset"] == "gtsrb" and data["settings"]["target"] == 0.8
    assert data["headline"]["paper_dataset"] == "GTSRB"
    rec = json.loads((out / "runs" / "fixed_cap__seed0.json").read_text())
    assert rec["rounds"][0]["data_scale"][0] < 1.0  # 240 images for the MUs' D: shares shrunk alike


def test_unusable_drl_policy_refused_before_any_round(tmp_path, capsys):
    empty = tmp_path / "policy"
    empty.mkdir()
    out = tmp_path / "out"
    rc = main(["compare", "--scenario", "tiny", "--schemes", "fixed_cap,drl", "--drl-policy", str(empty),
               "--out", str(out), "--no-progress"])
    assert rc == 2 and "policy" in capsys.readouterr().err and not out.exists()


@pytest.mark.slow
def test_quick_comparison_of_all_schemes(tmp_path):
    # every registered scheme of docs/model.md section 8 through --quick (2 seeds x 3 rounds of FL on
    # mnist5k); drl trained here for 2 PPO updates only, which is enough to exercise its path
    out = tmp_path / "quick"
    rc = main(["compare", "--quick", "--schemes", "all", "--drl-updates", "2", "--out", str(out), "--no-progress"])
    assert rc == 0  # 1 would mean an uncertified round
    data = json.loads((out / "compare.json").read_text())
    names = ["epec", "drl", "fixed", "random", "fixed_cap", "random_cap", "static", "hill_climb", "single_leader",
             "aoi_only", "accuracy_only", "data_only"]
    assert list(data["schemes"]) == names
    assert (data["settings"]["seeds"], data["settings"]["rounds"], data["settings"]["local_epochs"]) == (2, 3, 1)
    assert all(data["schemes"][n]["uncertified_rounds"] == 0 for n in names)
    assert all(len(data["schemes"][n]["per_seed"]) == 2 for n in names)
    h = data["headline"]
    assert h["available"] and h["settings"]["budget_matched"]["averaged_over"] == ["fixed", "random", "static",
                                                                                   "hill_climb"]
    assert h["settings"]["cap_relative"]["averaged_over"] == ["fixed_cap", "random_cap", "static", "hill_climb"]
    avg = h["settings"]["budget_matched"]["iom_improvement"]["average"]
    assert avg["n"] == 2 and avg["ci95"] is not None and avg["ci95"][0] <= avg["mean"] <= avg["ci95"][1]
    assert h["paper"]["iom_improvement"] == 38.3
    for name in ("iom.png", "accuracy.png", "time_to_target.png", "frontier.png", "report.md"):
        assert (out / name).stat().st_size > 0
