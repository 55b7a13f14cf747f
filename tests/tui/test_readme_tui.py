"""The app's docs page (docs/guide/app.md; the README's nnkit-tui section
until the README was cut short) says what the app does: its whitening example
opens a white Ŷ (issue 8.12) and its capture's header is the app's."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np

from nnkit.trace import Trace
from nnkit.tui.app import parse_args

from tui_helpers import settle

APP_PAGE = Path(__file__).resolve().parents[2] / "docs" / "guide" / "app.md"


def tui_section() -> str:
    return APP_PAGE.read_text(encoding="utf-8")


def test_the_whitening_example_opens_a_white_yhat():
    commands = re.findall(r"`(nnkit-tui --walkthrough whitening-[^`]*)`", tui_section())
    assert commands
    for command in commands:
        name, cfg, _ = parse_args(shlex.split(command)[1:])
        yhat = np.asarray(Trace(name, **cfg).values["Yhat"], dtype=np.float64)
        cov = yhat.T @ yhat / yhat.shape[0]
        # float32 whitening of a full-rank Σ: identity to ~1e-4; a rank-deficient
        # Σ (N < M) leaves entries of order 1
        np.testing.assert_allclose(cov, np.eye(cov.shape[0]), atol=1e-3, err_msg=command)


async def test_the_capture_header_is_the_apps(started_app):
    capture = tui_section().split("captured with tmux):\n\n```\n", 1)[1].split("```", 1)[0]
    header = capture.splitlines()[0]
    async with started_app(size=(100, 32)) as pilot:
        screen = pilot.app.main
        screen.go(next(i for i, s in enumerate(screen.steps)
                       if s.phase == "backward" and s.node.key == "Y"))
        await settle(pilot)
        assert str(screen.query_one("#topbar").render()).rstrip() == header.rstrip()
