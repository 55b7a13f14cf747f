"""The README's Python examples run as written (in order, one namespace)."""
import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 3
    ns: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), ns)
    # the examples' own claims: the user's tanh layer passes its check, and
    # whitening gives an identity covariance up to eps
    assert ns["report"].passed
    yhat = ns["cache"].yhat
    cov = yhat.T @ yhat / yhat.shape[0]
    np.testing.assert_allclose(cov, np.eye(cov.shape[0]), atol=1e-3)


def test_readme_has_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert 'pip install -e . && nnkit-tui' in text
    assert 'pip install -e ".[test]" && pytest' in text
