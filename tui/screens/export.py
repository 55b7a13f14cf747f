"""Export: ask where (default ./nnkit-export-<walkthrough>-<timestamp>/), and
the file writer used by the main screen's export worker."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from nnkit.gradcheck import GradcheckReport
from nnkit.trace import Trace

ARRAYS_FILE = "arrays.npz"
REPORT_FILE = "gradcheck.json"


def default_export_dir(walkthrough: str) -> Path:
    return Path(".") / f"nnkit-export-{walkthrough}-{time.strftime('%Y%m%d-%H%M%S')}"


def write_export(trace: Trace, report: GradcheckReport, directory: Path) -> list[Path]:
    """Every value and gradient (`Trace.arrays()`) as .npz; the check report,
    with the walkthrough and its configuration, as JSON."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = directory / ARRAYS_FILE
    np.savez(arrays, **trace.arrays())
    doc = dict(walkthrough=trace.walkthrough.name, config=trace.cfg, **report.to_dict())
    report_path = directory / REPORT_FILE
    report_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return [arrays, report_path]


class ExportScreen(ModalScreen[Path | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, suggested: Path) -> None:
        super().__init__()
        self.suggested = suggested

    def compose(self) -> ComposeResult:
        with Vertical(id="export-dialog"):
            yield Static("Export arrays (.npz) and the gradient check report (.json) to:",
                         id="export-title")
            inp = Input(value=str(self.suggested), id="export-dir", compact=True)
            if self.app.is_headless:
                inp.cursor_blink = False
            yield inp
            yield Static("enter: export (missing checks run first) · esc: cancel",
                         id="export-foot")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not self.is_current:   # a second Enter queued before the first dismiss landed
            return
        value = event.value.strip()
        if not value:
            self.notify("export: the directory is empty", severity="error")
            return
        self.dismiss(Path(value).expanduser())

    def action_cancel(self) -> None:
        if not self.is_current:   # a second Enter queued before the first dismiss landed
            return
        self.dismiss(None)
