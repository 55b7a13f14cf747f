"""Equation panel: where the step is, the node's formula (Unicode math), the
parents it reads (or, going back, the children its gradient gathers from),
its note and the walkthrough's teaching lines (`Trace.insights`)."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from .steps import BACKWARD, Step


def formula_text(step: Step, children: list[str], insights: list[str] | None,
                 parents: list[str] | None = None) -> Text:
    n = step.node
    t = Text()
    t.append(f"{step.phase} {step.number}/{step.of}  ", style="bold reverse")
    t.append(f" {step.title}", style="bold")
    t.append(f"  ({n.role})\n", style="dim")
    t.append(n.formula + "\n", style="bold cyan")
    if step.phase == BACKWARD:
        if n.role == "loss":
            t.append("∂L/∂L = 1: the backward pass starts here\n", style="italic")
        else:
            t.append("gathers from: " + (", ".join(children) or "—") + "\n")
    elif n.parents:
        t.append("reads: " + ", ".join(parents or n.parents) + "\n")
    else:
        t.append("leaf: drawn from the seed\n", style="dim")
    if n.note:
        t.append(n.note + "\n", style="italic")
    if insights is None:
        t.append("…\n", style="dim")
    for line in insights or ():
        alarm = "nan" in line.lower() or "inf" in line or "∞" in line
        t.append(line + "\n", style="bold magenta" if alarm else "green")
    t.rstrip()
    return t


class FormulaPanel(Static):
    def show(self, step: Step, children: list[str], insights: list[str] | None,
             parents: list[str] | None = None) -> None:
        self.update(formula_text(step, children, insights, parents))
