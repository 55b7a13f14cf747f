"""P9: RNN and BiRNN gradients against central finite differences."""
import numpy as np
import pytest

import nnkit as nk
from rnn_reference import (ACTS, BIRNN_GRADS, RNN_GRADS, birnn_ref, grad_norms_ref,
                           make_birnn, make_rnn, rnn_bptt_ref, rnn_ref)


# ------------------------------------------------------ finite differences
@pytest.mark.parametrize("act", ACTS)
def test_rnn_gradcheck(act, dtype, rng):
    p = make_rnn(rng, 4, 3, 2, 3, dtype)
    rep = nk.gradcheck(lambda **k: nk.rnn_forward(**k, activation=act), nk.rnn_backward, p)
    assert rep.passed, rep.table()


@pytest.mark.parametrize("bias", [False, True])
def test_birnn_gradcheck(bias, dtype, rng):
    p = make_birnn(rng, 3, 2, 3, 3, 2, dtype, bias=bias)
    rep = nk.gradcheck(nk.birnn_forward, nk.birnn_backward, p)
    assert rep.passed, rep.table()
    assert len(rep.checks) == len(p)


def test_gradcheck_catches_a_wrong_bptt(rng):
    """Truncated BPTT (dh_t = dH_t only) must fail: the check can fail."""
    p = make_rnn(rng, 3, 2, 2, 3)

    def truncated(dH, cache):
        g = nk.rnn_backward(dH, cache)
        X = cache.X
        dA = dH * (1 - cache.H ** 2)
        return g._replace(dWx=np.einsum("tbm,tbn->mn", dA, X))
    rep = nk.gradcheck(nk.rnn_forward, truncated, p)
    assert not rep["Wx"].passed and rep["Wh"].passed
