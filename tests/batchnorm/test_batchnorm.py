"""P2: batch norm (training, eval, fused with ReLU) against float64 references
written from the textbook formulas (conftest: bn_forward_ref, bn_backward_ref).
"""
import warnings

import numpy as np
import pytest

import nnkit as nk

# The kernel works in column blocks of 32 float32 / 16 float64 features:
# M around the block edges of both dtypes, and M > 32 not a multiple of 32.
BLOCK_EDGE_M = [1, 15, 16, 17, 31, 33, 100]
BATCHES = [2, 7, 64]


def _bn_inputs(rng, B, M, dtype, loc=2.0, scale=3.0):
    Y = (loc + scale * rng.standard_normal((B, M))).astype(dtype)
    gamma = (1.0 + 0.5 * rng.standard_normal(M)).astype(dtype)
    beta = (0.5 * rng.standard_normal(M)).astype(dtype)
    G = rng.standard_normal((B, M)).astype(dtype)
    return Y, gamma, beta, G


def _check_forward(ref, Z, cache, Y, gamma, beta, eps, tol):
    f = ref.bn_forward(Y, gamma, beta, eps)
    ref.assert_rel(Z, f.Z, tol, "Z")
    ref.assert_rel(cache.mean, f.mean, tol, "mean")
    ref.assert_rel(cache.var, f.var, tol, "var (biased)")
    ref.assert_rel(cache.inv_std, f.inv_std, tol, "inv_std")
    ref.assert_rel(cache.yhat, f.Yhat, tol, "Yhat")


def _check_grads(ref, g, r, tol):
    for name in ("dY", "dgamma", "dbeta", "dYhat", "dvar", "dmean"):
        got = getattr(g, name)
        assert got is not None, name
        want = getattr(r, name)
        if name in ("dY", "dmean"):
            # Both are differences of terms that cancel, so the error is measured
            # against the size of the terms, not of the result:
            #  * dY = inv·(dŶ − mean dŶ − Ŷ·mean(dŶ Ŷ)) is a projection; at B = 2
            #    it is ε/(v+ε) times its terms (Ŷ = ±√(v/(v+ε))), ~1e-5 of them.
            #  * dmean = −inv·Σ dŶ + dv·(−2/B)·Σ(Y − m), Σ(Y − m) = 0 exactly.
            # Term size: inv·|dŶ| per element for dY, inv·Σ|dŶ| for dmean.
            inv = np.asarray(r.inv_std, np.float64)
            absd = np.abs(r.dYhat)
            scale = (np.max(absd * inv) if name == "dY"
                     else np.max(absd.sum(axis=0) * inv))
            err = np.max(np.abs(np.asarray(got, np.float64) - want))
            assert err <= tol * scale, f"{name}: error {err:.3e} > {tol:.0e} x {scale:.3e}"
        else:
            ref.assert_rel(got, want, tol, name)


@pytest.mark.parametrize("M", BLOCK_EDGE_M)
@pytest.mark.parametrize("B", BATCHES)
def test_batchnorm_train_forward_backward(ref, rng, dtype, B, M):
    Y, gamma, beta, G = _bn_inputs(rng, B, M, dtype)
    eps = 1e-5
    tol = ref.RTOL[dtype]
    Z, cache = nk.batchnorm_forward(Y, gamma, beta, eps)
    assert Z.dtype == dtype and Z.shape == (B, M)
    _check_forward(ref, Z, cache, Y, gamma, beta, eps, tol)

    g = nk.batchnorm_backward(G, cache)
    r = ref.bn_backward(G, Y, gamma, eps)
    r.inv_std = ref.bn_forward(Y, gamma, beta, eps).inv_std
    for name in g._fields:
        assert getattr(g, name).dtype == dtype, name
    _check_grads(ref, g, r, tol)


@pytest.mark.parametrize("M", BLOCK_EDGE_M)
@pytest.mark.parametrize("B", BATCHES)
def test_bn_relu_fused_equals_composition(ref, rng, dtype, B, M):
    """Fused BN+ReLU == batchnorm_forward then relu_forward, forward and every grad.

    Feature 0 is constant with β = 0 (a dead unit, β's default): Z = 0
    exactly there, where the mask [Z > 0] must be 0 (a mask [Z >= 0] gives a
    non-zero dβ[0] while the composition gives 0)."""
    Y, gamma, beta, G = _bn_inputs(rng, B, M, dtype)
    Y[:, 0] = dtype.type(2.5)
    beta[0] = 0
    eps = 1e-5
    tol = ref.RTOL[dtype]

    H, fcache = nk.bn_relu_forward(Y, gamma, beta, eps)
    Z, bcache = nk.batchnorm_forward(Y, gamma, beta, eps)
    H2, rcache = nk.relu_forward(Z)
    # same arithmetic for Z, then max(., 0): identical bits
    np.testing.assert_array_equal(H, H2)
    np.testing.assert_array_equal(fcache.mean, bcache.mean)
    np.testing.assert_array_equal(fcache.var, bcache.var)
    np.testing.assert_array_equal(fcache.inv_std, bcache.inv_std)

    gf = nk.bn_relu_backward(G, fcache)
    dZ = nk.relu_backward(G, rcache)
    gu = nk.batchnorm_backward(dZ, bcache)
    # the fused mask [Z > 0] is exactly the unfused one: dZ is a selection of G
    np.testing.assert_array_equal(gf.dZ, dZ)
    np.testing.assert_array_equal(gf.dZ, np.where(H > 0, G, 0))
    np.testing.assert_array_equal(H[:, 0], 0)          # Z = 0 exactly: no gradient
    assert gf.dbeta[0] == 0 and gf.dgamma[0] == 0
    for name in ("dY", "dgamma", "dbeta", "dYhat", "dvar", "dmean"):
        a, u = getattr(gf, name), getattr(gu, name)
        # same kernel arithmetic on the same dZ: equal up to the last ulp
        np.testing.assert_allclose(a, u, rtol=0, atol=4 * np.finfo(dtype).eps
                                   * max(1.0, float(np.max(np.abs(u)))), err_msg=name)

    # and both against the textbook reference
    r = ref.bn_relu_backward(G, Y, gamma, beta, eps)
    r.inv_std = ref.bn_forward(Y, gamma, beta, eps).inv_std
    ref.assert_rel(H, ref.relu(ref.bn_forward(Y, gamma, beta, eps).Z), tol, "H")
    ref.assert_rel(gf.dZ, r.dZ, tol, "dZ")
    _check_grads(ref, gf, r, tol)


# B odd and not a multiple of the thread count (2 in the tests, 3 too): a
# row split that drops the last row (t * (B // nt)) passes with even B only.
# (1031, 2053) is over 8 MB even in float32: Z and dY are written with
# streaming stores, a row in two pieces, every row start off the alignment.
@pytest.mark.parametrize("B,M", [(300, 257), (301, 257), (2048, 40), (4099, 17),
                                 (70000, 1), (70001, 1), (1031, 2053)])
def test_batchnorm_openmp_path(ref, rng, dtype, B, M):
    """B*M >= 65536: the kernels split the rows between two threads."""
    assert B * M >= 65536
    Y, gamma, beta, G = _bn_inputs(rng, B, M, dtype, loc=-1.0, scale=0.5)
    tol = ref.RTOL[dtype]
    if dtype == np.float32 and B >= 2048:
        # float32 inputs, sums over >= 2048 rows (accumulated in double, but
        # each term carries float32 rounding of Y − m): a little above 1e-5
        tol = 3e-5
    Z, cache = nk.batchnorm_forward(Y, gamma, beta)
    _check_forward(ref, Z, cache, Y, gamma, beta, 1e-5, tol)
    g = nk.batchnorm_backward(G, cache)
    r = ref.bn_backward(G, Y, gamma, 1e-5)
    r.inv_std = cache.inv_std.astype(np.float64)
    _check_grads(ref, g, r, tol)

    H, fcache = nk.bn_relu_forward(Y, gamma, beta)
    np.testing.assert_array_equal(H, np.maximum(Z, 0))
    gf = nk.bn_relu_backward(G, fcache)
    rf = ref.bn_relu_backward(G, Y, gamma, beta, 1e-5)
    rf.inv_std = r.inv_std
    ref.assert_rel(gf.dZ, rf.dZ, tol, "dZ")
    _check_grads(ref, gf, rf, tol)


@pytest.mark.parametrize("relu", [False, True])
def test_batchnorm_backward_float32_precision_at_scale(ref, relu):
    """Numerics: float32 against float64 on the same data at B = 16384, bounded
    by what the design achieves, not by the generic 1e-5.

    The design: sums run in float32 over chunks of 64 rows, then in double,
    so each sum is good to a few float32 unit roundoffs (EPS32 = 6e-8):
    measured mean 4e-8, var 3e-8, dβ 5e-8, dY 1.6e-7 (relative). A float32
    running sum over the whole batch (no chunks) gives dβ 1.5e-6 here, and
    a plain float32 running sum of Y ~1e-2: both fail these bounds.
    Non-zero mean data (Y ~ 5 ± 2, dH ~ 0.3 ± 1) so the sums do not cancel."""
    rng = np.random.default_rng(16384)
    B, M = 16384, 8
    Y64 = 5.0 + 2.0 * rng.standard_normal((B, M))
    G64 = 0.3 + rng.standard_normal((B, M))
    gamma64 = 1.0 + 0.5 * rng.standard_normal(M)
    beta64 = rng.standard_normal(M)
    Y, G, gamma, beta = (a.astype(np.float32) for a in (Y64, G64, gamma64, beta64))
    fwd = nk.bn_relu_forward if relu else nk.batchnorm_forward
    bwd = nk.bn_relu_backward if relu else nk.batchnorm_backward

    _, c32 = fwd(Y, gamma, beta)
    g32 = bwd(G, c32)
    # the float64 result on the same (float32-representable) data
    up = lambda a: a.astype(np.float64)
    _, c64 = fwd(up(Y), up(gamma), up(beta))
    g64 = bwd(up(G), c64)
    if not relu:
        r = ref.bn_backward(G, Y, gamma, 1e-5)
        ref.assert_rel(g64.dY, r.dY, 1e-12, "float64 dY vs reference")
    EPS32 = np.finfo(np.float32).eps / 2
    for name, got, want, bound in (("mean", c32.mean, c64.mean, 3 * EPS32),
                                   ("var", c32.var, c64.var, 3 * EPS32),
                                   ("dbeta", g32.dbeta, g64.dbeta, 3 * EPS32),
                                   ("dY", g32.dY, g64.dY, 6 * EPS32)):
        ref.assert_rel(got, want, bound, f"float32 {name}")
    # dγ = Σ dZ Ŷ and dv ∝ γ dγ cancel (Ŷ is centred): measured against the
    # size of their terms, Σ |dZ Ŷ|; the float32 Ŷ itself carries the
    # rounding of Y − m (measured 4e-8 of that scale)
    term = np.abs(up(g64.dZ if relu else G) * up(c64.yhat)).sum(axis=0)
    assert np.max(np.abs(up(g32.dgamma) - g64.dgamma) / term) < 3 * EPS32, "dgamma"


def test_backward_full_false_skips_dyhat(ref, rng, dtype):
    Y, gamma, beta, G = _bn_inputs(rng, 9, 20, dtype)
    _, cache = nk.batchnorm_forward(Y, gamma, beta)
    full = nk.batchnorm_backward(G, cache)
    lean = nk.batchnorm_backward(G, cache, full=False)
    assert lean.dYhat is None
    for name in ("dY", "dgamma", "dbeta", "dmean", "dvar"):
        np.testing.assert_array_equal(getattr(lean, name), getattr(full, name))
    _, fcache = nk.bn_relu_forward(Y, gamma, beta)
    lean = nk.bn_relu_backward(G, fcache, full=False)
    assert lean.dZ is None and lean.dYhat is None


def test_cache_kinds_are_not_interchangeable(rng):
    Y, gamma, beta, G = _bn_inputs(rng, 4, 3, np.float64)
    _, c = nk.batchnorm_forward(Y, gamma, beta)
    _, cf = nk.bn_relu_forward(Y, gamma, beta)
    with pytest.raises(ValueError, match="cache"):
        nk.bn_relu_backward(G, c)
    with pytest.raises(ValueError, match="cache"):
        nk.batchnorm_backward(G, cf)


# ----------------------------------------------------------------- eval mode
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("B,M", [(1, 1), (1, 17), (5, 33), (300, 257), (301, 257)])
def test_batchnorm_eval_forward(ref, rng, dtype, relu, B, M):
    Y, gamma, beta, _ = _bn_inputs(rng, B, M, dtype)
    rm = rng.standard_normal(M).astype(dtype)
    rv = (0.5 + rng.random(M)).astype(dtype)
    eps = 1e-3
    Z = nk.batchnorm_eval_forward(Y, gamma, beta, rm, rv, eps, relu=relu)
    want = (gamma.astype(np.float64) * (Y.astype(np.float64) - rm.astype(np.float64))
            / np.sqrt(rv.astype(np.float64) + eps) + beta.astype(np.float64))
    if relu:
        want = np.maximum(want, 0.0)
    ref.assert_rel(Z, want, ref.RTOL[dtype], "Z (eval)")


def test_eval_forward_does_not_use_batch_statistics(rng):
    # one row, far from the running mean: eval must not renormalize the batch
    Y = np.array([[10.0, -3.0]])
    Z = nk.batchnorm_eval_forward(Y, np.ones(2), np.zeros(2), np.zeros(2), np.array([4.0, 1.0]),
                                  eps=0.0)
    np.testing.assert_allclose(Z, [[5.0, -3.0]], rtol=1e-15)


# ----------------------------------------------------- running statistics
def test_update_running_stats_pytorch_convention(rng, dtype):
    """running ← (1−μ)·running + μ·batch, with the *unbiased* batch variance."""
    B, M, mom = 6, 5, 0.1
    Y, gamma, beta, _ = _bn_inputs(rng, B, M, dtype)
    rm0 = rng.standard_normal(M).astype(dtype)
    rv0 = (1.0 + rng.random(M)).astype(dtype)
    rm, rv = rm0.copy(), rv0.copy()
    _, cache = nk.batchnorm_forward(Y, gamma, beta)
    nk.update_running_stats(rm, rv, cache, mom)
    Y64 = Y.astype(np.float64)
    want_m = (1 - mom) * rm0.astype(np.float64) + mom * Y64.mean(axis=0)
    want_v = (1 - mom) * rv0.astype(np.float64) + mom * Y64.var(axis=0, ddof=1)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(rm, want_m, rtol=tol, atol=tol)
    np.testing.assert_allclose(rv, want_v, rtol=tol)


def test_batchnorm_layer_running_stats_over_steps(rng):
    layer = nk.BatchNorm(4, momentum=0.25)
    rm = np.zeros(4)
    rv = np.ones(4)
    for step in range(3):
        Y = step + rng.standard_normal((8, 4)) * (1 + step)
        layer.forward(Y)
        rm = 0.75 * rm + 0.25 * Y.mean(axis=0)
        rv = 0.75 * rv + 0.25 * Y.var(axis=0, ddof=1)
    np.testing.assert_allclose(layer.running_mean, rm, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, rv, rtol=1e-12)


# --------------------------------------------------------------- P2.1, P2.2
def test_p2_1_eps_zero_constant_feature_is_nonfinite_without_crash(dtype):
    """ε = 0 and a constant feature: v = 0, Ŷ = 0/0 -> non-finite, shown not raised."""
    rng = np.random.default_rng(21)
    Y = rng.standard_normal((5, 3)).astype(dtype)
    Y[:, 1] = 2.5                                      # a dead unit
    gamma, beta = np.ones(3, dtype), np.zeros(3, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # no RuntimeWarning either
        Z, cache = nk.batchnorm_forward(Y, gamma, beta, eps=0.0)
        Yhat = cache.yhat
        H, _ = nk.bn_relu_forward(Y, gamma, beta, eps=0.0)
        g = nk.batchnorm_backward(np.ones_like(Y), cache)
    assert cache.var[1] == 0
    assert not np.all(np.isfinite(Z[:, 1]))
    assert not np.all(np.isfinite(Yhat[:, 1]))
    assert not np.all(np.isfinite(g.dY[:, 1]))
    # the other features are unaffected
    assert np.all(np.isfinite(Z[:, [0, 2]])) and np.all(np.isfinite(H[:, [0, 2]]))


@pytest.mark.parametrize("eps", [1e-5, 1e-3, 0.1])
def test_p2_1_eps_positive_stays_finite_and_bounded(dtype, eps):
    rng = np.random.default_rng(22)
    Y = rng.standard_normal((5, 3)).astype(dtype)
    Y[:, 1] = -7.0
    gamma, beta = np.full(3, 2.0, dtype), np.zeros(3, dtype)
    G = rng.standard_normal((5, 3)).astype(dtype)
    Z, cache = nk.batchnorm_forward(Y, gamma, beta, eps=eps)
    g = nk.batchnorm_backward(G, cache)
    assert np.all(np.isfinite(Z))
    for name in g._fields:
        assert np.all(np.isfinite(getattr(g, name))), name
    # constant feature: Ŷ = 0 exactly, and 1/√(v+ε) is capped by 1/√ε
    np.testing.assert_array_equal(cache.yhat[:, 1], 0.0)
    assert cache.inv_std[1] <= np.float32(1 / np.sqrt(eps)) * (1 + 1e-6)


@pytest.mark.parametrize("eps", [0.0, 1e-5, 0.3, 2.0])
@pytest.mark.parametrize("B,M", [(2, 3), (10, 17), (64, 40)])
def test_p2_2_yhat_moments(dtype, eps, B, M):
    """mean_i Ŷ = 0 and var_i Ŷ = v/(v+ε), v computed here from the data."""
    rng = np.random.default_rng(B * 100 + M)
    Y = (1.5 + rng.standard_normal((B, M)) * rng.uniform(0.1, 3.0, M)).astype(dtype)
    Z, cache = nk.batchnorm_forward(Y, np.ones(M, dtype), np.zeros(M, dtype), eps=eps)
    Y64 = Y.astype(np.float64)
    v = Y64.var(axis=0)                       # biased, as P2 defines it
    for Yhat in (cache.yhat, Z):            # γ = 1, β = 0: Z is Ŷ
        Yh = Yhat.astype(np.float64)
        if dtype == np.float64:
            # exact math: ~1e-15; 1e-12 leaves room for summation order
            np.testing.assert_allclose(Yh.mean(axis=0), 0.0, atol=1e-12)
            np.testing.assert_allclose(Yh.var(axis=0), v / (v + eps), rtol=1e-12)
        else:
            np.testing.assert_allclose(Yh.mean(axis=0), 0.0, atol=1e-6)
            np.testing.assert_allclose(Yh.var(axis=0), v / (v + eps), rtol=1e-5)
    if eps > 0.1:
        # the prediction is visibly below 1: the test can tell v/(v+ε) from 1
        assert np.all(v / (v + eps) < 0.999)


# ------------------------------------------------------- issue 8.1: NaN
NAN_Y = np.array([[np.nan, 1.], [0., 2.], [1., 3.]])


def test_bn_relu_forward_nan_column_like_batchnorm():
    """A NaN in column 0: the fused BN+ReLU gave [0, 0, 0]; batch norm gives NaN."""
    g, b = np.ones(2), np.zeros(2)
    H, _ = nk.bn_relu_forward(NAN_Y, g, b)
    Z, _ = nk.batchnorm_forward(NAN_Y, g, b)
    assert np.all(np.isnan(Z[:, 0])) and np.all(np.isnan(H[:, 0]))
    np.testing.assert_array_equal(H[:, 1], np.maximum(Z[:, 1], 0))


@pytest.mark.parametrize("B,M", [(3, 2), (301, 257)])      # one and two threads
def test_bn_relu_nan_train_and_eval_agree_with_composition(rng, dtype, B, M):
    Y = rng.standard_normal((B, M)).astype(dtype)
    Y[B // 2, 0] = np.nan
    gamma = np.ones(M, dtype)
    beta = np.zeros(M, dtype)
    G = rng.standard_normal((B, M)).astype(dtype)
    H, fc = nk.bn_relu_forward(Y, gamma, beta)
    Z, bc = nk.batchnorm_forward(Y, gamma, beta)
    H2, rc = nk.relu_forward(Z)
    np.testing.assert_array_equal(H, H2)                    # NaN where Z is NaN
    assert np.all(np.isnan(H[:, 0])) and np.all(np.isfinite(H[:, 1:]))
    # backward: relu_grad passes dH at a NaN Z, so the fused grads are the
    # composition's: NaN in feature 0, untouched elsewhere
    gf = nk.bn_relu_backward(G, fc)
    gu = nk.batchnorm_backward(nk.relu_backward(G, rc), bc)
    np.testing.assert_array_equal(gf.dZ, nk.relu_backward(G, rc))
    for name in ("dY", "dgamma", "dbeta", "dmean", "dvar"):
        a, u = getattr(gf, name), getattr(gu, name)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(u), err_msg=name)
        if name != "dbeta":           # dβ = Σ dZ = Σ dH there: finite
            assert np.all(np.isnan(a[..., 0])), name
        assert np.all(np.isfinite(a[..., 1:])), name
    np.testing.assert_allclose(gf.dbeta[0], G[:, 0].astype(np.float64).sum(),
                               rtol=1e-5 if dtype == np.float32 else 1e-12)
    # eval with running statistics: the NaN row stays NaN with relu=True too
    E = nk.batchnorm_eval_forward(Y, gamma, beta, np.zeros(M, dtype), np.ones(M, dtype),
                                  relu=True)
    assert np.isnan(E[B // 2, 0])
    assert np.all(np.isfinite(np.delete(E.reshape(-1), (B // 2) * M)))
