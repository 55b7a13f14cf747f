"""`nnkit` CLI: exit codes 0 (all pass) / 1 (any failure) / 2 (usage error)."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from nnkit import _kernels, cli, trace


def _run(*args):
    return subprocess.run([sys.executable, "-m", "nnkit.cli", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def this_level(monkeypatch):
    """gradcheck's options that check this process's ISA level in this process.
    With run-time dispatch the default (--isa all) checks every level in a
    child process of its own, where a test's monkeypatch (a broken analytic, a
    toy walkthrough) does not reach and each configuration's row repeats per level."""
    level = _kernels.level()
    monkeypatch.setenv("NNKIT_ISA", level)
    return ["--isa", level]


@pytest.mark.slow  # the whole gradcheck as a program, 7-40 s; CI runs nnkit gradcheck too
def test_gradcheck_subprocess_exit_0():
    # this process's ISA level (CI's gradcheck stage runs every level)
    p = _run("gradcheck", "--isa", _kernels.level())
    assert p.returncode == 0, p.stdout + p.stderr
    assert "bn-relu" in p.stdout and "FAIL" not in p.stdout
    # every registered walkthrough, every configuration, float64 and float32
    # (a walkthrough without a dtype parameter runs in float64 only), plus the
    # kernel-only configurations (conv's strides, dilations and pools) and the
    # threaded ones, which add runs of their own
    n_runs = sum((2 if any(q.name == "dtype" for q in w.params) else 1) * len(w.check_configs())
                 for w in trace.registry().values())
    done = re.search(r"(\d+) of (\d+) runs passed", p.stdout)
    assert done and done.group(1) == done.group(2), p.stdout[-500:]
    assert int(done.group(2)) > n_runs


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


def _subcommands():
    """Every subcommand the parser knows (new ones are covered automatically)."""
    action = next(a for a in cli._parser()._actions if a.dest == "command")
    return sorted(action.choices)


def test_unknown_walkthrough_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["gradcheck", "--walkthrough", "nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: nnkit gradcheck")
    assert "--walkthrough: expected one of" in err and "got 'nope'" in err
    p = _run("gradcheck", "-w", "nope")
    assert p.returncode == 2 and "nope" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("argv", [["gradcheck", "--dtype", "float16"],
                                  ["gradcheck", "--max-elements", "x"]])
def test_bad_value_exit_2_with_the_subcommand_usage(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("usage: nnkit gradcheck")


@pytest.mark.parametrize("argv", [["frobnicate"], []])
def test_bad_command_exit_2_with_the_top_level_usage(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: nnkit [-h] [--version] COMMAND"), err


def test_every_subcommand_with_a_bogus_flag_prints_its_own_usage(capsys):
    """Issue 8.12: `nnkit gradcheck --bogus` printed the top-level usage."""
    names = _subcommands()
    assert {"list", "gradcheck"} <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as exc:
            cli.main([name, "--bogus"])
        assert exc.value.code == 2, name
        err = capsys.readouterr().err
        assert err.startswith(f"usage: nnkit {name}"), err
        assert f"nnkit {name}: error: unrecognized arguments: --bogus" in err
    # and as a program: exit 2, the usage, never a traceback
    for name in names:
        p = _run(name, "--bogus")
        assert p.returncode == 2, (name, p.stderr)
        assert p.stderr.startswith(f"usage: nnkit {name}") and "Traceback" not in p.stderr


def test_max_elements_below_one_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["gradcheck", "--max-elements", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: nnkit gradcheck")
    assert "--max-elements: expected >= 1, got 0" in err


def test_config_column_is_never_cut(capsys, this_level):
    """Issue 8.12: the config column cut values (`spectrum=repeated see`)."""
    assert cli.main(["gradcheck", "-w", "whitening-zca", "--dtype", "float64",
                     "--max-elements", "2", *this_level]) == 0
    lines = capsys.readouterr().out.splitlines()
    w = trace.get("whitening-zca")
    shown = [cli._shown_config(w, trace.Trace(w, **c).cfg) for c in w.check_configs()]
    assert any(len(s) > 44 for s in shown)      # longer than the old fixed column
    # then the threaded run(s), their thread count appended
    shown += [cli._shown_config(w, trace.Trace(w, **c).cfg) + f" threads={cli.THREADED_THREADS}"
              for c in w.threaded_configs()]
    # each row opens with the level column (one level: this_level)
    rows = [ln.split(None, 1)[1] for ln in lines
            if ln.split(None, 2)[1:2] == ["whitening-zca"]]
    assert len(rows) == len(shown)
    for row, s in zip(rows, shown):
        assert row.endswith(s), (row, s)
    assert "spectrum=repeated seed=3" in "\n".join(lines)


def test_broken_pipe_no_traceback_and_the_verdict_as_status():
    """Issue 8.7: `nnkit gradcheck ... --json | head` printed a BrokenPipeError
    traceback and exited 1. The reader closing early is not a failed check."""
    cmd = (f"set -o pipefail; {sys.executable} -m nnkit.cli gradcheck -w bn-relu "
           f"--dtype float64 --json | head -1")
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert p.stdout == "{\n"
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr
    assert p.returncode == 0
    # deterministic: the reader is gone before the first byte is written
    for args in (["gradcheck", "-w", "bn-relu", "--dtype", "float64", "--max-elements", "2"],
                 ["list"]):
        proc = subprocess.Popen([sys.executable, "-m", "nnkit.cli", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=300) == 0, err
        assert err == "", err


_BROKEN = """
import os, sys, numpy as np
from nnkit import _kernels, cli, trace
# this level, in this process: a child per level would not see the patch below
os.environ["NNKIT_ISA"] = _kernels.level()
w = trace.get("bn-relu")
real = type(w).analytic
def broken(self, values, cfg):
    g = real(self, values, cfg)
    g["gamma"] = 2.0 * np.asarray(g["gamma"])
    return g
type(w).analytic = broken
sys.exit(cli.main(["gradcheck", "-w", "bn-relu", "--dtype", "float64", "--max-elements", "2",
                   "--isa", _kernels.level()]))
"""


def test_broken_pipe_keeps_a_failure_a_failure():
    proc = subprocess.Popen([sys.executable, "-c", _BROKEN], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 1 and "Traceback" not in err, err


def test_help_documents_the_exit_status(capsys):
    with pytest.raises(SystemExit):
        cli.main(["gradcheck", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Exit status: 0 all pass, 1 any check fails" in out and "| head" in out
    assert "--strict" in out
    assert "closes the pipe early" in cli.__doc__


class _Centered(trace.Walkthrough):
    """y = x − mean(x) against G = 1: ∂L/∂x = G − mean(G) = 0 exactly, although
    y depends on x: G is blind to x, so x's check is vacuous."""
    name = "centered-toy"
    params = (trace.Param("seed", 0),)

    def graph(self, cfg):
        return [trace.Node("x", "x", role="input"),
                trace.Node("y", "y = x − mean x", ("x",), lambda x: x - x.mean()),
                trace.Node("G", "G = 1", role="constant"),
                trace.Node("L", "L = Σ G y", ("G", "y"), lambda G, y: float(np.sum(G * y)),
                           role="loss")]

    def leaves(self, cfg, rng):
        return dict(x=rng.standard_normal(5), G=np.ones(5))

    def analytic(self, values, cfg):
        G = values["G"]
        return dict(L=np.float64(1.0), y=G, x=G - G.mean())


def test_strict_fails_a_vacuous_check(monkeypatch, capsys, this_level):
    monkeypatch.setitem(trace._REGISTRY, "centered-toy", _Centered())
    assert cli.main(["gradcheck", "-w", "centered-toy", *this_level]) == 0
    out = capsys.readouterr().out
    assert "PASS (1 vacuous)" in out and "VACUOUS" in out
    assert cli.main(["gradcheck", "-w", "centered-toy", "--strict", *this_level]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "0 of 1 runs passed" in out and "strict" in out
    assert cli.main(["gradcheck", "-w", "centered-toy", "--strict", "--json",
                     *this_level]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["strict"] is True
    x = next(t for t in data["runs"][0]["tensors"] if t["name"] == "x")
    assert x["vacuous"] is True and x["passed"] is False


def test_failure_exit_1(monkeypatch, capsys, this_level):
    """A walkthrough whose analytic gradient is wrong makes the CLI exit 1."""
    w = trace.get("bn-relu")
    real = type(w).analytic

    def broken(self, values, cfg):
        g = real(self, values, cfg)
        g["gamma"] = 2.0 * np.asarray(g["gamma"])      # deliberately wrong
        return g

    monkeypatch.setattr(type(w), "analytic", broken)
    assert cli.main(["gradcheck", "-w", "bn-relu", "--dtype", "float64", "--json",
                     *this_level]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is False
    bad = [t for r in data["runs"] for t in r["tensors"] if not t["passed"]]
    assert bad and {t["name"] for t in bad} == {"γ"}
