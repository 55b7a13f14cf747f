"""Issue 8.11 (a number table with no height on first launch) and the TUI
parts of 8.12 (the config form's stale summary, "Keys" twice in the palette)."""
from __future__ import annotations

from collections import Counter

import numpy as np
from textual.geometry import Size
from textual.widgets import DataTable, Input

from nnkit.tui.screens.config import ConfigScreen
from nnkit.tui.widgets.tensor import TensorView, prepare


async def test_number_table_height_is_known_as_soon_as_rows_are_added(started_app):
    """8.11: on about one first launch in twenty (measured: 1 of 20, 1 of 40),
    X showed its statistics but a table 0 lines high. DataTable measures its
    rows only when it next goes idle; the screen's layout pass that followed
    the draw used the old height, and the later re-layout request was lost.
    The table's height must not depend on that idle-time measurement: right
    after the rows are added, before any await, the layout must already see
    header + rows."""
    async with started_app() as pilot:
        view = pilot.app.main.query_one("#value", TensorView)
        view.show(prepare("t", np.arange(21.0).reshape(7, 3)), False)
        table = view.query_one(".tv-table", DataTable)
        assert table.row_count == 7
        # no await between the draw and this: exactly what a racing layout pass sees
        assert table.get_content_height(Size(80, 24), Size(80, 24), 80) == 1 + 7
        # the row numbers are a column of their own, with its width given
        # (a DataTable row label is measured at idle too: a frame without them)
        assert [str(table.get_row_at(i)[0]) for i in range(7)] == [str(i) for i in range(7)]
        assert table.ordered_columns[0].width == 1 and table.fixed_columns == 1
        await pilot.pause()
        assert table.size.height == 1 + 7


async def test_number_table_width_is_known_as_soon_as_columns_are_added(started_app):
    """Issue 24: the same race as 8.11, on the width. The table is `width:
    auto`, and DataTable's auto width is its idle-time measurement: a layout
    pass before it drew a table 0 cells wide (statistics, then nothing; the
    X table missing under the config form in one snapshot in three under
    load). Every column has its width given: the sum is known at once."""
    async with started_app() as pilot:
        view = pilot.app.main.query_one("#value", TensorView)
        a = np.arange(12.0).reshape(3, 4) * 1000.5
        view.show(prepare("t", a), False)
        table = view.query_one(".tv-table", DataTable)
        # no await: what a racing layout pass sees
        widths = [c.width for c in table.ordered_columns]
        expected = sum(widths) + 2 * table.cell_padding * len(widths)
        assert table.get_content_width(Size(80, 24), Size(80, 24)) == expected
        await pilot.pause()
        assert table.size.width == expected
        # a refill with wider numbers: the new width at once, not the old one
        view.show(prepare("t", a * 1e6 + 0.123), False)
        wider = sum(c.get_render_width(table) for c in table.ordered_columns)
        assert wider > expected
        assert table.get_content_width(Size(80, 24), Size(80, 24)) == wider


def shown(form: ConfigScreen, ident: str) -> str:
    err = form.query_one(f"#{ident}")
    return str(err.render()) if err.has_class("-shown") else ""


async def test_config_summary_goes_once_every_field_is_fixed(started_app):
    async with started_app() as pilot:
        await pilot.press("c")
        await pilot.pause()
        form = pilot.app.screen
        names = [p.name for p in form.walkthrough.params]
        b = form.query_one(f"#field-{names.index('B')}", Input)
        eps = form.query_one(f"#field-{names.index('eps')}", Input)
        b.value, eps.value = "abc", "-1"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "fix the fields marked ⚠" in shown(form, "config-error")
        b.value = "6"                   # one still wrong: the summary stays
        await pilot.pause()
        assert "fix the fields marked ⚠" in shown(form, "config-error")
        eps.value = "0.001"             # all fixed: no stale summary
        await pilot.pause()
        assert shown(form, "config-error") == ""
        assert pilot.app.screen is form  # nothing applied until asked


async def test_command_palette_lists_each_command_once(started_app):
    async with started_app() as pilot:
        app = pilot.app
        titles = Counter(c.title for c in app.get_system_commands(app.main))
        assert titles["Keys"] == 1
        assert [t for t, n in titles.items() if n > 1] == []


def test_number_table_lines_carry_no_empty_segments(monkeypatch):
    """A CI snapshot differed from the stored one by five zero-width rects only:
    DataTable's crop at the right edge left an empty styled segment in some
    frames (by when its width was measured). NumberTable drops them."""
    from rich.segment import Segment
    from rich.style import Style
    from textual.strip import Strip
    from textual.widgets import DataTable

    from nnkit.tui.widgets.tensor import NumberTable
    line = Strip([Segment("  0.5", Style()), Segment("", Style(bgcolor="red"))])
    monkeypatch.setattr(DataTable, "render_line", lambda self, y: line)
    got = NumberTable().render_line(0)
    assert [s.text for s in got] == ["  0.5"] and got.cell_length == line.cell_length
