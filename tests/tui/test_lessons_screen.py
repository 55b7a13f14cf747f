"""The Lessons screen: reachable by `l` and the command palette, every lesson
listed with the verdict its worker computed, a table and sparklines for the
highlighted one; a planted failing lesson shows FAIL."""
from __future__ import annotations

import pytest
from textual.widgets import DataTable, Sparkline, Static

from nnkit.lessons import _REGISTRY, Result, lesson, registry
from nnkit.tui.screens.lessons import PENDING, LessonsScreen


async def _all_done(pilot, screen, rounds=600):
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if len(screen.results) == len(screen.lessons):
            return
    raise AssertionError("the lessons did not finish")


def _verdicts(screen):
    table = screen.query_one("#lesson-list", DataTable)
    return {name: str(table.get_cell(name, "result")) for name in screen.lessons}


@pytest.fixture
def planted():
    @lesson("zz-tui-planted", "P99", "a lesson that fails")
    def planted_lesson(seed):
        return Result(discrepancy=2.0, tolerance=1.0, rows=[{"x": 1.0}],
                      curves={"c": [1.0, 3.0, 2.0]})
    yield
    del _REGISTRY["zz-tui-planted"]


async def test_key_opens_lessons_with_verdicts(started_app, planted):
    async with started_app() as pilot:
        await pilot.press("l")
        screen = pilot.app.screen
        assert isinstance(screen, LessonsScreen)
        assert set(screen.lessons) == set(registry())
        await _all_done(pilot, screen)
        verdicts = _verdicts(screen)
        assert verdicts["zz-tui-planted"] == "FAIL"
        assert all(v == "PASS" for n, v in verdicts.items() if n != "zz-tui-planted"), verdicts
        assert PENDING not in verdicts.values()

        # highlight the P7 lesson: its table and one sparkline per curve
        table = screen.query_one("#lesson-list", DataTable)
        table.move_cursor(row=list(screen.lessons).index("p7-relu-depth"))
        await pilot.pause()
        head = str(screen.query_one("#lesson-head", Static).render())
        table_text = str(screen.query_one("#lesson-table", Static).render())
        text = str(screen.query_one("#lesson-text", Static).render())
        assert "p7-relu-depth" in head and "factor per layer" in table_text and "PASS" in text
        sparks = screen.query(Sparkline)
        assert len(sparks) == len(screen.results["p7-relu-depth"].curves) == 3
        assert list(sparks.first().data) == screen.results["p7-relu-depth"].curves[
            next(iter(screen.results["p7-relu-depth"].curves))]

        table.move_cursor(row=list(screen.lessons).index("zz-tui-planted"))
        await pilot.pause()
        assert "FAIL" in str(screen.query_one("#lesson-text", Static).render())

        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(pilot.app.screen, LessonsScreen)


async def test_command_palette_lists_lessons(started_app):
    async with started_app() as pilot:
        app = pilot.app
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert "Lessons" in commands
        commands["Lessons"].callback()
        await pilot.pause()
        assert isinstance(app.screen, LessonsScreen)
        app.screen.workers.cancel_group(app.screen, "lessons")
        await pilot.press("escape")
        await pilot.pause()
