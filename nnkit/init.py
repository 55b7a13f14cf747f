"""Weight initialization (P7), with PyTorch's formulas and shape convention.

Every initializer is `fn(shape, rng=None, *, ..., dtype=float64) -> array`,
shape in PyTorch's (out, in[, kh, kw, ...]) order, so fan_in = in·kh·kw and
fan_out = out·kh·kw. The draw comes from `nnkit._random.generator(rng=rng)`:
the library generator (reset by `nk.seed(n)`) unless `rng` is given.

  name             distribution                      torch.nn.init
  lecun_normal     N(0, 1/fan_in)                    normal_(std=1/√fan_in)
  xavier_normal    N(0, gain²·2/(fan_in+fan_out))    xavier_normal_
  xavier_uniform   U(±gain·√(6/(fan_in+fan_out)))    xavier_uniform_
  he_normal        N(0, gain²/fan), gain √2 (relu)   kaiming_normal_(nonlinearity="relu")
  he_uniform       U(±gain·√(3/fan))                 kaiming_uniform_(nonlinearity="relu")
  constant/zeros   every entry `value`               constant_

Why these variances (P7): for a = W h with independent zero-mean W_ij,
Var a_i = fan_in·Var W·E[h²]. With E h = 0 and Var h = 1, σ² = 1/fan_in keeps
Var a = 1 (LeCun); after a ReLU of a symmetric zero-mean pre-activation,
E[h²] = ½·Var a, so σ² = 2/fan_in (He). Xavier averages the forward and
backward conditions: 2/(fan_in + fan_out).

`calculate_gain` is torch.nn.init.calculate_gain: linear/conv/sigmoid
1, tanh 5/3, relu √2, leaky_relu √(2/(1+slope²)), selu 3/4. Note the
"lecun_normal" of JAX/Keras is a truncated normal; this one is the plain
normal that `Linear` has always used (the same draws).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from . import _validate as v
from ._random import generator

__all__ = ["calculate_gain", "fans", "lecun_normal", "xavier_normal", "xavier_uniform",
           "he_normal", "he_uniform", "kaiming_normal", "kaiming_uniform", "constant",
           "zeros", "INITIALIZERS", "get"]

NONLINEARITIES = ("linear", "conv1d", "conv2d", "conv3d", "sigmoid", "tanh",
                  "relu", "leaky_relu", "selu")
MODES = ("fan_in", "fan_out")


def calculate_gain(nonlinearity: str = "linear", param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (torch.nn.init.calculate_gain)."""
    v.choice("nonlinearity", nonlinearity, NONLINEARITIES)
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else v.real_number("param", param)
        return math.sqrt(2.0 / (1.0 + slope ** 2))
    if nonlinearity == "selu":
        return 0.75
    return 1.0


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (out, in[, kh, kw, ...])."""
    shape = v.init_shape(shape)
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _prepare(shape, rng, dtype):
    return v.init_shape(shape), generator(rng=rng), v.float_dtype(dtype)


def lecun_normal(shape, rng=None, *, dtype=np.float64) -> np.ndarray:
    """N(0, 1/fan_in): unit-variance pre-activations from unit-variance inputs (P7)."""
    shape, rng, dtype = _prepare(shape, rng, dtype)
    return (rng.standard_normal(shape) / math.sqrt(fans(shape)[0])).astype(dtype)


def xavier_normal(shape, rng=None, *, gain: float = 1.0, dtype=np.float64) -> np.ndarray:
    """N(0, gain²·2/(fan_in + fan_out)) (Glorot & Bengio 2010)."""
    shape, rng, dtype = _prepare(shape, rng, dtype)
    gain = v.real_number("gain", gain, 0.0, low_open=True)
    fi, fo = fans(shape)
    return (rng.standard_normal(shape) * (gain * math.sqrt(2.0 / (fi + fo)))).astype(dtype)


def xavier_uniform(shape, rng=None, *, gain: float = 1.0, dtype=np.float64) -> np.ndarray:
    """U(−a, a), a = gain·√(6/(fan_in + fan_out)): the same variance as xavier_normal."""
    shape, rng, dtype = _prepare(shape, rng, dtype)
    gain = v.real_number("gain", gain, 0.0, low_open=True)
    fi, fo = fans(shape)
    a = gain * math.sqrt(6.0 / (fi + fo))
    return rng.uniform(-a, a, shape).astype(dtype)


def _he_std(shape, a, mode, nonlinearity) -> float:
    v.choice("mode", mode, MODES)
    fan = fans(shape)[0 if mode == "fan_in" else 1]
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def he_normal(shape, rng=None, *, a: float = 0.0, mode: str = "fan_in",
              nonlinearity: str = "relu", dtype=np.float64) -> np.ndarray:
    """N(0, gain²/fan), gain = calculate_gain(nonlinearity, a): 2/fan_in for ReLU (P7).

    torch.nn.init.kaiming_normal_(w, a, mode, nonlinearity); note torch's default
    nonlinearity is "leaky_relu" with a = 0, the same gain √2 as "relu".
    """
    shape, rng, dtype = _prepare(shape, rng, dtype)
    std = _he_std(shape, a, mode, nonlinearity)
    return (rng.standard_normal(shape) * std).astype(dtype)


def he_uniform(shape, rng=None, *, a: float = 0.0, mode: str = "fan_in",
               nonlinearity: str = "relu", dtype=np.float64) -> np.ndarray:
    """U(−b, b), b = √3·gain/√fan: the variance of he_normal (kaiming_uniform_)."""
    shape, rng, dtype = _prepare(shape, rng, dtype)
    b = math.sqrt(3.0) * _he_std(shape, a, mode, nonlinearity)
    return rng.uniform(-b, b, shape).astype(dtype)


kaiming_normal = he_normal
kaiming_uniform = he_uniform


def constant(shape, rng=None, *, value: float = 0.0, dtype=np.float64) -> np.ndarray:
    """Every entry `value` (a bias: constant c = 0 in P7). Any shape, rng unused."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"shape: expected a tuple of ints, got {type(shape).__name__} {shape!r}")
    shape = tuple(v.positive_int(f"shape[{i}]", d) for i, d in enumerate(shape))
    value = v.real_number("value", value, -math.inf)
    return np.full(shape, value, v.float_dtype(dtype))


def zeros(shape, rng=None, *, dtype=np.float64) -> np.ndarray:
    """All zeros (`constant` with value 0; `rng` is accepted and unused, as every initializer takes it)."""
    return constant(shape, rng, value=0.0, dtype=dtype)


# The names a layer's init= accepts.
INITIALIZERS: dict[str, Callable] = {
    "lecun_normal": lecun_normal, "xavier_normal": xavier_normal,
    "xavier_uniform": xavier_uniform, "he_normal": he_normal, "he_uniform": he_uniform,
    "kaiming_normal": he_normal, "kaiming_uniform": he_uniform, "zeros": zeros,
}


def get(init) -> Callable:
    """An initializer from a name in INITIALIZERS or a callable `(shape, rng) -> array`."""
    if callable(init):
        return init
    if isinstance(init, str):
        return INITIALIZERS[v.choice("init", init, tuple(INITIALIZERS))]
    raise TypeError(f"init: expected one of {list(INITIALIZERS)} or a callable "
                    f"(shape, rng) -> array, got {type(init).__name__} {init!r}")


def weight(init, shape: tuple, rng: np.random.Generator, dtype) -> np.ndarray:
    """Run an initializer for a layer and check what it returned."""
    fn = get(init)
    W = np.asarray(fn(shape, rng))
    if W.shape != tuple(shape):
        raise ValueError(f"init: expected the initializer to return shape {tuple(shape)}, "
                         f"got {W.shape}")
    if W.dtype.kind not in "fiu":
        raise TypeError(f"init: expected the initializer to return real numbers, got {W.dtype}")
    return np.ascontiguousarray(W, dtype=dtype)
