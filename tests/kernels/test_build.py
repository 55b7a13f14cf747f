"""The bounds-checked build: CI rebuilds the kernels with NNKIT_DEBUG_CYTHON=1
and runs tests/kernels with NNKIT_EXPECT_DEBUG_BUILD=1; this test makes sure
that run really exercised the bounds-checked kernels."""
import os

import pytest

from nnkit._kernels import dense


@pytest.mark.skipif(os.environ.get("NNKIT_EXPECT_DEBUG_BUILD") != "1",
                    reason="only in CI's bounds-checked run (NNKIT_EXPECT_DEBUG_BUILD=1)")
def test_kernels_are_the_debug_build():
    assert dense.DEBUG_BUILD is True, (
        "NNKIT_EXPECT_DEBUG_BUILD=1 but nnkit._kernels.dense was built without "
        "bounds checks: rebuild with NNKIT_DEBUG_CYTHON=1")


def test_debug_flag_is_a_bool():
    assert isinstance(dense.DEBUG_BUILD, bool)
