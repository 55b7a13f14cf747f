"""The compiled kernels, one build per instruction-set level.

setup.py compiles the same generated C of every kernel once per level into
nnkit/_kernels/<level>/<kernel>.*.so (levels in nnkit/_isa.py). Importing this
package picks one level, the best this CPU runs and the build contains, or
the one NNKIT_ISA names, and points the package's __path__ at its folder: so
`from nnkit._kernels import dense` and `import nnkit._kernels.dense` load
that level's module under its canonical name (its init function is
PyInit_dense at every level). One level per process: a test reaches another
level only through NNKIT_ISA in a new process.

Why one extension per level rather than GCC function multi-versioning on the
C headers: every level gets exactly the code generation of a native build,
the Cython-generated loops included, with no change to pyx/.
"""
from __future__ import annotations

import os

from .. import _isa

_HERE = os.path.dirname(os.path.abspath(__file__))
_SUFFIXES = (".so", ".pyd")


def _built_levels() -> tuple[str, ...]:
    """The levels this build contains (a folder holding compiled modules), worst first."""
    found = []
    for name in _isa.LEVELS:
        folder = os.path.join(_HERE, name)
        if os.path.isdir(folder) and any(f.endswith(_SUFFIXES) for f in os.listdir(folder)):
            found.append(name)
    return tuple(found)


def _runnable(built: tuple[str, ...]) -> tuple[str, ...]:
    flags = _isa.cpu_flags()
    return tuple(name for name in built if _isa.cpu_runs(name, flags))


def _choose(built: tuple[str, ...], runnable: tuple[str, ...]) -> str:
    asked = os.environ.get("NNKIT_ISA", "")
    if asked:
        if asked in runnable:
            return asked
        if asked not in _isa.LEVELS:
            why = f"expected one of {', '.join(_isa.X86_LEVELS)}"
        elif asked not in built:
            why = "this build does not contain it"
        else:
            why = "this CPU lacks its instructions"
        raise ImportError(f"NNKIT_ISA={asked!r}: {why}; the levels available here are "
                          f"{', '.join(runnable) or 'none'} (unset NNKIT_ISA to use the best)")
    if not runnable:
        raise ImportError(f"nnkit's kernels: no level this CPU can run is built "
                          f"(built: {', '.join(built) or 'none'} in {_HERE}); "
                          f"rebuild with `pip install .`")
    return runnable[-1]


_BUILT = _built_levels()
_SUPPORTED = _runnable(_BUILT)
_LEVEL = _choose(_BUILT, _SUPPORTED)
__path__ = [os.path.join(_HERE, _LEVEL)]


def level() -> str:
    """The instruction-set level whose kernels this process runs."""
    return _LEVEL


def supported_levels() -> tuple[str, ...]:
    """The levels this build contains and this CPU can run, worst first."""
    return _SUPPORTED
