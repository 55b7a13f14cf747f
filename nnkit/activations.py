"""Activations and regression/binary losses: tanh, sigmoid, leaky ReLU, GELU;
mean squared error and binary cross-entropy on logits.

Each function validates, allocates, then runs one kernel of
nnkit._kernels.activations (pyx/activations.pyx): one pass over memory
forward and one backward, where NumPy's versions make several passes with
temporaries (GELU: five to nine forward, about ten backward). Same contract as
every family:

  tanh_forward(X) -> (H, TanhCache)           tanh_backward(dH, cache) -> dX = dH (1 − H²)
  sigmoid_forward(X) -> (S, SigmoidCache)     sigmoid_backward(dS, cache) -> dX = dS S (1 − S)
  leaky_relu_forward(X, negative_slope=0.01)  dX = dH (1 if X > 0 else slope)
  gelu_forward(X, approximate="none"|"tanh")  torch.nn.functional.gelu, both forms
  mse_loss(pred, target) -> (L, MSECache)     L = mean((pred − target)²)
  mse_loss_backward(dloss, cache) -> dpred = dloss · 2 (pred − target) / n
  bcewithlogits_loss(logits, target) -> (L, BCEWithLogitsCache)
      L = mean(max(x, 0) − x t + log(1 + e^{−|x|}))   (stable for any x: no exp overflows)
  bcewithlogits_loss_backward(dloss, cache) -> dlogits = dloss · (σ(x) − t) / n

Losses are means over every element (torch's reduction="mean") and return a
Python float, as softmax_cross_entropy: summed in double for float32 input
too, in fixed blocks, so the loss is the same for any thread count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from . import _validate as v
from ._kernels import activations as _k
from ._threads import kernel_threads

__all__ = ["TanhCache", "SigmoidCache", "LeakyReLUCache", "GELUCache", "MSECache",
           "BCEWithLogitsCache", "tanh_forward", "tanh_backward", "sigmoid_forward",
           "sigmoid_backward", "leaky_relu_forward", "leaky_relu_backward", "gelu_forward",
           "gelu_backward", "mse_loss", "mse_loss_backward", "bcewithlogits_loss",
           "bcewithlogits_loss_backward"]

@dataclass(frozen=True)
class TanhCache:
    """What `tanh_backward` needs: the forward's output, whose derivative is 1 − H².

    Attributes
    ----------
    H : ndarray
        (any shape, X's) tanh(X), the array `tanh_forward` returned (not a copy)
    """
    H: np.ndarray           # tanh(X)


@dataclass(frozen=True)
class SigmoidCache:
    """What `sigmoid_backward` needs: the forward's output, whose derivative is S (1 − S).

    Attributes
    ----------
    S : ndarray
        (any shape, X's) σ(X), the array `sigmoid_forward` returned (not a copy)
    """
    S: np.ndarray           # σ(X)


@dataclass(frozen=True)
class LeakyReLUCache:
    """What `leaky_relu_backward` needs: the input and the slope (the mask X > 0
    is the read-only property `mask`, computed when read).

    Attributes
    ----------
    X : ndarray
        (any shape) the input (read, never copied)
    negative_slope : float
        the slope where X ≤ 0
    """
    X: np.ndarray
    negative_slope: float

    @property
    def mask(self) -> np.ndarray:
        """X > 0: where the slope is 1."""
        return self.X > 0


@dataclass(frozen=True)
class GELUCache:
    """What `gelu_backward` needs: the input and which form of GELU ran.

    Attributes
    ----------
    X : ndarray
        (any shape) the input (read, never copied)
    approximate : str
        "none" (x Φ(x), exact) or "tanh" (the tanh approximation of Φ)
    """
    X: np.ndarray
    approximate: str


@dataclass(frozen=True)
class MSECache:
    """What `mse_loss_backward` needs: the residual (n, the number of elements
    the mean divides by, is the read-only property `n`).

    Attributes
    ----------
    diff : ndarray
        (any shape, pred's) pred − target
    """
    diff: np.ndarray        # pred − target

    @property
    def n(self) -> int:
        """The number of elements the loss averages over (pred.size)."""
        return self.diff.size


@dataclass(frozen=True)
class BCEWithLogitsCache:
    """What `bcewithlogits_loss_backward` needs: the logits and the targets
    (σ(logits) is the read-only property `probs`, computed when read).

    Attributes
    ----------
    logits : ndarray
        (any shape) x, the input (read, never copied)
    target : ndarray
        (the shape of logits) t, the targets (probabilities in [0, 1])
    """
    logits: np.ndarray
    target: np.ndarray

    @property
    def probs(self) -> np.ndarray:
        """σ(logits)."""
        return special.expit(self.logits)


def _input(name, X):
    return v.float_array(name, X, None, "(any shape)")


def _output(out, X):
    Y = v.out_array(out, X.shape, X.dtype)
    v.no_overlap(Y, "out", X=X)
    return Y


def _upstream(name, d, like):
    d = v.float_array(name, d, like.ndim, f"{like.shape} (the forward output's shape)",
                      dtype=like.dtype)
    if d.shape != like.shape:
        raise ValueError(f"{name}: expected shape {like.shape} (the forward output), "
                         f"got {d.shape}")
    return d


# ------------------------------------------------------------------ tanh
def tanh_forward(X, *, out=None):
    """H = tanh(X), elementwise, any shape."""
    X = _input("X", X)
    H = _output(out, X)
    _k.tanh_forward(X.reshape(-1), H.reshape(-1), kernel_threads())
    return H, TanhCache(H)


def tanh_backward(dH, cache: TanhCache, *, out=None) -> np.ndarray:
    """dX = dH ⊙ (1 − H²)."""
    v.cache_of(cache, TanhCache, "tanh_forward")
    H = cache.H
    dH = _upstream("dH", dH, H)
    dX = v.out_array(out, H.shape, H.dtype)
    v.no_overlap(dX, "out", dH=dH, H=H)
    _k.tanh_backward(dH.reshape(-1), H.reshape(-1), dX.reshape(-1), kernel_threads())
    return dX


# --------------------------------------------------------------- sigmoid
def sigmoid_forward(X, *, out=None):
    """S = 1/(1 + e^{−X}), elementwise (scipy.special.expit: no overflow)."""
    X = _input("X", X)
    S = _output(out, X)
    _k.sigmoid_forward(X.reshape(-1), S.reshape(-1), kernel_threads())
    return S, SigmoidCache(S)


def sigmoid_backward(dS, cache: SigmoidCache, *, out=None) -> np.ndarray:
    """dX = dS ⊙ S ⊙ (1 − S)."""
    v.cache_of(cache, SigmoidCache, "sigmoid_forward")
    S = cache.S
    dS = _upstream("dS", dS, S)
    dX = v.out_array(out, S.shape, S.dtype)
    v.no_overlap(dX, "out", dS=dS, S=S)
    _k.sigmoid_backward(dS.reshape(-1), S.reshape(-1), dX.reshape(-1), kernel_threads())
    return dX


# ------------------------------------------------------------ leaky ReLU
def _slope(negative_slope) -> float:
    return v.real_number("negative_slope", negative_slope, -math.inf)


def leaky_relu_forward(X, negative_slope=0.01, *, out=None):
    """H = X where X > 0, negative_slope·X elsewhere (torch.nn.LeakyReLU)."""
    X = _input("X", X)
    slope = _slope(negative_slope)
    H = _output(out, X)
    _k.leaky_relu_forward(X.reshape(-1), slope, H.reshape(-1), kernel_threads())
    return H, LeakyReLUCache(X, slope)


def leaky_relu_backward(dH, cache: LeakyReLUCache, *, out=None) -> np.ndarray:
    """dX = dH where X > 0, negative_slope·dH elsewhere."""
    v.cache_of(cache, LeakyReLUCache, "leaky_relu_forward")
    X = cache.X
    dH = _upstream("dH", dH, X)
    dX = v.out_array(out, X.shape, X.dtype)
    v.no_overlap(dX, "out", dH=dH, X=X)
    _k.leaky_relu_backward(dH.reshape(-1), X.reshape(-1), cache.negative_slope,
                           dX.reshape(-1), kernel_threads())
    return dX


# ------------------------------------------------------------------ GELU
def gelu_forward(X, approximate="none", *, out=None):
    """GELU(x) = x Φ(x) (approximate="none"), or with Φ ≈ ½(1 + tanh(√(2/π)(x + 0.044715x³)))
    (approximate="tanh"), as torch.nn.functional.gelu."""
    X = _input("X", X)
    approximate = v.choice("approximate", approximate, ("none", "tanh"))
    H = _output(out, X)
    _k.gelu_forward(X.reshape(-1), approximate == "tanh", H.reshape(-1), kernel_threads())
    return H, GELUCache(X, approximate)


def gelu_backward(dH, cache: GELUCache, *, out=None) -> np.ndarray:
    """dX = dH ⊙ (Φ(x) + x φ(x)) (exact), or the derivative of the tanh form:
    ½(1 + t) + ½ x (1 − t²) √(2/π) (1 + 3·0.044715 x²), t = tanh(√(2/π)(x + 0.044715x³))."""
    v.cache_of(cache, GELUCache, "gelu_forward")
    X = cache.X
    dH = _upstream("dH", dH, X)
    dX = v.out_array(out, X.shape, X.dtype)
    v.no_overlap(dX, "out", dH=dH, X=X)
    _k.gelu_backward(dH.reshape(-1), X.reshape(-1), cache.approximate == "tanh",
                     dX.reshape(-1), kernel_threads())
    return dX


# ---------------------------------------------------------------- losses
def _pair(pred_name, pred, target):
    P = v.float_array(pred_name, pred, None, "(any shape)")
    v.nonempty(pred_name, P, "(any shape)")
    T = v.float_array("target", target, P.ndim, f"{P.shape} (the shape of {pred_name})",
                      dtype=P.dtype, dtype_of=f"the dtype of {pred_name}")
    if T.shape != P.shape:
        raise ValueError(f"target: expected shape {P.shape} (the shape of {pred_name}), "
                         f"got {T.shape}")
    return P, T


def _dloss(dloss) -> float:
    return v.real_number("dloss", dloss, -math.inf)


def mse_loss(pred, target):
    """L = (1/n) Σ (pred − target)², n = pred.size (torch.nn.MSELoss, reduction="mean").
    Returns (loss as a Python float, cache)."""
    P, T = _pair("pred", pred, target)
    diff = np.empty_like(P)
    loss = _k.mse_forward(P.reshape(-1), T.reshape(-1), diff.reshape(-1), kernel_threads())
    return loss, MSECache(diff)


def mse_loss_backward(dloss=1.0, cache: MSECache | None = None, *, out=None) -> np.ndarray:
    """∂L/∂pred = dloss · 2 (pred − target) / n."""
    v.cache_of(cache, MSECache, "mse_loss")
    dloss = _dloss(dloss)
    diff = cache.diff
    dP = v.out_array(out, diff.shape, diff.dtype)
    v.no_overlap(dP, "out", diff=diff)
    _k.mse_backward(diff.reshape(-1), 2.0 * dloss / diff.size, dP.reshape(-1),
                    kernel_threads())
    return dP


def bcewithlogits_loss(logits, target):
    """L = (1/n) Σ [max(x, 0) − x t + log(1 + e^{−|x|})], x the logits, t in [0, 1]
    (torch.nn.BCEWithLogitsLoss, reduction="mean"; the stable form: e^{−|x|} ≤ 1).
    Returns (loss as a Python float, cache)."""
    X, T = _pair("logits", logits, target)
    loss = _k.bce_forward(X.reshape(-1), T.reshape(-1), kernel_threads())
    return loss, BCEWithLogitsCache(X, T)


def bcewithlogits_loss_backward(dloss=1.0, cache: BCEWithLogitsCache | None = None, *,
                                out=None) -> np.ndarray:
    """∂L/∂x = dloss · (σ(x) − t) / n."""
    v.cache_of(cache, BCEWithLogitsCache, "bcewithlogits_loss")
    dloss = _dloss(dloss)
    X, T = cache.logits, cache.target
    dX = v.out_array(out, X.shape, X.dtype)
    v.no_overlap(dX, "out", logits=X, target=T)
    _k.bce_backward(X.reshape(-1), T.reshape(-1), dloss / X.size, dX.reshape(-1),
                    kernel_threads())
    return dX
