"""Issue 24, "what a new user trips on": the screens at 80×24 (the size the
footer is designed for) and 120×40. Each test reads what the compositor
draws (tui_helpers.screen_lines), the text a user sees, not widget state:
a lesson's table never wraps and scrolls sideways, the conv calculator's
answer is on screen without scrolling, every column of the gradient check
report can be reached, the config form's help and the training screen's
title and last epochs are whole, K's heatmap legend names filters, and a bad
export path is refused before any check runs."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from textual.widgets import Footer, Input, Label, Static

from nnkit.lessons import _report, registry as lesson_registry
from nnkit.tui.app import NnkitApp
from nnkit.tui.controller import CHECKS, load_step
from nnkit.tui.screens import export as export_mod
from nnkit.tui.screens import lessons as lessons_mod
from nnkit.tui.screens.config import ConfigScreen
from nnkit.tui.screens.conv_calc import ConvCalcScreen
from nnkit.tui.screens.export import ExportScreen, export_problem
from nnkit.tui.screens.lessons import LessonsScreen
from nnkit.tui.screens.training import TrainingScreen
from nnkit.tui.widgets.report import COLUMNS, ReportTable
from nnkit.tui.widgets.steps import FORWARD, BACKWARD
from nnkit.tui.widgets.tensor import prepare

from tui_helpers import screen_lines, screen_text, settle, shown

SMALL, LARGE = (80, 24), (120, 40)


def common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def squash(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------- 1. lessons
# the widest tables: p3-bottleneck (128 characters) and p1-affine-backward,
# whose headers ("max|Y − (XWᵀ + 1bᵀ)|", ...) used to split mid-word
WIDE_LESSONS = ("p1-affine-backward", "p3-bottleneck")


def table_on_screen(lines: list[str], table: list[str]) -> tuple[int, int, int]:
    """(row, column, width) where the table's first line is drawn, and how
    many of its characters show there."""
    for row, line in enumerate(lines):
        col = line.find(table[0][:12])
        if col >= 0:
            seen = common_prefix(table[0], line[col:])
            while seen and table[0][seen - 1] == " ":   # a blank beyond the pane matches too
                seen -= 1
            return row, col, seen
    raise AssertionError("the table's header is not on screen:\n" + "\n".join(lines))


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
@pytest.mark.parametrize("name", WIDE_LESSONS)
async def test_lesson_table_rows_never_wrap_and_scroll_sideways(started_app, monkeypatch,
                                                                size, name):
    lessons = {name: lesson_registry()[name]}
    monkeypatch.setattr(lessons_mod, "registry", lambda: lessons)
    async with started_app(size=size) as pilot:
        await pilot.press("l")
        screen = pilot.app.screen
        assert isinstance(screen, LessonsScreen)
        for _ in range(600):
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
            if name in screen.results:
                break
        table = _report.table(screen.results[name]).splitlines()
        width = max(map(len, table))
        await shown(pilot, table[0][:12])
        lines = screen_lines(screen)
        row, col, seen = table_on_screen(lines, table)
        assert seen >= 20 and seen < width, (seen, width)     # wider than the pane
        # every row of the table on its own line, each from its first character:
        # a wrapped header would put its second half where the "--" line is
        for i, line in enumerate(table):
            assert lines[row + i][col:col + seen] == line[:seen].ljust(seen), (i, lines[row + i])
        # sideways: the last column comes into view, on the same lines
        n = min(seen, 24)
        for _ in range(20):
            await pilot.press("right")
            await pilot.pause()
            lines = screen_lines(screen)
            if table[0][-n:] in lines[row]:
                break
        else:
            raise AssertionError("the last column never came into view:\n" + "\n".join(lines))
        for i, line in enumerate(table):
            tail = line.ljust(width)[-n:]
            assert tail in lines[row + i], (i, tail, lines[row + i])
        for _ in range(20):             # and back to the first column
            await pilot.press("left")
        await pilot.pause()
        assert screen_lines(screen)[row][col:col + seen] == table[0][:seen]


# ------------------------------------------------------------ 2. conv calculator
async def test_conv_calculator_answer_visible_without_scrolling_at_80x24(started_app):
    async with started_app("conv", size=SMALL) as pilot:
        await pilot.press("k")
        screen = pilot.app.screen
        assert isinstance(screen, ConvCalcScreen)
        answer = ["output (8, 16, 16, 16) (BWHC)", "W' = ⌊(32 + 2·1 − 3)/2⌋ + 1 = 16",
                  "H' = ⌊(32 + 2·1 − 3)/2⌋ + 1 = 16", "weights 432  biases 16",
                  "parameters 448", "MACs 884,736"]
        await shown(pilot, "input shape")
        text = screen_text(screen)
        assert all(a in text for a in answer), text
        footer = screen.query_one(Footer).region
        result = screen.query_one("#cc-conv", Static)
        assert result.region.bottom <= footer.y, (result.region, footer)

        # an error message: whole, above the footer too
        screen.query_one("#cc-kernel", Input).value = "99"
        await pilot.pause()
        message = str(result.render())
        assert message.startswith("kernel_size: the kernel (99) is larger")
        await shown(pilot, "kernel_size: the kernel")
        assert result.region.bottom <= footer.y, (result.region, footer)
        left = [line[result.region.x:result.region.right]
                for line in screen_lines(screen)[result.region.y:result.region.bottom]]
        assert squash(" ".join(left)) == squash(message)


# ----------------------------------------------------- 3. gradient check report
async def test_every_report_column_reachable_at_80_columns(started_app):
    async with started_app(size=SMALL) as pilot:
        app = pilot.app
        await pilot.press("g")
        await settle(pilot)
        app.clear_notifications()
        main = app.main
        table = main.query_one(ReportTable)
        first = main.report.checks[0]
        analytic, numeric = f"{first.analytic_at_worst:+.4e}", f"{first.numeric_at_worst:+.4e}"
        await shown(pilot, "result", "tensor")
        seen = set()
        for _ in range(12):         # [ scrolls the report sideways, column by column
            r = table.region
            header, row = (line[r.x:r.right] for line in screen_lines(main)[r.y:r.y + 2])
            seen |= {c for c in COLUMNS if f" {c} " in f"{header} "}
            if analytic in row:
                seen.add("analytic value")
            if numeric in row:
                seen.add("numeric value")
            # the verdict and the tensor stay while the rest scrolls
            assert header.split()[:2] == ["result", "tensor"], header
            assert row.split()[:2] == [first.verdict, first.name], row
            await pilot.press("]")
            await pilot.pause()
        assert seen == set(COLUMNS) | {"analytic value", "numeric value"}, seen
        # the title says how
        assert "[ ] scroll sideways" in str(main.query_one("#report-title").render())


async def test_report_columns_fit_when_there_is_room(started_app):
    async with started_app(size=(200, 40)) as pilot:
        await pilot.press("g")
        await settle(pilot)
        main = pilot.app.main
        await shown(pilot, "tol used")
        assert "scroll sideways" not in str(main.query_one("#report-title").render())


# ----------------------------------------------- 4. config help, training screen
async def test_config_help_text_whole_at_80x24(started_app):
    async with started_app(size=SMALL) as pilot:
        await pilot.press("c")
        form = pilot.app.screen
        assert isinstance(form, ConfigScreen)
        await shown(pilot, "Configure bn-relu")
        # the form scrolls at 80x24: each help text, scrolled into view, is
        # drawn whole (wrapped inside its column, never cut at its edge)
        for label in form.query(".field-help").results(Label):
            label.scroll_visible(animate=False, immediate=True)
            help_text = squash(str(label.render()))
            for _ in range(50):
                await pilot.pause()
                lines, r = screen_lines(form), label.region
                drawn = squash(" ".join(line[r.x:r.right] for line in lines[r.y:r.bottom]))
                if drawn == help_text:
                    break
            assert drawn == help_text, (label.id, drawn, help_text)
        fused = next(p for p in form.walkthrough.params if p.name == "fused")
        assert len(fused.help) > 70          # the long one, longer than its column


async def test_long_config_form_keeps_its_buttons_at_80x24(started_app):
    """whitening-zca has nine fields, taller than the dialog at 80×24: the
    fields scroll, the buttons stay inside the dialog (they were cut off)."""
    async with started_app("whitening-zca", size=SMALL) as pilot:
        await pilot.press("c")
        form = pilot.app.screen
        assert isinstance(form, ConfigScreen)
        await shown(pilot, "Configure whitening-zca")
        dialog = form.query_one("#config-dialog").region
        for ident in ("#apply", "#cancel"):
            button = form.query_one(ident).region
            assert button.height and dialog.contains_region(button), (ident, button, dialog)
            assert button.bottom < dialog.bottom          # above the dialog's border
        text = screen_text(form)
        assert "Apply" in text and "Cancel" in text, text
        fields = form.query_one("#config-fields")
        assert fields.max_scroll_y > 0                     # the fields scroll instead
        # the last field is reachable: tab to it, it scrolls into view
        last = form.query(".field-editor").last()
        last.focus()
        await pilot.pause()
        await shown(pilot, form.walkthrough.params[-1].help)


async def test_help_foot_visible_at_80x24(started_app):
    async with started_app(size=SMALL) as pilot:
        await pilot.press("question_mark")
        await shown(pilot, "nnkit-tui: keys", "esc / ? / q: close")


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
async def test_training_title_and_last_epochs(size):
    app = NnkitApp()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        screen = TrainingScreen(dataset="synthetic", epochs=20)
        await app.push_screen(screen)
        for _ in range(2000):
            await pilot.pause()
            if screen.finished is not None:
                break
        assert screen.finished.history.epoch[-1] == 20
        title = squash(str(screen.query_one("#train-title").render()))
        await shown(pilot, "done: 20 epochs")
        r = screen.query_one("#train-title").region
        lines = screen_lines(screen)
        assert squash(" ".join(lines[r.y:r.bottom])) == title
        # the header and the newest epochs, the last one included
        h = screen.finished.history
        last = f"{h.epoch[-1]:>5}  {h.train_loss[-1]:>10.4f}"
        await shown(pilot, "epoch  train loss  train acc  val loss  val acc", last)
        footer = screen.query_one(Footer).region.y
        lines = screen_lines(screen)
        row = next(i for i, line in enumerate(lines) if last in line)
        assert row < footer
        # the rows follow the header with no gap: the newest at the bottom when
        # they overflow (80×24), all 20 from the first when they fit (120×40)
        head = next(i for i, line in enumerate(lines) if "epoch  train loss" in line)
        shown_epochs = [(line.split() or [""])[0] for line in lines[head + 1:row + 1]]
        expected = [str(e) for e in range(21 - len(shown_epochs), 21)]
        assert shown_epochs == expected, lines[head:row + 1]
        if size == LARGE:
            assert shown_epochs[0] == "1"
        # the keys the title no longer lists are in the footer
        text = screen_lines(screen)[footer]
        assert "x Cancel" in text and "s Start" in text and "esc Back" in text


# ---------------------------------------------------------- 5. K's legend
def test_filter_bank_legend_names_filters_not_samples():
    from nnkit.trace import Trace
    trace = Trace("conv")
    steps = {(s.phase, s.node.key): s for s in __import__(
        "nnkit.tui.widgets.steps", fromlist=["build_steps"]).build_steps(trace)}
    F, C = trace.values["K"].shape[:2]
    for phase in (FORWARD, BACKWARD):
        data = load_step(trace, steps[(phase, "K")], 80)
        note = (data.value if phase == FORWARD else data.analytic).channel_note
        assert "samples" not in note, note
        assert f"input channels 0…{C - 1} left to right" in note
        assert f"filters 0…{F - 1} top to bottom" in note
    # X is a batch: samples and channels
    note = load_step(trace, steps[(FORWARD, "X")], 80).value.channel_note
    B, C = trace.values["X"].shape[:2]
    assert f"channels 0…{C - 1} left to right, samples 0…{B - 1} top to bottom" in note
    # default for any 4-D array
    assert "samples 0…1" in prepare("t", np.ones((2, 3, 4, 4))).channel_note


async def test_filter_bank_legend_on_screen(started_app):
    async with started_app("conv", size=SMALL) as pilot:
        main = pilot.app.main
        main.go(next(i for i, s in enumerate(main.steps)
                     if s.node.key == "K" and s.phase == FORWARD))
        await settle(pilot)
        await shown(pilot, "heatmap per input channel")
        text = squash(screen_text(main))
        assert "filters 0…2 top to bottom" in text and "samples" not in text


# ---------------------------------------------------------- 6. export path
def test_export_problem(tmp_path, monkeypatch):
    assert export_problem(tmp_path) is None
    assert export_problem(tmp_path / "new" / "deeper") is None       # created later
    assert not (tmp_path / "new").exists()                           # not by the check
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert "is a file, not a directory" in export_problem(f)
    assert "is a file, not a directory" in export_problem(f / "out")
    monkeypatch.setattr(export_mod.os, "access", lambda *a: False)
    assert "no permission to write" in export_problem(tmp_path / "out")
    monkeypatch.undo()
    # a read-only file system (or permissions root would ignore): the probe fails
    def refuse(*a, **k):
        raise PermissionError(13, "Read-only file system")
    monkeypatch.setattr(export_mod.tempfile, "TemporaryFile", refuse)
    assert "cannot write in" in export_problem(tmp_path / "out")
    assert os.listdir(tmp_path) == ["file.txt"]


@pytest.mark.parametrize("bad", ["file.txt/out", "file.txt", ""])
async def test_export_to_a_bad_path_says_so_before_any_check(tmp_path, started_app, bad):
    (tmp_path / "file.txt").write_text("x")
    async with started_app(size=SMALL) as pilot:
        app = pilot.app
        await pilot.press("e")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ExportScreen)
        dialog.query_one(Input).value = str(tmp_path / bad) if bad else ""
        await pilot.press("enter")
        await pilot.pause()
        # still asking, the reason under the input, and nothing started
        assert app.screen is dialog
        error = dialog.query_one("#export-error", Static)
        assert error.display and str(error.render()).startswith("⚠ ")
        assert ("is a file" in str(error.render())) if bad else "no directory" in str(
            error.render())
        await shown(pilot, "⚠ ")
        main = app.main
        assert not main.checking and main.report is None
        assert not [w for w in app.workers if w.group == CHECKS]
        # a good path then exports (the checks run)
        good = tmp_path / "out"
        dialog.query_one(Input).value = str(good)
        await pilot.pause()
        assert not error.display
        await pilot.press("enter")
        await settle(pilot)
        assert main.exported == [good / "arrays.npz", good / "gradcheck.json"]
        assert Path(good / "gradcheck.json").exists()
