"""Messages the workers (tui/controller.py) post to the walkthrough screen.

Every result carries the Trace it was computed for: the screen drops a result
whose Trace has since been replaced (resample, new config, other walkthrough).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from textual.message import Message

from nnkit.gradcheck import GradcheckReport, TensorCheck
from nnkit.trace import Trace

from .widgets.tensor import TensorData


@dataclass
class StepData:
    """What a step shows, prepared off the UI thread."""
    insights: list[str]
    children: list[str]
    value: TensorData
    views: dict[str, TensorData] = field(default_factory=dict)
    analytic: TensorData | None = None


class TraceBuilt(Message):
    """A build finished: `trace` is None and `error` says why when it failed.
    `keep` is the (phase, node key) to stay on; `jump_nonfinite` asks for the
    first forward node with a NaN/inf value instead."""
    def __init__(self, trace: Trace | None, error: str, keep: tuple | None,
                 jump_nonfinite: bool) -> None:
        super().__init__()
        self.trace, self.error, self.keep, self.jump_nonfinite = trace, error, keep, jump_nonfinite


class StepLoaded(Message):
    def __init__(self, trace: Trace, index: int, data: StepData) -> None:
        super().__init__()
        self.trace, self.index, self.data = trace, index, data


class NodeChecked(Message):
    """One node's finite-difference check, with both gradients prepared for
    display (worst element marked)."""
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
    """The check of every node ended: `report` is None if it was cancelled or
    failed (`failed`: an error was already reported)."""
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


class DerivationChecked(Message):
    """nk.check_derivation of the --check file ran on `trace`'s configuration:
    `report` (None when it could not be checked: `error`, one line) and the
    student's gradients prepared for display, by node key."""
    def __init__(self, trace: Trace, report, error: str,
                 student: dict[str, TensorData]) -> None:
        super().__init__()
        self.trace, self.report, self.error, self.student = trace, report, error, student
