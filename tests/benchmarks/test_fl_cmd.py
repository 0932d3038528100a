"""`metatrading fl`: smoke run on a tiny budget, resume, and bad input (exit 2, no fl.json)."""
import json

import numpy as np
import pytest

from benchmarks.cli import main
from models.scenario import generate


def _equilibrium(tmp_path, f=None, d=20):
    sc = generate(4, 2, seed=2).replace(D=np.full((4, 2), float(d)), L=1)
    f = np.tile(sc.F[:, None] / 2, (1, 2)) if f is None else f
    path = tmp_path / "equilibrium.json"
    path.write_text(json.dumps({"allocations": np.asarray(f).tolist(), "iom": np.zeros((4, 2)).tolist(),
                                "rewards": [1.0, 1.0], "scenario": sc.to_dict()}))
    return path


BASE = ["--rounds", "2", "--batch-size", "8", "--threads", "1", "--no-progress"]


def test_fl_smoke_and_resume(tmp_path):
    # Prepare
    alloc = _equilibrium(tmp_path)
    out = tmp_path / "run"
    # Execute
    rc = main(["fl", "--allocation", str(alloc), "--out", str(out), *BASE])
    report = json.loads((out / "fl.json").read_text())
    rc2 = main(["fl", "--allocation", str(alloc), "--out", str(out), *BASE, "--rounds", "3", "--resume"])
    report2 = json.loads((out / "fl.json").read_text())
    # Assert
    assert rc == 0 and rc2 == 0
    assert len(report["accuracy"]) == len(report["sim_time"]) == len(report["participants"]) == 2
    assert report["participants"] == [4, 4]
    assert report["sim_time"][1] == pytest.approx(2 * report["sim_time"][0])
    assert report2["accuracy"][:2] == report["accuracy"] and len(report2["accuracy"]) == 3
    assert (out / "fl.png").stat().st_size > 0
    assert (out / "fl_checkpoint.pt").exists()


def test_fl_default_allocation(tmp_path):
    rc = main(["fl", "--scenario", "tiny", "--epochs", "1", "--out", str(tmp_path), *BASE, "--rounds", "1",
               "--aggregation", "fedavg"])
    report = json.loads((tmp_path / "fl.json").read_text())
    assert rc == 0
    assert report["participants"] == [4] and report["aggregation"] == "fedavg"
    assert "follower equilibrium" in report["allocation_source"]


def _zero_column(f):
    f[:, 0] = 0.0
    return f


@pytest.mark.parametrize("case", ["dataset", "root", "zero", "negative", "nan"])
def test_fl_bad_input(tmp_path, capsys, case):
    # Prepare: a feasible allocation (0.2 GHz per MU, every F_n >= 0.3) with one defect
    f = np.full((4, 2), 0.1)
    args = ["fl", "--out", str(tmp_path / "out"), *BASE]
    if case == "dataset":
        args += ["--dataset", "cifar-1000", "--allocation", str(_equilibrium(tmp_path))]
    elif case == "root":
        args += ["--dataset", "fashion-mnist", "--data-root", str(tmp_path / "missing"),
                 "--allocation", str(_equilibrium(tmp_path))]
    else:
        if case == "zero":
            f = _zero_column(f)
        else:
            f[1, 0] = -0.5 if case == "negative" else float("nan")
        args += ["--allocation", str(_equilibrium(tmp_path, f))]
    # Execute
    rc = main(args)
    # Assert
    err = capsys.readouterr().err
    assert rc == 2
    assert not (tmp_path / "out" / "fl.json").exists()
    expected = {"zero": "allocations[:, 0]", "negative": "allocations[1][0]", "nan": "allocations[1][0]"}
    if case in expected:
        assert expected[case] in err


def test_fl_resume_says_where_it_continues_and_names_a_changed_setting(tmp_path, capsys):
    # Prepare: defect 3, a two-round run
    alloc = _equilibrium(tmp_path)
    out = tmp_path / "run"
    assert main(["fl", "--allocation", str(alloc), "--out", str(out), *BASE]) == 0
    capsys.readouterr()
    # Execute
    fewer = main(["fl", "--allocation", str(alloc), "--out", str(out), *BASE, "--rounds", "1", "--resume"])
    fewer_err = capsys.readouterr().err
    other_seed = main(["fl", "--allocation", str(alloc), "--out", str(out), *BASE, "--seed", "5", "--resume"])
    seed_err = capsys.readouterr().err
    more = main(["fl", "--allocation", str(alloc), "--out", str(out), *BASE, "--rounds", "3", "--resume"])
    printed = capsys.readouterr().out
    # Assert
    assert fewer == 2 and fewer_err.startswith("metatrading: error: --rounds:") and "holds 2 rounds" in fewer_err
    assert other_seed == 2 and seed_err.startswith("metatrading: error: --seed:") and "seed = 0" in seed_err
    assert more == 0 and "2 of 3 rounds done, continuing with round 3" in printed
    assert json.loads((out / "fl.json").read_text())["resumed_from"] == 2


def test_fl_scenario_seed_is_apart_from_the_training_seed(tmp_path):
    # --seed seeds everything, --scenario-seed the scenario alone
    common = ["fl", "--scenario", "tiny", "--epochs", "1", *BASE, "--rounds", "1"]
    assert main([*common, "--seed", "1", "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--seed", "1", "--scenario-seed", "0", "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "fl.json").read_text())
    b = json.loads((tmp_path / "b" / "fl.json").read_text())
    assert (a["seed"], a["scenario_seed"]) == (1, 1) and (b["seed"], b["scenario_seed"]) == (1, 0)
    assert a["sizes"] != b["sizes"] or a["round_time"] != b["round_time"]


def test_fl_scenario_is_not_silently_ignored_and_allocation_errors_name_the_file(tmp_path, capsys):
    # defect 9: --scenario was ignored next to --allocation; an error in the allocation's own
    # scenario did not say where it came from
    alloc = _equilibrium(tmp_path)
    rc = main(["fl", "--allocation", str(alloc), "--scenario", "tiny", "--out", str(tmp_path / "a"), *BASE])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("metatrading: error: --scenario: cannot be combined with --allocation")
    data = json.loads(alloc.read_text())
    data["scenario"]["zeta"] = [[1.5, 0.5]] * 4
    alloc.write_text(json.dumps(data))
    rc = main(["fl", "--allocation", str(alloc), "--out", str(tmp_path / "b"), *BASE])
    err = capsys.readouterr().err
    assert rc == 2 and f"--allocation {alloc}: scenario.zeta[0, 0]" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_fl_deadline_records_missed_updates(tmp_path, capsys):
    # Prepare: MU 1 gives MSP 0 almost nothing: a straggler
    f = np.tile(generate(4, 2, seed=2).F[:, None] / 2, (1, 2))
    f[1, 0] = 1e-3
    alloc = _equilibrium(tmp_path, f=f)
    # Execute
    rc_auto = main(["fl", "--allocation", str(alloc), "--out", str(tmp_path / "a"), *BASE, "--deadline", "auto"])
    auto = json.loads((tmp_path / "a" / "fl.json").read_text())
    rc_inf = main(["fl", "--allocation", str(alloc), "--out", str(tmp_path / "b"), *BASE])
    inf = json.loads((tmp_path / "b" / "fl.json").read_text())
    rc_bad = main(["fl", "--allocation", str(alloc), "--out", str(tmp_path / "c"), *BASE, "--deadline", "never"])
    # Assert
    assert rc_auto == rc_inf == 0 and rc_bad == 2 and "--deadline" in capsys.readouterr().err
    assert auto["missed"] == [1, 1] and auto["missed_updates"] == 2 and auto["late_ids"] == [1]
    assert auto["deadline"] == pytest.approx(2 * np.median(auto["participant_times"]))
    assert auto["round_time"] == pytest.approx(auto["deadline"])
    assert inf["missed"] == [0, 0] and inf["deadline"] == "inf"
    assert inf["round_time"] == pytest.approx(max(inf["participant_times"]))
    assert inf["round_time"] > 10 * auto["round_time"]
