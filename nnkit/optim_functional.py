"""The optimizer steps as functions (P5): ``nk.optim.functional``.

Each function updates a parameter and its state arrays in place from one
gradient, in one fused pass of the same Cython kernel the optimizer classes
run (pyx/optim.pyx): validate, then the kernel; nothing is allocated except a
contiguous copy of a non-contiguous gradient. The state arrays are the
caller's (zeros before the first step; AdaGrad's sum may start elsewhere);
`step` is t, the number of this update counting from 1. The classes in
nnkit.optim keep the state and the step count and call the same steps.

    from nnkit.optim import functional as F
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    for t in range(1, 101):
        F.adam(theta, grad_of(theta), m, v, t, lr=1e-3)

The updates, with g' = g + weight_decay·θ (PyTorch's L2 form):

    sgd              θ −= lr·g'; with momentum μ: buf = μ·buf + g', θ −= lr·buf
                     (nesterov: θ −= lr·(g' + μ·buf))        torch.optim.SGD
    momentum         v = α·v + ε·g', θ −= v                   P5, lr=ε, momentum=α
    running_average  v = β·v + (1−β)·g', θ −= δ·v            P5, lr=δ
                     (bias_correction: θ −= δ·v/(1 − β^t))
    adam             m = β1·m + (1−β1)·g', v = β2·v + (1−β2)·g'²,
                     θ −= lr·m̂/(√v̂ + eps), m̂ = m/(1−β1^t), v̂ = v/(1−β2^t)
    adagrad          S += g'², θ −= clr·g'/(√S + eps), clr = lr/(1 + (t−1)·lr_decay)
    adamw            θ *= 1 − lr·λ (decoupled decay), then adam with weight_decay 0
                     (torch.optim.AdamW)
    rmsprop          s = α·s + (1−α)·g'², (centered: ḡ = ḡ + (1−α)(g' − ḡ), s − ḡ²),
                     d = √(...) + eps; θ −= lr·g'/d, or with momentum μ:
                     buf = μ·buf + g'/d, θ −= lr·buf         (torch.optim.RMSprop)

adamw runs adam's kernel after one NumPy pass for the decay; rmsprop is NumPy
ufuncs with out= (no kernel: a Cython kernel needs a rebuild, left for later).

Arithmetic is in the parameter's dtype, as torch.optim's.
"""
from __future__ import annotations

import math

import numpy as np

from . import _validate as check
from ._kernels import optim as _k
from ._threads import kernel_threads

__all__ = ["sgd", "momentum", "running_average", "adam", "adagrad", "adamw", "rmsprop"]


# --------------------------------------------------------- the steps
# On flat, checked arrays (the classes' path: they check their arrays once,
# when made, and own their state); `nt` is the kernel's thread count.

def _sgd(p, g, buf, lr, mu, wd, nesterov, nt) -> None:
    if mu == 0:
        _k.sgd_step(p, g, lr, wd, nt)
    else:
        _k.momentum_step(p, g, buf, mu, 1.0, lr, wd, nesterov, nt)


def _momentum(p, g, vel, lr, mu, wd, nt) -> None:
    _k.momentum_step(p, g, vel, mu, lr, 1.0, wd, False, nt)


def _running_average(p, g, vel, t, lr, beta, bias_correction, wd, nt) -> None:
    s = lr / (1.0 - beta ** t) if bias_correction else lr
    _k.momentum_step(p, g, vel, beta, 1.0 - beta, s, wd, False, nt)


def _adam(p, g, m, vel, t, lr, b1, b2, eps, wd, nt) -> None:
    step_size = lr / (1.0 - b1 ** t)
    invbc2_sqrt = 1.0 / math.sqrt(1.0 - b2 ** t)
    _k.adam_step(p, g, m, vel, b1, b2, step_size, invbc2_sqrt, eps, wd, nt)


def _adamw(p, g, m, vel, t, lr, b1, b2, eps, wd, nt) -> None:
    if wd != 0:
        p *= p.dtype.type(1.0 - lr * wd)
    _adam(p, g, m, vel, t, lr, b1, b2, eps, 0.0, nt)


def _rmsprop(p, g, sq, gavg, buf, lr, alpha, eps, wd, mu, centered) -> None:
    """torch.optim.RMSprop's single-tensor step in its operation order (NumPy)."""
    f = p.dtype.type
    if wd != 0:
        g = g + f(wd) * p
    sq *= f(alpha)
    sq += f(1.0 - alpha) * (g * g)
    if centered:
        gavg += f(1.0 - alpha) * (g - gavg)          # lerp(ḡ, g, 1 − α), weight < 0.5
        avg = sq - gavg * gavg
        np.sqrt(avg, out=avg)
    else:
        avg = np.sqrt(sq)
    avg += f(eps)
    if mu > 0:
        buf *= f(mu)
        buf += g / avg
        p -= f(lr) * buf
    else:
        p -= f(lr) * (g / avg)


def _adagrad(p, g, S, t, lr, eps, wd, lr_decay, nt) -> None:
    clr = lr / (1.0 + (t - 1) * lr_decay)
    _k.adagrad_step(p, g, S, clr, eps, wd, nt)


# ------------------------------------------------- the public functions
def sgd(param, grad, buf=None, *, lr, momentum=0.0, weight_decay=0.0,
        nesterov=False) -> None:
    """torch.optim.SGD's step, in place: θ −= lr·g', or with momentum μ > 0
    buf = μ·buf + g', θ −= lr·buf (nesterov: θ −= lr·(g' + μ·buf)).

    buf (θ's shape and dtype, zeros before the first step) is needed when
    momentum > 0; with momentum 0 it is not read or written.
    """
    lr = check.real_number("lr", lr)
    mu = check.real_number("momentum", momentum)
    wd = check.real_number("weight_decay", weight_decay)
    nesterov = check.flag("nesterov", nesterov)
    if nesterov and mu == 0:
        raise ValueError("nesterov: expected momentum > 0 with nesterov=True, got momentum 0")
    if mu != 0 and buf is None:
        raise TypeError("buf: expected the momentum buffer (θ's shape, zeros before the "
                        "first step) when momentum > 0, got None")
    arrays = check.step_arrays(param, grad, buf=buf if mu != 0 else None)
    p, g = arrays[0], arrays[1]
    _sgd(p, g, arrays[2] if mu != 0 else None, lr, mu, wd, nesterov, kernel_threads())


def momentum(param, grad, v, *, lr, momentum=0.9, weight_decay=0.0) -> None:
    """P5's momentum step, in place: v = α·v + ε·g', θ −= v (lr=ε, momentum=α).

    v is the velocity (θ's shape and dtype, zeros before the first step).
    """
    lr = check.real_number("lr", lr)
    mu = check.real_number("momentum", momentum)
    wd = check.real_number("weight_decay", weight_decay)
    p, g, vel = check.step_arrays(param, grad, v=_required("v", v))
    _momentum(p, g, vel, lr, mu, wd, kernel_threads())


def running_average(param, grad, v, step=None, *, lr, beta=0.9, bias_correction=False,
                    weight_decay=0.0) -> None:
    """P5's running-average step, in place: v = β·v + (1−β)·g', θ −= δ·v (lr=δ);
    bias_correction=True steps δ·v/(1 − β^t), t = step (needed then)."""
    lr = check.real_number("lr", lr)
    beta = check.real_number("beta", beta, 0.0, 1.0, high_open=True,
                         why="β = 1 never takes in a gradient")
    bias_correction = check.flag("bias_correction", bias_correction)
    wd = check.real_number("weight_decay", weight_decay)
    if bias_correction:
        if step is None:
            raise TypeError("step: expected t, the number of this update (1 on the first), "
                            "with bias_correction=True, got None")
        step = check.step_number(step)
    elif step is not None:
        step = check.step_number(step)
    p, g, vel = check.step_arrays(param, grad, v=_required("v", v))
    _running_average(p, g, vel, step, lr, beta, bias_correction, wd, kernel_threads())


def adam(param, grad, m, v, step, *, lr, betas=(0.9, 0.999), eps=1e-8,
         weight_decay=0.0) -> None:
    """torch.optim.Adam's step (amsgrad=False), in place: the moments m, v and θ.

    step is t, the number of this update (1 on the first): it sets the bias
    corrections 1 − β1^t and 1 − β2^t. eps is added to √v̂, outside the root.
    """
    step = check.step_number(step)
    lr = check.real_number("lr", lr)
    b1, b2 = check.betas_value(betas)
    eps = check.real_number("eps", eps)
    wd = check.real_number("weight_decay", weight_decay)
    p, g, mm, vv = check.step_arrays(param, grad, m=_required("m", m), v=_required("v", v))
    _adam(p, g, mm, vv, step, lr, b1, b2, eps, wd, kernel_threads())


def adagrad(param, grad, sum, step, *, lr, eps=1e-10, weight_decay=0.0,  # noqa: A002
            lr_decay=0.0) -> None:
    """torch.optim.Adagrad's step, in place: S += g'², θ −= clr·g'/(√S + eps),
    clr = lr/(1 + (t − 1)·lr_decay) with t = step (1 on the first).

    sum is S (θ's shape and dtype; torch's initial_accumulator_value is what
    it holds before the first step).
    """
    step = check.step_number(step)
    lr = check.real_number("lr", lr)
    eps = check.real_number("eps", eps)
    wd = check.real_number("weight_decay", weight_decay)
    lr_decay = check.real_number("lr_decay", lr_decay)
    p, g, S = check.step_arrays(param, grad, sum=_required("sum", sum))
    _adagrad(p, g, S, step, lr, eps, wd, lr_decay, kernel_threads())


def adamw(param, grad, m, v, step, *, lr, betas=(0.9, 0.999), eps=1e-8,
          weight_decay=1e-2) -> None:
    """torch.optim.AdamW's step (amsgrad=False), in place: θ *= 1 − lr·weight_decay,
    then Adam's moments and update without weight decay in the gradient."""
    step = check.step_number(step)
    lr = check.real_number("lr", lr)
    b1, b2 = check.betas_value(betas)
    eps = check.real_number("eps", eps)
    wd = check.real_number("weight_decay", weight_decay)
    p, g, mm, vv = check.step_arrays(param, grad, m=_required("m", m), v=_required("v", v))
    _adamw(p, g, mm, vv, step, lr, b1, b2, eps, wd, kernel_threads())


def rmsprop(param, grad, square_avg, *, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
            momentum=0.0, centered=False, grad_avg=None, momentum_buffer=None) -> None:
    """torch.optim.RMSprop's step, in place: square_avg (and grad_avg when centered,
    momentum_buffer when momentum > 0, each zeros before the first step) and θ."""
    lr = check.real_number("lr", lr)
    alpha = check.real_number("alpha", alpha, 0.0, 1.0)
    eps = check.real_number("eps", eps)
    wd = check.real_number("weight_decay", weight_decay)
    mu = check.real_number("momentum", momentum)
    centered = check.flag("centered", centered)
    states = {"square_avg": _required("square_avg", square_avg)}
    if centered:
        states["grad_avg"] = _required("grad_avg", grad_avg)
    if mu > 0:
        states["momentum_buffer"] = _required("momentum_buffer", momentum_buffer)
    arrs = check.step_arrays(param, grad, **states)
    p, g, sq = arrs[:3]
    rest = iter(arrs[3:])
    gavg = next(rest) if centered else None
    buf = next(rest) if mu > 0 else None
    _rmsprop(p, g, sq, gavg, buf, lr, alpha, eps, wd, mu, centered)


def _required(name: str, state):
    if state is None:
        raise TypeError(f"{name}: expected a state array of the parameter's shape and "
                        f"dtype (zeros before the first step), got None")
    return state
