"""Shared timing helpers for the benchmark scripts (not a test: nothing asserts)."""
from __future__ import annotations

import time

import numpy as np

from nnkit._table import format_table

try:  # PyTorch is an optional partner: CPU wheel, `pip install torch==2.13.0`
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None

# Measured on this project's machines (2 cores): ~37 GB/s stream bandwidth.
BANDWIDTH = 37e9


def median_time(fn, *, repeats: int = 15, min_seconds: float = 1.0, warmup: int = 2,
                cooldown: float = 0.3) -> float:
    """Median wall time of fn() in seconds over at least `repeats` calls.

    `cooldown` seconds of sleep first: NumPy's and SciPy's OpenBLAS and
    PyTorch each keep a thread pool that spins for a while after its last
    call, and on 2 cores a spinning pool steals the CPU from whatever is
    measured next (seen: nnkit's affine 25 % slower right after NumPy's GEMMs,
    equal in a fresh process).
    """
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


def fmt_ms(t: float | None) -> str:
    return "   n/a" if t is None else f"{t * 1e3:8.3f}"


def fmt_ratio(other: float | None, ours: float) -> str:
    return "  n/a" if other is None else f"{other / ours:5.2f}x"


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """The benchmark tables: nnkit's one table printer, numbers right-aligned."""
    print()
    print(format_table(header, rows, "r" * len(header), title=title))
