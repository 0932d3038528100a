"""The README's Python examples run as written and print what they claim."""
import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _block(marker: str) -> str:
    """The README's Python example that contains ``marker``."""
    return next(b for b in _python_blocks() if marker in b)


def test_readme_has_python_examples():
    assert _python_blocks()


def test_readme_stackelberg_example_reaches_the_closed_form():
    # Prepare
    code = _block("solve_bilevel")
    out = io.StringIO()
    # Execute
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    # Assert: q1 = (a - c) / 2 = 45, q2 = (a - c) / 4 = 22.5, no profitable deviation
    first, second = out.getvalue().splitlines()[:2]
    status, q1, q2 = first.split()
    assert status == "CONVERGED"
    assert abs(float(q1) - 45.0) < 1e-3 and abs(float(q2) - 22.5) < 1e-3
    gain, residual = map(float, second.split())
    assert gain < 1e-6 and residual < 1e-6


def test_readme_scenario_file_loads(tmp_path):
    # Prepare
    toml = re.findall(r"```toml\n(.*?)```", README.read_text(), flags=re.S)[0]
    path = tmp_path / "my_scenario.toml"
    path.write_text(toml)
    # Execute
    from models import Mechanism, load_scenario

    sc = load_scenario(path)
    # Assert
    assert (sc.n_mu, sc.n_msp) == (20, 3) and sc.seed == 7
    assert sc.mechanism is Mechanism.UNIT_PRICE and sc.L == 3
    assert sc.Rmax.tolist() == [30.0, 40.0, 50.0] and set(sc.rho.tolist()) == {0.5}


def test_readme_bad_input_line_is_what_the_cli_prints(tmp_path, capsys):
    # Prepare: the README's bad-input example, reproduced
    from benchmarks.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text('preset = "default"\nRmax = [30.0, -5.0, 30.0]\n')
    # Execute
    rc = main(["solve", "--scenario", str(bad), "--out", str(tmp_path / "x")])
    # Assert
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not (tmp_path / "x").exists()
    assert err in README.read_text()


def test_readme_certify_example_finds_the_profitable_deviations():
    # Prepare
    code = _block("certify(game")
    out = io.StringIO()
    # Execute
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    # Assert: flat rewards of 10 are no equilibrium: every MSP gains by moving away from 10
    gains, best = (eval(line) for line in out.getvalue().splitlines()[:2])
    assert len(gains) == len(best) == 3
    assert all(g > 1e-3 for g in gains)
    assert all(0.0 < b <= 30.0 and abs(b - 10.0) > 0.1 for b in best)


def test_readme_results_example_reads_what_the_commands_write(tmp_path, monkeypatch, capsys):
    # Prepare: the files the example reads, written by the commands themselves
    from benchmarks.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["solve", "--scenario", "tiny", "--grid", "5", "--out", "results/default"]) == 0
    assert main(["fl", "--scenario", "tiny", "--epochs", "1", "--rounds", "1", "--batch-size", "8", "--threads", "1",
                 "--out", "results/fl"]) == 0
    # Execute
    scope: dict = {}
    exec(compile(_block("models.results"), "README.md", "exec"), scope)
    # Assert
    assert scope["eq"].status == "converged" and scope["sc"].name == "tiny"
    assert scope["run"].rounds == 1


def test_readme_market_example_pays_the_locational_prices():
    # Prepare
    code = _block("epec.multiplier(m.iso.balance)")
    out = io.StringIO()
    # Execute
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    # Assert: the derivation in tests/epec/test_multipliers.py: q = (47.5, 27.5), prices (57.5, 67.5)
    ok, q, lmp = re.match(r"(\w+) (\[.*?\]) (\[.*?\])", out.getvalue()).groups()
    assert ok == "True"
    assert eval(q) == [47.5, 27.5] and eval(lmp) == [57.5, 67.5]
    assert out.getvalue().splitlines()[0] in README.read_text()  # the printed line is the comment's
