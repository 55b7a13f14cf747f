"""Layer objects: same gradients as the functional pairs (and the float64
references), eval mode, buffer reuse, and a tiny MLP that learns."""
import numpy as np
import pytest

import nnkit as nk


def _data(rng, B, N, K, dtype):
    X = rng.standard_normal((B, N)).astype(dtype)
    labels = rng.integers(0, K, size=B)
    return X, labels


@pytest.mark.parametrize("fused", [True, False])
def test_training_step_matches_functional_pairs(ref, rng, dtype, fused):
    B, N, Hd, K = 8, 5, 6, 3
    X, labels = _data(rng, B, N, K, dtype)
    lin1 = nk.Linear(N, Hd, dtype=dtype, seed=1)
    bnl = nk.BatchNorm(Hd, relu=fused, dtype=dtype, eps=1e-3)
    bnl.params["gamma"][...] = (1 + 0.3 * rng.standard_normal(Hd)).astype(dtype)
    bnl.params["beta"][...] = (0.2 * rng.standard_normal(Hd)).astype(dtype)
    lin2 = nk.Linear(Hd, K, dtype=dtype, seed=2)
    lin2.params["b"][...] = rng.standard_normal(K).astype(dtype)
    layers = [lin1, bnl] + ([] if fused else [nk.ReLU()]) + [lin2]
    net = nk.Sequential(*layers)
    crit = nk.SoftmaxCrossEntropy()

    loss = crit(net(X), labels)
    dX = net.backward(crit.backward()).copy()

    # the same step through the functional pairs
    W1, b1 = lin1.params["W"], lin1.params["b"]
    W2, b2 = lin2.params["W"], lin2.params["b"]
    g, bt = bnl.params["gamma"], bnl.params["beta"]
    Y1, c1 = nk.affine_forward(X, W1, b1)
    H, cb = nk.bn_relu_forward(Y1, g, bt, 1e-3)
    Y2, c2 = nk.affine_forward(H, W2, b2)
    floss, cs = nk.softmax_cross_entropy(Y2, labels)
    assert loss == floss
    dY2 = nk.softmax_cross_entropy_backward(cs)
    a2 = nk.affine_backward(dY2, c2)
    gb = nk.bn_relu_backward(a2.dX, cb)
    a1 = nk.affine_backward(gb.dY, c1)
    # the unfused layer stack runs BN then ReLU, the layer backward skips
    # dYhat (full=False): same arithmetic, so equal to a few ulps (80 eps of
    # the gradient's scale: the differences propagate through two GEMMs)
    tol = 80 * np.finfo(dtype).eps
    for got, want, name in ((lin2.grads["W"], a2.dW, "W2"), (lin2.grads["b"], a2.db, "b2"),
                            (bnl.grads["gamma"], gb.dgamma, "gamma"),
                            (bnl.grads["beta"], gb.dbeta, "beta"),
                            (lin1.grads["W"], a1.dW, "W1"), (lin1.grads["b"], a1.db, "b1"),
                            (dX, a1.dX, "dX")):
        scale = max(1e-30, float(np.max(np.abs(want))))
        assert np.max(np.abs(got - want)) <= tol * scale, name
    # Sequential exposes the layers' parameters and gradients by index
    assert net.params["0.W"] is W1 and net.grads["0.W"] is lin1.grads["W"]

    # and the float64 reference of the whole chain
    Y1r = ref.affine(X, W1, b1)
    f = ref.bn_forward(Y1r, g, bt, 1e-3)
    Hr = ref.relu(f.Z)
    Y2r = ref.affine(Hr, W2, b2)
    lr, _, dY2r = ref.softmax_xent(Y2r, ref.one_hot(labels, K))
    # float32 logits carry ~1e-7 relative rounding through two layers
    assert abs(loss - lr) <= (1e-5 if dtype == np.float32 else 1e-12) * max(1.0, lr)
    dHr, dW2r, db2r = ref.affine_backward(dY2r, Hr, W2)
    rb = ref.bn_relu_backward(dHr, Y1r, g, bt, 1e-3)
    dXr, dW1r, db1r = ref.affine_backward(rb.dY, X, W1)
    # float32: errors of the float32 forward propagate through two layers and
    # the loss gradient, so a looser 1e-4 here (the per-kernel 1e-5 checks are
    # in test_dense / test_batchnorm)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    ref.assert_rel(lin2.grads["W"], dW2r, tol, "W2")
    ref.assert_rel(bnl.grads["gamma"], rb.dgamma, tol, "gamma")
    ref.assert_rel(lin1.grads["W"], dW1r, tol, "W1")
    ref.assert_rel(dX, dXr, tol, "dX")


def test_batchnorm_layer_eval_uses_running_stats(ref, rng, dtype):
    M = 4
    layer = nk.BatchNorm(M, momentum=0.5, dtype=dtype, eps=1e-4)
    layer.params["gamma"][...] = np.array([1.0, 2.0, 0.5, -1.0], dtype)
    layer.params["beta"][...] = np.array([0.0, 1.0, -1.0, 0.5], dtype)
    for _ in range(3):
        layer.forward((3.0 + 2.0 * rng.standard_normal((16, M))).astype(dtype))
    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    Y = rng.standard_normal((5, M)).astype(dtype)
    layer.eval()
    assert not layer.training
    Z = layer.forward(Y).copy()
    want = (layer.params["gamma"].astype(np.float64) * (Y - rm.astype(np.float64))
            / np.sqrt(rv.astype(np.float64) + 1e-4) + layer.params["beta"])
    ref.assert_rel(Z, want, ref.RTOL[dtype], "eval Z")
    # eval mode does not update the running statistics, and works for B = 1
    np.testing.assert_array_equal(layer.running_mean, rm)
    np.testing.assert_array_equal(layer.running_var, rv)
    one = layer.forward(Y[:1]).copy()
    np.testing.assert_array_equal(one, Z[:1])
    # training mode normalizes with the batch statistics instead
    layer.train()
    Zt = layer.forward(Y)
    ref.assert_rel(Zt, ref.bn_forward(Y, layer.params["gamma"], layer.params["beta"], 1e-4).Z,
                   ref.RTOL[dtype], "train Z")
    assert ref.rel_err(Zt, want) > 1e-2


def test_sequential_train_eval_propagates():
    net = nk.Sequential(nk.Linear(2, 3), nk.BatchNorm(3), nk.ReLU())
    net.eval()
    assert all(not layer.training for layer in net.layers)
    net.train()
    assert all(layer.training for layer in net.layers)


def test_outputs_are_fresh_by_default(rng):
    """Issue 8.6: a = m(X); b = m(2X) must leave a alone; relu(relu(x)) and a
    square Linear applied twice must work without any out= from the caller."""
    m = nk.Sequential(nk.Linear(4, 4), nk.ReLU(), nk.Linear(4, 4), nk.BatchNorm(4))
    X = rng.standard_normal((6, 4))
    a = m(X)
    a_copy = a.copy()
    b = m(2 * X)
    assert a is not b and not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, a_copy)
    relu, lin = nk.ReLU(), nk.Linear(4, 4)
    np.testing.assert_array_equal(relu(relu(X)), np.maximum(X, 0))
    W, b0 = lin.params["W"], lin.params["b"]
    np.testing.assert_allclose(lin(lin(X)), (X @ W.T + b0) @ W.T + b0, rtol=1e-12)


def test_reuse_is_opt_in_and_never_aliases_the_input(rng):
    relu = nk.ReLU().reuse()
    X = rng.standard_normal((6, 4))
    H = relu(X)
    np.testing.assert_array_equal(relu(H), np.maximum(X, 0))   # input is its own buffer


def test_buffers_reused_across_same_shape_calls(rng):
    lin, relu, bnl, crit = nk.Linear(3, 4), nk.ReLU(), nk.BatchNorm(4), nk.SoftmaxCrossEntropy()
    for layer in (lin, relu, bnl, crit):
        layer.reuse()
    X = rng.standard_normal((5, 3))
    labels = np.array([0, 1, 2, 3, 0])

    def step(X):
        Y = lin(X)
        Z = bnl(Y)
        H = relu(Z)
        crit(H, labels[: X.shape[0]])
        d = crit.backward()
        dZ = relu.backward(d)
        dY = bnl.backward(dZ)
        dX = lin.backward(dY)
        return Y, Z, H, d, dZ, dY, dX

    first = step(X)
    second = step(rng.standard_normal((5, 3)))
    for a, b in zip(first, second):
        assert a is b                     # same arrays, refilled in place
    # a new shape gets new buffers
    third = step(rng.standard_normal((4, 3)))
    assert all(a is not c for a, c in zip(first, third))
    assert third[0].shape == (4, 4) and third[-1].shape == (4, 3)


def test_linear_without_bias_and_zero_grad(rng):
    lin = nk.Linear(3, 2, bias=False)
    X = rng.standard_normal((4, 3))
    lin.forward(X)
    lin.backward(np.ones((4, 2)))
    np.testing.assert_array_equal(lin.grads["b"], 0.0)
    assert np.any(lin.grads["W"] != 0)
    lin.zero_grad()
    np.testing.assert_array_equal(lin.grads["W"], 0.0)


def test_linear_init_is_seeded_lecun(dtype):
    a = nk.Linear(400, 300, seed=7, dtype=dtype)
    b = nk.Linear(400, 300, seed=7, dtype=dtype)
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    assert a.params["W"].dtype == dtype
    # P7: Var W = 1/fan_in  (120000 draws: standard error of the variance ~0.4%)
    assert abs(a.params["W"].astype(np.float64).var() * 400 - 1.0) < 0.02
    np.testing.assert_array_equal(a.params["b"], 0.0)


@pytest.mark.parametrize("dtype_", [np.float64, np.float32])
def test_tiny_mlp_learns(dtype_):
    rng = np.random.default_rng(5)
    B, N, K = 64, 4, 3
    centers = 2.0 * rng.standard_normal((K, N))
    labels = rng.integers(0, K, size=B)
    X = (centers[labels] + 0.5 * rng.standard_normal((B, N))).astype(dtype_)
    net = nk.Sequential(nk.Linear(N, 16, seed=1, dtype=dtype_),
                        nk.BatchNorm(16, relu=True, dtype=dtype_),
                        nk.Linear(16, K, seed=2, dtype=dtype_))
    crit = nk.SoftmaxCrossEntropy()
    losses = []
    for _ in range(60):
        losses.append(crit(net(X), labels))
        net.backward(crit.backward())
        for k, p in net.params.items():
            p -= 0.2 * net.grads[k]
    final = crit(net(X), labels)
    assert np.isfinite(final)
    assert final < 0.25 * losses[0], (losses[0], final)
    net.eval()
    acc = np.mean(np.argmax(net(X), axis=1) == labels)
    assert acc > 0.9


def test_same_shape_layers_start_different_and_nk_seed_reproduces():
    """Issue 8.5: Linear defaulted to seed=0, so Linear(4, 4) twice was identical."""
    nk.seed(7)
    a, b = nk.Linear(4, 4), nk.Linear(4, 4)
    assert not np.allclose(a.params["W"], b.params["W"])
    r1, r2 = nk.RNN(3, 4), nk.RNN(3, 4)
    assert not np.allclose(r1.params["Wh"], r2.params["Wh"])
    nk.seed(7)
    np.testing.assert_array_equal(nk.Linear(4, 4).params["W"], a.params["W"])
    # an explicit seed or generator wins over the library generator
    np.testing.assert_array_equal(nk.Linear(4, 4, seed=3).params["W"],
                                  nk.Linear(4, 4, seed=3).params["W"])
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(nk.BiRNN(2, 3, 2, rng=g1).params["Wy"],
                                  nk.BiRNN(2, 3, 2, rng=g2).params["Wy"])


def test_linear_accepts_leading_dimensions(rng):
    lin = nk.Linear(3, 2)
    X = rng.standard_normal((4, 5, 3))
    Y = lin(X)
    W, b = lin.params["W"], lin.params["b"]
    np.testing.assert_allclose(Y, X @ W.T + b, rtol=1e-12)
    G = rng.standard_normal(Y.shape)
    dX = lin.backward(G)
    np.testing.assert_allclose(dX, G @ W, rtol=1e-12)
    np.testing.assert_allclose(lin.grads["W"], np.einsum("tbm,tbn->mn", G, X), rtol=1e-12)
    np.testing.assert_allclose(lin.grads["b"], G.sum(axis=(0, 1)), rtol=1e-12)


def test_sequential_reuse_buffers_trains_the_same_and_reuses_its_outputs():
    """Sequential(..., reuse_buffers=True) is a working opt-in: the same losses
    and parameters as fresh outputs over SGD steps, and a second same-shape call
    writes into the first call's output (which the docs say it overwrites)."""
    def model(reuse):
        return nk.Sequential(nk.Linear(6, 8, seed=1), nk.BatchNorm(8, relu=True),
                             nk.Linear(8, 3, seed=2), reuse_buffers=reuse)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 6))
    y = rng.integers(0, 3, 16)
    runs = {}
    for reuse in (False, True):
        m, crit = model(reuse), nk.SoftmaxCrossEntropy()
        losses = []
        for _ in range(3):
            losses.append(float(crit(m(X), y)))
            m.backward(crit.backward())
            for _, p, g in m.named_parameters_and_grads():
                p -= 0.1 * g
        runs[reuse] = (losses, {k: p.copy() for k, p, _ in m.named_parameters_and_grads()})
    assert runs[True][0] == runs[False][0]
    for k, p in runs[False][1].items():
        np.testing.assert_array_equal(runs[True][1][k], p)
    m = model(True)
    a = m(X)
    b = m(2 * X)
    assert np.shares_memory(a, b)                  # reused: a now holds the second result
    fresh = model(False)
    assert not np.shares_memory(fresh(X), fresh(2 * X))
