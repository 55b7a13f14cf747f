"""`nnkit` CLI: exit codes 0 (all pass) / 1 (any failure) / 2 (usage error)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from nnkit import cli, trace


def _run(*args):
    return subprocess.run([sys.executable, "-m", "nnkit.cli", *args],
                          capture_output=True, text=True, timeout=300)


def test_gradcheck_subprocess_exit_0():
    p = _run("gradcheck")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "bn-relu" in p.stdout and "FAIL" not in p.stdout
    # every registered walkthrough, every configuration, float64 and float32
    # (a walkthrough without a dtype parameter runs in float64 only)
    n_runs = sum((2 if any(q.name == "dtype" for q in w.params) else 1) * len(w.check_configs())
                 for w in trace.registry().values())
    assert f"{n_runs} of {n_runs} runs passed" in p.stdout


def test_gradcheck_json(capsys):
    assert cli.main(["gradcheck", "-w", "bn-relu", "--json", "--dtype", "float64"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is True
    runs = data["runs"]
    assert runs and all(r["walkthrough"] == "bn-relu" and r["passed"] for r in runs)
    assert {r["config"]["dtype"] for r in runs} == {"float64"}
    assert any(r["config"]["B"] == 2 for r in runs)
    assert any(r["config"]["constant_feature"] for r in runs)
    names = {t["name"] for t in runs[0]["tensors"]}
    assert {"X", "W", "b", "Y", "m", "v", "Ŷ", "γ", "β", "Z", "H", "L"} == names


def test_gradcheck_float32_and_walkthrough_flag(capsys):
    assert cli.main(["gradcheck", "-w", "bn-relu", "--dtype", "float32",
                     "--max-elements", "8", "-v"]) == 0
    out = capsys.readouterr().out
    assert "float32" in out and "PASS" in out and "max rel err" in out


def test_list(capsys):
    assert cli.main(["list"]) == 0
    assert "bn-relu" in capsys.readouterr().out


def test_unknown_walkthrough_exit_2(capsys):
    assert cli.main(["gradcheck", "--walkthrough", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--walkthrough" in err and "'nope'" in err
    p = _run("gradcheck", "-w", "nope")
    assert p.returncode == 2 and "nope" in p.stderr


@pytest.mark.parametrize("argv", [["gradcheck", "--no-such-flag"], ["gradcheck", "--dtype", "float16"],
                                  ["frobnicate"], [], ["gradcheck", "--max-elements", "x"]])
def test_bad_usage_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_max_elements_below_one_exit_2(capsys):
    assert cli.main(["gradcheck", "--max-elements", "0"]) == 2
    assert "--max-elements" in capsys.readouterr().err


def test_failure_exit_1(monkeypatch, capsys):
    """A walkthrough whose analytic gradient is wrong makes the CLI exit 1."""
    w = trace.get("bn-relu")
    real = type(w).analytic

    def broken(self, values, cfg):
        g = real(self, values, cfg)
        g["gamma"] = 2.0 * np.asarray(g["gamma"])      # deliberately wrong
        return g

    monkeypatch.setattr(type(w), "analytic", broken)
    assert cli.main(["gradcheck", "-w", "bn-relu", "--dtype", "float64", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is False
    bad = [t for r in data["runs"] for t in r["tensors"] if not t["passed"]]
    assert bad and {t["name"] for t in bad} == {"γ"}
