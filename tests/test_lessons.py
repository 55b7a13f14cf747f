"""Every registered lesson passes (including lessons added later: the registry is
iterated), and `nnkit lessons` turns a failing one into exit status 1."""
import json

import pytest

from nnkit import cli
from nnkit.derivations import _REGISTRY, Result, lesson, registry

NAMES = list(registry())


def test_registry_has_the_problem_set():
    problems = {les.problem for les in registry().values()}
    assert {"P2", "P4", "P6", "P7", "P8"} <= problems
    assert len(NAMES) >= 11


@pytest.mark.parametrize("name", NAMES)
def test_lesson_passes(name):
    les = registry()[name]
    r = les.run(0)
    assert r.passed, f"{name}: discrepancy {r.discrepancy} > tolerance {r.tolerance}"
    assert r.rows, f"{name}: a lesson shows its numbers"
    assert all(list(row) == list(r.rows[0]) for row in r.rows), "same columns in every row"


@pytest.fixture
def planted():
    """A lesson that fails, registered for one test only."""
    @lesson("zz-planted-failure", "P99", "1 = 2")
    def planted_failure(seed):
        return Result(discrepancy=1.0, tolerance=0.0, rows=[{"lhs": 1, "rhs": 2}])

    @lesson("zz-planted-raise", "P99", "raises")
    def planted_raise(seed):
        raise RuntimeError("boom")
    yield
    del _REGISTRY["zz-planted-failure"], _REGISTRY["zz-planted-raise"]


def test_cli_exit_status(planted, capsys):
    assert cli.main(["lessons", "p8-norm-axes"]) == 0
    out = capsys.readouterr().out
    assert "p8-norm-axes" in out and "PASS" in out and "1 of 1 lessons passed" in out
    assert cli.main(["lessons", "p8-norm-axes", "zz-planted-failure"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "1 of 2 lessons passed" in out
    assert cli.main(["lessons", "zz-planted-raise"]) == 1
    assert "raised RuntimeError: boom" in capsys.readouterr().out


def test_cli_json(planted, capsys):
    assert cli.main(["lessons", "p8-norm-axes", "zz-planted-failure", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is False
    by = {d["name"]: d for d in data["lessons"]}
    assert by["p8-norm-axes"]["passed"] and not by["zz-planted-failure"]["passed"]
    assert by["p8-norm-axes"]["rows"][0]["mean shape"] == "(2,)"


def test_cli_usage(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["lessons", "no-such-lesson"])
    assert e.value.code == 2
    assert cli.main(["lessons", "--list"]) == 0
    assert "p6-dropout-expectation" in capsys.readouterr().out
