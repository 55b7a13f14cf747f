"""Heatmap helpers: block means keep NaN visible, sampled gradients skip it,
bins are symmetric about 0, and styles are shared."""
from __future__ import annotations

import numpy as np

from nnkit.tui.widgets.heatmap import (LEVELS, NAN_BIN, NEGINF_BIN, POSINF_BIN,
                                       UNSAMPLED_BIN, cell_style, downsample, quantise)
from nnkit.tui.widgets.tensor import as_2d, index_2d, prepare


def test_downsample_block_means_and_nan():
    a = np.arange(16, dtype=float).reshape(4, 4)
    np.testing.assert_allclose(downsample(a, 2, 2), [[2.5, 4.5], [10.5, 12.5]])
    a[0, 0] = np.nan
    assert np.isnan(downsample(a, 2, 2)[0, 0])          # one NaN marks its block
    s = downsample(a, 2, 2, skip_nan=True)
    assert s[0, 0] == (1 + 4 + 5) / 3                   # not-sampled entries left out
    np.testing.assert_array_equal(downsample(a, 8, 8)[1:], a[1:])   # no upsampling


def test_downsample_1024_squared_to_the_cap():
    a = np.random.default_rng(0).standard_normal((1024, 1024))
    d = downsample(a, 40, 75)
    assert d.shape == (40, 75)
    rows = np.linspace(0, 1024, 40, endpoint=False).astype(int)
    cols = np.linspace(0, 1024, 75, endpoint=False).astype(int)
    np.testing.assert_allclose(d[0, 0], a[:rows[1], :cols[1]].mean())
    np.testing.assert_allclose(d[-1, -1], a[rows[-1]:, cols[-1]:].mean())


def test_quantise_is_symmetric_with_special_bins():
    bins, scale = quantise(np.array([[-2.0, 0.0, 2.0, 1.0, np.nan, np.inf, -np.inf]]))
    assert scale == 2.0
    assert bins.tolist() == [[0, LEVELS, 2 * LEVELS, LEVELS + LEVELS // 2,
                              NAN_BIN, POSINF_BIN, NEGINF_BIN]]
    bins, _ = quantise(np.array([[np.nan]]), nan_bin=UNSAMPLED_BIN)
    assert bins[0, 0] == UNSAMPLED_BIN
    assert cell_style(0, 3) is cell_style(0, 3)         # cached, not rebuilt per cell


def test_views_as_2d_and_index_mapping():
    assert as_2d(np.float64(3.0)).shape == (1, 1)
    assert as_2d(np.zeros(5)).shape == (1, 5)
    assert as_2d(np.zeros((2, 3, 4))).shape == (6, 4)
    assert index_2d((2, 3, 4), (1, 2, 3)) == (5, 3)
    assert index_2d((5,), (4,)) == (0, 4)
    d = prepare("t", np.arange(100 * 70, dtype=np.float32).reshape(100, 70))
    assert d.large and d.table.shape == (64, 64) and d.dtype == "float32"
    assert d.stats["max"] == 100 * 70 - 1
