"""‖∂L/∂h_t‖ over t beside the detail pane, for the rnn and birnn walkthroughs
(P9.2–P9.3): a sparkline per chain on a log scale, with the bound's δ and δ^T.

The keys + and − rescale the recurrent weights' spectral norm (the
walkthrough's w_scale) and rebuild the trace, so the user watches the
gradient vanish (δ < 1) or grow as δ crosses 1. The norms are the trace's own
state gradients (the kernels' BPTT), the same numbers as rnn_backward's
grad_norms.
"""
from __future__ import annotations

import numpy as np
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from nnkit.trace import Trace

# walkthrough -> (recurrent weight node, [(chain label, state keys t = 1..T)])
GAMMA = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0}     # max |σ′|
SCALE_STEP = 1.25                                        # one key press
W_SCALE_MAX = 100.0                                      # the walkthroughs' Param maximum


def chains(trace: Trace) -> list[tuple[str, str, list[str]]]:
    """(label, recurrent-weight node, state keys in time order) per chain."""
    name = trace.walkthrough.name
    if name not in ("rnn", "birnn"):
        return []
    T = trace.cfg["T"]
    if name == "rnn":
        return [("h", "Wh", [f"h[{t}]" for t in range(1, T + 1)])]
    if name == "birnn":
        return [("h^f", "Wf", [f"hf[{t}]" for t in range(1, T + 1)]),
                ("h^b", "Wb", [f"hb[{t}]" for t in range(1, T + 1)])]
    return []


def norms_of(trace: Trace) -> list[tuple[str, np.ndarray, float]]:
    """(label, ‖∂L/∂h_t‖ for t = 1..T, δ = γ·‖W‖₂) per chain."""
    gamma = GAMMA.get(trace.cfg.get("activation"), 1.0)
    out = []
    for label, w, keys in chains(trace):
        n = np.array([float(np.linalg.norm(np.asarray(trace.grad(k), np.float64)))
                      for k in keys])
        W = np.asarray(trace.value(w), np.float64)
        out.append((label, n, gamma * float(np.linalg.norm(W, 2))))
    return out


def scaled_config(cfg: dict, factor: float) -> dict:
    """The walkthrough config with w_scale multiplied by `factor` (clamped)."""
    new = dict(cfg)
    new["w_scale"] = float(min(max(float(cfg["w_scale"]) * factor, 1e-3), W_SCALE_MAX))
    return new


class GradNorms(Vertical):
    """Shown only for walkthroughs with recurrent chains (rnn, birnn)."""

    SCOPED_CSS = False
    DEFAULT_CSS = """
    GradNorms {
        width: 26;
        height: 1fr;
        border-left: vkey $primary 50%;
        padding: 0 1;
        display: none;
    }
    GradNorms.-recurrent { display: block; }
    WalkthroughScreen.-narrow GradNorms { display: none; }
    GradNorms Sparkline { height: 3; margin-bottom: 1; }
    GradNorms Static { height: auto; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="gn-title")
        for i in range(2):
            yield Static(id=f"gn-label-{i}")
            yield Sparkline([], id=f"gn-spark-{i}")
        yield Static(id="gn-bound")

    def show(self, trace: Trace | None) -> None:
        data = [] if trace is None else norms_of(trace)
        self.set_class(bool(data), "-recurrent")
        if not data:
            return
        T = trace.cfg["T"]
        self.query_one("#gn-title", Static).update(
            f"‖∂L/∂h_t‖, t = 1…{T}\n(log scale)  w_scale {trace.cfg['w_scale']:.3g}")
        lines = []
        for i in range(2):
            label = self.query_one(f"#gn-label-{i}", Static)
            spark = self.query_one(f"#gn-spark-{i}", Sparkline)
            label.display = spark.display = i < len(data)
            if i >= len(data):
                continue
            name, n, delta = data[i]
            # log10 so geometric decay is a straight ramp; a zero norm sits at the floor
            logs = np.log10(np.maximum(n, 1e-300))
            spark.data = [float(x) for x in logs - logs.min()] if T > 1 else [1.0]
            label.update(f"{name}: {n[0]:.2g} … {n[-1]:.2g}")
            lines.append(f"{name}: δ = γ‖W‖ = {delta:.3g}\n  δ^T = {delta ** T:.3g}")
        lines.append("+/− scale W" + (" (vanishes)" if all(d < 1 for _, _, d in data)
                                      else ""))
        self.query_one("#gn-bound", Static).update("\n".join(lines))

    def text(self) -> str:
        """Everything the widget shows as plain text (tests read it)."""
        return "\n".join(str(s.content) for s in self.query(Static) if s.display)
