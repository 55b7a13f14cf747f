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

Also as torch.optim: AdamW (decoupled decay θ *= 1 − lr·λ, then Adam),
RMSprop(lr, alpha, eps, weight_decay, momentum, centered) (NumPy steps in
nk.optim.functional: no kernel yet); parameter groups, a list of dicts
{"params": model_or_pairs, "lr": ..., "weight_decay": ...} whose keys
override the constructor's for that group (`opt.param_groups`, each with its
"params" arrays and every hyperparameter; `opt.lr` reads group 0's lr and
sets every group's); `opt.state_dict()` / `opt.load_state_dict(sd)` (the
step count, every state array by parameter name, the groups'
hyperparameters); `clip_grad_norm_(params, max_norm, norm_type)`.

Schedules, torch.optim.lr_scheduler's classes, arguments and arithmetic
(the chainable forms, step for step; per group): StepLR, MultiStepLR,
ExponentialLR, CosineAnnealingLR, OneCycleLR (cycling momentum or β1 as
torch's), ReduceLROnPlateau (`step(metric)`), and InverseSqrt. Each has
`get_last_lr()` (a list, one lr per group, as torch's), `state_dict()` and
`load_state_dict()`.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter

import numpy as np

from . import _validate as v
from . import optim_functional as functional
from ._threads import kernel_threads

__all__ = ["Optimizer", "SGD", "Momentum", "RunningAverage", "Adam", "AdamW", "AdaGrad",
           "RMSprop", "LRScheduler", "InverseSqrt", "StepLR", "MultiStepLR", "ExponentialLR",
           "CosineAnnealingLR", "OneCycleLR", "ReduceLROnPlateau", "clip_grad_norm_",
           "functional"]


def _is_groups(params) -> bool:
    return isinstance(params, (list, tuple)) and len(params) > 0 and \
        all(isinstance(x, dict) for x in params)


class Optimizer:
    """Base: the parameter groups, the (name, θ, g) triples, the step count `t`,
    per-parameter state. A subclass lists its hyperparameters and their checks in
    `_checks` and reads them from the group in `_update`."""

    _checks: dict = {}

    def __init__(self, params, lr: float, weight_decay: float = 0.0, **hyper):
        defaults = {"lr": lr, "weight_decay": weight_decay, **hyper}
        self.defaults = {k: self._check(k, x, "") for k, x in defaults.items()}
        self.t = 0
        self._pairs: list[tuple[str, np.ndarray, np.ndarray]] = []
        self._group_pairs: list[list] = []
        self.param_groups: list[dict] = []
        sources = params if _is_groups(params) else [{"params": params}]
        seen: dict[int, str] = {}
        for k, src in enumerate(sources):
            where = f"params[{k}]" if _is_groups(params) else "params"
            if "params" not in src:
                raise ValueError(f"{where}: expected a dict with a 'params' key, got keys "
                                 f"{sorted(src)}")
            unknown = sorted(set(src) - set(self.defaults) - {"params"})
            if unknown:
                raise ValueError(f"{where}[{unknown[0]!r}]: not a hyperparameter of "
                                 f"{type(self).__name__} (expected one of "
                                 f"{sorted(self.defaults)})")
            pairs = v.param_pairs(src["params"])
            if len(sources) > 1:
                pairs = [(f"{k}.{n}", p, g) for n, p, g in pairs]
            for n, p, _ in pairs:
                if id(p) in seen:
                    raise ValueError(f"{where}: parameter {n!r} is already in another group "
                                     f"(as {seen[id(p)]!r}); each parameter in one group")
                seen[id(p)] = n
            group = dict(self.defaults)
            group.update({key: self._check(key, x, f"{where}[{key!r}]: ")
                          for key, x in src.items() if key != "params"})
            group["params"] = [p for _, p, _ in pairs]
            self.param_groups.append(group)
            self._group_pairs.append(pairs)
            self._pairs.extend(pairs)
        self.state: dict[str, dict[str, np.ndarray]] = {name: {} for name, _, _ in self._pairs}

    def _check(self, key, value, where):
        checks = {"lr": lambda x: v.real_number("lr", x),
                  "weight_decay": lambda x: v.real_number("weight_decay", x), **self._checks}
        try:
            return checks[key](value)
        except (TypeError, ValueError) as e:
            if where:
                raise type(e)(f"{where}{e}") from None
            raise

    def __getattr__(self, name):
        # the hyperparameters read as attributes (opt.momentum, opt.betas): group 0's
        if name not in ("defaults", "param_groups") and "param_groups" in self.__dict__ \
                and name in self.__dict__.get("defaults", {}):
            return self.param_groups[0][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        if name != "defaults" and name in self.__dict__.get("defaults", {}):
            value = self._check(name, value, "")
            for group in self.param_groups:
                group[name] = value
            return
        object.__setattr__(self, name, value)

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
        for group, pairs in zip(self.param_groups, self._group_pairs):
            for name, p, g in pairs:
                flat_g = g.reshape(-1) if g.flags.c_contiguous else np.ascontiguousarray(g).ravel()
                self._update(p.reshape(-1), flat_g, self.state[name], p, nt, group)

    def _buffer(self, state: dict, key: str, p: np.ndarray, fill: float = 0.0) -> np.ndarray:
        buf = state.get(key)
        if buf is None:
            buf = state[key] = np.full_like(p, fill)
        return buf.reshape(-1)

    def _update(self, p, g, state, p_shaped, nthreads, group) -> None:
        raise NotImplementedError

    # -- checkpoints
    def state_dict(self) -> dict:
        """{"t": steps taken, "state": {param name: {key: array copy}},
        "param_groups": [{hyperparameters..., "params": [param names]}]}: what
        load_state_dict reads back (nk.save writes it to a .npz)."""
        groups = []
        for group, pairs in zip(self.param_groups, self._group_pairs):
            g = {k: (list(x) if isinstance(x, tuple) else x)
                 for k, x in group.items() if k != "params"}
            g["params"] = [n for n, _, _ in pairs]
            groups.append(g)
        return {"t": self.t,
                "state": {n: {k: a.copy() for k, a in st.items()}
                          for n, st in self.state.items() if st},
                "param_groups": groups}

    def load_state_dict(self, state_dict) -> "Optimizer":
        """Restore what state_dict gave (also its form after nk.save/nk.load):
        the step count, every state array (shape-checked, copied) and the
        groups' hyperparameters. A missing or misshaped key is an error naming it."""
        from .checkpoint import flatten
        flat = flatten(state_dict, "")
        if "t" not in flat:
            raise KeyError("state_dict['t']: missing (the optimizer's step count)")
        t = flat["t"]
        t = int(t.item() if isinstance(t, np.ndarray) else t)
        names = {n: p for n, p, _ in self._pairs}
        new_state: dict[str, dict[str, np.ndarray]] = {n: {} for n in names}
        for key, val in flat.items():
            if not key.startswith("state."):
                continue
            name, _, buf = key[len("state."):].rpartition(".")
            if name not in names:
                raise KeyError(f"state_dict[{key!r}]: no parameter named {name!r} in this "
                               f"optimizer (it has {list(names)})")
            arr = np.asarray(val)
            if arr.shape != names[name].shape:
                raise ValueError(f"state_dict[{key!r}]: expected shape {names[name].shape} "
                                 f"(the parameter's), got {arr.shape}")
            new_state[name][buf] = arr.astype(names[name].dtype, copy=True)
        updates = []
        for k, group in enumerate(self.param_groups):
            upd = {}
            for hk in self.defaults:
                key = f"param_groups.{k}.{hk}"
                if key in flat:
                    x = flat[key]
                    x = x.tolist() if isinstance(x, np.ndarray) else x
                    upd[hk] = self._check(hk, tuple(x) if isinstance(x, list) else x, f"{key}: ")
                elif not any(f.startswith(key + ".") for f in flat):
                    raise KeyError(f"state_dict[{key!r}]: missing (group {k}'s {hk})")
                else:      # a tuple saved as a list and nested by nk.load: param_groups.k.betas.0
                    items = sorted((int(f.rsplit(".", 1)[1]), flat[f]) for f in flat
                                   if f.startswith(key + "."))
                    upd[hk] = self._check(hk, tuple(float(np.asarray(x)) for _, x in items),
                                          f"{key}: ")
            for extra in ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"):
                key = f"param_groups.{k}.{extra}"
                if key in flat:
                    upd[extra] = float(np.asarray(flat[key]))
            updates.append(upd)
        self.t = t
        self.state = new_state
        for group, upd in zip(self.param_groups, updates):
            group.update(upd)
        return self

    def __repr__(self) -> str:
        n = sum(p.size for _, p, _ in self._pairs)
        groups = f", {len(self.param_groups)} groups" if len(self.param_groups) > 1 else ""
        return (f"{type(self).__name__}(lr={self.lr:g}, {len(self._pairs)} arrays, {n} values"
                f"{groups}, t={self.t})")


def _betas(x):
    return v.betas_value(x)


class SGD(Optimizer):
    """torch.optim.SGD: θ −= lr·g', or with momentum μ: buf = μ·buf + g', θ −= lr·buf
    (nesterov: θ −= lr·(g' + μ·buf)); g' = g + weight_decay·θ."""

    _checks = {"momentum": lambda x: v.real_number("momentum", x),
               "nesterov": lambda x: v.flag("nesterov", x)}

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, lr, weight_decay, momentum=momentum, nesterov=nesterov)
        for k, group in enumerate(self.param_groups):
            if group["nesterov"] and group["momentum"] == 0:
                where = f"params[{k}]: " if len(self.param_groups) > 1 else ""
                raise ValueError(f"{where}nesterov: expected momentum > 0 with nesterov=True, "
                                 f"got momentum 0")

    def _update(self, p, g, state, p_shaped, nt, gr):
        mu = gr["momentum"]
        buf = self._buffer(state, "buf", p_shaped) if mu != 0 else None
        functional._sgd(p, g, buf, gr["lr"], mu, gr["weight_decay"], gr["nesterov"], nt)


class Momentum(Optimizer):
    """P5's momentum: v = α·v + ε·g', θ −= v, as Momentum(model, lr=ε, momentum=α).

    Equals torch.optim.SGD(lr=ε, momentum=α) at a constant lr (module docstring).
    """

    _checks = {"momentum": lambda x: v.real_number("momentum", x)}

    def __init__(self, params, lr: float = 1e-2, momentum: float = 0.9,
                 weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay, momentum=momentum)

    def _update(self, p, g, state, p_shaped, nt, gr):
        functional._momentum(p, g, self._buffer(state, "v", p_shaped), gr["lr"], gr["momentum"],
                             gr["weight_decay"], nt)


class RunningAverage(Optimizer):
    """P5's running average: v = β·v + (1−β)·g', θ −= δ·v, as RunningAverage(model, lr=δ, beta=β).

    bias_correction=True steps δ·v/(1 − β^t) instead (v is biased toward 0 early:
    E[v_t] = (1 − β^t)·E[g]). Equals torch.optim.SGD(lr=δ(1−β), momentum=β) without
    bias correction at a constant lr.
    """

    _checks = {"beta": lambda x: v.real_number("beta", x, 0.0, 1.0, high_open=True,
                                               why="β = 1 never takes in a gradient"),
               "bias_correction": lambda x: v.flag("bias_correction", x)}

    def __init__(self, params, lr: float = 1e-2, beta: float = 0.9,
                 bias_correction: bool = False, weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay, beta=beta, bias_correction=bias_correction)

    def _update(self, p, g, state, p_shaped, nt, gr):
        functional._running_average(p, g, self._buffer(state, "v", p_shaped), self.t, gr["lr"],
                                    gr["beta"], gr["bias_correction"], gr["weight_decay"], nt)


class Adam(Optimizer):
    """torch.optim.Adam (amsgrad=False): bias-corrected moments,
    θ −= lr·m̂/(√v̂ + eps) with eps outside the root; L2 weight decay added to g
    (AdamW's decoupled decay: nk.optim.AdamW)."""

    _checks = {"betas": _betas, "eps": lambda x: v.real_number("eps", x)}
    _step = staticmethod(functional._adam)

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay, betas=betas, eps=eps)

    def _update(self, p, g, state, p_shaped, nt, gr):
        b1, b2 = gr["betas"]
        self._step(p, g, self._buffer(state, "m", p_shaped), self._buffer(state, "v", p_shaped),
                   self.t, gr["lr"], b1, b2, gr["eps"], gr["weight_decay"], nt)


class AdamW(Adam):
    """torch.optim.AdamW (amsgrad=False): θ *= 1 − lr·weight_decay (decoupled), then
    Adam's step without decay in the gradient; weight_decay defaults to 1e-2 as torch's."""

    _step = staticmethod(functional._adamw)

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


class AdaGrad(Optimizer):
    """torch.optim.Adagrad: S += g'², θ −= clr·g'/(√S + eps), clr = lr/(1 + (t−1)·lr_decay)."""

    _checks = {"eps": lambda x: v.real_number("eps", x),
               "initial_accumulator_value":
                   lambda x: v.real_number("initial_accumulator_value", x),
               "lr_decay": lambda x: v.real_number("lr_decay", x)}

    def __init__(self, params, lr: float = 1e-2, eps: float = 1e-10, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, lr_decay: float = 0.0):
        super().__init__(params, lr, weight_decay, eps=eps,
                         initial_accumulator_value=initial_accumulator_value, lr_decay=lr_decay)

    def _update(self, p, g, state, p_shaped, nt, gr):
        S = self._buffer(state, "sum", p_shaped, gr["initial_accumulator_value"])
        functional._adagrad(p, g, S, self.t, gr["lr"], gr["eps"], gr["weight_decay"],
                            gr["lr_decay"], nt)


class RMSprop(Optimizer):
    """torch.optim.RMSprop: s = α·s + (1−α)·g'²; centered: ḡ = α·ḡ + (1−α)·g', s − ḡ²;
    d = √(·) + eps; θ −= lr·g'/d, or with momentum μ: buf = μ·buf + g'/d, θ −= lr·buf.
    NumPy (nk.optim.functional.rmsprop), no kernel yet."""

    _checks = {"alpha": lambda x: v.real_number("alpha", x, 0.0, 1.0),
               "eps": lambda x: v.real_number("eps", x),
               "momentum": lambda x: v.real_number("momentum", x),
               "centered": lambda x: v.flag("centered", x)}

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        super().__init__(params, lr, weight_decay, alpha=alpha, eps=eps, momentum=momentum,
                         centered=centered)

    def _update(self, p, g, state, p_shaped, nt, gr):
        sq = self._buffer(state, "square_avg", p_shaped)
        gavg = self._buffer(state, "grad_avg", p_shaped) if gr["centered"] else None
        buf = self._buffer(state, "momentum_buffer", p_shaped) if gr["momentum"] > 0 else None
        functional._rmsprop(p, g, sq, gavg, buf, gr["lr"], gr["alpha"], gr["eps"],
                            gr["weight_decay"], gr["momentum"], gr["centered"])


# the learning rate: read from group 0, set on every group (schedules set it per group)
def _get_lr(self) -> float:
    return self.param_groups[0]["lr"]


def _set_lr(self, value) -> None:
    value = v.real_number("lr", value)
    for group in self.param_groups:
        group["lr"] = value


Optimizer.lr = property(_get_lr, _set_lr)


# ------------------------------------------------------------- gradient clipping
def clip_grad_norm_(params, max_norm: float, norm_type: float = 2.0) -> float:
    """Scale the gradients in place so that their joint norm is at most max_norm,
    as torch.nn.utils.clip_grad_norm_: total = ‖(‖g_1‖, ‖g_2‖, ...)‖ (the p-norm of
    every gradient together; norm_type=inf the largest |g|), each g *= max_norm/(total
    + 1e-6) when that is < 1. params: a model (its grads), (param, grad) pairs, or
    gradient arrays. Returns the total norm before clipping (a float)."""
    if hasattr(params, "grads") and isinstance(getattr(params, "grads"), dict):
        grads = list({id(g): g for g in params.grads.values()}.values())
    elif isinstance(params, np.ndarray):
        grads = [params]
    elif isinstance(params, (list, tuple)):
        grads = []
        for i, x in enumerate(params):
            g = x[1] if isinstance(x, (list, tuple)) and len(x) == 2 else x
            if not isinstance(g, np.ndarray) or g.dtype not in v.FLOAT_DTYPES:
                raise TypeError(f"params[{i}]: expected a float32/float64 gradient array or a "
                                f"(param, grad) pair, got {type(g).__name__}")
            grads.append(g)
    else:
        raise TypeError(f"params: expected a model, (param, grad) pairs or gradient arrays, "
                        f"got {type(params).__name__}")
    max_norm = v.real_number("max_norm", max_norm)
    if not v.is_real(norm_type) or math.isnan(float(norm_type)) or float(norm_type) <= 0:
        raise ValueError(f"norm_type: expected a number > 0 or inf, got {norm_type!r}")
    norm_type = float(norm_type)
    if not grads:
        return 0.0
    if math.isinf(norm_type):
        norms = [float(np.max(np.abs(g))) if g.size else 0.0 for g in grads]
        total = max(norms)
    else:
        norms = [np.linalg.norm(g.reshape(-1), norm_type) if g.size else 0.0 for g in grads]
        total = float(np.linalg.norm(np.asarray(norms, dtype=np.float64), norm_type))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= g.dtype.type(coef)
    return total


# ------------------------------------------------------------- schedules
class LRScheduler:
    """torch.optim.lr_scheduler.LRScheduler: at construction each group's lr is kept
    as its "initial_lr" (base_lrs) and the schedule's value at step 0 is set; each
    `step()` (after `optimizer.step()`, per batch or per epoch: k's unit is yours)
    advances last_epoch and sets every group's lr. Subclasses give `get_lr()`
    (torch's chainable forms: from the groups' current lrs) or `factor(k)`
    (lr = base_lr · factor(k))."""

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected an nnkit.optim optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self._step_count = 0
        self._initial = True
        self.step()
        self._initial = False

    @property
    def base_lr(self) -> float:
        return self.base_lrs[0]

    def factor(self, k: int) -> float:
        raise NotImplementedError

    def get_lr(self) -> list[float]:
        return [b * self.factor(self.last_epoch) for b in self.base_lrs]

    def step(self) -> float:
        """Advance one step; returns group 0's new lr."""
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        return self._last_lr[0]

    def get_last_lr(self) -> list[float]:
        """The lr of every group after the last step (a list, as torch's)."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Every attribute but the optimizer (torch's convention)."""
        return {k: (dict(x) if isinstance(x, Counter) else x)
                for k, x in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict) -> "LRScheduler":
        for k, x in state_dict.items():
            if k in self.__dict__ and isinstance(self.__dict__[k], Counter):
                x = Counter({int(a): int(np.asarray(b)) for a, b in x.items()})
            elif isinstance(x, np.ndarray):
                x = x.item() if x.ndim == 0 else x.tolist()
            self.__dict__[k] = x
        return self

    def _lrs(self):
        return [group["lr"] for group in self.optimizer.param_groups]


class InverseSqrt(LRScheduler):
    """η_t = η0/√t for the t-th optimizer step (t = 1, 2, ...): factor(k) = 1/√(k+1).

    P5: Adam with β1 = 0, β2 → 1 under this schedule approaches AdaGrad with lr η0.
    torch: LambdaLR(opt, lambda k: 1/math.sqrt(k + 1)).
    """

    def factor(self, k: int) -> float:
        return 1.0 / math.sqrt(k + 1)


class StepLR(LRScheduler):
    """lr ×= gamma every step_size steps (torch.optim.lr_scheduler.StepLR):
    base_lr·gamma^⌊k/step_size⌋."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        self.step_size = v.positive_int("step_size", step_size)
        self.gamma = v.real_number("gamma", gamma)
        super().__init__(optimizer)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]


class MultiStepLR(LRScheduler):
    """lr ×= gamma at each milestone (torch.optim.lr_scheduler.MultiStepLR)."""

    def __init__(self, optimizer: Optimizer, milestones, gamma: float = 0.1):
        try:
            ms = list(milestones)
        except TypeError:
            raise TypeError(f"milestones: expected a list of step numbers, got "
                            f"{type(milestones).__name__}") from None
        for i, m in enumerate(ms):
            v.positive_int(f"milestones[{i}]", m)
        self.milestones = Counter(int(m) for m in ms)
        self.gamma = v.real_number("gamma", gamma)
        super().__init__(optimizer)

    def get_lr(self):
        if self.last_epoch not in self.milestones:
            return self._lrs()
        return [lr * self.gamma ** self.milestones[self.last_epoch] for lr in self._lrs()]


class ExponentialLR(LRScheduler):
    """lr ×= gamma every step (torch.optim.lr_scheduler.ExponentialLR)."""

    def __init__(self, optimizer: Optimizer, gamma: float):
        self.gamma = v.real_number("gamma", gamma)
        super().__init__(optimizer)

    def get_lr(self):
        if self._initial:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]


class CosineAnnealingLR(LRScheduler):
    """lr = η_min + (base_lr − η_min)(1 + cos(π k/T_max))/2, in torch's chainable form
    (torch.optim.lr_scheduler.CosineAnnealingLR; past T_max it rises again)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        self.T_max = v.positive_int("T_max", T_max)
        self.eta_min = v.real_number("eta_min", eta_min)
        super().__init__(optimizer)

    def get_lr(self):
        e, T = self.eta_min, self.T_max
        if self._initial:
            return self._lrs()
        if (self.last_epoch - 1 - T) % (2 * T) == 0:
            return [lr + (b - e) * (1 - math.cos(math.pi / T)) / 2
                    for b, lr in zip(self.base_lrs, self._lrs())]
        return [(1 + math.cos(math.pi * self.last_epoch / T))
                / (1 + math.cos(math.pi * (self.last_epoch - 1) / T)) * (lr - e) + e
                for lr in self._lrs()]


class OneCycleLR(LRScheduler):
    """The one-cycle policy (torch.optim.lr_scheduler.OneCycleLR): from max_lr/div_factor
    up to max_lr over pct_start of total_steps, then down to
    initial_lr/final_div_factor (cos or linear); momentum (SGD, RMSprop) or β1
    (Adam, AdamW) cycles the other way between max_momentum and base_momentum."""

    def __init__(self, optimizer: Optimizer, max_lr, total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum=0.85, max_momentum=0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected an nnkit.optim optimizer, got "
                            f"{type(optimizer).__name__}")
        if total_steps is not None:
            self.total_steps = v.positive_int("total_steps", total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (v.positive_int("epochs", epochs)
                                * v.positive_int("steps_per_epoch", steps_per_epoch))
        else:
            raise ValueError("total_steps: expected total_steps, or epochs and "
                             "steps_per_epoch, got None")
        pct_start = v.real_number("pct_start", pct_start, 0.0, 1.0)
        self.anneal_strategy = v.choice("anneal_strategy", anneal_strategy, ("cos", "linear"))
        div_factor = v.real_number("div_factor", div_factor)
        final_div_factor = v.real_number("final_div_factor", final_div_factor)
        n = self.total_steps
        if v.flag("three_phase", three_phase):
            self._phases = [(float(pct_start * n) - 1, "initial_lr", "max_lr",
                             "max_momentum", "base_momentum"),
                            (float(2 * pct_start * n) - 2, "max_lr", "initial_lr",
                             "base_momentum", "max_momentum"),
                            (n - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
        else:
            self._phases = [(float(pct_start * n) - 1, "initial_lr", "max_lr",
                             "max_momentum", "base_momentum"),
                            (n - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]
        groups = optimizer.param_groups
        max_lrs = self._per_group("max_lr", max_lr, len(groups))
        for group, m in zip(groups, max_lrs):
            group["initial_lr"] = m / div_factor
            group["max_lr"] = m
            group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = v.flag("cycle_momentum", cycle_momentum)
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError(f"cycle_momentum: {type(optimizer).__name__} has no momentum "
                                 f"or betas to cycle; pass cycle_momentum=False")
            self.use_beta1 = "betas" in optimizer.defaults
            maxm = self._per_group("max_momentum", max_momentum, len(groups))
            basem = self._per_group("base_momentum", base_momentum, len(groups))
            for group, mm, bm in zip(groups, maxm, basem):
                if self.use_beta1:
                    group["betas"] = (mm, *group["betas"][1:])
                else:
                    group["momentum"] = mm
                group["max_momentum"] = mm
                group["base_momentum"] = bm
        super().__init__(optimizer)

    @staticmethod
    def _per_group(name, value, n):
        if isinstance(value, (list, tuple)):
            if len(value) != n:
                raise ValueError(f"{name}: expected {n} values (one per group), got {len(value)}")
            return [v.real_number(f"{name}[{i}]", x) for i, x in enumerate(value)]
        return [v.real_number(name, value)] * n

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self):
        k = self.last_epoch
        if k > self.total_steps:
            raise ValueError(f"step: called {k} times, past total_steps = {self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, (end, lr0, lr1, m0, m1) in enumerate(self._phases):
                if k <= end or i == len(self._phases) - 1:
                    pct = (k - start) / (end - start)
                    lr = self._anneal(group[lr0], group[lr1], pct)
                    mom = self._anneal(group[m0], group[m1], pct) if self.cycle_momentum \
                        else None
                    break
                start = end
            lrs.append(lr)
            if self.cycle_momentum:
                if self.use_beta1:
                    group["betas"] = (mom, *group["betas"][1:])
                else:
                    group["momentum"] = mom
        return lrs


class ReduceLROnPlateau(LRScheduler):
    """lr ×= factor (not below min_lr) after more than `patience` steps without an
    improvement of the metric (torch.optim.lr_scheduler.ReduceLROnPlateau):
    `step(metric)`, e.g. the validation loss each epoch."""

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr=0.0, eps: float = 1e-8):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected an nnkit.optim optimizer, got "
                            f"{type(optimizer).__name__}")
        self.factor = v.real_number("factor", factor, 0.0, 1.0, high_open=True,
                                    why="factor 1 never reduces the lr")
        self.optimizer = optimizer
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            self.min_lrs = OneCycleLR._per_group("min_lr", min_lr, n)
        else:
            self.min_lrs = [v.real_number("min_lr", min_lr)] * n
        if isinstance(patience, (bool, np.bool_)) or not isinstance(patience, (int, np.integer)) \
                or patience < 0:
            raise ValueError(f"patience: expected an integer >= 0, got {patience!r}")
        self.patience = int(patience)
        if isinstance(cooldown, (bool, np.bool_)) or not isinstance(cooldown, (int, np.integer)) \
                or cooldown < 0:
            raise ValueError(f"cooldown: expected an integer >= 0, got {cooldown!r}")
        self.cooldown = int(cooldown)
        self.eps = v.real_number("eps", eps)
        self.mode = v.choice("mode", mode, ("min", "max"))
        self.threshold = v.real_number("threshold", threshold)
        self.threshold_mode = v.choice("threshold_mode", threshold_mode, ("rel", "abs"))
        self.last_epoch = 0
        self._last_lr = self._lrs()
        self.best = math.inf if self.mode == "min" else -math.inf
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def _is_better(self, a, best):
        if self.mode == "min":
            return a < (best * (1.0 - self.threshold) if self.threshold_mode == "rel"
                        else best - self.threshold)
        return a > (best * (self.threshold + 1.0) if self.threshold_mode == "rel"
                    else best + self.threshold)

    def step(self, metrics) -> float:
        """One epoch's metric (a number); returns group 0's lr."""
        if not v.is_real(metrics):
            raise TypeError(f"metrics: expected a number (e.g. the validation loss), got "
                            f"{metrics!r}")
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for i, group in enumerate(self.optimizer.param_groups):
                old = float(group["lr"])
                new = max(old * self.factor, self.min_lrs[i])
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._lrs()
        return self._last_lr[0]
