"""The step list: every forward node in evaluation order, then every checked
node from the loss back to the leaves; a recurrence's nodes in runs of one
time step, each under a 't = k' subheader. Headers are disabled options, so
option indices are not step indices; steps are found by option id."""
from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from nnkit.trace import Node, Trace, time_group

FORWARD, BACKWARD = "forward", "backward"
# check mode: the student's verdict on a node, before its title in the step list
VERDICT_MARKS = {"PASS": ("✓", "bold green"), "FAIL": ("✗", "bold red"), "TODO": ("·", "dim")}


@dataclass(frozen=True)
class Step:
    phase: str
    node: Node
    number: int        # 1-based within its phase
    of: int            # steps in its phase

    @property
    def title(self) -> str:
        return self.node.name if self.phase == FORWARD else f"∂L/∂{self.node.name}"


def build_steps(trace: Trace) -> list[Step]:
    fwd, bwd = trace.forward_steps(), trace.backward_steps()
    return ([Step(FORWARD, n, i + 1, len(fwd)) for i, n in enumerate(fwd)]
            + [Step(BACKWARD, n, i + 1, len(bwd)) for i, n in enumerate(bwd)])


def step_id(index: int) -> str:
    return f"step-{index}"


def step_index(option_id: str | None) -> int | None:
    if option_id and option_id.startswith("step-"):
        return int(option_id[5:])
    return None


def _group_title(steps: list[Step], i: int, two_chains: bool) -> str:
    """'t = 3', with the chain's direction when there are two (a BiRNN's
    forward sweep →, its backward sweep ←): the first chained node of the run."""
    g = time_group(steps[i].node)
    if not isinstance(g, int):
        return g
    title = f"t = {g}"
    if two_chains:
        for s in steps[i:]:
            if time_group(s.node) != g or s.phase != steps[i].phase:
                break
            if s.node.chain:
                return f"{title} {'→' if s.node.chain == 'forward' else '←'}"
    return title


class StepList(OptionList):
    """Highlight = current step; ✓/✗ marks once a node's gradient is checked.

    Check mode (--check FILE): the student's verdict on each backward node
    before its title (✓ PASS, ✗ FAIL, · TODO) and "chain" after the node
    where the student's chained backward pass first leaves the truth."""

    verdicts: dict[str, str] = {}
    chain_node: str | None = None

    def set_steps(self, steps: list[Step], marks: dict[str, bool]) -> None:
        self._steps = steps
        self._marks = marks
        timed = any(s.node.time is not None for s in steps)
        two_chains = len({s.node.chain for s in steps if s.node.chain}) > 1
        options: list[Option] = []
        for i, s in enumerate(steps):
            if i == 0 or steps[i - 1].phase != s.phase:
                arrow = "→" if s.phase == FORWARD else "←"
                options.append(Option(Text(f"{arrow} {s.phase}", style="bold"),
                                      id=f"hdr-{s.phase}", disabled=True))
            # an unrolled recurrence (the trace orders it by time step): a
            # subheader opens each run of one time step
            if timed and (options[-1].id == f"hdr-{s.phase}"
                          or time_group(steps[i - 1].node) != time_group(s.node)):
                options.append(Option(Text(" " + _group_title(steps, i, two_chains),
                                           style="dim italic"),
                                      id=f"grp-{i}", disabled=True))
            options.append(Option(self._prompt(s, marks), id=step_id(i)))
        self.set_options(options)

    def _prompt(self, s: Step, marks: dict[str, bool]) -> Text:
        verdict = self.verdicts.get(s.node.key) if s.phase == BACKWARD else None
        if verdict is None:
            t = Text("  " + s.title)
        else:
            glyph, style = VERDICT_MARKS.get(verdict, ("?", "dim"))
            t = Text.assemble((glyph, style), " " + s.title)
        if s.phase == FORWARD:
            if s.node.is_leaf:
                t.append(f"  {s.node.role}", style="dim")
            return t
        if s.node.key in marks:
            ok = marks[s.node.key]
            t.append(" ✓" if ok else " ✗", style="bold green" if ok else "bold red")
        if self.chain_node is not None and s.node.key == self.chain_node:
            t.append(" chain", style="bold white on red")
        return t

    def update_marks(self, marks: dict[str, bool]) -> None:
        self._marks = marks
        for i, s in enumerate(getattr(self, "_steps", [])):
            if s.phase == BACKWARD:
                self.replace_option_prompt(step_id(i), self._prompt(s, marks))

    def set_verdicts(self, verdicts: dict[str, str], chain_node: str | None) -> None:
        """Check mode: the student's verdict per node key, the chain's first wrong node."""
        self.verdicts, self.chain_node = dict(verdicts), chain_node
        self.update_marks(getattr(self, "_marks", {}))

    def show_step(self, index: int) -> None:
        target = self.get_option_index(step_id(index))
        if self.highlighted != target:
            self.highlighted = target
