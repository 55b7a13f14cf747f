"""Inputs are never modified and outputs never alias inputs (issue 12).

Every public function and layer (the fuzz spec table) is called with every
array argument read-only -- the arrays inside a backward's cache too, so a
backward that wrote into its cache would raise -- on several seeded sizes.
Then: every input holds the same bytes, and no primary output shares memory
with any input (np.shares_memory, exact). Exceptions by design, named in the
spec: arguments updated in place (optimizer parameters, running statistics,
numeric_gradient's x, which is perturbed and restored) and Flatten, whose
output is documented as a view of its input. out= buffers alias by request
and are tested in tests/memory/test_out_buffers.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from .engine import Draw, _arrays_in, default_outputs
from .specs import SPECS

SIZES = ["small", "one", "small", "large"]


def _freeze(args, skip):
    for k, a in args.items():
        if k in skip:
            continue
        for arr in _arrays_in(a):
            arr.flags.writeable = False


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("size_i", range(len(SIZES)))
def test_readonly_inputs_unchanged_and_not_aliased(name, size_i):
    spec = SPECS[name]
    if SIZES[size_i] not in spec.sizes:
        pytest.skip(f"{name} has no {SIZES[size_i]} size")
    for dtype in (np.float64, np.float32):
        d = Draw(np.random.default_rng([size_i, 7]), dtype, SIZES[size_i])
        args = spec.build(d)
        _freeze(args, spec.inplace)
        before = [(k, arr, arr.copy()) for k, a in args.items() if k not in spec.inplace
                  for arr in _arrays_in(a) if arr.dtype != object]
        result = spec.fn(**args)
        for k, arr, old in before:
            assert np.array_equal(arr, old, equal_nan=True), f"{name}: input {k} modified"
        outs = [o for o in (spec.outputs or default_outputs)(result)
                if isinstance(o, np.ndarray) and o.size]
        for k, a in args.items():
            if k in spec.inplace or k in spec.views:
                continue
            for arr in _arrays_in(a):
                for i, o in enumerate(outs):
                    assert not np.shares_memory(o, arr), \
                        f"{name}: output {i} shares memory with input {k!r}"
