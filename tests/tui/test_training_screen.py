"""The Training screen: opened by its key and the command palette, shows
progress from the worker, cancels on `x`, finishes a short run with the test
accuracy."""
from __future__ import annotations

import re

from textual.widgets import Sparkline

from nnkit.tui.app import NnkitApp
from nnkit.tui.screens.training import TrainingScreen

from tui_helpers import SIZE, settle


async def _wait_for(pilot, cond, rounds: int = 1000) -> None:
    """Wait on state, not the clock (short pauses until cond() holds)."""
    for _ in range(rounds):
        if cond():
            return
        await pilot.pause(0.01)
    raise AssertionError("condition not reached")


async def test_key_opens_training_shows_progress_and_cancels(monkeypatch):
    # a run far longer than the test: it must still be going when x is pressed
    monkeypatch.setattr(TrainingScreen, "DEFAULT_EPOCHS", 100_000)
    app = NnkitApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("t")
        screen = app.screen
        assert isinstance(screen, TrainingScreen)
        await _wait_for(pilot, lambda: len(screen.losses) >= 5)
        assert screen.running
        # the worker runs on: any epoch of the 100,000, with its batch and loss
        status = str(screen.query_one("#train-status").render())
        assert re.search(r"epoch \d+/100000, batch \d+/\d+, loss \d", status), status
        assert len(screen.query_one("#train-loss", Sparkline).data) >= 5
        await pilot.press("x")
        await _wait_for(pilot, lambda: not screen.running)
        await app.workers.wait_for_complete()
        assert screen.cancelled and screen.finished.history.stopped
        status = str(screen.query_one("#train-status").render())
        assert "cancelled after" in status and "test accuracy" in status
        assert len(screen.finished.history.epoch) < 100_000
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, TrainingScreen)


async def test_short_run_finishes_with_test_accuracy():
    app = NnkitApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = TrainingScreen(dataset="synthetic", epochs=3)
        await app.push_screen(screen)
        await _wait_for(pilot, lambda: screen.finished is not None)
        h = screen.finished.history
        assert not h.stopped and h.epoch == [1, 2, 3]
        assert 0.5 < screen.finished.test_acc <= 1.0
        assert len(screen.query_one("#train-acc", Sparkline).data) == 3
        assert "done: 3 epochs on synthetic" in str(screen.query_one("#train-status").render())
        assert "epoch  train loss" in str(screen.query_one("#train-table-head").render())
        assert str(screen.query_one("#train-table").render()).splitlines()[-1].split()[0] == "3"


async def test_restart_ignores_the_cancelled_run():
    app = NnkitApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = TrainingScreen(dataset="synthetic", epochs=2)
        await app.push_screen(screen)
        await pilot.press("s")          # a second run cancels the first (exclusive worker)
        await _wait_for(pilot, lambda: screen.finished is not None)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.run_id == 2 and screen.finished.run == 2
        assert not screen.finished.history.stopped


async def test_palette_lists_training():
    app = NnkitApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Training" in titles
        cmd = next(c for c in app.get_system_commands(app.screen) if c.title == "Training")
        cmd.callback()
        await pilot.pause()
        assert isinstance(app.screen, TrainingScreen)
        await pilot.press("x")
        await app.workers.wait_for_complete()
