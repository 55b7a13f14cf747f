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


def test_every_level_is_the_same_build():
    """A build in place removes the levels it did not make (setup.py), so
    NNKIT_ISA never loads a module of an older build: every level this CPU
    runs has the loaded level's flavour (bounds checks on or off)."""
    import subprocess
    import sys

    from nnkit import _kernels
    for lv in _kernels.supported_levels():
        p = subprocess.run([sys.executable, "-c", "from nnkit._kernels import dense; "
                            "print(dense.DEBUG_BUILD)"], capture_output=True, text=True,
                           env={**os.environ, "NNKIT_ISA": lv}, timeout=600)
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == str(dense.DEBUG_BUILD), f"level {lv}"
