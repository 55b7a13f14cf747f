"""How a lesson's Result is shown: one formatter for `nnkit lessons` and the TUI."""
from __future__ import annotations

import math
from html import escape as _escape

import numpy as np

from .._table import format_table, html_table
from . import Lesson, Result


def cell(x) -> str:
    """A table cell: floats to 4 significant digits, NaN as '-'."""
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if math.isnan(x):
            return "-"
        return f"{x:.4g}"
    return str(x)


def cells(result: Result) -> tuple:
    """(headers, rows, align) of the result's table: text and HTML alike."""
    headers = list(result.rows[0])
    rows = [[cell(r.get(h, "")) for h in headers] for r in result.rows]
    align = "".join("l" if isinstance(result.rows[0][h], str) else "r" for h in headers)
    return headers, rows, align


def table(result: Result) -> str:
    """The rows as a text table (numbers right-aligned)."""
    if not result.rows:
        return ""
    return format_table(*cells(result))


def html(result: Result) -> str:
    """The rows as an HTML table (Jupyter), the summary and notes under it."""
    after = [summary(result)] + list(result.notes)
    if not result.rows:
        return "".join(f"<p>{_escape(n)}</p>" for n in after)
    return html_table(*cells(result), notes=after)


def verdict(result: Result) -> str:
    return "PASS" if result.passed else "FAIL"


def summary(result: Result) -> str:
    return (f"discrepancy {cell(result.discrepancy)} (tolerance {cell(result.tolerance)})"
            f"  {verdict(result)}")


def _json_value(x):
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else float(x)
    return str(x)


def to_dict(lesson: Lesson, result: Result, seed: int) -> dict:
    """JSON-ready: non-finite numbers become null."""
    return dict(name=lesson.name, problem=lesson.problem, title=lesson.title, seed=seed,
                passed=result.passed, discrepancy=_json_value(result.discrepancy),
                tolerance=_json_value(result.tolerance),
                rows=[{k: _json_value(v) for k, v in r.items()} for r in result.rows],
                curves={k: [_json_value(v) for v in vs] for k, vs in result.curves.items()},
                notes=list(result.notes))


def error_result(exc: BaseException) -> Result:
    """A lesson that raised: a failure with the error as its note."""
    return Result(discrepancy=float("nan"), tolerance=0.0,
                  notes=[f"raised {type(exc).__name__}: {exc}"])
