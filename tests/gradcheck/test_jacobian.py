"""P2.5: batch norm is differentiable; its whole analytic Jacobian equals the numeric one."""
import numpy as np
import pytest

import nnkit as nk


def _bn(Y, gamma, beta, eps=1e-5):
    return nk.batchnorm_forward(Y, gamma, beta, eps)


@pytest.mark.parametrize("B,M", [(2, 1), (3, 2), (5, 3)])
@pytest.mark.parametrize("wrt", ["Y", "gamma", "beta"])
def test_batchnorm_jacobian_matches_numeric(B, M, wrt):
    rng = np.random.default_rng(B * 10 + M)
    inputs = dict(Y=rng.standard_normal((B, M)), gamma=1 + 0.3 * rng.standard_normal(M),
                  beta=rng.standard_normal(M))
    check = nk.jacobian_check(_bn, nk.batchnorm_backward, inputs, wrt)
    assert check.passed, str(check)
    size = inputs[wrt].size
    assert check.shape == (B * M, size) and check.checked == B * M * size


def test_batchnorm_jacobian_structure():
    """Independent facts about ∂Z/∂Y: features do not mix (block structure), and
    every column of a feature's block sums to 0 over the batch (Σ_i Z_ij does
    not depend on Y: it is B·β_j)."""
    rng = np.random.default_rng(0)
    B, M = 4, 3
    inputs = dict(Y=rng.standard_normal((B, M)), gamma=np.ones(M), beta=np.zeros(M))
    J = nk.jacobian_check(_bn, nk.batchnorm_backward, inputs, "Y").analytic
    J4 = J.reshape(B, M, B, M)
    for j in range(M):
        for k in range(M):
            if j != k:
                np.testing.assert_allclose(J4[:, j, :, k], 0, atol=1e-12)
    np.testing.assert_allclose(J4.sum(axis=0), 0, atol=1e-12)


def test_a_wrong_backward_fails_the_jacobian_check():
    rng = np.random.default_rng(1)
    inputs = dict(Y=rng.standard_normal((3, 2)), gamma=np.ones(2), beta=np.zeros(2))

    def naive_backward(dZ, cache):       # forgets that m and v depend on Y
        return {"dY": dZ * cache.gamma * cache.inv_std}

    check = nk.jacobian_check(_bn, naive_backward, inputs, "Y")
    assert not check.passed
