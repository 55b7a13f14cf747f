"""Whitening batch norm (P2.4): forward properties, gradients against finite
differences and against an independent NumPy reference, float32 vs float64,
bad input, the layer, and the walkthroughs.

The reference below is written here from the textbook formulas and shares no
code with nnkit.whitening: the ZCA backward solves the Sylvester equation of
Σ^(½) (scipy.linalg.solve_sylvester) instead of using divided differences.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given, strategies as st

import nnkit as nk
from nnkit import whitening as wh
from nnkit.gradcheck import gradcheck
from nnkit.trace import Trace, registry


# ------------------------------------------------------------ reference
def ref_groups(M, g):
    g = g or M
    return [(c, min(g, M - c)) for c in range(0, M, g)]


def ref_whiten(S, method, T=5):
    """W with Ŷ = Yc W, from the definitions (float64)."""
    if method == "zca":
        # Σ^(−½) = (Σ^(½))⁻¹ via scipy's matrix square root (Schur based)
        return np.linalg.inv(np.real(sla.sqrtm(S)))
    if method == "pca":
        lam, D = np.linalg.eigh(S)
        for j in range(D.shape[1]):          # largest |entry| positive
            if D[np.argmax(np.abs(D[:, j])), j] < 0:
                D[:, j] *= -1
        return D @ np.diag(lam ** -0.5)
    if method == "cholesky":
        L = np.linalg.cholesky(S)
        return sla.solve_triangular(L, np.eye(len(S)), lower=True).T
    t = np.trace(S)
    P = np.eye(len(S))
    for _ in range(T):
        P = 0.5 * (3 * P - np.linalg.matrix_power(P, 3) @ (S / t))
    return P / np.sqrt(t)


def ref_forward(Y, gamma, beta, eps, method="zca", g=None, T=5, relu=False):
    Y = np.asarray(Y, np.float64)
    B, M = Y.shape
    Yc = Y - Y.mean(axis=0)
    Yh = np.empty_like(Y)
    for c, k in ref_groups(M, g):
        S = Yc[:, c:c + k].T @ Yc[:, c:c + k] / B + eps * np.eye(k)
        Yh[:, c:c + k] = Yc[:, c:c + k] @ ref_whiten(S, method, T)
    Z = gamma * Yh + beta
    return (np.maximum(Z, 0) if relu else Z), Yh


def ref_zca_backward(Y, gamma, beta, eps, dZ, g=None):
    """dY, dgamma, dbeta, dcov (block diagonal) by the Sylvester route.

    R = Σ^(½), W = R⁻¹: dW = −W dR W and R dR + dR R = dΣ, so with
    Ḡ = sym(Ycᵀ dŶ): R̄ = −W Ḡ W and dΣ solves R dΣ + dΣ R = R̄.
    """
    Y = np.asarray(Y, np.float64)
    B, M = Y.shape
    Yc = Y - Y.mean(axis=0)
    _, Yh = ref_forward(Y, gamma, beta, eps, "zca", g)
    dbeta = dZ.sum(axis=0)
    dgamma = (dZ * Yh).sum(axis=0)
    dYh = dZ * gamma
    dYc = np.empty_like(Y)
    dcov = np.zeros((M, M))
    for c, k in ref_groups(M, g):
        Ycg = Yc[:, c:c + k]
        S = Ycg.T @ Ycg / B + eps * np.eye(k)
        R = np.real(sla.sqrtm(S))
        W = np.linalg.inv(R)
        Gs = Ycg.T @ dYh[:, c:c + k]
        Gs = 0.5 * (Gs + Gs.T)
        dS = sla.solve_sylvester(R, R, -W @ Gs @ W)
        dcov[c:c + k, c:c + k] = dS
        dYc[:, c:c + k] = dYh[:, c:c + k] @ W.T + Ycg @ (dS + dS.T) / B
    dY = dYc - dYc.mean(axis=0)
    return dY, dgamma, dbeta, dcov


def data(B, M, seed=0, mix=0.8, dtype=np.float64, offset=3.0):
    """Correlated features with a controlled spectrum (eigenvalues of the mixing in [0.5, 1.5])."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, M))
    Q = np.linalg.qr(rng.standard_normal((M, M)))[0]
    mixing = Q @ np.diag(rng.uniform(0.5, 1.5, M)) @ Q.T + mix * np.ones((M, M)) / M
    Y = X @ mixing + offset
    gamma = 1 + 0.3 * rng.standard_normal(M)
    beta = 0.2 * rng.standard_normal(M)
    G = rng.standard_normal((B, M))
    return [a.astype(dtype) for a in (Y, gamma, beta, G)]


def offdiag(C):
    return np.max(np.abs(C - np.diag(np.diag(C))))


# --------------------------------------------------------------- forward
@pytest.mark.parametrize("eps", [1e-1, 1e-3, 1e-6])
def test_zca_cov_of_yhat_is_sigma_y_times_inverse(eps):
    Y, gm, bt, _ = data(40, 6)
    _, cache = nk.whitening_forward(Y, gm, bt, eps)
    Yc = Y - Y.mean(axis=0)
    SY = Yc.T @ Yc / len(Y)
    pred = SY @ np.linalg.inv(SY + eps * np.eye(6))
    C = cache.yhat.T @ cache.yhat / len(Y)
    np.testing.assert_allclose(C, pred, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cache.yhat.mean(axis=0), 0, atol=1e-13)
    if eps == 1e-6:                             # → I as ε → 0 (B > M, full rank)
        np.testing.assert_allclose(C, np.eye(6), atol=1e-5)


@pytest.mark.parametrize("method", ["zca", "pca", "cholesky"])
def test_methods_whiten(method):
    Y, gm, bt, _ = data(50, 7, seed=1)
    Yc = Y - Y.mean(axis=0)
    assert offdiag(np.corrcoef(Yc.T)) > 0.3      # the input is strongly correlated
    _, cache = nk.whitening_forward(Y, gm, bt, 1e-9, method)
    C = cache.yhat.T @ cache.yhat / len(Y)
    np.testing.assert_allclose(C, np.eye(7), atol=1e-7)


def test_newton_converges_to_zca():
    Y, gm, bt, _ = data(60, 5, seed=2, mix=0.3)
    zca = nk.whitening_forward(Y, gm, bt, 1e-5)[1].yhat
    errs = [np.abs(nk.whitening_forward(Y, gm, bt, 1e-5, "newton", iterations=T)[1].yhat
                   - zca).max() for T in (1, 2, 4, 6, 8)]
    assert all(b < a for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 1e-12, errs
    # the coupled iteration is stable past convergence: more steps never hurt
    for T in (30, 100):
        late = nk.whitening_forward(Y, gm, bt, 1e-5, "newton", iterations=T)[1].yhat
        assert np.abs(late - zca).max() < 1e-12


@pytest.mark.parametrize("method", wh.METHODS)
@pytest.mark.parametrize("g", [None, 3, 4])
@pytest.mark.parametrize("relu", [False, True])
def test_forward_matches_reference(method, g, relu):
    Y, gm, bt, _ = data(20, 7, seed=3)
    fwd = nk.whitening_relu_forward if relu else nk.whitening_forward
    out, cache = fwd(Y, gm, bt, 1e-3, method, g, iterations=7)
    ref, ref_yh = ref_forward(Y, gm, bt, 1e-3, method, g, T=7, relu=relu)
    np.testing.assert_allclose(cache.yhat, ref_yh, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-11)


def test_group_whitening_last_group_smaller():
    Y, gm, bt, _ = data(30, 7, seed=4)
    _, cache = nk.whitening_forward(Y, gm, bt, 1e-3, group_size=3)
    assert [b.shape for b in cache.cov_blocks] == [(3, 3), (3, 3), (1, 1)]
    C = cache.cov
    mask = np.zeros((7, 7), bool)
    for c, k in ((0, 3), (3, 3), (6, 1)):
        mask[c:c + k, c:c + k] = True
    assert np.all(C[~mask] == 0)
    Yc = Y - Y.mean(axis=0)
    np.testing.assert_allclose(C[mask], (Yc.T @ Yc / 30 + 1e-3 * np.eye(7))[mask], rtol=1e-12)
    Cy = cache.yhat.T @ cache.yhat / 30
    # each group whitened, correlations between groups remain
    for c, k in ((0, 3), (3, 3), (6, 1)):
        assert offdiag(Cy[c:c + k, c:c + k]) < 1e-2 if k > 1 else True
    assert offdiag(Cy) > 0.05


def test_small_batch_rank_deficient_reports_condition():
    Y, gm, bt, _ = data(4, 8, seed=5)              # B ≤ M: rank(Σ_Y) ≤ 3
    out, cache = nk.whitening_forward(Y, gm, bt, 1e-5)
    assert np.all(np.isfinite(out))
    lam = np.linalg.eigvalsh(cache.cov)
    assert cache.cond == pytest.approx(lam[-1] / lam[0], rel=1e-6)
    assert cache.cond > 1e4                       # ~ λ_max / ε
    assert len(cache.conds) == 1
    g = nk.whitening_backward(np.ones_like(Y), cache)
    assert all(np.all(np.isfinite(a)) for a in g if a is not None)


# -------------------------------------------------------------- backward
@pytest.mark.parametrize("g", [None, 2, 5])
def test_zca_backward_matches_sylvester_reference(g):
    Y, gm, bt, G = data(25, 6, seed=6)
    _, cache = nk.whitening_forward(Y, gm, bt, 1e-3, "zca", g)
    r = nk.whitening_backward(G, cache)
    dY, dgamma, dbeta, dcov = ref_zca_backward(Y, gm, bt, 1e-3, G, g)
    np.testing.assert_allclose(r.dY, dY, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(r.dgamma, dgamma, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.dbeta, dbeta, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r.dcov, dcov, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(r.dYhat, G * gm, rtol=1e-15)
    np.testing.assert_allclose(r.dcov, r.dcov.T, atol=1e-14)


@pytest.mark.parametrize("method", wh.METHODS)
@pytest.mark.parametrize("g", [None, 4])
@pytest.mark.parametrize("relu", [False, True])
def test_gradcheck_functional(method, g, relu):
    Y, gm, bt, _ = data(9, 5, seed=7)
    fwd = nk.whitening_relu_forward if relu else nk.whitening_forward
    bwd = nk.whitening_relu_backward if relu else nk.whitening_backward

    def f(Y, gamma, beta):
        return fwd(Y, gamma, beta, 1e-3, method, g, iterations=6)

    report = gradcheck(f, bwd, dict(Y=Y, gamma=gm, beta=bt))
    assert report.passed, report.table()


def _equal_eigen_data(B, M, seed=0):
    """Yc with orthogonal columns of equal norm: Σ_Y = I exactly repeated."""
    rng = np.random.default_rng(seed)
    A = np.column_stack([np.ones(B), rng.standard_normal((B, M))])
    Q = np.linalg.qr(A)[0][:, 1:]
    return np.sqrt(B) * Q + rng.standard_normal(M)


@pytest.mark.parametrize("method", ["zca", "newton", "cholesky"])
def test_gradcheck_repeated_eigenvalues(method):
    Y = _equal_eigen_data(10, 4)
    _, cache = nk.whitening_forward(Y, np.ones(4), np.zeros(4), 1e-5, method)
    lam = np.linalg.eigvalsh(cache.cov)
    assert np.ptp(lam) < 1e-14                   # all four eigenvalues equal
    rng = np.random.default_rng(1)
    gm, bt = 1 + 0.3 * rng.standard_normal(4), 0.2 * rng.standard_normal(4)

    def f(Y, gamma, beta):
        return nk.whitening_forward(Y, gamma, beta, 1e-5, method)

    report = gradcheck(f, nk.whitening_backward, dict(Y=Y, gamma=gm, beta=bt))
    assert report.passed, report.table()
    if method == "zca":
        G = rng.standard_normal(Y.shape)
        r = nk.whitening_backward(G, cache)
        ref = ref_zca_backward(Y, gm * 0 + 1, bt * 0, 1e-5, G)
        np.testing.assert_allclose(r.dY, ref[0], rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(r.dcov, ref[3], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", ["whitening-zca", "whitening-newton"])
def test_walkthrough_every_node_float64(name):
    w = registry()[name]
    for cfg in w.check_configs():
        report = Trace(w, **cfg).check_all()
        assert report.passed, report.table()


@pytest.mark.parametrize("method", ["cholesky", "pca"])
def test_walkthrough_other_methods(method):
    # PCA only on full-rank Σ with distinct eigenvalues: its gradient has
    # 1/(λ_j − λ_i) and is undefined at ties (the rank-deficient configs tie at ε)
    for cfg in (dict(B=3, N=2, M=2), dict(B=6, N=4, M=4, seed=1),
                dict(B=9, N=4, M=7, group_size=3, seed=2)):
        report = Trace("whitening-zca", method=method, **cfg).check_all()
        assert report.passed, report.table()


def test_walkthrough_views_and_insights():
    t = Trace("whitening-zca", B=8, N=5, M=5, spectrum="repeated")
    views = t.views("Sigma")
    lam = views["eigenvalues of Σ"]
    np.testing.assert_allclose(lam, np.array([1, 1, 1, 4, 4]) + 1e-5, rtol=1e-10)
    assert views["Cov(Y)"].shape == (5, 5)
    C = t.views("Yhat")["Cov(Ŷ)"]
    np.testing.assert_allclose(C, np.eye(5), atol=1e-4)
    assert any("condition number" in line for line in t.insights("Sigma"))
    assert any("off-diagonal" in line for line in t.insights("Yhat"))


# ----------------------------------------------------- float32 vs float64
@pytest.mark.parametrize("method", wh.METHODS)
@pytest.mark.parametrize("g", [None, 3])
def test_float32_matches_float64(method, g):
    Y, gm, bt, G = data(64, 8, seed=8)
    Y32, gm32, bt32, G32 = (a.astype(np.float32) for a in (Y, gm, bt, G))
    o64, c64 = nk.whitening_relu_forward(Y, gm, bt, 1e-3, method, g)
    o32, c32 = nk.whitening_relu_forward(Y32, gm32, bt32, 1e-3, method, g)
    assert o32.dtype == np.float32
    # float32 rounding (6e-8) amplified by cond(Σ) ~ 10 and the eigensolver
    np.testing.assert_allclose(o32, o64, rtol=1e-4, atol=1e-4)
    r64 = nk.whitening_relu_backward(G, c64)
    r32 = nk.whitening_relu_backward(G32, c32)
    for a, b in zip(r32, r64):
        assert a.dtype == np.float32
        scale = np.abs(b).max()
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-4 * scale)


# ---------------------------------------------------------------- bad input
def _good():
    Y, gm, bt, _ = data(6, 4)
    return Y, gm, bt


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(eps=0.0), ValueError, "eps"),
    (dict(eps=-1e-3), ValueError, "eps"),
    (dict(eps=float("nan")), ValueError, "eps"),
    (dict(eps="small"), TypeError, "eps"),
    (dict(method="svd"), ValueError, "method"),
    (dict(method=None), TypeError, "method"),
    (dict(group_size=0), ValueError, "group_size"),
    (dict(group_size=5), ValueError, "group_size"),
    (dict(group_size=2.0), TypeError, "group_size"),
    (dict(group_size=True), TypeError, "group_size"),
    (dict(method="newton", iterations=0), ValueError, "iterations"),
])
def test_bad_arguments(kwargs, exc, name):
    Y, gm, bt = _good()
    with pytest.raises(exc, match=name) as info:
        nk.whitening_forward(Y, gm, bt, **kwargs)
    msg = str(info.value)
    assert msg.startswith(name) and "expected" in msg and "got" in msg


def test_bad_arrays():
    Y, gm, bt = _good()
    with pytest.raises(ValueError, match=r"^Y: .*at least 2 rows.*B = 1"):
        nk.whitening_forward(Y[:1], gm, bt)
    with pytest.raises(ValueError, match=r"^gamma: expected gamma.shape\[0\]"):
        nk.whitening_forward(Y, gm[:3], bt)
    with pytest.raises(TypeError, match=r"^beta: expected dtype float64"):
        nk.whitening_forward(Y, gm, bt.astype(np.float32))
    with pytest.raises(TypeError, match=r"^Y: expected dtype float32 or float64, got int64"):
        nk.whitening_forward(np.ones((4, 3), np.int64), gm[:3], bt[:3])
    with pytest.raises(ValueError, match=r"^Y: expected a 2-D array"):
        nk.whitening_forward(Y[0], gm, bt)
    _, cache = nk.whitening_forward(Y, gm, bt)
    with pytest.raises(ValueError, match=r"^dZ: expected shape \(6, 4\)"):
        nk.whitening_backward(np.ones((6, 3)), cache)
    with pytest.raises(ValueError, match=r"^cache: .*whitening_relu_backward|^cache: "):
        nk.whitening_relu_backward(np.ones_like(Y), cache)
    with pytest.raises(ValueError, match=r"^out: shares memory with input Y"):
        nk.whitening_forward(Y, gm, bt, out=Y)


def test_inputs_not_modified():
    Y, gm, bt, G = data(12, 5, seed=9)
    copies = [a.copy() for a in (Y, gm, bt, G)]
    _, cache = nk.whitening_relu_forward(Y, gm, bt)
    nk.whitening_relu_backward(G, cache)
    for a, b in zip((Y, gm, bt, G), copies):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------- layer
def test_layer_training_and_inference():
    Y, _, _, G = data(32, 6, seed=10)
    layer = nk.WhiteningBatchNorm(6, momentum=1.0, relu=True)
    H = layer.forward(Y).copy()
    ref, _ = ref_forward(Y, np.ones(6), np.zeros(6), 1e-5, relu=True)
    np.testing.assert_allclose(H, ref, atol=1e-10)
    dY = layer.backward(G).copy()
    _, cache = nk.whitening_relu_forward(Y, np.ones(6), np.zeros(6))
    np.testing.assert_allclose(dY, nk.whitening_relu_backward(G, cache).dY, atol=1e-12)
    np.testing.assert_allclose(layer.running_mean, Y.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(layer.running_whitening, cache.whitening_matrix, rtol=1e-12)
    # eval with momentum 1: the running statistics are this batch's, so the
    # output equals the training output, also for a single sample
    layer.eval()
    np.testing.assert_allclose(layer.forward(Y), H, atol=1e-10)
    np.testing.assert_allclose(layer.forward(Y[:1]), H[:1], atol=1e-10)
    with pytest.raises(RuntimeError, match="backward"):
        layer.backward(G)
    Z = nk.whitening_eval_forward(Y, np.ones(6), np.zeros(6), layer.running_mean,
                                  layer.running_whitening, relu=True)
    np.testing.assert_allclose(Z, H, atol=1e-10)


def test_layer_momentum_and_groups():
    Y1, _, _, _ = data(16, 5, seed=11)
    Y2, _, _, _ = data(16, 5, seed=12)
    layer = nk.WhiteningBatchNorm(5, momentum=0.25, group_size=2, method="newton")
    np.testing.assert_array_equal(layer.running_whitening, np.eye(5))
    layer.forward(Y1)
    W1 = layer._cache.whitening_matrix
    layer.forward(Y2)
    W2 = layer._cache.whitening_matrix
    expected = 0.75 * (0.75 * np.eye(5) + 0.25 * W1) + 0.25 * W2
    np.testing.assert_allclose(layer.running_whitening, expected, rtol=1e-12)
    assert layer.running_whitening[0, 2] == 0     # block diagonal, groups (2, 2, 1)
    layer.backward(np.ones_like(Y2))
    assert set(layer.grads) == {"gamma", "beta"}


def test_layer_in_sequential_float32():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 4)).astype(np.float32)
    model = nk.Sequential(nk.Linear(4, 6, dtype=np.float32),
                          nk.WhiteningBatchNorm(6, relu=True, dtype=np.float32),
                          nk.Linear(6, 3, dtype=np.float32))
    out = model.forward(X)
    dX = model.backward(np.ones_like(out))
    assert out.dtype == dX.dtype == np.float32
    assert "1.gamma" in model.params


# ---------------------------------------------------------------- hypothesis
@given(B=st.integers(2, 12), M=st.integers(1, 6), g=st.integers(0, 6),
       seed=st.integers(0, 2**16))
def test_property_forward_and_backward_match_reference(B, M, g, seed):
    g = min(g, M) or None
    eps = 1e-2                  # keeps Σ + εI well conditioned for any B ≤ M
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((B, M)) @ rng.standard_normal((M, M)) + rng.standard_normal(M)
    gm, bt = rng.standard_normal(M), rng.standard_normal(M)
    dZ = rng.standard_normal((B, M))
    out, cache = nk.whitening_forward(Y, gm, bt, eps, "zca", g)
    ref, _ = ref_forward(Y, gm, bt, eps, "zca", g)
    np.testing.assert_allclose(out, ref, rtol=1e-8, atol=1e-9)
    # per group: Cov(Ŷ) = Σ_Y (Σ_Y + εI)⁻¹, mean 0
    Yc = Y - Y.mean(axis=0)
    for c, k in ref_groups(M, g):
        SY = Yc[:, c:c + k].T @ Yc[:, c:c + k] / B
        Yh = cache.yhat[:, c:c + k]
        np.testing.assert_allclose(Yh.T @ Yh / B, SY @ np.linalg.inv(SY + eps * np.eye(k)),
                                   atol=1e-9)
    r = nk.whitening_backward(dZ, cache)
    dY, dgamma, dbeta, dcov = ref_zca_backward(Y, gm, bt, eps, dZ, g)
    scale = max(1.0, np.abs(dY).max())
    np.testing.assert_allclose(r.dY, dY, rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(r.dcov, dcov, rtol=0, atol=1e-8 * max(1.0, np.abs(dcov).max()))
    np.testing.assert_allclose(r.dgamma, dgamma, atol=1e-9 * max(1.0, np.abs(dgamma).max()))


# ------------------------------------------------- issue 8.2: Newton stability
def _latent_batch(B=256, M=8, factors=3, seed=0):
    """B samples of M features driven by 3 latent factors plus small noise: a
    Σ with 3 large and 5 small eigenvalues (cond ~1e2 to 1e3)."""
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((B, factors)) @ rng.standard_normal((factors, M))
    return Y + 0.1 * rng.standard_normal((B, M))


def test_newton_more_iterations_never_hurt():
    """The uncoupled iteration went 6e-4 (T=10), 1e139 (T=20), NaN (T=40) here."""
    Y = _latent_batch()
    M = Y.shape[1]
    errs = {}
    for T in (5, 10, 30, 100):
        _, cache = nk.whitening_forward(Y, np.ones(M), np.zeros(M), 1e-5, "newton",
                                        iterations=T)
        assert np.all(np.isfinite(cache.yhat)), T
        C = cache.yhat.T @ cache.yhat / len(Y)
        errs[T] = np.abs(C - np.eye(M)).max()
    # converging, then flat: past convergence the error stays at rounding level
    assert errs[10] < errs[5]
    assert errs[30] < 1e-3 and errs[100] <= max(2 * errs[30], 1e-10), errs


def test_newton_gradcheck_at_30_iterations():
    Y = _latent_batch(B=40, M=5, seed=3)
    rng = np.random.default_rng(4)
    gm, bt = 1 + 0.3 * rng.standard_normal(5), 0.2 * rng.standard_normal(5)

    def f(Y, gamma, beta):
        return nk.whitening_forward(Y, gamma, beta, 1e-3, "newton", iterations=30)

    report = gradcheck(f, nk.whitening_backward, dict(Y=Y, gamma=gm, beta=bt))
    assert report.passed, report.table()
