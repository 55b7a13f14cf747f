"""Layer objects: parameters, their gradients, a training flag, running stats.

Each layer wraps a functional forward/backward pair. Output and input-gradient
buffers are reused across calls of the same shape (a fresh large array costs
page faults on every call), so a returned array is overwritten by the layer's
next call: copy it if you keep it.
"""
from __future__ import annotations

import numpy as np

from . import _validate as v
from . import batchnorm as bn
from . import dense
from . import softmax as sm


class Layer:
    training: bool = True

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._buffers: dict[str, np.ndarray] = {}
        self.training = True

    def train(self, mode: bool = True) -> "Layer":
        self.training = bool(mode)
        return self

    def eval(self) -> "Layer":
        return self.train(False)

    def _buffer(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """A reusable array of this shape and dtype (reallocated when they change)."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = np.empty(shape, dtype)
            self._buffers[name] = buf
        return buf

    def __call__(self, x):
        return self.forward(x)

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g[...] = 0


class Linear(Layer):
    """Y = X Wᵀ + b with W (out_features, in_features), LeCun-normal init (P7)."""

    def __init__(self, in_features: int, out_features: int, *, dtype=np.float64,
                 seed: int | None = 0, bias: bool = True):
        super().__init__()
        in_features = v.positive_int("in_features", in_features)
        out_features = v.positive_int("out_features", out_features)
        dtype = np.dtype(dtype)
        if dtype not in v.FLOAT_DTYPES:
            raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
        rng = np.random.default_rng(seed)
        self.params["W"] = (rng.standard_normal((out_features, in_features))
                            / np.sqrt(in_features)).astype(dtype)
        self.params["b"] = np.zeros(out_features, dtype)
        self.bias = bias
        self.grads = {k: np.zeros_like(p) for k, p in self.params.items()}
        self._cache = None

    def forward(self, X):
        X = v.float_array("X", X, 2, "(B, N)", dtype=self.params["W"].dtype)
        out = self._buffer("Y", (X.shape[0], self.params["W"].shape[0]), X.dtype)
        Y, self._cache = dense.affine_forward(X, self.params["W"], self.params["b"], out=out)
        return Y

    def backward(self, dY):
        if self._cache is None:
            raise RuntimeError("backward: call forward first")
        out = self._buffer("dX", self._cache.X.shape, self._cache.X.dtype)
        g = dense.affine_backward(dY, self._cache, out=out)
        self.grads["W"][...] = g.dW
        if self.bias:
            self.grads["b"][...] = g.db
        else:
            self.grads["b"][...] = 0
        return g.dX


class ReLU(Layer):
    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, Y):
        Y = np.asarray(Y)
        out = self._buffer("H", Y.shape, Y.dtype) if Y.dtype in v.FLOAT_DTYPES else None
        H, self._cache = dense.relu_forward(Y, out=out)
        return H

    def backward(self, dH):
        if self._cache is None:
            raise RuntimeError("backward: call forward first")
        H = self._cache.H
        return dense.relu_backward(dH, self._cache, out=self._buffer("dY", H.shape, H.dtype))


class BatchNorm(Layer):
    """Batch norm over features (P2), optionally fused with the following ReLU.

    Training: normalize with the batch statistics and update the running ones
    (momentum convention in nnkit.batchnorm). Eval: use the running statistics.
    """

    def __init__(self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.1,
                 relu: bool = False, dtype=np.float64):
        super().__init__()
        num_features = v.positive_int("num_features", num_features)
        self.eps = v.eps_value(eps)
        self.momentum = v.momentum_value(momentum)
        self.relu = bool(relu)
        dtype = np.dtype(dtype)
        if dtype not in v.FLOAT_DTYPES:
            raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
        self.params["gamma"] = np.ones(num_features, dtype)
        self.params["beta"] = np.zeros(num_features, dtype)
        self.grads = {k: np.zeros_like(p) for k, p in self.params.items()}
        self.running_mean = np.zeros(num_features, dtype)
        self.running_var = np.ones(num_features, dtype)
        self._cache = None
        self._eval_input = None

    def forward(self, Y):
        Y = v.float_array("Y", Y, 2, "(B, M)", dtype=self.params["gamma"].dtype)
        out = self._buffer("Z", Y.shape, Y.dtype)
        g, b = self.params["gamma"], self.params["beta"]
        if not self.training:
            self._cache, self._eval_input = None, Y
            return bn.batchnorm_eval_forward(Y, g, b, self.running_mean, self.running_var,
                                             self.eps, relu=self.relu, out=out)
        fwd = bn.bn_relu_forward if self.relu else bn.batchnorm_forward
        Z, self._cache = fwd(Y, g, b, self.eps, out=out)
        bn.update_running_stats(self.running_mean, self.running_var, self._cache, self.momentum)
        return Z

    def backward(self, dout):
        if self._cache is None:
            raise RuntimeError("backward: needs a training-mode forward first "
                               "(eval mode treats the statistics as constants)")
        out = self._buffer("dY", self._cache.Y.shape, self._cache.Y.dtype)
        bwd = bn.bn_relu_backward if self.relu else bn.batchnorm_backward
        g = bwd(dout, self._cache, full=False, out=out)
        self.grads["gamma"][...] = g.dgamma
        self.grads["beta"][...] = g.dbeta
        return g.dY


class SoftmaxCrossEntropy(Layer):
    """Loss layer: forward(logits, labels) -> mean cross-entropy; backward() -> dlogits."""

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, logits, labels=None):
        if labels is None:
            raise TypeError("labels: expected class indices (B,) or targets (B, K), got None")
        loss, self._cache = sm.softmax_cross_entropy(logits, labels)
        return loss

    def __call__(self, logits, labels=None):
        return self.forward(logits, labels)

    def backward(self, dloss: float = 1.0):
        if self._cache is None:
            raise RuntimeError("backward: call forward first")
        P = self._cache.P
        return sm.softmax_cross_entropy_backward(self._cache, dloss,
                                                 out=self._buffer("dZ", P.shape, P.dtype))

    @property
    def probs(self):
        return None if self._cache is None else self._cache.P


class Sequential(Layer):
    """Layers applied in order; backward runs them in reverse."""

    def __init__(self, *layers: Layer):
        super().__init__()
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}]: expected an nnkit Layer, got {type(layer).__name__}")
            for k, p in layer.params.items():
                self.params[f"{i}.{k}"] = p
                self.grads[f"{i}.{k}"] = layer.grads[k]

    def train(self, mode: bool = True):
        super().train(mode)
        for layer in self.layers:
            layer.train(mode)
        return self

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout
