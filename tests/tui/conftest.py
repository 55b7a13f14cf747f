"""Fixtures for the nnkit-tui tests."""
from __future__ import annotations

from contextlib import asynccontextmanager

import pytest

from nnkit import trace as nktrace
from nnkit.tui.app import NnkitApp

from tui_helpers import SIZE, settle


@pytest.fixture
def started_app():
    """`async with started_app(walkthrough, config, export_dir, size=...) as pilot:`
    the app running headless, its first trace built and its first step shown."""
    @asynccontextmanager
    async def start(walkthrough=None, config=None, export_dir=None, *, size=SIZE):
        app = NnkitApp(walkthrough, config, export_dir)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            yield pilot
    return start


@pytest.fixture
def toy_walkthrough():
    """A second walkthrough registered only for the test: the picker must list
    it without any change to the app."""
    import numpy as np

    @nktrace.register
    class Square(nktrace.Walkthrough):
        name = "toy-square"
        title = "y = x², L = Σ G y"
        problem = "T0"
        description = "test-only walkthrough"
        params = (nktrace.Param("n", 3, "length", minimum=1),
                  nktrace.Param("seed", 0, "seed", minimum=0))

        def graph(self, cfg):
            return [
                nktrace.Node("x", "x ∈ ℝⁿ", role="input"),
                nktrace.Node("y", "y = x²", ("x",), lambda x: x * x),
                nktrace.Node("G", "G: upstream gradient", role="constant"),
                nktrace.Node("L", "L = Σ G y", ("G", "y"),
                             lambda G, y: float(np.sum(G * y)), role="loss"),
            ]

        def leaves(self, cfg, rng):
            return dict(x=rng.standard_normal(cfg["n"]), G=rng.standard_normal(cfg["n"]))

        def analytic(self, values, cfg):
            G, x = values["G"], values["x"]
            return dict(L=np.float64(1.0), y=G, x=2 * x * G)

        def views(self, trace, key):
            if key == "y":
                x = trace.value("x")
                return {"x xᵀ (a view)": np.outer(x, x), "√y": np.sqrt(trace.value("y"))}
            return {}

        def insights(self, trace, key):
            return ["y ≥ 0 everywhere"] if key == "y" else []

    yield "toy-square"
    # the registry is process-wide; leave it as the other test modules expect it
    nktrace._REGISTRY.pop("toy-square", None)
