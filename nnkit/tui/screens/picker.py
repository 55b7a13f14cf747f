"""Walkthrough picker: every walkthrough in `nnkit.trace.registry()`, so a new
family appears here as soon as its module registers itself."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from nnkit.trace import registry


class PickerScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        options = []
        for name, w in registry().items():
            t = Text()
            t.append(name, style="bold")
            t.append(f"  {w.problem}  {w.title}\n")
            t.append(w.description, style="dim")
            options.append(Option(t, id=f"wt-{name}"))
        with Vertical(id="picker-dialog"):
            yield Static("Walkthroughs (enter opens, esc cancels)", id="picker-title")
            yield OptionList(*options, id="picker-list")

    def on_mount(self) -> None:
        lst = self.query_one(OptionList)
        try:
            lst.highlighted = lst.get_option_index(f"wt-{self.current}")
        except Exception:       # the current walkthrough may have been unregistered
            lst.highlighted = 0
        lst.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if not self.is_current:   # a second Enter queued before the first dismiss landed
            return
        self.dismiss(event.option.id[3:])

    def action_cancel(self) -> None:
        if not self.is_current:   # a second Enter queued before the first dismiss landed
            return
        self.dismiss(None)
