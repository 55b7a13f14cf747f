"""An Adam step over a 10M-parameter model against the memory floor.

    python benchmarks/bench_optim.py [--quick]

The floor: an Adam step must read θ, g, m, v and write θ, m, v, i.e.
7 · n · itemsize bytes; at the bandwidth B measured in this run (the best of
a NumPy and a multi-threaded torch `c = a + b` over arrays as large as the
model, counted as 3 arrays of traffic like the floor counts its 7; both
counts leave out the write-allocate reads alike) the floor is
7·n·itemsize / B. Printed: each implementation's median time, its best time,
the floor, and best / floor (1.0 = at the floor; the target for nnkit is
<= 1.5). The ratio uses best times on both sides (the bandwidth too): on a
shared 2-core machine the median measures the neighbours as much as the code.

Implementations: nnkit.optim.Adam (one fused Cython pass per array, OpenMP),
the same update as NumPy ufuncs with out= (no allocation, ~13 passes), that
NumPy version in cache-sized chunks, torch.optim.Adam (foreach, the default,
and fused=True) when torch is installed.
"""
from __future__ import annotations

import argparse

import numpy as np

from nnkit import optim
from _timing import fmt_ms, median_time, print_table, torch


def timed(fn, repeats: int) -> tuple[float, float]:
    """(median, best) seconds of fn() over `repeats` calls after median_time's warm-up."""
    import time
    med = median_time(fn, repeats=repeats)
    best = min(_once(fn, time.perf_counter) for _ in range(repeats))
    return med, min(best, med)


def _once(fn, clock) -> float:
    t0 = clock()
    fn()
    return clock() - t0

# an MLP's parameters: 2048-2048-2048 plus a 1600 -> 1024 layer: 10,032,128 values
SHAPES = [(2048, 2048), (2048,), (2048, 2048), (2048,), (1024, 1600), (1024,)]
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


def bandwidth(n: int, dtype, repeats: int) -> tuple[float, float | None]:
    """Bytes/s of c = a + b (3 arrays of n values) with NumPy and with torch."""
    a, b, c = (np.full(n, 1.5, dtype) for _ in range(3))
    bytes_moved = 3 * n * np.dtype(dtype).itemsize
    t_np = timed(lambda: np.add(a, b, out=c), repeats)[1]
    bw_th = None
    if torch is not None:
        ta, tb, tc = (torch.from_numpy(x) for x in (a, b, c))
        bw_th = bytes_moved / timed(lambda: torch.add(ta, tb, out=tc), repeats)[1]
    return bytes_moved / t_np, bw_th


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args()
    repeats = 5 if args.quick else 15
    n = sum(int(np.prod(s)) for s in SHAPES)
    for dt in (np.float32, np.float64):
        rng = np.random.default_rng(0)
        params = [rng.standard_normal(s).astype(dt) for s in SHAPES]
        grads = [rng.standard_normal(s).astype(dt) for s in SHAPES]
        bw_np, bw_th = bandwidth(n, dt, repeats)
        bw = max(bw_np, bw_th or 0.0)
        floor = 7 * n * np.dtype(dt).itemsize / bw

        opt = optim.Adam(list(zip(params, grads)), lr=LR, betas=(B1, B2), eps=EPS)
        t_nk = timed(opt.step, repeats)

        ms = [np.zeros_like(p) for p in params]
        vs = [np.zeros_like(p) for p in params]
        tmps = [np.empty_like(p) for p in params]
        state = {"t": 0}

        def np_step(fn=numpy_adam):
            state["t"] += 1
            fn(params, grads, ms, vs, tmps, state["t"])
        t_np = timed(np_step, repeats)
        t_npc = timed(lambda: np_step(numpy_adam_chunked), repeats)

        rows_th = []
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
                    print(f"{label}: skipped ({exc})")
                    continue
                rows_th.append((label, timed(topt.step, repeats)))

        rows = [[label, fmt_ms(t[0]), fmt_ms(t[1]), fmt_ms(floor), f"{t[1] / floor:5.2f}",
                 f"{t[1] / t_nk[1]:5.2f}x"]
                for label, t in [("nnkit Adam (Cython, 1 pass)", t_nk),
                                 ("NumPy ufuncs, out=", t_np),
                                 ("NumPy ufuncs, out=, 16K chunks", t_npc)] + rows_th]
        print_table(
            f"Adam step, {n:,} parameters, {np.dtype(dt).name}: floor = 7 x {n:,} x "
            f"{np.dtype(dt).itemsize} B / {bw / 1e9:.1f} GB/s = {floor * 1e3:.2f} ms "
            f"(bandwidth of c = a + b: NumPy {bw_np / 1e9:.1f} GB/s, torch "
            f"{'n/a' if bw_th is None else f'{bw_th / 1e9:.1f} GB/s'})",
            ["implementation", "median ms", "best ms", "floor ms", "best/floor",
             "best vs nnkit"], rows)


if __name__ == "__main__":
    main()
