"""Issue 24: the CLI in scripts and CI. A bad value is exit 2: the subcommand's
usage, then one line "nnkit COMMAND: error: ..." naming what is wrong, last on
stderr; never a traceback, and nothing run before it (a benchmark's --json path
is checked before the benchmark, not after it)."""
import os
import subprocess
import sys

import pytest

from nnkit import cli

# (argv, a piece of the one error line): every subcommand has at least one case
CASES = [
    (["list", "extra"], "unrecognized arguments: extra"),
    (["gradcheck", "-w", "nope"], "--walkthrough: expected one of"),
    (["gradcheck", "--max-elements", "0"], "--max-elements: expected >= 1, got 0"),
    (["lessons", "--seed", "-1"], "--seed: expected >= 0, got -1"),
    (["lessons", "nope"], "NAME: expected one of"),
    (["train", "--lr", "inf"], "--lr: expected a finite number > 0, got inf"),
    (["train", "--lr", "nan"], "--lr: expected a finite number > 0, got nan"),
    (["train", "--lr", "0"], "--lr: expected a finite number > 0, got 0.0"),
    (["train", "--seed", "-1"], "--seed: expected >= 0, got -1"),
    # a value only the library refuses (Linear's 32-bit BLAS bound): one line too
    (["train", "--hidden", "3000000000"], "out_features: expected at most 2147483647"),
    (["conv", "--input", "8,2,2,3", "--out", "4", "-k", "5"],
     "kernel_size: the kernel (5) is larger than the padded input"),
    (["bottleneck", "--channels", "0"], "channels"),
    (["bench", "nope"], "FAMILY: expected one of ['bn_affine'"),
    (["bench", "norms", "--runs", "0"], "--runs: expected >= 1, got 0"),
    (["bench", "norms", "--quick", "--no-torch", "--json", "/no/such/dir/x.json"],
     "--json: cannot write '/no/such/dir/x.json': no directory '/no/such/dir'"),
    (["check", "/no/such/file.py"], "FILE: expected a derivation file"),
    (["info", "extra"], "unrecognized arguments: extra"),
]


def _subcommands():
    action = next(a for a in cli._parser()._actions if a.dest == "command")
    return set(action.choices)


def test_every_subcommand_has_a_bad_value_case():
    """A new subcommand needs its case here."""
    assert _subcommands() <= {argv[0] for argv, _ in CASES}


def _one_error_line(err: str, command: str) -> str:
    assert "Traceback" not in err, err
    lines = err.rstrip("\n").split("\n")
    errors = [ln for ln in lines if ": error: " in ln]
    assert len(errors) == 1, err
    assert lines[-1] == errors[0] and errors[0].startswith(f"nnkit {command}: error: "), err
    assert lines[0].startswith(f"usage: nnkit {command}"), err
    return errors[0]


@pytest.mark.parametrize("argv,piece", CASES, ids=lambda x: " ".join(x) if isinstance(x, list) else "")
def test_bad_value_is_exit_2_and_one_line(argv, piece, capsys):
    if argv[0] not in _subcommands():
        pytest.skip(f"no subcommand {argv[0]} in this tree")
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    line = _one_error_line(err, argv[0])
    assert piece in line, line
    assert out == ""           # nothing ran: no table, no lesson, no benchmark


@pytest.mark.parametrize("argv,piece", [
    (["train", "--lr", "inf"], "nnkit train: error: --lr: expected a finite number > 0, got inf"),
    (["lessons", "--seed", "-1"], "nnkit lessons: error: --seed: expected >= 0, got -1"),
    (["bench", "bn", "--quick", "--no-torch", "--json", "/no/such/dir/x.json"],
     "nnkit bench: error: --json: cannot write '/no/such/dir/x.json'"),
])
def test_as_a_program(argv, piece):
    """The three of the issue, as a script sees them."""
    p = subprocess.run([sys.executable, "-m", "nnkit.cli", *argv], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    assert piece in _one_error_line(p.stderr, argv[0])
    assert p.stdout == ""
    assert "run 1 of 1" not in p.stderr          # the benchmark never started


def test_bench_json_checked_before_the_run(tmp_path, monkeypatch, capsys):
    from nnkit import bench
    ran = []
    monkeypatch.setattr(bench, "run", lambda *a, **k: ran.append(1))
    for path, piece in [(str(tmp_path), "is a directory"),
                        (str(tmp_path / "missing" / "x.json"), "no directory"),
                        ("", "expected a file name")]:
        with pytest.raises(SystemExit) as exc:
            cli.main(["bench", "norms", "--quick", "--json", path])
        assert exc.value.code == 2
        assert piece in _one_error_line(capsys.readouterr().err, "bench")
    assert ran == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_bench_json_unwritable_directory(tmp_path, monkeypatch, capsys):
    from nnkit import bench
    monkeypatch.setattr(bench, "run", lambda *a, **k: pytest.fail("ran"))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(SystemExit):
            cli.main(["bench", "norms", "--json", str(ro / "x.json")])
        assert "is not writable" in _one_error_line(capsys.readouterr().err, "bench")
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("exc,piece", [
    (ValueError("lr: expected a finite number >= 0,\n  got inf"),
     "nnkit train: error: lr: expected a finite number >= 0, got inf"),
    (TypeError("eps: expected a finite number >= 0, got '1e-5'"),
     "nnkit train: error: eps: expected a finite number >= 0, got '1e-5'"),
    (MemoryError("Unable to allocate 954. GiB"),
     "nnkit train: error: out of memory: Unable to allocate 954. GiB"),
])
def test_library_errors_become_one_line(exc, piece, monkeypatch, capsys):
    """Any ValueError/TypeError a subcommand meets (the library refusing a
    value) is exit 2 and one line, the message's own newlines folded."""
    def boom(args):
        raise exc
    monkeypatch.setattr(cli, "_run_train", boom)
    with pytest.raises(SystemExit) as info:
        cli.main(["train"])
    assert info.value.code == 2
    assert _one_error_line(capsys.readouterr().err, "train") == piece
    # for debugging, the traceback on request
    monkeypatch.setenv("NNKIT_TRACEBACK", "1")
    with pytest.raises(type(exc)):
        cli.main(["train"])


def test_ctrl_c_is_130_without_a_traceback(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "_run_list", interrupted)
    try:
        status = cli.main(["list"])
    except KeyboardInterrupt:          # would stop the whole pytest session
        pytest.fail("KeyboardInterrupt escaped nnkit.cli.main")
    assert status == 130
    assert capsys.readouterr().err == "nnkit list: interrupted\n"


def test_lesson_run_refuses_a_negative_seed():
    """`nnkit lessons --seed -1` reported 26 lessons as FAIL: the seed, not the
    lessons, was wrong. In the library too it is a ValueError, not a FAIL."""
    from nnkit.lessons import registry
    les = next(iter(registry().values()))
    with pytest.raises(ValueError, match=r"^seed: expected an integer >= 0, got -1$"):
        les.run(-1)
    with pytest.raises(TypeError, match=r"^seed: expected an integer >= 0, got bool True$"):
        les.run(True)
    assert les.run(0).passed
