"""The main screen: step list | detail pane (formula, gradient check, value,
views, report), a top bar and a footer.

State drives the view (Textual's calculator example): the reactive `var`s
below are the screen's whole state; watchers and the top bar's data binding
redraw from them, so no action repaints anything by hand. Slow work runs in
the controller's workers (tui/controller.py), whose messages
(tui/messages.py) carry the Trace they were computed for: a result for a
Trace that has since been replaced is dropped. The screen owns the bindings
so modal screens (config form, export) get their keys to themselves.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import var
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, OptionList, ProgressBar, Static

from nnkit.gradcheck import GradcheckReport, TensorCheck
from nnkit.trace import Trace, Walkthrough, get

from ..bindings import MAIN_BINDINGS
from ..controller import CHECKS, NODE_CHECK, Controller
from ..messages import (CheckProgress, ChecksFinished, DerivationChecked, Exported,
                        NodeChecked, StepData, StepLoaded, TraceBuilt, WorkerFailed)
from ..widgets.detail import DetailPane
from ..widgets.grad_norms import GradNorms, scaled_config
from ..widgets.steps import BACKWARD, FORWARD, Step, StepList, build_steps, step_index
from ..widgets.tensor import TensorData
from ..widgets.topbar import TopBar
from .actions import WalkthroughActions

PLAY_INTERVAL = 0.7       # seconds per step when auto-playing
WATCH_INTERVAL = 1.0      # seconds between looks at the --check file's mtime


class WalkthroughScreen(WalkthroughActions, Screen):
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (76, "-normal"), (130, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (26, "-tall")]
    BINDINGS = MAIN_BINDINGS

    # -- state (init=False: nothing to draw before the first trace is built) ------
    walkthrough: var[Walkthrough] = var(None, init=False)
    cfg: var[dict] = var(dict, init=False)
    trace: var[Trace | None] = var(None, init=False)
    steps: var[list[Step]] = var(list, init=False, always_update=True)
    index: var[int] = var(0, init=False, always_update=True)
    building: var[bool] = var(False, init=False)
    checking: var[bool] = var(False, init=False)
    playing: var[bool] = var(False, init=False)
    # always_update: a report holds arrays, which have no truth value
    report: var[GradcheckReport | None] = var(None, init=False, always_update=True)
    step: var[Step | None] = var(None, init=False, always_update=True)

    def __init__(self, walkthrough: str, config: dict | None = None,
                 export_dir: Path | None = None, check_file: Path | None = None) -> None:
        super().__init__()
        w = get(walkthrough)
        self.set_reactive(WalkthroughScreen.walkthrough, w)
        self.set_reactive(WalkthroughScreen.cfg, w.config(**(config or {})))
        self.export_dir = export_dir
        self.controller = Controller(self)
        self.heatmap: bool | None = None      # None: numbers or heatmap by size
        self.loaded: dict[int, StepData] = {}
        # checks as the messages delivered them: the workers fill trace.reports
        # from their thread, so the UI never iterates that dict
        self.checks: dict[str, tuple[TensorCheck, TensorData]] = {}
        self.exported: list[Path] = []
        self.saved_eps: dict | None = None    # config before the ε = 0 demo
        self.play_timer: Timer | None = None
        # check mode (--check FILE): the student's derivation, re-checked on save
        self.check_file = Path(check_file) if check_file is not None else None
        self.derivation = None                # the last DerivationReport
        self.derivation_error = ""            # why the file could not be checked
        self.derivation_student: dict[str, TensorData] = {}
        self.derivation_checks = 0            # results received (tests wait on it)
        self.check_stamp: tuple | None = None   # the file's (mtime, size) last checked

    def compose(self) -> ComposeResult:
        S = WalkthroughScreen
        yield TopBar(id="topbar").data_bind(S.walkthrough, S.cfg, S.step, S.building,
                                            S.playing, S.report)
        with Horizontal(id="body"):
            yield StepList(id="steps")
            yield DetailPane(id="detail")
            yield GradNorms(id="grad-norms")
        with Horizontal(id="checkbar"):
            yield Static(id="check-label")
            yield ProgressBar(id="check-progress", show_eta=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#checkbar").display = False
        self.query_one("#steps").focus()
        self.build(self.walkthrough.name, self.cfg)
        self.watch_timer: Timer | None = None
        if self.check_file is not None:
            self.watch_timer = self.set_interval(WATCH_INTERVAL, self._watch_check_file)

    @property
    def detail(self) -> DetailPane:
        return self.query_one(DetailPane)

    # -- watchers: state → view ----------------------------------------------------
    def watch_trace(self, trace: Trace | None) -> None:
        self.controller.cancel(CHECKS, NODE_CHECK)
        self.checking = False
        self.walkthrough, self.cfg = trace.walkthrough, dict(trace.cfg)
        self.loaded, self.checks, self.report = {}, {}, None
        self.steps = build_steps(trace)
        if self.check_file is not None:     # verdicts were for the previous trace
            self.query_one(StepList).set_verdicts({}, None)
            self.derivation, self.derivation_student = None, {}
            self.check_derivation()
        self.query_one(StepList).set_steps(self.steps, {})
        self.query_one(GradNorms).show(trace)

    def watch_index(self, index: int) -> None:
        self.step = self.steps[index]
        self.query_one(StepList).show_step(index)
        self._show_step()

    def watch_report(self, report: GradcheckReport | None) -> None:
        self.detail.show_report(report)

    def watch_checking(self, checking: bool) -> None:
        self.query_one("#checkbar").display = checking

    def watch_playing(self, playing: bool) -> None:
        if self.play_timer is not None:
            self.play_timer.stop()
            self.play_timer = None
        if playing:
            self.play_timer = self.set_interval(PLAY_INTERVAL, self._tick)

    # -- building traces --------------------------------------------------------------
    def build(self, name: str, cfg: dict, *, keep: bool = False,
              jump_nonfinite: bool = False) -> None:
        self.building = True
        self.playing = False
        here = (self.step.phase, self.step.node.key) if keep and self.step else None
        self.controller.build(name, cfg, here, jump_nonfinite)

    def action_scale_recurrent(self, factor: float) -> None:
        """P9.2–P9.3: rescale the recurrent weights (w_scale) and rebuild."""
        if "w_scale" in self.cfg:
            self.build(self.walkthrough.name, scaled_config(self.cfg, factor), keep=True)

    def on_trace_built(self, msg: TraceBuilt) -> None:
        self.building = False
        if msg.trace is None:
            self.notify(msg.error, title="could not build the walkthrough", severity="error")
            if self.trace is not None:     # keep showing the walkthrough that did build
                self.walkthrough, self.cfg = self.trace.walkthrough, dict(self.trace.cfg)
            else:                          # nothing to fall back on: say so where the formula goes
                self.detail.show_error(f"could not build {self.walkthrough.name}:\n{msg.error}\n"
                                       "c: change the configuration · w: another walkthrough")
            return
        self.trace = msg.trace
        index = 0
        for i, s in enumerate(self.steps):
            if msg.jump_nonfinite:
                if s.phase == FORWARD and not np.all(np.isfinite(msg.trace.values[s.node.key])):
                    index = i
                    break
            elif (s.phase, s.node.key) == msg.keep:
                index = i
        self.index = index

    # -- stepping ---------------------------------------------------------------------------
    def go(self, index: int) -> None:
        if self.steps:
            index = max(0, min(index, len(self.steps) - 1))
            if index != self.index:
                self.index = index

    def _parents(self, key: str) -> list[str]:
        """Display names (Σ, Ŷ) of the nodes `key` reads."""
        return [self.trace.node(p).name for p in self.trace.node(key).parents]

    def _show_step(self) -> None:
        step, trace = self.step, self.trace
        data = self.loaded.get(self.index)
        self.detail.show_formula(step, self._parents(step.node.key),
                                 data.children if data else [], data.insights if data else None)
        self._show_derivation()
        if data is None:
            self.controller.load(trace, self.index, step, self.detail.heat_width)
        else:
            self._draw(data)
        if step.phase == BACKWARD and step.node.key not in self.checks and not self.checking:
            self.controller.check_node(trace, step.node.key, self.detail.heat_width)

    def _draw(self, data: StepData) -> None:
        check, numeric = self.checks.get(self.step.node.key, (None, None))
        self.detail.draw(self.step, data, check, numeric, self.heatmap, self._student())

    def on_step_loaded(self, msg: StepLoaded) -> None:
        if msg.trace is not self.trace:
            return
        self.loaded[msg.index] = msg.data
        if msg.index == self.index:
            self.detail.show_formula(self.step, self._parents(self.step.node.key),
                                     msg.data.children, msg.data.insights)
            self._draw(msg.data)

    # -- checks -----------------------------------------------------------------------------
    def on_node_checked(self, msg: NodeChecked) -> None:
        if msg.trace is not self.trace:
            return
        self.checks[msg.key] = (msg.check, msg.numeric)
        self.query_one(StepList).update_marks({k: c.passed for k, (c, _) in self.checks.items()})
        # the analytic table highlights the worst element once it is known
        for i, s in enumerate(self.steps):
            if s.phase == BACKWARD and s.node.key == msg.key and i in self.loaded:
                self.loaded[i].analytic = msg.analytic
        data = self.loaded.get(self.index)
        if self.step.phase == BACKWARD and self.step.node.key == msg.key and data is not None:
            self.detail.draw_gradient(self.step, data, msg.check, msg.numeric, self.heatmap,
                                      self._student())

    # -- check mode: the student's derivation file ------------------------------------
    def check_derivation(self) -> None:
        """(Re-)check the --check file on the current trace's configuration."""
        if self.check_file is None or self.trace is None:
            return
        self.check_stamp = self._file_stamp()
        self.controller.check_derivation(self.trace, self.check_file, self.detail.heat_width)

    def action_check_file(self) -> None:
        from .check_file import CheckFileScreen

        def done(path: Path | None) -> None:
            if path is not None:
                self.open_check_file(path)
        self.app.push_screen(CheckFileScreen(self.check_file), done)

    def open_check_file(self, path: Path) -> None:
        """Check `path` from now on (its WALKTHROUGH opened when it names another)."""
        from nnkit.trace import registry

        from .check_file import declared_walkthrough
        self.check_file = Path(path)
        self.derivation, self.derivation_error, self.derivation_student = None, "", {}
        if self.watch_timer is None:
            self.watch_timer = self.set_interval(WATCH_INTERVAL, self._watch_check_file)
        declared = declared_walkthrough(self.check_file)
        if declared in registry() and declared != self.walkthrough.name:
            self.open_walkthrough(declared)      # the new trace is checked when built
            return
        self.query_one(StepList).set_verdicts({}, None)
        self.check_derivation()
        if self.step is not None:
            self._show_derivation()
            if self.step.phase == BACKWARD and self.index in self.loaded:
                self._draw(self.loaded[self.index])

    def _file_stamp(self) -> tuple | None:
        try:
            st = self.check_file.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _watch_check_file(self) -> None:
        """Saving the file in an editor re-checks it (polled: no watcher thread)."""
        if self.trace is not None and self._file_stamp() != self.check_stamp:
            self.check_derivation()

    def _student(self) -> TensorData | None:
        if self.step is None or self.step.phase != BACKWARD:
            return None
        return self.derivation_student.get(self.step.node.key)

    def _show_derivation(self) -> None:
        if self.check_file is None or self.trace is None:
            return
        names = {n.key: n.name for n in self.trace.nodes}
        self.detail.show_derivation(self.step, self.check_file, self.derivation,
                                    self.derivation_error, names)

    def on_derivation_checked(self, msg: DerivationChecked) -> None:
        if msg.trace is not self.trace:
            return
        self.derivation, self.derivation_error = msg.report, msg.error
        self.derivation_student = msg.student
        self.derivation_checks += 1
        report = msg.report
        verdicts = {}
        if report is not None:
            verdicts = {k: f.verdict for f in report.formulas for k in f.nodes}
        self.query_one(StepList).set_verdicts(
            verdicts, report.chain.get("first_wrong_node") if report is not None else None)
        if self.step is None:
            return
        self._show_derivation()
        data = self.loaded.get(self.index)
        if self.step.phase == BACKWARD and data is not None:
            check, numeric = self.checks.get(self.step.node.key, (None, None))
            self.detail.draw_gradient(self.step, data, check, numeric, self.heatmap,
                                      self._student())

    def run_checks(self, export_to: Path | None = None) -> None:
        if self.trace is None or self.building:
            self.notify("still building the walkthrough" if self.building
                        else "no walkthrough loaded", severity="warning")
            return
        self.checking = True
        self.query_one("#check-progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#check-label", Static).update(
            "exporting: checking gradients (esc cancels)" if export_to
            else "checking every gradient (esc cancels)")
        self.controller.check_all(self.trace, export_to, self.detail.heat_width)

    def on_check_progress(self, msg: CheckProgress) -> None:
        if msg.trace is self.trace and self.checking:
            self.query_one("#check-progress", ProgressBar).update(total=msg.total, progress=msg.done)
            if msg.label:
                self.query_one("#check-label", Static).update(f"checking {msg.label} (esc cancels)")

    def on_checks_finished(self, msg: ChecksFinished) -> None:
        if msg.trace is not self.trace:
            return
        self.checking = False
        if msg.report is None:
            if not msg.failed:
                self.notify("gradient check cancelled", severity="warning")
            return
        self.report = msg.report
        n_ok = sum(c.passed for c in msg.report.checks)
        if msg.export_to is not None:
            self.controller.export(self.trace, msg.report, msg.export_to)
        elif msg.report.passed:
            self.notify(f"all {n_ok} gradients pass", title="gradient check")
        else:
            self.notify(f"{len(msg.report.checks) - n_ok} of {len(msg.report.checks)} "
                        "gradients fail", title="gradient check", severity="error")

    def on_worker_failed(self, msg: WorkerFailed) -> None:
        self.notify(msg.error, title=f"error {msg.what}", severity="error", timeout=10)

    def on_exported(self, msg: Exported) -> None:
        if msg.error:
            self.notify(msg.error, title="export failed", severity="error")
            return
        self.exported = msg.paths
        self.notify(export_message(msg.paths), title="exported", timeout=10)

    # -- step list clicks and arrows -----------------------------------------------------------
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
        if i is not None:
            self.go(i)


def export_message(paths: list[Path]) -> str:
    """The directory, relative to the working directory when inside it (short
    enough for a toast), then the file names."""
    where = paths[0].parent.resolve()
    try:
        shown = f"./{where.relative_to(Path.cwd().resolve())}"
    except ValueError:
        shown = str(where)
    return f"{shown}/\n" + "\n".join(f"  {p.name}" for p in paths)
