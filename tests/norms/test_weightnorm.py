"""P8: weight normalization w = γ u/‖u‖ per row, and Linear(weight_norm=True)."""
import numpy as np
import pytest

import nnkit as nk


def weightnorm_ref(u, gamma, dw):
    """Transcription: ∇_u L = (γ/‖u‖) W⊥ ∇_w L, W⊥ = I − wwᵀ/‖w‖², dγ = ∇_w L · u/‖u‖."""
    u, gamma, dw = (np.asarray(a, np.float64) for a in (u, gamma, dw))
    norm = np.linalg.norm(u, axis=1)
    w = gamma[:, None] * u / norm[:, None]
    du = np.empty_like(u)
    for i in range(u.shape[0]):
        Wp = np.eye(u.shape[1]) - np.outer(w[i], w[i]) / (w[i] @ w[i])
        du[i] = gamma[i] / norm[i] * Wp @ dw[i]
    return w, du, np.sum(dw * u, axis=1) / norm


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (64, 129)], ids=str)
def test_matches_transcription(ref, rng, dtype, shape):
    u = rng.standard_normal(shape).astype(dtype)
    gamma = (0.5 + rng.random(shape[0])).astype(dtype)
    dw = rng.standard_normal(shape).astype(dtype)
    w, cache = nk.weightnorm_forward(u, gamma)
    g = nk.weightnorm_backward(dw, cache)
    w_ref, du_ref, dg_ref = weightnorm_ref(u, gamma, dw)
    tol = ref.RTOL[dtype] * 10
    ref.assert_rel(w, w_ref, tol, "w")
    ref.assert_rel(g.dgamma, dg_ref, tol, "dgamma")
    if shape[1] > 1:        # N = 1: du = 0 exactly (w only depends on sign(u))
        ref.assert_rel(g.du, du_ref, tol, "du")
    # P8: ∇_u L ⊥ u, row by row
    cos = np.abs(np.sum(g.du * u, 1)) / (np.linalg.norm(u, axis=1) * np.linalg.norm(dw, axis=1))
    assert np.all(cos < (1e-12 if dtype == np.float64 else 1e-5))
    assert g.du.dtype == dtype and g.dgamma.dtype == dtype


def test_central_differences(rng):
    inputs = dict(u=rng.standard_normal((3, 4)), gamma=0.5 + rng.random(3))
    report = nk.gradcheck(nk.weightnorm_forward, nk.weightnorm_backward, inputs, strict=True)
    assert report.passed, report.table()


def test_torch_weight_norm_parametrization(rng):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.parametrizations import weight_norm
    u = rng.standard_normal((4, 6))
    gamma = 0.5 + rng.random(4)
    G = rng.standard_normal((4, 6))
    lin = weight_norm(torch.nn.Linear(6, 4, dtype=torch.float64), dim=0)
    with torch.no_grad():
        lin.parametrizations.weight.original0.copy_(torch.tensor(gamma[:, None]))
        lin.parametrizations.weight.original1.copy_(torch.tensor(u))
    W = lin.weight
    (W * torch.tensor(G)).sum().backward()
    w, cache = nk.weightnorm_forward(u, gamma)
    g = nk.weightnorm_backward(G, cache)
    np.testing.assert_allclose(w, W.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(g.dgamma, lin.parametrizations.weight.original0.grad.numpy()[:, 0],
                               rtol=1e-12)
    np.testing.assert_allclose(g.du, lin.parametrizations.weight.original1.grad.numpy(),
                               rtol=1e-11, atol=1e-14)


def test_linear_weight_norm(rng):
    plain = nk.Linear(5, 3, seed=4)
    wn = nk.Linear(5, 3, seed=4, weight_norm=True)
    assert set(wn.params) == {"u", "gamma", "b"}
    X = rng.standard_normal((7, 5))
    G = rng.standard_normal((7, 3))
    np.testing.assert_allclose(wn(X), plain(X), rtol=1e-13)     # γ = ‖u‖ at the start
    dX = wn.backward(G)
    np.testing.assert_allclose(dX, plain.backward(G), rtol=1e-13)
    # γ and u gradients against central differences of L = Σ G ⊙ Y
    def loss():
        return float(np.sum(G * wn.forward(X)))
    for name in ("u", "gamma"):
        p, analytic = wn.params[name], wn.grads[name].copy()
        num = np.empty_like(p)
        for idx in np.ndindex(*p.shape):
            old = p[idx]
            p[idx] = old + 1e-6
            lp = loss()
            p[idx] = old - 1e-6
            lm = loss()
            p[idx] = old
            num[idx] = (lp - lm) / 2e-6
        np.testing.assert_allclose(analytic, num, rtol=1e-6, atol=1e-8)
    # W changes with γ: doubling γ doubles W X
    wn.params["gamma"] *= 2
    np.testing.assert_allclose(wn(X) - wn.params["b"], 2 * (plain(X) - plain.params["b"]),
                               rtol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match=r"^u: expected rows of nonzero norm"):
        nk.weightnorm_forward(np.array([[1.0, 2.0], [0.0, 0.0]]), np.ones(2))
    with pytest.raises(ValueError, match="^gamma"):
        nk.weightnorm_forward(np.ones((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match="^u"):
        nk.weightnorm_forward(np.ones(3), np.ones(3))
    with pytest.raises(TypeError, match="^gamma"):
        nk.weightnorm_forward(np.ones((2, 3)), np.ones(2, np.float32))
    with pytest.raises(TypeError, match="^u"):
        nk.weightnorm_forward(np.ones((2, 3), int), np.ones(2))
    _, c = nk.weightnorm_forward(np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match="^dw"):
        nk.weightnorm_backward(np.ones((3, 2)), c)
    with pytest.raises(TypeError, match="^cache"):
        nk.weightnorm_backward(np.ones((2, 3)), "cache")
    with pytest.raises(TypeError, match="^weight_norm"):
        nk.Linear(3, 2, weight_norm="yes")


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_non_finite_dw_propagates_without_a_warning():
    """inf in dw reaches du and dγ (inf − inf = NaN in its row, as the formula
    gives), and NumPy's RuntimeWarning stays inside nnkit; the other rows are
    untouched: du ⊥ u there, dγ = dw·û."""
    u = np.arange(1.0, 13.0).reshape(3, 4)
    g = np.array([1.0, 2.0, 3.0])
    _, cache = nk.weightnorm_forward(u, g)
    dw = np.ones((3, 4))
    dw[0, 0] = np.inf
    r = nk.weightnorm_backward(dw, cache)
    assert np.isnan(r.du[0, 0]) and np.isinf(r.dgamma[0])
    uh = u / np.linalg.norm(u, axis=1, keepdims=True)
    np.testing.assert_allclose(r.dgamma[1:], uh[1:].sum(1), rtol=1e-15)
    np.testing.assert_allclose(np.einsum("ij,ij->i", r.du[1:], u[1:]), 0, atol=1e-12)
