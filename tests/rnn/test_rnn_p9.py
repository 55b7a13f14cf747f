"""P9.1–P9.3 numerically: the preactivation form, the vanishing bound, the lessons."""
import numpy as np
import pytest

import nnkit as nk
from rnn_reference import (ACTS, BIRNN_GRADS, RNN_GRADS, _df, birnn_ref, grad_norms_ref,
                           make_birnn, make_rnn, rnn_bptt_ref, rnn_ref)


# ----------------------------------------------------- P9.2 (vanishing)
@pytest.mark.parametrize("act,gamma", [("sigmoid", 0.25), ("tanh", 1.0)])
@pytest.mark.parametrize("T", [1, 3, 10, 25])
def test_p9_2_vanishing_bound(act, gamma, T, rng):
    """|σ′| ≤ γ and λ1(WᵀW) < δ²/γ² ⇒ ||∂h_T/∂h_0|| ≤ δ^T.

    The Jacobian ∏_t diag(σ′(a_t)) W is built here from the reference's
    pre-activations, and read from the kernel too: with B = M identical
    samples and dH_T = I (zero elsewhere), the backward's dh0 is ∂h_T/∂h_0.
    """
    M, N, delta = 4, 3, 0.9
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
