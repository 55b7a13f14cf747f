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
    nnkit bench bn                   a short name: bn_affine (see ALIASES)
"""
from __future__ import annotations

import importlib
import os
import platform
import time

from . import _machine, _timing
from .. import _kernels, _malloc
from ..families import BENCH
from ._timing import SETTINGS, Table, median_tables

# the benchmark modules, nnkit/bench/<family>.py: the ones nnkit.families names
FAMILIES = BENCH
# Short names: what a table is called, or what one would type. A unique prefix
# of a family (bn, white, opt) needs no entry; `-` stands for `_`.
ALIASES = {"batchnorm": "bn_affine", "bn_relu": "bn_affine", "relu": "bn_affine",
           "affine": "bn_affine", "dense": "bn_affine", "zca": "whitening",
           "conv2d": "conv", "pool": "conv", "maxpool2d": "conv", "layernorm": "norms",
           "adam": "optim", "optimizers": "optim"}


def resolve_family(name: str) -> str:
    """A family's name from itself, an alias (ALIASES) or a unique prefix: `bn` is
    bn_affine. Anything else is a ValueError listing the families."""
    if not isinstance(name, str):
        raise TypeError(f"family: expected one of {list(FAMILIES)}, got "
                        f"{type(name).__name__} {name!r}")
    key = name.strip().lower().replace("-", "_")
    if key in FAMILIES:
        return key
    if key in ALIASES:
        return ALIASES[key]
    hits = [f for f in FAMILIES if key and f.startswith(key)]
    if len(hits) == 1:
        return hits[0]
    raise ValueError(f"expected one of {list(FAMILIES)} or a short name "
                     f"({', '.join(sorted(ALIASES))}, or a unique prefix), got {name!r}"
                     + (f" (a prefix of {hits})" if hits else ""))


def run_family(name: str) -> list[Table]:
    try:
        name = resolve_family(name)
    except ValueError as exc:
        raise ValueError(f"family: {exc}") from None
    return importlib.import_module(f"{__name__}.{name}").run()


def run(families=None, *, quick: bool = False, torch: bool = True, runs: int = 1,
        progress=None) -> dict:
    """Run the benchmarks; {"machine": ..., "families": {name: [Table]}}.

    runs > 1: every family `runs` times, each cell the median over the runs.
    """
    if isinstance(families, str):       # run("bn"), not the letters b and n
        families = [families]
    families = list(dict.fromkeys(resolve_family(f) for f in (families or FAMILIES)))
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
    return dict(date=time.strftime("%Y-%m-%d %H:%M"),
                date_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                platform=platform.platform(),
                processor=platform.processor() or platform.machine(),
                cpu_model=_machine.cpu_model(), cpu_flags=_machine.cpu_flags(),
                commit=_machine.source_commit(), isa_level=_kernels.level(),
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
