"""The README's Python examples run as written.

Each ```python block runs on its own, in a fresh namespace, as a newcomer
pasting it would run it; a block whose first line is `# continues the
previous block` runs in the namespace of the one before. ```py blocks are
sketches (the "Adding a family" template) and are not run.
"""
import importlib.util
import re
from pathlib import Path

import pytest

import numpy as np

README = Path(__file__).resolve().parents[2] / "README.md"
CONTINUES = "# continues the previous block"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_python_blocks_run_on_their_own(capsys):
    blocks = _blocks()
    assert len(blocks) >= 3
    namespaces = []
    ns: dict = {}
    for i, block in enumerate(blocks):
        if not block.startswith(CONTINUES):
            ns = {}
        # a block for an optional extra (pip install -e ".[examples]") runs where it is installed
        if "sklearn" in block and importlib.util.find_spec("sklearn") is None:
            namespaces.append({})
            continue
        exec(compile(block, f"{README}:block{i + 1}", "exec"), ns)
        namespaces.append(ns)
    # the examples' own claims: the user's tanh layer passes its check, and
    # whitening gives an identity covariance up to eps
    report = next(n["report"] for n in namespaces if "report" in n)
    assert report.passed
    cache = next(n["cache"] for n in namespaces if "cache" in n and hasattr(n["cache"], "cond"))
    yhat = cache.yhat
    cov = yhat.T @ yhat / yhat.shape[0]
    np.testing.assert_allclose(cov, np.eye(cov.shape[0]), atol=1e-3)


def test_readme_has_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert 'pip install -e . && nnkit-tui' in text
    assert 'pip install -e ".[test]" && pytest' in text
