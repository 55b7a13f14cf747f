"""Table of a full gradient check: one row per node, like `nnkit gradcheck -v`."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from nnkit.gradcheck import GradcheckReport

from .tensor import shape_text

# the verdict first: it stays visible when a narrow pane cuts the table off
COLUMNS = ("result", "tensor", "shape", "checked", "max rel err", "worst", "analytic", "numeric")


class ReportTable(DataTable):
    def show(self, report: GradcheckReport) -> None:
        self.clear(columns=True)
        self.add_columns(*COLUMNS)
        for c in report.checks:
            ok = c.passed
            self.add_row(Text("PASS" if ok else "FAIL", style="bold green" if ok else "bold red"),
                         c.name, shape_text(c.shape), f"{c.checked}/{c.total}",
                         f"{c.max_rel_err:.2e}", str(tuple(c.worst_index)),
                         f"{c.analytic_at_worst:+.4e}", f"{c.numeric_at_worst:+.4e}")

    def results(self) -> list[str]:
        """The result column as plain strings (tests read it)."""
        return [str(self.get_row_at(i)[0]) for i in range(self.row_count)]

    def names(self) -> list[str]:
        return [str(self.get_row_at(i)[1]) for i in range(self.row_count)]
