"""The ‖∂L/∂h_t‖ sparkline beside the detail pane (rnn, birnn) and the keys that
rescale the recurrent weights (P9.2–P9.3), driven by the Pilot."""
from __future__ import annotations

import numpy as np
import pytest
from textual.widgets import Sparkline

import nnkit as nk
from nnkit.tui.widgets.grad_norms import GradNorms, norms_of

from tui_helpers import settle


def _rnn_norms_by_kernel(trace):
    """‖∂L/∂h_t‖ from nk.rnn_backward's grad_norms on the trace's own values."""
    v, T = trace.values, trace.cfg["T"]
    X = np.stack([v[f"x[{t}]"] for t in range(1, T + 1)])
    G = np.stack([v[f"G[{t}]"] for t in range(1, T + 1)])
    _, cache = nk.rnn_forward(X, v["h[0]"], v["Wx"], v["Wh"], v["b"], trace.cfg["activation"])
    return nk.rnn_backward(G, cache).grad_norms


async def test_rnn_sparkline_shows_the_kernels_grad_norms(started_app):
    async with started_app("rnn", {"T": 8, "w_scale": 0.5}) as pilot:
        screen = pilot.app.main
        widget = screen.query_one(GradNorms)
        assert widget.display and widget.has_class("-recurrent")
        spark = widget.query_one("#gn-spark-0", Sparkline)
        assert len(spark.data) == 8
        (label, norms, delta), = norms_of(screen.trace)
        np.testing.assert_allclose(norms, _rnn_norms_by_kernel(screen.trace), rtol=1e-12)
        # log scale: the plotted values are log10 norms shifted to start at 0
        logs = np.log10(norms)
        np.testing.assert_allclose(spark.data, logs - logs.min(), rtol=1e-12, atol=1e-12)
        W = screen.trace.values["Wh"]
        assert delta == pytest.approx(np.linalg.norm(W, 2))
        text = widget.text()
        assert "δ^T" in text and f"{delta ** 8:.3g}" in text
        assert not screen.query_one("#gn-spark-1", Sparkline).display   # one chain


async def test_scale_keys_rescale_the_spectral_norm_and_the_gradient(started_app):
    async with started_app("rnn", {"T": 10, "w_scale": 1.0}) as pilot:
        screen = pilot.app.main
        key = screen.step.node.key
        _, n0, d0 = norms_of(screen.trace)[0]
        await pilot.press("minus")
        await settle(pilot)
        assert screen.trace.cfg["w_scale"] == pytest.approx(0.8)
        assert screen.step.node.key == key                      # the step is kept
        _, n1, d1 = norms_of(screen.trace)[0]
        assert d1 == pytest.approx(0.8 * d0, rel=1e-12)          # spectral norm × 0.8
        for _ in range(6):
            await pilot.press("minus")
        await settle(pilot)
        _, n2, d2 = norms_of(screen.trace)[0]
        assert d2 < 1
        # P9.2: below the threshold the early states' gradient falls geometrically:
        # the share of ‖∂L/∂h_1‖ carried back from later steps shrinks
        assert "(vanishes)" in screen.query_one(GradNorms).text()
        await pilot.press("plus")
        await settle(pilot)
        assert screen.trace.cfg["w_scale"] == pytest.approx(0.8 ** 7 * 1.25)


async def test_birnn_has_one_sparkline_per_chain(started_app):
    async with started_app("birnn") as pilot:
        widget = pilot.app.main.query_one(GradNorms)
        assert widget.display
        T = pilot.app.main.trace.cfg["T"]
        for i in (0, 1):
            spark = widget.query_one(f"#gn-spark-{i}", Sparkline)
            assert spark.display and len(spark.data) == T
        assert "h^f" in widget.text() and "h^b" in widget.text()


async def test_hidden_for_other_walkthroughs_and_keys_do_nothing(started_app):
    async with started_app("bn-relu") as pilot:
        screen = pilot.app.main
        assert not screen.query_one(GradNorms).display
        cfg = dict(screen.trace.cfg)
        await pilot.press("plus")
        await settle(pilot)
        assert screen.trace.cfg == cfg


async def test_step_list_is_grouped_by_time(started_app):
    from nnkit.tui.widgets.steps import StepList
    async with started_app("rnn", {"T": 3}) as pilot:
        steps = pilot.app.main.query_one(StepList)
        lines = [str(steps.get_option_at_index(i).prompt).strip()
                 for i in range(steps.option_count)]
        fwd = lines[:lines.index("← backward")]
        assert fwd == ["→ forward", "weights", "Wx  param", "Wh  param", "b  param",
                       "t = 0", "h_0  input", "t = 1", "x_1  input", "a_1", "h_1",
                       "G_1  constant", "t = 2", "x_2  input", "a_2", "h_2", "G_2  constant",
                       "t = 3", "x_3  input", "a_3", "h_3", "G_3  constant", "loss", "L"]
        bwd = lines[lines.index("← backward"):]
        assert bwd[:6] == ["← backward", "loss", "∂L/∂L", "t = 3", "∂L/∂h_3", "∂L/∂a_3"]
        # subheaders are disabled options: never highlighted, never a step
        assert all(steps.get_option_at_index(i).disabled
                   for i, line in enumerate(lines) if line.startswith("t = "))


async def test_birnn_step_list_marks_each_sweeps_direction(started_app):
    from nnkit.tui.widgets.steps import StepList
    async with started_app("birnn", {"T": 2}) as pilot:
        steps = pilot.app.main.query_one(StepList)
        heads = [str(steps.get_option_at_index(i).prompt).strip()
                 for i in range(steps.option_count) if steps.get_option_at_index(i).disabled]
        fwd = heads[:heads.index("← backward")]
        assert fwd == ["→ forward", "weights", "t = 0 →", "t = 1 →", "t = 2 →",
                       "t = 3 ←", "t = 2 ←", "t = 1 ←", "loss"]
