"""One plain-text table printer for the CLI, the gradcheck report, the lessons
and the benchmarks (they used to carry four copies of the same width loop)."""
from __future__ import annotations

from typing import Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence], align: str | None = None,
                 *, title: str = "", sep: str = "  ") -> str:
    """Columns padded to their widest cell, a dashed rule under the header.

    align: one character per column, "l" (left) or "r" (right); default all
    left. Cells are str()-ed; none is ever cut, so a long cell widens its
    column (put free-text columns last to keep the others narrow). Trailing
    spaces are stripped from every line.
    """
    headers = [str(h) for h in headers]
    ncol = len(headers)
    align = align or "l" * ncol
    if len(align) != ncol or set(align) - {"l", "r"}:
        raise ValueError(f"align: expected {ncol} characters from 'l'/'r' (one per "
                         f"column), got {align!r}")
    cells = [[str(c) for c in r] for r in rows]
    for i, r in enumerate(cells):
        if len(r) != ncol:
            raise ValueError(f"rows[{i}]: expected {ncol} cells (one per header), "
                             f"got {len(r)}")
    widths = [max([len(h)] + [len(r[j]) for r in cells]) for j, h in enumerate(headers)]

    def line(r):
        return sep.join(c.rjust(w) if a == "r" else c.ljust(w)
                        for c, w, a in zip(r, widths, align)).rstrip()

    out = [title] if title else []
    out.append(line(headers))
    out.append(sep.join("-" * w for w in widths))
    out.extend(line(r) for r in cells)
    return "\n".join(out)
