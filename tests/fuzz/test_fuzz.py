"""CI slice of the fuzz suite: every spec, NNKIT_FUZZ_EXAMPLES hypothesis
examples each (default 30; ~80 specs -> ~2,400 cases, ~70 s), derandomized by the
CI profile in tests/conftest.py. A failure prints the spec and the seed;
reproduce with `python -m tests.fuzz --one SPEC SEED`.

The long run (>= 100,000 cases, a table per function and outcome):
    NNKIT_FUZZ_CASES=100000 python -m tests.fuzz
"""
from __future__ import annotations

import inspect
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnkit as nk

from .engine import KINDS, run_case
from .specs import NOT_FUZZED, SPECS

EXAMPLES = int(os.environ.get("NNKIT_FUZZ_EXAMPLES", "30"))

# modules whose public functions are re-exported at the top level (fuzzed by name)
FAMILY_MODULES = {"batchnorm", "conv", "conv_shapes", "dense", "dropout", "layers", "norms",
                  "rnn", "gated", "softmax", "weightnorm", "whitening", "gradcheck", "trace"}


def public_callables():
    for name in dir(nk):
        obj = getattr(nk, name)
        # submodules are not entry points (and become attributes of nnkit as soon as
        # anything imports them): init and optim are checked name by name below
        if name.startswith("_") or inspect.ismodule(obj):
            continue
        if inspect.isclass(obj) and not issubclass(obj, nk.Layer):
            continue          # caches, named gradients, reports: results, not entry points
        if callable(obj):
            yield name


def test_every_public_name_has_a_spec():
    missing = [n for n in public_callables() if n not in SPECS and n not in NOT_FUZZED]
    assert not missing, f"add a spec in tests/fuzz/specs.py for: {missing}"
    for sub in ("init", "optim"):
        mod = getattr(nk, sub)
        for n in getattr(mod, "__all__", []):
            obj = getattr(mod, n)
            if callable(obj) and n[0].isupper() and n not in ("Optimizer", "LRScheduler"):
                assert f"{sub}.{n}" in SPECS, f"add a spec for nk.{sub}.{n}"


@pytest.mark.parametrize("name", list(SPECS))
def test_fuzz(name):
    spec = SPECS[name]

    @settings(max_examples=EXAMPLES)
    @given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(KINDS))
    def run(seed, kind):
        case = run_case(spec, seed, kind)
        assert case.outcome != "finding", f"{case.label()}: {case.message}"

    run()
