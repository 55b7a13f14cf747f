"""Conv calculator (P3): a form in (input shape, layout, kernel, stride,
padding, dilation, channels), out the output shape with each axis's formula
filled in, the parameter count and the MACs; beside it the ResNet bottleneck
solver. Every answer and every error message comes from nnkit.conv_shapes,
so a bad value shows exactly the library's message. Recomputed on every
keystroke (O(1) arithmetic: no worker needed).

At 80×24 every answer is on screen without scrolling: the inputs are one line
each (compact), so the output shape, its filled-in formulas, the parameters,
the MACs and any error message sit right under them. Each column still
scrolls when the terminal is smaller than that."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Select, Static

from nnkit import conv_shapes as cs

FIELDS = (  # id, label, default
    ("input", "input shape", "8,32,32,3"),
    ("out", "out channels", "16"),
    ("kernel", "kernel", "3"),
    ("stride", "stride", "2"),
    ("padding", "padding", "1"),
    ("dilation", "dilation", "1"),
)
BOTTLENECK = (("channels", "channels C", "64"), ("reduction", "cut lo,hi", "0.5,0.6"))


def parse(text: str, name: str):
    """"3" -> 3, "3,5" -> (3, 5); "same"/"valid" kept; anything else a ValueError
    naming the field (the library then checks the values)."""
    text = text.strip()
    if text in ("same", "valid"):
        return text
    try:
        vals = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"{name}: expected an integer or integers separated by commas, "
                         f"got {text!r}") from None
    return vals[0] if len(vals) == 1 else vals


def conv_answer(values: dict, layout: str) -> tuple[bool, str]:
    """(ok, text) for the conv form: the library's answer or its message."""
    try:
        shape = parse(values["input"], "input_shape")
        shape = shape if isinstance(shape, tuple) else (shape,)
        args = (shape, parse(values["out"], "out_channels"), parse(values["kernel"], "kernel_size"),
                parse(values["stride"], "stride"), parse(values["padding"], "padding"),
                parse(values["dilation"], "dilation"), layout)
        out = cs.conv2d_output_shape(*args)
        count = cs.conv2d_count(*args)
    except (TypeError, ValueError) as exc:
        return False, str(exc)
    return True, "\n".join([f"output {tuple(out)} ({layout})", *out.lines, "",
                            f"weights {count.weights:,}  biases {count.biases:,}",
                            f"parameters {count.params:,}", f"MACs {count.macs:,}"])


def bottleneck_answer(values: dict) -> tuple[bool, str]:
    try:
        C = parse(values["channels"], "channels")
        red = tuple(float(x) for x in values["reduction"].split(","))
        sols = [cs.solve_bottleneck(C, red, bias=b) for b in (False, True)]
    except (TypeError, ValueError) as exc:
        return False, str(exc)
    return True, "\n".join(line for s in sols for line in s.lines())


class ConvCalcScreen(Screen):
    """k opens it from the walkthrough; esc goes back."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]
    DEFAULT_CSS = """
    ConvCalcScreen #cc-body { height: 1fr; }
    ConvCalcScreen .cc-col { width: 1fr; height: 1fr; padding: 0 1; }
    ConvCalcScreen .cc-row { height: 1; }
    ConvCalcScreen .cc-row Label { width: 14; }
    ConvCalcScreen .cc-row Input, ConvCalcScreen .cc-row Select { width: 1fr; }
    ConvCalcScreen .cc-result { margin-top: 1; height: auto; }
    ConvCalcScreen .cc-title { text-style: bold; margin-bottom: 1; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal(id="cc-body"):
            with VerticalScroll(classes="cc-col", can_focus=False):
                yield Static("Convolution (P3): W' = ⌊(W + 2p − d·(k − 1) − 1)/s⌋ + 1",
                             classes="cc-title")
                for fid, label, default in FIELDS[:1]:
                    yield self._row(fid, label, default)
                with Horizontal(classes="cc-row"):
                    yield Label("layout")
                    yield Select([("BWHC (P3: B, W, H, C)", "BWHC"),
                                  ("NCHW (PyTorch: B, C, H, W)", "NCHW")],
                                 value="BWHC", allow_blank=False, compact=True, id="cc-layout")
                for fid, label, default in FIELDS[1:]:
                    yield self._row(fid, label, default)
                yield Static(id="cc-conv", classes="cc-result")
            with VerticalScroll(classes="cc-col", can_focus=False):
                yield Static("ResNet bottleneck (P3): 1×1 C→k, 3×3 k→k, 1×1 k→C",
                             classes="cc-title")
                for fid, label, default in BOTTLENECK:
                    yield self._row(fid, label, default)
                yield Static(id="cc-bottleneck", classes="cc-result")
        yield Footer()

    @staticmethod
    def _row(fid: str, label: str, default: str) -> Horizontal:
        return Horizontal(Label(label), Input(default, id=f"cc-{fid}", compact=True),
                          classes="cc-row")

    def on_mount(self) -> None:
        self.recompute()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.recompute()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.recompute()

    def _values(self, fields) -> dict:
        return {fid: self.query_one(f"#cc-{fid}", Input).value for fid, _, _ in fields}

    def recompute(self) -> None:
        layout = self.query_one("#cc-layout", Select).value
        for target, (ok, text) in (("#cc-conv", conv_answer(self._values(FIELDS), layout)),
                                   ("#cc-bottleneck", bottleneck_answer(self._values(BOTTLENECK)))):
            self.query_one(target, Static).update(Text(text, style="" if ok else "bold red"))
