"""The walkthrough screen's keys. The footer shows only what fits 80 columns,
with `?` always among them; the help screen (`?`) and the command palette
(ctrl+p) list every key. `tooltip` is the longer text the help screen shows."""
from __future__ import annotations

from textual.binding import Binding

STEP = Binding.Group("Step", compact=True)      # ← → share one footer entry

MAIN_BINDINGS = [
    Binding("left,p", "previous", "Prev", priority=True, group=STEP, key_display="←",
            tooltip="previous step"),
    Binding("right,n", "next", "Next", priority=True, group=STEP, key_display="→",
            tooltip="next step"),
    Binding("home", "first", "First", priority=True, show=False, tooltip="first step"),
    Binding("end", "last", "Last", priority=True, show=False, tooltip="last step"),
    Binding("space", "play", "Play", priority=True,
            tooltip="play / pause: step automatically"),
    Binding("g", "check_all", "Check",
            tooltip="finite-difference check of every node (progress bar below)"),
    Binding("c", "config", "Config", tooltip="edit the configuration (B, N, M, ε, seed, …)"),
    Binding("w", "pick", "Walk", tooltip="switch walkthrough"),
    Binding("question_mark", "help", "Help", key_display="?",
            tooltip="this help: every key"),
    Binding("q", "quit", "Quit", tooltip="quit"),
    # on demand: the help screen and the palette list these
    Binding("escape", "cancel", "Cancel check", show=False,
            tooltip="cancel a running check, stop playing"),
    Binding("r", "resample", "Resample", show=False, tooltip="resample the inputs (next seed)"),
    Binding("h", "toggle_heatmap", "Numbers/heatmap", show=False,
            tooltip="numbers ↔ colour heatmap (large tensors start as heatmaps)"),
    Binding("z", "eps_zero", "ε=0 demo", show=False,
            tooltip="ε = 0 on a batch with a constant feature, and back (P2.1)"),
    Binding("e", "export", "Export", show=False,
            tooltip="export arrays (.npz) and the check report (.json)"),
    Binding("plus,equals_sign", "scale_recurrent(1.25)", "Scale W up", show=False,
            tooltip="rnn/birnn: recurrent weights' spectral norm ×1.25 (watch ‖∂L/∂h_t‖ grow)"),
    Binding("minus", "scale_recurrent(0.8)", "Scale W down", show=False,
            tooltip="rnn/birnn: recurrent weights' spectral norm ×0.8 (watch it vanish)"),
    # the detail pane cannot take focus (←/→ step), so it scrolls by keys too
    Binding("shift+right,]", "scroll_tensors(1)", "Scroll →", show=False, priority=True,
            tooltip="scroll wide tensors right"),
    Binding("shift+left,[", "scroll_tensors(-1)", "Scroll ←", show=False, priority=True,
            tooltip="scroll wide tensors left"),
    Binding("pagedown", "scroll_detail(1)", "Page down", show=False, priority=True,
            tooltip="scroll the detail pane down"),
    Binding("pageup", "scroll_detail(-1)", "Page up", show=False, priority=True,
            tooltip="scroll the detail pane up"),
]
