"""The header line, drawn from reactive state bound to the walkthrough screen.

Designed for 80 columns: the essentials first (walkthrough, step, dtype,
verdict or status), then the seed and the other parameters while they fit,
cut with "…" (the config form, `c`, shows them all). The problem label (P2.4)
comes last: it is the first thing a narrow terminal gives up.
"""
from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from nnkit.gradcheck import GradcheckReport
from nnkit.trace import Walkthrough

from .steps import Step

ELLIPSIS = "…"


def param_text(key: str, value) -> str:
    if isinstance(value, bool):
        return key            # a true flag by its name; false flags are omitted
    if isinstance(value, float):
        return f"{key}={value:g}"
    return f"{key}={value}"


def config_parts(cfg: dict) -> list[str]:
    """The parameters other than dtype (shown as an essential), seed first."""
    keys = [k for k in cfg if k != "dtype"]
    keys.sort(key=lambda k: k != "seed")     # stable: the rest keep their order
    return [param_text(k, cfg[k]) for k in keys
            if not (isinstance(cfg[k], bool) and not cfg[k])]


def header_text(walkthrough: Walkthrough | None, cfg: dict, step: Step | None, *,
                building: bool, playing: bool, report: GradcheckReport | None,
                width: int) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" nnkit ", style="bold reverse")
    if walkthrough is not None:
        t.append(f" {walkthrough.name}", style="bold")
    if step is not None:
        t.append(f"  {step.phase} {step.number}/{step.of} {step.title}", style="bold cyan")
    t.append(f"  {cfg.get('dtype', 'float64')}", style="bold")
    if building:
        t.append("  building…", style="bold yellow")
    elif playing:
        t.append("  ▶ playing", style="bold green")
    if report is not None:
        ok = report.passed
        t.append("  ✓ checks pass" if ok else "  ✗ checks FAIL",
                 style="bold green" if ok else "bold red")
    rest = config_parts(cfg)
    shown = []
    for i, part in enumerate(rest):
        more = i < len(rest) - 1
        need = len(" ".join(shown + [part])) + 2 + (2 if more else 0)
        if t.cell_len + need > width:
            shown.append(ELLIPSIS)
            break
        shown.append(part)
    if shown:
        t.append("  " + " ".join(shown), style="dim")
    if walkthrough is not None and t.cell_len + len(walkthrough.problem) + 2 <= width:
        t.append(f"  {walkthrough.problem}", style="dim")
    return t


class TopBar(Widget):
    """Re-renders whenever one of its reactives changes (bound to the screen's)."""

    walkthrough: reactive[Walkthrough | None] = reactive(None)
    cfg: reactive[dict] = reactive(dict)
    # always_update: a report holds arrays (no truth value); a step compares by node
    step: reactive[Step | None] = reactive(None, always_update=True)
    building: reactive[bool] = reactive(False)
    playing: reactive[bool] = reactive(False)
    report: reactive[GradcheckReport | None] = reactive(None, always_update=True)

    def render(self) -> Text:
        return header_text(self.walkthrough, self.cfg, self.step, building=self.building,
                           playing=self.playing, report=self.report, width=self.size.width)
