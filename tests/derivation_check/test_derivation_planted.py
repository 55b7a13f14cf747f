"""Issue 26: planted mistakes, one per diagnosis class. Each planted file is a
correct derivation (files/) with one formula replaced; the report must FAIL
that formula only, say what is wrong with it, and the chained run must name
where the student's own backward pass first leaves the truth."""
from __future__ import annotations

import pytest

import nnkit as nk

from derivation_helpers import others_pass, result


# A few of each walkthrough's check configurations keep the file fast (each
# check runs every formula of the file); a test that needs them all says full=True.
SMALL = {
    "bn-relu": [dict(B=2, N=3, M=4), dict(B=4, N=3, M=5), dict(B=7, N=5, M=3, seed=1)],
    "rnn": [{}, dict(T=1, B=1, N=1, M=1), dict(activation="sigmoid", w_scale=3.0, seed=2)],
    "birnn": [{}, dict(T=4, activation="tanh", seed=2)],
    "norms": [dict(norm="layer"), dict(norm="batch", B=3, C=3, F=5, seed=1)],
    "whitening-zca": [dict(B=6, N=4, M=4, seed=1), dict(B=9, N=4, M=7, group_size=3, seed=2)],
    "whitening-newton": [dict(B=6, N=4, M=4, seed=1),
                         dict(B=9, N=4, M=7, group_size=3, seed=2)],
}


def check(path, full=False, **kw):
    """nk.check_derivation on a few configurations of the walkthrough (in the
    planted file's name), or on all of them (full=True, or configs=...)."""
    if not full and "configs" not in kw:
        for name, configs in SMALL.items():
            if path.endswith("_" + name.replace("-", "_") + ".py"):
                kw["configs"] = configs
    return nk.check_derivation(path, **kw)


def failed_with(report, name):
    """The diagnosis of formula `name`, which FAILs while every other PASSes."""
    r = result(report, name)
    assert r.verdict == "FAIL", report.table()
    assert others_pass(report, name), report.table()
    assert r.diagnosis
    return r.diagnosis


# ------------------------------------------------------------ a constant factor
FACTORS = [
    ("×2", "dgamma", "def dgamma(dZ, Yhat):\n    return 2 * (dZ * Yhat).sum(axis=0)",
     "off by a factor ×2"),
    ("×−1", "dgamma", "def dgamma(dZ, Yhat):\n    return -(dZ * Yhat).sum(axis=0)",
     "off by a factor ×−1 (the sign)"),
    ("×½", "dbeta", "def dbeta(dZ):\n    return 0.5 * dZ.sum(axis=0)", "off by a factor ×½"),
    ("×B", "dbeta", "def dbeta(dZ, B):\n    return B * dZ.sum(axis=0)", "off by a factor ×B"),
    # a mean where P1 says sum
    ("×1/B", "dbeta", "def dbeta(dZ):\n    return dZ.mean(axis=0)", "off by a factor ×1/B"),
    ("×B/(B−1)", "dbeta", "def dbeta(dZ, B):\n    return B / (B - 1) * dZ.sum(axis=0)",
     "off by a factor ×B/(B−1) (the unbiased-variance slip"),
    # the unbiased variance in dv: the same slip, in the formula P2.3 warns about
    ("dv ×B/(B−1)", "dv",
     "def dv(dYhat, Y, m, v, eps, B):\n"
     "    return (dYhat * (Y - m)).sum(axis=0) / (B - 1) * B * -0.5 * (v + eps) ** -1.5",
     "off by a factor ×B/(B−1) (the unbiased-variance slip: divide by B, not B − 1)"),
]


@pytest.mark.parametrize("name, source, expected", [f[1:] for f in FACTORS],
                         ids=[f[0] for f in FACTORS])
def test_constant_factor(plant, name, source, expected):
    report = check(plant("bn-relu", name, source))
    diagnosis = failed_with(report, name)
    assert diagnosis.startswith(expected), diagnosis
    assert not report.passed and report.exit_code == 1


def test_factor_in_another_walkthrough(plant):
    """The same reading on a matrix gradient of whitening (dΣ) and of the RNN (a step function)."""
    report = check(plant("whitening-zca", "dSigma", """
        def dSigma(dYhat, Y, m, Sigma, method, iterations, group_size):
            Wbar = (Y - m).T @ dYhat
            Ss = _sym(Sigma)
            out = np.zeros_like(Ss)
            for c, k in _groups(Ss.shape[0], group_size):
                blk = slice(c, c + k)
                out[blk, blk] = _whiten_back(Ss[blk, blk], Wbar[blk, blk], method, iterations)
            return -out
        """))
    assert failed_with(report, "dSigma") == "off by a factor ×−1 (the sign)"
    report = check(plant("rnn", "da", """
        def da(t, dh, h):
            return 0.5 * dh[t] * (1 - h[t] ** 2)
        """), configs=[{}, dict(T=6, B=3, N=4, M=5, seed=1)])   # tanh only
    assert failed_with(report, "da") == "off by a factor ×½"


# --------------------------------------------------------------- transposed
def test_transposed_dW_wrong_shape(plant):
    """dW = Xᵀ dY instead of dYᵀ X: (N, M) where (M, N) is wanted."""
    report = check(plant("bn-relu", "dW", "def dW(dY, X):\n    return X.T @ dY"))
    diagnosis = failed_with(report, "dW")
    assert diagnosis.startswith("wrong shape: expected (M, N)"), diagnosis
    assert diagnosis.endswith(": transposed"), diagnosis


def test_transposed_dW_square(plant):
    """With M = N the shape is right and the values are the transpose."""
    report = check(plant("bn-relu", "dW", "def dW(dY, X):\n    return X.T @ dY"),
                   configs=[dict(B=4, N=3, M=3), dict(B=6, N=4, M=4, seed=1)])
    assert failed_with(report, "dW") == "transposed: the right matrix, rows and columns swapped"


# ----------------------------------------------- a missing sum, the wrong axis
def test_missing_sum(plant):
    """dβ returning dZ itself: P1's Σ_rows forgotten."""
    report = check(plant("bn-relu", "dbeta", "def dbeta(dZ):\n    return dZ"))
    diagnosis = failed_with(report, "dbeta")
    assert diagnosis.startswith("wrong shape: expected (M,)"), diagnosis
    assert "a missing sum over axis 0" in diagnosis


def test_missing_sum_over_steps(plant):
    """dWh from the last step only is not a missing *sum* of shape: the shape
    is right, and each configuration's values are wrong (right at T = 1)."""
    report = check(plant("rnn", "dWh", """
        def dWh(da, h, T):
            return da[T].T @ h[T - 1]
        """))
    diagnosis = failed_with(report, "dWh")
    assert diagnosis.startswith("right at T=1"), diagnosis


def test_reduction_over_the_wrong_axis(plant):
    report = check(plant("bn-relu", "dbeta", "def dbeta(dZ):\n    return dZ.sum(axis=1)"))
    diagnosis = failed_with(report, "dbeta")
    assert diagnosis.startswith("wrong shape: expected (M,)"), diagnosis
    assert "(a reduction over the wrong axis?)" in diagnosis


def test_norms_reduction_over_the_wrong_axes(plant):
    """Layer norm's γ is (C, F): summing over (0, 2) as batch norm does gives (C,)."""
    report = check(plant("norms", "dbeta", "def dbeta(dZ):\n    return dZ.sum(axis=(0, 2))"))
    diagnosis = failed_with(report, "dbeta")
    assert "wrong shape: expected (C, F)" in diagnosis, diagnosis


# ------------------------------------------------- right at some sizes only
def test_right_at_some_batch_sizes_only(plant):
    """dY with the example's B = 4 written in: right at B = 4 only."""
    report = check(plant("bn-relu", "dY", """
        def dY(dYhat, dv, dm, Y, m, v, eps):
            return dYhat / np.sqrt(v + eps) + dv * 2 * (Y - m) / 4 + dm / 4
        """), full=True)
    diagnosis = failed_with(report, "dY")
    assert diagnosis.startswith("right at B=4"), diagnosis
    right, wrong = diagnosis[len("right at "):].split(", wrong at ")
    assert "B=4" in right and "B=4" not in wrong
    assert "B=2" in wrong and "B=16" in wrong


def test_wrong_at_some_steps_only(plant):
    """The carried term forgotten: right at t = T (nothing carried), wrong before."""
    report = check(plant("birnn", "dhf", """
        def dhf(t, dy, Wy, M):
            return dy[t] @ Wy[:, :M]
        """))
    diagnosis = failed_with(report, "dhf")
    assert diagnosis.startswith("missing the term (∂L/∂h^f_{t+1} ⊙ σ′) W^f "
                                "(carried from t + 1); wrong at t = 0, 1"), diagnosis
    assert diagnosis.endswith(" only")


# ----------------------------------------------------------------- the terms
DY = "def dY(dYhat, dv, dm, Y, m, v, eps, B):\n    return {}"
TERMS = [
    # P2.3's dY without ∂L/∂v: the "m and v are constants" slip
    ("missing", "dYhat / np.sqrt(v + eps) + dm / B",
     "missing the term ∂L/∂v·2(Y−m)/B"),
    ("missing dm", "dYhat / np.sqrt(v + eps) + dv * 2 * (Y - m) / B",
     "missing the term ∂L/∂m/B"),
    ("extra", "dYhat / np.sqrt(v + eps) + dv * 2 * (Y - m) / B + 2 * dm / B",
     "extra term ∂L/∂m/B (counted twice)"),
    ("extra direct", "2 * dYhat / np.sqrt(v + eps) + dv * 2 * (Y - m) / B + dm / B",
     "extra term ∂L/∂Ŷ/√(v+ε) (counted twice)"),
    ("sign", "dYhat / np.sqrt(v + eps) - dv * 2 * (Y - m) / B + dm / B",
     "the term ∂L/∂v·2(Y−m)/B has the wrong sign"),
    ("unbiased", "dYhat / np.sqrt(v + eps) + dv * 2 * (Y - m) / (B - 1) + dm / B",
     "the term ∂L/∂v·2(Y−m)/B is off by a factor ×B/(B−1) "
     "(the unbiased-variance slip: divide by B, not B − 1)"),
]


@pytest.mark.parametrize("body, expected", [t[1:] for t in TERMS], ids=[t[0] for t in TERMS])
def test_bn_relu_dY_terms(plant, body, expected):
    report = check(plant("bn-relu", "dY", DY.format(body)))
    assert failed_with(report, "dY") == expected
    # the chain: dY is the first to leave the truth; dW and dX (right on
    # their own) read it
    assert report.chain["first_wrong"] == "dY"
    assert report.chain["first_wrong_node"] == "Y"
    assert {"dW", "dX"} <= set(report.chain["spoiled"])


def test_bn_relu_dm_without_its_dv_term_is_right(plant):
    """Not a planted mistake: dm's ∂L/∂v term carries Σ_i (Y − m) = 0, so
    dropping it leaves dm right (P2.3 writes it for the derivation's sake)."""
    report = check(plant("bn-relu", "dm", """
        def dm(dYhat, v, eps):
            return -(dYhat / np.sqrt(v + eps)).sum(axis=0)
        """))
    assert report.passed, report.table()


def test_rnn_dh_without_the_carried_term(plant):
    """P9's BPTT: ∂L/∂h_t = G_t + ∂L/∂a_{t+1} Wh; the carried term forgotten."""
    report = check(plant("rnn", "dh", """
        def dh(t, G, h):
            return G[t] if t >= 1 else np.zeros_like(h[0])
        """))
    diagnosis = failed_with(report, "dh")
    assert diagnosis.startswith("missing the term ∂L/∂a_{t+1} Wh (the carried term)"), diagnosis
    assert report.chain["first_wrong"] == "dh"


def test_rnn_dh_carried_term_twice(plant):
    report = check(plant("rnn", "dh", """
        def dh(t, G, da, Wh):
            return (G[t] if t >= 1 else 0) + 2 * da[t + 1] @ Wh
        """))
    diagnosis = failed_with(report, "dh")
    assert diagnosis.startswith("extra term ∂L/∂a_{t+1} Wh (the carried term) (counted twice)")


def test_rnn_dh_without_the_direct_term(plant):
    report = check(plant("rnn", "dh", """
        def dh(t, da, Wh):
            return da[t + 1] @ Wh
        """))
    diagnosis = failed_with(report, "dh")
    assert diagnosis.startswith("missing the term G_t (the direct term)"), diagnosis


# ------------------------------------------------------------------ the chain
def test_chain_names_a_wrong_dv_and_what_it_spoils(plant):
    """A wrong dv (×2) reaches dY, and through dY dW and dX, which are right
    on their own. dm and db are not spoiled, and rightly: dv enters dm times
    Σ_i (Y − m) = 0, and dY's dv term sums to 0 over the batch in db."""
    report = check(plant("bn-relu", "dv", """
        def dv(dYhat, Y, m, v, eps):
            return (dYhat * (Y - m)).sum(axis=0) * -1.0 * (v + eps) ** -1.5
        """), full=True)
    assert failed_with(report, "dv") == "off by a factor ×2"
    chain = report.chain
    assert chain["first_wrong"] == "dv"
    assert chain["first_wrong_node"] == "v"
    assert chain["spoiled"] == ["dY", "dW", "dX"]
    assert chain["config"] is not None and "B" in chain["config"]
    for name in ("dY", "dW", "dX"):
        assert result(report, name).verdict == "PASS"
        assert result(report, name).chain == "FAIL"
    for name in ("dH", "dZ", "dbeta", "dgamma", "dYhat", "dm", "db"):
        assert result(report, name).chain == "PASS"
    assert result(report, "dv").chain == "FAIL"
    line = report.table().splitlines()[-2]
    assert line == ("chain: leaves the truth at dv (node v); it spoils dY, dW, dX "
                    "downstream (right on their own)")


def test_chain_in_time(plant):
    """RNN: a wrong da at the last step (the first the backward pass reaches)
    spoils dh at the earlier steps and every weight gradient."""
    report = check(plant("rnn", "da", """
        def da(t, dh, h, activation):
            return 2 * dh[t] * _dact(h[t], activation)
        """))
    assert failed_with(report, "da") == "off by a factor ×2"
    assert report.chain["first_wrong"] == "da"
    assert report.chain["first_wrong_node"] == "a[4]"           # T = 4: the last step
    assert report.chain["spoiled"] == ["dh", "dx", "db", "dWh", "dWx"]


def test_chain_through_a_matrix_node(plant):
    """Whitening: a wrong dΣ spoils dY, dW, dX (dm's Σ term carries Σ_i Yc = 0,
    so dm and db are not)."""
    report = check(plant("whitening-newton", "dSigma", """
        def dSigma(dYhat, Y, m, Sigma, method, iterations, group_size):
            Wbar = (Y - m).T @ dYhat
            Ss = _sym(Sigma)
            out = np.zeros_like(Ss)
            for c, k in _groups(Ss.shape[0], group_size):
                blk = slice(c, c + k)
                out[blk, blk] = _whiten_back(Ss[blk, blk], Wbar[blk, blk], method, iterations)
            return 2 * out
        """))
    assert failed_with(report, "dSigma") == "off by a factor ×2"
    assert report.chain["first_wrong"] == "dSigma"
    assert report.chain["spoiled"] == ["dY", "dW", "dX"]


# ------------------------------------------------------------- regressions
def test_right_at_some_configurations_names_what_differs(plant):
    """dZ written for class indices only (the soft targets read as their arg-max).
    Found while writing these tests: the configurations were described by
    B/T/N/M only, "right at ... B=4, N=3 ..., wrong at B=4, N=3; B=9, N=4" (the
    same on both sides), never naming `targets`, the one that tells them apart."""
    report = check(plant("mlp", "dZ", """
        def dZ(Z, y, B):
            e = np.exp(Z - Z.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
            p[np.arange(B), y if np.ndim(y) == 1 else np.argmax(y, axis=1)] -= 1
            return p / B
        """), full=True)
    diagnosis = failed_with(report, "dZ")
    assert diagnosis.startswith("right at "), diagnosis
    right, wrong = diagnosis[len("right at "):].split(", wrong at ")
    assert not set(right.split("; ")) & set(wrong.split("; ")), diagnosis
    assert "targets" in diagnosis


# ------------------------------------------------------------- known defects
SYMBOLIC = [
    # walkthrough, formula, its planted body (a missing sum), symbolic shape, template line
    ("whitening-zca", "dbeta", "def dbeta(dZ):\n    return dZ", "(M,)",
     "def dH(G, H):\n    \"\"\"∂L/∂H, shape (B, M):"),
    ("whitening-newton", "dW", "def dW(dY, X):\n    return X.T @ dY", "(M, N)",
     "def dSigma(dYhat, Y, m, Sigma):\n    \"\"\"∂L/∂Sigma, shape (M, M):"),
    ("conv", "db", "def db(dY):\n    return dY.sum(axis=(0, 2))", "(F,)",
     "def dK(dY, X, b, K):\n    \"\"\"∂L/∂K, shape (F, C, k, k):"),
]


@pytest.mark.parametrize("walkthrough, name, source, shape, stub",
                         SYMBOLIC, ids=[s[0] for s in SYMBOLIC])
def test_shapes_are_named_by_the_walkthroughs_parameters(plant, walkthrough, name, source,
                                                         shape, stub):
    from nnkit.derivation_check import template
    report = check(plant(walkthrough, name, source), configs=[{}])
    diagnosis = failed_with(report, name)
    assert diagnosis.startswith(f"wrong shape: expected {shape} = "), diagnosis
    assert stub in template(walkthrough)
