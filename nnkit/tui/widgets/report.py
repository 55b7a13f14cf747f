"""Table of a full gradient check: one row per node, like `nnkit gradcheck -v`.

At 80 columns the pane is about 56 cells wide and the table about 100: the
verdict and the tensor's name are fixed columns (they stay put), the rest
scrolls sideways with [ ] or shift+←/→ (DetailPane.scroll_tensors), so the
analytic and numeric values and the share of the tolerance used are all
reachable."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from nnkit.gradcheck import GradcheckReport

from .tensor import shape_text

# the verdict first: it stays visible when a narrow pane cuts the table off
COLUMNS = ("result", "tensor", "shape", "checked", "max rel err", "worst", "analytic",
           "numeric", "tol used")
FIXED = 2           # result and tensor stay while the rest scrolls sideways
VERDICT_STYLE = {"PASS": "bold green", "KINK": "bold yellow", "VACUOUS": "bold yellow",
                 "FAIL": "bold red"}


class ReportTable(DataTable):
    natural_width = 0       # every column whole, known as soon as the rows are added
    widths: list[int] = []

    def __init__(self, **kwargs) -> None:
        super().__init__(fixed_columns=FIXED, **kwargs)

    def get_content_height(self, container, viewport, width: int) -> int:
        # known as soon as the rows are added, not at DataTable's idle-time
        # measurement (the race tensor.NumberTable describes); one line a row
        return self.row_count + (self.header_height if self.show_header else 0)

    def show(self, report: GradcheckReport) -> None:
        self.clear(columns=True)
        self.add_columns(*COLUMNS)
        rows = []
        for c in report.checks:
            # "tol used": max |a − n| / (atol + rtol·|n|), the share of the
            # allclose tolerance used (≤ 1 passes), as `nnkit gradcheck` prints it
            rows.append((Text(c.verdict, style=VERDICT_STYLE.get(c.verdict, "bold")),
                         c.name, shape_text(c.shape), f"{c.checked}/{c.total}",
                         f"{c.max_rel_err:.2e}", str(tuple(c.worst_index)),
                         f"{c.analytic_at_worst:+.4e}", f"{c.numeric_at_worst:+.4e}",
                         f"{c.tol_used:.3f}"))
        self.add_rows(rows)
        self.widths = [max([len(h)] + [Text(str(r[j])).cell_len for r in rows])
                       + 2 * self.cell_padding for j, h in enumerate(COLUMNS)]
        self.natural_width = sum(self.widths)

    def scroll_columns(self, direction: int, step: int) -> None:
        """Scroll sideways by about `step` cells, always to a column's edge (a
        column cut in half beside the fixed ones reads as part of them)."""
        edges, x = [0], 0
        for w in self.widths[FIXED:]:
            x += w
            edges.append(x)
        now = round(self.scroll_x)
        if direction > 0:
            ahead = [e for e in edges if e > now]
            fits = [e for e in ahead if e <= now + step]
            target = (fits[-1] if fits else ahead[0]) if ahead else now
        else:
            behind = [e for e in edges if e < now]
            fits = [e for e in behind if e >= now - step]
            target = (fits[0] if fits else behind[-1]) if behind else 0
        self.scroll_to(x=min(target, self.max_scroll_x), animate=False)

    def results(self) -> list[str]:
        """The result column as plain strings (tests read it)."""
        return [str(self.get_row_at(i)[0]) for i in range(self.row_count)]

    def names(self) -> list[str]:
        return [str(self.get_row_at(i)[1]) for i in range(self.row_count)]
