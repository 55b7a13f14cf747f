"""Snapshots of nnkit-tui at a fixed size on the seeded default walkthrough
(textual is pinned: snapshots change between releases). Regenerate with
`pytest tests/tui --snapshot-update` and look at the SVGs before committing."""
from __future__ import annotations

from nnkit.tui.app import NnkitApp

from tui_helpers import SIZE, settle


def goto(key: str, phase: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        screen = pilot.app.main
        index = next(i for i, s in enumerate(screen.steps)
                     if s.node.key == key and s.phase == phase)
        screen.go(index)
        await settle(pilot)
    return run_before


def test_forward_step_yhat(snap_compare):
    assert snap_compare(NnkitApp(), terminal_size=SIZE, run_before=goto("Yhat", "forward"))


def test_backward_step_yhat_with_its_check(snap_compare):
    assert snap_compare(NnkitApp(), terminal_size=SIZE, run_before=goto("Yhat", "backward"))


def test_config_form(snap_compare):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("c")
        await pilot.pause()
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
    assert snap_compare(NnkitApp(), terminal_size=(80, 24), run_before=run_before)
