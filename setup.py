"""Build the Cython kernels in pyx/ into nnkit._kernels.*.

Environment switches (read at build time):
  NNKIT_DEBUG_CYTHON=1  compile with boundscheck/wraparound/initializedcheck on
                        (the test suite is run against this build in CI too)
  NNKIT_NO_OPENMP=1     single-threaded build (no -fopenmp); kernels stay correct
  NNKIT_PORTABLE=1      no -march=native (a build to copy to other x86-64 machines)
"""
import os
import platform
import sys

from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

# One .pyx per kernel family; module name nnkit._kernels.<family>.
FAMILIES = ["dense", "batchnorm", "whitening", "rnn"]

debug = os.environ.get("NNKIT_DEBUG_CYTHON", "") not in ("", "0")
openmp = os.environ.get("NNKIT_NO_OPENMP", "") in ("", "0") and sys.platform != "darwin"

directives = {
    "language_level": 3,
    "boundscheck": debug,
    "wraparound": debug,
    "initializedcheck": debug,
    "cdivision": True,
    "embedsignature": True,
}

# -ffp-contract=off: the BN backward recomputes the forward's ReLU mask and must
# round exactly as the forward did (no FMA contraction in one and not the other)
# vect-max-version-for-alias-checks: the float64 reduction loops read and write
# several double* arrays; gcc's default budget of runtime alias checks (10) is
# too small and it leaves those loops scalar.
compile_args = (["-O0", "-g"] if debug else ["-O3"]) + [
    "-ffp-contract=off", "--param", "vect-max-version-for-alias-checks=40"]
# The kernels are compiled on the machine that runs them (pip builds from
# source), so target its instruction set: AVX2 doubles the lanes of the BN
# loops over the SSE2 baseline, and 512-bit vectors (where the CPU has
# AVX-512; gcc prefers 256 by default) took BN+ReLU fwd+bwd at 256x1024 float32
# from 0.37 to 0.21 ms here. NNKIT_PORTABLE=1 builds for any x86-64.
portable = os.environ.get("NNKIT_PORTABLE", "") not in ("", "0")
if not portable and not debug and platform.machine() in ("x86_64", "AMD64") \
        and sys.platform.startswith("linux"):
    compile_args += ["-march=native", "-mprefer-vector-width=512"]
link_args = []
if openmp:
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")

families = [f for f in FAMILIES if os.path.exists(os.path.join("pyx", f + ".pyx"))]
extensions = [
    Extension(
        f"nnkit._kernels.{family}",
        [f"pyx/{family}.pyx"],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        define_macros=[("NNKIT_DEBUG", "1" if debug else "0")],
    )
    for family in families
]

# The TUI lives in tui/ but installs as nnkit.tui (DESIGN.md: the default
# editable mode handles this mapping; editable_mode=compat/strict do not).
packages = find_packages(include=["nnkit", "nnkit.*"])
package_dir = {}
if os.path.isdir("tui"):
    packages += ["nnkit.tui"] + ["nnkit.tui." + p for p in find_packages("tui")]
    package_dir["nnkit.tui"] = "tui"

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={"nnkit.tui": ["*.tcss"]},
    ext_modules=cythonize(
        extensions,
        include_path=["pyx"],
        compiler_directives=directives,
        # debug and release builds must not reuse each other's generated C
        force=True,
    ),
)
