"""The slow work of the walkthrough screen, in thread workers.

Building a Trace, preparing a step's tensors, finite-difference checks and
the export all run off the UI thread; each reports back with a message from
tui/messages.py and never touches a widget. One worker group per kind of job,
each exclusive: a newer job of a kind cancels the older one.
"""
from __future__ import annotations

from pathlib import Path

from textual.dom import DOMNode
from textual.worker import get_current_worker

from nnkit.gradcheck import CheckCancelled, GradcheckReport, TensorCheck
from nnkit.trace import MAX_ELEMENTS, Trace

from .messages import (CheckProgress, ChecksFinished, DerivationChecked, Exported,
                       NodeChecked, StepData, StepLoaded, TraceBuilt, WorkerFailed)
from .screens.export import write_export
from .widgets.channels import axis_names
from .widgets.gradient import NUMERIC_TITLE
from .widgets.steps import FORWARD, Step
from .widgets.tensor import TensorData, prepare

BUILD, LOAD, NODE_CHECK, CHECKS, EXPORT = "build", "load", "node-check", "checks", "export"
DERIVATION = "derivation"


def children(trace: Trace, key: str) -> list[str]:
    """Display names of the nodes that read `key`."""
    return [n.name for n in trace.nodes if key in n.parents]


def load_step(trace: Trace, step: Step, width: int) -> StepData:
    """Statistics, table and heatmap of a step's value (and views, or its
    analytic gradient): every O(size) pass. `width`: columns for heatmaps."""
    key = step.node.key
    axes = axis_names(trace.walkthrough, key)
    data = StepData(insights=trace.insights(key), children=children(trace, key),
                    value=prepare(f"{step.node.name}  value", trace.values[key], width=width,
                                  axes=axes))
    if step.phase == FORWARD:
        data.views = {name: prepare(name, arr, width=width)
                      for name, arr in trace.views(key).items()}
    else:
        report = trace.reports.get(key)
        data.analytic = prepare(f"analytic {step.title} (kernels)", trace.grad(key),
                                mark=report.worst_index if report else None, width=width,
                                axes=axes)
    return data


def check_node(trace: Trace, key: str, cancelled,
               width: int) -> tuple[TensorCheck, tuple[TensorData, TensorData]]:
    """The check, plus both gradients prepared with the worst element marked."""
    check = trace.check(key, max_elements=MAX_ELEMENTS, cancelled=cancelled)
    axes = axis_names(trace.walkthrough, key)
    numeric = prepare(NUMERIC_TITLE, check.numeric, mark=check.worst_index,
                      nan_means_unsampled=check.checked < check.total, width=width, axes=axes)
    analytic = prepare(f"analytic ∂L/∂{trace.node(key).name} (kernels)", trace.grad(key),
                       mark=check.worst_index, width=width, axes=axes)
    return check, (analytic, numeric)


def check_derivation(trace: Trace, path: Path, width: int):
    """nk.check_derivation of a student's file on `trace`'s configuration, and
    the student's gradients prepared for display (worst element marked).
    Returns (report, error, student); error is one line when the file cannot
    be checked (nnkit.derivation_check.UsageError)."""
    from nnkit.derivation_check import UsageError, check_derivation as check
    try:
        report = check(str(path), trace.walkthrough.name, configs=[dict(trace.cfg)])
    except UsageError as exc:
        return None, " ".join(str(exc).split()), {}
    student = {}
    for key, arr in (report.student[0] if report.student else {}).items():
        f = report.verdict_of(key)
        worst = f.worst if f is not None else None
        mark = tuple(worst["index"]) if worst and worst.get("node") == key else None
        name = f.name if f is not None else "d" + key
        student[key] = prepare(f"yours: {name} ({path.name})", arr, mark=mark, width=width,
                               axes=axis_names(trace.walkthrough, key))
    return report, "", student


class Controller:
    """Starts the workers on `host` (the screen) and posts their results to it."""

    def __init__(self, host: DOMNode) -> None:
        self.host = host

    def _run(self, fn, group: str, *args) -> None:
        self.host.run_worker(lambda: fn(*args), thread=True, exclusive=True, group=group)

    def cancel(self, *groups: str) -> None:
        for group in groups:
            self.host.workers.cancel_group(self.host, group)

    @property
    def post(self):
        return self.host.post_message

    # -- jobs ------------------------------------------------------------------
    def build(self, name: str, cfg: dict, keep: tuple | None, jump_nonfinite: bool) -> None:
        self._run(self._build, BUILD, name, dict(cfg), keep, jump_nonfinite)

    def load(self, trace: Trace, index: int, step: Step, width: int) -> None:
        self._run(self._load, LOAD, trace, index, step, width)

    def check_node(self, trace: Trace, key: str, width: int) -> None:
        self._run(self._check_node, NODE_CHECK, trace, key, width)

    def check_all(self, trace: Trace, export_to: Path | None, width: int) -> None:
        self.cancel(NODE_CHECK)
        self._run(self._check_all, CHECKS, trace, export_to, width)

    def export(self, trace: Trace, report: GradcheckReport, directory: Path) -> None:
        self._run(self._export, EXPORT, trace, report, directory)

    def check_derivation(self, trace: Trace, path: Path, width: int) -> None:
        self._run(self._check_derivation, DERIVATION, trace, path, width)

    # -- worker bodies (thread) ------------------------------------------------------
    def _build(self, name: str, cfg: dict, keep, jump_nonfinite: bool) -> None:
        try:
            trace = Trace(name, **cfg)
            trace.grads   # the kernels' backward pass, so stepping back is instant
        except Exception as exc:       # shown to the user, never a traceback
            self.post(TraceBuilt(None, f"{type(exc).__name__}: {exc}", keep, False))
            return
        if not get_current_worker().is_cancelled:
            self.post(TraceBuilt(trace, "", keep, jump_nonfinite))

    def _load(self, trace: Trace, index: int, step: Step, width: int) -> None:
        try:
            self.post(StepLoaded(trace, index, load_step(trace, step, width)))
        except Exception as exc:
            self.post(WorkerFailed(f"showing {step.title}", exc))

    def _check_node(self, trace: Trace, key: str, width: int) -> None:
        worker = get_current_worker()
        try:
            check, prepared = check_node(trace, key, lambda: worker.is_cancelled, width)
        except CheckCancelled:
            return
        except Exception as exc:
            self.post(WorkerFailed(f"checking ∂L/∂{trace.node(key).name}", exc))
            return
        self.post(NodeChecked(trace, key, check, prepared))

    def _check_all(self, trace: Trace, export_to: Path | None, width: int) -> None:
        """Every backward node, reusing checks already made (same seeded sample).

        Progress counts elements: `Trace.check` polls `cancelled()` once per
        perturbed element, so the callback doubles as the progress counter."""
        worker = get_current_worker()
        steps = trace.backward_steps()
        total = sum(trace.checked_count(n.key, MAX_ELEMENTS) for n in steps) or 1
        every = max(1, total // 100)
        done = 0
        checks = []
        for n in steps:
            label = f"∂L/∂{n.name}"
            self.post(CheckProgress(trace, done, total, label))
            start = done
            if n.key in trace.reports:
                checks.append(trace.reports[n.key])
                done = start + trace.checked_count(n.key, MAX_ELEMENTS)
                continue

            def cancelled() -> bool:
                nonlocal done
                if worker.is_cancelled:
                    return True
                done += 1
                if done % every == 0:
                    self.post(CheckProgress(trace, done, total, label))
                return False

            try:
                check, prepared = check_node(trace, n.key, cancelled, width)
            except CheckCancelled:
                self.post(ChecksFinished(trace, None, export_to))
                return
            except Exception as exc:
                self.post(WorkerFailed(f"checking {label}", exc))
                self.post(ChecksFinished(trace, None, export_to, failed=True))
                return
            done = start + trace.checked_count(n.key, MAX_ELEMENTS)
            checks.append(check)
            self.post(NodeChecked(trace, n.key, check, prepared))
        self.post(CheckProgress(trace, total, total, ""))
        self.post(ChecksFinished(trace, GradcheckReport(checks, title=trace.title), export_to))

    def _check_derivation(self, trace: Trace, path: Path, width: int) -> None:
        try:
            report, error, student = check_derivation(trace, path, width)
        except Exception as exc:       # the checker itself failed: one line, never a crash
            report, error, student = None, f"{type(exc).__name__}: {exc}", {}
        if not get_current_worker().is_cancelled:
            self.post(DerivationChecked(trace, report, error, student))

    def _export(self, trace: Trace, report: GradcheckReport, directory: Path) -> None:
        try:
            paths = write_export(trace, report, directory)
        except OSError as exc:
            self.post(Exported([], f"{exc}"))
            return
        self.post(Exported(paths, ""))
