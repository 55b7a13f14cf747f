"""P3, P10: 2-D convolution and max / average / Lp pooling as (out, cache) /
grads pairs, plus (re-exported from nnkit.conv_shapes) the shape logic,
counting, `summary` and the ResNet bottleneck solver: `nk.conv.summary(...)`.

Layout: PyTorch's NCHW, the default of every function here and in
nnkit.conv_shapes. X (B, C_in, H, W), W (C_out, C_in, kh, kw),
b (C_out,) or None, Y (B, C_out, H', W'); pairs are (H-axis, W-axis).

layout="BWHC" takes P3's layout instead (conv2d_forward and the three
pooling forwards; each backward answers in its forward's layout): X
(B, W, H, C_in), W (C_out, C_in, k1, k2) with k1 along W, pairs (W-axis,
H-axis) as P3, and Y (B, W', H', C_out); conv2d_backward returns dX in that
layout and dW in (C_out, C_in, k1, k2). The cost: the kernels work in NCHW,
so X and Y (and, in backward, dY and dX) are each copied once through a
transpose (four extra passes over the activations; at (32, 32, 32, 3) → 16
channels that is about a fifth of the conv's forward + backward time).

padding="same" with an even kernel (d·(k − 1) odd) pads one more at the
end (right / bottom) than at the start, as PyTorch. The kernels pad both
ends equally, so the forward copies X with that one extra row / column of
zeros (np.pad) and runs the kernel on the copy; the backward crops dX back.

Algorithm (pyx/conv.pyx; pooling in pyx/pool.pyx): per sample, im2col
(K = C_in·kh·kw rows, H'W' columns) and one GEMM Y_n = W col + b; backward
recomputes col, forms dW += dY_n colᵀ and dcol = Wᵀ dY_n, and col2im. Where
the build has nnkit's tile kernel (pyx/include/nnkit_tile.h) and a team
splits the batch (`_tiled`), the products run on it a block of output
positions at a time, so no (K, H'W')
column matrix is written: the float32 forward packs each block straight
into the kernel's panels; the backward (both dtypes) takes blocks of up to
400 positions. Otherwise, and for the float64 forward (where dgemm is the
faster route), im2col then BLAS. Samples are split over the OpenMP team;
each thread has its own buffers and calls BLAS single-threaded (SciPy's
OpenBLAS is set to 1 thread for the call and restored after): OpenBLAS's own
threads wait on each other at every GEMM, worst when the other core is busy
(`nnkit bench conv` shows both ways).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _validate as v
from ._kernels import conv as _k
from ._kernels import pool as _kp
from ._threads import blas_controllable, kernel_threads, serial_blas
from .conv_shapes import (LAYOUTS, POOL_KINDS, Axis, BottleneckSolution, ConvShape, Count,  # noqa: F401
                          Summary, SummaryRow, axis_formula, basic_block_params,
                          bottleneck_params, conv2d_count, conv2d_output_shape, linear_count,
                          pool2d_count, pool2d_output_shape, receptive_field,
                          solve_bottleneck, summary)

_MAX_INT = 2**31 - 1


def _team(B: int) -> int:
    """Threads over the batch: all cores if the batch splits and BLAS can be
    held to one thread, else 1 (samples in order, BLAS threads itself)."""
    n = min(kernel_threads(), B)
    return n if n > 1 and blas_controllable() else 1


# Thread-local workspaces (the column buffers): a fresh 10–30 MB buffer per
# call costs its page faults every time.
_ws = threading.local()


def _workspace(name: str, shape: tuple, dtype) -> np.ndarray:
    size = int(np.prod(shape))
    bufs = getattr(_ws, "bufs", None)
    if bufs is None:
        bufs = _ws.bufs = {}
    key = (name, np.dtype(dtype).str)
    buf = bufs.get(key)
    if buf is None or buf.size < size:
        buf = bufs[key] = np.empty(size, dtype)
    return buf[:size].reshape(shape)


# ----------------------------------------------------------------- conv2d
@dataclass(frozen=True)
class Conv2dCache:
    """What `conv2d_backward` needs: the (padded) NCHW input, the weights and the
    geometry.

    Attributes
    ----------
    X : ndarray
        (B, C_in, H + eh, W + ew), the NCHW input the kernel read
    W : ndarray
        (C_out, C_in, kh, kw)
    b : ndarray | None
        (C_out,) or None
    stride : tuple
        (sh, sw)
    padding : tuple
        (ph, pw): what the kernel pads on both ends
    dilation : tuple
        (dh, dw)
    layout : str
        the caller's layout: "NCHW" or "BWHC"
    out_hw : tuple
        (H', W')
    extra : tuple
        (eh, ew): zeros appended to X's end ("same", even kernel)
    """
    X: np.ndarray          # (B, C_in, H + eh, W + ew), the NCHW input the kernel read
    W: np.ndarray          # (C_out, C_in, kh, kw)
    b: np.ndarray | None   # (C_out,) or None
    stride: tuple          # (sh, sw)
    padding: tuple         # (ph, pw): what the kernel pads on both ends
    dilation: tuple        # (dh, dw)
    layout: str            # the caller's layout: "NCHW" or "BWHC"
    out_hw: tuple          # (H', W')
    extra: tuple = (0, 0)  # (eh, ew): zeros appended to X's end ("same", even kernel)


class Conv2dGrads(NamedTuple):
    """The gradients of a 2-D convolution, returned by `conv2d_backward`.

    Attributes
    ----------
    dX : ndarray
        like X (in the caller's layout) = col2im(Wᵀ dY)
    dW : ndarray
        like W = Σ_n dY_n colᵀ
    db : ndarray
        (C_out,) = Σ over batch and positions of dY (also when b is None)
    """
    dX: np.ndarray   # like X (in the caller's layout)  = col2im(Wᵀ dY)
    dW: np.ndarray   # like W                           = Σ_n dY_n colᵀ
    db: np.ndarray   # (C_out,) = Σ over batch and positions of dY (also when b is None)


def _conv_inputs(X, W, b, stride, padding, dilation, layout):
    layout = v.choice("layout", layout, LAYOUTS)
    doc = "(B, C_in, H, W)" if layout == "NCHW" else "(B, W, H, C_in)"
    X = v.float_array("X", X, 4, doc)
    v.nonempty("X", X, doc)
    W = v.float_array("W", W, 4, "(C_out, C_in, kh, kw)" if layout == "NCHW"
                      else "(C_out, C_in, k1, k2)", dtype=X.dtype)
    v.nonempty("W", W, "(C_out, C_in, kh, kw)")
    C_in = X.shape[1] if layout == "NCHW" else X.shape[3]
    v.same_dim("W", W.shape[1], C_in, f"W.shape[1] (C_in, the channels of X {X.shape} "
               f"in {layout})")
    if b is not None:
        b = v.float_array("b", b, 1, "(C_out,)", dtype=X.dtype)
        v.same_dim("b", b.shape[0], W.shape[0], "b.shape[0] (C_out, the rows of W)")
    shape = conv2d_output_shape(X.shape, W.shape[0], W.shape[2:], stride, padding, dilation,
                                layout)
    a1, a2 = shape.axes
    if layout == "BWHC":      # pairs are (W-axis, H-axis): swap into the kernel's (H, W)
        a1, a2 = a2, a1
        X = np.ascontiguousarray(X.transpose(0, 3, 2, 1))
        W = np.ascontiguousarray(W.transpose(0, 1, 3, 2))
    K, L = W.shape[1] * a1.k * a2.k, a1.out * a2.out
    if K * L > _MAX_INT or W.shape[0] * K > _MAX_INT:
        raise ValueError(f"X: one sample's column matrix is {K}×{L} = {K * L} values, more "
                         f"than the {_MAX_INT} a 32-bit BLAS index reaches")
    extra = (a1.extra, a2.extra)
    if extra != (0, 0):       # uneven "same": the kernel pads p on both ends, X the rest
        X = np.pad(X, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))
    return (X, W, b, (a1.s, a2.s), (a1.p, a2.p), (a1.d, a2.d), layout, (a1.out, a2.out),
            extra)


def conv2d_forward(X, W, b=None, stride=1, padding=0, dilation=1, *, layout="NCHW",
                   out=None):
    """Y = W ⋆ X + b (cross-correlation, as every framework).

    X (B, C_in, H, W), W (C_out, C_in, kh, kw), b (C_out,) or None ->
    Y (B, C_out, H', W'), cache. stride, padding ("valid", "same", an int or
    a pair) and dilation as nk.conv2d_output_shape ("same" as PyTorch: an even
    kernel pads one more at the right / bottom). layout="BWHC": see the
    module docstring.
    """
    X, Wk, b, st, pd, dl, layout, (Ho, Wo), extra = _conv_inputs(X, W, b, stride, padding,
                                                                  dilation, layout)
    B, C, H, Wd = X.shape
    Co, K = Wk.shape[0], Wk.shape[1] * Wk.shape[2] * Wk.shape[3]
    user_shape = (B, Co, Ho, Wo) if layout == "NCHW" else (B, Wo, Ho, Co)
    Yout = v.out_array(out, user_shape, X.dtype)
    v.no_overlap(Yout, "out", X=X, W=Wk, b=b)
    Y = Yout if layout == "NCHW" else np.empty((B, Co, Ho, Wo), X.dtype)
    bias = b if b is not None else np.zeros(Co, X.dtype)
    T = _team(B)
    tiled = _tiled(T)
    size = _k.forward_col_size(K, Ho * Wo, X.dtype == np.float32, tiled)
    col = _workspace("col", (T * size,), X.dtype)
    with serial_blas(T > 1):
        _k.conv2d_forward(X, Wk.reshape(Co, K), bias, Wk.shape[2], Wk.shape[3], st[0], st[1],
                          pd[0], pd[1], dl[0], dl[1], Y.reshape(B, Co, Ho * Wo), col, size,
                          tiled, T)
    if layout == "BWHC":
        Yout[...] = Y.transpose(0, 3, 2, 1)
    return Yout, Conv2dCache(X, Wk, b, st, pd, dl, layout, (Ho, Wo), extra)


def _tiled(T: int) -> bool:
    """Whether the products run on nnkit's tile kernel (pyx/conv.pyx: the
    forward's implicit GEMM in float32, the backward's blocks in both
    dtypes) rather than im2col + BLAS: where the build has the kernel and no
    BLAS threads are given up (a team over the batch, or one core).
    Backward alone, blocks / BLAS, min of 15, at 32x3x32x32 -> 16,
    16x64x56x56 -> 64 and 64x32x16x16 -> 64: float32 0.78 / 1.23, 45.2 /
    64.8, 8.3 / 11.2 ms; float64 1.25 / 1.92, 99 / 122, 17.1 / 18.0 ms."""
    return _k.tile_width(True) > 0 and (T > 1 or kernel_threads() == 1)


def conv2d_backward(dY, cache: Conv2dCache, *, out=None) -> Conv2dGrads:
    """dX = col2im(Wᵀ dY), dW = Σ_n dY_n colᵀ, db = Σ dY.  `out` receives dX."""
    v.cache_of(cache, Conv2dCache, "conv2d_forward")
    X, Wk = cache.X, cache.W
    B, C, Hk, Wdk = X.shape                      # the kernel's (padded) input
    eh, ew = cache.extra
    H, Wd = Hk - eh, Wdk - ew                     # the caller's X
    Co, kh, kw = Wk.shape[0], Wk.shape[2], Wk.shape[3]
    Ho, Wo = cache.out_hw
    bwhc = cache.layout == "BWHC"
    dY = v.upstream("dY", dY, (B, Wo, Ho, Co) if bwhc else (B, Co, Ho, Wo), X.dtype)
    dXout = v.out_array(out, (B, Wd, H, C) if bwhc else (B, C, H, Wd), X.dtype)
    v.no_overlap(dXout, "out", dY=dY, X=X, W=Wk)
    if bwhc:
        dY = np.ascontiguousarray(dY.transpose(0, 3, 2, 1))
    dX = np.empty_like(X) if bwhc or eh or ew else dXout
    dW = np.empty_like(Wk)
    db = np.empty(Co, X.dtype)
    K, L, T = C * kh * kw, Ho * Wo, _team(B)
    tiled = _tiled(T)
    work = _workspace("work", (T, _k.backward_work_size(K, Co, L, X.dtype.itemsize, tiled)), X.dtype)
    dWacc = _workspace("dWacc", (T, Co * K), X.dtype)
    dbacc = _workspace("dbacc", (T, Co), np.float64)
    Wm = Wk.reshape(Co, K)
    (sh, sw), (ph, pw), (dh, dw) = cache.stride, cache.padding, cache.dilation
    with serial_blas(T > 1):
        _k.conv2d_backward(dY.reshape(B, Co, L), X, Wm, np.ascontiguousarray(Wm.T), kh, kw,
                           sh, sw, ph, pw, dh, dw, dX, dW.reshape(Co, K), db, work, dWacc,
                           dbacc, tiled, T)
    if eh or ew:              # the appended zeros are not the caller's: crop their gradient
        dX = dX[:, :, :H, :Wd]
    if bwhc:
        dXout[...] = dX.transpose(0, 3, 2, 1)
        dW = np.ascontiguousarray(dW.transpose(0, 1, 3, 2))
    elif dX is not dXout:
        dXout[...] = dX
    return Conv2dGrads(dXout, dW, db)


def _layer_padding(padding, kernel_size, stride, dilation):
    """A Conv2d layer's padding: an (H, W) pair ("valid" and "same" resolved),
    or "same" itself where it pads unevenly (an even kernel: one more at the
    right / bottom, as PyTorch), which no pair can say."""
    from .conv_shapes import _resolve_padding
    pads, extra = _resolve_padding(padding, kernel_size, stride, dilation, ("H", "W"))
    return "same" if extra != (0, 0) else tuple(pads)


# ---------------------------------------------------------------- pooling
_MODES = {"max": 0, "avg": 1, "lp": 2}


@dataclass(frozen=True)
class Pool2dCache:
    """What the pooling backward passes need: the kind, the input and output, the arg-
    max of each window (max) and the geometry.

    Attributes
    ----------
    kind : str
        "max", "avg" or "lp"
    X : ndarray
        (B, C, H, W) input, NCHW (the kernel's)
    Y : ndarray
        (B, C, H', W') output, NCHW
    argmax : ndarray | None
        max: flat index ih·W + iw in each plane (int32)
    kernel_size : tuple
        (kh, kw)
    stride : tuple
        (sh, sw)
    padding : tuple
        (ph, pw)
    p : float
        Lp's p (0 otherwise)
    layout : str
        the caller's layout: dY and dX are in it
    """
    kind: str                      # "max", "avg" or "lp"
    X: np.ndarray                  # (B, C, H, W) input, NCHW (the kernel's)
    Y: np.ndarray                  # (B, C, H', W') output, NCHW
    argmax: np.ndarray | None      # max: flat index ih·W + iw in each plane (int32)
    kernel_size: tuple             # (kh, kw)
    stride: tuple
    padding: tuple
    p: float                       # Lp's p (0 otherwise)
    layout: str = "NCHW"           # the caller's layout: dY and dX are in it


def _pool_forward(kind, X, kernel_size, stride, padding, p, out, layout):
    layout = v.choice("layout", layout, LAYOUTS)
    doc = "(B, C, H, W)" if layout == "NCHW" else "(B, W, H, C)"
    X = v.float_array("X", X, 4, doc)
    v.nonempty("X", X, doc)
    s = pool2d_output_shape(X.shape, kernel_size, stride, padding, layout, kind)
    a1, a2 = s.axes
    Yout = v.out_array(out, tuple(s), X.dtype)
    v.no_overlap(Yout, "out", X=X)
    if layout == "BWHC":      # pairs are (W-axis, H-axis): swap into the kernel's (H, W)
        a1, a2 = a2, a1
        X = np.ascontiguousarray(X.transpose(0, 3, 2, 1))
    B, C, H, W = X.shape
    Y = Yout if layout == "NCHW" else np.empty((B, C, a1.out, a2.out), X.dtype)
    arg = np.empty(Y.shape, np.int32) if kind == "max" else np.empty((1, 1, 1), np.int32)
    P = B * C
    _kp.pool2d_forward(X.reshape(P, H, W), _MODES[kind], p, a1.k, a2.k, a1.s, a2.s, a1.p,
                       a2.p, Y.reshape(P, a1.out, a2.out),
                       arg.reshape(P, a1.out, a2.out) if kind == "max" else arg,
                       kernel_threads())
    if layout == "BWHC":
        Yout[...] = Y.transpose(0, 3, 2, 1)
    return Yout, Pool2dCache(kind, X, Y, arg if kind == "max" else None, (a1.k, a2.k),
                             (a1.s, a2.s), (a1.p, a2.p), p, layout)


def maxpool2d_forward(X, kernel_size, stride=None, padding=0, *, layout="NCHW", out=None):
    """y = max over each window (padding never wins). X (B, C, H, W).

    The cache keeps the arg-max of every window (flat index ih·W + iw in its
    plane); ties go to the first element in row-major window order, as
    PyTorch; a NaN in a window is the maximum. stride defaults to kernel_size;
    padding ≤ kernel_size/2. layout="BWHC": X (B, W, H, C), pairs (W, H), as
    P3 (a transposed copy in and out).
    """
    return _pool_forward("max", X, kernel_size, stride, padding, 0.0, out, layout)


def avgpool2d_forward(X, kernel_size, stride=None, padding=0, *, layout="NCHW", out=None):
    """y = Σ window / (kh·kw); padding counts as zeros (PyTorch's default
    count_include_pad=True). layout as maxpool2d_forward."""
    return _pool_forward("avg", X, kernel_size, stride, padding, 0.0, out, layout)


def lppool2d_forward(X, p, kernel_size, stride=None, *, layout="NCHW", out=None):
    """y = (Σ_window |x|^p)^(1/p), no padding. Equals PyTorch's lp_pool2d for
    x ≥ 0 or even p (PyTorch sums x^p, signed, for odd p). layout as
    maxpool2d_forward."""
    return _pool_forward("lp", X, kernel_size, stride, 0, v.lp_norm(p), out, layout)


def _pool_backward(kind, dY, cache, out):
    v.cache_of(cache, Pool2dCache, f"{kind}pool2d_forward")
    if cache.kind != kind:
        raise TypeError(f"cache: expected the cache of {kind}pool2d_forward, got the cache "
                        f"of {cache.kind}pool2d_forward")
    X, Y = cache.X, cache.Y
    bwhc = cache.layout == "BWHC"
    user = (lambda shape: (shape[0], shape[3], shape[2], shape[1])) if bwhc else tuple
    dY = v.upstream("dY", dY, user(Y.shape), X.dtype)
    dXout = v.out_array(out, user(X.shape), X.dtype)
    v.no_overlap(dXout, "out", dY=dY, X=X)
    if bwhc:
        dY = np.ascontiguousarray(dY.transpose(0, 3, 2, 1))
    dX = np.empty_like(X) if bwhc else dXout
    B, C, H, W = X.shape
    P, (Ho, Wo) = B * C, Y.shape[2:]
    (kh, kw), (sh, sw), (ph, pw) = cache.kernel_size, cache.stride, cache.padding
    if kind == "max":
        _kp.maxpool2d_backward(dY.reshape(P, Ho, Wo), cache.argmax.reshape(P, Ho, Wo),
                               kh, kw, sh, sw, ph, pw, dX.reshape(P, H, W), kernel_threads())
    else:
        _kp.pool2d_backward(dY.reshape(P, Ho, Wo), X.reshape(P, H, W), Y.reshape(P, Ho, Wo),
                            _MODES[kind], cache.p, kh, kw, sh, sw, ph, pw,
                            dX.reshape(P, H, W), kernel_threads())
    if bwhc:
        dXout[...] = dX.transpose(0, 3, 2, 1)
    return dXout


def maxpool2d_backward(dY, cache: Pool2dCache, *, out=None) -> np.ndarray:
    """dX = dY routed to each window's arg-max (summed where windows overlap)."""
    return _pool_backward("max", dY, cache, out)


def avgpool2d_backward(dY, cache: Pool2dCache, *, out=None) -> np.ndarray:
    """dX: each window spreads dY/(kh·kw) evenly over its inputs."""
    return _pool_backward("avg", dY, cache, out)


def lppool2d_backward(dY, cache: Pool2dCache, *, out=None) -> np.ndarray:
    """dX_i = dY · sign(x_i)|x_i|^(p−1) / y^(p−1) per window (0 where y = 0)."""
    return _pool_backward("lp", dY, cache, out)
