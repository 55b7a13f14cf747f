"""nnkit.train.fit: reaches 100 % on a separable set, history, shuffles from the
library generator, eval-mode validation, callbacks and StopTraining, bad
input; the `nnkit train` command."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import nnkit as nk
from nnkit import cli, optim, train


def separable(seed=0, n=240, d=6, k=3):
    """k Gaussian blobs (centres 6·e_i, noise σ = 0.5): linearly separable; the
    nearest-centre rule (a linear classifier) is checked to classify every point."""
    rng = np.random.default_rng(seed)
    centres = np.eye(k, d) * 6.0
    y = rng.integers(0, k, n)
    X = centres[y] + 0.5 * rng.standard_normal((n, d))
    assert np.all(np.argmin(((X[:, None] - centres[None]) ** 2).sum(-1), axis=1) == y)
    return X, y


def mlp(d=6, k=3, seed=1):
    return nk.Sequential(nk.Linear(d, 16, init="he_normal", seed=seed), nk.ReLU(),
                         nk.Linear(16, k, seed=seed + 1))


@pytest.mark.parametrize("make_opt", [lambda m: optim.SGD(m, lr=0.1),
                                      lambda m: optim.Adam(m, lr=1e-2),
                                      lambda m: optim.Momentum(m, lr=0.05, momentum=0.9)],
                         ids=["sgd", "adam", "momentum"])
def test_fit_reaches_100_percent_on_a_separable_set(make_opt):
    X, y = separable()
    model, crit = mlp(), nk.SoftmaxCrossEntropy()
    loss0, acc0 = train.evaluate(model, crit, X, y)
    hist = train.fit(model, crit, make_opt(model), X, y, epochs=15, batch_size=16,
                     progress=False)
    loss, acc = train.evaluate(model, crit, X, y)
    assert acc == 1.0 and acc0 < 1.0
    assert loss < loss0
    assert hist.train_acc[-1] == 1.0
    assert len(hist.epoch) == 15 and len(hist.batch_loss) == 15 * math.ceil(240 / 16)
    assert all(math.isnan(x) for x in hist.val_loss)
    assert not hist.stopped


def test_epoch_metrics_are_weighted_means_of_the_batches():
    X, y = separable(n=50)
    events = []
    model = mlp()
    hist = train.fit(model, nk.SoftmaxCrossEntropy(), optim.SGD(model, lr=0.05), X, y, 2, 16,
                     progress=False, callback=events.append)
    batches = [e for e in events if e.kind == "batch"]
    ends = [e for e in events if e.kind == "epoch"]
    assert [e.batch for e in batches] == [1, 2, 3, 4] * 2 and len(ends) == 2
    sizes = [16, 16, 16, 2]
    for ep in (1, 2):
        losses = [e.loss for e in batches if e.epoch == ep]
        accs = [e.acc for e in batches if e.epoch == ep]
        assert hist.train_loss[ep - 1] == pytest.approx(np.dot(losses, sizes) / 50, rel=1e-12)
        assert hist.train_acc[ep - 1] == pytest.approx(np.dot(accs, sizes) / 50, rel=1e-12)
        assert ends[ep - 1].loss == hist.train_loss[ep - 1]


def test_shuffles_come_from_the_library_generator():
    X, y = separable(n=64)

    def run():
        model = mlp()
        return train.fit(model, nk.SoftmaxCrossEntropy(), optim.SGD(model, lr=0.1), X, y, 3, 8,
                         progress=False).batch_loss
    nk.seed(5)
    a = run()
    nk.seed(5)
    b = run()
    nk.seed(6)
    c = run()
    assert a == b and a != c
    model = mlp()
    d = train.fit(model, nk.SoftmaxCrossEntropy(), optim.SGD(model, lr=0.1), X, y, 3, 8,
                  progress=False, shuffle=False).batch_loss
    assert d != a
    nk.seed(6)
    model = mlp()
    e = train.fit(model, nk.SoftmaxCrossEntropy(), optim.SGD(model, lr=0.1), X, y, 3, 8,
                  progress=False, rng=np.random.default_rng(0)).batch_loss
    assert e != c                                   # an explicit rng wins over nk.seed


def test_validation_runs_in_eval_mode_and_training_mode_is_restored():
    X, y = separable(n=96)
    model = nk.Sequential(nk.Linear(6, 8, seed=0), nk.BatchNorm(8, relu=True),
                          nk.Linear(8, 3, seed=1))
    crit = nk.SoftmaxCrossEntropy()
    hist = train.fit(model, crit, optim.Adam(model, lr=1e-2), X, y, 2, 32, X_val=X[:40],
                     y_val=y[:40], progress=False)
    assert model.training and all(layer.training for layer in model.layers)
    # eval mode uses the running statistics: recompute with them by hand
    bnl = model.layers[1]
    H1 = X[:40] @ model.layers[0].params["W"].T + model.layers[0].params["b"]
    Z = (H1 - bnl.running_mean) / np.sqrt(bnl.running_var + bnl.eps) * bnl.params["gamma"] \
        + bnl.params["beta"]
    logits = np.maximum(Z, 0) @ model.layers[2].params["W"].T + model.layers[2].params["b"]
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    expected = float(np.mean(lse - logits[np.arange(40), y[:40]]))
    assert hist.val_loss[-1] == pytest.approx(expected, rel=1e-10)
    assert hist.val_acc[-1] == np.mean(logits.argmax(1) == y[:40])


def test_stop_training_from_the_callback():
    X, y = separable(n=64)
    model = mlp()

    def cb(event):
        if event.kind == "batch" and event.epoch == 2 and event.batch == 3:
            raise train.StopTraining
    hist = train.fit(model, nk.SoftmaxCrossEntropy(), optim.SGD(model, lr=0.1), X, y, 10, 8,
                     progress=False, callback=cb)
    assert hist.stopped and hist.epoch == [1] and len(hist.batch_loss) == 8 + 3


def test_one_hot_targets_and_regression():
    X, y = separable(n=48)
    T = np.eye(3)[y]
    model = mlp()
    hist = train.fit(model, nk.SoftmaxCrossEntropy(), optim.Adam(model, lr=1e-2), X, T, 5, 16,
                     progress=False)
    assert hist.train_acc[-1] == 1.0

    class MSE:
        def forward(self, out, target):
            self.d = out - target.reshape(out.shape)
            return float(np.mean(self.d ** 2))

        def backward(self):
            return 2 * self.d / self.d.size
    lin = nk.Linear(6, 1, seed=0)
    Xr = np.random.default_rng(2).standard_normal((48, 6))
    target = Xr @ np.arange(6.0)
    h = train.fit(lin, MSE(), optim.SGD(lin, lr=0.1), Xr, target, 30, 16, progress=False)
    assert math.isnan(h.train_acc[-1]) and h.train_loss[-1] < 1e-2 * h.train_loss[0]


def test_progress_bar_goes_to_stderr(capsys):
    X, y = separable(n=32)
    model = mlp()
    train.fit(model, nk.SoftmaxCrossEntropy(), optim.SGD(model, lr=0.1), X, y, 2, 8,
              X_val=X, y_val=y, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "epoch   2  train loss" in err and "val acc" in err


@pytest.mark.parametrize("kw,exc,msg", [
    (dict(epochs=0), ValueError, "epochs: expected a positive integer"),
    (dict(batch_size=2.0), TypeError, "batch_size: expected a positive integer"),
    (dict(y=np.zeros(5, np.int64)), ValueError, "y: expected 32 labels"),
    (dict(y=np.array(["a"] * 32)), TypeError, "y: expected integer labels"),
    (dict(X=np.zeros((32, 6), np.int64)), TypeError, "X: expected dtype float32 or float64"),
    (dict(X_val=np.zeros((4, 6))), ValueError, "X_val: expected X_val and y_val together"),
    (dict(X_val=np.zeros((4, 6)), y_val=np.zeros(3, np.int64)), ValueError, "y_val: expected 4"),
    (dict(callback=3), TypeError, "callback: expected a callable"),
    (dict(progress="no"), TypeError, "progress: expected True or False"),
    (dict(shuffle=1), TypeError, "shuffle: expected True or False"),
    (dict(rng=3), TypeError, "rng: expected a numpy.random.Generator"),
    (dict(model=object()), TypeError, "model: expected an object with forward"),
    (dict(loss=type("OnlyForward", (), {"forward": lambda self, a, b: 0.0})()), TypeError,
     "loss: expected an object with forward, backward"),
    (dict(optimizer="adam"), TypeError, "optimizer: expected an object with step"),
])
def test_bad_input(kw, exc, msg):
    X, y = separable(n=32)
    model = mlp()
    args = dict(model=model, loss=nk.SoftmaxCrossEntropy(), optimizer=optim.SGD(model, lr=0.1),
                X=X, y=y, epochs=1, batch_size=8, progress=False)
    args.update(kw)
    pos = [args.pop(k) for k in ("model", "loss", "optimizer", "X", "y", "epochs", "batch_size")]
    with pytest.raises(exc) as info:
        train.fit(*pos, **args)
    assert str(info.value).startswith(msg), str(info.value)


def test_example_data_is_standardized_and_seeded():
    d = train.example_data("synthetic", 3)
    assert d.name == "synthetic" and d.classes == 10
    assert d.X_train.shape == (1438, 64) and d.X_test.shape == (359, 64)
    np.testing.assert_allclose(d.X_train.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(d.X_train.std(0), 1, rtol=1e-12)
    d2 = train.example_data("synthetic", 3)
    np.testing.assert_array_equal(d.X_test, d2.X_test)
    with pytest.raises(ValueError, match="^dataset: expected one of"):
        train.example_data("mnist")


def test_sparkline():
    assert train.sparkline([3, 2, 1]) == "█▅▁"   # 3.5 of 7 steps rounds to 4
    assert train.sparkline([1, 1]) == "▁▁"
    assert len(train.sparkline(range(1000), width=40)) == 40
    assert train.sparkline([math.nan]) == ""


# ------------------------------------------------------------ nnkit train
def test_cli_train_prints_curve_and_validation_accuracy(capsys):
    assert cli.main(["train", "--dataset", "synthetic", "--epochs", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "dataset synthetic: 1438 train / 359 validation" in out
    assert "train loss per batch" in out and "validation accuracy" in out
    assert "test" not in out          # the held-out rows are a validation set
    acc = float(out.split("validation accuracy ")[1].split("%")[0])
    assert 70 < acc < 100


def test_cli_train_json(capsys):
    assert cli.main(["train", "--dataset", "synthetic", "--epochs", "2", "--optimizer",
                     "momentum", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["optimizer"] == "momentum" and data["lr"] == 0.01
    assert len(data["history"]["train_loss"]) == 2 and 0 < data["val_acc"] <= 1


@pytest.mark.parametrize("argv,msg", [
    (["--epochs", "0"], "--epochs: expected >= 1"),
    (["--lr", "-1"], "--lr: expected a finite number > 0"),
    (["--lr", "inf"], "--lr: expected a finite number > 0, got inf"),
    (["--optimizer", "lbfgs"], "invalid choice"),
])
def test_cli_train_usage_errors(capsys, argv, msg):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--dataset", "synthetic", *argv])
    assert info.value.code == 2 and msg in capsys.readouterr().err


def test_cli_train_digits_without_scikit_learn_is_a_usage_error(capsys):
    try:
        import sklearn  # noqa: F401
    except ImportError:
        with pytest.raises(SystemExit) as info:
            cli.main(["train", "--dataset", "digits"])
        assert info.value.code == 2
        assert "needs scikit-learn" in capsys.readouterr().err
    else:
        assert cli.main(["train", "--dataset", "digits", "--epochs", "1", "--no-progress"]) == 0
        assert "dataset digits" in capsys.readouterr().out
