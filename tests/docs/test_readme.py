"""The README: short, readable as plain text, its examples run as written
(see markdown_blocks for the block conventions), and CI's two commands."""
import re

import numpy as np

import nnkit as nk
from markdown_blocks import README, python_blocks, run_blocks


def test_readme_python_blocks_run_on_their_own(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert len(python_blocks(README)) >= 3
    namespaces = run_blocks(README)
    # the engineer's tanh layer passes its check, and the check is not blind:
    # its analytic dW is tanh's closed form, written here independently
    ns = next(n for n in namespaces if "report" in n)
    assert ns["report"].passed
    rng = np.random.default_rng(1)
    X, W = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))
    Y, cache = ns["tanh_forward"](X, W)
    dY = rng.standard_normal(Y.shape)
    np.testing.assert_allclose(ns["tanh_backward"](dY, cache)["dW"],
                               (dY / np.cosh(X @ W.T) ** 2).T @ X, rtol=1e-12)
    # the one-minute example: dX = dY W (P1), from the BN backward's dY
    ns = next(n for n in namespaces if "aff" in n)
    np.testing.assert_allclose(ns["dX"], ns["g"].dY @ ns["W"], rtol=1e-12)
    # the student's file: dgamma is right, dY has the B - 1 slip (as the README says)
    ns = next(n for n in namespaces if n.get("WALKTHROUGH") == "bn-relu")
    report = nk.check_derivation({k: v for k, v in ns.items() if k[:1] in {"d", "W"}})
    verdicts = {f.name: f.verdict for f in report.derived}
    assert verdicts == {"dgamma": "PASS", "dv": "PASS", "dY": "FAIL"}


def test_readme_has_the_two_commands():
    """CI (.ci/run) runs the README's test command: these two lines stay."""
    text = README.read_text(encoding="utf-8")
    assert 'pip install -e . && nnkit-tui' in text
    assert 'pip install -e ".[test]" && pytest' in text


def test_readme_is_short_and_plain():
    """At most 200 lines; no Markdown tables (they read badly as plain text)
    and no measured times outside the performance page."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200
    assert not [l for l in lines if re.match(r"^\s*\|.*\|\s*$", l)]
    prose = [l for l in lines if not l.startswith(("    ", "$"))]
    assert not [l for l in prose if re.search(r"\b\d+(\.\d+)?\s*(ms|min|s|GB/s|GF/s)\b", l)]
