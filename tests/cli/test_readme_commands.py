"""Issue 24: every `nnkit ...` command in the code blocks of README.md and
the docs pages (docs/**/*.md) runs as written (README's `nnkit bench bn`
exited 2: the family is bn_affine).

A command is a line of a code block that starts with `nnkit ` (an ```sh
block) or `$ nnkit ` (a block showing a session; its other lines are the
output). It runs as the installed `nnkit` script with the line's arguments (a
`> FILE` at the end sends stdout to FILE, which must then be Python when it
is a .py file);
the exit status must be 0, or N where the line's comment says `# exit N`,
and then the error line the README shows under it must be what stderr ends
with. The commands run in a fresh directory holding the files the README
writes: a ```python block whose first line names a file (`# my_bn.py: ...`)
is that file (in any of the pages). `nnkit bench` gets `--quick --no-torch` appended (tiny shapes, no
PyTorch: the tables' shape, not the speed), and `nnkit gradcheck` without an
--isa gets `--isa <this level>` (CI's own gradcheck stage runs every level). gradcheck, bench, train and
lessons runs of more than two lessons are marked slow (the default pytest
leaves them out; CI's `pytest -m slow` stage runs them).
"""
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nnkit import _kernels

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BENCH_FLAGS = ["--quick", "--no-torch"]


def sources() -> list[Path]:
    """README.md and the docs pages this project writes (not the generated
    performance page, nor the notebooks' and figures' folders)."""
    docs = ROOT / "docs"
    pages = sorted(p for p in docs.rglob("*.md")
                   if p.relative_to(docs).parts[0] not in {"scripts", "notebooks", "figures"}
                   and p.name != "performance.md") if docs.is_dir() else []
    return [README] + pages


class Command:
    def __init__(self, line: str, path: Path, lineno: int, shown_error: str | None):
        self.line, self.path, self.lineno, self.shown_error = line, path, lineno, shown_error
        self.argv = shlex.split(line, comments=True)
        # `nnkit check --template bn-relu > my_bn.py`: stdout goes to that file
        self.redirect = None
        if ">" in self.argv:
            i = self.argv.index(">")
            self.argv, self.redirect = self.argv[:i], self.argv[i + 1]
        m = re.search(r"#\s*exit (\d+)", line)
        self.status = int(m.group(1)) if m else 0

    def __repr__(self):
        return f"{self.path.relative_to(ROOT)}:{self.lineno}: {self.line}"

    @property
    def slow(self) -> bool:
        """gradcheck (every configuration of a walkthrough, both dtypes:
        whitening's alone takes minutes on a loaded machine), lessons beyond
        a named one or two, benchmarks and training runs."""
        sub, rest = self.argv[1], self.argv[2:]
        if sub == "lessons":
            names = [a for a in rest if not a.startswith("-") and not a.isdigit()]
            return "--list" not in rest and not 1 <= len(names) <= 2
        return sub in {"gradcheck", "bench", "train"}


def commands() -> list[Command]:
    return [c for path in sources() for c in _commands(path)]


def _commands(path: Path) -> list[Command]:
    out = []
    lines = path.read_text(encoding="utf-8").splitlines()
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
        out.append(Command(text, path, i, shown))
    return out


def readme_files() -> dict[str, str]:
    """The files the pages' examples name: {file name: the block's text}."""
    files = {}
    for path in sources():
        text = path.read_text(encoding="utf-8")
        files.update({m.group(1): m.group(0).split("\n", 1)[1].rsplit("```", 1)[0]
                      for m in re.finditer(r"```python\n# ([\w.-]+\.py)\b.*?```", text, re.S)})
    return files


def _argv(cmd: Command) -> list[str]:
    exe = Path(sys.executable).with_name("nnkit")
    prog = [str(exe)] if exe.exists() else (
        [shutil.which("nnkit")] if shutil.which("nnkit") else [sys.executable, "-m", "nnkit.cli"])
    args = cmd.argv[1:]
    if args[:1] == ["bench"]:
        args = args + [f for f in BENCH_FLAGS if f not in args]
    if args[:1] == ["gradcheck"] and "--isa" not in args:
        # one ISA level, this process's: every level is CI's own gradcheck
        # stage; here the command's other arguments are what is tested
        args = args + ["--isa", _kernels.level()]
    return prog + args


def _params():
    """One test per distinct command (the pages show some commands twice)."""
    unique = {}
    for c in commands():
        unique.setdefault((tuple(c.argv), c.status), c)
    return [pytest.param(c, id=" ".join(c.argv[1:]),
                         marks=[pytest.mark.slow] if c.slow else [])
            for c in unique.values()]


def _subcommands() -> set[str]:
    p = subprocess.run([sys.executable, "-m", "nnkit.cli", "--help"],
                       capture_output=True, text=True, timeout=120)
    return set(re.findall(r"^    ([a-z]+)\b", p.stdout, re.M))


def test_the_pages_have_commands_for_every_subcommand():
    """The extraction finds what is there (an empty list would pass the rest):
    the README shows the first steps, the docs every subcommand `nnkit --help`
    lists."""
    cmds = commands()
    subs = _subcommands()
    assert {"list", "gradcheck", "check", "lessons", "conv", "bench"} <= subs
    assert {c.argv[1] for c in cmds} >= subs
    assert {c.argv[1] for c in cmds if c.path == README} >= {"check", "gradcheck"}
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
    p = subprocess.run(_argv(cmd), capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == cmd.status, f"{cmd!r}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    assert "Traceback" not in p.stderr, p.stderr
    if cmd.status == 0:
        assert p.stdout.strip(), cmd
        if cmd.redirect and cmd.redirect.endswith(".py"):
            # what the page writes to a .py file is Python (a template to edit)
            compile(p.stdout, cmd.redirect, "exec")
    else:
        last = p.stderr.rstrip("\n").split("\n")[-1]
        if cmd.shown_error:
            assert last == cmd.shown_error, (last, cmd.shown_error)
