"""Help: the keys (read from the main screen's and the app's bindings, so it cannot drift)
and what the panels show."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

ABOUT = (
    "Forward steps show each node's value; backward steps show ∂L/∂node from the "
    "kernels beside its central-difference estimate (float64, h = 1e-6), the "
    "largest relative error |a−n|/max(|a|+|n|, atol) and the worst element. "
    "A node passes when |a−n| ≤ atol + rtol·|n| everywhere. Tensors larger than "
    "256 elements are checked on a seeded sample (· = not sampled). "
    "Ctrl+P opens the command palette with every action."
)


def key_table(bindings: list[Binding], extra: list[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for b in bindings:
        keys = ", ".join(_key_name(k) for k in b.key.split(","))
        table.add_row(keys, b.tooltip or b.description)
    for keys, what in extra:
        table.add_row(keys, what)
    return table


_NAMES = {"right": "→", "left": "←", "question_mark": "?", "escape": "esc",
          "space": "space", "home": "home", "end": "end", "up": "↑", "down": "↓",
          "plus": "+", "equals_sign": "=", "minus": "−", "pagedown": "pgdn",
          "pageup": "pgup"}


def _key_name(key: str) -> str:
    return _NAMES.get(key.strip(), key.strip())


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, bindings: list[Binding]) -> None:
        super().__init__()
        self.bindings = bindings

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog"):
            yield Static("nnkit-tui: keys", id="help-title")
            with VerticalScroll(id="help-body"):
                yield Static(key_table(self.bindings, [("↑, ↓", "move in the step list"),
                                                       ("ctrl+p", "command palette")]))
                yield Static(Text(ABOUT, style="dim"), id="help-about")
            yield Static("esc / ? / q: close", id="help-foot")

    def action_close(self) -> None:
        self.dismiss(None)
