"""Optimizers (P5) and learning-rate schedules.

An optimizer takes anything with `params` and `grads` dicts of the same keys
(every layer, `Sequential`) or a list of (param, grad) array pairs, and
`step()` updates every parameter in place (float32 or float64) from the
gradient in its grad array. The arrays are held, not copied: keep filling the
same grad arrays (layers do). Layers *add* into their gradients on each
backward (PyTorch's accumulation), so a training loop calls `zero_grad()`
before each backward, as in PyTorch. `opt.state[name]` holds each
parameter's state arrays (velocity, moments) with the parameter's shape, and
`opt.t` the number of steps taken.

    opt = nk.optim.Adam(model, lr=1e-3)
    opt.zero_grad(); loss = ...; model.backward(dlogits); opt.step()

Each step is one fused pass over the parameter, its gradient and its state
(Cython kernels in pyx/optim.pyx, both dtypes, arithmetic in the parameter's
dtype as torch's): an Adam step reads θ, g, m, v and writes θ, m, v once,
the memory floor. The same
update as NumPy ufuncs with out= makes about ten passes; see
`nnkit bench optim` for both against the floor and torch.optim.

The updates (g' = g + weight_decay·θ, PyTorch's L2 form, where weight_decay
is offered; it is *not* AdamW's decoupled decay θ −= lr·λ·θ):

  SGD(lr, momentum=μ, nesterov)   torch.optim.SGD exactly: buf = μ·buf + g';
                                  θ −= lr·buf  (nesterov: θ −= lr·(g' + μ·buf))
  Momentum(lr=ε, momentum=α)      P5: v = α·v + ε·g';  θ −= v
  RunningAverage(lr=δ, beta=β)    P5: v = β·v + (1−β)·g';  θ −= δ·v
                                  (bias_correction=True: θ −= δ·v/(1 − β^t))
  Adam(lr, betas=(β1, β2), eps)   m = β1·m + (1−β1)·g';  v = β2·v + (1−β2)·g'²;
                                  θ −= lr·m̂/(√v̂ + eps), m̂ = m/(1−β1^t),
                                  v̂ = v/(1−β2^t): eps is added to √v̂, outside
                                  the root, as torch.optim.Adam does
  AdaGrad(lr, eps)                S += g'²;  θ −= lr·g'/(√S + eps)
                                  (torch.optim.Adagrad; lr_decay as torch's)

Relation to PyTorch's conventions (tests/training/test_optim_torch.py runs
each pair over 25 steps on the same model and data and compares the
trajectories):

  nnkit                                  torch.optim (constant lr)
  SGD(lr, momentum=μ, weight_decay=λ)    SGD(lr, momentum=μ, weight_decay=λ)
  Momentum(lr=ε, momentum=α)             SGD(lr=ε, momentum=α)
  RunningAverage(lr=δ, beta=β)           SGD(lr=δ·(1−β), momentum=β)
  Adam(lr, betas, eps, weight_decay)     Adam(lr, betas, eps, weight_decay)
  AdaGrad(lr, eps, weight_decay)         Adagrad(lr, eps=eps, weight_decay)

Why Momentum equals torch's SGD: torch keeps buf_t = μ·buf_{t−1} + g_t and
steps lr·buf_t; with v_t = lr·buf_t that is v_t = μ·v_{t−1} + lr·g_t, P5's
form with α = μ, ε = lr. RunningAverage: (1−β)·buf_t is the running average,
so δ·v_t = δ(1−β)·buf_t. Both hold for a constant lr only: under a schedule
P5's forms scale only the new gradient by the current lr, torch rescales the
whole velocity. (torch's `dampening=β` is not RunningAverage either: torch
skips the damping on the first step, buf_1 = g_1.)
"""
from __future__ import annotations

import math

import numpy as np

from . import _validate as v
from . import optim_functional as functional
from ._threads import kernel_threads

__all__ = ["Optimizer", "SGD", "Momentum", "RunningAverage", "Adam", "AdaGrad",
           "LRScheduler", "InverseSqrt", "StepLR", "functional"]


class Optimizer:
    """Base: the (name, θ, g) triples, `lr`, the step count `t`, per-parameter state."""

    def __init__(self, params, lr: float, weight_decay: float = 0.0):
        self._pairs = v.param_pairs(params)
        self.lr = lr
        self.weight_decay = v.real_number("weight_decay", weight_decay)
        self.t = 0
        self.state: dict[str, dict[str, np.ndarray]] = {name: {} for name, _, _ in self._pairs}

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value) -> None:
        self._lr = v.real_number("lr", value)

    @property
    def params(self) -> list[np.ndarray]:
        return [p for _, p, _ in self._pairs]

    def zero_grad(self) -> None:
        """Set every gradient this optimizer steps to 0 (backward adds into them)."""
        for _, _, g in self._pairs:
            g[...] = 0

    def step(self) -> None:
        """One update of every parameter, in place."""
        self.t += 1
        nt = kernel_threads()
        for name, p, g in self._pairs:
            flat_g = g.reshape(-1) if g.flags.c_contiguous else np.ascontiguousarray(g).ravel()
            self._update(p.reshape(-1), flat_g, self.state[name], p, nt)

    def _buffer(self, state: dict, key: str, p: np.ndarray, fill: float = 0.0) -> np.ndarray:
        buf = state.get(key)
        if buf is None:
            buf = state[key] = np.full_like(p, fill)
        return buf.reshape(-1)

    def _update(self, p, g, state, p_shaped, nthreads) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        n = sum(p.size for _, p, _ in self._pairs)
        return f"{type(self).__name__}(lr={self.lr:g}, {len(self._pairs)} arrays, {n} values, t={self.t})"


class SGD(Optimizer):
    """torch.optim.SGD: θ −= lr·g', or with momentum μ: buf = μ·buf + g', θ −= lr·buf
    (nesterov: θ −= lr·(g' + μ·buf)); g' = g + weight_decay·θ."""

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, lr, weight_decay)
        self.momentum = v.real_number("momentum", momentum)
        self.nesterov = v.flag("nesterov", nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: expected momentum > 0 with nesterov=True, got momentum 0")

    def _update(self, p, g, state, p_shaped, nt):
        buf = self._buffer(state, "buf", p_shaped) if self.momentum != 0 else None
        functional._sgd(p, g, buf, self.lr, self.momentum, self.weight_decay, self.nesterov, nt)


class Momentum(Optimizer):
    """P5's momentum: v = α·v + ε·g', θ −= v, as Momentum(model, lr=ε, momentum=α).

    Equals torch.optim.SGD(lr=ε, momentum=α) at a constant lr (module docstring).
    """

    def __init__(self, params, lr: float = 1e-2, momentum: float = 0.9,
                 weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        self.momentum = v.real_number("momentum", momentum)

    def _update(self, p, g, state, p_shaped, nt):
        functional._momentum(p, g, self._buffer(state, "v", p_shaped), self.lr, self.momentum,
                             self.weight_decay, nt)


class RunningAverage(Optimizer):
    """P5's running average: v = β·v + (1−β)·g', θ −= δ·v, as RunningAverage(model, lr=δ, beta=β).

    bias_correction=True steps δ·v/(1 − β^t) instead (v is biased toward 0 early:
    E[v_t] = (1 − β^t)·E[g]). Equals torch.optim.SGD(lr=δ(1−β), momentum=β) without
    bias correction at a constant lr.
    """

    def __init__(self, params, lr: float = 1e-2, beta: float = 0.9,
                 bias_correction: bool = False, weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        self.beta = v.real_number("beta", beta, 0.0, 1.0, high_open=True,
                                  why="β = 1 never takes in a gradient")
        self.bias_correction = v.flag("bias_correction", bias_correction)

    def _update(self, p, g, state, p_shaped, nt):
        functional._running_average(p, g, self._buffer(state, "v", p_shaped), self.t, self.lr,
                                    self.beta, self.bias_correction, self.weight_decay, nt)


class Adam(Optimizer):
    """torch.optim.Adam (amsgrad=False): bias-corrected moments,
    θ −= lr·m̂/(√v̂ + eps) with eps outside the root; L2 weight decay added to g
    (AdamW's decoupled decay is a different update, not offered)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        self.betas = v.betas_value(betas)
        self.eps = v.real_number("eps", eps)

    def _update(self, p, g, state, p_shaped, nt):
        b1, b2 = self.betas
        functional._adam(p, g, self._buffer(state, "m", p_shaped),
                         self._buffer(state, "v", p_shaped), self.t, self.lr, b1, b2, self.eps,
                         self.weight_decay, nt)


class AdaGrad(Optimizer):
    """torch.optim.Adagrad: S += g'², θ −= clr·g'/(√S + eps), clr = lr/(1 + (t−1)·lr_decay)."""

    def __init__(self, params, lr: float = 1e-2, eps: float = 1e-10, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, lr_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        self.eps = v.real_number("eps", eps)
        self.initial_accumulator_value = v.real_number("initial_accumulator_value",
                                                       initial_accumulator_value)
        self.lr_decay = v.real_number("lr_decay", lr_decay)

    def _update(self, p, g, state, p_shaped, nt):
        S = self._buffer(state, "sum", p_shaped, self.initial_accumulator_value)
        functional._adagrad(p, g, S, self.t, self.lr, self.eps, self.weight_decay,
                            self.lr_decay, nt)


# ------------------------------------------------------------- schedules
class LRScheduler:
    """Sets `optimizer.lr = base_lr · factor(k)` after k calls of `step()`, like
    torch.optim.lr_scheduler: call `scheduler.step()` after `optimizer.step()`
    (per step or per epoch, your choice of k's unit). base_lr is the
    optimizer's lr when the scheduler is made."""

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected an nnkit.optim optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0
        optimizer.lr = self.base_lr * self.factor(0)

    def factor(self, k: int) -> float:
        raise NotImplementedError

    def step(self) -> float:
        self.last_epoch += 1
        self.optimizer.lr = self.base_lr * self.factor(self.last_epoch)
        return self.optimizer.lr

    def get_last_lr(self) -> float:
        return self.optimizer.lr


class InverseSqrt(LRScheduler):
    """η_t = η0/√t for the t-th optimizer step (t = 1, 2, ...): factor(k) = 1/√(k+1).

    P5: Adam with β1 = 0, β2 → 1 under this schedule approaches AdaGrad with lr η0.
    torch: LambdaLR(opt, lambda k: 1/math.sqrt(k + 1)).
    """

    def factor(self, k: int) -> float:
        return 1.0 / math.sqrt(k + 1)


class StepLR(LRScheduler):
    """Step decay: lr = base_lr·gamma^⌊k/step_size⌋ (torch.optim.lr_scheduler.StepLR)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        self.step_size = v.positive_int("step_size", step_size)
        self.gamma = v.real_number("gamma", gamma)
        super().__init__(optimizer)

    def factor(self, k: int) -> float:
        return self.gamma ** (k // self.step_size)
