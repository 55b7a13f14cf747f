"""4-D tensors (B, C, H, W) as one heatmap per channel: a mosaic with the
channels left to right and the samples top to bottom, one blank cell between
neighbours. The mosaic is a plain 2-D array plus a mask of the gap cells, so
the existing Heatmap widget draws it (gaps in the background colour).

"Samples" and "channels" are the names of a batch's axes (X, Y: (B, C, H, W)).
A filter bank K (F, C, k, k) is not a batch: its rows are filters and its
columns input channels. A walkthrough names a node's two leading axes in its
`axes` mapping ({"K": ("filter", "input channel")}); `axis_names` reads it."""
from __future__ import annotations

import numpy as np


def fits(shape: tuple, max_rows: int, max_cols: int) -> bool:
    """A (B, C, H, W) mosaic fits without downsampling (every pixel its own cell)."""
    if len(shape) != 4:
        return False
    B, C, H, W = shape
    return B * H + B - 1 <= max_rows and C * W + C - 1 <= max_cols


def mosaic(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, gaps): sample n, channel c at rows n·(H+1)…, columns c·(W+1)…."""
    a = np.asarray(a, dtype=np.float64)
    B, C, H, W = a.shape
    out = np.zeros((B * (H + 1) - 1, C * (W + 1) - 1))
    gaps = np.ones(out.shape, dtype=bool)
    for n in range(B):
        for c in range(C):
            r, k = n * (H + 1), c * (W + 1)
            out[r:r + H, k:k + W] = a[n, c]
            gaps[r:r + H, k:k + W] = False
    return out, gaps


BATCH_AXES = ("sample", "channel")


def axis_names(walkthrough, key: str) -> tuple[str, str]:
    """(rows, columns) of node `key`'s mosaic: what its walkthrough calls its
    two leading axes, else a batch's."""
    return tuple(getattr(walkthrough, "axes", {}).get(key, BATCH_AXES))


def note(shape: tuple, axes: tuple[str, str] = BATCH_AXES) -> str:
    B, C, H, W = shape
    rows, cols = axes
    return (f"one {H}×{W} heatmap per {cols}: {cols}s 0…{C - 1} left to right, "
            f"{rows}s 0…{B - 1} top to bottom")
