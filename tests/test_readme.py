"""The README is a newcomer's page: under 200 lines, linking the documentation, with the
conventions of every command; its examples, and the ones that moved from it to ``docs/``, run as
written and print what they claim."""
import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
#: the pages that hold the examples the README used to hold
EQUILIBRIA = DOCS / "equilibria.md"
GETTING_STARTED = DOCS / "getting-started.md"


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


def _block(marker: str, page: Path) -> str:
    """The Python example of ``page`` that contains ``marker``."""
    return next(b for b in _python_blocks(page) if marker in b)


def _section(title: str) -> str:
    """The README's section under the heading ``## title``, up to the next ``##`` heading."""
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start: end if end != -1 else len(text)]


def _slug(heading: str) -> str:
    """The anchor MkDocs (and GitHub) gives a heading."""
    heading = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"\s+", "-", heading)


def test_readme_is_short_and_links_the_docs():
    # Prepare
    text = README.read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#([^)\s]+))?\)", text)
    # Assert: one screen or two, and every page of the site reachable from it
    assert len(text.splitlines()) < 200
    assert "make docs" in text and "mkdocs serve" in text
    targets = {t for t, _ in links}
    for page in ("index", "getting-started", "model", "equilibria", "pricing", "comparisons", "fl-deployment",
                 "extending", "results"):
        assert f"docs/{page}.md" in targets, page
    # every relative link is a file here, and every anchor into a page is one of its headings
    for target, anchor in links:
        if "://" in target:
            continue
        assert (ROOT / target).is_file(), target
        if anchor:
            headings = re.findall(r"^#+ (.+)$", (ROOT / target).read_text(), flags=re.M)
            assert anchor in {_slug(h) for h in headings}, (target, anchor)
    for _, anchor in re.findall(r"\]\((#)([^)\s]+)\)", text):
        assert anchor in {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}, anchor


def test_readme_states_the_conventions_of_every_command():
    # Prepare
    conventions = " ".join(_section("Conventions of every command").split())
    # Assert: the overwrite rule, the signal rule and the no-code rule (issue 16), in the README itself
    assert "What `--force` may delete." in conventions and ".metatrading-manifest.json" in conventions
    assert "refused whatever the flags" in conventions
    assert "Signals." in conventions and "SIGINT" in conventions and "SIGTERM" in conventions
    assert "128 + the signal's number" in conventions
    assert "No file given to the toolkit is ever executed" in conventions
    assert "weights_only=True" in conventions


def test_readme_keeps_the_two_commands_and_the_three_uses():
    # Prepare
    text = README.read_text()
    commands = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    # Assert: make run, make test, and one command for each use
    assert "make run" in commands[0] and "make test" in commands[0]
    joined = "\n".join(commands)
    for use in ("metatrading solve", "metatrading train-pricing", "metatrading compare"):
        assert use in joined, use


def test_readme_stackelberg_example_is_the_equilibria_pages():
    # Assert: one example, the same text in both places
    readme = _block("solve_bilevel", README)
    assert readme == _block("solve_bilevel", EQUILIBRIA)


@pytest.mark.parametrize("page", [README, EQUILIBRIA], ids=["README", "equilibria"])
def test_stackelberg_example_reaches_the_closed_form(page):
    # Prepare
    code = _block("solve_bilevel", page)
    out = io.StringIO()
    # Execute
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(page), "exec"), {})
    # Assert: q1 = (a - c) / 2 = 45, q2 = (a - c) / 4 = 22.5, no profitable deviation
    first, second = out.getvalue().splitlines()[:2]
    status, q1, q2 = first.split()
    assert status == "CONVERGED"
    assert abs(float(q1) - 45.0) < 1e-3 and abs(float(q2) - 22.5) < 1e-3
    gain, residual = map(float, second.split())
    assert gain < 1e-6 and residual < 1e-6


@pytest.mark.parametrize("page", [README, GETTING_STARTED], ids=["README", "getting-started"])
def test_scenario_file_loads(page, tmp_path):
    # Prepare
    toml = re.findall(r"```toml\n(.*?)```", page.read_text(), flags=re.S)[0]
    path = tmp_path / "my_scenario.toml"
    path.write_text(toml)
    # Execute
    from models import Mechanism, load_scenario

    sc = load_scenario(path)
    # Assert
    assert (sc.n_mu, sc.n_msp) == (20, 3) and sc.seed == 7
    assert sc.mechanism is Mechanism.UNIT_PRICE and sc.L == 3
    assert sc.Rmax.tolist() == [30.0, 40.0, 50.0] and set(sc.rho.tolist()) == {0.5}


def test_bad_input_line_is_what_the_cli_prints(tmp_path, capsys):
    # Prepare: the README's bad-input example, reproduced
    from benchmarks.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text('preset = "default"\nRmax = [30.0, -5.0, 30.0]\n')
    # Execute
    rc = main(["solve", "--scenario", str(bad), "--out", str(tmp_path / "x")])
    # Assert: the line both pages show
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not (tmp_path / "x").exists()
    assert err in README.read_text() and err in GETTING_STARTED.read_text()


def test_certify_example_finds_the_profitable_deviations():
    # Prepare
    code = _block("certify(game", EQUILIBRIA)
    out = io.StringIO()
    # Execute
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(EQUILIBRIA), "exec"), {})
    # Assert: flat rewards of 10 are no equilibrium: every MSP gains by moving away from 10
    gains, best = (eval(line) for line in out.getvalue().splitlines()[:2])
    assert len(gains) == len(best) == 3
    assert all(g > 1e-3 for g in gains)
    assert all(0.0 < b <= 30.0 and abs(b - 10.0) > 0.1 for b in best)


def test_results_example_reads_what_the_commands_write(tmp_path, monkeypatch, capsys):
    # Prepare: the files the example reads, written by the commands themselves
    from benchmarks.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["solve", "--scenario", "tiny", "--grid", "5", "--out", "results/default"]) == 0
    assert main(["fl", "--scenario", "tiny", "--epochs", "1", "--rounds", "1", "--batch-size", "8", "--threads", "1",
                 "--out", "results/fl"]) == 0
    # Execute
    scope: dict = {}
    exec(compile(_block("models.results", GETTING_STARTED), str(GETTING_STARTED), "exec"), scope)
    # Assert
    assert scope["eq"].status == "converged" and scope["sc"].name == "tiny"
    assert scope["run"].rounds == 1


def test_market_example_pays_the_locational_prices():
    # Prepare
    code = _block("epec.multiplier(m.iso.balance)", EQUILIBRIA)
    out = io.StringIO()
    # Execute
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(EQUILIBRIA), "exec"), {})
    # Assert: the derivation in tests/epec/test_multipliers.py: q = (47.5, 27.5), prices (57.5, 67.5)
    ok, q, lmp = re.match(r"(\w+) (\[.*?\]) (\[.*?\])", out.getvalue()).groups()
    assert ok == "True"
    assert eval(q) == [47.5, 27.5] and eval(lmp) == [57.5, 67.5]
    assert out.getvalue().splitlines()[0] in EQUILIBRIA.read_text()  # the printed line is the comment's
