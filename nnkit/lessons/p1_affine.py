"""P1: the affine layer Y = X Wᵀ + b and its three gradients."""
from __future__ import annotations

import numpy as np

from .. import dense
from ..gradcheck import numeric_gradient
from . import Result, lesson


@lesson("p1-affine-backward", "P1", "Y = XWᵀ + b (b broadcast over rows): dX = dY W, "
        "dW = dYᵀ X, db = Σ_rows dY")
def affine_backward(seed: int) -> Result:
    rng = np.random.default_rng(seed)
    rows, worst = [], 0.0
    for B, N, M in ((1, 3, 2), (4, 5, 3), (16, 8, 6)):
        X, W = rng.standard_normal((B, N)), rng.standard_normal((M, N))
        b, dY = rng.standard_normal(M), rng.standard_normal((B, M))
        Y, cache = dense.affine_forward(X, W, b)
        g = dense.affine_backward(dY, cache)
        # the forward against the broadcast written out: b added to every row
        err_fwd = float(np.abs(Y - (X @ W.T + np.outer(np.ones(B), b))).max())
        closed = {"dX": dY @ W, "dW": dY.T @ X, "db": dY.sum(axis=0)}
        kernel = {"dX": g.dX, "dW": g.dW, "db": g.db}
        err_closed = max(float(np.abs(kernel[k] - closed[k]).max()) for k in closed)
        # L = Σ dY ⊙ Y: its gradient in X, W, b is exactly what the backward returns
        loss = lambda: float((dY * (X @ W.T + b)).sum())  # noqa: E731 (reads X, W, b)
        fd = {"dX": numeric_gradient(loss, X, 1e-3), "dW": numeric_gradient(loss, W, 1e-3),
              "db": numeric_gradient(loss, b, 1e-3)}
        err_fd = max(float(np.abs(fd[k] - closed[k]).max()) for k in closed)
        worst = max(worst, err_fwd / 1e-12, err_closed / 1e-12, err_fd / 1e-8)
        rows.append({"B": B, "N": N, "M": M, "max|Y − (XWᵀ + 1bᵀ)|": err_fwd,
                     "max|kernel − closed form|": err_closed,
                     "max|finite diff − closed form|": err_fd})
    return Result(discrepancy=worst, tolerance=1.0, rows=rows, notes=[
        "closed form: dX = dY W, dW = dYᵀ X, db = dYᵀ 1 (the sum over rows is the adjoint "
        "of broadcasting b over the B rows: b is added to each row, never copied B times).",
        "finite differences: central, step 1e-3, of L = Σ dY ⊙ (XWᵀ + b), which is linear "
        "in X, W and b, so they are exact up to rounding.",
        "discrepancy: the worst of the kernel's errors / 1e-12 and the finite differences' "
        "/ 1e-8 (float64); ≤ 1 passes."])
