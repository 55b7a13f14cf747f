"""Moved: the timing helpers and the floors live in nnkit/bench/_timing.py
(installed with the package; `nnkit bench` runs every benchmark). This shim
keeps `from _timing import ...` working for scripts written against it."""
from nnkit.bench._timing import (Table, bandwidth, best_time, gemm_rate,  # noqa: F401
                                 median_time, ratio, share, torch_module)
from nnkit._table import format_table

torch = torch_module()


def fmt_ms(t):
    return "   n/a" if t is None else f"{t * 1e3:8.3f}"


def fmt_ratio(other, ours):
    return "  n/a" if other is None else f"{other / ours:5.2f}x"


def print_table(title, header, rows):
    print()
    print(format_table(header, rows, "r" * len(header), title=title))
