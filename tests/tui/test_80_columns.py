"""Issue 8.10: an 80×24 terminal shows the essentials. The footer keeps
every key it shows inside the screen, `?` among them; the header keeps the
walkthrough, the step, the dtype, the verdict and the seed; the export toast
shows its whole path."""
from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets._footer import FooterKey

from nnkit.trace import registry
from nnkit.tui.screens.walkthrough import export_message

from tui_helpers import settle

SMALL = (80, 24)


def header(screen) -> str:
    """What the header shows: its first 80 cells (a longer line is cut there)."""
    return str(screen.query_one("#topbar").render())[:SMALL[0]]


async def test_footer_keys_fit_and_help_is_visible(started_app):
    async with started_app(size=SMALL) as pilot:
        keys = [k for k in pilot.app.screen.query(FooterKey) if k.display]
        shown = {k.key_display for k in keys}
        assert {"?", "q", "g", "c", "w", "space"} <= shown, shown
        for k in keys:     # inside the screen, not cut by its right edge
            assert k.region.width > 0 and k.region.right <= SMALL[0], (k.key_display, k.region)


@pytest.mark.parametrize("name", sorted(registry()))
async def test_header_keeps_the_essentials_at_80_columns(started_app, name):
    async with started_app(name, dict(dtype="float32"), size=SMALL) as pilot:
        screen = pilot.app.main
        await pilot.press("end")
        await settle(pilot)
        text = header(screen)
        assert name in text and "float32" in text, text
        assert f"{screen.step.phase} {screen.step.number}/{screen.step.of}" in text, text
        if "seed" in screen.trace.cfg:
            assert "seed=0" in text, text
        await pilot.press("g")
        await settle(pilot)
        assert "checks pass" in header(screen), header(screen)
        await pilot.press("space")         # playing from the last step starts at the first
        await pilot.pause()
        assert "playing" in header(screen), header(screen)


def test_export_message_names_the_directory_whole_and_short(tmp_path, monkeypatch):
    """The toast folds a long line at its width (40 cells at 80 columns):
    a path relative to the working directory keeps it to a line or two."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "nnkit-export-whitening-newton-20991231-235959"
    message = export_message([out / "arrays.npz", out / "gradcheck.json"])
    assert message.splitlines() == [f"./{out.name}/", "  arrays.npz", "  gradcheck.json"]
    elsewhere = export_message([Path("/elsewhere/x/arrays.npz")])
    assert elsewhere.splitlines()[0] == "/elsewhere/x/"
