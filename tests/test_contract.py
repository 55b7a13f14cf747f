"""The family contract (CONTRIBUTING.md) on every public pair: caches are
frozen dataclasses, named gradients NamedTuples of more than one field, every
backward takes (upstream, cache, *, options) and says what it returns."""
from __future__ import annotations

import dataclasses
import inspect

import numpy as np

import nnkit as nk

PUBLIC = {n: getattr(nk, n) for n in dir(nk) if not n.startswith("_")}
CACHES = {n: o for n, o in PUBLIC.items() if inspect.isclass(o) and n.endswith("Cache")}
GRADS = {n: o for n, o in PUBLIC.items() if inspect.isclass(o) and n.endswith("Grads")}
BACKWARDS = {n: o for n, o in PUBLIC.items() if inspect.isfunction(o) and n.endswith("_backward")}


def test_the_names_are_there():
    assert len(CACHES) >= 12 and len(GRADS) >= 12 and len(BACKWARDS) >= 16


def test_every_cache_is_a_frozen_dataclass():
    for name, cls in CACHES.items():
        assert dataclasses.is_dataclass(cls), f"{name}: expected a frozen dataclass"
        assert cls.__dataclass_params__.frozen, f"{name}: expected frozen=True"
        assert not issubclass(cls, tuple), f"{name}: a cache is read by name, not unpacked"


def test_every_named_result_is_a_namedtuple_of_several_gradients():
    for name, cls in GRADS.items():
        assert issubclass(cls, tuple) and hasattr(cls, "_fields"), f"{name}: a NamedTuple"
        assert len(cls._fields) > 1, (f"{name}: one gradient is returned as the array, "
                                      f"not a one-field tuple")
        # gradients, and the per-step norms BPTT reports beside them (grad_norms, cell_norms)
        assert all(f.startswith("d") or f.endswith("_norms") for f in cls._fields), name


def test_every_backward_takes_upstream_then_cache_then_options():
    for name, fn in BACKWARDS.items():
        params = list(inspect.signature(fn).parameters.values())
        assert params[0].name.startswith("d"), f"{name}: the upstream gradient first"
        assert params[1].name == "cache", f"{name}: the cache second"
        for p in params[2:]:
            assert p.kind is inspect.Parameter.KEYWORD_ONLY, f"{name}: {p.name} keyword-only"


def test_every_backward_returns_a_named_result_or_its_one_array():
    for name, fn in BACKWARDS.items():
        ret = inspect.signature(fn).return_annotation
        ret = ret if isinstance(ret, str) else getattr(ret, "__name__", str(ret))
        assert ret == "np.ndarray" or ret in GRADS, f"{name}: returns {ret!r}"


def test_one_gradient_comes_back_as_the_array():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, 3, 4, 4))
    G = rng.standard_normal(X.shape)
    assert isinstance(nk.relu_backward(G, nk.relu_forward(X)[1]), np.ndarray)
    assert isinstance(nk.dropout_backward(G, nk.dropout_forward(X, 0.5, rng=rng)[1]),
                      np.ndarray)
    for kind in ("max", "avg"):
        Y, c = getattr(nk, f"{kind}pool2d_forward")(X, 2)
        assert isinstance(getattr(nk, f"{kind}pool2d_backward")(np.ones_like(Y), c),
                          np.ndarray)
    _, c = nk.softmax_cross_entropy(X[:, :, 0, 0], np.array([0, 2]))
    assert isinstance(nk.softmax_cross_entropy_backward(1.0, c), np.ndarray)
