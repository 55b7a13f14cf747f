"""Input checks shared by every public function and layer: all of them live here.

Every check runs before any kernel. One rule: a wrong type or dtype raises
TypeError, a wrong shape or value raises ValueError; the message starts with
the argument's name and says what was expected and what was given. Kernels
never see bad input (they run without bounds checks).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# SciPy's BLAS takes 32-bit ints for dimensions and leading strides.
_MAX_DIM = 2**31 - 1


# What a NaN or ±inf in an input does: "propagate" (IEEE arithmetic carries it
# to the outputs; no extra pass over the data) or "raise" (a ValueError naming
# the argument and the first bad element, before any kernel runs).
NAN_POLICIES = ("propagate", "raise")
_nan_policy = "propagate"


def set_nan_policy(policy: str) -> str:
    """Set how non-finite inputs are treated; returns the previous policy."""
    global _nan_policy
    choice("policy", policy, NAN_POLICIES)   # a str first: an array has no truth value
    previous, _nan_policy = _nan_policy, policy
    return previous


def get_nan_policy() -> str:
    """The current NaN policy: "propagate" (the default) or "raise" (see set_nan_policy)."""
    return _nan_policy


def float_array(name: str, a, ndim: int | None, shape_doc: str, dtype=None,
                dtype_of: str = "the dtype of the other inputs") -> np.ndarray:
    """`a` as a C-contiguous float32/float64 array with `ndim` dimensions (any if None).

    Non-contiguous input is copied (never read with the wrong strides);
    contiguous input is used as is and never written to.
    """
    if isinstance(a, np.ndarray):
        arr = a
    elif a is None:      # np.asarray(None) is a 0-d object array: "got object" misleads
        raise TypeError(f"{name}: expected an array {shape_doc}, got None")
    else:
        try:
            arr = np.asarray(a)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name}: expected a float array {shape_doc}, "
                            f"got {type(a).__name__} ({exc})") from None
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)} ({dtype_of}), "
                        f"got {arr.dtype}; convert explicitly, nnkit does not mix precisions")
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


def is_real(value) -> bool:
    """A real number: an int or float (Python or NumPy), or a 0-d integer/float
    array. A bool, a string (even "1e-5": float() would parse it), None, a
    complex or a container is not."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        return False
    if isinstance(value, numbers.Real):
        return True
    return isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf"


def _float_scalar(name: str, value, expected: str) -> float:
    """float(value) for the scalar checks below (eps, momentum, keep), whose
    range the caller checks: anything but a real number (a bool, a string,
    None; see is_real) is a TypeError "{name}: expected {expected}, got
    {value!r}". One conversion, so the checks refuse the same inputs with the
    same message form."""
    if not is_real(value):
        raise TypeError(f"{name}: expected {expected}, got {value!r}")
    return float(value)


def eps_value(eps) -> float:
    value = _float_scalar("eps", eps, "a finite number >= 0")
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


def ndim_of(x) -> int:
    """np.ndim(x), or -1 where NumPy cannot make an array of x (a ragged list):
    for dispatching on the number of axes before the argument is checked."""
    try:
        return np.ndim(x)
    except Exception:
        return -1


def array_or_empty(x) -> np.ndarray:
    """x itself if it is an array, else an empty one: for a layer's buffer-overlap
    test before the argument is checked (a ragged list must reach the check,
    not fail in np.asarray)."""
    return x if isinstance(x, np.ndarray) else np.empty(0)


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
    """A size or a count: a positive int (a bool, a float or a string is a TypeError)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected a positive integer, got "
                        f"{type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    if value > _MAX_DIM:
        raise ValueError(f"{name}: expected at most {_MAX_DIM} (32-bit BLAS dimensions), "
                         f"got {value!r}")
    return int(value)


def running_stat(name: str, a, M: int) -> np.ndarray:
    """A running statistic updated in place: a writeable float32/float64 array (M,)."""
    if not isinstance(a, np.ndarray) or a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected a float32/float64 numpy array (M,) = ({M},) "
                        f"(it is updated in place), got {type(a).__name__} "
                        f"{getattr(a, 'dtype', '')}".rstrip())
    if a.shape != (M,):
        raise ValueError(f"{name}: expected shape ({M},) (M, the batch's features), "
                         f"got {a.shape}")
    if not a.flags.writeable:
        raise ValueError(f"{name}: expected a writeable array (it is updated in place)")
    return a


def perturbable(name: str, x) -> np.ndarray:
    """An array finite differences perturb in place: a writeable float64 numpy array."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        raise TypeError(f"{name}: expected float64 numpy array (perturbed in place, "
                        f"finite differences run in double), got {type(x).__name__} "
                        f"{getattr(x, 'dtype', '')}".rstrip())
    if not x.flags.writeable or not x.flags.c_contiguous:
        raise ValueError(f"{name}: expected a writeable C-contiguous array (perturbed in "
                         f"place through its flat view), got strides {x.strides}")
    return x


def differentiable(name: str, x) -> None:
    """An input a gradient check differentiates: a float numpy array."""
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise TypeError(f"{name}: expected a float numpy array to differentiate, got "
                        f"{type(x).__name__} {getattr(x, 'dtype', '')}".rstrip())


def momentum_value(momentum) -> float:
    """Running-statistics momentum in [0, 1]."""
    m = _float_scalar("momentum", momentum, "a value in [0, 1]")
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum: expected a value in [0, 1], got {momentum!r}")
    return m


def float_dtype(dtype, name: str = "dtype") -> np.dtype:
    """A layer's dtype: float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name}: expected float32 or float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float32 or float64, got {dt}")
    return dt


def eps_positive(eps, why: str) -> float:
    """ε > 0 (where ε = 0 leaves a matrix singular); `why` ends the message."""
    value = _float_scalar("eps", eps, "a finite number > 0")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"eps: expected a finite number > 0, got {value} ({why})")
    return value


def choice(name: str, value, options) -> str:
    """One of a fixed set of names (a method, an activation, a layout)."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected one of {list(options)}, got "
                        f"{type(value).__name__} {value!r}")
    if value not in options:
        raise ValueError(f"{name}: expected one of {list(options)}, got {value!r}")
    return value


def group_size(value, M: int) -> int:
    """Features per whitening group: an int in [1, M], or None for all M."""
    if value is None:
        return M
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"group_size: expected an integer in [1, M = {M}] or None, "
                        f"got {type(value).__name__} {value!r}")
    if not 1 <= value <= M:
        raise ValueError(f"group_size: expected an integer in [1, M = {M}] or None, "
                         f"got {value}")
    return int(value)


def feature_params(Y, gamma, beta, name: str = "Y"):
    """A normalization's input Y (B, M) and its per-feature γ, β (M,), one dtype."""
    Y = float_array(name, Y, 2, "(B, M)")
    nonempty(name, Y, "(B, M)")
    M = Y.shape[1]
    gamma = float_array("gamma", gamma, 1, "(M,)", dtype=Y.dtype)
    beta = float_array("beta", beta, 1, "(M,)", dtype=Y.dtype)
    for pname, p in (("gamma", gamma), ("beta", beta)):
        if p.shape[0] != M:      # the message is formatted only on failure
            same_dim(pname, p.shape[0], M, f"{pname}.shape[0] (M, the columns of {name})")
    return Y, gamma, beta


def upstream(name: str, d, shape: tuple, dtype) -> np.ndarray:
    """A backward's upstream gradient: exactly the forward output's shape and dtype."""
    d = float_array(name, d, len(shape), f"{tuple(shape)} (the forward output's shape)",
                    dtype=dtype)
    if d.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)} (the forward output), "
                         f"got {d.shape}")
    return d


# ------------------------------------------------------------ sequences (P9)
def sequence(name: str, X) -> np.ndarray:
    """A time-major sequence (T, B, N) with T ≥ 1 and no empty axis."""
    X = float_array(name, X, 3, "(T, B, N), time-major")
    if X.shape[0] < 1:
        raise ValueError(f"{name}: expected at least one time step (T ≥ 1), got shape {X.shape}")
    nonempty(name, X, "(T, B, N), time-major")
    return X


def recurrent_weights(X, Wx, Wh, b, bias_name: str, Wx_name: str, Wh_name: str):
    """Input weights (M, N), recurrent weights (M, M) and an optional bias (M,)."""
    N = X.shape[2]
    Wx = float_array(Wx_name, Wx, 2, "(M, N)", dtype=X.dtype)
    nonempty(Wx_name, Wx, "(M, N)")
    M = Wx.shape[0]
    same_dim(Wx_name, Wx.shape[1], N, f"{Wx_name}.shape[1] (N, the features of X)")
    Wh = float_array(Wh_name, Wh, 2, "(M, M)", dtype=X.dtype)
    if Wh.shape != (M, M):
        raise ValueError(f"{Wh_name}: expected shape ({M}, {M}) (M, M with M = "
                         f"{Wx_name}.shape[0]), got {Wh.shape}")
    if b is not None:
        b = float_array(bias_name, b, 1, "(M,)", dtype=X.dtype)
        same_dim(bias_name, b.shape[0], M, f"{bias_name}.shape[0] (M = {Wx_name}.shape[0])")
    return Wx, Wh, b


def initial_state(name: str, h, B: int, M: int, dtype) -> np.ndarray:
    """A (B, M) initial state, zeros when None."""
    if h is None:
        return np.zeros((B, M), dtype)
    h = float_array(name, h, 2, "(B, M)", dtype=dtype)
    if h.shape != (B, M):
        raise ValueError(f"{name}: expected shape ({B}, {M}) (B = X.shape[1], M hidden "
                         f"units), got {h.shape}")
    return h


# ------------------------------------------------- P6, P8: dropout and norms
def keep_prob(keep) -> float:
    """Dropout's keep probability p in (0, 1] (PyTorch's p is the drop probability 1 − keep)."""
    value = _float_scalar("keep", keep, "a probability in (0, 1]")
    if not 0.0 < value <= 1.0:   # also NaN
        raise ValueError(f"keep: expected a probability in (0, 1] (the keep probability, "
                         f"PyTorch's 1 − p; 0 would divide by zero in 1/keep), got {keep!r}")
    return value


def drop_prob(name: str, p) -> float:
    """A drop probability in [0, 1), as torch.nn.LSTM's `dropout` (1 would
    divide by zero in inverted dropout's 1/(1 − p))."""
    value = _float_scalar(name, p, "a drop probability in [0, 1)")
    if not 0.0 <= value < 1.0:   # also NaN
        raise ValueError(f"{name}: expected a drop probability in [0, 1) (PyTorch's "
                         f"dropout; 1 would divide by zero in 1/(1 − p)), got {p!r}")
    return value


def flag(name: str, value) -> bool:
    """A True/False switch (a 0/1 int or a string is refused: it hides mistakes)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def norm_input(name: str, X, min_ndim: int, shape_doc: str) -> np.ndarray:
    """A normalization's input with at least `min_ndim` axes, none empty."""
    X = float_array(name, X, None, shape_doc)
    if X.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} axes {shape_doc}, "
                         f"got shape {X.shape}")
    nonempty(name, X, shape_doc)
    return X


def affine_params(X, gamma, beta, shape: tuple, what: str):
    """γ and β of a normalization: exactly `shape`, X's dtype."""
    shape = tuple(shape)
    out = []
    for pname, p in (("gamma", gamma), ("beta", beta)):
        if not (type(p) is np.ndarray and p.dtype == X.dtype and p.shape == shape
                and p.flags.c_contiguous and _nan_policy == "propagate"):
            # anything but the usual case: the full check (its shape text is
            # built here only: an f-string per call is a real share of a small step)
            p = float_array(pname, p, len(shape), f"{shape} ({what})", dtype=X.dtype)
            if p.shape != shape:
                raise ValueError(f"{pname}: expected shape {shape} ({what}), got {p.shape}")
        out.append(p)
    return out


def num_groups(value, C: int, name: str = "num_groups") -> int:
    """Group norm's number of groups: a positive int that divides the C channels."""
    G = positive_int(name, value)
    if C % G:
        small = [d for d in range(1, math.isqrt(C) + 1) if C % d == 0]
        divisors = sorted(set(small + [C // d for d in small]))
        shown = divisors if len(divisors) <= 12 else divisors[:6] + ["..."] + divisors[-3:]
        raise ValueError(f"{name}: expected a divisor of the {C} channels (C = X.shape[1]; "
                         f"each group holds C/{name} whole channels), got {G}; divisors "
                         f"of {C}: {', '.join(map(str, shown))}")
    return G


def spatial_for_statistics(name: str, S: int) -> None:
    if S < 2:
        raise ValueError(f"{name}: instance norm needs at least 2 elements per (sample, "
                         f"channel) to average over, got {S}: the variance of one value is "
                         f"0 and x̂ = 0/√ε carries no information")


def weight_rows(u, gamma):
    """Weight norm's direction u (M, N) with no zero row, and its scale γ (M,)."""
    u = float_array("u", u, 2, "(out_features, in_features)")
    nonempty("u", u, "(out_features, in_features)")
    gamma = float_array("gamma", gamma, 1, "(out_features,)", dtype=u.dtype)
    same_dim("gamma", gamma.shape[0], u.shape[0], "gamma.shape[0] (u.shape[0], one per row)")
    return u, gamma


# ------------------------------------------- P5, P7: optimizers, init, training
def real_number(name: str, value, low: float = 0.0, high: float | None = None,
                low_open: bool = False, high_open: bool = False, why: str = "") -> float:
    """A finite real in [low, high] (open ends where asked; high None: no upper
    bound, low -inf: no lower one); anything but a real number (a bool, a
    string, None) is a TypeError. The message says "a finite number >= 0" for
    an unbounded range (never "in [0.0, inf]", which inf would seem to satisfy)."""
    if high is None:
        expected = "a finite number" + ("" if low == -math.inf else
                                        f" {'>' if low_open else '>='} {low:g}")
    else:
        expected = (f"a real number in {'(' if low_open else '['}{low}, "
                    f"{high}{')' if high_open else ']'}")
    if not is_real(value):
        raise TypeError(f"{name}: expected {expected}, got {type(value).__name__} {value!r}")
    x = float(value)
    ok = (math.isfinite(x) and (x > low if low_open else x >= low)
          and (high is None or (x < high if high_open else x <= high)))
    if not ok:
        raise ValueError(f"{name}: expected {expected}, got {value!r}"
                         + (f" ({why})" if why else ""))
    return x


def seed_value(seed, name: str = "seed") -> int:
    """A random seed: an int >= 0 (what numpy.random.default_rng takes)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer >= 0, got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"{name}: expected an integer >= 0, got {seed!r}")
    return int(seed)


def betas_value(betas) -> tuple[float, float]:
    """Adam's (β1, β2), each in [0, 1) (β = 1 never forgets and 1 − β^t = 0)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas: expected a pair (beta1, beta2), got "
                        f"{type(betas).__name__} {betas!r}")
    return (real_number("betas[0]", betas[0], 0.0, 1.0, high_open=True),
            real_number("betas[1]", betas[1], 0.0, 1.0, high_open=True,
                        why="the bias correction divides by 1 − β2^t"))


def param_pairs(params) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """An optimizer's parameters: (name, θ, ∂L/∂θ) triples.

    From an object with `params` and `grads` dicts of the same keys (a layer,
    a Sequential) or from a list of (param, grad) array pairs (named "0", "1",
    ...). θ must be a writeable C-contiguous float32/float64 array (it is
    updated in place); its gradient an array of the same shape and dtype. The
    same θ array twice (a layer used twice) is kept once.
    """
    if hasattr(params, "params") and hasattr(params, "grads"):
        P, G = params.params, params.grads
        if not isinstance(P, dict) or not isinstance(G, dict):
            raise TypeError(f"params: expected .params and .grads dicts, got "
                            f"{type(P).__name__} and {type(G).__name__}")
        if list(P) != list(G):
            raise ValueError(f"params: expected .grads with the keys of .params, got "
                             f"{sorted(G)} for {sorted(P)}")
        items = [(str(k), P[k], G[k]) for k in P]
    elif isinstance(params, (list, tuple)):
        items = []
        for i, pair in enumerate(params):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise TypeError(f"params[{i}]: expected a (param, grad) pair of arrays, "
                                f"got {type(pair).__name__}")
            items.append((str(i), pair[0], pair[1]))
    else:
        raise TypeError(f"params: expected a layer/model with .params and .grads, or a "
                        f"list of (param, grad) pairs, got {type(params).__name__}")
    if not items:
        raise ValueError("params: expected at least one parameter, got none")
    out, seen = [], set()
    for name, p, g in items:
        if not isinstance(p, np.ndarray) or p.dtype not in FLOAT_DTYPES:
            raise TypeError(f"params[{name!r}]: expected a float32/float64 numpy array, got "
                            f"{type(p).__name__} {getattr(p, 'dtype', '')}".rstrip())
        if not p.flags.c_contiguous or not p.flags.writeable:
            raise ValueError(f"params[{name!r}]: expected a writeable C-contiguous array "
                             f"(it is updated in place)")
        if not isinstance(g, np.ndarray) or g.dtype != p.dtype:
            raise TypeError(f"grads[{name!r}]: expected a numpy array of dtype {p.dtype} "
                            f"(the parameter's), got {type(g).__name__} "
                            f"{getattr(g, 'dtype', '')}".rstrip())
        if g.shape != p.shape:
            raise ValueError(f"grads[{name!r}]: expected shape {p.shape} (the parameter's), "
                             f"got {g.shape}")
        if np.may_share_memory(p, g):
            raise ValueError(f"grads[{name!r}]: shares memory with its parameter")
        if id(p) in seen:
            continue
        seen.add(id(p))
        out.append((name, p, g))
    return out


def step_number(step) -> int:
    """An optimizer step t: an int >= 1, the number of this update counting from 1."""
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"step: expected an integer >= 1 (t, the number of this update), "
                        f"got {type(step).__name__} {step!r}")
    if step < 1:
        raise ValueError(f"step: expected an integer >= 1 (t, the number of this update; "
                         f"1 on the first), got {step!r}")
    return int(step)


def step_arrays(param, grad, **states) -> list[np.ndarray]:
    """One functional optimizer step's arrays, as flat views: [θ, g, *states].

    θ and every state array (velocity, moments) are updated in place: each a
    writeable C-contiguous float32/float64 array of θ's shape and dtype, no
    two sharing memory. g has θ's shape and dtype (a non-contiguous g is
    copied; it is only read) and shares no memory with them. A state given
    as None is left out of the list.
    """
    if not isinstance(param, np.ndarray) or param.dtype not in FLOAT_DTYPES:
        raise TypeError(f"param: expected a float32/float64 numpy array, got "
                        f"{type(param).__name__} {getattr(param, 'dtype', '')}".rstrip())
    named = [("param", param)]
    for name, s in states.items():
        if s is None:
            continue
        if not isinstance(s, np.ndarray) or s.dtype != param.dtype:
            raise TypeError(f"{name}: expected a numpy array of dtype {param.dtype} (the "
                            f"parameter's), got {type(s).__name__} "
                            f"{getattr(s, 'dtype', '')}".rstrip())
        if s.shape != param.shape:
            raise ValueError(f"{name}: expected shape {param.shape} (the parameter's), "
                             f"got {s.shape}")
        named.append((name, s))
    for name, a in named:
        if not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"{name}: expected a writeable C-contiguous array (it is "
                             f"updated in place)")
    if not isinstance(grad, np.ndarray) or grad.dtype != param.dtype:
        raise TypeError(f"grad: expected a numpy array of dtype {param.dtype} (the "
                        f"parameter's), got {type(grad).__name__} "
                        f"{getattr(grad, 'dtype', '')}".rstrip())
    if grad.shape != param.shape:
        raise ValueError(f"grad: expected shape {param.shape} (the parameter's), "
                         f"got {grad.shape}")
    named.insert(1, ("grad", grad))
    for i, (name, a) in enumerate(named):
        for other, b in named[:i]:
            if np.may_share_memory(a, b):
                raise ValueError(f"{name}: shares memory with {other}")
    flat_g = grad.reshape(-1) if grad.flags.c_contiguous else np.ascontiguousarray(grad).ravel()
    return [a.reshape(-1) if name != "grad" else flat_g for name, a in named]


def init_shape(shape) -> tuple[int, ...]:
    """A weight shape in PyTorch's (out, in[, kh, kw, ...]) convention: ≥ 2 positive ints."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"shape: expected a tuple of ints (out, in[, kh, kw]), got "
                        f"{type(shape).__name__} {shape!r}")
    dims = tuple(positive_int(f"shape[{i}]", d) for i, d in enumerate(shape))
    if len(dims) < 2:
        raise ValueError(f"shape: expected at least 2 dimensions (out, in[, kh, kw]) to "
                         f"define fan_in and fan_out, got {dims}")
    return dims


def labelled_data(X, y, name_X: str = "X", name_y: str = "y"):
    """A data set: X (n, ...) float array, y of n labels or targets."""
    X = float_array(name_X, X, None, "(n, features...)")
    if X.ndim < 1:
        raise ValueError(f"{name_X}: expected at least 1 axis (samples first), got a scalar")
    nonempty(name_X, X, "(n, features...)")
    try:
        y = np.asarray(y)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name_y}: expected integer labels or float targets, got "
                        f"{type(y).__name__} ({exc})") from None
    if y.ndim < 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"{name_y}: expected {X.shape[0]} labels or targets (one per row "
                         f"of {name_X}), got shape {y.shape}")
    if y.dtype.kind not in "iuf":
        raise TypeError(f"{name_y}: expected integer labels or float targets, got {y.dtype}")
    return X, y


# ------------------------------------------------------- convolution (P3, P10)
CONV_LAYOUTS = ("BWHC", "NCHW")


def int_pair(name: str, value) -> tuple[int, int]:
    """An int or a pair of ints (a kernel size, stride, padding or dilation).

    Only the type is checked here: signs and sizes are geometry, checked by
    conv_axis with the filled-in formula.
    """
    def one(x):
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
            raise TypeError(f"{name}: expected an int or a pair of ints, got "
                            f"{type(x).__name__} {x!r}")
        if abs(int(x)) > _MAX_DIM:
            raise ValueError(f"{name}: expected sizes of at most {_MAX_DIM} in magnitude "
                             f"(32-bit BLAS dimensions), got {x!r}")
        return int(x)
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name}: expected an int or a pair of ints, got "
                             f"{len(value)} values {tuple(value)!r}")
        return one(value[0]), one(value[1])
    v = one(value)
    return v, v


def conv_shape(name: str, shape, layout: str) -> tuple[int, int, int, int]:
    """A 4-D shape (four ints) in `layout`; sizes are checked by conv_axis."""
    doc = "(B, W, H, C)" if layout == "BWHC" else "(B, C, H, W)"
    if isinstance(shape, np.ndarray) or not isinstance(shape, (tuple, list)):
        raise TypeError(f"{name}: expected a shape {doc} (a tuple of 4 ints), got "
                        f"{type(shape).__name__} {shape!r}")
    if len(shape) != 4:
        raise ValueError(f"{name}: expected 4 sizes {doc} ({layout}), got "
                         f"{len(shape)}: {tuple(shape)!r}")
    for s in shape:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"{name}: expected 4 ints {doc}, got {type(s).__name__} {s!r} "
                            f"in {tuple(shape)!r}")
    for axis, s in zip(doc.strip("()").split(", "), shape):
        if s < 1 and axis in ("B", "C"):      # W and H: conv_axis, with the formula
            raise ValueError(f"{name}: expected every size >= 1, got {axis} = {s} in "
                             f"{tuple(int(x) for x in shape)} ({layout} {doc})")
    return tuple(int(s) for s in shape)


def conv_axis(axis: str, n: int, k: int, s: int, p: int, d: int, formula: str,
              pair_index: str, fault: str | None, kernel_text: str = "kernel") -> None:
    """One spatial axis's geometry; `formula` is its line with every term filled in.

    fault is what the kernels' shape logic found wrong (nnkit.conv_shapes reads
    geometry_status): None, "size", "kernel", "stride", "dilation", "padding"
    or "empty"; the message starts with the argument at fault and ends with
    the formula.
    """
    if fault is None:
        return
    if fault == "size":
        raise ValueError(f"input_shape: expected sizes >= 1, got {axis} = {n}: {formula}")
    if fault == "kernel":
        raise ValueError(f"kernel_size: expected sizes >= 1, got k{pair_index} = {k} "
                         f"(along {axis}): {formula}")
    if fault == "stride":
        raise ValueError(f"stride: expected strides >= 1, got s{pair_index} = {s} "
                         f"(along {axis}): {formula}")
    if fault == "dilation":
        raise ValueError(f"dilation: expected dilations >= 1, got d{pair_index} = {d} "
                         f"(along {axis}): {formula}")
    if fault == "padding":
        raise ValueError(f"padding: expected paddings >= 0, got p{pair_index} = {p} "
                         f"(along {axis}): {formula}")
    eff = d * (k - 1) + 1
    eff_text = f"{k}" if d == 1 else f"{k}, dilated to {d}·({k} − 1) + 1 = {eff}"
    raise ValueError(f"kernel_size: the {kernel_text} ({eff_text}) is larger than the "
                     f"padded input ({n} + 2·{p} = {n + 2 * p}) along {axis}, so the "
                     f"output is empty: {formula}")


def pool_padding(axis: str, k: int, p: int, pair_index: str) -> None:
    """Pooling pads at most half a window (as PyTorch): a window never lies
    entirely in the padding."""
    if 2 * p > k:
        raise ValueError(f"padding: expected p{pair_index} <= k{pair_index}/2 = {k}/2 for "
                         f"pooling (a window must overlap the input), got p{pair_index} = "
                         f"{p} along {axis}")


def lp_norm(p) -> float:
    """The p of Lp pooling: a finite number > 0."""
    if not is_real(p):
        raise TypeError(f"p: expected a finite number > 0, got {type(p).__name__} {p!r}")
    value = float(p)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"p: expected a finite number > 0, got {value}")
    return value


def reduction_range(value) -> tuple[float, float]:
    """A parameter-reduction range (lo, hi) with 0 <= lo <= hi < 1."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"reduction: expected a pair (lo, hi) of fractions, got {value!r}")
    if not (is_real(value[0]) and is_real(value[1])):
        raise TypeError(f"reduction: expected a pair (lo, hi) of fractions, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not (0.0 <= lo <= hi < 1.0):
        raise ValueError(f"reduction: expected 0 <= lo <= hi < 1 (e.g. (0.5, 0.6) for a "
                         f"50–60 % cut), got ({lo}, {hi})")
    return lo, hi


def shape_tuple(name: str, value) -> tuple:
    """A shape: a positive int or a sequence of positive ints (PyTorch's normalized_shape)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return (positive_int(name, value),)
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name}: expected a positive int or a tuple of them, got "
                        f"{type(value).__name__} {value!r}")
    if not value:
        raise ValueError(f"{name}: expected at least one axis, got {value!r}")
    return tuple(positive_int(f"{name}[{i}]", d) for i, d in enumerate(value))


def truncate_steps(truncate) -> int:
    """Truncated BPTT's window: None (full BPTT, returned as 0) or a positive int."""
    if truncate is None:
        return 0
    if isinstance(truncate, (bool, np.bool_)) or not isinstance(truncate, (int, np.integer)):
        raise TypeError(f"truncate: expected a positive integer or None (full BPTT), got "
                        f"{type(truncate).__name__} {truncate!r}")
    if truncate < 1:
        raise ValueError(f"truncate: expected a positive integer or None (full BPTT), "
                         f"got {truncate!r}")
    return int(min(truncate, _MAX_DIM))    # a window >= T is full BPTT


def class_labels(labels, logits: np.ndarray):
    """Softmax-CE labels: integer class indices (B,) in [0, K), or float targets
    (B, K) of the logits' dtype. Returns (indices as int64, None) or (None, targets)."""
    B, K = logits.shape
    try:
        lab = np.asarray(labels)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"labels: expected class indices (B,) or float targets (B, K), "
                        f"got {type(labels).__name__} ({exc})") from None
    want = f"class indices (B,) = ({B},) or float targets (B, K) = {logits.shape}"
    if lab.ndim not in (1, 2):
        raise ValueError(f"labels: expected {want}, got shape {lab.shape}")
    if lab.ndim == 2 and np.issubdtype(lab.dtype, np.integer):
        # integer labels in a column, (B, 1): the commonest slip
        if lab.shape == (B, 1):
            raise ValueError(f"labels: expected {want}, got integer labels of shape "
                             f"{lab.shape}: class indices must have shape ({B},) "
                             f"(labels.ravel()); soft targets must be float of shape {logits.shape}")
        raise TypeError(f"labels: expected {want}, got a 2-D integer array of shape "
                        f"{lab.shape}: soft targets must be float32/float64 (the logits' dtype)")
    if lab.ndim == 1:
        if not np.issubdtype(lab.dtype, np.integer):
            raise TypeError(f"labels: expected integer class indices (B,) or targets "
                            f"(B, K), got a 1-D array of dtype {lab.dtype}")
        same_dim("labels", lab.shape[0], B, "labels.shape[0] (B, the rows of logits)")
        if lab.size and (lab.min() < 0 or lab.max() >= K):
            bad = lab[(lab < 0) | (lab >= K)][0]
            raise ValueError(f"labels: expected class indices in [0, {K}), got {bad}")
        return np.ascontiguousarray(lab, dtype=np.int64), None
    T = float_array("labels", labels, 2, "(B, K) targets or (B,) class indices",
                    dtype=logits.dtype)
    if T.shape != logits.shape:
        raise ValueError(f"labels: expected targets of shape {logits.shape} (the logits' "
                         f"shape), got {T.shape}")
    return None, T
