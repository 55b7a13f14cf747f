"""Finite-difference gradient checking: the one mechanism behind nk.gradcheck,
the trace checks, `nnkit gradcheck` and the TUI's check panel.

Numeric gradients are central differences in float64:
    ∂L/∂x_k ≈ (L(x + h e_k) − L(x − h e_k)) / 2h
Each tensor is compared with its analytic gradient by
  * the relative error |a − n| / max(|a| + |n|, atol) per element (below atol a
    difference is finite-difference noise, not a wrong formula), and
  * a PyTorch-style allclose verdict: |a − n| ≤ atol + rtol·|n| everywhere.
The verdict decides pass/fail; the worst element (largest relative error) is
reported with both values so a failure points at the entry to look at.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np

# Tolerances by the dtype of the *analytic* gradient. float64 analytic against
# float64 central differences (h = 1e-6): truncation ~h² and round-off
# ~1e-16·|L|/h leave ~1e-9 absolute. float32 analytic against float64 numeric:
# float32 rounding (6e-8) amplified by the reductions, so ~1e-4 relative.
TOLERANCES = {
    np.dtype(np.float64): dict(atol=1e-7, rtol=1e-5),
    np.dtype(np.float32): dict(atol=1e-4, rtol=2e-3),
}
DEFAULT_STEP = 1e-6


def tolerances(dtype) -> dict:
    return dict(TOLERANCES[np.dtype(dtype)])


@dataclass
class TensorCheck:
    """One tensor's comparison of analytic and numeric gradients."""
    name: str
    shape: tuple
    max_rel_err: float
    worst_index: tuple
    analytic_at_worst: float
    numeric_at_worst: float
    allclose: bool
    checked: int            # elements compared (all, or a seeded sample)
    atol: float
    rtol: float
    analytic: np.ndarray = field(repr=False)   # full analytic gradient
    numeric: np.ndarray = field(repr=False)    # numeric gradient; NaN where not sampled
    # max over elements of |a − n| / (atol + rtol·|n|): the share of the allclose
    # tolerance used (≤ 1 passes); how close a tensor came to failing
    tol_used: float = 0.0

    @property
    def passed(self) -> bool:
        return self.allclose

    @property
    def total(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __str__(self) -> str:
        return (f"{self.name} {self.shape}: max rel err {self.max_rel_err:.2e} at "
                f"{self.worst_index} (analytic {self.analytic_at_worst:+.6e}, numeric "
                f"{self.numeric_at_worst:+.6e}), {self.checked}/{self.total} elements, "
                f"{'PASS' if self.passed else 'FAIL'}")

    def to_dict(self) -> dict:
        return dict(name=self.name, shape=list(self.shape), passed=self.passed,
                    max_rel_err=_json_float(self.max_rel_err),
                    worst_index=list(self.worst_index),
                    analytic=_json_float(self.analytic_at_worst),
                    numeric=_json_float(self.numeric_at_worst),
                    checked=self.checked, total=self.total,
                    atol=self.atol, rtol=self.rtol, tol_used=_json_float(self.tol_used))


def _json_float(x: float):
    return float(x) if np.isfinite(x) else str(x)


@dataclass
class GradcheckReport:
    checks: list[TensorCheck]
    title: str = ""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def __getitem__(self, name: str) -> TensorCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict:
        return dict(title=self.title, passed=self.passed,
                    tensors=[c.to_dict() for c in self.checks])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def table(self) -> str:
        rows = [("tensor", "shape", "checked", "max rel err", "worst index",
                 "analytic", "numeric", "tol used", "result")]
        for c in self.checks:
            rows.append((c.name, "×".join(map(str, c.shape)) or "scalar",
                         f"{c.checked}/{c.total}", f"{c.max_rel_err:.2e}",
                         str(c.worst_index), f"{c.analytic_at_worst:+.6e}",
                         f"{c.numeric_at_worst:+.6e}", f"{c.tol_used:.3f}",
                         "PASS" if c.passed else "FAIL"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [self.title] if self.title else []
        for k, r in enumerate(rows):
            lines.append("  ".join(s.ljust(w) for s, w in zip(r, widths)).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def sample_indices(shape: tuple, max_elements: int | None, seed: int = 0) -> np.ndarray:
    """Flat indices to check: all of them, or a seeded sample of max_elements."""
    n = int(np.prod(shape, dtype=np.int64))
    if max_elements is None or n <= max_elements:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_elements, replace=False))


def numeric_gradient(f: Callable[[], float], x: np.ndarray, h: float = DEFAULT_STEP,
                     indices: Iterable[int] | None = None,
                     cancelled: Callable[[], bool] | None = None) -> np.ndarray:
    """Central differences of the scalar f() with respect to x, perturbed in place.

    x must be a float64 array that f reads; it is restored after each element.
    Entries not in `indices` are NaN. `cancelled()` is polled between elements.
    """
    if x.dtype != np.float64:
        raise TypeError(f"x: expected float64 (finite differences run in double), got {x.dtype}")
    grad = np.full(x.shape, np.nan)
    flat = x.reshape(-1)          # a view: writing it perturbs x
    gflat = grad.reshape(-1)
    idx = range(flat.size) if indices is None else indices
    for k in idx:
        if cancelled is not None and cancelled():
            raise CheckCancelled()
        old = flat[k]
        flat[k] = old + h
        fp = f()
        flat[k] = old - h
        fm = f()
        flat[k] = old
        gflat[k] = (fp - fm) / (2.0 * h)
    return grad


class CheckCancelled(Exception):
    """Raised inside a check when its `cancelled()` callback returns True."""


def compare(name: str, analytic: np.ndarray, numeric: np.ndarray, *,
            atol: float, rtol: float) -> TensorCheck:
    """Compare where `numeric` is defined (not NaN from sampling)."""
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"{name}: analytic gradient has shape {a.shape}, "
                         f"the tensor has shape {n.shape}")
    sampled = ~np.isnan(n) if n.size else np.zeros(n.shape, bool)
    # a NaN analytic value where numeric is NaN too is "not sampled"; count any
    # non-finite analytic or numeric value among sampled entries as a failure
    diff = np.abs(a - n)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = diff / np.maximum(np.abs(a) + np.abs(n), atol)
    rel = np.where(sampled, rel, -np.inf)
    rel = np.where(sampled & ~np.isfinite(rel), np.inf, rel)
    bound = atol + rtol * np.abs(n)
    ok = np.where(sampled, diff <= bound, True)
    with np.errstate(invalid="ignore"):
        used = np.where(sampled, diff / bound, 0.0)
    tol_used = float(np.max(np.where(np.isnan(used), np.inf, used))) if used.size else 0.0
    checked = int(sampled.sum())
    if checked == 0:
        return TensorCheck(name, a.shape, 0.0, (), np.nan, np.nan, True, 0,
                           atol, rtol, a, n)
    worst = np.unravel_index(int(np.argmax(rel)), a.shape)
    return TensorCheck(name, a.shape, float(rel[worst]), tuple(int(i) for i in worst),
                       float(a[worst]), float(n[worst]), bool(np.all(ok)), checked,
                       atol, rtol, a, n, tol_used)


def gradcheck(forward: Callable, backward: Callable, inputs: Mapping[str, np.ndarray], *,
              wrt: Iterable[str] | None = None, seed: int = 0, h: float = DEFAULT_STEP,
              atol: float | None = None, rtol: float | None = None,
              max_elements: int | None = None, kwargs: Mapping | None = None,
              ) -> GradcheckReport:
    """Check anyone's forward/backward pair against central differences.

    forward(**inputs, **kwargs) returns (out, cache) (or just out with the
    cache as the second item of a tuple); backward(dout, cache) returns the
    gradients as an object with attributes ``d<name>``, a mapping with keys
    ``d<name>`` or ``<name>``, a tuple in the order of `inputs`, or a single
    array when there is one input. The scalar checked is L = Σ G ⊙ out with a
    fixed random upstream gradient G (seeded), so ∂L/∂out = G.

    Analytic gradients are computed in the inputs' dtype; numeric ones by
    re-running forward in float64.
    """
    kwargs = dict(kwargs or {})
    names = list(inputs)
    wrt = names if wrt is None else list(wrt)
    for w in wrt:
        if w not in inputs:
            raise ValueError(f"wrt: {w!r} is not one of the inputs {names}")
    res = forward(**inputs, **kwargs)
    out, cache = res if isinstance(res, tuple) else (res, None)
    out = np.asarray(out)
    rng = np.random.default_rng(seed)
    G = rng.standard_normal(out.shape)
    grads = backward(G.astype(out.dtype), cache)
    dtype = out.dtype if out.dtype in TOLERANCES else np.dtype(np.float64)
    tol = tolerances(dtype)
    if atol is not None:
        tol["atol"] = atol
    if rtol is not None:
        tol["rtol"] = rtol

    x64 = {k: np.array(val, dtype=np.float64) if _is_float(val) else val
           for k, val in inputs.items()}

    def loss() -> float:
        r = forward(**x64, **kwargs)
        o = r[0] if isinstance(r, tuple) else r
        return float(np.sum(G * np.asarray(o, dtype=np.float64)))

    checks = []
    for name in wrt:
        analytic = _pick(grads, name, names)
        idx = sample_indices(np.shape(x64[name]), max_elements, seed)
        numeric = numeric_gradient(loss, x64[name], h, idx)
        checks.append(compare(name, analytic, numeric, **tol))
    return GradcheckReport(checks, title=getattr(forward, "__name__", "gradcheck"))


def jacobian_check(forward: Callable, backward: Callable, inputs: Mapping[str, np.ndarray],
                   wrt: str, *, h: float = DEFAULT_STEP, atol: float | None = None,
                   rtol: float | None = None, kwargs: Mapping | None = None) -> TensorCheck:
    """The whole Jacobian ∂out/∂wrt, analytic against numeric (P2.5).

    Analytic: row k is backward(e_k, cache), one one-hot upstream gradient per
    output element (so every vector-Jacobian product the layer can receive).
    Numeric: column j is the central difference of the whole output when
    element j of `wrt` moves by ±h (float64). Both are (out.size, wrt.size);
    sizes are multiplied, so keep the shapes small.
    """
    kwargs = dict(kwargs or {})
    names = list(inputs)
    if wrt not in inputs:
        raise ValueError(f"wrt: {wrt!r} is not one of the inputs {names}")
    res = forward(**inputs, **kwargs)
    out, cache = res if isinstance(res, tuple) else (res, None)
    out = np.asarray(out)
    n_out, x_shape = out.size, np.shape(inputs[wrt])
    J_a = np.empty((n_out, int(np.prod(x_shape, dtype=np.int64))))
    for k in range(n_out):
        e = np.zeros(n_out, dtype=out.dtype)
        e[k] = 1
        J_a[k] = np.asarray(_pick(backward(e.reshape(out.shape), cache), wrt, names),
                            dtype=np.float64).reshape(-1)
    x64 = {k: np.array(val, dtype=np.float64) if _is_float(val) else val
           for k, val in inputs.items()}
    flat = x64[wrt].reshape(-1)
    J_n = np.empty_like(J_a)
    for j in range(flat.size):
        old = flat[j]
        outs = []
        for step in (h, -h):
            flat[j] = old + step
            r = forward(**x64, **kwargs)
            outs.append(np.asarray(r[0] if isinstance(r, tuple) else r, np.float64).reshape(-1))
        flat[j] = old
        J_n[:, j] = (outs[0] - outs[1]) / (2.0 * h)
    tol = tolerances(out.dtype if out.dtype in TOLERANCES else np.float64)
    if atol is not None:
        tol["atol"] = atol
    if rtol is not None:
        tol["rtol"] = rtol
    return compare(f"∂out/∂{wrt}", J_a, J_n, **tol)


def _is_float(val) -> bool:
    return isinstance(val, np.ndarray) and np.issubdtype(val.dtype, np.floating)


def _pick(grads, name: str, names: list[str]) -> np.ndarray:
    if isinstance(grads, np.ndarray):
        if len(names) == 1:
            return grads
        raise ValueError("backward: returned one array but there are several inputs; "
                         "return a mapping or an object with d<name> attributes")
    for key in ("d" + name, name):
        if isinstance(grads, Mapping) and key in grads:
            return grads[key]
        if not isinstance(grads, Mapping) and hasattr(grads, key):
            return getattr(grads, key)
    if isinstance(grads, tuple) and not hasattr(grads, "_fields") and len(grads) == len(names):
        return grads[names.index(name)]
    raise ValueError(f"backward: found no gradient for input {name!r} "
                     f"(looked for d{name} / {name})")
