"""`nnkit conv` and `nnkit bottleneck`: answers, both layouts, --json, exit 2
with the filled-in formula (never a traceback)."""
import json
import subprocess
import sys

import pytest

from nnkit.cli import main


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as e:      # argparse's error(): exit 2
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_conv_p3_example(capsys):
    code, out, _ = run(capsys, "conv", "--input", "8,32,32,3", "--out", "16", "-k", "3",
                       "-s", "2", "-p", "1")
    assert code == 0
    assert "output (8, 16, 16, 16)" in out
    assert "W' = ⌊(32 + 2·1 − 3)/2⌋ + 1 = 16" in out and "H' = ⌊(32 + 2·1 − 3)/2⌋ + 1 = 16" in out
    assert "3·3·3·16 = 432; biases 16; parameters 448" in out
    assert "= 884,736" in out          # 8·16·16·16·27


def test_conv_nchw_json_pairs(capsys):
    code, out, _ = run(capsys, "conv", "--input", "2,3,20,10", "--out", "4", "-k", "5,3",
                       "-s", "2,1", "-p", "0,2", "--layout", "NCHW", "--json", "--no-bias")
    assert code == 0
    d = json.loads(out)
    assert d["output"] == [2, 4, 8, 12] and d["biases"] == 0 and d["weights"] == 5 * 3 * 3 * 4
    assert d["formula"] == ["H' = ⌊(20 + 2·0 − 5)/2⌋ + 1 = 8", "W' = ⌊(10 + 2·2 − 3)/1⌋ + 1 = 12"]


def test_conv_pool_and_same(capsys):
    code, out, _ = run(capsys, "conv", "--input", "4,56,56,64", "-k", "2", "--pool", "max")
    assert code == 0 and "output (4, 28, 28, 64)" in out
    code, out, _ = run(capsys, "conv", "--input", "1,7,9,2", "--out", "3", "-k", "3", "-p", "same")
    assert code == 0 and "output (1, 7, 9, 3)" in out


@pytest.mark.parametrize("argv,msg", [
    (["--input", "8,2,2,3", "--out", "4", "-k", "5"],
     "W' = ⌊(2 + 2·0 − 5)/1⌋ + 1 = −2 ≤ 0"),
    (["--input", "8,32,32,3", "--out", "4", "-s", "0"], "(division by zero)"),
    (["--input", "8,32,32", "--out", "4"], "--input: expected 4 comma-separated integers"),
    (["--input", "8,32,32,3", "--out", "4", "-k", "a"], "--kernel: expected comma-separated"),
    (["--input", "8,32,32,3"], "--out: expected the number of output channels"),
    (["--input", "8,32,32,3", "--out", "0"], "out_channels: expected a positive integer"),
    (["--input", "8,32,32,3", "-k", "3", "-p", "2", "--pool", "avg"], "p1 <= k1/2"),
])
def test_conv_bad_geometry_exits_2(capsys, argv, msg):
    code, out, err = run(capsys, "conv", *argv)
    assert code == 2 and msg in err and "Traceback" not in err and out == ""


def test_bottleneck_default_is_p3(capsys):
    code, out, _ = run(capsys, "bottleneck")
    assert code == 0
    assert "basic block 73,728 parameters" in out and "basic block 73,856 parameters" in out
    assert "k ∈ [50.57, 57.28]; integer widths 51…57" in out
    assert "k ∈ [50.46, 57.18]; integer widths 51…57" in out


def test_bottleneck_json_and_errors(capsys):
    code, out, _ = run(capsys, "bottleneck", "--bias", "no", "--json")
    d = json.loads(out)
    assert code == 0 and len(d) == 1 and d[0]["widths"] == list(range(51, 58))
    assert round(d[0]["interval"][0], 2) == 50.57
    code, _, err = run(capsys, "bottleneck", "--reduction", "0.7,0.2")
    assert code == 2 and "reduction: expected 0 <= lo <= hi < 1" in err
    code, _, err = run(capsys, "bottleneck", "--channels", "0")
    assert code == 2 and "channels" in err


def test_console_script_never_tracebacks():
    r = subprocess.run([sys.executable, "-m", "nnkit.cli", "conv", "--input", "1,1,1,1",
                        "--out", "1", "-k", "2"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "W' = ⌊(1 + 2·0 − 2)/1⌋ + 1 = 0 ≤ 0" in r.stderr
