"""The nnkit-tui command line: validated before the app starts; bad values
are a message and exit status 2, never a traceback."""
from __future__ import annotations

import pytest

from nnkit.tui.app import main, parse_args


def test_defaults():
    name, cfg, export_dir = parse_args([])
    assert name == "bn-relu" and cfg["B"] == 4 and export_dir is None


def test_the_walkthrough_may_be_named_without_the_flag():
    assert parse_args(["rnn"])[0] == "rnn"
    assert parse_args(["birnn", "--set", "T=2"])[1]["T"] == 2
    assert parse_args(["rnn", "-w", "rnn"])[0] == "rnn"


def test_named_flags_and_set():
    name, cfg, _ = parse_args(["--walkthrough", "bn-relu", "-B", "8", "--N", "2", "--M", "7",
                               "--eps", "0", "--seed", "3", "--dtype", "float32",
                               "--set", "constant_feature=true"])
    given = dict(B=8, N=2, M=7, eps=0.0, seed=3, dtype="float32", constant_feature=True)
    assert {k: cfg[k] for k in given} == given


@pytest.mark.parametrize("argv, message", [
    (["-B", "abc"], "B: expected int, got 'abc'"),
    (["--batch", "1"], "B: expected >= 2"),
    (["--dtype", "int8"], "dtype: expected one of"),
    (["--set", "nokey"], "--set: expected KEY=VALUE"),
    (["--set", "bogus=1"], "bogus: not a parameter"),
    (["--walkthrough", "nope"], "--walkthrough: expected one of"),
    (["nope"], "WALKTHROUGH: expected one of ["),
    (["rnn", "-w", "birnn"], "--walkthrough: expected the same name as the positional "
                             "WALKTHROUGH 'rnn', got 'birnn'"),
])
def test_bad_values_exit_2_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnkit-tui: error: ") and message in err
    assert "Traceback" not in err


def test_help_lists_the_walkthroughs(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "bn-relu" in capsys.readouterr().out
