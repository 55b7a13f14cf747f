"""fit with recurrent models, as a PyTorch script trains them: a time-major
LSTM through batch_axis=1 and a batch_first GRU through the default axis 0.
fit's first step is compared with the same step written by hand (forward,
loss, backward, optimizer step on the same batch)."""
import numpy as np
import pytest

import nnkit as nk
from nnkit import optim
from nnkit.train import fit


def sequences(T=6, B=48, N=3, seed=0):
    r = np.random.default_rng(seed)
    y = r.integers(0, 2, B)
    X = r.standard_normal((T, B, N)) * 0.3
    X[:, :, 0] += (2 * y - 1) * 0.8
    return X, y


def one_step_by_hand(model, X, y):
    loss = nk.SoftmaxCrossEntropy()
    o = optim.Adam(model, lr=0.01)
    loss(model(X), y)
    model.backward(loss.backward())
    o.step()


@pytest.mark.parametrize("kind, axis", [("LSTM", 1), ("GRU", 0)],
                         ids=["LSTM time-major, batch_axis=1", "GRU batch_first, axis 0"])
def test_fit_trains_a_gated_layer_and_its_first_step_is_the_hand_step(kind, axis):
    X, y = sequences()
    bf = axis == 0
    if bf:
        X = np.ascontiguousarray(X.transpose(1, 0, 2))       # (B, T, N)

    def model():
        return nk.Sequential(getattr(nk, kind)(3, 8, num_layers=2, batch_first=bf, seed=0),
                             nk.LastStep(batch_first=bf), nk.Linear(8, 2, seed=1))
    m = model()
    h = fit(m, nk.SoftmaxCrossEntropy(), optim.Adam(m, lr=0.05), X, y, 12, 16,
            progress=False, batch_axis=axis, X_val=X, y_val=y, rng=np.random.default_rng(0))
    assert h.train_loss[-1] < 0.5 * h.train_loss[0] and h.val_acc[-1] > 0.9

    m2, m3 = model(), model()
    fit(m2, nk.SoftmaxCrossEntropy(), optim.Adam(m2, lr=0.01), X, y, 1, 48, progress=False,
        batch_axis=axis, shuffle=False)
    one_step_by_hand(m3, X, y)
    for k in m2.params:
        np.testing.assert_allclose(m2.params[k], m3.params[k], rtol=1e-12, atol=1e-15,
                                   err_msg=k)
