"""fit's PyTorch-script options: drop_last, batch_axis=1 for time-major RNN input,
early stopping, a schedule per epoch or per batch (ReduceLROnPlateau on the
validation loss)."""
import numpy as np
import pytest

import nnkit as nk
from nnkit import optim
from nnkit.train import EarlyStopping, StopTraining, fit


def blobs(n=100, seed=0):
    r = np.random.default_rng(seed)
    y = r.integers(0, 3, n)
    X = r.standard_normal((n, 4)) + y[:, None] * 1.5
    return X, y


def test_drop_last_counts_batches():
    X, y = blobs(100)
    m = nk.Sequential(nk.Linear(4, 3, seed=0))
    h = fit(m, nk.SoftmaxCrossEntropy(), optim.SGD(m, lr=0.1), X, y, 2, 32, progress=False,
            drop_last=True, rng=np.random.default_rng(0))
    assert len(h.batch_loss) == 2 * 3
    h = fit(m, nk.SoftmaxCrossEntropy(), optim.SGD(m, lr=0.1), X, y, 2, 32, progress=False,
            rng=np.random.default_rng(0))
    assert len(h.batch_loss) == 2 * 4
    with pytest.raises(ValueError, match="batch_size"):
        fit(m, nk.SoftmaxCrossEntropy(), optim.SGD(m), X, y, 1, 200, drop_last=True,
            progress=False)


def test_batch_axis_1_trains_a_time_major_rnn():
    r = np.random.default_rng(0)
    T, B, N = 6, 64, 3
    y = r.integers(0, 2, B)
    X = r.standard_normal((T, B, N)) * 0.3
    X[:, :, 0] += (2 * y - 1) * 0.8
    m = nk.Sequential(nk.RNN(N, 8, seed=0), nk.LastStep(), nk.Linear(8, 2, seed=1))
    batches = []
    orig = m.forward
    m.forward = lambda Xb: (batches.append(Xb.shape), orig(Xb))[1]
    h = fit(m, nk.SoftmaxCrossEntropy(), optim.Adam(m, lr=0.05), X, y, 15, 16, progress=False,
            batch_axis=1, X_val=X, y_val=y, rng=np.random.default_rng(0))
    assert batches[0] == (T, 16, N)                      # cut along B, not T
    assert h.train_loss[-1] < h.train_loss[0] and h.val_acc[-1] > 0.8
    # the same batches by hand: fit's first step equals one Adam step on X[:, idx]
    m2 = nk.Sequential(nk.RNN(N, 8, seed=0), nk.LastStep(), nk.Linear(8, 2, seed=1))
    m3 = nk.Sequential(nk.RNN(N, 8, seed=0), nk.LastStep(), nk.Linear(8, 2, seed=1))
    fit(m2, nk.SoftmaxCrossEntropy(), optim.SGD(m2, lr=0.1), X, y, 1, 64, progress=False,
        batch_axis=1, shuffle=False)
    loss = nk.SoftmaxCrossEntropy()
    o3 = optim.SGD(m3, lr=0.1)
    loss(m3(X), y)
    m3.backward(loss.backward())
    o3.step()
    for k in m2.params:
        np.testing.assert_allclose(m2.params[k], m3.params[k], rtol=1e-12)
    with pytest.raises(ValueError, match="batch_axis"):
        fit(m, nk.SoftmaxCrossEntropy(), optim.SGD(m), X, y, 1, 16, batch_axis=2, progress=False)
    with pytest.raises(ValueError, match="y: expected 64"):
        fit(m, nk.SoftmaxCrossEntropy(), optim.SGD(m), X, y[:10], 1, 16, batch_axis=1,
            progress=False)


def test_early_stopping_stops_and_restores_best():
    X, y = blobs(60)
    m = nk.Sequential(nk.Linear(4, 3, seed=0))
    es = EarlyStopping(patience=2, min_delta=0.0, restore_best=True)
    # a learning rate so large the validation loss rises after the first epochs
    h = fit(m, nk.SoftmaxCrossEntropy(), optim.SGD(m, lr=50.0), X, y, 30, 60, progress=False,
            X_val=X, y_val=y, early_stopping=es, shuffle=False)
    assert h.stopped and len(h.epoch) < 30
    best = int(np.argmin(h.val_loss)) + 1
    assert h.best_epoch == best
    assert len(h.epoch) == best + 2                      # patience epochs after the best
    from nnkit.train import evaluate
    assert evaluate(m, nk.SoftmaxCrossEntropy(), X, y)[0] == pytest.approx(h.val_loss[best - 1])
    with pytest.raises(TypeError, match="early_stopping"):
        fit(m, nk.SoftmaxCrossEntropy(), optim.SGD(m), X, y, 1, 10, early_stopping=3,
            progress=False)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)


def test_a_callback_raising_stop_training_stops():
    X, y = blobs(40)
    m = nk.Sequential(nk.Linear(4, 3, seed=0))

    def cb(ev):
        if ev.kind == "epoch" and ev.epoch == 3:
            raise StopTraining
    h = fit(m, nk.SoftmaxCrossEntropy(), optim.SGD(m, lr=0.1), X, y, 10, 8, progress=False,
            callback=cb)
    assert h.stopped and h.epoch == [1, 2, 3]


@pytest.mark.parametrize("where", ["epoch", "batch"])
def test_scheduler_stepped_per_epoch_or_batch(where):
    X, y = blobs(40)
    m = nk.Sequential(nk.Linear(4, 3, seed=0))
    opt = optim.SGD(m, lr=0.1)
    s = optim.ExponentialLR(opt, gamma=0.5)
    h = fit(m, nk.SoftmaxCrossEntropy(), opt, X, y, 3, 10, progress=False, scheduler=s,
            scheduler_step=where)
    # History.lr: per epoch, the lr at the epoch's end, before an epoch schedule's step
    want = [0.1 * 0.5 ** (e - 1) for e in (1, 2, 3)] if where == "epoch" else \
        [0.1 * 0.5 ** (4 * e) for e in (1, 2, 3)]
    assert h.lr == pytest.approx(want, rel=1e-14)
    with pytest.raises(ValueError, match="scheduler_step"):
        fit(m, nk.SoftmaxCrossEntropy(), opt, X, y, 1, 10, progress=False, scheduler=s,
            scheduler_step="step")


def test_reduce_on_plateau_gets_the_validation_loss():
    X, y = blobs(40)
    m = nk.Sequential(nk.Linear(4, 3, seed=0))
    opt = optim.SGD(m, lr=0.0)           # nothing learns: the validation loss never improves
    s = optim.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    seen = []
    orig = s.step
    s.step = lambda metric: (seen.append(metric), orig(metric))[1]
    h = fit(m, nk.SoftmaxCrossEntropy(), opt, X, y, 4, 10, progress=False, scheduler=s,
            X_val=X[:20], y_val=y[:20])
    assert seen == pytest.approx(h.val_loss)
