"""``metatrading solve``: smoke test, outputs, failure and bad-input paths."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from benchmarks.cli import main
from models import preset
from models.equilibrium import follower_kkt_residual
from models.scenario import scenario_from_dict


def test_solve_tiny_writes_results(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["solve", "--scenario", "tiny", "--out", str(out), "--grid", "5"])
    assert rc == 0
    data = json.loads((out / "equilibrium.json").read_text())
    assert (out / "convergence.png").stat().st_size > 1000
    assert data["status"] == "converged"
    sc = scenario_from_dict(data["scenario"])
    assert sc.n_mu == 4 and sc.n_msp == 2
    np.testing.assert_array_equal(sc.D, preset("tiny").D)
    R, f = np.array(data["rewards"]), np.array(data["allocations"])
    assert R.shape == (2,) and f.shape == (4, 2) and np.array(data["iom"]).shape == (4, 2)
    assert len(data["msp_utility"]) == 2 and len(data["mu_utility"]) == 4
    assert set(data["certificate"]) >= {"max_deviation_gain", "kkt_residual", "follower_unique"}
    assert follower_kkt_residual(sc, R, f).max < 1e-3
    assert "MSP" in capsys.readouterr().out


def test_full_space_reference_agrees_with_implicit_default(tmp_path):
    # Prepare / Execute: the reference (Ipopt on the whole smoothed MPEC) and the default
    rc_ref = main(["solve", "--scenario", "default", "--out", str(tmp_path / "ref"), "--grid", "5",
                   "--leader-step", "full-space", "--mode", "smoothing"])
    rc_imp = main(["solve", "--scenario", "default", "--out", str(tmp_path / "imp"), "--grid", "5"])
    ref = json.loads((tmp_path / "ref" / "equilibrium.json").read_text())
    imp = json.loads((tmp_path / "imp" / "equilibrium.json").read_text())
    # Assert: both certified, same rewards
    assert rc_ref == 0 and rc_imp == 0
    assert ref["options"]["leader_step"] == "full-space"
    np.testing.assert_allclose(ref["rewards"], imp["rewards"], atol=1e-4)
    assert ref["certificate"]["max_deviation_gain"] < 1e-6


def test_failed_solve_exits_1_and_writes_no_results(tmp_path):
    out = tmp_path / "run"
    rc = main(["solve", "--scenario", "tiny", "--out", str(out), "--max-iter", "1", "--tol", "1e-12"])
    assert rc == 1
    assert not (out / "equilibrium.json").exists() and not (out / "convergence.png").exists()
    assert json.loads((out / "failure.json").read_text())["status"] == "max_iter"


def test_refuted_point_exits_1_with_the_certificate_and_best_deviations(tmp_path, capsys):
    # Prepare: the first reproducer, with the global moves switched off, stops at a point
    # where MSP 3 (at R = 0) gains by posting a larger reward
    scen = tmp_path / "trapped.json"
    scen.write_text(json.dumps({"n_mu": 8, "n_msp": 6, "seed": 3893, "mechanism": "unit_price", "L": 1,
                                "Rmax": [0.10890879970680446, 0.9970635097246182, 0.6214069178558589,
                                         61.77287568379547, 0.349701012863344, 2.5552933173249417]}))
    out = tmp_path / "run"
    # Execute
    rc = main(["solve", "--scenario", str(scen), "--out", str(out), "--grid", "21", "--global-moves", "0",
               "--starts", "0", "--quiet"])
    # Assert: exit 1, the verdict printed, only failure.json written, with the evidence
    assert rc == 1
    assert "not_certified" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [".metatrading-manifest.json", "failure.json"]
    fail = json.loads((out / "failure.json").read_text())
    assert fail["status"] == "not_certified" and "msp[3]" in fail["message"]
    cert = fail["certificate"]
    assert cert["holds"] is False and cert["deviation_gains"][3] > 1.0
    assert cert["best_deviations"][3] > 0.5 and any("msp[3]" in r for r in cert["reasons"])
    # ... and with the global moves (the default) the same scenario is certified
    out2 = tmp_path / "run2"
    assert main(["solve", "--scenario", str(scen), "--out", str(out2), "--grid", "21", "--quiet"]) == 0
    eq = json.loads((out2 / "equilibrium.json").read_text())
    assert eq["status"] == "converged" and eq["certificate"]["holds"] is True


def _write(path, data):
    if path.suffix == ".toml":
        lines = []
        for k, v in data.items():
            lines.append(f"{k} = {json.dumps(v) if not isinstance(v, float) or np.isfinite(v) else 'nan'}")
        path.write_text("\n".join(lines) + "\n")
    elif path.suffix == ".yaml":
        path.write_text(yaml.safe_dump(data))
    else:
        path.write_text(json.dumps(data))


BAD = [
    ({"preset": "tiny", "Rmax": -1.0}, "Rmax"),
    ({"preset": "tiny", "F": float("nan")}, "F"),
    ({"preset": "tiny", "D": [[1, 2, 3]]}, "D"),
    ({"preset": "tiny", "colour": 3}, "colour"),
    ({"preset": "tiny", "rho": -0.5}, "rho"),
]


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".json"])
@pytest.mark.parametrize("data,field", BAD)
def test_bad_scenario_file_exits_2_naming_field(tmp_path, capsys, suffix, data, field):
    path = tmp_path / f"bad{suffix}"
    _write(path, data)
    out = tmp_path / "run"
    rc = main(["solve", "--scenario", str(path), "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0]
    assert not out.exists()


@pytest.mark.parametrize("args,field", [(["--tol", "-1"], "--tol"), (["--tol", "nan"], "--tol"),
                                        (["--scenario", "nosuch"], "scenario"), (["--damping", "2"], "--damping"),
                                        (["--scenario", "tiny", "--seed", "-1"], "seed")])
def test_bad_options_exit_2(tmp_path, capsys, args, field):
    out = tmp_path / "run"
    rc = main(["solve", "--out", str(out), *args])
    assert rc == 2
    assert field in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("argv", [["solve", "--scenario", "tiny"], ["bench", "epec", "--sizes", "4x2"],
                                  ["bench", "derivatives", "--sizes", "5"], ["bench", "fl"],
                                  ["fl", "--rounds", "1"]])
def test_every_command_refuses_a_file_as_out_folder(tmp_path, capsys, argv):
    # Prepare: --out names an existing file, which must survive untouched
    out = tmp_path / "results.json"
    out.write_text("{}")
    # Execute
    rc = main([*argv, "--out", str(out)])
    # Assert
    assert rc == 2
    assert "--out: not a folder" in capsys.readouterr().err
    assert out.read_text() == "{}"


def test_cli_choices_match_the_epec_enums():
    # the CLI keeps plain strings (cheap to import); they must stay the enums' values, and
    # --mode reads the mode registry
    import epec
    from benchmarks.cli import build_parser
    from benchmarks.solve_cmd import LEADER_STEPS, METHODS

    assert set(METHODS) == {m.value for m in epec.Method}
    assert set(LEADER_STEPS) == {s.value for s in epec.LeaderStep}
    solve = build_parser()._subparsers._group_actions[0].choices["solve"]
    mode = next(a for a in solve._actions if a.dest == "mode")
    assert list(mode.choices) == list(epec.MODES) == ["scholtes", "smoothing", "penalty"]


def test_scenario_from_an_equilibrium_json_reruns_it(tmp_path, capsys):
    # Prepare: a solve of a modified scenario file
    scen = tmp_path / "mine.toml"
    scen.write_text('preset = "tiny"\nseed = 4\nrho = 0.4\n')
    assert main(["solve", "--scenario", str(scen), "--grid", "5", "--out", str(tmp_path / "a")]) == 0
    # Execute: rerun from the stored result
    rc = main(["solve", "--scenario", str(tmp_path / "a" / "equilibrium.json"), "--grid", "5",
               "--out", str(tmp_path / "b")])
    # Assert: the same scenario, hence the same equilibrium
    a = json.loads((tmp_path / "a" / "equilibrium.json").read_text())
    b = json.loads((tmp_path / "b" / "equilibrium.json").read_text())
    assert rc == 0
    assert a["scenario"] == b["scenario"] and a["scenario"]["name"] == "mine"
    np.testing.assert_allclose(b["rewards"], a["rewards"], rtol=1e-9)
