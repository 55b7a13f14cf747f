"""nnkit/_malloc.py: at import nnkit asks glibc to keep freed blocks under
32 MB, so a loop's fresh intermediates stop costing a page fault per 4 KB;
a MALLOC_* variable the user set wins. Each case runs in a fresh process
(the setting is process-wide and made once, at import)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nnkit import _malloc

pytestmark = pytest.mark.skipif(_malloc._glibc() is None, reason="glibc only")

# Whitening BN at (1024, 256) float64: Yc, Ŷ, dZc (2 MB each) and the g×g
# work arrays are fresh every call. With glibc's default thresholds this loop
# takes ~3,000 page faults per step on the project machine.
CHILD = r"""
import json, resource, sys
import numpy as np
import nnkit as nk
from nnkit import _malloc
if sys.argv[1:] == ["state"]:      # the setting only, no loop
    print(json.dumps({"state": _malloc.STATE}))
    sys.exit(0)
B, M = 1024, 256
rng = np.random.default_rng(0)
Y, dZ = rng.standard_normal((B, M)), rng.standard_normal((B, M))
g, b = np.ones(M), np.zeros(M)
def step():
    _, cache = nk.whitening_forward(Y, g, b, 1e-5)
    return nk.whitening_backward(dZ, cache, full=False).dY
# warm-up: the heap settles within a few steps (the kernels' 64-byte-aligned
# workspaces can grow it once more, ~1 MB, after the first); then 20 steps
for _ in range(3):
    step()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"state": _malloc.STATE, "faults": (f1 - f0) / 20}))
"""


def run_child(*args, **env_vars):
    env = {k: v for k, v in os.environ.items() if k not in _malloc.USER_VARIABLES}
    env.update(env_vars)
    res = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_import_keeps_freed_blocks_and_a_loop_stops_faulting():
    r = run_child()
    assert r["state"] == "set"
    # 2 MB arrays reused from the heap: no fresh pages after the first step
    assert r["faults"] < 50, r


@pytest.mark.parametrize("name", _malloc.USER_VARIABLES)
def test_a_variable_the_user_set_wins(name):
    r = run_child("state", **{name: "131072"})
    assert r["state"] == "user"
