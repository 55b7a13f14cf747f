"""The lessons: each identity of the problem set P1-P10, computed from random
data and checked (`nnkit lessons`, the TUI's Lessons screen, tests).

A lesson is a function `fn(seed: int) -> Result` registered with `@lesson`:
it computes both sides of an identity (or a measured quantity and its bound),
and says how far apart they are against a stated tolerance. One module per
problem (p4_softmax.py, p5_optimizers.py, ...), imported on first use.

    from nnkit.lessons import Result, lesson

    @lesson("p4-softmax-grad", "P4", "∂L/∂z = ŷ − y")
    def softmax_gradient(seed: int) -> Result:
        ...
        return Result(discrepancy=err, tolerance=1e-12,
                      rows=[{"B": 8, "K": 5, "max |analytic − (ŷ − y)|": err}])
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Result:
    """What a lesson measured.

    discrepancy: the measured gap between the two sides (or the worst over
        the rows), compared with `tolerance`: passed = discrepancy <= tolerance
        (NaN fails).
    rows: the lesson's table, one dict per row (same keys in every row).
    curves: named series to plot (e.g. {"‖∂h_T/∂h_0‖": [...], "δ^T": [...]}).
    notes: lines of explanation printed under the table.
    """
    discrepancy: float
    tolerance: float
    rows: list[dict] = field(default_factory=list)
    curves: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.discrepancy <= self.tolerance)

    def _repr_html_(self) -> str:
        """The table, summary and notes in Jupyter (nnkit/lessons/_report.py)."""
        from ._report import html
        return html(self)


@dataclass(frozen=True)
class Lesson:
    name: str          # CLI name, e.g. "p5-momentum-running-average"
    problem: str       # "P5"
    title: str         # the identity in one line
    fn: Callable[[int], Result]

    def run(self, seed: int = 0) -> Result:
        """The lesson on `seed`, an int >= 0 (a negative one is a ValueError
        here, not a failed lesson: numpy's default_rng refuses it)."""
        from .._validate import seed_value
        return self.fn(seed_value(seed))


_REGISTRY: dict[str, Lesson] = {}


def lesson(name: str, problem: str, title: str):
    """Decorator: register `fn(seed) -> Result` as a lesson."""
    def register(fn: Callable[[int], Result]) -> Callable[[int], Result]:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"lesson: name {name!r} is registered twice")
        _REGISTRY[name] = Lesson(name, problem, title, fn)
        return fn
    return register


def registry() -> dict[str, Lesson]:
    """Every lesson by name, in problem order (imports the lesson modules once)."""
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    def order(item):   # P2 before P10; then by name
        digits = "".join(ch for ch in item[1].problem if ch.isdigit())
        return (int(digits) if digits else 0, item[1].problem, item[0])
    return dict(sorted(_REGISTRY.items(), key=order))


def get(name: str) -> Lesson:
    reg = registry()
    if name not in reg:
        raise ValueError(f"lesson: expected one of {sorted(reg)}, got {name!r}")
    return reg[name]
