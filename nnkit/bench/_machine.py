"""Which machine and which source ran `nnkit bench`: the CPU's model, the CPU
flags that choose the kernels' code paths, and the nnkit commit, written into
--json so a generated page can say what it was measured on."""
from __future__ import annotations

import os
import subprocess

# The flags that decide which SIMD code runs: -march=native builds and
# OpenBLAS pick their kernels by these (AVX2 + FMA tiles, AVX-512 GEMMs).
RELEVANT_FLAGS = ("sse4_2", "avx", "fma", "avx2", "avx512f", "avx512bw", "avx512vl",
                  "avx512_vnni", "avx512_bf16", "amx_tile")


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:      # not Linux
        return ""


def cpu_model(cpuinfo: str | None = None) -> str | None:
    """The first 'model name' of /proc/cpuinfo (None where there is none)."""
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return None


def cpu_flags(cpuinfo: str | None = None) -> list[str] | None:
    """The RELEVANT_FLAGS the first CPU has, in that order (None where
    /proc/cpuinfo has no flags line)."""
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            have = set(value.split())
            return [f for f in RELEVANT_FLAGS if f in have]
    return None


def source_commit() -> str | None:
    """The git commit of the nnkit source tree the package was imported from
    (an editable install of a checkout), or None (a wheel, no git)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else None
