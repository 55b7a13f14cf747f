"""Snapshots of nnkit-tui at fixed sizes on seeded data (textual is pinned:
snapshots change between releases). Regenerate with
`pytest tests/tui --snapshot-update` and look at the SVGs before committing.

Every registered walkthrough gets an 80×24 snapshot (issue 8.10): a new
walkthrough fails here until its snapshot has been generated and looked at."""
from __future__ import annotations

import pytest

from nnkit.trace import registry
from nnkit.tui.app import NnkitApp
from nnkit.tui.widgets.tensor import fmt_number

from tui_helpers import SIZE, settle, shown

SMALL = (80, 24)


@pytest.fixture(autouse=True)
def exact_to_rounding(monkeypatch):
    """Screens without rounding noise. A finite-difference check's error
    (~1e-9), its worst index and the sign of a centred tensor's mean
    (±1e-17) change with NumPy's and OpenBLAS's versions, so a snapshot that
    drew them would hold on one machine only (Python 3.12's NumPy and SciPy
    moved three of them). Here the numeric gradient is the analytic one
    wherever it was sampled, and a mean below 1e-12 of the largest magnitude
    is 0; the checks themselves are tested against finite differences in
    tests/gradcheck and tests/trace."""
    import importlib

    import numpy as np
    # the module: nnkit.gradcheck as an attribute is the function nk.gradcheck
    gradcheck = importlib.import_module("nnkit.gradcheck")
    tensor = importlib.import_module("nnkit.tui.widgets.tensor")

    real_compare, real_stats = gradcheck.compare, tensor.stats

    def compare(name, analytic, numeric, **kw):
        numeric = np.where(np.isnan(numeric), numeric, analytic)
        return real_compare(name, analytic, numeric, **kw)

    def stats(a):
        s = real_stats(a)
        if abs(s["mean"]) < 1e-12 * max(abs(s["min"]), abs(s["max"])):
            s["mean"] = 0.0
        return s
    monkeypatch.setattr(gradcheck, "compare", compare)
    monkeypatch.setattr(tensor, "stats", stats)


def goto(key: str, phase: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        screen = pilot.app.main
        index = next(i for i, s in enumerate(screen.steps)
                     if s.node.key == key and s.phase == phase)
        screen.go(index)
        await settle(pilot)
    return run_before


async def checked_last_step(pilot) -> None:
    """The last backward step after `g`: header with its verdict, a gradient
    pair and the footer. Toasts are cleared: they time out on the clock."""
    await settle(pilot)
    await pilot.press("end", "g")
    await settle(pilot)
    pilot.app.clear_notifications()
    await pilot.pause()


@pytest.mark.parametrize("name", sorted(registry()))
def test_every_walkthrough_at_80x24(snap_compare, name):
    assert snap_compare(NnkitApp(name), terminal_size=SMALL, run_before=checked_last_step)


def test_forward_step_yhat(snap_compare):
    assert snap_compare(NnkitApp(), terminal_size=SIZE, run_before=goto("Yhat", "forward"))


def test_backward_step_yhat_with_its_check(snap_compare):
    assert snap_compare(NnkitApp(), terminal_size=SIZE, run_before=goto("Yhat", "backward"))


def test_config_form(snap_compare):
    """The form over the first step. It used to fail 3 times in 10 under load:
    the snapshot was taken before the X table under the modal was drawn. It
    waits on what is drawn now: the X table's first and last numbers on the
    main screen before `c`, the dialog after."""
    async def run_before(pilot) -> None:
        await settle(pilot)
        main = pilot.app.main
        X = main.trace.values["X"]
        await shown(pilot, fmt_number(X[0, 0]), fmt_number(X[-1, -1]), screen=main)
        await pilot.press("c")
        await shown(pilot, f"Configure {main.walkthrough.name}", "Apply", "Cancel")
        await shown(pilot, fmt_number(X[0, 0]), fmt_number(X[-1, -1]), screen=main)
    assert snap_compare(NnkitApp(), terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
    assert snap_compare(NnkitApp(), terminal_size=SIZE, run_before=run_before)


def test_eps_zero_at_80x24(snap_compare):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("z")
        await settle(pilot)
    assert snap_compare(NnkitApp(), terminal_size=SMALL, run_before=run_before)
