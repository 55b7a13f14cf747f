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


# ------------------------------------------------------- issue 24, items 1 and 3
def test_conv_says_which_layout_it_reads(capsys):
    # the CLI keeps P3's layout as its default, and every answer names it
    code, out, _ = run(capsys, "conv", "--input", "8,32,32,3", "--out", "16")
    assert code == 0 and out.startswith("conv: input (8, 32, 32, 3) (BWHC) -> output (8, 30, 30, 16)")
    code, out, _ = run(capsys, "conv", "--input", "8,3,32,32", "--out", "16", "--layout", "NCHW")
    assert code == 0 and out.startswith("conv: input (8, 3, 32, 32) (NCHW) -> output (8, 16, 30, 30)")
    code, out, _ = run(capsys, "conv", "--input", "4,56,56,64", "-k", "2", "--pool", "avg",
                       "--json")
    assert code == 0 and json.loads(out)["layout"] == "BWHC"
    code, out, _ = run(capsys, "conv", "--help")
    assert code == 0 and "P3's layout (B, W, H, C) unless" in " ".join(out.split())


@pytest.mark.parametrize("argv,msg", [
    (["--input", "8,32,32,3", "--pool", "max", "--out", "7"],
     "--out 7: does not apply to --pool max (pooling keeps the input's channels)"),
    (["--input", "8,32,32,3", "--pool", "lp", "-d", "2"],
     "--dilation 2: does not apply to --pool lp (pooling has no dilation)"),
    (["--input", "8,32,32,3", "--pool", "avg", "-d", "1"],
     "--dilation 1: does not apply to --pool avg"),
    (["--input", "8,32,32,3", "--pool", "max", "--no-bias"],
     "--no-bias: does not apply to --pool max (pooling has no biases)"),
    (["--input", "8,32,32,3", "--pool", "max", "-p", "same"],
     "--padding same: pooling takes p or p1,p2"),
    (["--input", "-8,32,32,3", "--out", "4"],
     "--input: expected 4 sizes >= 1 (B,W,H,C in BWHC), got -8,32,32,3"),
    (["--input=-8,32,32,3", "--out", "4"],
     "--input: expected 4 sizes >= 1 (B,W,H,C in BWHC), got -8,32,32,3"),
    (["--input", "8,-3,32,3", "--out", "4", "--layout", "NCHW"],
     "--input: expected 4 sizes >= 1 (B,C,H,W in NCHW), got 8,-3,32,3"),
    (["--input", "8,32,32,3", "--out", "4", "-p", "SAME", "-s", "2"],
     "padding: 'same' needs stride 1"),
])
def test_conv_refuses_what_does_not_apply_in_one_line(capsys, argv, msg):
    code, out, err = run(capsys, "conv", *argv)
    assert code == 2 and out == "" and "Traceback" not in err
    reason = [line for line in err.splitlines() if line.startswith("nnkit conv: error: ")]
    assert len(reason) == 1 and msg in reason[0], err
    assert err.rstrip().endswith(reason[0])       # the reason is the last line, whole
    assert "expected one argument" not in err


@pytest.mark.parametrize("same,valid", [("SAME", "VALID"), ("Same", "Valid"), ("same", "valid")])
def test_conv_padding_modes_in_any_case(capsys, same, valid):
    code, out, err = run(capsys, "conv", "--input", "1,7,9,2", "--out", "3", "-k", "3",
                         "-p", same)
    assert code == 0 and "output (1, 7, 9, 3)" in out, err
    code, out, err = run(capsys, "conv", "--input", "1,7,9,2", "--out", "3", "-k", "3",
                         "-p", valid)
    assert code == 0 and "output (1, 5, 7, 3)" in out, err


def test_conv_same_even_kernel_shows_both_pads(capsys):
    code, out, err = run(capsys, "conv", "--input", "2,9,7,3", "--out", "4", "-k", "4,2",
                         "-p", "same")
    assert code == 0, err
    assert "output (2, 9, 7, 4)" in out
    assert "W' = ⌊(9 + 1 + 2 − 4)/1⌋ + 1 = 9" in out and "H' = ⌊(7 + 0 + 1 − 2)/1⌋ + 1 = 7" in out


# ------------------------------------------------------------ issue 24, item 4
def _cut_line(out):
    return [line for line in out.splitlines() if "cut:" in line]


def test_bottleneck_labels_keep_close_cuts_apart(capsys):
    code, out, _ = run(capsys, "bottleneck", "--reduction", "0.99,0.999")
    assert code == 0
    lines = _cut_line(out)
    assert len(lines) == 2
    for line in lines:
        assert "a 99%–99.9% cut: 0.1%·" in line and "≤ 1%·" in line, line
        assert "100%" not in line and " 0%·" not in line
    assert "0.1%·73,728 ≤ 9k² + 128k ≤ 1%·73,728" in out
    assert "0.1%·73,856 ≤ 9k² + 130k + 64 ≤ 1%·73,856" in out


PERCENT = r"(\d+(?:\.\d+)?)%"


@pytest.mark.parametrize("lo,hi", [(0.5, 0.6), (0.99, 0.999), (0.25, 0.255), (0.0, 0.001),
                                   (0.123, 0.1234), (0.4, 0.4), (0.33, 0.3300001),
                                   (0.7, 0.99999)])
def test_bottleneck_labels_are_exact_and_distinct(lo, hi):
    import re
    from nnkit import conv_shapes as cs
    sol = cs.solve_bottleneck(64, (lo, hi), bias=False)
    line = sol.lines()[1]
    texts = re.findall(PERCENT, line)
    assert len(texts) == 4, line
    got = [float(t) for t in texts]
    want = [100 * lo, 100 * hi, 100 * (1 - hi), 100 * (1 - lo)]
    for t, w in zip(texts, want):      # each label rounds its value to its last digit
        dec = len(t.split(".")[1]) if "." in t else 0
        assert abs(float(t) - w) <= 0.5 * 10.0 ** -dec + 1e-9, (line, t, w)
    for i in range(4):                 # values that differ are printed differently
        for j in range(i):
            if want[i] != want[j]:
                assert got[i] != got[j], line
    k_lo, k_hi = (float(x) for x in re.findall(r"k ∈ \[([\d.]+), ([\d.]+)\]", sol.lines()[2])[0])
    if sol.interval[0] != sol.interval[1]:
        assert k_lo != k_hi
    assert abs(k_lo - sol.interval[0]) <= 0.005 and abs(k_hi - sol.interval[1]) <= 0.005
