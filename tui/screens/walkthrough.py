"""The main screen: step list | formula, value, gradient check, views, report.

All O(size) work runs in thread workers and comes back as messages carrying
the Trace it was computed for; a result for a Trace that has since been
replaced (resample, new config, other walkthrough) is dropped. The screen owns
the bindings so modal screens (config form, export) get their keys to themselves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, OptionList, ProgressBar, Static
from textual.worker import get_current_worker

from nnkit.gradcheck import CheckCancelled, GradcheckReport, TensorCheck
from nnkit.trace import Trace, get

from ..widgets.formula import FormulaPanel
from ..widgets.gradient import NUMERIC_TITLE, GradientPanel
from ..widgets.report import ReportTable
from ..widgets.steps import BACKWARD, FORWARD, Step, StepList, build_steps, step_index
from ..widgets.tensor import TensorData, TensorView, prepare
from .config import ConfigScreen
from .export import ExportScreen, default_export_dir, write_export
from .help import HelpScreen
from .picker import PickerScreen

MAX_ELEMENTS = 256        # per-tensor sample size, as `nnkit gradcheck`
PLAY_INTERVAL = 0.7       # seconds per step when auto-playing


@dataclass
class StepData:
    """What a step shows, prepared off the UI thread."""
    insights: list[str]
    children: list[str]
    value: TensorData
    views: dict[str, TensorData] = field(default_factory=dict)
    analytic: TensorData | None = None


def checked_total(trace: Trace, key: str) -> int:
    return min(int(np.size(trace.values[key])), MAX_ELEMENTS)


def report_title(trace: Trace) -> str:
    return f"{trace.walkthrough.name} " + " ".join(f"{k}={v}" for k, v in trace.cfg.items())


def config_text(cfg: dict) -> str:
    """Compact: B=4 N=3 eps=1e-05 float64 constant_feature (false flags omitted)."""
    parts = []
    for k, v in cfg.items():
        if isinstance(v, bool):
            if v:
                parts.append(k)
        elif isinstance(v, float):
            parts.append(f"{k}={v:g}")
        elif k == "dtype":
            parts.append(str(v))
        else:
            parts.append(f"{k}={v}")
    return " ".join(parts)


class WalkthroughScreen(Screen):
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (76, "-normal"), (130, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (26, "-tall")]

    # tooltip: the longer text the help screen shows
    BINDINGS = [
        Binding("right,n", "next", "Next", priority=True, tooltip="next step"),
        Binding("left,p", "previous", "Prev", priority=True, tooltip="previous step"),
        Binding("home", "first", "First", priority=True, show=False, tooltip="first step"),
        Binding("end", "last", "Last", priority=True, show=False, tooltip="last step"),
        Binding("space", "play", "Play", priority=True,
                tooltip="play / pause: step automatically"),
        Binding("g", "check_all", "Check all",
                tooltip="finite-difference check of every node (progress bar below)"),
        Binding("escape", "cancel", "Cancel check", show=False,
                tooltip="cancel a running check, stop playing"),
        Binding("r", "resample", "Resample", tooltip="resample the inputs (next seed)"),
        Binding("c", "config", "Config", tooltip="edit the configuration (B, N, M, ε, seed, …)"),
        Binding("h", "toggle_heatmap", "Numbers/heatmap",
                tooltip="numbers ↔ colour heatmap (large tensors start as heatmaps)"),
        Binding("z", "eps_zero", "ε=0 demo",
                tooltip="ε = 0 on a batch with a constant feature, and back (P2.1)"),
        Binding("e", "export", "Export",
                tooltip="export arrays (.npz) and the check report (.json)"),
        Binding("w", "pick", "Walkthrough", tooltip="switch walkthrough"),
        Binding("question_mark", "help", "Help", tooltip="this help"),
        Binding("q", "quit", "Quit", tooltip="quit"),
        # the detail pane cannot take focus (←/→ step), so it scrolls by keys too
        Binding("shift+right,]", "scroll_tensors(1)", "Scroll →", show=False, priority=True,
                tooltip="scroll wide tensors right"),
        Binding("shift+left,[", "scroll_tensors(-1)", "Scroll ←", show=False, priority=True,
                tooltip="scroll wide tensors left"),
        Binding("pagedown", "scroll_detail(1)", "Page down", show=False, priority=True,
                tooltip="scroll the detail pane down"),
        Binding("pageup", "scroll_detail(-1)", "Page up", show=False, priority=True,
                tooltip="scroll the detail pane up"),
    ]

    # -- messages from workers -------------------------------------------------
    class TraceBuilt(Message):
        def __init__(self, trace: Trace | None, error: str, keep: tuple | None,
                     jump_nonfinite: bool) -> None:
            super().__init__()
            self.trace, self.error, self.keep, self.jump_nonfinite = trace, error, keep, jump_nonfinite

    class StepLoaded(Message):
        def __init__(self, trace: Trace, index: int, data: StepData) -> None:
            super().__init__()
            self.trace, self.index, self.data = trace, index, data

    class NodeChecked(Message):
        def __init__(self, trace: Trace, key: str, check: TensorCheck,
                     checked: tuple[TensorData, TensorData]) -> None:
            super().__init__()
            self.trace, self.key, self.check = trace, key, check
            self.analytic, self.numeric = checked

    class CheckProgress(Message):
        def __init__(self, trace: Trace, done: int, total: int, label: str) -> None:
            super().__init__()
            self.trace, self.done, self.total, self.label = trace, done, total, label

    class ChecksFinished(Message):
        def __init__(self, trace: Trace, report: GradcheckReport | None,
                     export_to: Path | None, failed: bool = False) -> None:
            super().__init__()
            self.trace, self.report, self.export_to = trace, report, export_to
            self.failed = failed

    class WorkerFailed(Message):
        """A walkthrough raised inside a worker: shown, never a crash."""
        def __init__(self, what: str, exc: Exception) -> None:
            super().__init__()
            self.what, self.error = what, f"{type(exc).__name__}: {exc}"

    class Exported(Message):
        def __init__(self, paths: list[Path], error: str) -> None:
            super().__init__()
            self.paths, self.error = paths, error

    # -- setup -----------------------------------------------------------------
    def __init__(self, walkthrough: str, config: dict | None = None,
                 export_dir: Path | None = None) -> None:
        super().__init__()
        self.walkthrough = get(walkthrough)
        self.cfg = self.walkthrough.config(**(config or {}))
        self.export_dir = export_dir
        self.trace: Trace | None = None
        self.steps: list[Step] = []
        self.index = 0
        self.heatmap: bool | None = None      # None: numbers or heatmap by size
        self.report: GradcheckReport | None = None
        self.loaded: dict[int, StepData] = {}
        self.numeric: dict[str, TensorData] = {}
        self.building = False
        self.checking = False
        self.exported: list[Path] = []
        self.saved_eps: dict | None = None    # config before the ε = 0 demo
        self.play_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="topbar")
        with Horizontal(id="body"):
            yield StepList(id="steps")
            detail = VerticalScroll(id="detail")
            detail.can_focus = False   # ←/→ step; the pane scrolls with the mouse or pgup/pgdn
            with detail:
                yield FormulaPanel(id="formula")
                yield GradientPanel(id="gradient")
                yield TensorView(id="value", classes="tensor")
                yield Vertical(id="views")
                with Vertical(id="report"):
                    yield Static("Gradient check of every node", id="report-title")
                    yield ReportTable(id="report-table", show_cursor=False)
        with Horizontal(id="checkbar"):
            yield Static(id="check-label")
            yield ProgressBar(id="check-progress", show_eta=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#report-table").can_focus = False
        self.query_one("#gradient").display = False
        self.query_one("#report").display = False
        self.query_one("#checkbar").display = False
        self.query_one("#steps").focus()
        self.build(self.walkthrough.name, self.cfg)

    # -- building traces ---------------------------------------------------------
    def build(self, name: str, cfg: dict, *, keep: bool = False,
              jump_nonfinite: bool = False) -> None:
        self.building = True
        self.stop_play()
        here = None
        if keep and self.steps:
            s = self.steps[self.index]
            here = (s.phase, s.node.key)
        self._update_topbar()
        self._build_worker(name, dict(cfg), here, jump_nonfinite)

    @work(thread=True, exclusive=True, group="build")
    def _build_worker(self, name: str, cfg: dict, keep, jump_nonfinite: bool) -> None:
        try:
            trace = Trace(name, **cfg)
            trace.grads   # the kernels' backward pass, so stepping back is instant
        except Exception as exc:       # shown to the user, never a traceback
            self.post_message(self.TraceBuilt(None, f"{type(exc).__name__}: {exc}", keep, False))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.TraceBuilt(trace, "", keep, jump_nonfinite))

    def on_walkthrough_screen_trace_built(self, msg: TraceBuilt) -> None:
        self.building = False
        if msg.trace is None:
            self.notify(msg.error, title="could not build the walkthrough", severity="error")
            if self.trace is not None:     # keep showing the walkthrough that did build
                self.walkthrough = self.trace.walkthrough
            else:                          # nothing to fall back on: say so where the formula goes
                self.query_one(FormulaPanel).update(Text(
                    f"could not build {self.walkthrough.name}:\n{msg.error}\n"
                    "c: change the configuration · w: another walkthrough", style="bold red"))
            self._update_topbar()
            return
        self.workers.cancel_group(self, "checks")
        self.workers.cancel_group(self, "node-check")
        self._hide_checkbar()
        trace = msg.trace
        self.trace = trace
        self.walkthrough = trace.walkthrough
        self.cfg = dict(trace.cfg)
        self.steps = build_steps(trace)
        self.loaded, self.numeric, self.report = {}, {}, None
        self.query_one("#report").display = False
        self.query_one(StepList).set_steps(self.steps, {})
        index = 0
        if msg.jump_nonfinite:
            index = self._first_nonfinite()
        elif msg.keep is not None:
            for i, s in enumerate(self.steps):
                if (s.phase, s.node.key) == msg.keep:
                    index = i
        self.go(index, force=True)

    def _first_nonfinite(self) -> int:
        for i, s in enumerate(self.steps):
            if s.phase == FORWARD and not np.all(np.isfinite(self.trace.values[s.node.key])):
                return i
        return 0

    # -- stepping ----------------------------------------------------------------
    def go(self, index: int, force: bool = False) -> None:
        if not self.steps:
            return
        index = max(0, min(index, len(self.steps) - 1))
        if index == self.index and not force:
            return
        self.index = index
        self.query_one(StepList).show_step(index)
        self._update_topbar()
        self._show_step()

    @property
    def step(self) -> Step:
        return self.steps[self.index]

    def _heat_width(self) -> int:
        """Columns of the detail pane (read on the UI thread, used by workers)."""
        width = self.query_one("#detail").size.width - 3
        return width if width > 0 else 80

    @staticmethod
    def _parents(trace: Trace, key: str) -> list[str]:
        """Display names (Σ, Ŷ) of the nodes `key` reads."""
        return [trace.node(p).name for p in trace.node(key).parents]

    @staticmethod
    def _children(trace: Trace, key: str) -> list[str]:
        return [n.name for n in trace.nodes if key in n.parents]

    def _show_step(self) -> None:
        step, trace = self.step, self.trace
        data = self.loaded.get(self.index)
        self.query_one(FormulaPanel).show(step, self._children(trace, step.node.key),
                                          data.insights if data else None,
                                          self._parents(trace, step.node.key))
        grad = self.query_one(GradientPanel)
        grad.display = step.phase == BACKWARD
        if data is None:
            self._load_worker(trace, self.index, step, self._heat_width())
        else:
            self._draw(data)
        if step.phase == BACKWARD and step.node.key not in trace.reports and not self.checking:
            self._node_check_worker(trace, step.node.key, self._heat_width())

    def _draw(self, data: StepData) -> None:
        step = self.step
        # going back, the gradient is the subject; the value shrinks to its statistics
        self.query_one("#value", TensorView).show(data.value, self.heatmap,
                                                  compact=step.phase == BACKWARD)
        if step.phase == BACKWARD:
            self._draw_gradient(data)
        self._draw_views(data.views)

    def _draw_gradient(self, data: StepData) -> None:
        key = self.step.node.key
        check = self.trace.reports.get(key)
        numeric = self.numeric.get(key)
        status = "checking…" if check is None else ""
        self.query_one(GradientPanel).show(self.step.title, data.analytic,
                                           numeric if check is not None else None,
                                           check, self.heatmap, status)

    def _draw_views(self, views: dict[str, TensorData]) -> None:
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
            tv.show(data, self.heatmap)
        box.display = bool(views)

    @work(thread=True, exclusive=True, group="load")
    def _load_worker(self, trace: Trace, index: int, step: Step, width: int) -> None:
        try:
            self._load(trace, index, step, width)
        except Exception as exc:
            self.post_message(self.WorkerFailed(f"showing {step.title}", exc))

    def _load(self, trace: Trace, index: int, step: Step, width: int) -> None:
        key = step.node.key
        value = prepare(f"{step.node.name}  value", trace.values[key], width=width)
        data = StepData(insights=trace.insights(key), children=self._children(trace, key),
                        value=value)
        if step.phase == FORWARD:
            data.views = {name: prepare(name, arr, width=width)
                          for name, arr in trace.views(key).items()}
        else:
            report = trace.reports.get(key)
            data.analytic = prepare(f"analytic {step.title} (kernels)", trace.grad(key),
                                    mark=report.worst_index if report else None, width=width)
        self.post_message(self.StepLoaded(trace, index, data))

    def on_walkthrough_screen_step_loaded(self, msg: StepLoaded) -> None:
        if msg.trace is not self.trace:
            return
        self.loaded[msg.index] = msg.data
        if msg.index == self.index:
            self.query_one(FormulaPanel).show(self.step, msg.data.children, msg.data.insights,
                                              self._parents(self.trace, self.step.node.key))
            self._draw(msg.data)

    # -- checks -------------------------------------------------------------------
    def _check_one(self, trace: Trace, key: str, cancelled,
                   width: int) -> tuple[TensorCheck, tuple[TensorData, TensorData]]:
        """The check, plus both gradients prepared with the worst element marked."""
        check = trace.check(key, max_elements=MAX_ELEMENTS, cancelled=cancelled)
        numeric = prepare(NUMERIC_TITLE, check.numeric, mark=check.worst_index,
                          nan_means_unsampled=check.checked < check.total, width=width)
        analytic = prepare(f"analytic ∂L/∂{trace.node(key).name} (kernels)", trace.grad(key),
                           mark=check.worst_index, width=width)
        return check, (analytic, numeric)

    @work(thread=True, exclusive=True, group="node-check")
    def _node_check_worker(self, trace: Trace, key: str, width: int) -> None:
        worker = get_current_worker()
        try:
            check, prepared = self._check_one(trace, key, lambda: worker.is_cancelled, width)
        except CheckCancelled:
            return
        except Exception as exc:
            self.post_message(self.WorkerFailed(f"checking ∂L/∂{trace.node(key).name}", exc))
            return
        self.post_message(self.NodeChecked(trace, key, check, prepared))

    def on_walkthrough_screen_node_checked(self, msg: NodeChecked) -> None:
        if msg.trace is not self.trace:
            return
        self.numeric[msg.key] = msg.numeric
        marks = {k: r.passed for k, r in self.trace.reports.items()}
        self.query_one(StepList).update_marks(marks)
        # the analytic table highlights the worst element once it is known
        for i, s in enumerate(self.steps):
            if s.phase == BACKWARD and s.node.key == msg.key and i in self.loaded:
                self.loaded[i].analytic = msg.analytic
        if self.steps and self.step.phase == BACKWARD and self.step.node.key == msg.key:
            data = self.loaded.get(self.index)
            if data is not None:
                self._draw_gradient(data)

    def run_checks(self, export_to: Path | None = None) -> None:
        if self.trace is None or self.building:
            self.notify("still building the walkthrough" if self.building
                        else "no walkthrough loaded", severity="warning")
            return
        self.checking = True
        self.workers.cancel_group(self, "node-check")
        bar = self.query_one("#checkbar")
        bar.display = True
        self.query_one("#check-progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#check-label", Static).update(
            "exporting: checking gradients (esc cancels)" if export_to
            else "checking every gradient (esc cancels)")
        self._checks_worker(self.trace, export_to, self._heat_width())

    @work(thread=True, exclusive=True, group="checks")
    def _checks_worker(self, trace: Trace, export_to: Path | None, width: int) -> None:
        """Every backward node, reusing checks already made (same seeded sample).

        Progress counts elements: `Trace.check` polls `cancelled()` once per
        perturbed element, so the callback doubles as the progress counter."""
        worker = get_current_worker()
        steps = trace.backward_steps()
        total = sum(checked_total(trace, n.key) for n in steps) or 1
        done = 0
        every = max(1, total // 100)
        checks = []
        for n in steps:
            label = f"∂L/∂{n.name}"
            self.post_message(self.CheckProgress(trace, done, total, label))
            if n.key in trace.reports:
                checks.append(trace.reports[n.key])
                done += checked_total(trace, n.key)
                continue

            def cancelled() -> bool:
                nonlocal done
                if worker.is_cancelled:
                    return True
                done += 1
                if done % every == 0:
                    self.post_message(self.CheckProgress(trace, done, total, label))
                return False

            start = done
            try:
                check, prepared = self._check_one(trace, n.key, cancelled, width)
            except CheckCancelled:
                self.post_message(self.ChecksFinished(trace, None, export_to))
                return
            except Exception as exc:
                self.post_message(self.WorkerFailed(f"checking {label}", exc))
                self.post_message(self.ChecksFinished(trace, None, export_to, failed=True))
                return
            done = start + checked_total(trace, n.key)
            checks.append(check)
            self.post_message(self.NodeChecked(trace, n.key, check, prepared))
        self.post_message(self.CheckProgress(trace, total, total, ""))
        self.post_message(self.ChecksFinished(trace, GradcheckReport(checks, title=report_title(trace)),
                                              export_to))

    def on_walkthrough_screen_check_progress(self, msg: CheckProgress) -> None:
        if msg.trace is self.trace and self.checking:
            self.query_one("#check-progress", ProgressBar).update(total=msg.total, progress=msg.done)
            if msg.label:
                self.query_one("#check-label", Static).update(
                    f"checking {msg.label} (esc cancels)")

    def on_walkthrough_screen_checks_finished(self, msg: ChecksFinished) -> None:
        if msg.trace is not self.trace:
            return
        self.checking = False
        self._hide_checkbar()
        if msg.report is None:
            if not msg.failed:
                self.notify("gradient check cancelled", severity="warning")
            return
        self.report = msg.report
        self.query_one(ReportTable).show(msg.report)
        self.query_one("#report").display = True
        self.call_after_refresh(self.query_one("#report").scroll_visible)
        n_ok = sum(c.passed for c in msg.report.checks)
        if msg.export_to is not None:
            self._export_worker(self.trace, msg.report, msg.export_to)
        elif msg.report.passed:
            self.notify(f"all {n_ok} gradients pass", title="gradient check")
        else:
            self.notify(f"{len(msg.report.checks) - n_ok} of {len(msg.report.checks)} "
                        "gradients fail", title="gradient check", severity="error")
        self._update_topbar()

    def _hide_checkbar(self) -> None:
        self.query_one("#checkbar").display = False

    # -- export --------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="export")
    def _export_worker(self, trace: Trace, report: GradcheckReport, directory: Path) -> None:
        try:
            paths = write_export(trace, report, directory)
        except OSError as exc:
            self.post_message(self.Exported([], f"{exc}"))
            return
        self.post_message(self.Exported(paths, ""))

    def on_walkthrough_screen_worker_failed(self, msg: WorkerFailed) -> None:
        self.notify(msg.error, title=f"error {msg.what}", severity="error", timeout=10)

    def on_walkthrough_screen_exported(self, msg: Exported) -> None:
        if msg.error:
            self.notify(msg.error, title="export failed", severity="error")
            return
        self.exported = msg.paths
        where = msg.paths[0].parent.resolve()
        self.notify(f"{where}/\n" + "\n".join(f"  {p.name}" for p in msg.paths),
                    title="exported", timeout=10)

    # -- actions ----------------------------------------------------------------------
    def action_next(self) -> None:
        self.go(self.index + 1)

    def action_previous(self) -> None:
        self.go(self.index - 1)

    def action_first(self) -> None:
        self.go(0)

    def action_last(self) -> None:
        self.go(len(self.steps) - 1)

    def action_play(self) -> None:
        if self.play_timer is not None:
            self.stop_play()
            return
        if self.index >= len(self.steps) - 1:
            self.go(0)
        self.play_timer = self.set_interval(PLAY_INTERVAL, self._tick)
        self._update_topbar()

    def _tick(self) -> None:
        if self.index >= len(self.steps) - 1:
            self.stop_play()
        else:
            self.action_next()

    def stop_play(self) -> None:
        if self.play_timer is not None:
            self.play_timer.stop()
            self.play_timer = None
            self._update_topbar()

    def action_check_all(self) -> None:
        self.run_checks()

    def action_cancel(self) -> None:
        if self.checking:
            self.workers.cancel_group(self, "checks")
        self.stop_play()

    def action_resample(self) -> None:
        cfg = dict(self.cfg)
        if "seed" in cfg:
            cfg["seed"] = int(cfg["seed"]) + 1
        self.build(self.walkthrough.name, cfg, keep=True)

    def action_config(self) -> None:
        def done(cfg: dict | None) -> None:
            if cfg is not None:
                self.saved_eps = None
                self.build(self.walkthrough.name, cfg, keep=True)
        self.app.push_screen(ConfigScreen(self.walkthrough, self.cfg), done)

    def action_toggle_heatmap(self) -> None:
        tv = self.query_one("#value", TensorView)
        self.heatmap = not tv.showing_heatmap
        tv.heatmap = self.heatmap
        self.query_one(GradientPanel).set_heatmap(self.heatmap)
        for view in self.query("#views TensorView"):
            view.heatmap = self.heatmap

    def action_eps_zero(self) -> None:
        """P2.1: ε = 0 on a batch with a constant feature, and back. Generic: any
        walkthrough with an `eps` parameter (and `constant_feature` if it has one)."""
        names = {p.name for p in self.walkthrough.params}
        if "eps" not in names:
            self.notify(f"{self.walkthrough.name} has no ε parameter", severity="warning")
            return
        cfg = dict(self.cfg)
        if self.saved_eps is not None:
            cfg.update(self.saved_eps)
            self.saved_eps = None
            self.build(self.walkthrough.name, cfg, keep=True)
            self.notify(f"ε restored to {cfg['eps']:g}")
            return
        self.saved_eps = {k: cfg[k] for k in ("eps", "constant_feature") if k in cfg}
        cfg["eps"] = 0.0
        if "constant_feature" in names:
            cfg["constant_feature"] = True
        self.build(self.walkthrough.name, cfg, jump_nonfinite=True)

    def action_export(self) -> None:
        if self.trace is None:
            return
        suggested = self.export_dir or default_export_dir(self.walkthrough.name)

        def done(directory: Path | None) -> None:
            if directory is not None:
                self.run_checks(export_to=directory)
        self.app.push_screen(ExportScreen(suggested), done)

    def action_pick(self) -> None:
        def done(name: str | None) -> None:
            if name is not None:
                self.open_walkthrough(name)
        self.app.push_screen(PickerScreen(self.walkthrough.name), done)

    def open_walkthrough(self, name: str) -> None:
        w = get(name)
        self.saved_eps = None
        self.walkthrough = w
        self.build(name, w.config())

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.BINDINGS))

    def action_quit(self) -> None:
        self.app.exit()

    def action_scroll_tensors(self, direction: int) -> None:
        """Scroll every number table and heatmap of the pane sideways (~a third of it)."""
        step = max(8, self.query_one("#detail").size.width // 3)
        for widget in self.query(".tv-table, .tv-heat-scroll"):
            widget.scroll_relative(x=direction * step, animate=False)

    def action_scroll_detail(self, direction: int) -> None:
        detail = self.query_one("#detail")
        detail.scroll_relative(y=direction * max(1, detail.size.height - 2), animate=False)

    # -- step list clicks and arrows ---------------------------------------------------
    @on(OptionList.OptionHighlighted, "#steps")
    def _step_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        # go() moves the list's highlight too, which posts this message again.
        # With keys arriving faster than messages are handled (a held arrow
        # key), an old message would drag the screen back to an old step and
        # the two would chase each other forever: act only on a message that
        # still describes the list's current highlight.
        if event.option_index != event.option_list.highlighted:
            return
        i = step_index(event.option.id)
        if i is not None and i != self.index:
            self.go(i)

    # -- top bar ------------------------------------------------------------------------
    def _update_topbar(self) -> None:
        w = self.walkthrough
        t = Text()
        t.append(" nnkit ", style="bold reverse")
        t.append(f" {w.name} {w.problem} ", style="bold")
        if self.steps:
            s = self.step
            t.append(f" {s.phase} {s.number}/{s.of} {s.title} ", style="bold cyan")
        t.append(" " + config_text(self.cfg), style="dim")
        if self.building:
            t.append("  building…", style="bold yellow")
        if self.play_timer is not None:
            t.append("  ▶ playing", style="bold green")
        if self.report is not None:
            ok = self.report.passed
            t.append("  all checks pass" if ok else "  checks FAIL",
                     style="bold green" if ok else "bold red")
        self.query_one("#topbar", Static).update(t)
