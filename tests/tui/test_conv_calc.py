"""The conv calculator screen (k, or the command palette): the output shape with
its formula, parameters, MACs, the bottleneck solver; the library's messages
for bad values. And 4-D tensors drawn as one heatmap per channel."""
from __future__ import annotations

import numpy as np
from textual.widgets import Input, Select, Static

from nnkit.tui.screens.conv_calc import ConvCalcScreen
from nnkit.tui.widgets.heatmap import GAP_BIN, Heatmap
from nnkit.tui.widgets.tensor import TensorView, prepare

from tui_helpers import settle


def text(screen, sel: str) -> str:
    return str(screen.query_one(sel, Static).render())


async def test_conv_calculator_answers_and_errors(started_app):
    async with started_app("conv") as pilot:
        await pilot.press("k")
        await pilot.pause()
        screen = pilot.app.screen
        assert isinstance(screen, ConvCalcScreen)
        out = text(screen, "#cc-conv")
        assert "output (8, 16, 16, 16) (BWHC)" in out
        assert "W' = ⌊(32 + 2·1 − 3)/2⌋ + 1 = 16" in out
        assert "parameters 448" in out and "MACs 884,736" in out
        bn = text(screen, "#cc-bottleneck")
        assert "k ∈ [50.57, 57.28]; integer widths 51…57" in bn
        assert "k ∈ [50.46, 57.18]; integer widths 51…57" in bn

        # an impossible geometry: the library's message, formula filled in
        screen.query_one("#cc-input", Input).value = "8,2,2,3"
        screen.query_one("#cc-kernel", Input).value = "5"
        screen.query_one("#cc-stride", Input).value = "1"
        screen.query_one("#cc-padding", Input).value = "0"
        await pilot.pause()
        assert text(screen, "#cc-conv").startswith(
            "kernel_size: the kernel (5) is larger than the padded input (2 + 2·0 = 2)")
        assert "W' = ⌊(2 + 2·0 − 5)/1⌋ + 1 = −2 ≤ 0" in text(screen, "#cc-conv")
        screen.query_one("#cc-stride", Input).value = "x"
        await pilot.pause()
        assert text(screen, "#cc-conv").startswith("stride: expected an integer")

        # NCHW: PyTorch's order, pairs (H, W)
        screen.query_one("#cc-input", Input).value = "2,3,20,10"
        screen.query_one("#cc-kernel", Input).value = "5,3"
        screen.query_one("#cc-stride", Input).value = "2,1"
        screen.query_one("#cc-padding", Input).value = "0,2"
        screen.query_one("#cc-layout", Select).value = "NCHW"
        await pilot.pause()
        assert "output (2, 16, 8, 12) (NCHW)" in text(screen, "#cc-conv")

        screen.query_one("#cc-reduction", Input).value = "0.7,0.2"
        await pilot.pause()
        assert text(screen, "#cc-bottleneck").startswith("reduction: expected 0 <= lo <= hi < 1")
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(pilot.app.screen, ConvCalcScreen)


async def test_conv_calculator_from_the_palette(started_app):
    async with started_app("conv") as pilot:
        commands = [c.title for c in pilot.app.get_system_commands(pilot.app.screen)]
        assert "Conv calculator" in commands
        pilot.app.action_conv_calc()
        await pilot.pause()
        assert isinstance(pilot.app.screen, ConvCalcScreen)


def test_4d_tensor_is_one_heatmap_per_channel():
    a = np.arange(2 * 3 * 4 * 5, dtype=float).reshape(2, 3, 4, 5) + 1
    d = prepare("Y", a)
    # channels side by side, samples stacked, one blank cell between maps
    assert d.heat.shape == (2 * 4 + 1, 3 * 5 + 2) and d.gaps is not None
    np.testing.assert_array_equal(d.heat[5:9, 6:11], a[1, 1])
    assert d.gaps[4].all() and d.gaps[:, 5].all() and not d.gaps[:4, :5].any()
    assert "per channel" in d.channel_note
    big = prepare("Y", np.zeros((64, 3, 6, 6)))     # too tall: the flattened view
    assert big.gaps is None


async def test_walkthrough_shows_channel_maps(started_app):
    async with started_app("conv") as pilot:
        view = pilot.app.screen.query(TensorView).first()
        view.show(prepare("Y", np.ones((2, 3, 6, 6))), None)
        await settle(pilot)
        heat = view.query_one(Heatmap)
        assert view.showing_heatmap and (heat._bins == GAP_BIN).sum() == 13 * 20 - 2 * 3 * 36
