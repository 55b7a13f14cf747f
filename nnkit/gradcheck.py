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

Two ways a check can mislead, both detected here (`check_tensor`):
  * Kinks. At a point where L is not differentiable (ReLU at exactly 0) the
    central difference straddles the kink and averages two slopes. An element
    that fails the verdict is examined: if its one-sided differences
    (L(x+h) − L(x))/h and (L(x) − L(x−h))/h disagree, and still disagree by
    as much at step h/4 (a jump in the slope, not curvature, which would
    shrink 4×), it is a KINK; it passes when the analytic value lies between
    the one-sided values (a valid subgradient), and fails otherwise.
  * Vacuous checks. L = Σ G ⊙ out tests a backward only along G: if G is
    (nearly) orthogonal to every column ∂out/∂x_k, both gradients are ~0 and
    any backward "passes". The columns come for free from the same forward
    evaluations; a tensor is VACUOUS when max(|a|, |n|) ≤ VACUOUS_RTOL · scale,
    scale = max_k ||∂out/∂x_k|| · rms(G) (what a G unrelated to the layer
    gives, up to a standard-normal factor). Reported always; a failure only
    under strict=True.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np

from . import _validate as v
from ._table import format_table, html_table

# Tolerances by the dtype of the *analytic* gradient. float64 analytic against
# float64 central differences (h = 1e-6): truncation ~h² and round-off
# ~1e-16·|L|/h leave ~1e-9 absolute. float32 analytic against float64 numeric:
# float32 rounding (6e-8) amplified by the reductions, so ~1e-4 relative.
TOLERANCES = {
    np.dtype(np.float64): dict(atol=1e-7, rtol=1e-5),
    np.dtype(np.float32): dict(atol=1e-4, rtol=2e-3),
}
DEFAULT_STEP = 1e-6
# A tensor whose gradients are below this share of the scale a generic upstream
# gradient produces checks nothing. For G unrelated to the layer the ratio is
# |N(0, 1)|-distributed per element; the max over a tensor's elements falls
# below 1e-3 with probability < 1e-3 even for a single element.
VACUOUS_RTOL = 1e-3
# The upstream gradient G of nk.gradcheck is drawn from this salted stream, so
# it never equals a user's default_rng(seed) draw (seed 0 most of all): with
# G = Y a batch-norm input gradient vanishes and a wrong backward passes.
# The salt is "nnkit" in ASCII, a spawn key no user's SeedSequence.spawn reaches.
UPSTREAM_SALT = 0x6E6E6B6974


def tolerances(dtype) -> dict:
    """The default ``allclose`` tolerances for an analytic gradient of this dtype.

    Parameters
    ----------
    dtype : float32 or float64 (anything ``np.dtype`` accepts)
        The dtype of the analytic gradient; the numeric one is always float64.

    Returns
    -------
    dict
        ``{"atol": ..., "rtol": ...}``, a new dict (changing it changes no
        default): float64 atol 1e-7, rtol 1e-5 (central differences with
        h = 1e-6 leave about 1e-9 absolute); float32 atol 1e-4, rtol 2e-3
        (float32 rounding amplified by the reductions).

    Raises
    ------
    TypeError
        ``dtype`` is not a dtype NumPy knows.
    ValueError
        A dtype other than float32 and float64 (the kernels' two).
    """
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}, "
                        f"which is not a NumPy dtype") from None
    if dt not in TOLERANCES:
        raise ValueError(f"dtype: expected float32 or float64, got {dt}")
    return dict(TOLERANCES[dt])


def upstream_gradient(shape, seed: int = 0) -> np.ndarray:
    """The fixed upstream gradient G of a check (float64, standard normal),
    from a seed sequence salted so it is not the stream of default_rng(seed)."""
    ss = np.random.SeedSequence(seed, spawn_key=(UPSTREAM_SALT,))
    return np.random.default_rng(ss).standard_normal(shape)


@dataclass
class Kink:
    """An element where L has a kink: the slopes either side of x differ."""
    index: tuple
    left: float        # (L(x) − L(x − h)) / h
    right: float       # (L(x + h) − L(x)) / h
    analytic: float
    ok: bool           # analytic lies between left and right (a subgradient)

    def __str__(self) -> str:
        return (f"KINK at {self.index}: one-sided {self.left:+.6e} (left) / "
                f"{self.right:+.6e} (right), analytic {self.analytic:+.6e} "
                f"{'between them' if self.ok else 'OUTSIDE them: FAIL'}")

    def to_dict(self) -> dict:
        return dict(index=list(self.index), left=_json_float(self.left),
                    right=_json_float(self.right), analytic=_json_float(self.analytic),
                    ok=self.ok)


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
    kinks: list = field(default_factory=list)  # Kink per element at a kink
    # max_k ||∂out/∂x_k|| · rms(G): the gradient size a generic G gives; None
    # where unknown (then never vacuous)
    scale: float | None = None
    strict: bool = False    # a vacuous check fails

    @property
    def vacuous(self) -> bool:
        """Both gradients tiny against `scale`: the check tested nothing."""
        if self.scale is None or not self.scale > self.atol or self.checked == 0:
            return False
        peak = max(_nanmax_abs(self.analytic, self.numeric), _nanmax_abs(self.numeric))
        return bool(peak <= VACUOUS_RTOL * self.scale)

    @property
    def passed(self) -> bool:
        return self.allclose and not (self.strict and self.vacuous)

    @property
    def verdict(self) -> str:
        """PASS, FAIL, VACUOUS (passes unless strict), or KINK (passes, with kinks)."""
        if not self.passed:
            return "FAIL"
        if self.vacuous:
            return "VACUOUS"
        return "KINK" if self.kinks else "PASS"

    @property
    def total(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    # kinks spelled out in a table's notes; the rest are counted (all of them
    # are in to_dict()/--json): a ReLU-then-pool graph has dozens
    NOTES_KINKS = 2

    def notes(self) -> str:
        """Kinks and vacuity in words (empty when there is nothing to say)."""
        out = [str(k) for k in self.kinks[:self.NOTES_KINKS]]
        if len(self.kinks) > self.NOTES_KINKS:
            out.append(f"+{len(self.kinks) - self.NOTES_KINKS} more kinks, each a valid "
                       f"subgradient (all in --json)")
        if self.vacuous:
            out.append(f"VACUOUS: max |gradient| ≤ {VACUOUS_RTOL:g} × {self.scale:.2e} "
                       f"(||∂out/∂x_k||·rms G): G is blind to this tensor"
                       + (" (strict: FAIL)" if self.strict else ""))
        return "; ".join(out)

    def __str__(self) -> str:
        s = (f"{self.name} {self.shape}: max rel err {self.max_rel_err:.2e} at "
             f"{self.worst_index} (analytic {self.analytic_at_worst:+.6e}, numeric "
             f"{self.numeric_at_worst:+.6e}), {self.checked}/{self.total} elements, "
             f"{self.verdict}")
        n = self.notes()
        return s + (f" [{n}]" if n else "")

    def to_dict(self) -> dict:
        return dict(name=self.name, shape=list(self.shape), passed=self.passed,
                    verdict=self.verdict, vacuous=self.vacuous,
                    max_rel_err=_json_float(self.max_rel_err),
                    worst_index=list(self.worst_index),
                    analytic=_json_float(self.analytic_at_worst),
                    numeric=_json_float(self.numeric_at_worst),
                    checked=self.checked, total=self.total,
                    atol=self.atol, rtol=self.rtol, tol_used=_json_float(self.tol_used),
                    scale=None if self.scale is None else _json_float(self.scale),
                    kinks=[k.to_dict() for k in self.kinks])


def _json_float(x: float):
    return float(x) if np.isfinite(x) else str(x)


def _nanmax_abs(a, where=None) -> float:
    a = np.abs(np.asarray(a, np.float64))
    if where is not None:
        a = a[~np.isnan(np.asarray(where, np.float64))]
    a = a[~np.isnan(a)]
    return float(a.max()) if a.size else 0.0


@dataclass
class GradcheckReport:
    """The result of `gradcheck` (and of a walkthrough's check): one
    `TensorCheck` per input checked, the verdict `passed` (under strict=True
    a vacuous check fails) and the `vacuous` tensors' names, both read-only
    properties; ``report["W"]`` is one check by name, ``str()``
    and ``table()`` the table a terminal shows, ``_repr_html_`` Jupyter's,
    ``to_dict()`` / ``to_json()`` ``{"title", "passed", "tensors"}``, each
    tensor as in ``nnkit gradcheck --json``.

    Attributes
    ----------
    checks : list of TensorCheck
        one per tensor checked, in the order of `wrt` (or of the inputs)
    title : str
        the table's heading: the forward's name from `gradcheck`, the
        walkthrough's title from a trace
    """
    checks: list[TensorCheck]
    title: str = ""

    @property
    def passed(self) -> bool:
        """Every tensor's check passed."""
        return all(c.passed for c in self.checks)

    @property
    def vacuous(self) -> list[str]:
        """Names of the tensors whose check was vacuous."""
        return [c.name for c in self.checks if c.vacuous]

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

    def _cells(self) -> tuple:
        """(headers, rows, align) of the report's table: text and HTML alike."""
        rows = [(c.name, "×".join(map(str, c.shape)) or "scalar",
                 f"{c.checked}/{c.total}", f"{c.max_rel_err:.2e}",
                 str(c.worst_index), f"{c.analytic_at_worst:+.6e}",
                 f"{c.numeric_at_worst:+.6e}", f"{c.tol_used:.3f}", c.verdict, c.notes())
                for c in self.checks]
        # notes last: a kink's index and one-sided values are never cut
        return (("tensor", "shape", "checked", "max rel err", "worst index",
                 "analytic", "numeric", "tol used", "result", "notes"), rows, "lllrlrrrll")

    def table(self) -> str:
        return format_table(*self._cells(), title=self.title)

    def _repr_html_(self) -> str:
        """The table in Jupyter."""
        return html_table(*self._cells(), title=self.title)

    def __str__(self) -> str:
        return self.table()


def sample_indices(shape: tuple, max_elements: int | None, seed: int = 0) -> np.ndarray:
    """Flat indices to check: all of them, or a seeded sample of max_elements."""
    n = int(np.prod(shape, dtype=np.int64))
    if max_elements is None or n <= max_elements:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_elements, replace=False))


def _eval(f):
    """f() -> L, or (L, out): the scalar and optionally the output it reads."""
    r = f()
    if isinstance(r, tuple):
        return float(r[0]), np.asarray(r[1], np.float64).reshape(-1)
    return float(r), None


class _Differences:
    """Central differences of f around x, with what kinks and vacuity need."""

    def __init__(self, f, x, h, indices, cancelled):
        if x.dtype != np.float64:
            raise TypeError(f"x: expected float64 (finite differences run in double), "
                            f"got {x.dtype}")
        self.f, self.x, self.h = f, x, h
        self.flat = x.reshape(-1)        # a view: writing it perturbs x
        self.grad = np.full(x.shape, np.nan)
        self.plus = np.full(x.shape, np.nan)
        self.minus = np.full(x.shape, np.nan)
        self.colnorm = np.full(x.shape, np.nan)   # ||∂out/∂x_k|| where out is known
        gflat, pf, mf, cf = (a.reshape(-1) for a in
                             (self.grad, self.plus, self.minus, self.colnorm))
        idx = range(self.flat.size) if indices is None else indices
        self._f0 = None
        for k in idx:
            if cancelled is not None and cancelled():
                raise CheckCancelled()
            (fp, op), (fm, om) = self.at(k, h), self.at(k, -h)
            pf[k], mf[k] = fp, fm
            gflat[k] = (fp - fm) / (2.0 * h)
            if op is not None:
                cf[k] = float(np.linalg.norm((op - om) / (2.0 * h)))

    def at(self, k, step):
        old = self.flat[k]
        self.flat[k] = old + step
        try:
            return _eval(self.f)
        finally:
            self.flat[k] = old

    @property
    def f0(self) -> float:
        if self._f0 is None:
            self._f0 = _eval(self.f)[0]
        return self._f0

    def one_sided(self, k, step):
        """(left, right) slopes at flat index k with step `step`."""
        f0 = self.f0
        fp = self.at(k, step)[0]
        fm = self.at(k, -step)[0]
        return (f0 - fm) / step, (fp - f0) / step


def numeric_gradient(f: Callable[[], float], x: np.ndarray, h: float = DEFAULT_STEP,
                     indices: Iterable[int] | None = None,
                     cancelled: Callable[[], bool] | None = None) -> np.ndarray:
    """Central differences of the scalar f() with respect to x, perturbed in place.

    x must be a float64 array that f reads; it is restored after each element.
    Entries not in `indices` are NaN. `cancelled()` is polled between elements.
    """
    x = v.perturbable("x", x)
    h = v.real_number("h", h, 0.0, low_open=True)
    return _Differences(f, x, h, indices, cancelled).grad


class CheckCancelled(Exception):
    """Raised inside a check when its `cancelled()` callback returns True."""


def compare(name: str, analytic: np.ndarray, numeric: np.ndarray, *,
            atol: float, rtol: float, kinks: Mapping[int, "Kink"] | None = None
            ) -> TensorCheck:
    """Compare where `numeric` is defined (not NaN from sampling).

    kinks: flat index -> Kink for elements found at a kink; those pass or fail
    by their own test (analytic between the one-sided slopes) and are left out
    of the worst-element statistics, which describe the differentiable part.
    """
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"{name}: analytic gradient has shape {a.shape}, "
                         f"the tensor has shape {n.shape}")
    kinks = dict(kinks or {})
    sampled = ~np.isnan(n) if n.size else np.zeros(n.shape, bool)
    smooth = sampled.copy()
    if kinks:
        smooth.reshape(-1)[list(kinks)] = False
    # a NaN analytic value where numeric is NaN too is "not sampled"; count any
    # non-finite analytic or numeric value among sampled entries as a failure
    diff = np.abs(a - n)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = diff / np.maximum(np.abs(a) + np.abs(n), atol)
    rel = np.where(smooth, rel, -np.inf)
    rel = np.where(smooth & ~np.isfinite(rel), np.inf, rel)
    bound = atol + rtol * np.abs(n)
    ok = np.where(smooth, diff <= bound, True)
    with np.errstate(invalid="ignore"):
        used = np.where(smooth, diff / bound, 0.0)
    tol_used = float(np.max(np.where(np.isnan(used), np.inf, used))) if used.size else 0.0
    checked = int(sampled.sum())
    kink_list = [kinks[k] for k in sorted(kinks)]
    kinks_ok = all(k.ok for k in kink_list)
    if checked == 0 or not smooth.any():
        return TensorCheck(name, a.shape, 0.0, (), np.nan, np.nan, kinks_ok, checked,
                           atol, rtol, a, n, tol_used, kink_list)
    worst = np.unravel_index(int(np.argmax(rel)), a.shape)
    return TensorCheck(name, a.shape, float(rel[worst]), tuple(int(i) for i in worst),
                       float(a[worst]), float(n[worst]), bool(np.all(ok)) and kinks_ok,
                       checked, atol, rtol, a, n, tol_used, kink_list)


def check_tensor(name: str, analytic, f: Callable, x: np.ndarray, *, atol: float,
                 rtol: float, h: float = DEFAULT_STEP, indices=None,
                 cancelled: Callable[[], bool] | None = None,
                 upstream_rms: float | None = None, strict: bool = False) -> TensorCheck:
    """Analytic gradient of f() w.r.t. x against central differences, with kink
    and vacuity detection (see the module docstring).

    f() returns L, or (L, out) where L = Σ G ⊙ out for an upstream gradient of
    root-mean-square `upstream_rms` (then vacuity is judged). x is a float64
    array f reads, perturbed in place and restored.
    """
    a = np.asarray(analytic, np.float64)
    if a.shape != x.shape:
        raise ValueError(f"{name}: analytic gradient has shape {a.shape}, "
                         f"the tensor has shape {x.shape}")
    d = _Differences(f, x, h, indices, cancelled)
    n = d.grad
    kinks = {}
    with np.errstate(invalid="ignore"):
        bad = ~np.isnan(n) & ~(np.abs(a - n) <= atol + rtol * np.abs(n))
    for k in np.flatnonzero(bad.reshape(-1)):
        if not np.isfinite(n.flat[k]) or not np.isfinite(a.flat[k]):
            continue
        bound = atol + rtol * abs(n.flat[k])
        left, right = d.one_sided(k, h)
        if not abs(right - left) > bound:
            continue
        # a slope jump persists at h/4 (curvature's h·f'' shrinks 4×), and
        # each side's slope stays put; round-off noise, which also makes the
        # sides disagree, moves them (it grows as the step shrinks)
        l4, r4 = d.one_sided(k, h / 4)
        gap = abs(right - left)
        if not (abs(r4 - l4) >= 0.5 * gap
                and abs(l4 - left) + abs(r4 - right) <= 0.1 * gap + bound):
            continue
        lo, hi = min(left, right, l4, r4) - bound, max(left, right, l4, r4) + bound
        idx = tuple(int(i) for i in np.unravel_index(k, x.shape))
        kinks[int(k)] = Kink(idx, left, right, float(a.flat[k]),
                             bool(lo <= a.flat[k] <= hi))
    check = compare(name, a, n, atol=atol, rtol=rtol, kinks=kinks)
    if upstream_rms is not None and np.any(~np.isnan(d.colnorm)):
        check.scale = float(np.nanmax(d.colnorm)) * float(upstream_rms)
    check.strict = strict
    return check


# ------------------------------------------------------------- kink rules
# At a kink the central difference straddles two slopes, so finite
# differences accept either side. The library documents which side it takes
# (PyTorch's): ReLU passes the gradient only where its input is > 0 (0 at
# exactly 0), and max-pooling routes a window's gradient to its first maximum
# in row-major window order. These checks hold the analytic gradient to that
# rule, computed here in NumPy from the forward values (`nnkit gradcheck
# --strict` runs them through each walkthrough's kink_checks).

def relu_side_check(name: str, pre, grad) -> TensorCheck:
    """∂L/∂pre must be exactly 0 wherever pre ≤ 0 (pre == 0 included).

    pre: the ReLU's input (any shape) as the walkthrough's node functions give
    it; grad: the analytic ∂L/∂pre. Exact zeros of `pre` are always judged;
    other non-positive entries only when clearly below 0 (1e-4 of max |pre|),
    so a last-bit difference between NumPy's and the kernel's forward never
    decides a side.
    """
    pre = np.asarray(pre, np.float64)
    a = np.asarray(grad, np.float64)
    scale = float(np.max(np.abs(pre))) if pre.size else 0.0
    where = (pre == 0) | (pre < -1e-4 * scale)
    expected = np.where(where, 0.0, np.nan)
    check = compare(f"{name} (0 where ≤ 0)", a, expected, atol=np.finfo(np.float64).tiny,
                    rtol=0.0)
    return check


def relu_sum_check(name: str, pre, upstream, grad, dtype, weights=None) -> TensorCheck:
    """A parameter gradient that sums the ReLU's masked upstream gradient over
    rows, by the rule: grad_j = Σ_i [pre_ij > 0] · upstream_ij (· weights_ij)
    (batch norm's ∂L/∂β, with weights Ŷ its ∂L/∂γ). A kernel that recomputes
    the mask inside its sums has its side at 0 seen here and nowhere else:
    finite differences accept either side of the kink. Columns holding an
    input too close to 0 to be sure of its sign (not exactly 0, within 1e-4 of
    max |pre|) are left out; within the dtype's tolerances (sums in another
    order)."""
    pre = np.asarray(pre, np.float64)
    g = np.where(pre > 0, np.asarray(upstream, np.float64), 0.0)
    if weights is not None:
        g = g * np.asarray(weights, np.float64)
    scale = float(np.max(np.abs(pre))) if pre.size else 0.0
    unsure = ((pre != 0) & (np.abs(pre) <= 1e-4 * scale)).any(axis=0)
    expected = np.where(unsure, np.nan, g.sum(axis=0))
    return compare(f"{name} (Σ over Z > 0)", np.asarray(grad, np.float64), expected,
                   **tolerances(dtype))


def maxpool_routing(A, dP, kernel_size: int, stride: int, padding: int) -> np.ndarray:
    """∂L/∂A of max-pooling by the rule: each window's ∂L/∂P goes to its first
    maximum in row-major window order (padding never wins); windows that
    overlap add. A (B, C, H, W), dP (B, C, H'', W''); float64 result."""
    A = np.asarray(A, np.float64)
    dP = np.asarray(dP, np.float64)
    k, s, q = kernel_size, stride, padding
    B, C, H, W = A.shape
    Ap = np.pad(A, ((0, 0), (0, 0), (q, q), (q, q)), constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(Ap, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    Ho, Wo = win.shape[2], win.shape[3]
    # argmax returns the first maximum of the flattened (k·k) window
    first = win.reshape(B, C, Ho, Wo, k * k).argmax(axis=-1)
    rows = np.arange(Ho)[:, None] * s + first // k - q          # (B, C, Ho, Wo)
    cols = np.arange(Wo)[None, :] * s + first % k - q
    out = np.zeros((B, C, H, W))
    b_idx, c_idx = np.indices((B, C))
    np.add.at(out, (b_idx[:, :, None, None], c_idx[:, :, None, None], rows, cols),
              dP[:, :, :Ho, :Wo])
    return out


def maxpool_tie_check(name: str, A, dP, grad, kernel_size: int, stride: int,
                      padding: int, dtype) -> TensorCheck:
    """The analytic ∂L/∂A of a max-pool against maxpool_routing (ties to the
    first maximum), everywhere, within the dtype's tolerances (overlapping
    windows add in an order the kernel chooses)."""
    expected = maxpool_routing(A, dP, kernel_size, stride, padding)
    return compare(f"{name} (ties → first max)", np.asarray(grad, np.float64), expected,
                   **tolerances(dtype))


# ------------------------------------------------------ thread-split rule
# Where finite differences cannot see a threaded kernel's result (a gradient
# that cancels to round-off at the sizes that start its thread team), the
# check is the same kernels run with one thread and with a team: a team that
# skips or repeats a row changes the result by far more than rounding. The
# reductions split differently across threads, so the two agree to rounding
# only: float64 1e-12 and float32 1e-5 relative to the tensor's scale.
THREAD_SPLIT_RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


class num_threads:
    """NNKIT_NUM_THREADS set to `n` inside the block (unchanged for None);
    the kernels read it on every call."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        if self.n is not None:
            self.before = os.environ.get("NNKIT_NUM_THREADS")
            os.environ["NNKIT_NUM_THREADS"] = str(self.n)

    def __exit__(self, *exc):
        if self.n is not None:
            if self.before is None:
                del os.environ["NNKIT_NUM_THREADS"]
            else:
                os.environ["NNKIT_NUM_THREADS"] = self.before


def thread_split_check(name: str, single, team, dtype, threads: int,
                       scale: float | None = None) -> TensorCheck:
    """A kernel result computed with `threads` threads (`team`) against the
    same computation with one thread (`single`), everywhere: within
    THREAD_SPLIT_RTOL[dtype] of `scale` (default max |single|; a tensor that
    sums terms cancelling to round-off passes the size of those terms)."""
    single = np.asarray(single, np.float64)
    if scale is None:
        scale = float(np.max(np.abs(single))) if single.size else 0.0
    atol = THREAD_SPLIT_RTOL[np.dtype(dtype)] * max(scale, np.finfo(np.float64).tiny)
    return compare(f"{name} (1 vs {threads} threads)", np.asarray(team, np.float64), single,
                   atol=atol, rtol=0.0)


def gradcheck(forward: Callable, backward: Callable, inputs: Mapping[str, np.ndarray], *,
              wrt: Iterable[str] | None = None, seed: int = 0, h: float = DEFAULT_STEP,
              atol: float | None = None, rtol: float | None = None,
              max_elements: int | None = None, kwargs: Mapping | None = None,
              upstream: np.ndarray | None = None, strict: bool = False,
              ) -> GradcheckReport:
    """Check anyone's forward/backward pair against central differences.

    forward(**inputs, **kwargs) returns (out, cache) (or just out with the
    cache as the second item of a tuple); backward(dout, cache) returns the
    gradients as an object with attributes ``d<name>``, a mapping with keys
    ``d<name>`` or ``<name>``, a tuple in the order of `inputs`, or a single
    array when there is one input. The scalar checked is L = Σ G ⊙ out with a
    fixed upstream gradient G, so ∂L/∂out = G. G is `upstream` if given, else
    `upstream_gradient(out.shape, seed)`: standard normal from a salted seed
    sequence, never the numbers of a user's default_rng(seed).

    Analytic gradients are computed in the inputs' dtype; numeric ones by
    re-running forward in float64. Elements at a kink pass when the analytic
    value is a subgradient (see TensorCheck.kinks); a tensor whose gradients
    are tiny against what a generic G gives is marked VACUOUS, and fails when
    strict=True.
    """
    kwargs = _arguments(inputs, kwargs)
    names = list(inputs)
    wrt = names if wrt is None else list(wrt)
    for w in wrt:
        if w not in inputs:
            raise ValueError(f"wrt: {w!r} is not one of the inputs {names}")
        _differentiable(w, inputs[w])
    h = v.real_number("h", h, 0.0, low_open=True)
    res = forward(**inputs, **kwargs)
    out, cache = res if isinstance(res, tuple) else (res, None)
    out = np.asarray(out)
    if upstream is None:
        G = upstream_gradient(out.shape, seed)
    else:
        G = np.asarray(upstream, np.float64)
        if G.shape != out.shape:
            raise ValueError(f"upstream: expected the output's shape {out.shape}, "
                             f"got {G.shape}")
    grads = backward(G.astype(out.dtype), cache)
    dtype = out.dtype if out.dtype in TOLERANCES else np.dtype(np.float64)
    tol = tolerances(dtype)
    if atol is not None:
        tol["atol"] = atol
    if rtol is not None:
        tol["rtol"] = rtol

    x64 = {k: np.array(val, dtype=np.float64, order="C") if _is_float(val) else val
           for k, val in inputs.items()}

    def loss():
        r = forward(**x64, **kwargs)
        o = np.asarray(r[0] if isinstance(r, tuple) else r, dtype=np.float64)
        return float(np.sum(G * o)), o

    g_rms = float(np.sqrt(np.mean(G * G))) if G.size else 0.0
    checks = []
    for name in wrt:
        analytic = _pick(grads, name, names)
        idx = sample_indices(np.shape(x64[name]), max_elements, seed)
        checks.append(check_tensor(name, analytic, loss, x64[name], h=h, indices=idx,
                                   upstream_rms=g_rms, strict=strict, **tol))
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
    kwargs = _arguments(inputs, kwargs)
    names = list(inputs)
    if wrt not in inputs:
        raise ValueError(f"wrt: {wrt!r} is not one of the inputs {names}")
    _differentiable(wrt, inputs[wrt])
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
    x64 = {k: np.array(val, dtype=np.float64, order="C") if _is_float(val) else val
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


def _arguments(inputs, kwargs) -> dict:
    """Check `inputs` (name -> array, the tensors) and `kwargs` (name -> anything,
    passed to forward unchanged); returns kwargs as a dict."""
    if not isinstance(inputs, Mapping):
        raise TypeError(f"inputs: expected a mapping name -> array (forward is called as "
                        f"forward(**inputs, **kwargs)), got {type(inputs).__name__}")
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"kwargs: expected a mapping name -> value of the arguments "
                        f"forward takes but gradcheck does not differentiate, got "
                        f"{type(kwargs).__name__} {kwargs!r:.60}")
    both = sorted(set(inputs) & set(kwargs))
    if both:
        raise ValueError(f"kwargs: {both} also in inputs; each argument goes in one of "
                         f"them (inputs: arrays to differentiate, kwargs: the rest)")
    return dict(kwargs)


def _differentiable(name: str, x) -> None:
    """An input to differentiate: a float array. Anything else in `inputs` (a
    scalar hyperparameter, integer labels) is pointed to kwargs= and wrt=."""
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        return
    got = (f"{type(x).__name__} {x.dtype}" if isinstance(x, np.ndarray)
           else f"{type(x).__name__} {x!r:.40}")
    raise TypeError(f"inputs[{name!r}]: expected a float numpy array to differentiate, got "
                    f"{got}; pass an argument that is not differentiated in "
                    f"kwargs={{{name!r}: ...}} (forward(**inputs, **kwargs)), or leave it "
                    f"out of wrt=")


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
