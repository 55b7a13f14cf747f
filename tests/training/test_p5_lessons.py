"""The P5 lessons: each passes for two seeds, its table says what it claims,
and a planted mistake makes it fail."""
from __future__ import annotations

import functools

import numpy as np
import pytest

from nnkit import optim
from nnkit.lessons import get, p5_optimizers

P5 = ("p5-momentum-running-average", "p5-unrolled", "p5-bias-correction", "p5-adam-adagrad")


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", P5)
def test_lesson_passes(name, seed):
    les = get(name)
    assert les.problem == "P5"
    r = les.run(seed)
    assert r.passed, (name, r.discrepancy, r.tolerance)
    assert r.rows and np.isfinite(r.discrepancy)


def test_momentum_lesson_shows_the_wrong_mapping_differs():
    r = get("p5-momentum-running-average").run(0)
    assert all(row["same with ε = δ (no 1−β)"] > 1e-2 for row in r.rows)


def test_bias_correction_numbers():
    r = get("p5-bias-correction").run(0)
    first = r.rows[0]
    assert first["t"] == 1 and first["(1−β^t)·E[g]"] == pytest.approx(0.15)
    assert abs(first["E_MC[v_t]/(1−β^t)"] - 1.5) < 0.02
    assert len(r.curves["E_MC[v_t]"]) == 30


def test_adam_adagrad_gap_is_linear_in_one_minus_beta2():
    r = get("p5-adam-adagrad").run(0)
    ratios = [row["gap / (1 − β2)"] for row in r.rows[2:]]
    assert max(ratios) / min(ratios) < 1.05          # gap ∝ (1 − β2) once β2 ≥ 0.999
    gaps = [row["max_t |θ_Adam − θ_AdaGrad| / max|θ|"] for row in r.rows]
    assert gaps == sorted(gaps, reverse=True)


def test_planted_mistakes_fail(monkeypatch):
    # a running average that bias-corrects is not plain momentum
    monkeypatch.setattr(p5_optimizers.optim, "RunningAverage",
                        functools.partial(optim.RunningAverage, bias_correction=True))
    assert not get("p5-momentum-running-average").run(0).passed
    monkeypatch.undo()
    # AdaGrad with a decaying lr is not the limit of Adam under η0/√t
    monkeypatch.setattr(p5_optimizers.optim, "AdaGrad",
                        functools.partial(optim.AdaGrad, lr_decay=1e-3))
    assert not get("p5-adam-adagrad").run(0).passed
    monkeypatch.undo()
    # a running average with a slightly wrong β is not the unrolled sum
    original = optim.RunningAverage
    monkeypatch.setattr(p5_optimizers.optim, "RunningAverage",
                        lambda P, lr, beta: original(P, lr=lr, beta=beta * 0.999))
    assert not get("p5-unrolled").run(0).passed
    assert not get("p5-bias-correction").run(0).passed
