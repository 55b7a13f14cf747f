"""Layer objects: every layer class of nnkit, over one small `Layer` base.

A layer holds its parameters and their gradients (`params`, `grads`: dicts
with the same keys), a `training` flag and, for normalizations, running
statistics. Its forward/backward delegate to one functional pair of a family
module (nnkit.dense, nnkit.batchnorm, ...), which validates and runs the
kernels; the layer adds only what is state.

Outputs are fresh arrays, as in every other framework: `a = m(X); b = m(2*X)`
leaves `a` alone. `layer.reuse(True)` (or `Sequential(..., reuse_buffers=True)`)
opts into reusing the output and input-gradient buffers across calls of the
same shape, which saves the page faults of a fresh large array on each call;
a returned array is then overwritten by the layer's next call.
"""
from __future__ import annotations

import functools
from typing import Iterator, NamedTuple

import numpy as np

from . import _validate as v
from . import batchnorm as bn
from . import dense
from . import rnn
from . import gated
from . import softmax as sm
from . import whitening as wh
from . import dropout as dr
from . import norms
from . import weightnorm as wn
from . import init as nkinit
from . import conv
from . import checkpoint as _checkpoint
from ._random import generator
from ._whitening_algebra import block_diag, stacks


class Layer:
    """What every layer shares: parameters and gradients, train/eval, the cache.

    A subclass registers parameters with `add_param`, implements forward
    (storing everything its backward needs in `self._cache`, one object per
    call) and backward (reading it through `self.cache()`, adding into
    `self.grads` with `accumulate_grads`).

    Gradients accumulate, as in PyTorch: each backward *adds* into `grads`
    until `zero_grad()` (on the layer, a `Sequential`, or the optimizer).
    One backward per forward: a backward spends the cache of the forward
    before it, and a second backward without a new forward is refused
    (PyTorch's "backward through the graph a second time"). A layer applied
    twice inside `Sequential` gets one cache per use and the sum of both
    uses' gradients; applied twice by hand, run forward and backward in
    pairs, or put the uses in a `Sequential`.

    `geometry` names how a layer changes a tensor's shape, for
    nnkit.conv.summary: None (shape kept), "linear", "conv2d", "pool2d",
    "flatten"; the summary reads the layer's own attributes from there.
    """
    geometry: str | None = None

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.training = True
        self.reuse_buffers = False
        self._cache = None
        self._buffers: dict[str, np.ndarray] = {}

    def __init_subclass__(cls, **kwargs):
        # every backward spends the forward's cache (see the class docstring);
        # wrapped here once so user-defined layers get the rule too
        super().__init_subclass__(**kwargs)
        if "backward" in cls.__dict__:
            cls.backward = _spends_cache(cls.__dict__["backward"])

    # the per-call state: assigning a new cache (a forward) makes it unspent
    @property
    def _cache(self):
        return self.__cache

    @_cache.setter
    def _cache(self, value) -> None:
        self.__cache = value
        self._spent = False

    def add_param(self, name: str, value: np.ndarray) -> np.ndarray:
        """Register a parameter and its gradient (zeros of the same shape)."""
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)
        return value

    # running statistics saved by state_dict (not parameters: no gradient)
    buffer_names: tuple = ()

    def named_parameters(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, parameter) for every parameter, as torch.nn.Module.named_parameters();
        the gradient of each is self.grads[name] (named_parameters_and_grads)."""
        yield from self.params.items()

    def named_parameters_and_grads(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(name, parameter, its gradient) for every parameter."""
        for name, p in self.params.items():
            yield name, p, self.grads[name]

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, array) of every running statistic (BatchNorm's running_mean/var, ...)."""
        for name in self.buffer_names:
            yield name, getattr(self, name)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and running statistic by name (torch's
        state_dict): what load_state_dict reads back and nk.save writes."""
        return _checkpoint.layer_state_dict(self)

    def load_state_dict(self, state_dict, strict: bool = True) -> "Layer":
        """Copy a state dict's arrays into this layer's parameters and running
        statistics, in place (flat or nested by nk.load). A missing key
        (KeyError), a misshaped one (ValueError), or with strict=True an unknown
        one is refused, naming the key, before anything is written."""
        _checkpoint.load_layer_state_dict(self, state_dict, strict)
        return self

    def parameters(self) -> list[np.ndarray]:
        """Every parameter array (each once), as torch.nn.Module.parameters()."""
        return list(self.params.values())

    def train(self, mode: bool = True) -> "Layer":
        self.training = bool(mode)
        return self

    def eval(self) -> "Layer":
        return self.train(False)

    def reuse(self, flag: bool = True) -> "Layer":
        """Opt in (or out) of reusing output buffers across calls (see the module doc)."""
        self.reuse_buffers = v.flag("flag", flag)
        if not flag:
            self._buffers.clear()
        return self

    def zero_grad(self) -> None:
        """Set every gradient to 0 (backward adds into them)."""
        for g in self.grads.values():
            g[...] = 0

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    def extra_repr(self) -> str:
        """The arguments shown inside `Name(...)` by repr (as torch's extra_repr)."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    # -- for subclasses
    def cache(self, needs: str = "call forward first"):
        """The cache of the last forward, or a RuntimeError saying what to call."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward: {needs}")
        if self._spent:
            raise RuntimeError(
                f"{type(self).__name__}.backward: the last forward's cache was already "
                "used by a backward; call forward again first (a layer applied twice: "
                "put both uses in nk.Sequential, which keeps one cache per use)")
        return self._cache

    def accumulate_grads(self, **grads) -> None:
        """Add each named gradient into self.grads (PyTorch's accumulation)."""
        for name, g in grads.items():
            self.grads[name] += g

    def out(self, name: str, shape: tuple, dtype, *inputs: np.ndarray) -> np.ndarray | None:
        """A buffer for a result when reuse is on (None: the function allocates).

        A buffer that shares memory with an input (a layer applied to its own
        previous output) is not used: the result is then fresh.
        """
        if not self.reuse_buffers:
            return None
        buf = self._buffers.get(name)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(shape, dtype)
        if any(np.may_share_memory(buf, x) for x in inputs):
            return None
        return buf


def _spends_cache(backward):
    """backward, refused when the cache is spent, spending it when it succeeds
    (a failed backward, a bad dout say, leaves the cache for a retry)."""
    @functools.wraps(backward)
    def spending(self, *args, **kwargs):
        if self._spent and self._cache is not None:
            self.cache()                       # raises the "already used" error
        result = backward(self, *args, **kwargs)
        self._spent = True
        return result
    return spending


def _dtype_repr(layer: Layer) -> str:
    """", dtype=float32" when a layer's parameters are not float64 (the default)."""
    p = next(iter(layer.params.values()), None)
    return "" if p is None or p.dtype == np.float64 else f", dtype={p.dtype}"


# ---------------------------------------------------------------- P1: dense
class Linear(Layer):
    """Y = X Wᵀ + b with W (out_features, in_features); X (..., in_features).

    Any leading dimensions, as PyTorch's: (B, N), (T, B, N), ... Initial W is
    LeCun normal, N(0, 1/in_features) (P7), from the library generator
    (`nk.seed`) unless `seed` or `rng` is given; `init=` takes another name
    of nnkit.init.INITIALIZERS ("he_normal", "xavier_uniform", ...) or a
    callable (shape, rng) -> array, shape (out, in). b starts at 0. With
    bias=False, b stays 0 and receives no gradient. With weight_norm=True the
    parameters are u (M, N) and gamma (M,) in place of W, and W = γ u/‖u‖ per
    row (P8; nnkit.weightnorm), starting from γ = ‖u‖ (the same initial W).
    """
    geometry = "linear"

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True,
                 dtype=np.float64, seed: int | None = None,
                 rng: np.random.Generator | None = None, weight_norm: bool = False,
                 init="lecun_normal"):
        super().__init__()
        self.weight_norm = v.flag("weight_norm", weight_norm)
        N = v.positive_int("in_features", in_features)
        M = v.positive_int("out_features", out_features)
        dtype = v.float_dtype(dtype)
        W = nkinit.weight(init, (M, N), generator(seed, rng), np.float64)
        if self.weight_norm:          # W = γ u/‖u‖: u and γ are the parameters
            self.add_param("u", W.astype(dtype))
            self.add_param("gamma", np.linalg.norm(self.params["u"], axis=1))
        else:
            self.add_param("W", W.astype(dtype))
        self.add_param("b", np.zeros(M, dtype))
        self.bias = v.flag("bias", bias)
        self.in_features = N

    def forward(self, X):
        wn_cache = None
        if self.weight_norm:          # W = γ u/‖u‖, its cache kept for backward
            W, wn_cache = wn.weightnorm_forward(self.params["u"], self.params["gamma"])
        else:
            W = self.params["W"]
        X = v.float_array("X", X, None, "(..., in_features)", dtype=W.dtype,
                           dtype_of="the layer's dtype")
        if X.ndim < 1 or X.shape[-1] != W.shape[1]:
            raise ValueError(f"X: expected shape (..., {W.shape[1]}) (the last axis is "
                             f"in_features), got {X.shape}")
        X2 = X.reshape(-1, W.shape[1])                     # (B·..., N), a view
        Y, aff = dense.affine_forward(
            X2, W, self.params["b"], out=self.out("Y", (X2.shape[0], W.shape[0]), X.dtype, X))
        self._cache = (aff, X.shape, wn_cache)
        return Y if X.ndim == 2 else Y.reshape(X.shape[:-1] + (W.shape[0],))

    def backward(self, dY):
        c, shape_in, wn_cache = self.cache()
        lead = c.X.shape[0]
        dY = v.float_array("dY", dY, None, "(..., out_features)", dtype=c.X.dtype)
        if dY.shape != shape_in[:-1] + (c.W.shape[0],):
            raise ValueError(f"dY: expected the forward output's shape "
                             f"{shape_in[:-1] + (c.W.shape[0],)}, got {dY.shape}")
        g = dense.affine_backward(dY.reshape(lead, -1), c,
                                  out=self.out("dX", c.X.shape, c.X.dtype, dY))
        if self.weight_norm:
            w = wn.weightnorm_backward(g.dW, wn_cache)
            self.accumulate_grads(u=w.du, gamma=w.dgamma)
        else:
            self.accumulate_grads(W=g.dW)
        if self.bias:
            self.accumulate_grads(b=g.db)
        return g.dX if dY.ndim == 2 else g.dX.reshape(shape_in)

    def extra_repr(self) -> str:
        M, N = self.params["b"].shape[0], self.in_features
        return (f"in_features={N}, out_features={M}, bias={self.bias}"
                + (", weight_norm=True" if self.weight_norm else "") + _dtype_repr(self))


class ReLU(Layer):
    """H = max(Y, 0) elementwise, any shape."""

    def forward(self, Y):
        Y = v.float_array("Y", Y, None, "(any shape)")
        H, self._cache = dense.relu_forward(Y, out=self.out("H", Y.shape, Y.dtype, Y)
                                            if Y.dtype in v.FLOAT_DTYPES else None)
        return H

    def backward(self, dH):
        H = self.cache().H
        return dense.relu_backward(dH, self._cache,
                                   out=self.out("dY", H.shape, H.dtype, v.array_or_empty(dH)))


class SoftmaxCrossEntropy(Layer):
    """Loss layer: forward(logits, labels) -> mean cross-entropy; backward() -> dlogits."""

    def forward(self, logits, labels=None):
        if labels is None:
            raise TypeError("labels: expected class indices (B,) or targets (B, K), got None")
        loss, self._cache = sm.softmax_cross_entropy(logits, labels)
        return loss

    def backward(self, dloss: float = 1.0):
        P = self.cache().P
        return sm.softmax_cross_entropy_backward(dloss, self._cache,
                                                 out=self.out("dZ", P.shape, P.dtype))

    @property
    def probs(self):
        return None if self._cache is None else self._cache.P


# --------------------------------------------------------- P2: normalization
class _FeatureNorm(Layer):
    """Shared by batch norm and whitening batch norm: γ, β over M features,
    a running mean, training/eval paths, and one backward."""

    def __init__(self, num_features: int, momentum: float, relu: bool, dtype):
        super().__init__()
        M = v.positive_int("num_features", num_features)
        self.momentum = v.momentum_value(momentum)
        self.relu = v.flag("relu", relu)
        dtype = v.float_dtype(dtype)
        self.add_param("gamma", np.ones(M, dtype))
        self.add_param("beta", np.zeros(M, dtype))
        self.running_mean = np.zeros(M, dtype)

    def _input(self, Y):
        gamma = self.params["gamma"]
        Y = v.float_array("Y", Y, 2, "(B, num_features)", dtype=gamma.dtype,
                           dtype_of="the layer's dtype")
        v.same_dim("Y", Y.shape[1], gamma.shape[0], "Y.shape[1] (num_features)")
        return Y

    def _backward_pair(self):
        raise NotImplementedError

    def backward(self, dout):
        c = self.cache("needs a training-mode forward first (eval mode treats the "
                       "statistics as constants)")
        shape = getattr(c, "shape", None) or c.Y.shape    # whitening's (B, C, ...) input
        g = self._backward_pair()(dout, c, full=False,
                                  out=self.out("dY", shape, c.Y.dtype, v.array_or_empty(dout)))
        self.accumulate_grads(gamma=g.dgamma, beta=g.dbeta)
        return g.dY

    def extra_repr(self) -> str:
        extra = ", relu=True" if self.relu else ""
        if isinstance(self, WhiteningBatchNorm):
            extra += f", method={self.method!r}"
            if self.group_size is not None:
                extra += f", group_size={self.group_size}"
        return (f"{self.running_mean.shape[0]}, eps={self.eps:g}, momentum={self.momentum:g}"
                + extra + _dtype_repr(self))


class BatchNorm(_FeatureNorm):
    """Batch norm over features (P2), optionally fused with the following ReLU.

    Training: normalize with the batch statistics and update the running ones
    (momentum convention in nnkit.batchnorm). Eval: use the running statistics.
    Y (B, num_features); or (B, C, ...), e.g. a conv net's (B, C, H, W),
    normalized per channel over every other axis (P8; PyTorch's BatchNorm1d
    and BatchNorm2d) by nk.batchnorm_channels_forward.
    """

    buffer_names = ("running_mean", "running_var")

    def __init__(self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.1,
                 relu: bool = False, dtype=np.float64):
        self.eps = v.eps_value(eps)
        super().__init__(num_features, momentum, relu, dtype)
        self.running_var = np.ones_like(self.running_mean)

    def forward(self, Y):
        g, b = self.params["gamma"], self.params["beta"]
        if v.ndim_of(Y) >= 3:       # (B, C, ...): per channel over every other axis
            return self._forward_channels(Y)
        Y = self._input(Y)
        out = self.out("Z", Y.shape, Y.dtype, Y)
        if not self.training:
            self._cache = None
            return bn.batchnorm_eval_forward(Y, g, b, self.running_mean, self.running_var,
                                             self.eps, relu=self.relu, out=out)
        fwd = bn.bn_relu_forward if self.relu else bn.batchnorm_forward
        Z, self._cache = fwd(Y, g, b, self.eps, out=out)
        bn.update_running_stats(self.running_mean, self.running_var, self._cache, self.momentum)
        return Z

    def _forward_channels(self, X):
        g, b = self.params["gamma"], self.params["beta"]
        X = v.float_array("Y", X, None, "(B, num_features, ...)", dtype=g.dtype,
                           dtype_of="the layer's dtype")
        v.same_dim("Y", X.shape[1], g.shape[0], "Y.shape[1] (num_features)")
        if not self.training:
            self._cache = None
            return norms.batchnorm_channels_eval_forward(
                X, g, b, self.running_mean, self.running_var, self.eps, relu=self.relu)
        Z, self._cache = norms.batchnorm_channels_forward(X, g, b, self.eps, relu=self.relu)
        bn.update_running_stats(self.running_mean, self.running_var, self._cache.bn,
                                self.momentum)
        return Z

    def _backward_pair(self):
        return bn.bn_relu_backward if self.relu else bn.batchnorm_backward

    def backward(self, dout):
        if not isinstance(self._cache, norms.ChannelBatchNormCache):
            return super().backward(dout)
        g = norms.batchnorm_channels_backward(dout, self.cache(), full=False)
        self.accumulate_grads(gamma=g.dgamma, beta=g.dbeta)
        return g.dX


class WhiteningBatchNorm(_FeatureNorm):
    """Whitening batch norm over features (P2.4), optionally fused with ReLU.

    Training: whiten with the batch's mean and Σ, update running_mean and the
    running whitening matrix (per group, momentum average). Eval: use them.
    Y (B, num_features); or (B, C, ...), e.g. a conv net's (B, C, H, W): the C
    channels whitened over every other axis (the decorrelated-batch-norm
    authors' conv layers), by nk.whitening_forward on that input.
    """

    def __init__(self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.1,
                 method: str = "zca", group_size: int | None = None, iterations: int = 5,
                 relu: bool = False, dtype=np.float64):
        self.eps = v.eps_positive(eps, wh.EPS_WHY)
        super().__init__(num_features, momentum, relu, dtype)
        M = self.running_mean.shape[0]
        self.method = v.choice("method", method, wh.METHODS)
        self.group_size = v.group_size(group_size, M)
        self.iterations = v.positive_int("iterations", iterations)
        self._running_W = [np.broadcast_to(np.eye(s.shape[-1], dtype=s.dtype), s.shape).copy()
                           for s in stacks(M, self.group_size, self.running_mean.dtype)]

    @property
    def running_whitening(self) -> np.ndarray:
        """The running W, (M, M) block diagonal."""
        return block_diag(self._running_W)

    def named_buffers(self):
        """running_mean and the running whitening, one stack of group matrices per
        group size ("running_whitening.0", ...)."""
        yield "running_mean", self.running_mean
        for i, W in enumerate(self._running_W):
            yield f"running_whitening.{i}", W

    def forward(self, Y):
        g, b = self.params["gamma"], self.params["beta"]
        if v.ndim_of(Y) >= 3:       # (B, C, ...): the channels over every other axis
            Y = v.float_array("Y", Y, None, "(B, num_features, ...)", dtype=g.dtype,
                               dtype_of="the layer's dtype")
            v.same_dim("Y", Y.shape[1], g.shape[0], "Y.shape[1] (num_features)")
            if not self.training:
                self._cache = None
                return wh.whitening_eval_forward(Y, g, b, self.running_mean,
                                                 self.running_whitening,
                                                 group_size=self.group_size, relu=self.relu)
        else:
            Y = self._input(Y)
        out = self.out("Z", Y.shape, Y.dtype, Y)
        if not self.training:
            self._cache = None
            return wh.whitening_eval_stacks(Y, g, b, self.running_mean, self._running_W,
                                            self.group_size, self.relu, out)
        fwd = wh.whitening_relu_forward if self.relu else wh.whitening_forward
        Z, self._cache = fwd(Y, g, b, self.eps, self.method, self.group_size,
                             iterations=self.iterations, out=out)
        mom = self.momentum
        self.running_mean *= 1.0 - mom
        self.running_mean += mom * self._cache.mean
        for run, W in zip(self._running_W, self._cache.Ws):
            run *= 1.0 - mom
            run += mom * W
        return Z

    def _backward_pair(self):
        return wh.whitening_relu_backward if self.relu else wh.whitening_backward


# ------------------------------------------------------------ P9: recurrent
def _uniform(rng: np.random.Generator, shape: tuple, bound: float, dtype) -> np.ndarray:
    return rng.uniform(-bound, bound, shape).astype(dtype)


class RNN(Layer):
    """Simple RNN over a time-major sequence (T, B, N) -> all states (T, B, M).

    Init as PyTorch's nn.RNN: every weight and bias U(−1/√M, 1/√M), from the
    library generator unless `seed` or `rng` is given.
    forward(X, h0=None); backward(dH) -> dX, and sets .dh0 (∂L/∂h0) and
    .grad_norms (‖∂L/∂h_t‖ per t). truncate=k: truncated BPTT (the state
    detached every k steps); form="preactivation": P9.1's form.
    batch_first=True takes and returns (B, T, ·) as PyTorch's batch_first
    (time-major is nnkit's default: each step's rows are then contiguous).
    load_torch_state_dict(sd) takes nn.RNN's weight_ih_l0, weight_hh_l0,
    bias_ih_l0, bias_hh_l0 (NumPy arrays); nnkit's one bias b is PyTorch's
    bias_ih_l0 + bias_hh_l0 (the same function: both are added to a_t).
    """

    def __init__(self, input_size: int, hidden_size: int, *, activation: str = "tanh",
                 bias: bool = True, truncate: int | None = None, form: str = "standard",
                 batch_first: bool = False, dtype=np.float64, seed: int | None = None,
                 rng: np.random.Generator | None = None):
        super().__init__()
        self.batch_first = v.flag("batch_first", batch_first)
        v.truncate_steps(truncate)
        self.truncate = truncate
        self.form = v.choice("form", form, rnn.FORMS)
        N = v.positive_int("input_size", input_size)
        M = v.positive_int("hidden_size", hidden_size)
        self.activation = v.choice("activation", activation, rnn.ACTIVATIONS)
        dtype = v.float_dtype(dtype)
        rng, k = generator(seed, rng), 1.0 / np.sqrt(M)
        self.add_param("Wx", _uniform(rng, (M, N), k, dtype))
        self.add_param("Wh", _uniform(rng, (M, M), k, dtype))
        self.bias = v.flag("bias", bias)
        if self.bias:
            self.add_param("b", _uniform(rng, (M,), k, dtype))
        self.dh0 = self.grad_norms = None

    def extra_repr(self) -> str:
        M, N = self.params["Wx"].shape
        return (f"{N}, {M}, activation={self.activation!r}, bias={self.bias}"
                + (f", truncate={self.truncate}" if self.truncate else "")
                + (", batch_first=True" if self.batch_first else "")
                + (f", form={self.form!r}" if self.form != "standard" else "") + _dtype_repr(self))

    def forward(self, X, h0=None):
        p = self.params
        X = v.float_array("X", X, 3, "(T, B, N), time-major", dtype=p["Wx"].dtype,
                           dtype_of="the layer's dtype")
        v.same_dim("X", X.shape[2], p["Wx"].shape[1], "X.shape[2] (input_size)")
        if self.batch_first:
            X = _time_major(X)
        H, self._cache = rnn.rnn_forward(
            X, h0, p["Wx"], p["Wh"], p.get("b"), self.activation, form=self.form,
            out=None if self.batch_first else
            self.out("H", X.shape[:2] + (p["Wx"].shape[0],), X.dtype, X))
        return _time_major(H) if self.batch_first else H

    def backward(self, dH):
        c = self.cache()
        if self.batch_first:
            dH = _time_major(v.upstream("dH", dH, _swap01(c.H.shape), c.X.dtype))
        g = rnn.rnn_backward(dH, c, truncate=self.truncate, full=False,
                             out=None if self.batch_first else
                             self.out("dX", c.X.shape, c.X.dtype, v.array_or_empty(dH)))
        self.accumulate_grads(**{name: getattr(g, "d" + name) for name in self.params})
        self.dh0, self.grad_norms = g.dh0, g.grad_norms
        return _time_major(g.dX) if self.batch_first else g.dX

    def load_torch_state_dict(self, sd) -> "RNN":
        """Copy nn.RNN(input_size, hidden_size, nonlinearity=...)'s state dict
        (NumPy arrays under PyTorch's names) into this layer; b = bias_ih_l0 +
        bias_hh_l0. A missing, extra or misshaped key: ValueError naming it."""
        M, N = self.params["Wx"].shape
        want = {"weight_ih_l0": (M, N), "weight_hh_l0": (M, M)}
        if self.bias:
            want.update({"bias_ih_l0": (M,), "bias_hh_l0": (M,)})
        arrays = _torch_arrays(sd, want, type(self).__name__)
        self.params["Wx"][...] = arrays["weight_ih_l0"]
        self.params["Wh"][...] = arrays["weight_hh_l0"]
        if self.bias:
            self.params["b"][...] = arrays["bias_ih_l0"] + arrays["bias_hh_l0"]
        return self


def _swap01(shape: tuple) -> tuple:
    return (shape[1], shape[0]) + tuple(shape[2:])


def _time_major(A: np.ndarray) -> np.ndarray:
    """(B, T, C) <-> (T, B, C), as a C-contiguous copy (the kernels read each
    step's rows as one block)."""
    return np.ascontiguousarray(A.transpose(1, 0, 2))


def _torch_arrays(sd, want: dict, layer: str) -> dict:
    """sd's arrays under exactly the names of `want` (name -> shape), as NumPy;
    a missing, unexpected or misshaped key is a ValueError naming it."""
    if not hasattr(sd, "keys"):
        raise TypeError(f"{layer}.load_torch_state_dict: expected a mapping of PyTorch "
                        f"parameter names to arrays, got {type(sd).__name__}")
    missing = [k for k in want if k not in sd]
    if missing:
        raise ValueError(f"{layer}.load_torch_state_dict: missing key {missing[0]!r} "
                         f"(expected {want[missing[0]]}); missing: {missing}")
    extra = [k for k in sd if k not in want]
    if extra:
        raise ValueError(f"{layer}.load_torch_state_dict: unexpected key {extra[0]!r} "
                         f"(this layer has {sorted(want)})")
    out = {}
    for k, shape in want.items():
        a = sd[k]
        if hasattr(a, "detach"):          # a torch tensor: its NumPy view
            a = a.detach().cpu().numpy()
        a = np.asarray(a)
        if a.shape != shape:
            raise ValueError(f"{layer}.load_torch_state_dict: key {k!r}: expected shape "
                             f"{shape}, got {a.shape}")
        if not (np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all()):
            raise ValueError(f"{layer}.load_torch_state_dict: key {k!r}: expected finite "
                             f"floating-point values, got dtype {a.dtype}")
        out[k] = a
    return out


class _GatedRNN(Layer):
    """What nk.LSTM and nk.GRU share: layers x directions of one cell, with
    PyTorch's parameter names, init and output (see nk.LSTM)."""
    GATES = 0
    KIND = ""

    def __init__(self, input_size: int, hidden_size: int, *, num_layers: int = 1,
                 bidirectional: bool = False, batch_first: bool = False, bias: bool = True,
                 dropout: float = 0.0, truncate: int | None = None, dtype=np.float64,
                 seed: int | None = None, rng: np.random.Generator | None = None):
        super().__init__()
        N = v.positive_int("input_size", input_size)
        Hh = v.positive_int("hidden_size", hidden_size)
        self.num_layers = v.positive_int("num_layers", num_layers)
        self.bidirectional = v.flag("bidirectional", bidirectional)
        self.batch_first = v.flag("batch_first", batch_first)
        self.bias = v.flag("bias", bias)
        self.dropout = v.drop_prob("dropout", dropout)
        v.truncate_steps(truncate)
        self.truncate = truncate
        self.input_size, self.hidden_size = N, Hh
        dtype = v.float_dtype(dtype)
        own = seed is not None or rng is not None
        rng, k = generator(seed, rng), 1.0 / np.sqrt(Hh)
        # the dropout masks continue the init's generator when seed or rng is
        # given (a seeded layer is reproducible), else the library's (nk.seed)
        self._drop_rng = rng if own else None
        G = self.GATES
        D = 2 if self.bidirectional else 1
        for l in range(self.num_layers):
            n_in = N if l == 0 else D * Hh
            for d in range(D):
                sfx = self._suffix(l, d)
                self.add_param("weight_ih" + sfx, _uniform(rng, (G * Hh, n_in), k, dtype))
                self.add_param("weight_hh" + sfx, _uniform(rng, (G * Hh, Hh), k, dtype))
                if self.bias:
                    self.add_param("bias_ih" + sfx, _uniform(rng, (G * Hh,), k, dtype))
                    self.add_param("bias_hh" + sfx, _uniform(rng, (G * Hh,), k, dtype))
        self.h_n = self.dh0 = self.grad_norms = None

    @staticmethod
    def _suffix(l: int, d: int) -> str:
        return f"_l{l}" + ("_reverse" if d else "")

    @property
    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    def extra_repr(self) -> str:
        r = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            r += f", num_layers={self.num_layers}"
        if self.bidirectional:
            r += ", bidirectional=True"
        if self.batch_first:
            r += ", batch_first=True"
        if not self.bias:
            r += ", bias=False"
        if self.dropout:
            r += f", dropout={self.dropout:g}"
        if self.truncate:
            r += f", truncate={self.truncate}"
        return r + _dtype_repr(self)

    def _state(self, name: str, s, B: int, dtype):
        """(L·D, B, H) initial states as PyTorch's h0/c0 (None: zeros)."""
        LD = self.num_layers * self._directions
        if s is None:
            return [None] * LD
        s = v.float_array(name, s, 3, "(num_layers * num_directions, B, hidden_size)",
                          dtype=dtype, dtype_of="the layer's dtype")
        if s.shape != (LD, B, self.hidden_size):
            raise ValueError(f"{name}: expected shape ({LD}, {B}, {self.hidden_size}) "
                             f"(num_layers * num_directions, B, hidden_size), got {s.shape}")
        return [np.ascontiguousarray(s[i]) for i in range(LD)]

    def _params(self, sfx: str):
        p = self.params
        return (p["weight_ih" + sfx], p["weight_hh" + sfx], p.get("bias_ih" + sfx),
                p.get("bias_hh" + sfx))

    def _run(self, X, states):
        """Every layer and direction; states[i] = (h0,) or (h0, c0) of chain i."""
        dtype = self.params["weight_hh_l0"].dtype
        X = v.float_array("X", X, 3, "(B, T, N)" if self.batch_first else
                          "(T, B, N), time-major", dtype=dtype, dtype_of="the layer's dtype")
        v.same_dim("X", X.shape[2], self.input_size, "X.shape[2] (input_size)")
        if self.batch_first:
            X = _time_major(X)
        caches, drops = [], []
        x = X
        D = self._directions
        for l in range(self.num_layers):
            outs = []
            for d in range(D):
                H, c = self._cell_forward(x, states(l * D + d), self._params(self._suffix(l, d)),
                                          bool(d))
                outs.append(H)
                caches.append(c)
            x = outs[0] if D == 1 else np.concatenate(outs, axis=2)
            # torch's dropout: on every layer's output but the last, in training
            # only (eval, or dropout=0, draws no mask); drops[l] feeds layer l+1
            if l < self.num_layers - 1 and self.training and self.dropout > 0:
                x, dcache = dr.dropout_forward(x, 1.0 - self.dropout, self._drop_rng)
                drops.append(dcache)
            else:
                drops.append(None)
        self._cache = (caches, drops)
        return (_time_major(x) if self.batch_first else x), caches

    def backward(self, dH):
        caches, drops = self.cache()
        T, B, Hh = caches[0].H.shape
        D = self._directions
        shape = (T, B, D * Hh)
        dH = v.upstream("dH", dH, _swap01(shape) if self.batch_first else shape,
                        caches[0].X.dtype)
        if self.batch_first:
            dH = _time_major(dH)
        k = v.truncate_steps(self.truncate)
        dh0, norms = [None] * len(caches), [None] * len(caches)
        for l in reversed(range(self.num_layers)):
            dx = None
            for d in range(D):
                i = l * D + d
                dHd = dH if D == 1 else np.ascontiguousarray(dH[:, :, d * Hh:(d + 1) * Hh])
                g = self._cell_backward(dHd, caches[i], k, dx)
                dx = g.dX
                sfx = self._suffix(l, d)
                self.accumulate_grads(**{"weight_ih" + sfx: g.dW_ih, "weight_hh" + sfx: g.dW_hh})
                if self.bias:
                    self.accumulate_grads(**{"bias_ih" + sfx: g.db_ih, "bias_hh" + sfx: g.db_hh})
                dh0[i], norms[i] = g, g.grad_norms
            dH = dx if l == 0 or drops[l - 1] is None else dr.dropout_backward(dx, drops[l - 1])
        self._after_backward(dh0)
        self.grad_norms = np.stack(norms)
        return _time_major(dH) if self.batch_first else dH

    def load_torch_state_dict(self, sd) -> "_GatedRNN":
        """Copy torch.nn.LSTM/GRU's state dict (NumPy arrays, or CPU tensors,
        under PyTorch's names: weight_ih_l0, weight_hh_l0, bias_ih_l0,
        bias_hh_l0, ..._reverse) into this layer's parameters. A missing,
        unexpected or misshaped key: ValueError naming it; nothing is
        copied then."""
        want = {name: p.shape for name, p in self.params.items()}
        arrays = _torch_arrays(sd, want, type(self).__name__)
        for name, a in arrays.items():
            self.params[name][...] = a
        return self

    def state_names(self) -> list[str]:
        """The parameter names, in PyTorch's state-dict order."""
        return list(self.params)


class LSTM(_GatedRNN):
    """LSTM over a time-major sequence (T, B, N) -> every step's top-layer
    output (T, B, D·H), as torch.nn.LSTM's `output` (D = 2 when
    bidirectional: [forward, reverse] along the last axis).

    Parameters under PyTorch's names and shapes: weight_ih_l{k} (4H, N or
    D·H), weight_hh_l{k} (4H, H), bias_ih_l{k}, bias_hh_l{k} (4H,), and
    ..._reverse for the second direction; gate blocks i, f, g, o. Init U(−1/√H,
    1/√H) for all, as PyTorch (from the library generator unless `seed` or
    `rng` is given). load_torch_state_dict(sd) takes a PyTorch state dict.

    forward(X, h0=None, c0=None), h0/c0 (num_layers·D, B, H) as PyTorch's
    (h_0, c_0); sets .h_n, .c_n. backward(dH) -> dX; sets .dh0, .dc0
    (num_layers·D, B, H) and .grad_norms, .cell_norms (num_layers·D, T).

    dropout=p (torch's `dropout`, a drop probability in [0, 1)): inverted
    dropout on each layer's output except the last's, in training mode only;
    masks from the layer's generator when seed or rng is given, else the
    library's (nk.seed). state_dict() does not hold the generator's state
    (as torch's does not hold its RNG's): a run resumed from a checkpoint
    with dropout > 0 draws other masks than the uninterrupted run.

    Where nnkit differs on purpose: time-major (T, B, N) is the default as in
    PyTorch, but forward returns only `output` (the final states are the
    attributes h_n, c_n, not a tuple) and takes h0, c0 as two arguments;
    truncate=k gives truncated BPTT.
    """
    GATES = 4
    KIND = "LSTM"

    def forward(self, X, h0=None, c0=None):
        dtype = self.params["weight_hh_l0"].dtype
        B = v.float_array("X", X, 3, "(T, B, N)", dtype=dtype,
                          dtype_of="the layer's dtype").shape[0 if self.batch_first else 1]
        hs = self._state("h0", h0, B, dtype)
        cs = self._state("c0", c0, B, dtype)
        out, finals = self._run(X, lambda i: (hs[i], cs[i]))
        self.h_n = np.stack([c.H[0 if c.reverse else -1] for c in finals])
        self.c_n = np.stack([c.C[0 if c.reverse else -1] for c in finals])
        return out

    @staticmethod
    def _cell_forward(x, state, params, reverse):
        return gated.lstm_forward(x, state[0], state[1], *params, reverse=reverse)

    @staticmethod
    def _cell_backward(dH, cache, k, dx):
        return gated._lstm_backward(dH, cache, k, False, accumulate_into=dx)

    def _after_backward(self, grads):
        self.dh0 = np.stack([g.dh0 for g in grads])
        self.dc0 = np.stack([g.dc0 for g in grads])
        self.cell_norms = np.stack([g.cell_norms for g in grads])


class GRU(_GatedRNN):
    """GRU over a time-major sequence (T, B, N) -> every step's top-layer
    output (T, B, D·H), as torch.nn.GRU's `output`.

    Parameters under PyTorch's names: weight_ih_l{k} (3H, ·), weight_hh_l{k}
    (3H, H), bias_ih_l{k}, bias_hh_l{k} (3H,), ..._reverse; gate blocks r, z, n
    with n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)). Init U(−1/√H, 1/√H).
    forward(X, h0=None) (h0 (num_layers·D, B, H)), sets .h_n; backward(dH) ->
    dX, sets .dh0 and .grad_norms. dropout=p between layers as nk.LSTM.
    Differs from PyTorch as nk.LSTM does (forward returns only `output`;
    truncate=).
    """
    GATES = 3
    KIND = "GRU"

    def forward(self, X, h0=None):
        dtype = self.params["weight_hh_l0"].dtype
        B = v.float_array("X", X, 3, "(T, B, N)", dtype=dtype,
                          dtype_of="the layer's dtype").shape[0 if self.batch_first else 1]
        hs = self._state("h0", h0, B, dtype)
        out, finals = self._run(X, lambda i: (hs[i],))
        self.h_n = np.stack([c.H[0 if c.reverse else -1] for c in finals])
        return out

    @staticmethod
    def _cell_forward(x, state, params, reverse):
        return gated.gru_forward(x, state[0], *params, reverse=reverse)

    @staticmethod
    def _cell_backward(dH, cache, k, dx):
        return gated._gru_backward(dH, cache, k, False, accumulate_into=dx)

    def _after_backward(self, grads):
        self.dh0 = np.stack([g.dh0 for g in grads])


class BiRNN(Layer):
    """Bidirectional RNN (P9.4): (T, B, N) -> outputs y_t (T, B, K).

    Parameters Wxf, Whf, Wxb, Whb (and bf, bb with bias=True), Wy (K, 2M), by.
    forward(X, hf0=None, hb0=None); backward(dY) -> dX, and sets .dhf0, .dhb0.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, *,
                 activation: str = "sigmoid", bias: bool = False, dtype=np.float64,
                 seed: int | None = None, rng: np.random.Generator | None = None):
        super().__init__()
        N = v.positive_int("input_size", input_size)
        M = v.positive_int("hidden_size", hidden_size)
        K = v.positive_int("output_size", output_size)
        self.activation = v.choice("activation", activation, rnn.ACTIVATIONS)
        dtype = v.float_dtype(dtype)
        rng, k = generator(seed, rng), 1.0 / np.sqrt(M)
        self.bias = v.flag("bias", bias)
        for c in ("f", "b"):
            self.add_param("Wx" + c, _uniform(rng, (M, N), k, dtype))
            self.add_param("Wh" + c, _uniform(rng, (M, M), k, dtype))
            if self.bias:
                self.add_param("b" + c, _uniform(rng, (M,), k, dtype))
        k = 1.0 / np.sqrt(2 * M)
        self.add_param("Wy", _uniform(rng, (K, 2 * M), k, dtype))
        self.add_param("by", _uniform(rng, (K,), k, dtype))
        self.dhf0 = self.dhb0 = self.grad_norms = None

    def extra_repr(self) -> str:
        M, N = self.params["Wxf"].shape
        K = self.params["Wy"].shape[0]
        return (f"{N}, {M}, {K}, activation={self.activation!r}, bias={self.bias}"
                + _dtype_repr(self))

    def forward(self, X, hf0=None, hb0=None):
        p = self.params
        X = v.float_array("X", X, 3, "(T, B, N), time-major", dtype=p["Wy"].dtype,
                           dtype_of="the layer's dtype")
        v.same_dim("X", X.shape[2], p["Wxf"].shape[1], "X.shape[2] (input_size)")
        Y, self._cache = rnn.birnn_forward(
            X, hf0, hb0, p["Wxf"], p["Whf"], p["Wxb"], p["Whb"], p["Wy"], p["by"],
            self.activation, bf=p.get("bf"), bb=p.get("bb"),
            out=self.out("Y", X.shape[:2] + (p["Wy"].shape[0],), X.dtype, X))
        return Y

    def backward(self, dY):
        c = self.cache()
        g = rnn.birnn_backward(dY, c, full=False,
                               out=self.out("dX", c.X.shape, c.X.dtype, v.array_or_empty(dY)))
        self.accumulate_grads(**{name: getattr(g, "d" + name) for name in self.params})
        self.dhf0, self.dhb0, self.grad_norms = g.dhf0, g.dhb0, g.grad_norms
        return g.dX


class LastStep(Layer):
    """(T, B, C) -> (B, C): the last time step, for a loss on the final state
    (Sequential(RNN(N, M), LastStep(), Linear(M, K)) classifies a sequence).
    backward puts dY at t = T and zeros at every other step. batch_first=True
    takes (B, T, C), after a batch_first RNN/LSTM/GRU (torch's output[:, -1]).

    A loss on every step needs no layer: Sequential(RNN(N, M), Linear(M, K))
    gives (T, B, K) logits; feed SoftmaxCrossEntropy logits.reshape(-1, K) and
    labels y.reshape(-1) (y time-major, (T, B)), and pass its gradient back
    reshaped to (T, B, K) (the loss is then the mean over all T·B steps)."""

    def __init__(self, *, batch_first: bool = False):
        super().__init__()
        self.batch_first = v.flag("batch_first", batch_first)

    def extra_repr(self) -> str:
        return "batch_first=True" if self.batch_first else ""

    def forward(self, H):
        doc = "(B, T, C), batch_first" if self.batch_first else "(T, B, C), time-major"
        H = v.float_array("H", H, 3, doc)
        v.nonempty("H", H, doc)
        self._cache = H.shape, H.dtype
        return (H[:, -1] if self.batch_first else H[-1]).copy()

    def backward(self, dY):
        shape, dtype = self.cache()
        dY = v.upstream("dY", dY, (shape[0], shape[2]) if self.batch_first else shape[1:],
                        dtype)
        dH = np.zeros(shape, dtype)
        if self.batch_first:
            dH[:, -1] = dY
        else:
            dH[-1] = dY
        return dH


# ------------------------------------------------------------- composition
class Sequential(Layer):
    """Layers applied in order; backward runs them in reverse.

    Parameters are exposed as "<index>.<name>" (e.g. "0.W"), the same arrays
    the layers hold; a layer that appears twice (weights shared between two
    places) is listed once, under its first index, and its gradient is the
    sum of both uses. `len(model)`, `model[i]` (a slice gives a Sequential),
    iteration and `print(model)` work as for torch.nn.Sequential.
    reuse_buffers=True turns buffer reuse on in every layer (refused when a
    layer appears twice: its second use would overwrite the first's buffers).
    """

    def __init__(self, *layers: Layer, reuse_buffers: bool = False):
        super().__init__()
        self.layers = list(layers)
        seen: set[int] = set()
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}]: expected an nnkit Layer, got {type(layer).__name__}")
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            for name, p, g in layer.named_parameters_and_grads():
                self.params[f"{i}.{name}"] = p
                self.grads[f"{i}.{name}"] = g
        reuse_buffers = v.flag("reuse_buffers", reuse_buffers)
        if reuse_buffers and len(seen) < len(self.layers):
            raise ValueError("reuse_buffers: expected False when a layer appears twice "
                             "(its second use would overwrite the first's buffers), got True")
        self.reuse(reuse_buffers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __repr__(self) -> str:
        lines = [f"  ({i}): " + repr(layer).replace("\n", "\n  ")
                 for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)" if lines else "Sequential()"

    def named_buffers(self):
        """Every layer's running statistics as "<index>.<name>" (each layer once)."""
        seen: set[int] = set()
        for i, layer in enumerate(self.layers):
            if id(layer) not in seen:
                seen.add(id(layer))
                for name, b in layer.named_buffers():
                    yield f"{i}.{name}", b

    def train(self, mode: bool = True) -> "Sequential":
        super().train(mode)
        for layer in self.layers:
            layer.train(mode)
        return self

    def reuse(self, flag: bool = True) -> "Sequential":
        super().reuse(flag)
        for layer in self.layers:
            layer.reuse(flag)
        return self

    def forward(self, x):
        # one cache per use: a layer that appears twice keeps both
        caches = []
        for layer in self.layers:
            x = layer.forward(x)
            caches.append(layer._cache)
        self._cache = caches
        return x

    def backward(self, dout):
        caches = self.cache()
        self._spent = True        # a failed backward is not retried: some layers added already
        for layer, cache in zip(reversed(self.layers), reversed(caches)):
            layer._cache = cache
            dout = layer.backward(dout)
        return dout


# ------------------------------------------- P6, P8: dropout, layer/instance norm
class Dropout(Layer):
    """Inverted dropout (P6): X ⊙ R / keep in training, R ~ Bernoulli(keep); identity in eval.

    `keep` is the keep probability: PyTorch's nn.Dropout(p) is Dropout(keep=1 − p).
    Masks come from the library generator (`nk.seed`) unless `seed` or `rng` is given.
    """

    def __init__(self, keep: float = 0.5, *, seed: int | None = None,
                 rng: np.random.Generator | None = None):
        super().__init__()
        self.keep = v.keep_prob(keep)
        self._rng = generator(seed, rng) if (seed is not None or rng is not None) else None

    def extra_repr(self) -> str:
        return f"keep={self.keep:g}"

    def forward(self, X):
        Y, self._cache = dr.dropout_forward(X, self.keep, self._rng, self.training)
        return Y

    def backward(self, dY):
        return dr.dropout_backward(dY, self.cache())

    @property
    def mask(self):
        """The last training forward's R (bool), or None."""
        return None if self._cache is None else self._cache.mask


class LayerNorm(Layer):
    """Layer norm (P8) over the trailing `normalized_shape` axes of X (..., *normalized_shape).

    γ (ones), β (zeros) of shape normalized_shape; the same in train and eval
    (no running statistics), as PyTorch's nn.LayerNorm.
    """

    def __init__(self, normalized_shape, *, eps: float = 1e-5, dtype=np.float64):
        super().__init__()
        self.normalized_shape = v.shape_tuple("normalized_shape", normalized_shape)
        self.eps = v.eps_value(eps)
        dtype = v.float_dtype(dtype)
        self.add_param("gamma", np.ones(self.normalized_shape, dtype))
        self.add_param("beta", np.zeros(self.normalized_shape, dtype))

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps:g}" + _dtype_repr(self)

    def forward(self, X):
        ns = self.normalized_shape
        X = v.float_array("X", X, None, f"(..., *{ns})", dtype=self.params["gamma"].dtype,
                           dtype_of="the layer's dtype")
        if X.ndim <= len(ns) or X.shape[X.ndim - len(ns):] != ns:
            raise ValueError(f"X: expected shape (..., *{ns}) with at least one leading "
                             f"axis, got {X.shape}")
        Z, c = norms.layernorm_forward(X.reshape((-1,) + ns), self.params["gamma"],
                                       self.params["beta"], self.eps)
        self._cache = (c, X.shape)
        return Z.reshape(X.shape)

    def backward(self, dZ):
        c, shape = self.cache()
        dZ = v.upstream("dZ", dZ, shape, c.X.dtype)
        g = norms.layernorm_backward(dZ.reshape(c.X.shape), c, full=False)
        self.accumulate_grads(gamma=g.dgamma, beta=g.dbeta)
        return g.dX.reshape(shape)


class InstanceNorm(Layer):
    """Instance norm (P8): X (B, C, ...) per (sample, channel) over the rest; γ, β (C,).

    The same in train and eval (PyTorch's default track_running_stats=False);
    affine γ = 1, β = 0 to start (PyTorch's affine=True).
    """

    def __init__(self, num_channels: int, *, eps: float = 1e-5, dtype=np.float64):
        super().__init__()
        C = v.positive_int("num_channels", num_channels)
        self.eps = v.eps_value(eps)
        dtype = v.float_dtype(dtype)
        self.add_param("gamma", np.ones(C, dtype))
        self.add_param("beta", np.zeros(C, dtype))

    def extra_repr(self) -> str:
        return f"{self.params['gamma'].shape[0]}, eps={self.eps:g}" + _dtype_repr(self)

    def forward(self, X):
        C = self.params["gamma"].shape[0]
        X = v.float_array("X", X, None, "(B, C, ...)", dtype=self.params["gamma"].dtype,
                           dtype_of="the layer's dtype")
        if X.ndim < 3 or X.shape[1] != C:
            raise ValueError(f"X: expected shape (B, {C}, ...) (num_channels = {C}, at "
                             f"least 3 axes), got {X.shape}")
        Z, self._cache = norms.instancenorm_forward(X, self.params["gamma"],
                                                    self.params["beta"], self.eps)
        return Z

    def backward(self, dZ):
        g = norms.instancenorm_backward(dZ, self.cache(), full=False)
        self.accumulate_grads(gamma=g.dgamma, beta=g.dbeta)
        return g.dX


class GroupNorm(Layer):
    """Group norm (P8): X (B, C, ...), the C channels in num_groups groups, each
    (sample, group) normalized over its channels and the rest; γ, β (C,).

    The same in train and eval (no running statistics), γ = 1, β = 0 to start:
    PyTorch's nn.GroupNorm(num_groups, num_channels).
    """

    def __init__(self, num_groups: int, num_channels: int, *, eps: float = 1e-5,
                 dtype=np.float64):
        super().__init__()
        C = v.positive_int("num_channels", num_channels)
        self.num_groups = v.num_groups(num_groups, C)
        self.eps = v.eps_value(eps)
        dtype = v.float_dtype(dtype)
        self.add_param("gamma", np.ones(C, dtype))
        self.add_param("beta", np.zeros(C, dtype))

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.params['gamma'].shape[0]}, eps={self.eps:g}"
                + _dtype_repr(self))

    def forward(self, X):
        C = self.params["gamma"].shape[0]
        X = v.float_array("X", X, None, "(B, C, ...)", dtype=self.params["gamma"].dtype,
                           dtype_of="the layer's dtype")
        if X.ndim < 2 or X.shape[1] != C:
            raise ValueError(f"X: expected shape (B, {C}, ...) (num_channels = {C}, at "
                             f"least 2 axes), got {X.shape}")
        Z, self._cache = norms.groupnorm_forward(X, self.params["gamma"], self.params["beta"],
                                                 self.num_groups, self.eps)
        return Z

    def backward(self, dZ):
        g = norms.groupnorm_backward(dZ, self.cache(), full=False)
        self.accumulate_grads(gamma=g.dgamma, beta=g.dbeta)
        return g.dX


# ------------------------------------------------------- P3, P10: convolution
class Conv2d(Layer):
    """2-D convolution, NCHW: X (B, C_in, H, W) -> (B, C_out, H', W') (nnkit.conv).

    W (C_out, C_in, kh, kw), b (C_out,). Init as PyTorch's nn.Conv2d
    (Kaiming uniform with a = √5): W and b ~ U(−1/√fan_in, 1/√fan_in),
    fan_in = C_in·kh·kw, from the library generator unless seed/rng is given.
    Pairs are (H-axis, W-axis); padding may be "valid" or "same" (stride 1, as
    PyTorch: `.padding` becomes the (H, W) pair, or stays "same" where an even
    kernel pads one more at the right / bottom than at the left / top).
    """
    geometry = "conv2d"

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding=0, dilation=1, *, bias: bool = True, dtype=np.float64,
                 seed: int | None = None, rng: np.random.Generator | None = None):
        super().__init__()
        C_in, C_out = v.positive_int("in_channels", in_channels), v.positive_int("out_channels", out_channels)
        kh, kw = (v.positive_int("kernel_size", k) for k in v.int_pair("kernel_size", kernel_size))
        self.stride, self.dilation = v.int_pair("stride", stride), v.int_pair("dilation", dilation)
        self.padding = conv._layer_padding(padding, (kh, kw), self.stride, self.dilation)
        rng, bound, dtype = generator(seed, rng), 1.0 / np.sqrt(C_in * kh * kw), v.float_dtype(dtype)
        self.add_param("W", _uniform(rng, (C_out, C_in, kh, kw), bound, dtype))
        self.bias = v.flag("bias", bias)
        if self.bias:
            self.add_param("b", _uniform(rng, (C_out,), bound, dtype))

    def extra_repr(self) -> str:
        C_out, C_in, kh, kw = self.params["W"].shape
        return (f"{C_in}, {C_out}, kernel_size=({kh}, {kw}), stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, bias={self.bias}"
                + _dtype_repr(self))

    def forward(self, X):
        W = self.params["W"]
        X = v.float_array("X", X, 4, "(B, in_channels, H, W)", dtype=W.dtype,
                           dtype_of="the layer's dtype")
        v.same_dim("X", X.shape[1], W.shape[1], "X.shape[1] (in_channels)")
        Y, self._cache = conv.conv2d_forward(X, W, self.params.get("b"),
                                             self.stride, self.padding, self.dilation)
        return Y

    def backward(self, dY):
        g = conv.conv2d_backward(dY, self.cache())
        self.accumulate_grads(W=g.dW, **({"b": g.db} if self.bias else {}))
        return g.dX


class _Pool2d(Layer):
    """Max or average pooling over (B, C, H, W); stride defaults to kernel_size."""
    geometry = "pool2d"
    kind = ""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = v.int_pair("kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else v.int_pair("stride", stride)
        self.padding = v.int_pair("padding", padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, X):
        fwd = getattr(conv, f"{self.kind}pool2d_forward")
        Y, self._cache = fwd(X, self.kernel_size, self.stride, self.padding)
        return Y

    def backward(self, dY):
        return getattr(conv, f"{self.kind}pool2d_backward")(dY, self.cache())


class MaxPool2d(_Pool2d):
    """Max pooling: the gradient goes to each window's arg-max (ties: first in row-major order)."""
    kind = "max"


class AvgPool2d(_Pool2d):
    """Average pooling: the gradient spreads evenly over each window (padding counts as 0)."""
    kind = "avg"


class Flatten(Layer):
    """(B, d1, d2, ...) -> (B, d1·d2·...), a view; backward reshapes back."""
    geometry = "flatten"

    def forward(self, X):
        X = v.float_array("X", X, None, "(B, ...)")
        if X.ndim < 1:
            raise ValueError(f"X: expected at least 1 dimension (the batch), got shape {X.shape}")
        self._cache = X.shape
        return X.reshape(X.shape[0], int(np.prod(X.shape[1:])))   # no -1: B may be 0

    def backward(self, dY):
        shape = self.cache()
        dY = v.float_array("dY", dY, None, "(B, features)")
        if dY.size != int(np.prod(shape)) or dY.ndim != 2 or dY.shape[0] != shape[0]:
            raise ValueError(f"dY: expected shape {(shape[0], int(np.prod(shape[1:])))} "
                             f"(the forward output), got {dY.shape}")
        return dY.reshape(shape)


# ============================================================================
# Training like a PyTorch script (issue 27): activations and losses
# (nnkit.activations, NumPy), checkpoints (state_dict / load_state_dict).
# Kept together here, apart from the families above.
# ============================================================================
from . import activations as act  # noqa: E402


class Tanh(Layer):
    """H = tanh(X), any shape (torch.nn.Tanh)."""

    def forward(self, X):
        H, self._cache = act.tanh_forward(X)
        return H

    def backward(self, dH):
        return act.tanh_backward(dH, self.cache())


class Sigmoid(Layer):
    """S = σ(X) = 1/(1 + e^{−X}), any shape (torch.nn.Sigmoid)."""

    def forward(self, X):
        S, self._cache = act.sigmoid_forward(X)
        return S

    def backward(self, dS):
        return act.sigmoid_backward(dS, self.cache())


class LeakyReLU(Layer):
    """H = X for X > 0, negative_slope·X elsewhere (torch.nn.LeakyReLU)."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = act._slope(negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope:g}"

    def forward(self, X):
        H, self._cache = act.leaky_relu_forward(X, self.negative_slope)
        return H

    def backward(self, dH):
        return act.leaky_relu_backward(dH, self.cache())


class GELU(Layer):
    """H = x Φ(x), or its tanh approximation (torch.nn.GELU(approximate=...))."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = v.choice("approximate", approximate, ("none", "tanh"))

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"

    def forward(self, X):
        H, self._cache = act.gelu_forward(X, self.approximate)
        return H

    def backward(self, dH):
        return act.gelu_backward(dH, self.cache())


class _Loss(Layer):
    _fns: tuple = ()
    _pred = "pred"

    def forward(self, pred, target=None):
        if target is None:
            raise TypeError(f"target: expected an array of {self._pred}'s shape, got None")
        loss, self._cache = type(self)._fns[0](pred, target)
        return loss

    def backward(self, dloss: float = 1.0):
        return type(self)._fns[1](dloss, self.cache())


class MSELoss(_Loss):
    """Loss layer: forward(pred, target) -> mean((pred − target)²); backward() -> dpred
    (torch.nn.MSELoss())."""
    _fns = (act.mse_loss, act.mse_loss_backward)


class BCEWithLogitsLoss(_Loss):
    """Loss layer: forward(logits, target) -> mean binary cross-entropy of σ(logits)
    against targets in [0, 1]; backward() -> dlogits (torch.nn.BCEWithLogitsLoss())."""
    _fns = (act.bcewithlogits_loss, act.bcewithlogits_loss_backward)
    _pred = "logits"
