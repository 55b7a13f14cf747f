"""Timing, the two physical rates (bandwidth, GEMM rate) and the result tables
of `nnkit bench` (not a test: nothing here asserts a time).

Floors. A benchmark row prints beside its ratios the time the hardware
allows and the share of it reached (floor / time, 100 % = at the floor):
  memory-bound kernels  bytes moved / bandwidth()      (one large copy, read +
                        write counted, the best of NumPy's and PyTorch's copy)
  GEMM-bound kernels    flops / gemm_rate(dtype)       (one large SciPy BLAS
                        GEMM: the library every nnkit kernel calls)
Both rates are measured in the same run as the kernels (same load, same
clock), once per process and dtype (cached), so the floors move with the
machine.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .._table import format_table


# ------------------------------------------------------------- settings
@dataclass
class Settings:
    """How `nnkit bench` runs: quick = tiny shapes and few repeats (a smoke
    test of the tables, its numbers mean nothing); torch = time PyTorch when
    it is importable."""
    quick: bool = False
    torch: bool = True


SETTINGS = Settings()


def torch_module():
    """PyTorch (on the machine's cores), or None when absent or not wanted."""
    if not SETTINGS.torch:
        return None
    try:
        import torch
    except ImportError:      # pragma: no cover - depends on the machine
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


def torch_train_time(torch, forward, inputs, upstream, **timing) -> float | None:
    """Median time of PyTorch's training forward + backward, timed the same
    way in every bench: `forward(*tensors)` over `inputs` (NumPy arrays shared
    with torch, a gradient wanted for each), the gradients cleared as a
    training loop clears them, then backward from `upstream`. `timing` goes
    to median_time. None when `torch` is None (absent or not wanted)."""
    if torch is None:
        return None
    tensors = [torch.from_numpy(a).requires_grad_(True) for a in inputs]
    dout = torch.from_numpy(upstream)

    def step():
        out = forward(*tensors)
        for t in tensors:
            t.grad = None
        out.backward(dout)

    return median_time(step, **timing)


# --------------------------------------------------------------- timing
def median_time(fn, *, repeats: int = 15, min_seconds: float = 1.0, warmup: int = 2,
                cooldown: float = 0.3) -> float:
    """Median wall time of fn() in seconds over at least `repeats` calls.

    `cooldown` seconds of sleep first: NumPy's and SciPy's OpenBLAS and
    PyTorch each keep a thread pool that spins for a while after its last
    call, and on 2 cores a spinning pool steals the CPU from whatever is
    measured next (seen: nnkit's affine 25 % slower right after NumPy's GEMMs,
    equal in a fresh process). Quick mode: 2 calls, no cooldown.
    """
    if SETTINGS.quick:
        repeats, min_seconds, warmup, cooldown = 2, 0.0, 1, 0.0
    time.sleep(cooldown)
    for _ in range(warmup):
        fn()
    times = []
    t_end = time.perf_counter() + min_seconds
    while len(times) < repeats or (time.perf_counter() < t_end and len(times) < 2000):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def best_time(fn, repeats: int = 15) -> tuple[float, float]:
    """(median, best) seconds of fn(): median_time's calls, then `repeats` more."""
    med = median_time(fn, repeats=repeats)
    n = 2 if SETTINGS.quick else repeats
    best = min(_once(fn) for _ in range(n))
    return med, min(best, med)


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---------------------------------------------------------------- rates
_RATES: dict = {}


def bandwidth(*, best: bool = False) -> float:
    """Memory bandwidth in bytes/s: a 256 MB copy (read + write = 2 x 256 MB
    counted; the write-allocate read is left out, as every floor leaves it
    out), the faster of NumPy's copy (one thread) and PyTorch's (all cores).
    best=True: the best call instead of the median (for best-time tables)."""
    key = ("bw", best)
    if key not in _RATES:
        nbytes = (8 << 20) if SETTINGS.quick else (256 << 20)
        src = np.ones(nbytes // 4, np.float32)
        dst = np.empty_like(src)
        pick = (lambda f: best_time(f, 5)[1]) if best else \
            (lambda f: median_time(f, repeats=5, min_seconds=0.5))
        rate = 2 * nbytes / pick(lambda: np.copyto(dst, src))
        torch = torch_module()
        if torch is not None:
            ts, td = torch.from_numpy(src), torch.from_numpy(dst)
            rate = max(rate, 2 * nbytes / pick(lambda: td.copy_(ts)))
        _RATES[key] = rate
    return _RATES[key]


def gemm_rate(dtype, m: int | None = None, n: int | None = None,
              k: int | None = None) -> float:
    """flop/s of one SciPy BLAS GEMM (the BLAS nnkit's kernels call), all
    threads: (m x k) @ (k x n), 2 m n k flops. Default: square 1536 (1024 in
    float64), the machine's practical peak; give a shape for a product's own
    rate (the RNN's step product)."""
    from scipy.linalg import blas
    dt = np.dtype(dtype)
    if m is None:
        m = 256 if SETTINGS.quick else (1536 if dt == np.float32 else 1024)
    n = m if n is None else n
    k = m if k is None else k
    key = ("gemm", dt.name, m, n, k)
    if key not in _RATES:
        rng = np.random.default_rng(0)
        A = np.asfortranarray(rng.standard_normal((m, k)).astype(dt))
        Bm = np.asfortranarray(rng.standard_normal((k, n)).astype(dt))
        C = np.empty((m, n), dt, order="F")
        f = blas.sgemm if dt == np.float32 else blas.dgemm
        t = median_time(lambda: f(1.0, A, Bm, c=C, overwrite_c=True), repeats=7,
                        min_seconds=0.5)
        _RATES[key] = 2.0 * m * n * k / t
    return _RATES[key]


# --------------------------------------------------------------- tables
# Column kinds: how a raw value prints. Times are stored in seconds, ratios
# and shares as plain fractions; --json writes the raw values.
KINDS = {
    "text": lambda v: str(v),
    "ms": lambda v: f"{v * 1e3:.3f}",
    "us": lambda v: f"{v * 1e6:.2f}",
    "ratio": lambda v: f"{v:.2f}x",
    "share": lambda v: f"{100 * v:.0f}%",
    "num": lambda v: f"{v:.3g}",
}


@dataclass
class Table:
    """One benchmark table: columns (name, kind), rows of raw values (None =
    not measured: PyTorch absent), notes printed under it."""
    name: str                  # stable key for --json (e.g. "bn_relu")
    title: str
    columns: list              # [(name, kind)]
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    # row -> row: cells computed from other cells (a verdict from a ratio), set
    # by add() and again by median_tables, so they agree with the medians printed
    derive: object = None

    def add(self, *values) -> None:
        if len(values) != len(self.columns):
            raise ValueError(f"row: expected {len(self.columns)} values, got {len(values)}")
        row = list(values)
        self.rows.append(self.derive(row) if self.derive else row)

    def text(self) -> str:
        cells = [[("n/a" if v is None else KINDS[kind](v))
                  for v, (_, kind) in zip(r, self.columns)] for r in self.rows]
        align = "".join("l" if kind == "text" else "r" for _, kind in self.columns)
        out = format_table([c for c, _ in self.columns], cells, align, title=self.title)
        return "\n".join([out] + [f"  {n}" for n in self.notes])

    def to_dict(self) -> dict:
        return dict(name=self.name, title=self.title,
                    columns=[dict(name=c, kind=k) for c, k in self.columns],
                    rows=[{c: _plain(v) for (c, _), v in zip(self.columns, r)}
                          for r in self.rows],
                    notes=list(self.notes))


def _plain(v):
    if v is None or isinstance(v, str):
        return v
    v = float(v)
    return v if math.isfinite(v) else None


def median_tables(runs: list[list[Table]]) -> list[Table]:
    """Cell-wise median over several runs of the same tables (text cells must
    agree; a cell None in any run stays None). Notes come from the last run."""
    out = []
    for tables in zip(*runs):
        first = tables[0]
        rows = []
        for i, row in enumerate(first.rows):
            new = []
            for j, (_, kind) in enumerate(first.columns):
                vals = [t.rows[i][j] for t in tables]
                if kind == "text" or any(v is None for v in vals):
                    new.append(vals[-1] if kind == "text" else None)
                else:
                    new.append(float(np.median(vals)))
            rows.append(first.derive(new) if first.derive else new)
        out.append(Table(first.name, first.title, first.columns, rows, tables[-1].notes,
                         first.derive))
    return out


def share(floor: float, t: float | None) -> float | None:
    """floor / time: the share of the floor reached (1.0 = at the floor)."""
    return None if t is None else floor / t


def ratio(other: float | None, ours: float) -> float | None:
    """other / nnkit (> 1: nnkit is faster)."""
    return None if other is None else other / ours
