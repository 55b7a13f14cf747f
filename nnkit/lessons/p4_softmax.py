"""P4: the gradient of softmax cross-entropy is ŷ − y."""
from __future__ import annotations

import numpy as np

from .. import softmax as sm
from . import Result, lesson


def _loss(z, y):
    """Per-sample L = −Σ_k y_k log softmax(z)_k, summed over the rows (float64, stable)."""
    m = z.max(axis=1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    return -(y * logp).sum()


@lesson("p4-softmax-grad", "P4", "∂L/∂z = ŷ − y for L = −Σ y log softmax(z)")
def softmax_gradient(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    rows, worst = [], 0.0
    for B, K, scale in ((4, 3, 1.0), (8, 10, 3.0), (16, 5, 1000.0)):
        z = scale * rng.standard_normal((B, K))
        labels = rng.integers(0, K, B)
        y = np.eye(K)[labels]
        # ŷ by hand, stably (subtract the row max: exp never overflows)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        yhat = e / e.sum(axis=1, keepdims=True)
        _, cache = sm.softmax_cross_entropy(z, labels)
        # nnkit's loss is the batch mean: its gradient is (ŷ − y)/B
        kernel = B * sm.softmax_cross_entropy_backward(1.0, cache)
        err_kernel = float(np.abs(kernel - (yhat - y)).max())
        err_fd = float("nan")
        if scale < 100:     # central differences of the summed loss, step 1e-6
            h, fd = 1e-6, np.empty_like(z)
            for idx in np.ndindex(*z.shape):
                zp, zm = z.copy(), z.copy()
                zp[idx] += h
                zm[idx] -= h
                fd[idx] = (_loss(zp, y) - _loss(zm, y)) / (2 * h)
            err_fd = float(np.abs(fd - (yhat - y)).max())
        finite = bool(np.all(np.isfinite(kernel)))
        worst = max(worst, err_kernel / 1e-12, 0.0 if np.isnan(err_fd) else err_fd / 1e-7,
                    0.0 if finite else np.inf)
        rows.append({"B": B, "K": K, "logit scale": scale,
                     "max|kernel − (ŷ − y)|": err_kernel,
                     "max|finite diff − (ŷ − y)|": err_fd,
                     "finite": finite})
    return Result(discrepancy=worst, tolerance=1.0, rows=rows, notes=[
        "discrepancy: the worst of max|kernel − (ŷ − y)| / 1e-12 and "
        "max|central difference − (ŷ − y)| / 1e-7 (step 1e-6, float64); ≤ 1 passes.",
        "Logits of scale 1000 overflow exp(z) unless the row max is subtracted first; "
        "the kernel's gradient stays finite and equals ŷ − y.",
        "nnkit's loss is the mean over the batch, so the kernel returns (ŷ − y)/B."])
