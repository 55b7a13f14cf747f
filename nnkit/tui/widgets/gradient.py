"""Gradient check panel (backward steps): the verdict line, then the analytic
gradient beside its central-difference estimate, worst element highlighted."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from nnkit.gradcheck import DEFAULT_STEP, TensorCheck

from .tensor import TensorData, TensorView


def verdict_text(title: str, check: TensorCheck | None, status: str = "") -> Text:
    t = Text()
    if check is None:
        t.append(f"{title}: ", style="bold")
        t.append(status or "not checked yet (g checks every node)", style="dim")
        return t
    ok = check.passed
    t.append(" PASS " if ok else " FAIL ", style="bold black on green" if ok else "bold white on red")
    t.append(f" max rel err {check.max_rel_err:.2e}", style="bold green" if ok else "bold red")
    t.append(f"  checked {check.checked}/{check.total}")
    t.append(f"  atol {check.atol:g} rtol {check.rtol:g}\n", style="dim")
    t.append(f"worst {tuple(check.worst_index)}: analytic {check.analytic_at_worst:+.6e}"
             f"  numeric {check.numeric_at_worst:+.6e}")
    return t


class GradientPanel(Vertical):
    def compose(self) -> ComposeResult:
        yield Static(id="verdict")
        with Horizontal(id="grad-pair"):
            yield TensorView(id="grad-analytic", classes="tensor")
            # check mode (--check FILE): the student's gradient beside the analytic one
            student = TensorView(id="grad-student", classes="tensor")
            student.display = False
            yield student
            yield TensorView(id="grad-numeric", classes="tensor")

    def show(self, title: str, analytic: TensorData | None, numeric: TensorData | None,
             check: TensorCheck | None, heatmap: bool | None, status: str = "",
             student: TensorData | None = None) -> None:
        self.query_one("#verdict", Static).update(verdict_text(title, check, status))
        a = self.query_one("#grad-analytic", TensorView)
        n = self.query_one("#grad-numeric", TensorView)
        if analytic is not None:
            a.show(analytic, heatmap)
        a.display = analytic is not None
        if numeric is not None:
            n.show(numeric, heatmap)
        n.display = numeric is not None
        s = self.query_one("#grad-student", TensorView)
        if student is not None:
            s.show(student, heatmap)
        s.display = student is not None


NUMERIC_TITLE = f"numeric (central differences, h = {DEFAULT_STEP:g})"
