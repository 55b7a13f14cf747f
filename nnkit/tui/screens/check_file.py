"""Check my derivation file… (the palette; nnkit-tui --check FILE at start):
ask for the file, then the walkthrough screen checks it node by node and
re-checks it whenever it is saved."""
from __future__ import annotations

import ast
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


def declared_walkthrough(path: Path) -> str | None:
    """The file's top-level WALKTHROUGH = "name", read without running it
    (None when absent or the file does not parse: the app then says why)."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError, OSError):
        return None
    for stmt in tree.body:
        if (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
                and any(isinstance(t, ast.Name) and t.id == "WALKTHROUGH"
                        for t in stmt.targets)):
            return stmt.value.value
    return None


def check_file_problem(path: Path) -> str | None:
    if path.is_dir():
        return f"{path} is a directory, not a derivation file"
    if not path.is_file():
        return f"{path}: no such file"
    return None


class CheckFileScreen(ModalScreen[Path | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, suggested: Path | None) -> None:
        super().__init__()
        self.suggested = suggested

    def compose(self) -> ComposeResult:
        with Vertical(id="check-dialog"):
            yield Static("Check my derivation file (nnkit check --template NAME writes one):",
                         id="check-title")
            inp = Input(value=str(self.suggested or ""), placeholder="my_bn.py",
                        id="check-path", compact=True)
            if self.app.is_headless:
                inp.cursor_blink = False
            yield inp
            yield Static("", id="check-error")
            yield Static("enter: check (saving the file re-checks it) · esc: cancel",
                         id="check-foot")

    def on_mount(self) -> None:
        self.query_one("#check-error").display = False
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not self.is_current:   # a second Enter queued before the first dismiss landed
            return
        value = event.value.strip()
        path = Path(value).expanduser()
        problem = check_file_problem(path) if value else "no file given"
        error = self.query_one("#check-error", Static)
        error.update(f"⚠ {problem}" if problem else "")
        error.display = bool(problem)
        if problem is None:
            self.dismiss(path)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#check-error", Static).display = False

    def action_cancel(self) -> None:
        if not self.is_current:
            return
        self.dismiss(None)
