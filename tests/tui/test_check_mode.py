"""nnkit-tui --check FILE: a student's derivation file checked node by node
(nk.check_derivation in a worker), re-checked when the file changes on disk.
Waits are on state (workers done, a result received, text drawn), never on
the clock."""
from __future__ import annotations

from pathlib import Path

import pytest

from nnkit.tui.app import NnkitApp, main, parse_args, parse_command_line
from nnkit.tui.widgets.steps import BACKWARD

from tui_helpers import SIZE, screen_lines, screen_text, settle, shown

FILES = Path(__file__).resolve().parents[1] / "derivation_check" / "files"
CORRECT = FILES / "bn_relu.py"
RIGHT_DV = "return (dYhat * (Y - m)).sum(axis=0) * -0.5 * (v + eps) ** -1.5"
WRONG_DV = "return (dYhat * (Y - m)).sum(axis=0) * -1.0 * (v + eps) ** -1.5"   # ×2


@pytest.fixture
def planted(tmp_path) -> Path:
    text = CORRECT.read_text()
    assert RIGHT_DV in text
    path = tmp_path / "bn_relu.py"
    path.write_text(text.replace(RIGHT_DV, WRONG_DV))
    return path


async def checked(pilot, more_than: int = 0, rounds: int = 300) -> None:
    """Until the screen has received more than `more_than` check results (the
    file is polled once a second) and the app is idle again."""
    screen = pilot.app.main
    for _ in range(rounds):
        await settle(pilot)
        if screen.derivation_checks > more_than:
            return
        await pilot.pause(0.05)
    raise AssertionError("the derivation file was never (re-)checked")


async def go_to(pilot, key: str) -> None:
    screen = pilot.app.main
    screen.go(next(i for i, s in enumerate(screen.steps)
                   if s.phase == BACKWARD and s.node.key == key))
    await settle(pilot)


def line_with(pilot, text: str) -> str:
    lines = [line for line in screen_lines(pilot.app.screen) if text in line]
    assert lines, f"{text!r} not drawn:\n{screen_text(pilot.app.screen)}"
    return lines[0]


def step_line(pilot, name: str) -> str:
    """The step list's line for ∂L/∂name (the list is the left 20 columns)."""
    for line in screen_lines(pilot.app.screen):
        left = line[:20]
        if f"∂L/∂{name} " in left or left.rstrip().endswith(f"∂L/∂{name}"):
            return left
    raise AssertionError(f"∂L/∂{name} not in the step list")


def start(path: Path) -> NnkitApp:
    return NnkitApp("bn-relu", {}, None, path)


async def test_a_correct_file_passes_on_every_derived_node():
    app = start(CORRECT)
    async with app.run_test(size=SIZE) as pilot:
        await checked(pilot)
        screen = app.main
        report = screen.derivation
        assert report is not None and screen.derivation_error == ""
        assert report.chain["first_wrong_node"] is None
        await shown(pilot, "your derivation bn_relu.py: 11 PASS 0 FAIL 0 TODO of 11")
        for s in [s for s in screen.steps if s.phase == BACKWARD]:
            await go_to(pilot, s.node.key)
            if s.node.role == "loss":
                await shown(pilot, "no formula for this node (the loss")
                continue
            fname = report.verdict_of(s.node.key).name
            assert "PASS" in line_with(pilot, f"yours: {fname} in bn_relu.py")
            # the student's tensor beside the analytic one
            await shown(pilot, f"yours: {fname} (bn_relu.py)", "analytic ∂L/∂")
            assert step_line(pilot, s.node.name).startswith("✓")
        assert "chain" not in "\n".join(line[:20] for line in screen_lines(app.screen))


async def test_a_planted_factor_is_diagnosed_and_the_chain_marked(planted):
    app = start(planted)
    async with app.run_test(size=SIZE) as pilot:
        await checked(pilot)
        await go_to(pilot, "v")
        assert "FAIL" in line_with(pilot, "yours: dv in bn_relu.py")
        await shown(pilot, "off by a factor ×2", "chain: your backward pass leaves the truth here",
                    "yours: dv (bn_relu.py)")
        v = step_line(pilot, "v")
        assert v.startswith("✗") and "chain" in v
        # the formulas right on their own keep their ✓; only v carries the chain mark
        for name in ("Y", "m", "W", "X"):
            line = step_line(pilot, name)
            assert line.startswith("✓") and "chain" not in line, line
        await go_to(pilot, "Y")
        await shown(pilot, "chain: right on its own, wrong when fed your ∂L/∂v")

        # fixing dv in an editor re-checks it without restarting the app
        before = app.main.derivation_checks
        planted.write_text(CORRECT.read_text())
        await checked(pilot, before)
        await go_to(pilot, "v")
        assert "PASS" in line_with(pilot, "yours: dv in bn_relu.py")
        assert "chain" not in step_line(pilot, "v") and step_line(pilot, "v").startswith("✓")
        assert app.main.derivation.chain["first_wrong_node"] is None


async def test_a_file_that_does_not_load_shows_its_message(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text('WALKTHROUGH = "bn-relu"\n\ndef dv(:\n    return 0\n')
    app = start(path)
    async with app.run_test(size=SIZE) as pilot:
        await checked(pilot)
        screen = app.main
        assert screen.derivation is None
        assert "line 3" in screen.derivation_error and "SyntaxError" in screen.derivation_error
        await shown(pilot, "your derivation broken.py:", "SyntaxError")
        await go_to(pilot, "v")
        await shown(pilot, "SyntaxError")
        assert "yours: dv" not in screen_text(app.screen)
        # saved again, now loading: the verdicts appear
        before = screen.derivation_checks
        path.write_text(CORRECT.read_text())
        await checked(pilot, before)
        assert "PASS" in line_with(pilot, "yours: dv in broken.py")


async def test_without_check_nothing_of_it_is_shown(started_app):
    async with started_app("bn-relu") as pilot:
        screen = pilot.app.main
        assert not screen.query_one("#derivation").display
        await go_to(pilot, "v")
        assert not screen.query_one("#grad-student").display
        assert "your derivation" not in screen_text(pilot.app.screen)


def test_the_walkthrough_is_the_files(tmp_path):
    name, cfg, export_dir, check = parse_command_line(["--check", str(FILES / "rnn.py")])
    assert name == "rnn" and check == FILES / "rnn.py"
    assert parse_command_line(["--check", str(CORRECT), "-B", "6"])[:2] == (
        "bn-relu", parse_args(["-B", "6"])[1])
    # a file that does not parse: the app opens (and says why), on -w or the default
    broken = tmp_path / "broken.py"
    broken.write_text("def (:\n")
    assert parse_command_line(["--check", str(broken), "-w", "rnn"])[0] == "rnn"
    assert parse_command_line(["--check", str(broken)])[0] == "bn-relu"


@pytest.mark.parametrize("argv, message", [
    (["--check", "no/such/file.py"], "--check: expected a derivation file, got "
                                     "'no/such/file.py' (no such file)"),
    (["--check", "."], "(a directory)"),
])
def test_a_bad_check_path_exits_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnkit-tui: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_an_unknown_declared_walkthrough_exits_2(tmp_path, capsys):
    path = tmp_path / "mine.py"
    path.write_text('WALKTHROUGH = "nope"\n')
    assert main(["--check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "WALKTHROUGH = 'nope'" in err and "expected one of" in err


async def test_check_my_derivation_file_from_the_palette(started_app, planted, tmp_path):
    from nnkit.tui.screens.check_file import CheckFileScreen
    async with started_app("rnn") as pilot:
        app = pilot.app
        commands = {c.title: c for c in app.get_system_commands(app.main)}
        commands["Check my derivation file…"].callback()
        await pilot.pause()
        assert isinstance(app.screen, CheckFileScreen)
        # a path that is no file keeps the dialog open, saying why
        await pilot.press(*str(tmp_path / "nope.py"), "enter")
        await shown(pilot, "no such file")
        assert isinstance(app.screen, CheckFileScreen)
        app.screen.query_one("#check-path").value = str(planted)
        await pilot.press("enter")
        await checked(pilot)
        # the file's WALKTHROUGH (bn-relu) replaced rnn
        assert app.main.walkthrough.name == "bn-relu"
        await go_to(pilot, "v")
        assert "FAIL" in line_with(pilot, "yours: dv in bn_relu.py")
        assert "chain" in step_line(pilot, "v")
