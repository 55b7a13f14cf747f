"""The P9 LSTM lesson on the Lessons screen at 80×24 and 120×40: its curves
are the lesson's own numbers (the kernels' ‖∂L/∂c_t‖ and ‖∂L/∂h_t‖ per step),
one sparkline each, and every label is drawn whole (it wraps in the narrow
pane instead of being cut)."""
from __future__ import annotations

import pytest
from textual.containers import VerticalScroll
from textual.widgets import Sparkline, Static

from nnkit.lessons import registry as lesson_registry
from nnkit.tui.screens import lessons as lessons_mod
from nnkit.tui.screens.lessons import LessonsScreen

from tui_helpers import screen_text, shown

NAME = "p9-lstm-carry"


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_lstm_lesson_sparklines(started_app, monkeypatch, size):
    lessons = {NAME: lesson_registry()[NAME]}
    monkeypatch.setattr(lessons_mod, "registry", lambda: lessons)
    async with started_app(size=size) as pilot:
        await pilot.press("l")
        screen = pilot.app.screen
        assert isinstance(screen, LessonsScreen)
        for _ in range(600):
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
            if NAME in screen.results:
                break
        result = screen.results[NAME]
        assert result.passed
        await pilot.pause()
        sparks = list(screen.query(Sparkline))
        assert len(sparks) == len(result.curves) == 3
        expected = lessons[NAME].run(0).curves          # an independent run of the lesson
        for spark, (label, values) in zip(sparks, expected.items()):
            assert list(spark.data) == values, label
        assert any(label.startswith("LSTM ‖∂L/∂c_t‖") for label in expected)

        # every sparkline inside the screen, wide enough to read
        detail = screen.query_one("#lesson-detail", VerticalScroll)
        for spark in sparks:
            assert spark.region.width >= 20, spark.region
            assert detail.region.x + detail.region.width <= size[0]
        labels = list(screen.query(".curve-label").results(Static))
        # the ‖∂L/∂c_t‖ label, whole, wherever the pane wraps it
        labels_text = [" ".join(str(l.render()).split()) for l in labels]
        cell_label = next(t for t in labels_text if t.startswith("LSTM ‖∂L/∂c_t‖"))
        detail.scroll_to_widget(labels[1], animate=False)
        await pilot.pause()
        await shown(pilot, "LSTM ‖∂L/∂c_t‖")
        left = detail.scrollable_content_region      # without the scrollbar
        lines = screen_text(screen).splitlines()[left.y:left.bottom]
        pane = " ".join(" ".join(line[left.x:left.right] for line in lines).split())
        assert cell_label in pane, (cell_label, pane)
        spark = sparks[1]
        assert left.y <= spark.region.y and spark.region.bottom <= left.bottom + 3
