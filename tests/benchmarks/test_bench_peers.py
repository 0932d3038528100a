"""``metatrading bench peers``: the published-instance suite (issue 15 item 7) and its command.

The suite test runs every instance with the toolkit's defaults and asserts issue 15's two
correctness targets: no wrong ``ok`` anywhere, and at least 90% of the instances with a unique
certifiable answer right. (The timing targets are reported by the bench, not tested.)
"""
from __future__ import annotations

import json

import pytest

from benchmarks.bench_peers import run_instance, summarise
from benchmarks.cli import main
from benchmarks.peers import INSTANCES, Expect


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    # Prepare / Execute: the whole suite through the command, as a user runs it
    out = tmp_path_factory.mktemp("peers") / "run"
    rc = main(["bench", "peers", "--out", str(out), "--quiet"])
    return rc, json.loads((out / "peers.json").read_text())


def test_suite_has_no_wrong_ok(suite):
    rc, data = suite
    wrong = {r["instance"]: (r["status"], r["reason"]) for r in data["rows"] if r["verdict"] == "wrong_ok"}
    # Assert: no instance is ok away from its published answer (or ok without a certifiable one)
    assert wrong == {}
    assert rc == 0


def test_suite_gets_90_percent_of_unique_instances_right(suite):
    _, data = suite
    unique = [r for r in data["rows"] if r["expect"] == "unique"]
    not_right = {r["instance"]: (r["verdict"], r["status"], r["needs"]) for r in unique if r["verdict"] != "right"}
    # Assert: the right fraction over the unique instances, skipped ones counted as not right
    assert len(unique) >= 30
    assert (len(unique) - len(not_right)) / len(unique) >= 0.9, not_right


def test_suite_rows_describe_every_instance(suite):
    _, data = suite
    # Assert: one row per instance, each with a verdict, a source and its published numbers
    assert [r["instance"] for r in data["rows"]] == list(INSTANCES)
    assert all(r["verdict"] in ("right", "wrong_ok", "refused", "skipped") for r in data["rows"])
    assert all(r["source"] and r["seconds"] >= 0 for r in data["rows"])
    assert data["summary"]["count"] == len(INSTANCES)


def test_cli_smoke_on_two_instances(tmp_path, capsys):
    # Prepare
    out = tmp_path / "peers"
    # Execute
    rc = main(["bench", "peers", "--only", "stackelberg1,y_1996_02", "--out", str(out)])
    # Assert: the table, the totals and the JSON; stackelberg1 (unique) right, y_1996_02
    # (an indifferent follower) refused
    printed = capsys.readouterr().out
    data = json.loads((out / "peers.json").read_text())
    rows = {r["instance"]: r for r in data["rows"]}
    assert rc == 0 and set(rows) == {"stackelberg1", "y_1996_02"}
    assert rows["stackelberg1"]["verdict"] == "right" and rows["stackelberg1"]["ok"]
    assert rows["stackelberg1"]["toolkit"]["objective"][0] == pytest.approx(-9800 / 3, rel=1e-6)
    assert rows["y_1996_02"]["verdict"] == "refused" and not rows["y_1996_02"]["ok"]
    assert "stackelberg1" in printed and "unique instances right: 1/1" in printed
    # ... and a second run into the same folder is refused without --force, accepted with it
    assert main(["bench", "peers", "--only", "jr1", "--out", str(out)]) == 2
    assert main(["bench", "peers", "--only", "jr1", "--out", str(out), "--force"]) == 0
    assert [r["instance"] for r in json.loads((out / "peers.json").read_text())["rows"]] == ["jr1"]


def test_cli_refuses_an_unknown_instance(tmp_path, capsys):
    # Execute
    rc = main(["bench", "peers", "--only", "jr1,no_such_instance", "--out", str(tmp_path / "x")])
    # Assert: exit 2, one line naming the flag and the name, nothing left behind
    assert rc == 2
    assert "--only" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_verdicts_judge_ok_against_the_expectation():
    # Prepare: an indifferent instance's row, relabelled as solved ok and as refused
    inst = INSTANCES["y_1996_02"]
    assert inst.expect is Expect.INDIFFERENT
    row = run_instance(inst)
    # Assert: it is never right; summarise counts it and flags a wrong ok
    assert row["verdict"] in ("refused", "wrong_ok")
    ok_row = dict(row, ok=True, verdict="wrong_ok")
    s = summarise([ok_row], 1.0)
    assert s["wrong_ok"] == ["y_1996_02"] and not s["met"]["wrong_ok"]
    assert s["unique"] == 0
