"""Build the Cython kernels in pyx/ into nnkit._kernels.*.

Each kernel is cythonized once and its C compiled once per instruction-set
level (nnkit/_isa.py) into nnkit/_kernels/<level>/<kernel>.*.so; at import
nnkit._kernels loads the best level the CPU runs (or NNKIT_ISA's). On x86-64
Linux the levels are baseline (x86-64-v2), avx2 (v3) and avx512 (v4); on any
other platform one level, generic (the compiler's default target).

Environment switches (read at build time):
  NNKIT_BUILD_LEVELS    the levels to build: "all" (the default), "best" (the
                        best level this build machine runs: a fast developer
                        rebuild, the debug and ASan builds), or a comma list
                        of level names; "native" is -march=native, for this
                        machine only. A build in place removes the levels it
                        did not build, so the tree holds one build.
  NNKIT_DEBUG_CYTHON=1  compile with boundscheck/wraparound/initializedcheck on
                        (the test suite is run against this build in CI too)
  NNKIT_NO_OPENMP=1     single-threaded build (no -fopenmp); kernels stay correct

Rebuilds are incremental: each build flavour (release or debug) keeps its
generated C in its own folder (build/cython-<flavour>/), so switching
flavours never reuses the other's C, and an unchanged .pyx is not cythonized
again. A compiled module is reused when it is newer than its sources and was
built with the same flavour and flags (build/flavour.txt records them).
Extensions compile in parallel, one job per core; `pip install -v` shows
each Cython run and each compiler call.
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
ISA = runpy.run_path(os.path.join("nnkit", "_isa.py"))
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

multi_level = platform.machine() in ("x86_64", "AMD64") and sys.platform.startswith("linux")


def _levels() -> list[str]:
    """The levels NNKIT_BUILD_LEVELS asks for (every level by default)."""
    if not multi_level:
        return ["generic"]
    asked = os.environ.get("NNKIT_BUILD_LEVELS", "all").strip() or "all"
    if asked == "all":
        return list(ISA["X86_LEVELS"])
    if asked == "best":
        flags = ISA["cpu_flags"]()
        runs = [lv for lv in ISA["X86_LEVELS"] if ISA["cpu_runs"](lv, flags)]
        return runs[-1:] or ["baseline"]
    names = [n.strip() for n in asked.split(",") if n.strip()]
    allowed = list(ISA["X86_LEVELS"]) + ["native"]
    bad = [n for n in names if n not in allowed]
    if bad:
        sys.exit(f"NNKIT_BUILD_LEVELS={asked!r}: expected 'all', 'best' or a comma list of "
                 f"{', '.join(allowed)}; got {bad[0]!r}")
    return names


LEVELS = _levels()
link_args = []
if openmp:
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")

_scipy_version = scipy.__version__

# What makes one build differ from another: a change here rebuilds every module.
flavour = "debug" if debug else "release"
stamp_text = "\n".join([flavour, " ".join(compile_args), " ".join(link_args),
                        repr(sorted(ISA["COMPILE_FLAGS"].items())),
                        os.environ.get("CFLAGS", ""), os.environ.get("LDFLAGS", ""),
                        sys.version, _cython_version, _scipy_version]) + "\n"
stamp = os.path.join("build", "flavour.txt")
os.makedirs("build", exist_ok=True)
if not os.path.exists(stamp) or open(stamp).read() != stamp_text:
    with open(stamp, "w") as f:      # a new mtime: every module is out of date
        f.write(stamp_text)

build_dir = os.path.join("build", "cython-" + flavour)




def _built(family: str, level: str) -> list[str]:
    return glob.glob(os.path.join("nnkit", "_kernels", level, family + ".*.so"))


def _generated(family: str) -> str:
    return os.path.join(build_dir, "pyx", family + ".c")


def _newer_than(target: str, inputs: list[str]) -> bool:
    return all(os.path.getmtime(p) <= os.path.getmtime(target) for p in inputs)


def _c_is_fresh(family: str) -> bool:
    """The generated C is newer than the .pyx, the .pxd files and the stamp.

    Decided here rather than by cythonize: pip's isolated build environment
    installs SciPy afresh every time, so its cython_blas.pxd always looks new
    to Cython's own dependency check (the SciPy version is in the stamp).
    """
    c = _generated(family)
    return os.path.exists(c) and _newer_than(
        c, [stamp, os.path.join("pyx", family + ".pyx")] + glob.glob("pyx/*.pxd"))


def _is_fresh(family: str, level: str) -> bool:
    """The level's compiled module in nnkit/_kernels/<level>/ is newer than
    everything it is built from (its C and the headers that C includes)."""
    built = _built(family, level)
    return (len(built) == 1 and _c_is_fresh(family)
            and _newer_than(built[0], [stamp, _generated(family)]
                            + glob.glob(os.path.join(INCLUDE_DIR, "*.h"))))


families = [f for f in FAMILIES if os.path.exists(os.path.join("pyx", f + ".pyx"))]
FRESH = {f"nnkit._kernels.{lv}.{f}" for f in families for lv in LEVELS if _is_fresh(f, lv)}

# Cythonize once per kernel, under its canonical name nnkit._kernels.<family>
# (the C every level compiles), only where the C is out of date.
stale_c = [Extension(f"nnkit._kernels.{f}", [f"pyx/{f}.pyx"]) for f in families
           if not _c_is_fresh(f)]
if stale_c:
    cythonize(stale_c, include_path=["pyx"], compiler_directives=directives,
              build_dir=build_dir, nthreads=os.cpu_count() or 1, force=True)


def _level_source(family: str, level: str) -> str:
    """build/cython-<flavour>/<level>/<family>.c, one line including the kernel's C.

    setuptools names an object file after its source, so the levels compiling
    one C file in parallel would write one .o; a source per level keeps them
    apart. Written only when missing (its mtime stays, the build stays incremental).
    """
    path = os.path.join(build_dir, level, family + ".c")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(f'#include "../pyx/{family}.c"\n')
    return path


def _extension(family: str, level: str) -> Extension:
    return Extension(
        f"nnkit._kernels.{level}.{family}",
        [_level_source(family, level)],
        include_dirs=[INCLUDE_DIR],
        depends=[_generated(family)] + sorted(glob.glob(os.path.join(INCLUDE_DIR, "*.h"))),
        extra_compile_args=compile_args + list(ISA["COMPILE_FLAGS"][level]),
        extra_link_args=link_args,
        define_macros=[("NNKIT_DEBUG", "1" if debug else "0")],
    )


extensions = [_extension(f, lv) for lv in LEVELS for f in families]
for _lv in LEVELS:       # an editable install copies each module into its level's folder
    os.makedirs(os.path.join("nnkit", "_kernels", _lv), exist_ok=True)


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

    def run(self):
        super().run()
        if self.inplace or getattr(self, "editable_mode", False):
            _remove_other_levels()


def _remove_other_levels():
    """In the source tree, the levels this build did not make (and the
    one-level layout before levels, nnkit/_kernels/<kernel>.*.so) are removed:
    the tree then holds one build, and NNKIT_ISA never loads a stale level."""
    root = os.path.join("nnkit", "_kernels")
    old = glob.glob(os.path.join(root, "*.so"))
    for lv in ISA["LEVELS"]:
        if lv not in LEVELS:
            old += glob.glob(os.path.join(root, lv, "*.so"))
    for path in old:
        os.remove(path)


setup(
    packages=find_packages(include=["nnkit", "nnkit.*"]),
    package_data={"nnkit.tui": ["*.tcss"]},
    cmdclass={"build_ext": IncrementalBuildExt},
    ext_modules=extensions,
)
