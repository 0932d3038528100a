"""The documentation site: ``mkdocs build --strict`` passes (no broken link, reference or
docstring), every Python example of ``docs/`` runs as written, and the model page's table of
units and ranges is the code's."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


#: the files an example reads, written by the commands themselves before it runs
PREPARE = {
    "getting-started.md": [
        ["solve", "--scenario", "tiny", "--grid", "5", "--out", "results/default"],
        ["fl", "--scenario", "tiny", "--epochs", "1", "--rounds", "1", "--batch-size", "8", "--threads", "1",
         "--out", "results/fl"],
    ],
    "pricing.md": [
        ["train-pricing", "--scenario", "default", "--updates", "1", "--markets", "4", "--seconds", "120",
         "--out", "results/pricing/stationary_s0"],
    ],
}
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if _python_blocks(p))


def test_site_builds_strict(tmp_path):
    # Execute: the build the site is published with, warnings as errors
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    # Assert: built, every page there, the API reference generated from the docstrings
    assert proc.returncode == 0, proc.stderr[-4000:]
    site = tmp_path / "site"
    for page in DOCS.rglob("*.md"):
        if "measured" in page.parts:
            continue
        rel = page.relative_to(DOCS).with_suffix("")
        html = site / ("index.html" if rel.name == "index" and rel.parent == Path(".") else
                       rel.parent / "index.html" if rel.name == "index" else rel / "index.html")
        assert html.is_file(), html
    api = (site / "api" / "epec" / "index.html").read_text()
    assert 'id="epec.register_mode"' in api and 'id="epec.solve_epec"' in api
    assert 'id="fl.register_dataset"' in (site / "api" / "fl" / "index.html").read_text()


def test_every_page_is_in_the_navigation():
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    listed = set(re.findall(r"[\w/-]+\.md", str(nav)))
    assert {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "measured" not in p.parts} == listed


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page, tmp_path, monkeypatch, capsys):
    # Prepare: a fresh folder, and the results the page's examples read
    from benchmarks.cli import main

    monkeypatch.chdir(tmp_path)
    for argv in PREPARE.get(page, []):
        assert main([*argv, "--quiet"]) == 0, argv
    capsys.readouterr()
    scope: dict = {"__name__": f"docs_{page}"}
    out = io.StringIO()
    registered = _registries()
    try:
        # Execute: the page's examples in order, in one namespace
        with contextlib.redirect_stdout(out):
            for block in _python_blocks(DOCS / page):
                exec(compile(block, str(DOCS / page), "exec", dont_inherit=True), scope)
    finally:
        _restore(registered)
    # Assert: what each page's examples claim
    printed = out.getvalue()
    if page == "extending.md":
        lines = printed.splitlines()
        assert lines[0] == "CONVERGED 3.0 3.0"
        assert lines[1] == "500 100 4 (1, 16, 16)"
        assert lines[2] == "2 True"
    if page == "getting-started.md":
        assert scope["eq"].status == "converged" and scope["run"].rounds == 1
    if page == "pricing.md":
        assert len(scope["R"]) == 3 and all(0.0 <= r <= 30.0 for r in scope["R"])


def _registries() -> list[tuple[dict, dict]]:
    import epec
    from drl.compare import SCHEMES
    from fl.aggregate import AGGREGATIONS
    from fl.data import DATASETS

    return [(r, dict(r)) for r in (epec.MODES, DATASETS, AGGREGATIONS, SCHEMES)]


def _restore(saved: list[tuple[dict, dict]]) -> None:
    for registry, before in saved:  # a page's registrations do not leak into other tests
        registry.clear()
        registry.update(before)


def test_model_page_units_and_ranges_are_the_codes():
    from models.scenario import _BOUNDS, SCALAR_FIELDS, Scenario

    text = (DOCS / "model.md").read_text()
    rows = {m[0]: m[1:] for m in re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", text, flags=re.M)}
    defaults = {f.name: f.default for f in dataclasses.fields(Scenario)}
    assert set(rows) == set(_BOUNDS)
    for name, (unit, lo, inclusive, hi) in _BOUNDS.items():
        doc_unit, doc_range, doc_default = (c.strip() for c in rows[name])
        assert doc_unit == unit, name
        assert doc_range == f"{'[' if inclusive else '('}{lo:g}, {f'{hi:g}]' if hi is not None else 'inf)'}", name
        if name in SCALAR_FIELDS:
            assert float(doc_default) == defaults[name], name
