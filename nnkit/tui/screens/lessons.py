"""Lessons: every verified derivation (nnkit.lessons) with its verdict.

The lessons run one after another in a worker thread (the screen stays live;
each verdict appears as its lesson finishes). The highlighted lesson shows its
table, notes, discrepancy against tolerance, and a sparkline per curve (P6's
Monte Carlo error, P7's variance per layer, ...). Same numbers as
`nnkit lessons`: both format through nnkit.lessons._report.

A lesson's table is wider than the pane at 80 and at 120 columns (up to 128
characters): its rows never wrap (a wrapped header splits mid-word and puts
values under the wrong column); the table scrolls sideways on its own
(←/→, [ ], the mouse) while the title and notes above and below it wrap.
"""
from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Sparkline, Static
from textual.worker import get_current_worker

from nnkit.lessons import Result, _report, registry

PENDING = "…"


class LessonDone(Message):
    """A lesson finished in the worker."""

    def __init__(self, name: str, result: Result) -> None:
        super().__init__()
        self.name = name
        self.result = result


class LessonsScreen(Screen):
    DEFAULT_CSS = """
    LessonsScreen #lessons-title { height: 1; background: $panel; padding: 0 1; }
    LessonsScreen #lessons-body { height: 1fr; }
    LessonsScreen #lesson-list { width: 44; height: 1fr; }   /* the columns + a scrollbar */
    LessonsScreen #lesson-detail { width: 1fr; height: 1fr; padding: 0 1; }
    LessonsScreen #lesson-head { height: auto; }
    LessonsScreen #lesson-text { height: auto; margin-top: 1; }
    LessonsScreen #lesson-table-scroll {
        height: auto; overflow-x: auto; overflow-y: hidden; margin: 1 0;
    }
    LessonsScreen #lesson-table { width: auto; height: auto; }
    LessonsScreen #lesson-curves { height: auto; }
    LessonsScreen .curve-label { height: auto; margin-top: 1; }   /* wraps in a narrow pane */
    LessonsScreen Sparkline { height: 3; }
    """
    BINDINGS = [
        Binding("escape,q", "close", "Back", tooltip="back to the walkthrough"),
        Binding("r", "rerun", "Re-run", tooltip="run every lesson again"),
        # the list keeps ↑/↓; sideways keys scroll the lesson's table (its rows never wrap)
        Binding("right,],shift+right", "scroll_table(1)", "Scroll table", key_display="←→",
                priority=True, tooltip="scroll the lesson's table sideways"),
        Binding("left,[,shift+left", "scroll_table(-1)", "Scroll table", show=False,
                priority=True, tooltip="scroll the lesson's table sideways"),
    ]

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
        self.lessons = registry()
        self.results: dict[str, Result] = {}
        self.shown: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("Lessons: verified derivations (seed "
                     f"{self.seed}); ↑/↓ choose, r re-run, esc back", id="lessons-title")
        with Horizontal(id="lessons-body"):
            yield DataTable(id="lesson-list", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="lesson-detail"):
                yield Static(id="lesson-head")
                with ScrollableContainer(id="lesson-table-scroll"):
                    yield Static(id="lesson-table")
                yield Static(id="lesson-text")
                yield Vertical(id="lesson-curves")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#lesson-list", DataTable)
        table.add_column("lesson", key="lesson")
        table.add_column("P", key="problem")
        table.add_column("result", key="result")
        for name, les in self.lessons.items():
            table.add_row(name, les.problem, PENDING, key=name)
        table.focus()
        if self.lessons:
            self.show(next(iter(self.lessons)))
        self.run_lessons()

    # -------------------------------------------------------------- work
    @work(thread=True, exclusive=True, group="lessons")
    def run_lessons(self) -> None:
        worker = get_current_worker()
        for name, les in self.lessons.items():
            if worker.is_cancelled:
                return
            try:
                result = les.run(self.seed)
            except Exception as exc:        # a broken lesson fails, the screen stays
                result = _report.error_result(exc)
            self.post_message(LessonDone(name, result))

    def on_lesson_done(self, message: LessonDone) -> None:
        self.results[message.name] = message.result
        verdict = _report.verdict(message.result)
        style = "bold green" if message.result.passed else "bold red"
        self.query_one("#lesson-list", DataTable).update_cell(
            message.name, "result", Text(verdict, style=style))
        if message.name == self.shown:
            self.show(message.name)

    # ------------------------------------------------------------- views
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value in self.lessons:
            self.show(event.row_key.value)

    def show(self, name: str) -> None:
        self.shown = name
        les = self.lessons[name]
        r = self.results.get(name)
        head = Text()
        head.append(f"{les.name}  ({les.problem})\n", style="bold")
        head.append(les.title)
        self.query_one("#lesson-head", Static).update(head)
        table = _report.table(r) if r is not None else ""
        self.query_one("#lesson-table", Static).update(
            Text(table, no_wrap=True, overflow="ignore", end=""))
        scroll = self.query_one("#lesson-table-scroll", ScrollableContainer)
        scroll.display = bool(table)
        scroll.scroll_to(x=0, animate=False)
        text = Text()
        if r is None:
            text.append("running…", style="dim")
        else:
            for note in r.notes:
                text.append(note + "\n", style="dim")
            text.append("\n" + _report.summary(r),
                        style="bold green" if r.passed else "bold red")
        self.query_one("#lesson-text", Static).update(text)
        box = self.query_one("#lesson-curves", Vertical)
        box.remove_children()
        if r is not None:
            widgets = []
            for label, values in r.curves.items():
                vals = [float(v) for v in values]
                widgets.append(Static(f"{label}  (min {_report.cell(min(vals))}, "
                                      f"max {_report.cell(max(vals))}, {len(vals)} points)",
                                      classes="curve-label"))
                widgets.append(Sparkline(vals, classes="curve"))
            if widgets:
                box.mount_all(widgets)

    # ----------------------------------------------------------- actions
    def action_scroll_table(self, direction: int) -> None:
        scroll = self.query_one("#lesson-table-scroll", ScrollableContainer)
        scroll.scroll_relative(x=direction * max(8, scroll.size.width // 2), animate=False)

    def action_close(self) -> None:
        self.workers.cancel_group(self, "lessons")
        self.app.pop_screen()

    def action_rerun(self) -> None:
        self.results.clear()
        table = self.query_one("#lesson-list", DataTable)
        for name in self.lessons:
            table.update_cell(name, "result", PENDING)
        if self.shown:
            self.show(self.shown)
        self.run_lessons()
