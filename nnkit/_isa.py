"""The x86-64 instruction-set levels the kernels are built for, and which of
them this CPU can run.

The build (setup.py) compiles every kernel once per level into
nnkit/_kernels/<level>/; nnkit._kernels loads the best one the CPU runs, or
the one NNKIT_ISA names. Plain Python, importing nothing from nnkit, so
setup.py can read LEVELS with runpy as it reads nnkit/families.py.

  baseline  x86-64-v2: SSE4.2, POPCNT (every x86-64 CPU since about 2009)
  avx2      x86-64-v3: AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE
  avx512    x86-64-v4: AVX-512 F/BW/CD/DQ/VL, 512-bit vectors preferred
  native    opt-in developer build (NNKIT_BUILD_LEVELS=native): -march=native,
            for the build machine only; assumed runnable where it was built
  generic   the compiler's default target: the one level of a build for a
            platform other than x86-64 Linux (aarch64, macOS, Windows)
"""
from __future__ import annotations

# worst first: the order supported_levels() reports and the best is the last
LEVELS = ("baseline", "avx2", "avx512", "native", "generic")

# The levels a user may force with NNKIT_ISA (the ones a CPU check decides).
X86_LEVELS = ("baseline", "avx2", "avx512")

# gcc flags per level; -mprefer-vector-width=512 because gcc prefers 256-bit
# vectors even where AVX-512 exists, and the memory-bound passes gain from 512.
COMPILE_FLAGS = {
    "baseline": ("-march=x86-64-v2",),
    "avx2": ("-march=x86-64-v3",),
    "avx512": ("-march=x86-64-v4", "-mprefer-vector-width=512"),
    "native": ("-march=native", "-mprefer-vector-width=512"),
    "generic": (),
}

# The /proc/cpuinfo flags each level needs: the x86-64 psABI's level
# definitions (LZCNT is "abm", SSE3 "pni"; Linux drops avx*/avx512* from the
# list when the OS does not save their registers, so the list is what may run).
_V2 = ("cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3")
_V3 = _V2 + ("avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave")
_V4 = _V3 + ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")
REQUIRED_FLAGS = {"baseline": _V2, "avx2": _V3, "avx512": _V4}


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (or the given text); empty
    where there is no such file (not Linux)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def cpu_runs(level: str, flags: frozenset[str]) -> bool:
    """Whether a CPU with these flags can run the kernels built for `level`."""
    if level in REQUIRED_FLAGS:
        return set(REQUIRED_FLAGS[level]) <= flags
    return level in ("native", "generic")
