"""Half-block heatmap: two tensor rows per terminal line ("▀": fg = upper row,
bg = lower row), drawn with the Line API so a 1024×1024 tensor costs only the
downsampled cells on screen, never a widget per element."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

# Diverging palette: blue (negative) → near-white (0) → red (positive), LEVELS
# steps each side. Non-finite values get colours outside the scale so that an
# ε = 0 NaN column stands out instead of blending in.
LEVELS = 8
_NEG = (33, 102, 172)
_MID = (240, 240, 240)
_POS = (178, 24, 43)
NAN_BIN, POSINF_BIN, NEGINF_BIN, UNSAMPLED_BIN, GAP_BIN = -1, -2, -3, -4, -5
_SPECIAL = {NAN_BIN: (255, 0, 255), POSINF_BIN: (255, 215, 0), NEGINF_BIN: (0, 255, 255),
            UNSAMPLED_BIN: (90, 90, 90), GAP_BIN: (0, 0, 0)}   # GAP: between channel maps
HALF = "▀"


def _mix(a, b, t):
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def bin_colour(b: int) -> tuple[int, int, int]:
    if b in _SPECIAL:
        return _SPECIAL[b]
    k = b - LEVELS
    return _mix(_MID, _POS, k / LEVELS) if k >= 0 else _mix(_MID, _NEG, -k / LEVELS)


@lru_cache(maxsize=None)
def cell_style(top: int, bottom: int | None) -> Style:
    """Styles are cached: at most (2·LEVELS+4)² distinct ones ever exist."""
    fg = Color.from_rgb(*bin_colour(top))
    bg = None if bottom is None else Color.from_rgb(*bin_colour(bottom))
    return Style(color=fg, bgcolor=bg)


def downsample(a: np.ndarray, max_rows: int, max_cols: int, *,
               skip_nan: bool = False) -> np.ndarray:
    """Block means down to at most max_rows × max_cols (NaN in a block stays NaN,
    so a non-finite entry is never averaged away). With skip_nan (sampled
    numeric gradients, NaN = not sampled) NaNs are left out of the means."""
    a = np.asarray(a, dtype=np.float64)
    if skip_nan:
        known = ~np.isnan(a)
        total = downsample(np.where(known, a, 0.0), max_rows, max_cols)
        share = downsample(known.astype(np.float64), max_rows, max_cols)
        with np.errstate(all="ignore"):
            return np.where(share > 0, total / share, np.nan)
    rows, cols = a.shape
    if rows > max_rows:
        starts = np.linspace(0, rows, max_rows, endpoint=False).astype(np.intp)
        counts = np.diff(np.append(starts, rows))
        with np.errstate(all="ignore"):
            a = np.add.reduceat(a, starts, axis=0) / counts[:, None]
    if cols > max_cols:
        starts = np.linspace(0, cols, max_cols, endpoint=False).astype(np.intp)
        counts = np.diff(np.append(starts, cols))
        with np.errstate(all="ignore"):
            a = np.add.reduceat(a, starts, axis=1) / counts[None, :]
    return a


def quantise(a: np.ndarray, nan_bin: int = NAN_BIN) -> tuple[np.ndarray, float]:
    """Bins 0..2·LEVELS on a scale symmetric about 0, plus the special bins."""
    finite = np.isfinite(a)
    scale = float(np.max(np.abs(a[finite]))) if finite.any() else 0.0
    bins = np.full(a.shape, LEVELS, dtype=np.int16)
    if scale > 0:
        with np.errstate(all="ignore"):
            q = np.rint(np.where(finite, a, 0.0) / scale * LEVELS)
        bins = (q + LEVELS).astype(np.int16)
    bins[np.isnan(a)] = nan_bin
    bins[np.isposinf(a)] = POSINF_BIN
    bins[np.isneginf(a)] = NEGINF_BIN
    return bins, scale


class Heatmap(Widget):
    """Colour map of a 2-D array; its size is set to exactly the cells it draws."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._bins: np.ndarray = np.zeros((0, 0), np.int16)
        self._cell_width = 1
        self._strips: dict[int, Strip] = {}
        self.scale = 0.0

    def set_array(self, a: np.ndarray, *, cell_width: int = 1,
                  nan_means_unsampled: bool = False, gaps: np.ndarray | None = None) -> None:
        """`a` must already be downsampled (the caller does that off the UI thread);
        `gaps` (same shape, bool) marks cells drawn as blank separators."""
        self._bins, self.scale = quantise(np.asarray(a, dtype=np.float64),
                                          UNSAMPLED_BIN if nan_means_unsampled else NAN_BIN)
        if gaps is not None:
            self._bins[gaps] = GAP_BIN
        self._cell_width = max(1, cell_width)
        self._strips = {}
        rows, cols = self._bins.shape
        self.styles.width = cols * self._cell_width
        self.styles.height = max(1, (rows + 1) // 2)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        strip = self._strips.get(y)
        if strip is None:
            strip = self._strips[y] = self._build_line(y)
        return strip.extend_cell_length(self.size.width)

    def _build_line(self, y: int) -> Strip:
        rows, cols = self._bins.shape
        top_row = 2 * y
        if top_row >= rows:
            return Strip.blank(cols * self._cell_width)
        top = self._bins[top_row]
        bottom = self._bins[top_row + 1] if top_row + 1 < rows else None
        segments = []
        run_style, run_len = None, 0
        # merge runs of equal colour pairs into one segment
        for j in range(cols):
            style = cell_style(int(top[j]), None if bottom is None else int(bottom[j]))
            if style is run_style:
                run_len += 1
                continue
            if run_style is not None:
                segments.append(Segment(HALF * (run_len * self._cell_width), run_style))
            run_style, run_len = style, 1
        if run_style is not None:
            segments.append(Segment(HALF * (run_len * self._cell_width), run_style))
        return Strip(segments, cols * self._cell_width)
