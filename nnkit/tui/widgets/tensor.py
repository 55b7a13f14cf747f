"""Tensor panel: shape, dtype, summary statistics and either a table of numbers
or a half-block heatmap. `prepare()` does every O(size) pass (statistics,
slicing, downsampling) and is meant to run in a worker thread; the widget then
only draws at most TABLE_CAP² numbers or the downsampled heatmap."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import ScrollableContainer, Vertical
from textual.reactive import reactive
from textual.strip import Strip
from textual.widgets import DataTable, Static

from nnkit.trace import stats

from . import channels
from .heatmap import Heatmap, downsample

TABLE_CAP = 64          # DataTable stays fast up to about 64×64 numbers
HEAT_ROWS, HEAT_COLS = 40, 128   # 40 rows = 20 terminal lines of half blocks


@dataclass
class TensorData:
    """Everything the widget draws, computed off the UI thread."""
    title: str
    shape: tuple
    dtype: str
    stats: dict
    table: np.ndarray            # top-left ≤ TABLE_CAP×TABLE_CAP of the 2-D view
    heat: np.ndarray             # block-mean downsampled 2-D view
    rows: int                    # size of the full 2-D view
    cols: int
    reshaped: bool               # ndim > 2 shown as (∏ leading, last)
    mark: tuple | None = None    # 2-D index to highlight (the worst element)
    nan_means_unsampled: bool = False   # numeric gradients: NaN = not sampled
    gaps: np.ndarray | None = None      # 4-D: heat is a per-channel mosaic (channels.py)
    channel_note: str = ""

    @property
    def large(self) -> bool:
        return self.rows > TABLE_CAP or self.cols > TABLE_CAP


def as_2d(a: np.ndarray) -> np.ndarray:
    """Scalars → 1×1, vectors → one row, N-d → (∏ leading dims, last dim)."""
    a = np.asarray(a)
    if a.ndim == 0:
        return a.reshape(1, 1)
    if a.ndim == 1:
        return a.reshape(1, -1)
    if a.ndim == 2:
        return a
    return a.reshape(-1, a.shape[-1])


def index_2d(shape: tuple, index: tuple) -> tuple[int, int] | None:
    if index is None or len(index) != len(shape):
        return None
    if len(shape) == 0:
        return (0, 0)
    if len(shape) == 1:
        return (0, int(index[0]))
    flat = int(np.ravel_multi_index(tuple(int(i) for i in index), shape))
    return divmod(flat, int(shape[-1]))


def prepare(title: str, array, *, mark: tuple | None = None,
            nan_means_unsampled: bool = False, width: int = HEAT_COLS,
            axes: tuple[str, str] = channels.BATCH_AXES) -> TensorData:
    """`width`: columns available, so a wide heatmap fits instead of scrolling;
    `axes`: what a 4-D tensor's two leading axes are (its mosaic's legend)."""
    a = np.asarray(array)
    a2 = as_2d(a)
    rows, cols = a2.shape
    shown = np.asarray(a2[:TABLE_CAP, :TABLE_CAP], dtype=np.float64)
    stats_of = a
    if nan_means_unsampled:
        stats_of = a[~np.isnan(a)] if a.size else a
    heat = _channel_mosaic(a, width, axes) or dict(
        heat=downsample(a2, HEAT_ROWS, max(8, min(width, HEAT_COLS)),
                        skip_nan=nan_means_unsampled))
    return TensorData(
        title=title, shape=tuple(a.shape), dtype=str(a.dtype), stats=stats(stats_of),
        table=shown.copy(), rows=rows, cols=cols, reshaped=a.ndim > 2,
        mark=index_2d(a.shape, mark) if mark is not None else None,
        nan_means_unsampled=nan_means_unsampled, **heat)


def _channel_mosaic(a: np.ndarray, width: int, axes: tuple[str, str]) -> dict:
    """(B, C, H, W) small enough: the heatmap is one map per channel."""
    if not channels.fits(a.shape, HEAT_ROWS, max(8, min(width, HEAT_COLS))):
        return {}
    heat, gaps = channels.mosaic(a)
    return dict(heat=heat, gaps=gaps, channel_note=channels.note(a.shape, axes))


def fmt_number(x: float) -> str:
    return f"{x:.4g}"


def cell(x: float, *, unsampled: bool = False, marked: bool = False) -> Text:
    if unsampled and np.isnan(x):
        return Text("·", style="dim", justify="right")
    if np.isnan(x):
        text = Text("nan", style="bold magenta", justify="right")
    elif np.isinf(x):
        text = Text("inf" if x > 0 else "-inf", style="bold yellow", justify="right")
    else:
        text = Text(fmt_number(x), justify="right")
    if marked:
        text.stylize("reverse bold")
    return text


def shape_text(shape: tuple) -> str:
    return "×".join(map(str, shape)) if shape else "scalar"


def stats_text(d: TensorData) -> Text:
    s = d.stats
    t = Text()
    t.append(f"{shape_text(d.shape)} {d.dtype}", style="bold")
    t.append(f"  min {fmt_number(s['min'])}  max {fmt_number(s['max'])}"
             f"  mean {fmt_number(s['mean'])}  std {fmt_number(s['std'])}")
    if d.nan_means_unsampled:
        return t
    bad = s["nonfinite"]
    t.append(f"  non-finite {bad}", style="bold magenta" if bad else "dim")
    return t


class NumberTable(DataTable):
    """A DataTable whose size is known the moment its rows are added.

    DataTable measures new rows only when it next goes idle. On a first
    launch the screen's layout pass could run between the draw and that
    measurement, take the old size (0), and the re-layout the measurement
    then requests was sometimes lost: the statistics showed, the numbers did
    not, until the next step (issue 8.11). Every row here is one line, so the
    height is header + rows; every column is given its width (`_fill_table`),
    so the width (the table is `width: auto`) is their sum plus padding. Both
    whenever the layout asks: the width was still the idle-time measurement
    until issue 24, and the X table under the config form was missing from
    about one snapshot in three under load."""

    def get_content_height(self, container, viewport, width: int) -> int:
        return self.row_count + (self.header_height if self.show_header else 0)

    def get_content_width(self, container, viewport) -> int:
        return sum(column.get_render_width(self) for column in self.columns.values())

    def render_line(self, y: int) -> Strip:
        # DataTable's crop at the right edge sometimes leaves an empty styled
        # segment, depending on when the width was last measured: it draws
        # nothing, but made identical screens differ (a flaky snapshot)
        return Strip([seg for seg in super().render_line(y) if seg.text])


class TensorView(Vertical):
    """Title, statistics and the numbers/heatmap of one array."""

    data: reactive[TensorData | None] = reactive(None, always_update=True, init=False)
    heatmap: reactive[bool | None] = reactive(None, init=False)   # None: by size

    def compose(self) -> ComposeResult:
        yield Static(classes="tv-title")
        yield Static(classes="tv-stats")
        table = NumberTable(show_cursor=False, fixed_columns=1, classes="tv-table")
        table.can_focus = False     # arrows belong to the step navigation
        yield table
        with ScrollableContainer(classes="tv-heat-scroll"):
            yield Heatmap(classes="tv-heat")
        yield Static(classes="tv-note")

    compact = False      # statistics only (the node's value on backward steps)

    def show(self, data: TensorData, heatmap: bool | None, *, compact: bool = False) -> None:
        self.compact = compact
        self.set_reactive(TensorView.heatmap, heatmap)
        self.data = data

    def on_mount(self) -> None:
        self._draw()

    @property
    def showing_heatmap(self) -> bool:
        d = self.data
        if self.heatmap is not None:
            return self.heatmap
        return bool(d is not None and (d.large or d.gaps is not None))

    def watch_data(self, data: TensorData | None) -> None:
        self._draw()

    def watch_heatmap(self, heatmap: bool | None) -> None:
        self._draw()

    def _draw(self) -> None:
        d = self.data
        if d is None or not self.is_mounted:
            return
        self.query_one(".tv-title", Static).update(Text(d.title, style="bold"))
        self.query_one(".tv-stats", Static).update(stats_text(d))
        table = self.query_one(".tv-table", DataTable)
        scroll = self.query_one(".tv-heat-scroll", ScrollableContainer)
        heat = self.query_one(".tv-heat", Heatmap)
        notes = []
        if self.compact:
            table.display = scroll.display = False
            self.query_one(".tv-note", Static).display = False
            return
        if d.reshaped and not (self.showing_heatmap and d.gaps is not None):
            notes.append(f"shown as {d.rows}×{d.cols} (leading axes flattened)")
        if self.showing_heatmap:
            table.display = False
            scroll.display = True
            h, w = d.heat.shape
            # small tensors get wider cells so the colours are readable
            heat.set_array(d.heat, cell_width=max(1, min(4, 48 // max(w, 1))),
                           nan_means_unsampled=d.nan_means_unsampled, gaps=d.gaps)
            scale = fmt_number(heat.scale)
            if d.gaps is not None:
                notes.append(d.channel_note)
            elif (h, w) != (d.rows, d.cols):
                notes.append(f"heatmap of block means {h}×{w} of {d.rows}×{d.cols}")
            special = "grey not sampled" if d.nan_means_unsampled else "magenta NaN · yellow ±inf"
            notes.append(f"blue −{scale} · white 0 · red +{scale} · {special} · h: numbers")
        else:
            scroll.display = False
            table.display = True
            self._fill_table(table, d)
            r, c = d.table.shape
            if (r, c) != (d.rows, d.cols):
                notes.append(f"first {r}×{c} of {d.rows}×{d.cols} shown · h: heatmap")
        note = self.query_one(".tv-note", Static)
        note.update(Text("  ".join(notes), style="dim"))
        note.display = bool(notes)

    @staticmethod
    def _fill_table(table: DataTable, d: TensorData) -> None:
        table.clear(columns=True)
        r, c = d.table.shape
        cells = [[cell(d.table[i, j], unsampled=d.nan_means_unsampled,
                       marked=d.mark == (i, j)) for j in range(c)] for i in range(r)]
        # The row index is a fixed first column, not a DataTable row label:
        # DataTable measures its label column only when it next goes idle, and
        # a frame drawn before that had no row numbers (a flaky snapshot).
        # Explicit widths: a refilled table otherwise keeps its first widths.
        table.add_column("", width=len(str(max(r - 1, 0))))
        for j in range(c):
            width = max([len(str(j))] + [row[j].cell_len for row in cells])
            table.add_column(str(j), width=width)
        for i, row in enumerate(cells):
            table.add_row(Text(str(i), style="bold", justify="right"), *row)
