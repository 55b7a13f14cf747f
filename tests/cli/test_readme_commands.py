"""Issue 24: every `nnkit ...` command in README.md's code blocks runs as
written (README's `nnkit bench bn` exited 2: the family is bn_affine).

A command is a line of a code block that starts with `nnkit ` (an ```sh
block) or `$ nnkit ` (a block showing a session; its other lines are the
output). It runs as the installed `nnkit` script with the line's arguments;
the exit status must be 0, or N where the line's comment says `# exit N`,
and then the error line the README shows under it must be what stderr ends
with. The commands run in a fresh directory holding the files the README
writes: a ```python block whose first line names a file (`# my_bn.py: ...`)
is that file. `nnkit bench` gets `--quick --no-torch` appended (tiny shapes, no
PyTorch: the tables' shape, not the speed). Commands that take more than a
few seconds are marked slow (pytest -m "not slow" leaves them out).
"""
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
SLOW = {"gradcheck"}            # every walkthrough, both dtypes: ~10 s; the rest ~1-5 s
BENCH_FLAGS = ["--quick", "--no-torch"]


class Command:
    def __init__(self, line: str, lineno: int, shown_error: str | None):
        self.line, self.lineno, self.shown_error = line, lineno, shown_error
        self.argv = shlex.split(line, comments=True)
        m = re.search(r"#\s*exit (\d+)", line)
        self.status = int(m.group(1)) if m else 0

    def __repr__(self):
        return f"README.md:{self.lineno}: {self.line}"


def commands() -> list[Command]:
    out = []
    lines = README.read_text(encoding="utf-8").splitlines()
    fence, lang, session = None, "", False
    for i, raw in enumerate(lines, 1):
        m = re.match(r"^(\s*)(```+|~~~+)(.*)$", raw)
        if m:
            if fence is None:
                fence, lang = m.group(2), m.group(3).strip()
                j = i       # a session block: any `$ ` line makes the others output
                session = False
                while j < len(lines) and not lines[j].lstrip().startswith(fence[:3]):
                    session |= lines[j].startswith("$ ")
                    j += 1
            elif m.group(2).startswith(fence[:3]):
                fence = None
            continue
        if fence is None:
            continue
        text = raw[2:] if raw.startswith("$ ") else (None if session else raw)
        if text is None or not text.startswith("nnkit "):
            continue
        nxt = lines[i] if i < len(lines) else ""
        shown = nxt if session and nxt.startswith("nnkit ") and ": error: " in nxt else None
        out.append(Command(text, i, shown))
    return out


def readme_files() -> dict[str, str]:
    """The files README's examples name: {file name: the block's text}."""
    text = README.read_text(encoding="utf-8")
    return {m.group(1): m.group(0).split("\n", 1)[1].rsplit("```", 1)[0]
            for m in re.finditer(r"```python\n# ([\w.-]+\.py)\b.*?```", text, re.S)}


def _argv(cmd: Command) -> list[str]:
    exe = Path(sys.executable).with_name("nnkit")
    prog = [str(exe)] if exe.exists() else (
        [shutil.which("nnkit")] if shutil.which("nnkit") else [sys.executable, "-m", "nnkit.cli"])
    args = cmd.argv[1:]
    if args[:1] == ["bench"]:
        args = args + [f for f in BENCH_FLAGS if f not in args]
    return prog + args


def _params():
    """One test per distinct command (README shows `nnkit gradcheck` twice)."""
    unique = {}
    for c in commands():
        unique.setdefault((tuple(c.argv), c.status), c)
    return [pytest.param(c, id=" ".join(c.argv[1:]),
                         marks=[pytest.mark.slow] if c.argv[1] in SLOW else [])
            for c in unique.values()]


def test_the_readme_has_commands_for_every_subcommand():
    """The extraction finds what is there (an empty list would pass the rest)."""
    cmds = commands()
    assert {c.argv[1] for c in cmds} >= {"list", "gradcheck", "lessons", "conv",
                                          "bottleneck", "train", "bench"}
    assert any(c.line.startswith("nnkit bench bn") for c in cmds)
    assert any(c.status == 2 and c.shown_error for c in cmds)
    # output lines are not commands
    assert not any(": error: " in c.line for c in cmds)


def test_bench_flags_exist():
    """--quick and --no-torch are real flags of `nnkit bench` (else every bench
    line here would be a usage error for the wrong reason)."""
    p = subprocess.run([sys.executable, "-m", "nnkit.cli", "bench", "--help"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and all(f in p.stdout for f in BENCH_FLAGS)


@pytest.mark.parametrize("cmd", _params())
def test_readme_command_runs_as_written(cmd, tmp_path):
    for name, body in readme_files().items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    t0 = time.perf_counter()
    p = subprocess.run(_argv(cmd), capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == cmd.status, f"{cmd!r}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    assert "Traceback" not in p.stderr, p.stderr
    if cmd.status == 0:
        assert p.stdout.strip(), cmd
    else:
        last = p.stderr.rstrip("\n").split("\n")[-1]
        if cmd.shown_error:
            assert last == cmd.shown_error, (last, cmd.shown_error)
    if cmd.argv[1] not in SLOW:    # keeps SLOW honest: a fast test stays fast
        assert time.perf_counter() - t0 < 60, cmd
