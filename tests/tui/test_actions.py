"""Config form, full gradient check, export, walkthrough picker, ε = 0 demo,
resample, heatmap toggle, command palette, cancelling a check."""
from __future__ import annotations

import json
import time

import numpy as np
from textual.widgets import DataTable, Input, OptionList

from nnkit.gradcheck import CheckCancelled
from nnkit.trace import registry
from nnkit.tui.screens.config import ConfigScreen
from nnkit.tui.screens.export import ARRAYS_FILE, REPORT_FILE
from nnkit.tui.screens.help import HelpScreen
from nnkit.tui.screens.picker import PickerScreen
from nnkit.tui.widgets.formula import FormulaPanel
from nnkit.tui.widgets.heatmap import Heatmap
from nnkit.tui.widgets.report import ReportTable
from nnkit.tui.widgets.steps import BACKWARD, FORWARD
from nnkit.tui.widgets.tensor import TABLE_CAP, TensorView

from tui_helpers import SIZE, settle


def field_index(screen: ConfigScreen, name: str) -> int:
    return [p.name for p in screen.walkthrough.params].index(name)


async def set_field(pilot, screen: ConfigScreen, name: str, value: str) -> None:
    inp = screen.query_one(f"#field-{field_index(screen, name)}", Input)
    inp.value = value
    await pilot.pause()


def error_text(screen: ConfigScreen, name: str) -> str:
    err = screen.query_one(f"#error-{field_index(screen, name)}")
    return str(err.render()) if err.has_class("-shown") else ""


async def test_config_invalid_values_show_inline_errors_then_valid_values_apply(started_app):
    async with started_app() as pilot:
        app = pilot.app
        await pilot.press("c")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, ConfigScreen)
        await set_field(pilot, form, "B", "abc")
        await set_field(pilot, form, "eps", "-1")
        await set_field(pilot, form, "M", "2.5")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is form                      # not applied, not crashed
        assert "B: expected int, got 'abc'" in error_text(form, "B")
        assert "eps: expected >= 0.0" in error_text(form, "eps")
        assert "M: expected int" in error_text(form, "M")
        assert error_text(form, "N") == ""
        await set_field(pilot, form, "B", "1")         # below the minimum of 2
        await pilot.click("#apply")
        await pilot.pause()
        assert app.screen is form
        assert "B: expected >= 2" in error_text(form, "B")
        await set_field(pilot, form, "B", "6")
        await set_field(pilot, form, "eps", "0.001")
        await set_field(pilot, form, "M", "2")
        assert error_text(form, "B") == error_text(form, "eps") == ""
        await pilot.press("ctrl+s")
        await settle(pilot)
        screen = app.main
        assert app.screen is screen
        assert screen.trace.cfg["B"] == 6 and screen.trace.cfg["M"] == 2
        assert screen.trace.cfg["eps"] == 0.001
        assert screen.trace.values["Y"].shape == (6, 2)


async def test_config_escape_cancels(started_app):
    async with started_app() as pilot:
        app = pilot.app
        before = app.main.trace
        await pilot.press("c")
        await pilot.pause()
        await set_field(pilot, app.screen, "B", "9")
        await pilot.press("escape")
        await settle(pilot)
        assert app.main.trace is before


async def test_full_check_every_row_passes(started_app):
    async with started_app() as pilot:
        app = pilot.app
        screen = app.main
        await pilot.press("g")
        await settle(pilot)
        table = screen.query_one(ReportTable)
        names = [n.name for n in screen.trace.backward_steps()]
        assert table.names() == names
        assert table.results() == ["PASS"] * len(names)
        assert screen.report.passed
        assert screen.query_one("#report").display


async def test_export_writes_npz_and_json_matching_the_trace(tmp_path, started_app):
    out = tmp_path / "export"
    async with started_app(export_dir=out) as pilot:
        app = pilot.app
        await pilot.press("e")
        await pilot.pause()
        assert app.screen.query_one(Input).value == str(out)
        await pilot.press("enter")
        await settle(pilot)
        screen = app.main
        assert screen.exported == [out / ARRAYS_FILE, out / REPORT_FILE]
        expected = screen.trace.arrays()
        with np.load(out / ARRAYS_FILE) as npz:
            assert sorted(npz.files) == sorted(expected)
            for k, v in expected.items():
                np.testing.assert_array_equal(npz[k], v)
        doc = json.loads((out / REPORT_FILE).read_text())
        assert doc["walkthrough"] == "bn-relu"
        assert doc["config"] == screen.trace.cfg
        assert doc["passed"] is True
        assert [t["name"] for t in doc["tensors"]] == [n.name for n in screen.trace.backward_steps()]


async def test_picker_lists_every_registered_walkthrough_and_switches(toy_walkthrough, started_app):
    async with started_app() as pilot:
        app = pilot.app
        await pilot.press("w")
        await pilot.pause()
        picker = app.screen
        assert isinstance(picker, PickerScreen)
        options = picker.query_one(OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert ids == [f"wt-{name}" for name in registry()]
        options.highlighted = ids.index(f"wt-{toy_walkthrough}")
        await pilot.press("enter")
        await settle(pilot)
        screen = app.main
        assert screen.trace.walkthrough.name == toy_walkthrough
        assert [s.node.key for s in screen.steps] == ["x", "y", "G", "L", "L", "y", "x"]
        await pilot.press("g")
        await settle(pilot)
        assert screen.query_one(ReportTable).results() == ["PASS"] * 3
        # and back to P2, whose form has its own parameters
        await pilot.press("w")
        await pilot.pause()
        options = app.screen.query_one(OptionList)
        options.highlighted = options.get_option_index("wt-bn-relu")
        await pilot.press("enter")
        await settle(pilot)
        assert screen.trace.walkthrough.name == "bn-relu"
        assert screen.report is None and not screen.query_one("#report").display


async def test_eps_zero_demo_shows_nan_and_the_explanation_then_restores(started_app):
    async with started_app() as pilot:
        app = pilot.app
        screen = app.main
        await pilot.press("z")
        await settle(pilot)
        assert screen.trace.cfg["eps"] == 0.0 and screen.trace.cfg["constant_feature"]
        # the demo jumps to the first node with a non-finite value: Ŷ
        assert (screen.step.phase, screen.step.node.key) == (FORWARD, "Yhat")
        formula = str(screen.query_one(FormulaPanel).render())
        assert "ε = 0 and a constant feature: v = 0, so Ŷ = 0/0 = NaN" in formula
        value = screen.query_one("#value", TensorView)
        assert value.data.stats["nonfinite"] == 4            # feature 0, all 4 rows
        table = value.query_one(DataTable)
        cells = [str(c) for i in range(table.row_count) for c in table.get_row_at(i)]
        assert cells.count("nan") == 4
        await pilot.press("z")
        await settle(pilot)
        assert screen.trace.cfg["eps"] == 1e-5 and not screen.trace.cfg["constant_feature"]
        assert (screen.step.phase, screen.step.node.key) == (FORWARD, "Yhat")


async def test_resample_draws_new_inputs_and_keeps_the_step(started_app):
    async with started_app() as pilot:
        app = pilot.app
        screen = app.main
        await pilot.press("right", "right", "right")
        await settle(pilot)
        before = screen.trace.values["Y"].copy()
        await pilot.press("r")
        await settle(pilot)
        assert screen.trace.cfg["seed"] == 1
        assert screen.step.node.key == "Y"
        assert not np.array_equal(before, screen.trace.values["Y"])


async def test_large_tensor_gets_a_heatmap_and_a_capped_table(started_app):
    async with started_app(config=dict(B=200, N=8, M=100)) as pilot:
        app = pilot.app
        screen = app.main
        await pilot.press("right", "right", "right")      # Y: 200×100
        await settle(pilot)
        value = screen.query_one("#value", TensorView)
        assert value.showing_heatmap
        heat = value.query_one(Heatmap)
        assert heat.size.height <= 32 and heat.size.width <= 128
        await pilot.press("h")
        await pilot.pause()
        assert not value.showing_heatmap
        table = value.query_one(DataTable)
        # one more column than the cap: the row index stands in column 0
        assert table.row_count == TABLE_CAP and len(table.columns) == TABLE_CAP + 1
        assert "first 64×64 of 200×100" in str(value.query_one(".tv-note").render())
        await pilot.press("h")
        await pilot.pause()
        assert value.showing_heatmap


async def test_cancel_a_running_check(monkeypatch, started_app):
    async with started_app() as pilot:
        app = pilot.app
        screen = app.main

        def check_until_cancelled(key, max_elements=None, cancelled=None, **kw):
            while not cancelled():      # a check that only ends when cancelled
                time.sleep(0.001)
            raise CheckCancelled()

        monkeypatch.setattr(screen.trace, "check", check_until_cancelled)
        await pilot.press("g")
        await pilot.pause()
        assert screen.checking and screen.query_one("#checkbar").display
        await pilot.press("escape")
        await settle(pilot)
        assert not screen.checking and screen.report is None
        assert not screen.query_one("#checkbar").display


async def test_command_palette_runs_actions(started_app):
    async with started_app() as pilot:
        app = pilot.app
        titles = [c.title for c in app.get_system_commands(app.main)]
        for wanted in ("Next step", "Previous step", "First step", "Last step",
                       "Play / pause", "Check every gradient", "Resample inputs",
                       "Edit configuration", "Numbers / heatmap", "ε = 0 demo", "Export",
                       "Switch walkthrough", "Keys", "Open walkthrough bn-relu"):
            assert wanted in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Check every")
        await pilot.pause(0.3)      # the palette searches asynchronously
        await pilot.press("enter")
        await settle(pilot)
        assert app.main.report is not None and app.main.report.passed


async def test_help_screen_opens_and_closes(started_app):
    async with started_app() as pilot:
        app = pilot.app
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main


async def test_help_lists_the_app_keys_too(started_app):
    """l, k and t open app-level screens: the help must list them beside the
    walkthrough keys (it read only the screen's bindings before)."""
    async with started_app() as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        help_screen = pilot.app.screen
        assert isinstance(help_screen, HelpScreen)
        actions = {b.action for b in help_screen.bindings}
        assert {"lessons", "conv_calc", "training", "check_all", "quit"} <= actions


async def test_small_terminals_do_not_crash(started_app):
    for size in ((80, 24), (60, 20)):
        async with started_app(size=size) as pilot:
            app = pilot.app
            await pilot.press("end")
            await settle(pilot)
            assert app.main.step.phase == BACKWARD
            await pilot.press("c")
            await pilot.pause()
            assert isinstance(app.screen, ConfigScreen)
            await pilot.press("escape")
            await pilot.press("question_mark")
            await pilot.pause()
            await pilot.press("escape")


async def test_views_and_insights_are_shown_generically(toy_walkthrough, started_app):
    async with started_app(walkthrough=toy_walkthrough, config=dict(n=4)) as pilot:
        app = pilot.app
        screen = app.main
        views = screen.query_one("#views")
        assert not views.display                    # x has no views
        await pilot.press("right")                  # y
        await settle(pilot)
        assert views.display
        shown = [tv for tv in views.query(TensorView) if tv.display]
        assert [tv.data.title for tv in shown] == ["x xᵀ (a view)", "√y"]
        assert shown[0].data.shape == (4, 4)
        np.testing.assert_array_equal(shown[1].data.table[0], np.sqrt(screen.trace.values["y"]))
        assert "y ≥ 0 everywhere" in str(screen.query_one(FormulaPanel).render())
        await pilot.press("right")                  # G: no views again
        await settle(pilot)
        assert not views.display


async def test_a_walkthrough_that_raises_is_reported_not_fatal(toy_walkthrough, monkeypatch, started_app):
    from nnkit.trace import get
    toy = get(toy_walkthrough)

    def broken(values, cfg):
        raise RuntimeError("kernel not built")

    monkeypatch.setattr(toy, "analytic", broken)
    async with started_app(walkthrough=toy_walkthrough) as pilot:
        app = pilot.app
        screen = app.main
        assert screen.trace is None
        assert "RuntimeError: kernel not built" in str(screen.query_one(FormulaPanel).render())
        await pilot.press("right", "g", "h", "e", "z")   # nothing to act on; nothing crashes
        await settle(pilot)
        assert app.screen is screen

    monkeypatch.undo()
    monkeypatch.setattr(toy, "insights", lambda trace, key: [][1])
    async with started_app(toy_walkthrough) as pilot:   # the step's load failed: a toast
        app = pilot.app
        assert any("IndexError" in n.message for n in app._notifications)
        await pilot.press("right")
        await settle(pilot)
        assert app.main.index == 1
