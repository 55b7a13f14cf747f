"""nnkit-tui: step through a walkthrough's forward and backward passes, with
every gradient checked beside it.

    nnkit-tui                                  the default walkthrough (P2, bn-relu)
    nnkit-tui --walkthrough NAME -B 8 --M 16 --eps 0 --set constant_feature=true
    nnkit-tui --check my_bn.py                 check your derivation, node by node;
                                               saving the file re-checks it
    nnkit-tui --serve [--port N] [--host H]    the same app in a browser (nnkit.tui.serve)

Exit status: 0 after quitting, 2 for a bad command line (a message, never a
traceback).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from nnkit.trace import registry

from . import serve
from .screens.check_file import declared_walkthrough
from .screens.lessons import LessonsScreen
from .screens.walkthrough import WalkthroughScreen

DEFAULT_WALKTHROUGH = "bn-relu"

# Named flags for the parameters most walkthroughs share; anything else is --set.
NAMED_FLAGS = (
    (("--batch", "-B"), "B", "batch size"),
    (("--N",), "N", "input features"),
    (("--M",), "M", "output features"),
    (("--eps",), "eps", "ε added to the variance"),
    (("--seed",), "seed", "random seed"),
    (("--dtype",), "dtype", "float64 or float32"),
)


def default_walkthrough() -> str:
    reg = registry()
    return DEFAULT_WALKTHROUGH if DEFAULT_WALKTHROUGH in reg else next(iter(reg))


class NnkitApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "nnkit"
    BINDINGS = [Binding("l", "lessons", "Lessons", show=False,
                        tooltip="the verified derivations (nnkit lessons) with verdicts"),
                Binding("k", "conv_calc", "Conv calculator", show=False,
                        tooltip="conv output shapes, parameters, MACs; the bottleneck solver"),
                Binding("t", "training", "Training", show=False,
                        tooltip="train the example MLP live (loss curve, cancel key)")]

    def __init__(self, walkthrough: str | None = None, config: dict | None = None,
                 export_dir: Path | None = None, check_file: Path | None = None) -> None:
        super().__init__()
        self.start = (walkthrough or default_walkthrough(), dict(config or {}), export_dir)
        self.check_file = check_file

    def get_default_screen(self) -> Screen:
        name, cfg, export_dir = self.start
        return WalkthroughScreen(name, cfg, export_dir, self.check_file)

    @property
    def main(self) -> WalkthroughScreen:
        return self.screen_stack[0]

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        # Textual's own "Keys" (its key panel) would stand beside ours (the
        # help screen, which lists every key): keep one
        ours = {"Keys"}
        yield from (c for c in super().get_system_commands(screen) if c.title not in ours)
        main = self.main
        for title, help_text, action in (
            ("Next step", "→ / n", main.action_next),
            ("Previous step", "← / p", main.action_previous),
            ("First step", "home", main.action_first),
            ("Last step", "end", main.action_last),
            ("Play / pause", "space: step automatically", main.action_play),
            ("Check every gradient", "g: finite differences of every node", main.action_check_all),
            ("Cancel check", "esc", main.action_cancel),
            ("Resample inputs", "r: next seed", main.action_resample),
            ("Edit configuration", "c: the walkthrough's parameters", main.action_config),
            ("Numbers / heatmap", "h", main.action_toggle_heatmap),
            ("ε = 0 demo", "z: ε = 0 with a constant feature, and back", main.action_eps_zero),
            ("Export", "e: arrays .npz and check report .json", main.action_export),
            ("Switch walkthrough", "w: pick from the registry", main.action_pick),
            ("Check my derivation file…", "your formula for each gradient, judged node by "
             "node; saving the file re-checks it", main.action_check_file),
            ("Keys", "?: help", main.action_help),
        ):
            yield SystemCommand(title, help_text, action)
        for name, w in registry().items():
            yield SystemCommand(f"Open walkthrough {name}", f"{w.problem} {w.title}",
                                lambda name=name: main.open_walkthrough(name))
        yield SystemCommand("Lessons", "l: every verified derivation with its verdict",
                            self.action_lessons)
        yield SystemCommand("Conv calculator", "k: output shape with its formula, "
                            "parameters, MACs; the bottleneck solver", self.action_conv_calc)
        yield SystemCommand("Training", "t: nnkit.train.fit on the digits (or synthetic) "
                            "example with a live loss curve", self.action_training)

    def action_conv_calc(self) -> None:
        from .screens.conv_calc import ConvCalcScreen
        if not isinstance(self.screen, ConvCalcScreen):
            self.push_screen(ConvCalcScreen())

    def action_training(self) -> None:
        from .screens.training import TrainingScreen
        if not isinstance(self.screen, TrainingScreen):
            self.push_screen(TrainingScreen())

    def action_lessons(self) -> None:
        if not isinstance(self.screen, LessonsScreen):
            self.push_screen(LessonsScreen())


def _parser() -> argparse.ArgumentParser:
    reg = registry()
    lines = ["walkthroughs:"]
    for name, w in reg.items():
        params = " ".join(f"{p.name}={p.default}" for p in w.params)
        lines.append(f"  {name:<12} {w.problem:<4} {w.title}")
        lines.append(f"  {'':<12}      {params}")
    p = argparse.ArgumentParser(
        prog="nnkit-tui", description="Step through a walkthrough's forward and backward "
        "passes, with every gradient checked against finite differences.",
        epilog="\n".join(lines), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", metavar="WALKTHROUGH", default=None,
                   help="the walkthrough to open (as --walkthrough): nnkit-tui rnn")
    p.add_argument("--walkthrough", "-w", metavar="NAME", default=None,
                   help=f"one of {', '.join(reg)} (default {default_walkthrough()})")
    for flags, dest, help_text in NAMED_FLAGS:
        p.add_argument(*flags, dest=dest, metavar=dest.upper() if len(dest) > 1 else dest,
                       default=None, help=help_text)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other parameter of the walkthrough (repeatable)")
    p.add_argument("--export-dir", type=Path, default=None, metavar="DIR",
                   help="where `e` exports (default ./nnkit-export-<walkthrough>-<time>/)")
    p.add_argument("--check", type=Path, default=None, metavar="FILE",
                   help="a derivation file (nnkit check --template NAME): each backward "
                   "node shows your gradient, its verdict and what is wrong; the "
                   "walkthrough is the file's WALKTHROUGH unless named; saving re-checks")
    serve.add_arguments(p.add_argument_group("in a browser"))
    return p


def parse_args(argv: list[str] | None) -> tuple[str, dict, Path | None]:
    """(walkthrough, validated config, export dir); ValueError on bad values."""
    return parse_command_line(argv)[:3]


def parse_command_line(argv: list[str] | None) -> tuple[str, dict, Path | None, Path | None]:
    """(walkthrough, validated config, export dir, --check file); ValueError on
    bad values."""
    args = _parser().parse_args(argv)
    reg = registry()
    if args.name and args.walkthrough and args.name != args.walkthrough:
        raise ValueError(f"--walkthrough: expected the same name as the positional "
                         f"WALKTHROUGH {args.name!r}, got {args.walkthrough!r}")
    declared = None
    if args.check is not None:
        if not args.check.is_file():
            raise ValueError(f"--check: expected a derivation file, got '{args.check}' "
                             + ("(a directory)" if args.check.is_dir() else "(no such file)"))
        declared = declared_walkthrough(args.check)
        if not (args.name or args.walkthrough) and declared is not None and declared not in reg:
            raise ValueError(f"--check: {args.check} declares WALKTHROUGH = {declared!r}; "
                             f"expected one of {sorted(reg)}")
    name = args.name or args.walkthrough or declared or default_walkthrough()
    if name not in reg:
        given = "WALKTHROUGH" if args.name else "--walkthrough"
        raise ValueError(f"{given}: expected one of {sorted(reg)}, got {name!r}")
    overrides = {dest: getattr(args, dest) for _, dest, _ in NAMED_FLAGS
                 if getattr(args, dest) is not None}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set: expected KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    cfg = reg[name].config(**overrides)     # validates every value now, not in the app
    return name, cfg, args.export_dir, args.check


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        name, cfg, export_dir, check_file = parse_command_line(argv)
        served = serve.split_argv(argv)
    except ValueError as exc:
        print(f"nnkit-tui: error: {exc}", file=sys.stderr)
        return 2
    if served is not None:
        return serve.serve(served)
    NnkitApp(name, cfg, export_dir, check_file).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
