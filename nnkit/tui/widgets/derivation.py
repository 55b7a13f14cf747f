"""Check mode (nnkit-tui --check FILE): the student's own formula for the
step's gradient, judged by nk.check_derivation — its verdict, the one-line
diagnosis and where the chained run leaves the truth. Only drawn when a
derivation file is being checked."""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from .steps import BACKWARD, Step

BADGE = {"PASS": "bold black on green", "FAIL": "bold white on red",
         "TODO": "bold black on grey70"}


def summary_text(path: Path, report, error: str, names: dict[str, str]) -> Text:
    """One line for the file: its counts and where the chain goes wrong."""
    t = Text()
    t.append("your derivation ", style="bold")
    t.append(path.name, style="bold cyan")
    if error:
        t.append(": ")
        t.append(error, style="bold red")
        return t
    if report is None:
        t.append(": checking…", style="dim")
        return t
    n = {v: sum(f.verdict == v for f in report.formulas) for v in BADGE}
    t.append(f": {n['PASS']} PASS", style="green")
    t.append(f" {n['FAIL']} FAIL", style="bold red" if n["FAIL"] else "")
    t.append(f" {n['TODO']} TODO of {len(report.formulas)}", style="dim" if not n["TODO"] else "")
    first = report.chain.get("first_wrong_node")
    if first is not None:
        t.append(f"; the chain leaves the truth at ∂L/∂{names.get(first, first)}",
                 style="bold red")
    return t


def node_text(step: Step, path: Path, report, error: str, names: dict[str, str]) -> Text:
    """A backward step: the student's formula for it, its verdict and diagnosis."""
    key = step.node.key
    if error or report is None:
        return summary_text(path, report, error, names)
    f = report.verdict_of(key)
    t = Text()
    if f is None:
        t.append("yours: ", style="bold")
        t.append("no formula for this node (the loss: ∂L/∂L = 1)" if step.node.role == "loss"
                 else "no formula for this node", style="dim")
        return t
    t.append(f" {f.verdict} ", style=BADGE.get(f.verdict, "bold"))
    t.append(f" yours: {f.name}", style="bold")
    t.append(f" in {path.name}", style="cyan")
    if f.max_rel_err is not None:
        t.append(f"  max rel err {f.max_rel_err:.2e}",
                 style="bold green" if f.verdict == "PASS" else "bold red")
    if f.diagnosis:
        t.append("\n")
        t.append(f.diagnosis, style="bold red" if f.verdict == "FAIL" else "dim")
    chain = report.chain
    if chain.get("first_wrong_node") == key:
        t.append("\nchain: your backward pass leaves the truth here", style="bold red")
        if chain.get("spoiled"):
            t.append(f" (spoils {', '.join(chain['spoiled'])})", style="red")
    elif f.verdict == "PASS" and f.chain == "FAIL":
        first = chain.get("first_wrong_node")
        t.append(f"\nchain: right on its own, wrong when fed your ∂L/∂"
                 f"{names.get(first, first)}", style="yellow")
    return t


class DerivationPanel(Static):
    def show(self, step: Step | None, path: Path, report, error: str,
             names: dict[str, str]) -> None:
        if step is not None and step.phase == BACKWARD:
            self.update(node_text(step, path, report, error, names))
        else:
            self.update(summary_text(path, report, error, names))
