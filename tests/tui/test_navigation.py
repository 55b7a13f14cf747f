"""Stepping through every node forward and back; every backward step's check."""
from __future__ import annotations

from textual import events

from nnkit.trace import Trace
from nnkit.tui.widgets.formula import FormulaPanel
from nnkit.tui.widgets.gradient import GradientPanel
from nnkit.tui.widgets.steps import BACKWARD, FORWARD
from nnkit.tui.widgets.tensor import TensorView

from tui_helpers import SIZE, settle


def expected_steps():
    t = Trace("bn-relu")
    return ([(FORWARD, n.key) for n in t.forward_steps()]
            + [(BACKWARD, n.key) for n in t.backward_steps()])


def panel_text(widget) -> str:
    return str(widget.render())


async def test_default_is_p2(started_app):
    async with started_app() as pilot:
        app = pilot.app
        screen = app.main
        assert screen.trace.walkthrough.name == "bn-relu"
        # P2's parameters (the walkthrough may gain others: only these are pinned)
        expected = dict(B=4, N=3, M=5, eps=1e-5, seed=0, dtype="float64", constant_feature=False)
        assert {k: screen.trace.cfg[k] for k in expected} == expected
        assert (screen.step.phase, screen.step.node.key) == (FORWARD, "X")


async def test_step_through_all_nodes_forward_and_back(started_app):
    expected = expected_steps()
    async with started_app() as pilot:
        app = pilot.app
        screen = app.main
        seen = []
        for i in range(len(expected)):
            if i:
                await pilot.press("right" if i % 2 else "n")
            await settle(pilot)
            step = screen.step
            seen.append((step.phase, step.node.key))
            assert step.node.formula in panel_text(screen.query_one(FormulaPanel))
            value = screen.query_one("#value", TensorView).data
            assert value.shape == tuple(screen.trace.values[step.node.key].shape)
            grad = screen.query_one(GradientPanel)
            assert grad.display == (step.phase == BACKWARD)
            if step.phase == BACKWARD:
                # every gradient of P2 is checked as soon as it is shown, and passes
                report = screen.trace.reports[step.node.key]
                assert report.passed, step.node.key
                assert "PASS" in panel_text(grad.query_one("#verdict"))
        assert seen == expected
        await pilot.press("right")          # past the end: stays on the last step
        await settle(pilot)
        assert screen.index == len(expected) - 1
        back = []
        for i in range(len(expected)):
            back.append((screen.step.phase, screen.step.node.key))
            await pilot.press("left" if i % 2 else "p")
            await settle(pilot)
        assert back == expected[::-1]
        assert screen.index == 0


async def test_first_last_and_step_list_marks(started_app):
    async with started_app() as pilot:
        app = pilot.app
        screen = app.main
        await pilot.press("end")
        await settle(pilot)
        assert screen.index == len(screen.steps) - 1
        assert screen.step.phase == BACKWARD and screen.step.node.key == "X"
        await pilot.press("home")
        await settle(pilot)
        assert screen.index == 0


async def test_play_runs_to_the_end_and_space_pauses(started_app):
    async with started_app() as pilot:
        app = pilot.app
        screen = app.main
        await pilot.press("space")
        assert screen.play_timer is not None
        await pilot.press("space")
        assert screen.play_timer is None
        # drive the timer's callback directly: no wall-clock waiting in tests
        await pilot.press("space")
        for _ in range(len(screen.steps)):
            screen._tick()
            await pilot.pause()
        assert screen.index == len(screen.steps) - 1
        assert screen.play_timer is None


async def test_keys_faster_than_messages_do_not_ping_pong(started_app):
    """A held arrow key: several steps before any highlight message is handled.

    Each go() moves the step list's highlight and posts a message; stale ones
    once dragged the screen back to old steps, and screen and list chased each
    other forever (100 % CPU, keys ignored). The screen must settle on the last
    step asked for, and a later key must still move it.
    """
    async with started_app() as pilot:
        app = pilot.app
        screen = app.main
        for _ in range(8):             # no await: the keys queue up like a held key
            app.post_message(events.Key("right", None))
        seen = []
        for _ in range(40):            # (the superseded load workers are cancelled)
            await pilot.pause(0.02)
            seen.append(screen.index)
        assert seen[-10:] == [8] * 10, seen
        await pilot.press("right")
        await pilot.pause(0.2)
        assert screen.index == 9


async def test_formula_panel_names_parents_by_label(started_app):
    """Z reads γ, Ŷ, β: the panel shows their symbols, not the code keys."""
    async with started_app() as pilot:
        app = pilot.app
        screen = app.main
        z = next(i for i, s in enumerate(screen.steps) if s.node.key == "Z")
        screen.go(z)
        await settle(pilot)
        text = panel_text(screen.query_one(FormulaPanel))
        assert "reads: γ, Ŷ, β" in text, text


async def test_wide_tensor_scrolls_by_keys(started_app):
    """M = 40 numbers do not fit the pane: ] / [ scroll them (the pane cannot take focus)."""
    async with started_app(config=dict(B=6, M=40)) as pilot:
        app = pilot.app
        screen = app.main
        y = next(i for i, s in enumerate(screen.steps) if s.node.key == "Y")
        screen.go(y)
        await settle(pilot)
        table = screen.query_one("#value").query_one(".tv-table")
        assert table.scroll_x == 0 and table.max_scroll_x > 0
        await pilot.press("]")
        await pilot.pause()
        assert table.scroll_x > 0
        await pilot.press("[", "[", "[", "[")
        await pilot.pause()
        assert table.scroll_x == 0
