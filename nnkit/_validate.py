"""Input checks shared by every public function.

Every check runs before any kernel and raises a TypeError (wrong kind or
dtype) or ValueError (wrong shape or value) whose message names the argument,
what was expected and what was given. Kernels never see bad input.
"""
from __future__ import annotations

import math
import os

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# SciPy's BLAS takes 32-bit ints for dimensions and leading strides.
_MAX_DIM = 2**31 - 1


_CORES = os.cpu_count() or 1

# What a NaN or ±inf in an input does: "propagate" (IEEE arithmetic carries it
# to the outputs; no extra pass over the data) or "raise" (a ValueError naming
# the argument and the first bad element, before any kernel runs).
NAN_POLICIES = ("propagate", "raise")
_nan_policy = "propagate"


def set_nan_policy(policy: str) -> str:
    """Set how non-finite inputs are treated; returns the previous policy."""
    global _nan_policy
    if policy not in NAN_POLICIES:
        raise ValueError(f"policy: expected one of {list(NAN_POLICIES)}, got {policy!r}")
    previous, _nan_policy = _nan_policy, policy
    return previous


def get_nan_policy() -> str:
    return _nan_policy


def num_threads() -> int:
    """Threads the kernels may use: NNKIT_NUM_THREADS, else the core count.

    Read on every call (a dict lookup; os.cpu_count() is cached, it costs
    microseconds) so the variable can be changed at run time.
    """
    env = os.environ.get("NNKIT_NUM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n >= 1:
            return n
    return _CORES


def float_array(name: str, a, ndim: int | None, shape_doc: str, dtype=None) -> np.ndarray:
    """`a` as a C-contiguous float32/float64 array with `ndim` dimensions (any if None).

    Non-contiguous input is copied (never read with the wrong strides);
    contiguous input is used as is and never written to.
    """
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name}: expected a float array {shape_doc}, "
                            f"got {type(a).__name__} ({exc})") from None
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)} (the dtype of "
                        f"the other inputs), got {arr.dtype}; convert explicitly, "
                        f"nnkit does not mix precisions")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array {shape_doc}, "
                         f"got shape {arr.shape}")
    for d in arr.shape:
        if d > _MAX_DIM:
            raise ValueError(f"{name}: dimension {d} exceeds {_MAX_DIM} (32-bit BLAS)")
    if _nan_policy == "raise":
        finite = np.isfinite(arr)
        if not finite.all():
            idx = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise ValueError(f"{name}: expected finite values (nan_policy='raise'), "
                             f"got {arr[idx]} at index {idx}")
    return np.asarray(arr, order="C")  # ascontiguousarray would turn 0-d into 1-d


def nonempty(name: str, arr: np.ndarray, shape_doc: str) -> None:
    if arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty array {shape_doc}, got shape {arr.shape}")


def same_dim(name: str, actual: int, expected: int, what: str) -> None:
    if actual != expected:
        raise ValueError(f"{name}: expected {what} = {expected}, got {actual}")


def eps_value(eps) -> float:
    if isinstance(eps, (bool, np.bool_)):
        raise TypeError(f"eps: expected a finite number >= 0, got {eps!r}")
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise TypeError(f"eps: expected a finite number >= 0, got {eps!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"eps: expected a finite number >= 0, got {value}")
    if value < 0:
        raise ValueError(f"eps: expected a finite number >= 0, got {value} "
                         f"(v + eps must stay >= 0 under the square root)")
    return value


def batch_for_statistics(name: str, B: int, what: str = "training-mode batch norm") -> None:
    if B < 2:
        raise ValueError(
            f"{name}: {what} needs a batch of at least 2 rows, got B = {B}: with one "
            f"sample every feature equals its own mean, so the batch variance is 0 "
            f"and Yhat = 0/sqrt(eps) carries no information (use eval mode with "
            f"running statistics for single samples)")


def out_array(out, shape: tuple, dtype, name: str = "out") -> np.ndarray:
    """A caller's output buffer after checking it, or a new empty array."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array or None, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{name}: expected a writeable C-contiguous array")
    return out


def no_overlap(out: np.ndarray, name: str, **inputs: np.ndarray) -> None:
    """Inputs are never modified: an output must not share memory with one."""
    for other, arr in inputs.items():
        if arr is not None and np.may_share_memory(out, arr):
            raise ValueError(f"{name}: shares memory with input {other}; nnkit never "
                             f"overwrites its inputs")


def cache_of(cache, cls, producer: str) -> None:
    """A backward got the cache its own forward returned (not another layer's)."""
    if not isinstance(cache, cls):
        raise TypeError(f"cache: expected the cache returned by {producer} "
                        f"({cls.__name__}), got {type(cache).__name__}")


def positive_int(name: str, value) -> int:
    """A layer size: a positive int (not a bool, not a float)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def momentum_value(momentum) -> float:
    """Running-statistics momentum in [0, 1]."""
    try:
        m = float(momentum)
    except (TypeError, ValueError):
        raise TypeError(f"momentum: expected a value in [0, 1], got {momentum!r}") from None
    if isinstance(momentum, (bool, np.bool_)) or not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum: expected a value in [0, 1], got {momentum!r}")
    return m
