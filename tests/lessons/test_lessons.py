"""Every registered lesson passes (including lessons added later: the registry is
iterated), and `nnkit lessons` turns a failing one into exit status 1."""
import json

import numpy as np

import pytest

from nnkit import cli
from nnkit.lessons import _REGISTRY, Result, lesson, registry

NAMES = list(registry())


def test_registry_has_the_problem_set():
    problems = {les.problem for les in registry().values()}
    assert problems >= {f"P{i}" for i in range(1, 11)}, sorted(problems)
    assert len(NAMES) >= 25


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
    assert by["p8-norm-axes"]["rows"][0]["mean shape"] == "(4,)"       # batch norm's: (C,)
    assert by["p8-norm-axes"]["rows"][3]["mean shape"] == "(4, 2)"     # group norm's: (B, G)


def test_cli_usage(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["lessons", "no-such-lesson"])
    assert e.value.code == 2
    assert cli.main(["lessons", "--list"]) == 0
    assert "p6-dropout-expectation" in capsys.readouterr().out


# A lesson that cannot fail checks nothing: plant a wrong kernel (or a wrong
# shape calculator) under each of the P1, P2, P3 and P10 lessons (and the
# whitening eigengap and the P8 norm lessons) and it fails.
def _scaled(fn, field, factor):
    def wrong(*a, **k):
        r = fn(*a, **k)
        return r._replace(**{field: getattr(r, field) * factor})
    return wrong


def _mutants():
    """name -> (module, attribute, wrong version); the originals are captured
    here, before any patch."""
    import nnkit.batchnorm as bn
    import nnkit.conv as conv
    import nnkit.conv_shapes as cs
    import nnkit.dense as dense
    import nnkit.norms as norms
    import nnkit.whitening as wh
    bn_forward, out_shape = bn.batchnorm_forward, cs.conv2d_output_shape
    solve, avg_backward = cs.solve_bottleneck, conv.avgpool2d_backward
    gn_forward = norms.groupnorm_forward

    def no_eps_forward(Y, gamma, beta, eps=1e-5, **kw):      # Ŷ = (Y − m)/√v: ε ignored
        Z, c = bn_forward(Y, gamma, beta, eps, **kw)
        return Z, type(c)(**{**c.__dict__, "inv_std": 1.0 / np.sqrt(c.var)})

    def zero_eps_kept(Y, gamma, beta, eps=1e-5, **kw):       # ε = 0 silently made 1e-12
        return bn_forward(Y, gamma, beta, max(eps, 1e-12), **kw)

    def shape_plus_one(*a, **k):
        s = out_shape(*a, **k)
        return (s[0], s[1] + 1) + tuple(s[2:])

    def widths_short(*a, **k):
        s = solve(*a, **k)
        return s._replace(widths=s.widths[:-1])

    def interleaved_groups(X, gamma, beta, num_groups, *a, **k):
        # groups of channels c ≡ g (mod G) instead of consecutive channels:
        # the same with 1 group or C groups, wrong in between
        C = X.shape[1]
        perm = np.argsort(np.arange(C) % num_groups, kind="stable")
        Z, c = gn_forward(X[:, perm], gamma[perm], beta[perm], num_groups, *a, **k)
        return Z[:, np.argsort(perm)], c

    return {
        "p1-affine-backward": (dense, "affine_backward",
                               _scaled(dense.affine_backward, "db", 2.0)),
        "p2-bn-epsilon": (bn, "batchnorm_forward", zero_eps_kept),
        "p2-bn-moments": (bn, "batchnorm_forward", no_eps_forward),
        "p2-bn-total-derivatives": (bn, "bn_relu_backward",
                                    _scaled(bn.bn_relu_backward, "dmean", 1.001)),
        "p2-bn-jacobian": (bn, "bn_relu_backward", _scaled(bn.bn_relu_backward, "dY", 1.01)),
        "p3-conv-output-shape": (cs, "conv2d_output_shape", shape_plus_one),
        "p3-bottleneck": (cs, "solve_bottleneck", widths_short),
        "p2-whitening-eigengap": (wh, "whitening_backward",
                                  _scaled(wh.whitening_backward, "dcov", 1.001)),
        "p10-pool-gradients": (conv, "avgpool2d_backward",
                               lambda *a, **k: avg_backward(*a, **k) * 1.001),
        "p8-norm-axes": (norms, "groupnorm_forward", interleaved_groups),
        "p8-groupnorm-limits": (norms, "groupnorm_backward",
                                _scaled(norms.groupnorm_backward, "dgamma", 1.001)),
    }


@pytest.mark.parametrize("name", ["p1-affine-backward", "p2-bn-epsilon", "p2-bn-moments",
                                  "p2-bn-total-derivatives", "p2-bn-jacobian",
                                  "p2-whitening-eigengap", "p3-conv-output-shape",
                                  "p3-bottleneck", "p10-pool-gradients", "p8-norm-axes",
                                  "p8-groupnorm-limits"])
def test_lesson_fails_on_a_planted_error(name, monkeypatch):
    module, attr, wrong = _mutants()[name]
    monkeypatch.setattr(module, attr, wrong)
    r = registry()[name].run(0)
    assert not r.passed, f"{name} passed with {module.__name__}.{attr} wrong"


# p9-lstm-carry (the LSTM's carry): a kernel that carries the wrong forget gate, per-step
# norms that are not the norms of the per-step gradients, and a wrong claim
# (no forget-gate bias: f ≈ ½ and the cell gradient vanishes too) each fail it.
def _lstm_mutants():
    import dataclasses

    import nnkit.gated as gated
    import nnkit.lessons.p9_lstm as p9_lstm
    backward = gated.lstm_backward

    def carries_f_t(dH, cache, **kw):          # dc_{t−1} = f_{t−1} ⊙ dc_t (an index slip)
        H = cache.H.shape[2]
        gates = cache.gates.copy()
        gates[1:, :, H:2 * H] = cache.gates[:-1, :, H:2 * H]
        return backward(dH, dataclasses.replace(cache, gates=gates), **kw)

    def norms_off(dH, cache, **kw):
        g = backward(dH, cache, **kw)
        return g._replace(cell_norms=g.cell_norms * 1.001)

    return {"carries f_t": (gated, "lstm_backward", carries_f_t),
            "cell_norms off": (gated, "lstm_backward", norms_off),
            "no forget bias": (p9_lstm, "FORGET_BIAS", 0.0)}


@pytest.mark.parametrize("mutant", ["carries f_t", "cell_norms off", "no forget bias"])
def test_lstm_carry_lesson_fails_on_a_planted_error(mutant, monkeypatch):
    module, attr, wrong = _lstm_mutants()[mutant]
    monkeypatch.setattr(module, attr, wrong)
    r = registry()["p9-lstm-carry"].run(0)
    assert not r.passed, f"p9-lstm-carry passed with {mutant}"


def test_lstm_carry_lesson_measures_what_it_claims():
    """Its curves are the kernels' per-step norms: the RNN's ‖∂L/∂h_t‖ falls
    below δ^(T−1) of its last value, the LSTM's ‖∂L/∂c_t‖ keeps a tenth."""
    from nnkit.lessons import p9_lstm
    r = registry()["p9-lstm-carry"].run(3)
    curves = list(r.curves.values())
    rnn_h, lstm_c = np.array(curves[0]), np.array(curves[1])
    assert len(rnn_h) == len(lstm_c) == p9_lstm.T
    assert rnn_h[0] / rnn_h[-1] <= p9_lstm.DELTA ** (p9_lstm.T - 1)
    assert lstm_c[0] / lstm_c[-1] >= 0.1
