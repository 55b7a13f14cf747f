"""Build the Cython kernels in pyx/ into nnkit._kernels.*.

Environment switches (read at build time):
  NNKIT_DEBUG_CYTHON=1  compile with boundscheck/wraparound/initializedcheck on
                        (the test suite is run against this build in CI too)
  NNKIT_NO_OPENMP=1     single-threaded build (no -fopenmp); kernels stay correct
  NNKIT_PORTABLE=1      no -march=native (a build to copy to other x86-64 machines)

Rebuilds are incremental: each build flavour (release or debug) keeps its
generated C in its own folder (build/cython-<flavour>/), so switching
flavours never reuses the other's C, and an unchanged .pyx is not cythonized
again. A compiled module is reused when it is newer than its sources and was
built with the same flavour and flags (build/flavour.txt records them).
Extensions compile in parallel, one job per core.
"""
import glob
import os
import platform
import runpy
import shutil
import sys

import scipy
from Cython import __version__ as _cython_version
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

# One .pyx per kernel; module name nnkit._kernels.<name>. The kernels are the ones
# the families name in nnkit/families.py (plain data, read before nnkit is built).
FAMILIES = runpy.run_path(os.path.join("nnkit", "families.py"))["KERNELS"]
# The hand-written C the kernels include (cdef extern from "nnkit_*.h").
INCLUDE_DIR = os.path.join("pyx", "include")

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
# AVX-512; gcc prefers 256 by default) double them again for the memory-bound
# passes. NNKIT_PORTABLE=1 builds for any x86-64.
portable = os.environ.get("NNKIT_PORTABLE", "") not in ("", "0")
if not portable and not debug and platform.machine() in ("x86_64", "AMD64") \
        and sys.platform.startswith("linux"):
    compile_args += ["-march=native", "-mprefer-vector-width=512"]
link_args = []
if openmp:
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")

_scipy_version = scipy.__version__

# What makes one build differ from another: a change here rebuilds every module.
flavour = "debug" if debug else "release"
stamp_text = "\n".join([flavour, " ".join(compile_args), " ".join(link_args),
                        os.environ.get("CFLAGS", ""), os.environ.get("LDFLAGS", ""),
                        sys.version, _cython_version, _scipy_version]) + "\n"
stamp = os.path.join("build", "flavour.txt")
os.makedirs("build", exist_ok=True)
if not os.path.exists(stamp) or open(stamp).read() != stamp_text:
    with open(stamp, "w") as f:      # a new mtime: every module is out of date
        f.write(stamp_text)

build_dir = os.path.join("build", "cython-" + flavour)


def _is_fresh(family: str) -> bool:
    """The compiled module in nnkit/_kernels/ is newer than everything it is built from.

    Decided here rather than by cythonize: pip's isolated build environment
    installs SciPy afresh every time, so its cython_blas.pxd always looks new
    to Cython's own dependency check (the SciPy version is in the stamp).
    """
    built = glob.glob(os.path.join("nnkit", "_kernels", family + ".*.so"))
    generated = os.path.join(build_dir, "pyx", family + ".c")
    if len(built) != 1 or not os.path.exists(generated):
        return False
    inputs = ([stamp, generated, os.path.join("pyx", family + ".pyx")] + glob.glob("pyx/*.pxd")
              + glob.glob(os.path.join(INCLUDE_DIR, "*.h")))
    return all(os.path.getmtime(p) <= os.path.getmtime(built[0]) for p in inputs)


families = [f for f in FAMILIES if os.path.exists(os.path.join("pyx", f + ".pyx"))]
FRESH = {f"nnkit._kernels.{f}" for f in families if _is_fresh(f)}


def _extension(family: str, source: str) -> Extension:
    return Extension(
        f"nnkit._kernels.{family}",
        [source],
        include_dirs=[INCLUDE_DIR],
        depends=sorted(glob.glob(os.path.join(INCLUDE_DIR, "*.h"))),
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        define_macros=[("NNKIT_DEBUG", "1" if debug else "0")],
    )


stale = [_extension(f, f"pyx/{f}.pyx") for f in families
         if f"nnkit._kernels.{f}" not in FRESH]
extensions = [_extension(f, os.path.join(build_dir, "pyx", f + ".c")) for f in families
              if f"nnkit._kernels.{f}" in FRESH]
if stale:
    extensions += cythonize(stale, include_path=["pyx"], compiler_directives=directives,
                            build_dir=build_dir, nthreads=os.cpu_count() or 1)


class IncrementalBuildExt(build_ext):
    """build_ext that compiles in parallel and reuses an up-to-date module.

    pip's editable install builds into a fresh temporary folder every time,
    so setuptools alone recompiles every module on every install. A module
    already in the source tree (nnkit/_kernels/) that _is_fresh is copied
    instead.
    """

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def build_extension(self, ext):
        if ext.name in FRESH and not self.force:
            target = self.get_ext_fullpath(ext.name)
            existing = os.path.join(*ext.name.split("."))
            existing += os.path.basename(target)[len(ext.name.split(".")[-1]):]
            if os.path.abspath(target) != os.path.abspath(existing):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(existing, target)
            return
        super().build_extension(ext)


setup(
    packages=find_packages(include=["nnkit", "nnkit.*"]),
    package_data={"nnkit.tui": ["*.tcss"]},
    cmdclass={"build_ext": IncrementalBuildExt},
    ext_modules=extensions,
)
