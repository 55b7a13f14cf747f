"""Side-by-side benchmarks installed with the package: `nnkit bench [family]`.

Each family module has `run() -> list[Table]`: nnkit, a plain NumPy version
and PyTorch CPU (when importable; its columns read n/a otherwise), measured
in the same run, ratios other/nnkit (> 1: nnkit is faster), and beside them
the row's floor (see _timing: bytes / measured bandwidth, or flops / measured
GEMM rate) and the share of it reached.

    nnkit bench                      every family
    nnkit bench whitening --runs 3   cell-wise median of three runs
    nnkit bench conv --json out.json
    nnkit bench rnn --quick          tiny shapes: checks the tables, not the speed
"""
from __future__ import annotations

import importlib
import os
import platform
import time

from . import _timing
from .. import _malloc
from ._timing import SETTINGS, Table, median_tables

FAMILIES = ("bn_affine", "whitening", "rnn", "conv", "norms", "optim")


def run_family(name: str) -> list[Table]:
    if name not in FAMILIES:
        raise ValueError(f"family: expected one of {list(FAMILIES)}, got {name!r}")
    return importlib.import_module(f"{__name__}.{name}").run()


def run(families=None, *, quick: bool = False, torch: bool = True, runs: int = 1,
        progress=None) -> dict:
    """Run the benchmarks; {"machine": ..., "families": {name: [Table]}}.

    runs > 1: every family `runs` times, each cell the median over the runs.
    """
    families = list(families or FAMILIES)
    SETTINGS.quick, SETTINGS.torch = quick, torch
    _timing._RATES.clear()
    out = {}
    for name in families:
        per_run = []
        for r in range(runs):
            if progress:
                progress(f"{name}: run {r + 1} of {runs}")
            _timing._RATES.clear()          # floors measured in the same run
            per_run.append(run_family(name))
        out[name] = median_tables(per_run) if runs > 1 else per_run[0]
    return dict(machine=machine(), families=out)


def machine() -> dict:
    import numpy as np
    import scipy

    from .._threads import kernel_threads
    from .. import __version__
    th = _timing.torch_module()
    try:
        load = list(os.getloadavg())
    except OSError:      # pragma: no cover
        load = None
    return dict(date=time.strftime("%Y-%m-%d %H:%M"), platform=platform.platform(),
                processor=platform.processor() or platform.machine(),
                cores=os.cpu_count(), kernel_threads=kernel_threads(),
                load_average=load, nnkit=__version__, numpy=np.__version__,
                scipy=scipy.__version__, torch=None if th is None else th.__version__,
                malloc=_malloc.STATE, quick=SETTINGS.quick)


# How the process's allocator runs (nnkit/_malloc.py): in this process and in
# PyTorch's child, which imports nnkit too, so both sides run alike.
MALLOC = {"set": "glibc keeps freed blocks (nnkit)",
          "user": "glibc as MALLOC_* in the environment says",
          "unavailable": "the C library's defaults"}


def header(m: dict) -> str:
    load = m["load_average"]
    return (f"nnkit {m['nnkit']}, numpy {m['numpy']}, scipy {m['scipy']}, torch "
            f"{m['torch'] or 'not used'}; {m['cores']} cores, {m['kernel_threads']} kernel "
            f"threads; load average {'n/a' if load is None else ' '.join(f'{x:.2f}' for x in load)}"
            f"; {MALLOC.get(m.get('malloc'), 'allocator unknown')}; {m['date']}" + ("; QUICK (tiny shapes: the numbers mean nothing)"
                                if m["quick"] else ""))


def to_dict(result: dict) -> dict:
    return dict(machine=result["machine"],
                families={k: [t.to_dict() for t in v] for k, v in result["families"].items()})
