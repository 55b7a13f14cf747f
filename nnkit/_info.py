"""What this installed build runs on: `nnkit info`'s facts, as one dict.

Version, Python, the kernels' instruction-set level (chosen and supported),
the OpenMP threads a kernel gets (nnkit/_threads.py's policy) and the BLAS
SciPy loaded (its build configuration and the library mapped in this process).
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys


def _mapped(word: str) -> list[str]:
    """Shared libraries mapped into this process whose file name contains `word`
    (Linux's /proc/self/maps; empty elsewhere)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if line.split()[-1].startswith("/")}
    except OSError:
        return []
    return sorted(p for p in paths if word in os.path.basename(p).lower())


def _openblas_core(path: str) -> str | None:
    """The CPU core OpenBLAS chose at run time (its DYNAMIC_ARCH dispatch), or None."""
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    for prefix in ("scipy_openblas_", "openblas_"):
        fn = getattr(lib, prefix + "get_corename", None)
        if fn is not None:
            fn.restype = ctypes.c_char_p
            return fn().decode()
    return None


def _blas() -> dict:
    import scipy
    import scipy.linalg  # noqa: F401  (loads the BLAS, so /proc/self/maps shows it)
    try:
        conf = scipy.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (KeyError, TypeError, ValueError):
        conf = {}
    # SciPy's own copy first (scipy.libs); NumPy loads another one of its own
    libs = sorted(_mapped("openblas"), key=lambda p: "scipy.libs" not in p)
    return {"name": conf.get("name"), "version": conf.get("version"),
            "configuration": conf.get("openblas configuration"),
            "library": libs[0] if libs else None,
            "core": _openblas_core(libs[0]) if libs else None,
            "scipy": scipy.__version__}


def build_info() -> dict:
    """The facts `nnkit info` prints (and `nnkit info --json` writes)."""
    from . import __version__, _kernels
    from ._kernels import dense  # noqa: F401  (loads the kernels and libgomp)
    from ._threads import kernel_threads
    gomp = _mapped("gomp")
    return {
        "nnkit": __version__,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "executable": sys.executable,
        "platform": f"{sys.platform} {platform.machine()}",
        "isa": {"level": _kernels.level(), "supported": list(_kernels.supported_levels()),
                "NNKIT_ISA": os.environ.get("NNKIT_ISA") or None,
                "kernels": os.path.dirname(dense.__file__)},
        "debug_build": bool(dense.DEBUG_BUILD),
        "openmp": {"threads": kernel_threads(), "cores": os.cpu_count(),
                   "NNKIT_NUM_THREADS": os.environ.get("NNKIT_NUM_THREADS") or None,
                   "library": gomp[0] if gomp else None},
        "blas": _blas(),
    }


def format_info(info: dict) -> str:
    """`nnkit info`'s text: one fact a line."""
    isa, omp, blas = info["isa"], info["openmp"], info["blas"]
    forced = f" (NNKIT_ISA={isa['NNKIT_ISA']})" if isa["NNKIT_ISA"] else ""
    threads = (f"{omp['threads']} (NNKIT_NUM_THREADS={omp['NNKIT_NUM_THREADS']})"
               if omp["NNKIT_NUM_THREADS"] else f"{omp['threads']} (every core; passes beside BLAS use 1)")
    rows = [
        ("nnkit", info["nnkit"]),
        ("python", f"{info['python']} ({info['executable']})"),
        ("platform", info["platform"]),
        ("ISA level", isa["level"] + forced),
        ("ISA supported", ", ".join(isa["supported"])),
        ("kernels", isa["kernels"] + (" (bounds-checked debug build)" if info["debug_build"] else "")),
        ("OpenMP threads", threads if omp["library"] else "1 (built without OpenMP)"),
        ("OpenMP library", omp["library"] or "-"),
        ("BLAS", " ".join(str(x) for x in (blas["name"], blas["version"]) if x) or "unknown"),
        ("BLAS build", blas["configuration"] or "-"),
        ("BLAS core", blas["core"] or "-"),
        ("BLAS library", blas["library"] or "-"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
