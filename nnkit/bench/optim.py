"""An Adam step over a 10M-parameter model against the memory floor.

    nnkit bench optim

The floor: an Adam step must read θ, g, m, v and write θ, m, v, i.e.
7 · n · itemsize bytes, at the bandwidth measured in this run
(_timing.bandwidth, best call). Printed: each implementation's median time,
its best time, the floor, and floor / best (100 % = at the floor). The share
uses best times on both sides (the bandwidth too): on a shared 2-core
machine the median measures the neighbours as much as the code.

Implementations: nnkit.optim.Adam (one fused Cython pass per array, OpenMP),
the same update as NumPy ufuncs with out= (no allocation, ~13 passes), that
NumPy version in cache-sized chunks, torch.optim.Adam (foreach, the default,
and fused=True) when torch is importable.
"""
from __future__ import annotations

import numpy as np

from nnkit import optim

from ._timing import SETTINGS, Table, bandwidth, best_time, torch_module

# an MLP's parameters: 2048-2048-2048 plus a 1600 -> 1024 layer: 10,032,128 values
SHAPES = [(2048, 2048), (2048,), (2048, 2048), (2048,), (1024, 1600), (1024,)]
QUICK_SHAPES = [(8, 4), (4,)]
DTYPES = (np.float32, np.float64)
LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8


def numpy_adam(params, grads, ms, vs, tmps, t):
    """Adam with NumPy ufuncs, out= everywhere (no allocation)."""
    step_size = LR / (1 - B1 ** t)
    inv_bc2 = 1 / np.sqrt(1 - B2 ** t)
    for p, g, m, v, tmp in zip(params, grads, ms, vs, tmps):
        np.multiply(m, B1, out=m)
        np.multiply(g, 1 - B1, out=tmp)
        np.add(m, tmp, out=m)
        np.multiply(v, B2, out=v)
        np.multiply(g, g, out=tmp)
        np.multiply(tmp, 1 - B2, out=tmp)
        np.add(v, tmp, out=v)
        np.sqrt(v, out=tmp)
        np.multiply(tmp, inv_bc2, out=tmp)
        np.add(tmp, EPS, out=tmp)
        np.divide(m, tmp, out=tmp)
        np.multiply(tmp, -step_size, out=tmp)
        np.add(p, tmp, out=p)


def numpy_adam_chunked(params, grads, ms, vs, tmps, t, chunk=16384):
    """The same ufuncs over cache-sized slices: the temporaries stay in L2."""
    for p, g, m, v, tmp in zip(params, grads, ms, vs, tmps):
        p, g, m, v = p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1)
        for i in range(0, p.size, chunk):
            s = slice(i, i + chunk)
            numpy_adam([p[s]], [g[s]], [m[s]], [v[s]], [tmp.reshape(-1)[:p[s].size]], t)


def run() -> list[Table]:
    torch = torch_module()
    shapes = QUICK_SHAPES if SETTINGS.quick else SHAPES
    repeats = 15
    n = sum(int(np.prod(s)) for s in shapes)
    bw = bandwidth(best=True)
    t = Table("adam", f"Adam step, {n:,} parameters (floor = 7 x n x itemsize bytes / "
              f"{bw / 1e9:.1f} GB/s measured, best call)",
              [("implementation", "text"), ("dtype", "text"), ("median ms", "ms"),
               ("best ms", "ms"), ("floor ms", "ms"), ("best@floor", "share"),
               ("other/nk", "ratio")])
    for dt in DTYPES:
        rng = np.random.default_rng(0)
        params = [rng.standard_normal(s).astype(dt) for s in shapes]
        grads = [rng.standard_normal(s).astype(dt) for s in shapes]
        floor = 7 * n * np.dtype(dt).itemsize / bw

        opt = optim.Adam(list(zip(params, grads)), lr=LR, betas=(B1, B2), eps=EPS)
        t_nk = best_time(opt.step, repeats)

        ms = [np.zeros_like(p) for p in params]
        vs = [np.zeros_like(p) for p in params]
        tmps = [np.empty_like(p) for p in params]
        state = {"t": 0}

        def np_step(fn=numpy_adam):
            state["t"] += 1
            fn(params, grads, ms, vs, tmps, state["t"])
        results = [("nnkit Adam (Cython, 1 pass)", t_nk),
                   ("NumPy ufuncs, out=", best_time(np_step, repeats)),
                   ("NumPy ufuncs, out=, 16K chunks",
                    best_time(lambda: np_step(numpy_adam_chunked), repeats))]
        if torch is not None:
            for label, kw in (("torch Adam (foreach)", dict(foreach=True)),
                              ("torch Adam (fused)", dict(fused=True))):
                tps = [torch.from_numpy(p.copy()) for p in params]
                for tp, g in zip(tps, grads):
                    tp.grad = torch.from_numpy(g)
                try:
                    topt = torch.optim.Adam(tps, lr=LR, betas=(B1, B2), eps=EPS, **kw)
                    topt.step()
                except (RuntimeError, TypeError, ValueError) as exc:   # fused unsupported
                    t.notes.append(f"{label}: skipped ({exc})")
                    continue
                results.append((label, best_time(topt.step, repeats)))
        for label, (med, best) in results:
            t.add(label, np.dtype(dt).name, med, best, floor, floor / best, best / t_nk[1])
    return [t]
