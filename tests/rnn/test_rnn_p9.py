"""P9.1–P9.3 numerically: the preactivation form, the vanishing bound, the lessons."""
import numpy as np
import pytest

import nnkit as nk
from rnn_reference import (ACTS, _df, _f, make_rnn, preact_bptt_ref, preact_ref,
                           rnn_bptt_ref, rnn_ref)


# ----------------------------------------------------- P9.2 (vanishing)
@pytest.mark.parametrize("act,gamma", [("sigmoid", 0.25), ("tanh", 1.0)])
@pytest.mark.parametrize("T", [1, 3, 10, 25, 50])
@pytest.mark.parametrize("draw", range(3))
def test_p9_2_vanishing_bound(act, gamma, T, draw):
    """|σ′| ≤ γ and λ1(WᵀW) < δ²/γ² ⇒ ||∂h_T/∂h_0|| ≤ δ^T.

    The Jacobian ∏_t diag(σ′(a_t)) W is built here from the reference's
    pre-activations, and read from the kernel too: with B = M identical
    samples and dH_T = I (zero elsewhere), the backward's dh0 is ∂h_T/∂h_0.
    """
    rng = np.random.default_rng(100 + draw)
    M, N, delta = 4, 3, [0.9, 0.99, 0.5][draw]
    W = rng.standard_normal((M, M))
    W *= 0.99 * (delta / gamma) / np.sqrt(np.linalg.eigvalsh(W.T @ W)[-1])
    assert np.linalg.eigvalsh(W.T @ W)[-1] < delta ** 2 / gamma ** 2
    Wx = rng.standard_normal((M, N))
    x = rng.standard_normal((T, 1, N))
    h0 = rng.standard_normal((1, M))
    _, A = rnn_ref(x, h0, Wx, W, None, act)
    J = np.eye(M)
    for t in range(T):
        J = (_df(act, A[t, 0])[:, None] * W) @ J
    assert np.linalg.norm(J, 2) <= delta ** T
    # the same Jacobian from the kernel's BPTT
    X = np.repeat(x, M, axis=1)
    H, cache = nk.rnn_forward(X, np.repeat(h0, M, axis=0), Wx, W, None, act)
    dH = np.zeros_like(H)
    dH[-1] = np.eye(M)
    np.testing.assert_allclose(nk.rnn_backward(dH, cache).dh0, J, rtol=1e-10, atol=1e-14)


# ------------------------------------------- P9.1 (the preactivation form)
@pytest.mark.parametrize("act", ACTS)
def test_preactivation_form_against_its_reference(act, dtype, rng, ref):
    p = make_rnn(rng, 6, 3, 4, 5, dtype)
    H, cache = nk.rnn_forward(**p, activation=act, form="preactivation")
    dH = rng.standard_normal(H.shape).astype(dtype)
    g = nk.rnn_backward(dH, cache)
    r = preact_bptt_ref(dH, **p, act=act)
    tol = ref.RTOL[dtype] * (1 if dtype == np.float64 else 10)
    ref.assert_rel(H, r["H"], tol, "H")
    for name in ("dX", "dh0", "dWx", "dWh", "db", "dA", "dh"):
        ref.assert_rel(getattr(g, name), r[name], tol, name)
    np.testing.assert_allclose(g.grad_norms, np.sqrt((r["dh"] ** 2).sum(axis=(1, 2))),
                               rtol=tol * 10)


@pytest.mark.parametrize("act", ACTS)
def test_p9_1_preactivation_form_is_the_standard_form(act, rng):
    """h_t = W σ(h_{t−1}) + U x_t + b is g_t = σ(W g_{t−1} + U x_t + b) under
    g_t = σ(h_t): run from h_0 and from g_0 = σ(h_0) with the same weights,
    σ(H_pre) equals H_std at every step. The gradients agree too: a loss
    L = Σ G_t ⊙ g_t asks dH_pre = G ⊙ σ′(h_t) of the preactivation states,
    and both forms then give the same ∂L/∂Wx, ∂L/∂Wh, ∂L/∂b, ∂L/∂X."""
    p = make_rnn(rng, 8, 3, 4, 5)
    Hp, cp = nk.rnn_forward(**p, activation=act, form="preactivation")
    q = dict(p, h0=_f(act, p["h0"]))
    Hs, cs = nk.rnn_forward(**q, activation=act)
    np.testing.assert_allclose(_f(act, Hp), Hs, rtol=1e-13, atol=1e-14)
    # the induction step: h_t = W g_{t−1} + U x_t + b with g the standard states
    prev = np.concatenate([q["h0"][None], Hs[:-1]])
    np.testing.assert_allclose(Hp, prev @ p["Wh"].T + p["X"] @ p["Wx"].T + p["b"],
                               rtol=1e-12, atol=1e-13)
    G = rng.standard_normal(Hs.shape)
    gs = nk.rnn_backward(G, cs)
    gp = nk.rnn_backward(G * _df(act, Hp), cp)
    for name in ("dX", "dWx", "dWh", "db"):
        np.testing.assert_allclose(getattr(gp, name), getattr(gs, name), rtol=1e-11,
                                   atol=1e-13, err_msg=name)
    # ∂L/∂h_0 by the chain rule through g_0 = σ(h_0)
    np.testing.assert_allclose(gp.dh0, gs.dh0 * _df(act, p["h0"]), rtol=1e-11, atol=1e-13)


def test_preactivation_gradcheck(dtype, rng):
    p = make_rnn(rng, 4, 2, 3, 3, dtype)
    rep = nk.gradcheck(lambda **k: nk.rnn_forward(**k, form="preactivation"),
                       nk.rnn_backward, p)
    assert rep.passed, rep.table()


# ------------------------------------------------------------- the lessons
def test_p9_lessons_pass():
    from nnkit.lessons import registry
    reg = registry()
    names = [n for n, les in reg.items() if les.problem.startswith("P9")]
    assert {"p9-1-preactivation-form", "p9-2-vanishing-bound",
            "p9-3-not-sufficient"} <= set(names)
    for n in names:
        res = reg[n].run(0)
        assert res.passed, (n, res.discrepancy, res.tolerance, res.notes)


def test_p9_2_lesson_curves_are_bounded_below_the_threshold():
    from nnkit.lessons import get
    res = get("p9-2-vanishing-bound").run(1)
    below = np.array(res.curves["‖∂h_T/∂h_0‖ (below)"])
    bound = np.array(res.curves["δ^T (below)"])
    assert len(below) == len(bound) >= 30
    assert np.all(below <= bound * (1 + 1e-12))
    above = np.array(res.curves["‖∂h_T/∂h_0‖ (above)"])
    assert above[-1] > below[-1]


def test_p9_3_counterexample_is_real():
    """The lesson's W has λ1(WᵀW) ≥ δ²/γ² for δ = 1 (the reversed condition)
    and yet ||∂h_T/∂h_0|| decays: recomputed here from its data."""
    from nnkit.lessons import get
    res = get("p9-3-not-sufficient").run(0)
    row = res.rows[0]
    assert row["γ²·λ1(WᵀW)"] >= 1.0
    norms = np.array(res.curves["‖∂h_T/∂h_0‖"])
    assert norms[-1] < 1e-3 * norms[0]
