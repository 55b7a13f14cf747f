"""The right-hand pane: formula, gradient check, the node's value, its views
and the full check report. It only draws what it is given; the walkthrough
screen decides what that is."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from nnkit.gradcheck import GradcheckReport, TensorCheck

from ..messages import StepData
from .derivation import DerivationPanel
from .formula import FormulaPanel
from .gradient import GradientPanel
from .report import ReportTable
from .steps import BACKWARD, Step
from .tensor import TensorData, TensorView


REPORT_TITLE = "Gradient check of every node"
SCROLL_HINT = "  ([ ] scroll sideways)"


class DetailPane(VerticalScroll):
    def compose(self) -> ComposeResult:
        yield FormulaPanel(id="formula")
        derivation = DerivationPanel(id="derivation")     # check mode only
        derivation.display = False
        yield derivation
        yield GradientPanel(id="gradient")
        yield TensorView(id="value", classes="tensor")
        yield Vertical(id="views")
        with Vertical(id="report"):
            yield Static(REPORT_TITLE, id="report-title")
            yield ReportTable(id="report-table", show_cursor=False)

    def on_mount(self) -> None:
        self.can_focus = False    # ←/→ step; the pane scrolls with the mouse or pgup/pgdn
        self.query_one("#report-table").can_focus = False
        self.query_one("#gradient").display = False
        self.query_one("#report").display = False

    @property
    def heat_width(self) -> int:
        """Columns for heatmaps (read on the UI thread, used by workers)."""
        width = self.size.width - 3
        return width if width > 0 else 80

    def show_formula(self, step: Step, parents: list[str], children: list[str],
                     insights: list[str] | None) -> None:
        self.query_one(FormulaPanel).show(step, children, insights, parents)
        self.query_one(GradientPanel).display = step.phase == BACKWARD

    def show_error(self, message: str) -> None:
        self.query_one(FormulaPanel).update(Text(message, style="bold red"))

    def show_derivation(self, step: Step | None, path, report, error: str,
                        names: dict[str, str]) -> None:
        """Check mode: the student's verdict for the step (or the file's summary)."""
        panel = self.query_one(DerivationPanel)
        panel.show(step, path, report, error, names)
        panel.display = True

    def draw(self, step: Step, data: StepData, check: TensorCheck | None,
             numeric: TensorData | None, heatmap: bool | None,
             student: TensorData | None = None) -> None:
        # going back, the gradient is the subject; the value shrinks to its statistics
        self.query_one("#value", TensorView).show(data.value, heatmap,
                                                  compact=step.phase == BACKWARD)
        if step.phase == BACKWARD:
            self.draw_gradient(step, data, check, numeric, heatmap, student)
        self._draw_views(data.views, heatmap)

    def draw_gradient(self, step: Step, data: StepData, check: TensorCheck | None,
                      numeric: TensorData | None, heatmap: bool | None,
                      student: TensorData | None = None) -> None:
        self.query_one(GradientPanel).show(step.title, data.analytic,
                                           numeric if check is not None else None,
                                           check, heatmap, "checking…" if check is None else "",
                                           student)

    def _draw_views(self, views: dict[str, TensorData], heatmap: bool | None) -> None:
        box = self.query_one("#views", Vertical)
        pool = list(box.query(TensorView))
        for tv in pool[len(views):]:
            tv.display = False
        for k, data in enumerate(views.values()):
            if k < len(pool):
                tv = pool[k]
                tv.display = True
            else:
                tv = TensorView(classes="tensor view")
                box.mount(tv)
            tv.show(data, heatmap)
        box.display = bool(views)

    def toggle_heatmap(self) -> bool:
        """Numbers ↔ heatmap for every tensor of the pane; returns the new mode."""
        heatmap = not self.query_one("#value", TensorView).showing_heatmap
        for tv in self.query(TensorView):
            tv.heatmap = heatmap
        return heatmap

    def show_report(self, report: GradcheckReport | None) -> None:
        box = self.query_one("#report")
        box.display = report is not None
        if report is not None:
            self.query_one(ReportTable).show(report)
            self._report_hint()
            self.call_after_refresh(box.scroll_visible)

    def _report_hint(self) -> None:
        """Say how to reach the columns the pane cuts off (from the table's
        natural width: DataTable measures its own only when next idle)."""
        table = self.query_one(ReportTable)
        wide = table.natural_width > self.scrollable_content_region.width
        self.query_one("#report-title", Static).update(
            Text.assemble(REPORT_TITLE, (SCROLL_HINT if wide else "", "dim")))

    def on_resize(self) -> None:
        if self.query_one("#report").display:
            self._report_hint()

    def scroll_tensors(self, direction: int) -> None:
        """Scroll every number table, heatmap and the check report sideways
        (about a third of the pane)."""
        step = max(8, self.size.width // 3)
        for widget in self.query(".tv-table, .tv-heat-scroll"):
            widget.scroll_relative(x=direction * step, animate=False)
        self.query_one(ReportTable).scroll_columns(direction, step)

    def page(self, direction: int) -> None:
        self.scroll_relative(y=direction * max(1, self.size.height - 2), animate=False)
