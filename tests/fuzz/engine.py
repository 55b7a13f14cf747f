"""The fuzz engine: one case = (spec, seed). The seed draws sizes, a dtype, a
corruption of one argument; the call's outcome is classified.

Outcomes
  ok          returned, and the result equals the reference: the same call on
              clean C-contiguous copies of the corrupted values (for layout
              corruptions: bit-for-bit the same numbers) and, where the spec
              has one and the inputs are finite, the float64 NumPy reference
  TypeError   raised TypeError, message "<argument>: ..." naming an argument
  ValueError  raised ValueError, same rule
  finding     anything else: another exception, a message that does not
              start with an argument name, a valid layout refused, a value
              nnkit should refuse (complex, strings, NaN under
              nan_policy="raise") accepted, a wrong answer, a modified input,
              an output sharing memory with an input, a crash (reported by
              the runner in tests/fuzz/__main__.py, which runs cases in a
              child process)
"""
from __future__ import annotations

import dataclasses
import math
import re
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import nnkit as nk

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)

# Relative (norm-wise) tolerances.
#  * same call, different memory layout: the kernels read the same numbers; BLAS
#    may take another code path for an unaligned or differently placed buffer,
#    so allow rounding amplified by the problem's conditioning (whitening's
#    ~1/eps): 1e-9 / 2e-3. A stride or layout bug is an O(1) error.
#  * against the float64 NumPy reference: float64 1e-9 (different summation
#    order and algebraic form, amplified by B, M and T); float32 2e-3
#    (float32 rounding, 6e-8, amplified by normalization of nearly constant
#    features and by recurrences over T steps).
SAME_TOL = {F64: 1e-9, F32: 2e-3}
REF_TOL = {F64: 1e-9, F32: 2e-3}

NAME_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\[[^\]]*\])*:")


# ------------------------------------------------------------------ drawing
class Draw:
    """Sizes and arrays for one case. size: "small" (1..5), "one" (every
    drawn size 1 where the spec allows), "large" (tens to hundreds)."""

    def __init__(self, rng: np.random.Generator, dtype, size: str):
        self.rng, self.dtype, self.size = rng, np.dtype(dtype), size

    def dim(self, lo: int = 1, hi: int | None = None) -> int:
        if self.size == "one":
            n = 1
        elif self.size == "large":
            n = int(self.rng.integers(16, 97))
        else:
            n = int(self.rng.integers(1, 6))
        n = max(lo, n)
        return n if hi is None else min(n, max(lo, hi))

    def arr(self, *shape, pos: bool = False) -> np.ndarray:
        a = self.rng.standard_normal(shape)
        if pos:
            a = np.abs(a) + 0.5
        return a.astype(self.dtype)

    def choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]


@dataclass
class Spec:
    """One public function (or layer) under fuzz.

    build(d) -> dict of keyword arguments that make a valid call;
    fn(**args) the call; outputs(result) -> the arrays to compare;
    ref(args) -> the expected outputs (float64), or None;
    scalars: argument name -> hostile values tried in its place;
    int_arrays: array arguments that hold integers (labels);
    inplace: arguments the function updates by design (optimizer θ, running stats);
    views: the result is a view of these arguments by design (Flatten).
    """
    name: str
    fn: Callable
    build: Callable[[Draw], dict]
    outputs: Callable[[Any], list] = None
    ref: Callable[[dict], list] | None = None
    scalars: dict = field(default_factory=dict)
    names: tuple = ()
    int_arrays: tuple = ()
    inplace: tuple = ()
    views: tuple = ()
    cache_arg: str | None = None
    sizes: tuple = ("small", "small", "small", "small", "one", "large")
    ref_tol: dict | None = None
    nan_policy: bool = True     # nan_policy="raise" applies to the array arguments
    known: tuple = ()           # regexes of findings reported and not yet fixed: "known"
    random: bool = False        # draws depend on the dtype: no clean call across dtypes
    any_variant: bool = False   # takes every variant of its cache class (bn and bn_relu)

    def allowed_names(self, args) -> set:
        import inspect
        names = set(args) | set(self.names)
        try:
            names |= set(inspect.signature(self.fn).parameters)
        except (TypeError, ValueError):
            pass
        return names


def default_outputs(result) -> list:
    """Arrays of a result: (out, cache) -> [out]; NamedTuple grads -> every field."""
    if isinstance(result, tuple) and len(result) == 2 and not hasattr(result, "_fields") \
            and (dataclasses.is_dataclass(result[1]) or hasattr(result[1], "_fields")):
        return default_outputs(result[0])
    if isinstance(result, np.ndarray):
        return [result]
    if isinstance(result, (float, int, np.floating)):
        return [np.asarray(float(result))]
    if isinstance(result, (tuple, list)):
        out = []
        for r in result:
            out += default_outputs(r) if r is not None else [None]
        return out
    return []


# -------------------------------------------------------------- corruptions
HOSTILE_SCALARS = [0, -1, 1, 2, -0.0, 1.5, 1e-300, 1e300, float("nan"), float("inf"),
                   -float("inf"), True, False, None, "3", "abc", "", [1], (1, 2),
                   (1, 2, 3), {"a": 1}, 2**63, 2**31, -2**31, np.int8(3),
                   np.uint64(2**64 - 1), np.float32(1e-3), np.float16(2), complex(1, 1),
                   np.array(2), np.array([2, 2]), object()]

DTYPES = [np.int8, np.int32, np.int64, np.uint8, np.uint64, np.float16, np.longdouble,
          np.complex64, np.complex128, object, np.bool_, ">f8", ">f4", "mixed"]

LAYOUTS = ["fortran", "negstride", "stepped", "broadcast", "readonly", "unaligned",
           "transposed-copy"]

PYTYPES = ["list", "ragged", "scalar", "none", "string", "dict", "object", "nested-str",
           "tuple"]

SHAPES = ["zero-axis", "plus-one", "minus-one", "add-axis", "drop-axis", "zero-d",
          "empty-list"]

NONFINITE = [float("nan"), float("inf"), -float("inf")]

KINDS = ["none", "layout", "dtype", "nonfinite", "shape", "pytype", "scalar", "cache"]
KIND_WEIGHTS = np.array([12, 24, 16, 10, 12, 10, 10, 6], float)


def layout(a: np.ndarray, how: str, rng) -> np.ndarray:
    """The same values (except broadcast: row 0 repeated) in another memory layout."""
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "negstride":
        return np.flip(np.flip(a).copy()) if a.ndim else a
    if how == "stepped":
        big = np.zeros(tuple(2 * s + 1 for s in a.shape), a.dtype)
        sl = tuple(slice(1, 1 + 2 * s, 2) for s in a.shape)
        big[sl] = a
        return big[sl]
    if how == "broadcast":
        if a.ndim == 0 or a.shape[0] == 0:
            return a
        return np.broadcast_to(a[:1], a.shape)          # stride 0 on axis 0, read-only
    if how == "readonly":
        r = a.copy()
        r.flags.writeable = False
        return r
    if how == "unaligned":
        buf = np.zeros(a.nbytes + 1, np.uint8)
        u = buf[1:].view(a.dtype).reshape(a.shape)
        u[...] = a
        return u
    if how == "transposed-copy":                         # C values, transposed strides
        return np.ascontiguousarray(a.T).T if a.ndim >= 2 else a
    raise KeyError(how)


def retype(a: np.ndarray, how, base_dtype) -> np.ndarray:
    if how == "mixed":
        return a.astype(F32 if base_dtype == F64 else F64)
    dt = np.dtype(how)
    if dt.kind in "iu":
        return np.round(a * 3).clip(0 if dt.kind == "u" else None).astype(dt)
    if dt.kind == "O":
        return a.astype(object)
    return a.astype(dt)


def pytype(a: np.ndarray, how: str):
    if how == "list":
        return a.tolist()
    if how == "ragged":
        return [[1.0, 2.0], [3.0]]
    if how == "scalar":
        return 1.5
    if how == "none":
        return None
    if how == "string":
        return "1.0"
    if how == "dict":
        return {"X": a}
    if how == "object":
        return object()
    if how == "nested-str":
        return [["a", "b"], ["c", "d"]]
    if how == "tuple":
        return tuple(a.tolist()) if a.ndim else (1.0,)
    raise KeyError(how)


def reshape(a: np.ndarray, how: str, rng):
    if how == "zero-axis":
        if a.ndim == 0:
            return np.empty((0,), a.dtype)
        shape = list(a.shape)
        shape[int(rng.integers(a.ndim))] = 0
        return np.empty(shape, a.dtype)
    if how in ("plus-one", "minus-one"):
        if a.ndim == 0:
            return a.reshape(1)
        shape = list(a.shape)
        i = int(rng.integers(a.ndim))
        shape[i] = max(0, shape[i] + (1 if how == "plus-one" else -1))
        return rng.standard_normal(shape).astype(a.dtype)
    if how == "add-axis":
        return a[None]
    if how == "drop-axis":
        return a[0] if a.ndim and a.shape[0] else a.reshape(-1)
    if how == "zero-d":
        return np.asarray(1.5, a.dtype)
    if how == "empty-list":
        return []
    raise KeyError(how)


# ----------------------------------------------------------------- the case
@dataclass
class Case:
    spec: str
    seed: int
    kind: str = "none"
    detail: str = ""
    target: str = ""
    outcome: str = ""
    message: str = ""
    checked: bool = False     # compared against a reference (not only "no crash")

    def label(self) -> str:
        return f"{self.spec}[seed={self.seed}] {self.kind}:{self.detail} on {self.target!r}"


class Finding(Exception):
    pass


def _arrays_in(obj, depth=0):
    """Every ndarray reachable from an argument (caches included), for the
    inputs-unchanged check."""
    if depth > 3:
        return
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _arrays_in(o, depth + 1)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _arrays_in(o, depth + 1)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _arrays_in(getattr(obj, f.name), depth + 1)


def _snapshot(args, skip):
    snaps = []
    for k, a in args.items():
        if k in skip:
            continue
        for arr in _arrays_in(a):
            if arr.dtype != object:
                snaps.append((k, arr, arr.copy()))
    return snaps


def _check_unchanged(snaps):
    for k, arr, before in snaps:
        if arr.shape != before.shape or not np.array_equal(arr, before, equal_nan=True):
            raise Finding(f"input {k!r} was modified")


def _check_no_alias(outs, args, spec):
    for k, a in args.items():
        if k in spec.inplace or k in spec.views or k == spec.cache_arg:
            continue
        for arr in _arrays_in(a):
            for i, o in enumerate(outs):
                if isinstance(o, np.ndarray) and o.size and np.shares_memory(o, arr):
                    raise Finding(f"output {i} shares memory with input {k!r}")


def rel_err(a, e) -> float:
    """max |a − e| / max(max |e|, 1), over the finite entries; inf when the
    non-finite entries differ (NaN and ±inf must sit in the same places).

    The floor of 1: inputs are O(1), so outputs are O(1) unless they cancel
    (a batch-norm dX for identical rows, instance norm over 2 values): then the
    error is measured against the inputs' scale, not against round-off."""
    a = np.asarray(a, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    if a.shape != e.shape:
        return math.inf
    if not e.size:
        return 0.0
    fa, fe = np.isfinite(a), np.isfinite(e)
    if not np.array_equal(fa, fe) or not np.array_equal(np.isnan(a), np.isnan(e)) \
            or not np.array_equal(a[np.isinf(a)], e[np.isinf(e)]):
        return math.inf
    if not fe.any():
        return 0.0
    scale = max(float(np.max(np.abs(e[fe]))), 1.0)
    return float(np.max(np.abs(a[fa] - e[fe]))) / scale


def compare(got: list, want: list, tol: float, what: str):
    if len(got) != len(want):
        raise Finding(f"{what}: {len(got)} outputs, expected {len(want)}")
    for i, (g, w) in enumerate(zip(got, want)):
        if w is None:          # not checked by this reference
            continue
        if g is None:
            raise Finding(f"{what}: output {i} is None, expected an array")
        if np.shape(g) != np.shape(w):
            raise Finding(f"{what}: output {i} has shape {np.shape(g)}, expected {np.shape(w)}")
        err = rel_err(g, w)
        if not err <= tol:
            raise Finding(f"{what}: output {i} relative error {err:.3g} > {tol:.1g}")


def _finite_args(args) -> bool:
    for a in args.values():
        for arr in _arrays_in(a):
            if arr.dtype.kind in "fc" and arr.size and not np.all(np.isfinite(arr)):
                return False
    return True


def _call(spec: Spec, args: dict):
    """(result, None) or (None, exception)."""
    try:
        return spec.fn(**args), None
    except Exception as exc:          # noqa: BLE001 -- classified by the caller
        return None, exc


def _dtype_of(args) -> np.dtype:
    """The case's float dtype (the lower precision if both appear)."""
    seen = {arr.dtype for a in args.values() for arr in _arrays_in(a)
            if arr.dtype in (F32, F64)}
    return F32 if F32 in seen else F64


def classify_exception(exc, spec, args) -> str:
    if isinstance(exc, MemoryError):     # a size nnkit accepts but the machine cannot hold
        return "MemoryError"
    if isinstance(exc, (TypeError, ValueError)) and not isinstance(exc, Finding):
        msg = str(exc)
        m = NAME_RE.match(msg)
        if m and m.group(1) in spec.allowed_names(args):
            return type(exc).__name__ if type(exc) in (TypeError, ValueError) else (
                "TypeError" if isinstance(exc, TypeError) else "ValueError")
        where = traceback.extract_tb(exc.__traceback__)[-1]
        raise Finding(f"{type(exc).__name__} not naming an argument: {msg[:200]!r} "
                      f"at {where.filename.split('/')[-1]}:{where.lineno}")
    tb = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    where = traceback.extract_tb(exc.__traceback__)[-1]
    raise Finding(f"unexpected {tb[:300]} at {where.filename.split('/')[-1]}:{where.lineno}")


def make_case(spec: Spec, seed: int, kind: str | None = None):
    """The case's valid args, then one corruption: (case, args, clean_args, must_raise)."""
    rng = np.random.default_rng([seed, 0x5EED])
    dtype = (F32, F64)[int(rng.integers(2))]
    size = spec.sizes[int(rng.integers(len(spec.sizes)))]
    d = Draw(rng, dtype, size)
    args = spec.build(d)
    case = Case(spec.name, seed)
    if kind is None:
        kind = KINDS[int(rng.choice(len(KINDS), p=KIND_WEIGHTS / KIND_WEIGHTS.sum()))]
    arrays = [k for k, a in args.items() if isinstance(a, np.ndarray) and k not in spec.inplace]
    floats = [k for k in arrays if args[k].dtype.kind == "f" and k not in spec.int_arrays]
    if kind == "scalar" and not spec.scalars:
        kind = "layout"
    if kind == "cache" and not spec.cache_arg:
        kind = "dtype"
    if kind in ("layout", "dtype", "nonfinite", "shape", "pytype") and not arrays:
        kind = "scalar" if spec.scalars else "none"
    if kind == "nonfinite" and not floats:
        kind = "layout"
    if kind == "none" or (kind == "scalar" and not spec.scalars):
        case.kind = "none"
        return case, args, dict(args), False, None
    case.kind = kind
    clean = dict(args)
    must_raise = False
    policy = None
    if kind == "scalar":
        name = d.choice(sorted(spec.scalars))
        values = list(spec.scalars[name]) + HOSTILE_SCALARS
        val = values[int(rng.integers(len(values)))]
        case.target, case.detail = name, repr(val)[:40]
        args[name] = clean[name] = val
        return case, args, clean, False, None
    if kind == "cache":
        from .specs import foreign_cache
        val, desc = foreign_cache(spec, rng)
        case.target, case.detail = spec.cache_arg, desc
        args[spec.cache_arg] = val
        return case, args, None, True, None
    name = d.choice(arrays if kind != "nonfinite" else floats)
    a = args[name]
    case.target = name
    base = a.dtype
    if kind == "layout":
        how = d.choice(LAYOUTS)
        new = layout(a, how, rng)
        clean[name] = np.ascontiguousarray(new).copy()
    elif kind == "dtype":
        how = d.choice(DTYPES)
        new = retype(a, how, base)
        conv_dtype = np.int64 if name in spec.int_arrays else base
        if new.dtype.kind in "cOSUV" and new.dtype.kind != "O":
            must_raise = True
            clean = None
        elif new.dtype.kind == "O":
            must_raise = True        # nnkit refuses object arrays (design: float32/64 only)
            clean = None
        else:
            clean[name] = np.ascontiguousarray(new, dtype=conv_dtype)
        how = str(how)
    elif kind == "nonfinite":
        how = d.choice(["nan", "inf", "-inf"])
        new = a.copy()
        if new.size:
            idx = tuple(int(rng.integers(s)) for s in new.shape)
            new[idx] = float(how)
        clean[name] = new.copy()
        if rng.random() < 0.4 and new.size and spec.nan_policy:
            policy = "raise"
            must_raise = True
            how += " (nan_policy=raise)"
    elif kind == "shape":
        how = d.choice(SHAPES)
        new = reshape(a, how, rng)
        clean[name] = np.asarray(new, dtype=base) if not isinstance(new, list) else \
            np.asarray(new, dtype=base)
    else:  # pytype
        how = d.choice(PYTYPES)
        new = pytype(a, how)
        try:
            with np.errstate(all="ignore"):
                conv = np.asarray(new, dtype=np.int64 if name in spec.int_arrays else base)
            clean[name] = conv if new is not None else None
            if isinstance(new, dict) or (isinstance(new, object) and type(new) is object):
                raise TypeError
        except (TypeError, ValueError):
            must_raise, clean = True, None
    args[name] = new
    case.detail = how
    return case, args, clean, must_raise, policy


def run_case(spec: Spec, seed: int, kind: str | None = None) -> Case:
    """Run one case; return it with `outcome` (and `message` for findings)."""
    try:
        case, args, clean, must_raise, policy = make_case(spec, seed, kind)
    except Exception as exc:   # noqa: BLE001 -- a broken spec is a finding of the suite
        c = Case(spec.name, seed, "build")
        c.outcome, c.message = "finding", f"spec build failed: {exc!r}"
        return c
    # arguments updated in place by design: the clean call and the reference
    # get their own copies of the values before the call
    if spec.inplace:
        if clean is not None:
            clean = {k: (np.array(v, copy=True) if k in spec.inplace and isinstance(v, np.ndarray)
                         else v) for k, v in clean.items()}
        ref_args = {k: (np.array(v, copy=True) if k in spec.inplace and isinstance(v, np.ndarray)
                        else v) for k, v in args.items()}
    else:
        ref_args = args
    old = nk.set_nan_policy(policy) if policy else None
    try:
        snaps = _snapshot(args, spec.inplace)
        result, exc = _call(spec, args)
    finally:
        if old:
            nk.set_nan_policy(old)
    try:
        _check_unchanged(snaps)
        if exc is not None:
            outcome = classify_exception(exc, spec, args)
            if (case.kind in ("layout", "none") or (case.kind == "nonfinite" and not policy)) \
                    and case.target not in spec.inplace:   # in-place: C-contiguous, writeable
                # a valid value in another layout (or NaN, propagated) must be accepted
                # unless the same values, contiguous, are refused too
                _, exc2 = _call(spec, clean) if clean is not None else (None, None)
                if exc2 is None:
                    raise Finding(f"refused a valid input ({case.kind}): {str(exc)[:200]}")
            case.outcome = outcome
            case.message = str(exc)[:200]
            return case
        if must_raise:
            raise Finding("accepted an input that must be refused")
        outs = (spec.outputs or default_outputs)(result)
        _check_no_alias(outs, args, spec)
        dtype = _dtype_of(args)
        if spec.random and _dtype_of(clean or {}) != dtype:
            clean = None          # another dtype draws another mask: nothing to compare
        if clean is not None and case.kind not in ("none", "scalar"):
            ref_result, exc2 = _call(spec, clean)
            if exc2 is not None:
                raise Finding(f"returned, while the same values contiguous raise "
                              f"{type(exc2).__name__}: {str(exc2)[:150]}")
            low = F32 if F32 in (_dtype_of(clean), dtype) else F64   # "mixed": the lower
            compare(outs, (spec.outputs or default_outputs)(ref_result),
                    SAME_TOL[low], "vs the clean call")
            case.checked = True
        if spec.ref is not None and _finite_args(ref_args):
            with np.errstate(all="ignore"):
                want = spec.ref(ref_args)
            if want is not None:
                tol = (spec.ref_tol or REF_TOL)[dtype if dtype in REF_TOL else F64]
                compare(outs, want, tol, "vs the NumPy reference")
                case.checked = True
        case.outcome = "ok"
    except Finding as f:
        case.outcome, case.message = "finding", str(f)
        if any(re.search(k, case.message) for k in spec.known):
            case.outcome = "known"
    except Exception as e:   # noqa: BLE001 -- the reference itself failed
        case.outcome = "finding"
        case.message = f"check failed: {type(e).__name__}: {str(e)[:200]}"
    return case
