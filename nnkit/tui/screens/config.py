"""Modal configuration form, built from `Walkthrough.params` (no per-walkthrough
code): Input for numbers and text, Select for choices, Switch for booleans.
Every field is parsed by its own `Param.parse`, so a bad value gets the
library's message inline under the field; cross-parameter checks go through
`Walkthrough.config`. Dismisses with the validated config, or None."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, Switch

from nnkit.trace import Param, Walkthrough


def _show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class ConfigScreen(ModalScreen[dict | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel"),
                Binding("ctrl+s", "apply", "Apply")]

    def __init__(self, walkthrough: Walkthrough, cfg: dict) -> None:
        super().__init__()
        self.walkthrough = walkthrough
        self.cfg = dict(cfg)

    def compose(self) -> ComposeResult:
        w = self.walkthrough
        with Vertical(id="config-dialog"):
            yield Static(f"Configure {w.name} ({w.problem}): {w.title}", id="config-title")
            with VerticalScroll(id="config-fields"):
                for i, p in enumerate(w.params):
                    with Horizontal(classes="field"):
                        yield Label(p.name, classes="field-name")
                        yield self._editor(i, p)
                        yield Label(p.help, classes="field-help")
                    yield Static("", id=f"error-{i}", classes="field-error")
            yield Static("", id="config-error", classes="field-error")
            with Horizontal(id="config-buttons"):
                yield Button("Apply", id="apply", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def _editor(self, i: int, p: Param):
        value = self.cfg.get(p.name, p.default)
        ident = f"field-{i}"
        if isinstance(p.default, bool):
            return Switch(value=bool(value), id=ident, classes="field-editor")
        if p.choices is not None:
            return Select([(str(c), c) for c in p.choices], value=value, id=ident,
                          allow_blank=False, compact=True, classes="field-editor")
        inp = Input(value=_show(value), id=ident, compact=True, classes="field-editor")
        if self.app.is_headless:
            inp.cursor_blink = False     # a blinking cursor would make snapshots flaky
        return inp

    def on_mount(self) -> None:
        first = self.query(".field-editor").first()
        first.focus()

    def _raw(self, i: int):
        return self.query_one(f"#field-{i}").value

    def _set_error(self, ident: str, message: str) -> None:
        err = self.query_one(f"#{ident}", Static)
        err.update(message)
        err.set_class(bool(message), "-shown")

    def validate(self) -> dict | None:
        """Parse every field; show each problem under its field; None if any."""
        values, ok = {}, True
        params = self.walkthrough.params
        for i, p in enumerate(params):
            try:
                values[p.name] = p.parse(self._raw(i))
                self._set_error(f"error-{i}", "")
            except ValueError as exc:
                self._set_error(f"error-{i}", f"⚠ {exc}")
                ok = False
        if not ok:
            self._set_error("config-error", "fix the fields marked ⚠")
            return None
        try:
            cfg = self.walkthrough.config(**values)
        except ValueError as exc:
            # a cross-parameter error names its parameter first ("B: ...")
            name = str(exc).split(":", 1)[0]
            for i, p in enumerate(params):
                if p.name == name:
                    self._set_error(f"error-{i}", f"⚠ {exc}")
            self._set_error("config-error", f"⚠ {exc}")
            return None
        self._set_error("config-error", "")
        return cfg

    def on_input_changed(self, event: Input.Changed) -> None:
        # live feedback for the field being typed in; Apply re-checks everything
        i = int(event.input.id.split("-")[1])
        try:
            self.walkthrough.params[i].parse(event.value)
            self._set_error(f"error-{i}", "")
        except ValueError as exc:
            self._set_error(f"error-{i}", f"⚠ {exc}")
        # the summary under the form stands only while a field is still marked
        if not self.query(".field-error.-shown").exclude("#config-error"):
            self._set_error("config-error", "")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_apply()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "apply":
            self.action_apply()
        else:
            self.action_cancel()

    def action_apply(self) -> None:
        if not self.is_current:   # a second Enter queued before the first dismiss landed
            return
        cfg = self.validate()
        if cfg is not None:
            self.dismiss(cfg)

    def action_cancel(self) -> None:
        if not self.is_current:   # a second Enter queued before the first dismiss landed
            return
        self.dismiss(None)
