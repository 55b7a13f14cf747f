"""Export: ask where (default ./nnkit-export-<walkthrough>-<timestamp>/), and
the file writer used by the main screen's export worker.

The directory is checked when Enter is pressed, before any gradient check
runs (a full check can take a while): a bad path keeps the dialog open with
the reason under the input."""
from __future__ import annotations

import json
import os
import tempfile
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


def export_problem(directory: Path) -> str | None:
    """Why `write_export` could not write into `directory`, or None when it can.

    The directory need not exist (write_export creates it with its parents):
    the nearest part of the path that does exist must be a directory we can
    create entries in. Checked by creating (and removing) a temporary file
    there, which also catches a read-only file system and root's bypass of
    the permission bits."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        return f"{path} is a file, not a directory"
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a directory: cannot create {path}"
    where = "into" if existing == path else f"in {existing} to create"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"no permission to write {where} {path}"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return f"cannot write {where} {path}: {exc.strerror or exc}"
    return None


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
            yield Static("", id="export-error")
            yield Static("enter: export (missing checks run first) · esc: cancel",
                         id="export-foot")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not self.is_current:   # a second Enter queued before the first dismiss landed
            return
        value = event.value.strip()
        problem = export_problem(Path(value).expanduser()) if value else "no directory given"
        error = self.query_one("#export-error", Static)
        error.update(f"⚠ {problem}" if problem else "")
        error.display = bool(problem)
        if problem is None:
            self.dismiss(Path(value).expanduser())

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#export-error", Static).display = False

    def action_cancel(self) -> None:
        if not self.is_current:   # a second Enter queued before the first dismiss landed
            return
        self.dismiss(None)
