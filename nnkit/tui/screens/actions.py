"""What the walkthrough screen's keys do (tui/bindings.py names them).

A mixin of WalkthroughScreen: every action only changes the screen's state
(its reactive vars) or starts a job; the watchers redraw."""
from __future__ import annotations

from pathlib import Path

from nnkit.trace import get

from ..bindings import MAIN_BINDINGS
from ..controller import CHECKS
from .config import ConfigScreen
from .export import ExportScreen, default_export_dir
from .help import HelpScreen
from .picker import PickerScreen


class WalkthroughActions:
    # -- stepping and playing ------------------------------------------------------
    def action_next(self) -> None:
        self.go(self.index + 1)

    def action_previous(self) -> None:
        self.go(self.index - 1)

    def action_first(self) -> None:
        self.go(0)

    def action_last(self) -> None:
        self.go(len(self.steps) - 1)

    def action_play(self) -> None:
        if not self.playing and self.index >= len(self.steps) - 1:
            self.go(0)
        self.playing = not self.playing

    def _tick(self) -> None:
        if self.index >= len(self.steps) - 1:
            self.playing = False
        else:
            self.action_next()

    # -- checks -----------------------------------------------------------------------
    def action_check_all(self) -> None:
        self.run_checks()

    def action_cancel(self) -> None:
        if self.checking:
            self.controller.cancel(CHECKS)
        self.playing = False

    # -- new traces --------------------------------------------------------------------
    def action_resample(self) -> None:
        cfg = dict(self.cfg)
        if "seed" in cfg:
            cfg["seed"] = int(cfg["seed"]) + 1
        self.build(self.walkthrough.name, cfg, keep=True)

    def action_config(self) -> None:
        def done(cfg: dict | None) -> None:
            if cfg is not None:
                self.saved_eps = None
                self.build(self.walkthrough.name, cfg, keep=True)
        self.app.push_screen(ConfigScreen(self.walkthrough, self.cfg), done)

    def action_eps_zero(self) -> None:
        """P2.1: ε = 0 on a batch with a constant feature, and back. Generic: any
        walkthrough with an `eps` parameter (and `constant_feature` if it has one)."""
        names = {p.name for p in self.walkthrough.params}
        if "eps" not in names:
            self.notify(f"{self.walkthrough.name} has no ε parameter", severity="warning")
            return
        cfg = dict(self.cfg)
        if self.saved_eps is not None:
            cfg.update(self.saved_eps)
            self.saved_eps = None
            self.build(self.walkthrough.name, cfg, keep=True)
            self.notify(f"ε restored to {cfg['eps']:g}")
            return
        self.saved_eps = {k: cfg[k] for k in ("eps", "constant_feature") if k in cfg}
        cfg["eps"] = 0.0
        if "constant_feature" in names:
            cfg["constant_feature"] = True
        self.build(self.walkthrough.name, cfg, jump_nonfinite=True)

    def action_pick(self) -> None:
        def done(name: str | None) -> None:
            if name is not None:
                self.open_walkthrough(name)
        self.app.push_screen(PickerScreen(self.walkthrough.name), done)

    def open_walkthrough(self, name: str) -> None:
        self.saved_eps = None
        w = get(name)
        self.walkthrough, self.cfg = w, w.config()   # the header names it while it builds
        self.build(name, self.cfg)

    # -- views -----------------------------------------------------------------------------
    def action_toggle_heatmap(self) -> None:
        self.heatmap = self.detail.toggle_heatmap()

    def action_scroll_tensors(self, direction: int) -> None:
        self.detail.scroll_tensors(direction)

    def action_scroll_detail(self, direction: int) -> None:
        self.detail.page(direction)

    # -- export, help, quit ---------------------------------------------------------------
    def action_export(self) -> None:
        if self.trace is None:
            return
        suggested = self.export_dir or default_export_dir(self.walkthrough.name)

        def done(directory: Path | None) -> None:
            if directory is not None:
                self.run_checks(export_to=directory)
        self.app.push_screen(ExportScreen(suggested), done)

    def action_help(self) -> None:
        # the screen's keys, then the app's (lessons, conv calculator, training)
        self.app.push_screen(HelpScreen(list(MAIN_BINDINGS) + list(self.app.BINDINGS)))

    def action_quit(self) -> None:
        self.app.exit()
