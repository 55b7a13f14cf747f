"""A training loop worth watching: `fit` with a progress bar, a history, a callback.

    model = nk.Sequential(nk.Linear(64, 64, init="he_normal"), nk.ReLU(), nk.Linear(64, 10))
    opt = nk.optim.Adam(model, lr=1e-2)
    hist = nk.train.fit(model, nk.SoftmaxCrossEntropy(), opt, X, y, epochs=20,
                        batch_size=32, X_val=Xv, y_val=yv)
    hist.train_loss, hist.val_acc, ...

Each epoch visits the rows of X in an order drawn from the library generator
(`nk.seed`; or `rng=`), in batches of `batch_size` (the last one smaller):
forward in training mode, loss, backward, `optimizer.step()`. The epoch's
train loss and accuracy are the sample-weighted means over its batches, as
measured during the epoch (Keras's convention; the parameters move while they
are measured). The validation set is evaluated in eval mode (running
statistics, no dropout) after each epoch; `evaluate` does the same for any set.
Accuracy is reported for class labels y (n,) or one-hot/soft targets (n, K)
against the argmax of the model's output (n, K); otherwise it is NaN.

Gradients accumulate (as in PyTorch), so each batch starts with
`optimizer.zero_grad()` (or `model.zero_grad()` for an optimizer without one).

`callback(event)` is called after every batch and every epoch with a
`Progress` event (the history so far included); raising `StopTraining` in it
stops the run after that batch and `fit` returns the history with
`stopped = True` (the TUI's cancel key does this).

PyTorch-script options: `drop_last=True` skips the last, smaller batch;
`batch_axis=1` cuts the batches along axis 1 of X, for time-major sequences
(T, B, N) of nk.RNN / nk.BiRNN (y is cut along its axis 0 when it holds one
label or target per sequence, along axis 1 when it is time-major too);
`scheduler=` an nk.optim schedule stepped after every epoch
(`scheduler_step="epoch"`, the default) or every batch ("batch"); a
ReduceLROnPlateau is given the epoch's validation loss (the train loss
without a validation set; the batch's loss per batch). `early_stopping=
EarlyStopping(patience, min_delta)` stops when the validation loss (train
loss without a validation set) has not improved by more than min_delta for
`patience` epochs (`restore_best=True` loads the best epoch's state_dict back);
`History.stopped` is then True and `History.best_epoch` the best epoch. A
callback of your own stops the same way by raising StopTraining.

`example_data` and `example_model` are the `nnkit train` example: scikit-learn's
8×8 digits (1797 images, 10 classes; the optional extra
`pip install nnkit[examples]`) or, without scikit-learn, a synthetic set of the
same shape.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from . import _validate as v
from ._random import generator

__all__ = ["fit", "evaluate", "History", "Progress", "StopTraining", "EarlyStopping", "Dataset",
           "example_data", "example_model", "sparkline"]


class StopTraining(Exception):
    """Raise in a `fit` callback to stop training after the current batch."""


@dataclass
class History:
    """Per-epoch metrics (val_* are NaN without a validation set), every batch's loss."""
    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    batch_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False
    best_epoch: int | None = None     # with early_stopping: the epoch of the best loss

    def as_dict(self) -> dict:
        """A snapshot (copies of the lists: safe to hand to another thread)."""
        return {k: (list(x) if isinstance(x := getattr(self, k), list) else x)
                for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                          "seconds", "stopped")}

    def table(self) -> str:
        lines = [f"{'epoch':>5}  {'train loss':>10}  {'train acc':>9}  {'val loss':>9}  "
                 f"{'val acc':>8}"]
        for i, e in enumerate(self.epoch):
            lines.append(f"{e:>5}  {self.train_loss[i]:>10.4f}  {self.train_acc[i]:>9.2%}  "
                         f"{self.val_loss[i]:>9.4f}  {self.val_acc[i]:>8.2%}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Progress:
    """What a callback sees: kind "batch" or "epoch", where the run is, the latest numbers."""
    kind: str
    epoch: int          # 1-based
    epochs: int
    batch: int          # 1-based within the epoch (the last batch at "epoch" events)
    batches: int
    loss: float         # this batch's loss ("batch"), the epoch's train loss ("epoch")
    acc: float
    history: History


class EarlyStopping:
    """Stop `fit` when the monitored loss (validation, or train without a validation
    set) has not fallen by more than `min_delta` for `patience` epochs (as Keras'
    EarlyStopping). restore_best=True loads the best epoch's model.state_dict()
    back when it stops (or at the end)."""

    def __init__(self, patience: int = 5, min_delta: float = 0.0, restore_best: bool = False):
        self.patience = v.positive_int("patience", patience)
        self.min_delta = v.real_number("min_delta", min_delta)
        self.restore_best = v.flag("restore_best", restore_best)
        self.reset()

    def reset(self) -> None:
        self.best = math.inf
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.best_state = None

    def update(self, epoch: int, value: float, model=None) -> bool:
        """Record one epoch's loss; True when training should stop."""
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            if self.restore_best and model is not None:
                self.best_state = model.state_dict()
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def __repr__(self) -> str:
        return (f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta:g}, "
                f"restore_best={self.restore_best})")


def _batch_data(X, y, batch_axis: int, name_X="X", name_y="y"):
    """X with its samples along batch_axis; y cut along axis 0 (one per sample) or,
    when time-major like X, along batch_axis. Returns (X, y, n, y_axis)."""
    if batch_axis == 0:
        X, y = v.labelled_data(X, y, name_X, name_y)
        return X, y, X.shape[0], 0
    X = v.float_array(name_X, X, None, "(T, n, features...), time-major")
    if X.ndim < 2:
        raise ValueError(f"{name_X}: expected at least 2 axes with batch_axis=1 (T, n, ...), "
                         f"got shape {X.shape}")
    v.nonempty(name_X, X, "(T, n, features...)")
    n = X.shape[1]
    try:
        y = np.asarray(y)
    except Exception as exc:  # noqa: BLE001 -- ragged lists and the like
        raise TypeError(f"{name_y}: expected integer labels or float targets, got "
                        f"{type(y).__name__} ({exc})") from None
    if y.dtype.kind not in "iuf":
        raise TypeError(f"{name_y}: expected integer labels or float targets, got {y.dtype}")
    if y.ndim >= 1 and y.shape[0] == n:
        return X, y, n, 0
    if y.ndim >= 2 and y.shape[1] == n:
        return X, y, n, 1
    raise ValueError(f"{name_y}: expected {n} labels or targets (one per sequence, axis 1 of "
                     f"{name_X}) along axis 0, or time-major along axis 1, got shape {y.shape}")


def _check_model(model, loss, optimizer) -> None:
    for name, obj, methods in (("model", model, ("forward", "backward", "train", "eval")),
                               ("loss", loss, ("forward", "backward")),
                               ("optimizer", optimizer, ("step",))):
        missing = [m for m in methods if not callable(getattr(obj, m, None))]
        if missing:
            raise TypeError(f"{name}: expected an object with {', '.join(methods)}, got "
                            f"{type(obj).__name__} without {', '.join(missing)}")


def _correct(out: np.ndarray, y: np.ndarray) -> float:
    """Number of correct predictions, or NaN when accuracy does not apply."""
    if out.ndim != 2:
        return math.nan
    pred = out.argmax(axis=1)
    if y.ndim == 1 and y.dtype.kind in "iu":
        return float(np.count_nonzero(pred == y))
    if y.ndim == 2 and y.shape == out.shape:
        return float(np.count_nonzero(pred == y.argmax(axis=1)))
    return math.nan


def evaluate(model, loss, X, y, batch_size: int = 512, *,
             batch_axis: int = 0) -> tuple[float, float]:
    """(mean loss, accuracy) of `model` on (X, y) in eval mode; the mode is restored."""
    batch_axis = _axis(batch_axis)
    X, y, n, y_axis = _batch_data(X, y, batch_axis)
    batch_size = v.positive_int("batch_size", batch_size)
    was_training = getattr(model, "training", True)
    model.eval()
    try:
        total = correct = 0.0
        for i in range(0, n, batch_size):
            idx = np.arange(i, min(i + batch_size, n))
            out = model.forward(np.take(X, idx, axis=batch_axis))
            yb = np.take(y, idx, axis=y_axis)
            total += float(loss.forward(out, yb)) * idx.shape[0]
            correct += _correct(np.asarray(out), yb)
    finally:
        model.train(was_training)
    return total / n, correct / n


def _axis(batch_axis) -> int:
    if isinstance(batch_axis, (bool, np.bool_)) or batch_axis not in (0, 1):
        raise ValueError(f"batch_axis: expected 0 (samples first) or 1 (time-major "
                         f"(T, B, ...)), got {batch_axis!r}")
    return int(batch_axis)


def fit(model, loss, optimizer, X, y, epochs: int, batch_size: int, *, X_val=None,
        y_val=None, shuffle: bool = True, rng: np.random.Generator | None = None,
        progress: bool = True, callback: Callable[[Progress], None] | None = None,
        drop_last: bool = False, batch_axis: int = 0, scheduler=None,
        scheduler_step: str = "epoch", early_stopping: EarlyStopping | None = None
        ) -> History:
    """Train `model` on (X, y) with `optimizer` for `epochs` epochs; returns the History."""
    _check_model(model, loss, optimizer)
    batch_axis = _axis(batch_axis)
    X, y, n, y_axis = _batch_data(X, y, batch_axis)
    drop_last = v.flag("drop_last", drop_last)
    scheduler_step = v.choice("scheduler_step", scheduler_step, ("epoch", "batch"))
    if scheduler is not None and not callable(getattr(scheduler, "step", None)):
        raise TypeError(f"scheduler: expected an nk.optim schedule (with step()), got "
                        f"{type(scheduler).__name__}")
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise TypeError(f"early_stopping: expected nk.train.EarlyStopping(...) or None, got "
                        f"{type(early_stopping).__name__}")
    from .optim import ReduceLROnPlateau
    plateau = isinstance(scheduler, ReduceLROnPlateau)
    epochs = v.positive_int("epochs", epochs)
    batch_size = v.positive_int("batch_size", batch_size)
    if (X_val is None) != (y_val is None):
        raise ValueError("X_val: expected X_val and y_val together (or neither), got "
                         f"{'only X_val' if y_val is None else 'only y_val'}")
    if X_val is not None:
        X_val, y_val, _, _ = _batch_data(X_val, y_val, batch_axis, "X_val", "y_val")
    shuffle = v.flag("shuffle", shuffle)
    progress = v.flag("progress", progress)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable or None, got {type(callback).__name__}")
    gen = generator(rng=rng)
    zero_grad = getattr(optimizer, "zero_grad", None)
    if not callable(zero_grad):
        zero_grad = getattr(model, "zero_grad", None)
    if not callable(zero_grad):
        raise TypeError(f"optimizer: expected an object with zero_grad (or a model with "
                        f"zero_grad), got {type(optimizer).__name__} and "
                        f"{type(model).__name__} without it")

    batches = n // batch_size if drop_last else math.ceil(n / batch_size)
    if batches == 0:
        raise ValueError(f"batch_size: expected at most {n} (the number of samples) with "
                         f"drop_last=True, got {batch_size}: no batch would run")
    seen = batches * batch_size if drop_last else n
    if early_stopping is not None:
        early_stopping.reset()
    hist = History()
    bar = _Bar(epochs * batches) if progress else None
    t0 = time.perf_counter()
    model.train()
    try:
        for epoch in range(1, epochs + 1):
            order = gen.permutation(n) if shuffle else np.arange(n)
            total = correct = 0.0
            for b in range(batches):
                idx = order[b * batch_size:(b + 1) * batch_size]
                if batch_axis == 0:
                    Xb, yb = X[idx], y[idx]
                else:
                    Xb, yb = np.take(X, idx, axis=1), np.take(y, idx, axis=y_axis)
                zero_grad()
                out = model.forward(Xb)
                batch_loss = float(loss.forward(out, yb))
                batch_correct = _correct(np.asarray(out), yb)
                model.backward(loss.backward())
                optimizer.step()
                if scheduler is not None and scheduler_step == "batch":
                    scheduler.step(batch_loss) if plateau else scheduler.step()
                total += batch_loss * idx.shape[0]
                correct += batch_correct
                hist.batch_loss.append(batch_loss)
                acc = batch_correct / idx.shape[0]
                if bar is not None:
                    bar.advance(epoch, epochs, batch_loss, acc)
                if callback is not None:
                    callback(Progress("batch", epoch, epochs, b + 1, batches, batch_loss, acc,
                                      hist))
            hist.epoch.append(epoch)
            hist.train_loss.append(total / seen)
            hist.train_acc.append(correct / seen)
            hist.lr.append(float(getattr(optimizer, "lr", math.nan)))
            if X_val is not None:
                vl, va = evaluate(model, loss, X_val, y_val, batch_axis=batch_axis)
            else:
                vl = va = math.nan
            hist.val_loss.append(vl)
            hist.val_acc.append(va)
            monitored = vl if X_val is not None else total / seen
            if scheduler is not None and scheduler_step == "epoch":
                scheduler.step(monitored) if plateau else scheduler.step()
            if bar is not None:
                bar.epoch_line(hist)
            if callback is not None:
                callback(Progress("epoch", epoch, epochs, batches, batches, total / seen,
                                  correct / seen, hist))
            if early_stopping is not None:
                stop = early_stopping.update(epoch, monitored, model)
                hist.best_epoch = early_stopping.best_epoch
                if stop:
                    raise StopTraining(f"early stopping: no improvement for "
                                       f"{early_stopping.patience} epochs")
    except StopTraining:
        hist.stopped = True
    finally:
        if early_stopping is not None and early_stopping.best_state is not None:
            model.load_state_dict(early_stopping.best_state)
        model.train()
        hist.seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
    return hist


class _Bar:
    """A rich progress bar on stderr: epoch, batches, the last batch's loss and accuracy."""

    def __init__(self, total: int):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                                   TextColumn, TimeElapsedColumn)
        self.progress = RichProgress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.1%}"),
            TimeElapsedColumn(), console=Console(stderr=True), transient=False)
        self.task = self.progress.add_task("train", total=total, epoch="1", loss=math.nan,
                                           acc=math.nan)
        self.progress.start()

    def advance(self, epoch, epochs, loss, acc):
        self.progress.update(self.task, advance=1, epoch=f"{epoch}/{epochs}", loss=loss,
                             acc=acc if math.isfinite(acc) else math.nan)

    def epoch_line(self, h: History):
        i = len(h.epoch) - 1
        val = (f"  val loss {h.val_loss[i]:.4f}  val acc {h.val_acc[i]:.1%}"
               if math.isfinite(h.val_loss[i]) else "")
        self.progress.console.print(f"epoch {h.epoch[i]:>3}  train loss {h.train_loss[i]:.4f}"
                                    f"  train acc {h.train_acc[i]:.1%}{val}")

    def close(self):
        self.progress.stop()


# ------------------------------------------------------------- the example
class Dataset(NamedTuple):
    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: int


DATASETS = ("auto", "digits", "synthetic")


def _synthetic(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """1797 samples of 64 features in 10 classes, like the digits: each class a
    Gaussian blob (unit noise) around a random centre of norm ~3.2, so the
    classes overlap a little and test accuracy stays below 100 %."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((10, 64)) * 0.4
    y = rng.integers(0, 10, 1797)
    X = centres[y] + rng.standard_normal((1797, 64))
    return X, y


def example_data(dataset: str = "auto", seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """The `nnkit train` data: "digits" (scikit-learn's load_digits, pixels / 16,
    then standardized with the training split's statistics), "synthetic", or
    "auto" (digits when scikit-learn is installed). A seeded stratification-free
    split: the last `test_fraction` of a seeded permutation is the test set."""
    v.choice("dataset", dataset, DATASETS)
    test_fraction = v.real_number("test_fraction", test_fraction, 0.0, 1.0, low_open=True,
                                  high_open=True)
    name = dataset
    if dataset in ("auto", "digits"):
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            if dataset == "digits":
                raise ImportError("dataset: 'digits' needs scikit-learn "
                                  "(pip install 'nnkit[examples]')") from None
            name = "synthetic"
        else:
            d = load_digits()
            X, y, name = d.data / 16.0, d.target, "digits"
    if name == "synthetic":
        X, y = _synthetic(seed)
    perm = np.random.default_rng(seed).permutation(X.shape[0])
    n_test = max(1, int(round(test_fraction * X.shape[0])))
    tr, te = perm[:-n_test], perm[-n_test:]
    mean, std = X[tr].mean(axis=0), X[tr].std(axis=0)
    std[std == 0] = 1.0                       # constant pixels (the digits' borders)
    Xs = (X - mean) / std
    return Dataset(name, Xs[tr], y[tr].astype(np.int64), Xs[te], y[te].astype(np.int64),
                   int(y.max()) + 1)


def example_model(n_in: int, n_classes: int, hidden: int = 64, seed: int = 0):
    """Linear(n_in, hidden, He init) → ReLU → Linear(hidden, n_classes, LeCun)."""
    from .layers import Linear, ReLU, Sequential
    rng = np.random.default_rng(seed)
    return Sequential(Linear(n_in, hidden, init="he_normal", rng=rng), ReLU(),
                      Linear(hidden, n_classes, rng=rng))


_TICKS = "▁▂▃▄▅▆▇█"


def sparkline(values, width: int = 60) -> str:
    """A one-line curve of `values` (resampled to at most `width` characters)."""
    vals = np.asarray([x for x in values if math.isfinite(x)], dtype=np.float64)
    if vals.size == 0:
        return ""
    if vals.size > width:
        vals = np.array([c.mean() for c in np.array_split(vals, width)])
    lo, hi = vals.min(), vals.max()
    scale = (len(_TICKS) - 1) / (hi - lo) if hi > lo else 0.0
    return "".join(_TICKS[int(round((x - lo) * scale))] for x in vals)
