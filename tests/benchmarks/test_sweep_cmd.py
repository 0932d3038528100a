"""``metatrading sweep`` (benchmarks/sweep_cmd.py): a smoke run on a tiny budget, the checkpoint
that ``--resume`` continues after an interruption, the ``--cold`` baseline, the 2-D heat maps,
and bad flags refused with one line naming the flag (exit 2, nothing written)."""
from __future__ import annotations

import json

import pytest

from benchmarks.cli import main
from benchmarks.sweep_cmd import parse_values
from models.errors import InputError

FLAGS = ["sweep", "--scenario", "tiny", "--param", "rho", "--values", "0.4:0.5:3", "--grid", "11"]
TIMING = {"seconds", "solve_seconds", "sensitivity_seconds", "timings"}


def _strip(points):
    return [{k: v for k, v in p.items() if k not in TIMING} for p in points]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "run"
    rc = main(FLAGS + ["--out", str(out), "--quiet"])
    return rc, out, json.loads((out / "sweep.json").read_text())


def test_smoke_writes_the_records_and_the_plots(smoke):
    rc, out, data = smoke
    assert rc == 0
    assert data["complete"] and data["param"] == "rho" and data["values"] == [0.4, 0.45, 0.5]
    pts = data["points"]
    assert [p["index"] for p in pts] == [0, 1, 2] and all(p["ok"] for p in pts)
    for key in ("rewards", "allocations", "msp_utility", "mu_utility", "iom", "participation", "sensitivity",
                "start", "seconds", "max_deviation_gain"):
        assert key in pts[0], key
    assert [p["sensitivity"]["status"] for p in pts] == ["ok"] * 3
    assert data["summary"]["certified"] == 3
    for name in ("rewards.png", "utilities.png", "iom.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _same(a, b, path="points"):
    """Records equal, numbers to 1e-8 relative: a resumed path compiles its game afresh, so the
    solver's warm state (multipliers) differs and the last digits of a point may too."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) - {"certified_together"} == set(b) - {"certified_together"}, path
        for k in set(a) - {"certified_together"}:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert b == pytest.approx(a, rel=1e-8, abs=1e-10), path
    else:
        assert a == b, path


def test_an_interrupted_sweep_resumes_to_the_same_points(smoke, tmp_path, monkeypatch, capsys):
    import importlib

    sweep_mod = importlib.import_module("epec.sweep")  # the module (epec.sweep is also the function)

    out = tmp_path / "run"
    real = sweep_mod._solve
    calls = {"n": 0}

    def stop_at_the_third(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(sweep_mod, "_solve", stop_at_the_third)
    assert main(FLAGS + ["--out", str(out), "--quiet"]) == 130
    part = json.loads((out / "sweep.json").read_text())
    kept = len(part["points"])
    assert not part["complete"] and 1 <= kept < 3  # the checkpoint after every certified point
    _same(_strip(part["points"]), _strip(smoke[2]["points"][:kept]))
    monkeypatch.setattr(sweep_mod, "_solve", real)
    assert main(FLAGS + ["--out", str(out), "--resume"]) == 0
    assert f"resuming: {kept}/3 points" in capsys.readouterr().out
    done = json.loads((out / "sweep.json").read_text())
    assert done["complete"]
    assert done["points"][:kept] == part["points"]  # kept as they were
    _same(_strip(done["points"]), _strip(smoke[2]["points"]))


def test_resume_with_other_flags_is_refused(smoke, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps({**smoke[2], "complete": False}))
    flags = ["sweep", "--scenario", "tiny", "--param", "rho", "--values", "0.4:0.6:3", "--grid", "11"]
    assert main(flags + ["--out", str(out), "--resume"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert json.loads((out / "sweep.json").read_text())["values"] == [0.4, 0.45, 0.5]  # untouched


def test_cold_baseline_is_measured_side_by_side(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["sweep", "--scenario", "tiny", "--param", "lam", "--values", "40,45", "--grid", "11", "--cold",
                 "--out", str(out)]) == 0
    b = json.loads((out / "sweep.json").read_text())["baseline"]
    assert b["points"] == 2 and b["cold_certified"] == 2 and b["compared"] == 2
    assert b["max_reward_difference"] < 1e-4
    assert b["ratio"] > 0 and "cold baseline:" in capsys.readouterr().out


def test_a_tight_cold_baseline_agrees_with_the_continuation_to_1e_6(tmp_path):
    # the cold solves to 1e-10 (--cold-tol): the continuation's corrected points are the
    # equilibria far inside the default tolerance's 1e-6
    out = tmp_path / "run"
    assert main(["sweep", "--scenario", "tiny", "--param", "rho", "--values", "0.4:0.5:3", "--grid", "11", "--cold",
                 "--cold-tol", "1e-10", "--out", str(out), "--quiet"]) == 0
    data = json.loads((out / "sweep.json").read_text())
    assert data["baseline"]["compared"] == 3 and data["baseline"]["max_reward_difference"] < 1e-6
    assert [p["start"] for p in data["points"]] == ["cold", "corrected", "corrected"]


def test_two_parameters_draw_heat_maps(tmp_path):
    out = tmp_path / "run"
    assert main(["sweep", "--scenario", "tiny", "--param", "rho", "--values", "0.4,0.45", "--param2", "Rmax",
                 "--values2", "20,30", "--grid", "11", "--no-sensitivities", "--out", str(out), "--quiet"]) == 0
    data = json.loads((out / "sweep.json").read_text())
    assert [p["params"] for p in data["points"]] == [{"rho": 0.4, "Rmax": 20.0}, {"rho": 0.45, "Rmax": 20.0},
                                                     {"rho": 0.4, "Rmax": 30.0}, {"rho": 0.45, "Rmax": 30.0}]
    assert (out / "rewards.png").stat().st_size > 0


@pytest.mark.parametrize("extra, flag", [
    (["--param", "nope", "--values", "1,2"], "--param"),
    (["--param", "rho", "--values", "1:2"], "--values"),
    (["--param", "rho", "--values", "a,b"], "--values"),
    (["--param", "rho", "--values", "0.5,-1"], "--values"),
    (["--param", "w_acc", "--values", "0.2:1.4:3"], "--values"),
    (["--param", "rho", "--values", "0.5", "--values2", "1,2"], "--values2"),
    (["--param", "rho", "--values", "0.5", "--param2", "rho", "--values2", "0.6"], "--param2"),
    (["--param", "rho", "--values", "0.5", "--workers", "0"], "--workers"),
    (["--param", "rho", "--values", "0.5", "--grid", "1"], "--grid"),
    (["--param", "rho", "--values", "0.5", "--cold-tol", "1e-10"], "--cold-tol"),
    (["--param", "rho", "--values", "0.5", "--cold", "--cold-tol", "2"], "--cold-tol"),
])
def test_bad_flags_are_refused_naming_the_flag(tmp_path, capsys, extra, flag):
    out = tmp_path / "run"
    assert main(["sweep", "--scenario", "tiny", "--out", str(out)] + extra) == 2
    err = capsys.readouterr().err
    assert flag in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # bad input leaves nothing behind


def test_parse_values():
    assert parse_values("1:2:3", "--values") == [1.0, 1.5, 2.0]
    assert parse_values("0.5:0.9:1", "--values") == [0.5]
    assert parse_values("3,1,2", "--values") == [3.0, 1.0, 2.0]
    with pytest.raises(InputError):
        parse_values("1:2:0", "--values")
