"""The lstm and gru walkthroughs: every gate a node, analytic gradients from
the kernels (nk.lstm_backward / nk.gru_backward) agreeing with finite
differences of the node formulas, and the cell carry's two terms for
`nnkit check`."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest

import nnkit as nk
from nnkit import trace

FILES = pathlib.Path(__file__).parents[1] / "derivation_check" / "files"


@pytest.mark.parametrize("name", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_configuration_passes(name, dtype):
    w = trace.registry()[name]
    for cfg in w.check_configs():
        t = trace.Trace(w, dtype=dtype, **cfg)
        rep = t.check_all(max_elements=8)
        assert rep.passed, (cfg, rep)


def test_every_gate_is_a_node():
    lstm = {n.key for n in trace.Trace(trace.registry()["lstm"], T=2).nodes}
    assert {f"{g}[{t}]" for g in "ifgoach" for t in (1, 2)} <= lstm
    assert "c[0]" in lstm
    gru = {n.key for n in trace.Trace(trace.registry()["gru"], T=2).nodes}
    assert {f"{g}[{t}]" for g in ("r", "z", "n", "hn", "h") for t in (1, 2)} <= gru


def test_cell_gradient_is_the_sum_of_its_two_terms():
    w = trace.registry()["lstm"]
    tr = trace.Trace(w, T=4, B=3, N=2, H=5, seed=1)
    for t in range(1, 5):
        dh, o, c = (np.asarray(tr.grad(f"h[{t}]")), np.asarray(tr.value(f"o[{t}]")),
                    np.asarray(tr.value(f"c[{t}]")))
        want = dh * o * (1 - np.tanh(c) ** 2)
        if t < 4:
            want = want + np.asarray(tr.value(f"f[{t + 1}]")) * np.asarray(tr.grad(f"c[{t + 1}]"))
        np.testing.assert_allclose(tr.grad(f"c[{t}]"), want, rtol=1e-12, atol=1e-14)


def test_check_names_the_missing_carried_term(tmp_path):
    text = (FILES / "lstm.py").read_text().replace(
        "    carried = f[t + 1] * dc[t + 1] if t < T else 0", "    carried = 0 * c[t]")
    path = tmp_path / "lstm_planted.py"
    path.write_text(text)
    report = nk.check_derivation(str(path))
    dc = next(f for f in report.formulas if f.name == "dc")
    assert dc.verdict == "FAIL"
    assert "missing the term f_{t+1} ⊙ ∂L/∂c_{t+1}" in dc.diagnosis


def test_gradcheck_cli_strict(capsys):
    from nnkit.cli import main
    assert main(["gradcheck", "-w", "lstm", "-w", "gru", "--strict"]) == 0
