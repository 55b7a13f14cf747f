"""Issue 26: hostile derivation files. A file runs in a child process, so
nothing in it (an exception, an endless loop, sys.exit, os._exit, a crash, a
stray print or input, a return that is not a gradient) reaches the checker:
the formula FAILs saying why and every other formula is still judged. What
cannot be checked at all (a syntax error, a function named for no node, an
unknown walkthrough) is a UsageError saying so."""
from __future__ import annotations

import signal

import pytest

import nnkit as nk
from nnkit.derivation_check import UsageError, valid_names

from derivation_helpers import file_for, others_pass, replace_function, result, verdicts

# one or two of bn-relu's check configurations: each test checks the whole file
CONFIGS = [dict(B=4, N=3, M=5), dict(B=7, N=5, M=3, seed=1)]
ONE = CONFIGS[:1]


def check(path, **kw):
    kw.setdefault("configs", ONE)
    return nk.check_derivation(path, **kw)


def line_of(path, needle: str) -> int:
    """The 1-based line of `path` holding `needle` (once)."""
    lines = [i for i, s in enumerate(open(path).read().splitlines(), 1) if needle in s]
    assert len(lines) == 1, (needle, lines)
    return lines[0]


def failed_alone(report, name) -> str:
    r = result(report, name)
    assert r.verdict == "FAIL", report.table()
    assert others_pass(report, name), report.table()
    assert not report.passed
    return r.diagnosis


# ------------------------------------------------------------ runtime errors
def test_formulas_that_raise(tmp_path, plant):
    """Each formula of one file fails its own way (each is judged fed the true
    gradients): an exception with its line (in a helper: the helper's line),
    KeyboardInterrupt, sys.exit(), sys.exit(3), an argument that binds to
    nothing; **names gets every name. The rest still PASS."""
    path = plant("bn-relu", extra="""
        def dH(G):
            scale = 0
            return G / scale if scale else 1 / scale


        def dZ(dH, Z):
            raise KeyboardInterrupt


        def dbeta(dZ):
            import sys
            sys.exit()


        def dgamma(dZ, Yhat):
            import sys
            sys.exit(3)


        def dYhat(dZ, gamma):
            return _scaled(dZ, gamma)


        def _scaled(a, g):
            return a * np.ones(7) * g


        def dv(dYhat, Yhatt, m, v, eps):
            return (dYhat * (Yhatt - m)).sum(axis=0) * -0.5 * (v + eps) ** -1.5


        def dm(**names):
            dYhat, v, eps = names["dYhat"], names["v"], names["eps"]
            return -(dYhat / np.sqrt(v + eps)).sum(axis=0)
        """)
    # the planted definitions come last: they replace the file's (Python keeps the last)
    report = check(path)
    got = {f.name: f.diagnosis for f in report.formulas if f.verdict == "FAIL"}
    assert got.pop("dH") == f"ZeroDivisionError: division by zero (line {line_of(path, '1 / scale')})"
    assert got.pop("dZ") == f"KeyboardInterrupt (line {line_of(path, 'raise KeyboardInterrupt')})"
    assert got.pop("dbeta") == "called sys.exit(None)"
    assert got.pop("dgamma") == "called sys.exit(3)"
    dyhat = got.pop("dYhat")
    assert dyhat.startswith("ValueError: operands could not be broadcast together")
    assert dyhat.endswith(f"(line {line_of(path, 'np.ones(7)')})")
    dv = got.pop("dv")
    assert dv.startswith("argument 'Yhatt' is not a node, a gradient or a configuration "
                         "value here (available: X, W, b, gamma, beta, G, Y, m, v, Yhat,")
    assert dv.endswith(", cfg)")
    assert not got, got
    assert [f.name for f in report.formulas if f.verdict == "PASS"] == ["dm", "dY", "db", "dW", "dX"]
    assert not report.passed and report.exit_code == 1


def test_infinite_loop_times_out(plant):
    """timeout=1: the loop FAILs "timed out after 1 s"; the child is replaced
    and every later formula still gets its verdict."""
    path = plant("bn-relu", "dgamma", """
        def dgamma(dZ, Yhat):
            while True:
                pass
        """)
    report = check(path, timeout=1)
    assert failed_alone(report, "dgamma") == "timed out after 1 s"
    # formulas before and after it in the backward order were judged
    assert verdicts(report)["dbeta"] == "PASS" and verdicts(report)["dX"] == "PASS"
    assert result(report, "dYhat").max_rel_err is not None


def test_os_exit(plant):
    path = plant("bn-relu", "dgamma", "def dgamma(dZ, Yhat):\n    import os\n    os._exit(3)")
    diagnosis = failed_alone(check(path), "dgamma")
    assert diagnosis == ("the process running it ended (exit code 3: os._exit, a crash "
                         "or sys.exit)")


def test_segfault(plant):
    path = plant("bn-relu", "dgamma", """
        def dgamma(dZ, Yhat):
            import ctypes
            return ctypes.string_at(0)
        """)
    diagnosis = failed_alone(check(path), "dgamma")
    assert diagnosis.startswith("the process running it ended (killed by signal "
                                f"{int(signal.SIGSEGV)}")


# -------------------------------------------------------- returns, not arrays
RETURNS = {   # formula: (its planted body, the diagnosis)
    "dH": ("def dH(G):\n    return None", "returned None (a missing return?)"),
    "dZ": ("def dZ(dH, Z):\n    dH * (Z > 0)", "returned None (a missing return?)"),
    "dbeta": ("def dbeta(dZ):\n    return dZ.sum(axis=0).astype(str)",
              "returned a ndarray of dtype <U"),
    "dgamma": ("def dgamma(dZ, Yhat):\n    return 'dZ * Yhat summed over the batch'",
               "returned a string 'dZ * Yhat summed over the batch'"),
    "dYhat": ("def dYhat(dZ, gamma):\n    return dZ * gamma + 0j", "returned complex values"),
    "dv": ("def dv(v):\n    return [[1.0, 2.0], [3.0]]", "returned a list that is not an array"),
    "dm": ("def dm(m):\n    return {'m': m}", "returned a dict of dtype object, not numbers"),
    "dY": ("def dY(Y):\n    return (y for y in Y)", "<unpicklable generator>"),
    "db": ("def db(dY):\n    return dY.sum(axis=0) * np.nan", "non-finite value (nan) at (0,)"),
    "dW": ("def dW(dY, X):\n    g = dY.T @ X\n    g[1, 2] = -np.inf\n    return g",
           "non-finite value (-inf) at (1, 2)"),
    # the wrong float type: float16 rounding is a wrong value, float32's is not
    "dX": ("def dX(dY, W):\n    return (dY @ W).astype(np.float16)", "wrong values: X["),
}


def test_returns_that_are_not_a_gradient(plant):
    text = file_for("bn-relu").read_text()
    for name, (source, _) in RETURNS.items():
        text = replace_function(text, name, source)
    report = check(plant("bn-relu", text=text))
    for name, (_, expected) in RETURNS.items():
        r = result(report, name)
        assert r.verdict == "FAIL", (name, report.table())
        assert r.diagnosis.startswith(expected), (name, r.diagnosis)


def test_lists_and_other_float_types_of_the_right_numbers_are_a_gradient(plant):
    """A nested list converts to the right array, float32 is within the
    tolerance: both judged on their values."""
    text = file_for("bn-relu").read_text()
    text = replace_function(text, "dW", "def dW(dY, X):\n    return (dY.T @ X).tolist()")
    text = replace_function(text, "dX", "def dX(dY, W):\n    return (dY @ W).astype(np.float32)")
    report = check(plant("bn-relu", text=text))
    assert report.passed, report.table()


def test_zeros_and_a_scalar(plant):
    text = file_for("bn-relu").read_text()
    text = replace_function(text, "dgamma", "def dgamma(gamma):\n    return np.zeros_like(gamma)")
    text = replace_function(text, "dbeta", "def dbeta(dZ):\n    return dZ.sum()")
    report = check(plant("bn-relu", text=text))
    assert result(report, "dgamma").diagnosis == ("all zeros (a term or a path to this "
                                                  "node left out?)")
    assert result(report, "dbeta").diagnosis == "wrong shape: expected (M,) = (5,), got ()"
    assert others_pass(report, "dgamma", "dbeta")


# ---------------------------------------------------------- stray I/O
def test_stray_print_changes_nothing(plant):
    path = plant("bn-relu", "dgamma", """
        def dgamma(dZ, Yhat):
            print("dgamma", dZ.shape, Yhat)
            import sys
            print("to stderr", file=sys.stderr)
            return (dZ * Yhat).sum(axis=0)
        """, extra='print("loaded")')
    report = check(path)
    assert report.passed, report.table()


def test_stray_input_does_not_hang_or_reach_the_protocol(plant):
    """input() reads the child's /dev/null, never the checker's pipe: it ends
    at once and every other formula is judged as before."""
    path = plant("bn-relu", "dgamma", """
        def dgamma(dZ, Yhat):
            input("press enter")
            return (dZ * Yhat).sum(axis=0)
        """)
    report = check(path, timeout=2)
    assert others_pass(report, "dgamma")
    assert "timed out" not in (result(report, "dgamma").diagnosis or "")


@pytest.mark.parametrize("where", ["in a formula", "at import"])
def test_stray_input_changes_nothing(plant, where):
    """Found while writing these tests: the child's stdin is /dev/null, so
    input() raised EOFError (the formula FAILed; at the top level the file was
    a UsageError). A stray input() now reads an empty line."""
    if where == "in a formula":
        path = plant("bn-relu", "dgamma", """
            def dgamma(dZ, Yhat):
                input("press enter")
                return (dZ * Yhat).sum(axis=0)
            """)
    else:
        path = plant("bn-relu", extra='answer = input("ready? ")')
    report = check(path)
    assert report.passed, report.table()


# ---------------------------------------------------------------- TODO
def test_not_implemented_is_todo(plant):
    path = plant("bn-relu", "dv", "def dv(dYhat, Y, m, v, eps):\n    raise NotImplementedError")
    report = check(path)
    dv = result(report, "dv")
    assert dv.verdict == "TODO" and dv.diagnosis == "raises NotImplementedError"
    assert report.passed and report.exit_code == 0      # TODO allowed ...
    assert "dv" not in report.chain["run"]
    assert report.table().splitlines()[-1] == "10 passed, 0 failed, 1 TODO of 11"
    strict = check(path, strict=True)                    # ... unless strict
    assert not strict.passed and strict.exit_code == 1
    assert strict.table().endswith("(strict: TODO fails)")


def test_undefined_formula_is_todo(plant):
    text = file_for("bn-relu").read_text()
    start = text.index("def dv(")
    path = plant("bn-relu", text=text[:start] + text[text.index("def dm("):])
    report = check(path)
    assert result(report, "dv").verdict == "TODO"
    assert result(report, "dv").diagnosis == "not defined"
    assert not check(path, strict=True).passed


def test_the_template_is_all_todo(tmp_path):
    from nnkit.derivation_check import template
    path = tmp_path / "mine.py"
    path.write_text(template("bn-relu"))
    report = check(str(path))
    assert set(verdicts(report).values()) == {"TODO"}
    assert report.chain["run"] == [] and report.chain["first_wrong"] is None
    assert "nothing derived to chain" in report.table()
    assert not check(str(path), strict=True).passed


def test_not_implemented_on_some_configurations_is_not_a_pass(plant):
    """Found while writing these tests: the calls that raised NotImplementedError
    were skipped and the rest judged, so a formula stubbed for batch norm only
    was PASS, even with strict=True."""
    path = plant("norms", "dX", """
        def dX(dXhat, dv, dm, X, m, v, eps, norm):
            if norm == "batch":
                raise NotImplementedError
            n = _n(X, norm)
            Xc = X - _expand(m, norm)
            return (dXhat / np.sqrt(_expand(v, norm) + eps)
                    + _expand(dv, norm) * 2.0 * Xc / n + _expand(dm, norm) / n)
        """)
    configs = [dict(norm="layer"), dict(norm="batch")]
    for strict in (False, True):
        report = nk.check_derivation(path, strict=strict, configs=configs)
        assert not report.passed, report.table()
        dx = result(report, "dX")
        assert dx.verdict == "FAIL"
        assert "NotImplementedError" in dx.diagnosis, dx.diagnosis


# ------------------------------------------------------------- usage errors
def test_syntax_error_is_a_usage_error_naming_the_line(plant):
    text = file_for("bn-relu").read_text().replace("def dm(dYhat", "def dm(dYhat,, ")
    path = plant("bn-relu", text=text)
    with pytest.raises(UsageError) as e:
        check(path)
    assert str(e.value) == f"{path}, line {line_of(path, 'def dm(')}: SyntaxError: invalid syntax"


def test_unclosed_bracket_is_a_usage_error(plant):
    path = plant("bn-relu", extra="def dq(\n")
    with pytest.raises(UsageError, match=r", line \d+: SyntaxError: '\(' was never closed"):
        check(path)


def test_error_at_import_is_a_usage_error(plant):
    with pytest.raises(UsageError, match=r"ModuleNotFoundError: No module named 'torchh'"):
        check(plant("bn-relu", extra="import torchh"))
    with pytest.raises(UsageError, match=r"the file called sys.exit\(2\) when imported"):
        check(plant("bn-relu", extra="import sys\nsys.exit(2)"))


@pytest.mark.parametrize("name", ["dQ", "dgama", "dG", "dL"])
def test_function_for_no_node_is_a_usage_error(plant, name):
    """A misspelt gradient, a constant's (G) and the loss's: not a gradient to check."""
    path = plant("bn-relu", extra=f"def {name}(dY):\n    return dY")
    with pytest.raises(UsageError) as e:
        check(path)
    msg = str(e.value)
    assert msg.startswith(f"{name}: not a gradient of walkthrough 'bn-relu'")
    assert ", ".join(valid_names("bn-relu")) in msg
    assert "helpers start with an underscore" in msg


def test_public_helpers_not_named_d_are_allowed(plant):
    report = check(plant("bn-relu", extra="def centre(Y, m):\n    return Y - m"))
    assert report.passed


def test_unknown_or_missing_walkthrough(plant):
    text = file_for("bn-relu").read_text()
    with pytest.raises(UsageError, match=r"walkthrough: expected one of \[.*'bn-relu'.*\], "
                                         r"got 'bn-reluu'"):
        check(plant("bn-relu", text=text.replace('"bn-relu"', '"bn-reluu"')))
    nameless = plant("bn-relu", text=text.replace('WALKTHROUGH = "bn-relu"', ""))
    with pytest.raises(UsageError, match=r"walkthrough: name it .*expected one of .*birnn, bn-relu"):
        check(nameless)
    assert check(nameless, walkthrough="bn-relu").passed


def test_no_such_file():
    with pytest.raises(UsageError, match="no such file"):
        nk.check_derivation("/nonexistent/derivation.py")
    with pytest.raises(TypeError, match="source: expected a file path, a module or a dict"):
        nk.check_derivation(42)


def test_step_names_bind_only_in_step_functions(plant):
    """t and h_prev exist in a step function (dh); a weight's formula has no t."""
    path = plant("rnn", "dWh", "def dWh(da, h_prev, t):\n    return da[t].T @ h_prev")
    report = nk.check_derivation(path, configs=[{}])
    diagnosis = failed_alone(report, "dWh")
    assert diagnosis.startswith("argument 'h_prev' is not a node")


# ------------------------------------------------------------- regressions
@pytest.mark.parametrize("how", ["os._exit", "endless loop"])
def test_a_formula_that_ended_its_run_is_not_called_again(plant, tmp_path, how):
    """Found while writing these tests: the chained run called every formula
    not TODO once per configuration (a step function once per step), even one
    whose own run had timed out or ended the child, restarting the child each
    time: a hanging formula cost a full timeout per configuration (bn-relu,
    timeout=1: 9.6 s instead of ~1 s; rnn at the default timeout=5: 37 calls,
    over 3 minutes). It is called once, and its chain verdict is FAIL."""
    calls = tmp_path / "calls.txt"
    end = "import os\n    os._exit(3)" if how == "os._exit" else "while True:\n        pass"
    path = plant("bn-relu", "dgamma",
                 f"def dgamma(dZ, Yhat):\n    with open({str(calls)!r}, 'a') as f:\n"
                 f"        f.write('x')\n    {end}")
    report = nk.check_derivation(path, timeout=1, configs=[dict(B=2, N=3, M=4)] + CONFIGS)
    assert result(report, "dgamma").verdict == "FAIL"
    assert len(calls.read_text()) == 1
    assert others_pass(report, "dgamma")
    assert report.chain["first_wrong"] == "dgamma"
    assert result(report, "dgamma").chain == "FAIL"


@pytest.mark.parametrize("value", ["np.nan", "np.inf"])
def test_non_finite_values_leave_the_truth_in_the_chain(plant, value):
    """Found while writing these tests: the chain compared with np.nanmax, so a
    dv of NaN "agreed" with the truth (chain PASS, "your formulas fed their own
    results agree with the truth") and the NaN it made downstream agreed too (an
    inf dv spoiled dm and dY, not the NaN-filled db, dW and dX)."""
    path = plant("bn-relu", "dv", f"def dv(v):\n    return np.full(v.shape, {value})")
    report = check(path)
    assert result(report, "dv").verdict == "FAIL"
    assert report.chain["first_wrong"] == "dv"
    assert result(report, "dv").chain == "FAIL"
    # everything downstream of v that reads it is fed the non-finite dv
    assert set(report.chain["spoiled"]) >= {"dY", "dW", "dX"}
