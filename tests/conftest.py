"""Shared test configuration: the Hypothesis CI profile, seeded RNGs, and the
independent float64 NumPy references every kernel test compares against.

The references below are written from the textbook formulas of
the problem set (P1: the affine layer, P2: batch norm, P4: softmax cross-entropy),
in float64, without calling nnkit, so a
test compares the code against an independent computation, never against
its own output.
"""
from __future__ import annotations

import inspect
import os
import re
from types import SimpleNamespace


def _pin_openblas_kernels() -> None:
    """OpenBLAS picks its kernels for the CPU it loads on, and its AVX2 and
    AVX-512 kernels round differently. The TUI snapshots print
    finite-difference errors and eigenvectors at rounding level (the
    whitening walkthroughs: 1.72e-09 with the AVX2 kernels, 1.81e-09 with
    the AVX-512 ones), so the test session runs OpenBLAS's Haswell (AVX2)
    kernels wherever the CPU has AVX2: the same bits on every such machine.
    The variable is read when the library loads, hence before NumPy and
    SciPy are imported; a value already set is kept."""
    try:
        with open("/proc/cpuinfo") as f:
            avx2 = " avx2" in f.read()
    except OSError:
        avx2 = False
    if avx2:
        os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")


_pin_openblas_kernels()

import numpy as np  # noqa: E402  (after the OpenBLAS pin above)
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# --------------------------------------------------------------- hypothesis
# CI: the same examples on every run (derandomize), no deadline (the first
# call of a kernel specialisation and the -O0 bounds-checked build are slow;
# timing is not a test), a modest example count so tests/kernels stays fast.
settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=25, database=None,
    suppress_health_check=[HealthCheck.too_slow])
# Local exploration: HYPOTHESIS_PROFILE=dev pytest ...  (random, more examples)
settings.register_profile("dev", deadline=None, max_examples=300,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Kernels use NNKIT_NUM_THREADS or all cores; default it to 2 so the OpenMP
# path (B*M >= 65536) runs with a team of two on every machine.
os.environ.setdefault("NNKIT_NUM_THREADS", "2")


# --------------------------------------------------------------- markers
# `slow` and `torch` are registered in pyproject.toml. The default run leaves
# out `slow` (addopts -m "not slow"); CI runs `pytest -m slow` as a stage.
# `torch` is put here on every test that compares with PyTorch: a module
# whose `torch` global is the torch module (module-level
# `torch = pytest.importorskip("torch")`), or a test whose own source calls
# `importorskip("torch")`. CI installs torch==2.13.0 and runs
# `NNKIT_REQUIRE_TORCH=1 pytest -m torch`: then a missing torch is an error
# and a torch test that skips is a failure, never a silent skip.
REQUIRE_TORCH = os.environ.get("NNKIT_REQUIRE_TORCH", "") not in ("", "0")
_TORCH_CALL = re.compile(r"""importorskip\(\s*["']torch["']""")


def _uses_torch(item) -> bool:
    mod = getattr(item, "module", None)
    t = getattr(mod, "torch", None)
    if getattr(t, "__name__", None) == "torch" and inspect.ismodule(t):
        return True
    fn = getattr(item, "function", None)
    if fn is None:
        return False
    try:
        return bool(_TORCH_CALL.search(inspect.getsource(fn)))
    except (OSError, TypeError):
        return False


def pytest_configure(config):
    if REQUIRE_TORCH:
        try:
            import torch
        except ImportError as exc:
            raise pytest.UsageError(
                f"NNKIT_REQUIRE_TORCH=1 but torch cannot be imported ({exc}); "
                "install it with: pip install torch==2.13.0") from exc
        config._nnkit_torch_passed = 0
        del torch           # imported only to fail early


def pytest_report_header(config):
    if REQUIRE_TORCH:
        import torch
        return f"nnkit: NNKIT_REQUIRE_TORCH=1, torch {torch.__version__}"
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if not item.get_closest_marker("torch") and _uses_torch(item):
            item.add_marker(pytest.mark.torch)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if not REQUIRE_TORCH or not item.get_closest_marker("torch"):
        return
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        why = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"NNKIT_REQUIRE_TORCH=1: a torch test may not skip ({why})"
    elif report.passed and report.when == "call":
        item.config._nnkit_torch_passed += 1


def pytest_collectreport(report):
    """A module-level importorskip("torch") skips the whole file at collection."""
    if REQUIRE_TORCH and report.skipped and "torch" in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = f"NNKIT_REQUIRE_TORCH=1: a torch module may not skip ({report.longrepr})"


def pytest_sessionfinish(session, exitstatus):
    """NNKIT_REQUIRE_TORCH=1 and no torch test passed (none selected, say): a failure."""
    if REQUIRE_TORCH and exitstatus in (0, 5) and \
            getattr(session.config, "_nnkit_torch_passed", 0) == 0:
        print("\nNNKIT_REQUIRE_TORCH=1 but no torch test passed")
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def _library_seed():
    """Every test starts from the same library generator state (nk.seed):
    layers created without seed= draw reproducible weights."""
    import nnkit
    nnkit.seed(0)
    yield


# --------------------------------------------------------------- tolerances
# Relative error = max |actual - expected| / max |expected| (norm-wise, so an
# entry that is ~0 by cancellation does not make the ratio meaningless).
#  * float64 kernel vs float64 reference: same math, different summation
#    order / algebraic form -> a few ulps amplified by B or M: 1e-12.
#  * float32 kernel vs float64 reference (computed from the same float32
#    inputs): float32 rounding (6e-8) amplified by short chains of ops: 1e-5.
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}
DTYPES = (np.float64, np.float32)


def rel_err(actual, expected) -> float:
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"shape {a.shape} != expected {e.shape}"
    scale = np.max(np.abs(e)) if e.size else 0.0
    err = np.max(np.abs(a - e)) if e.size else 0.0
    if scale == 0.0:
        return float(err)
    return float(err / scale)


def assert_rel(actual, expected, rtol, what=""):
    err = rel_err(actual, expected)
    assert np.all(np.isfinite(np.asarray(actual, dtype=np.float64))), f"{what}: non-finite values"
    assert err <= rtol, f"{what}: relative error {err:.3e} > {rtol:.1e}"


# --------------------------------------------------------------- references
def affine_ref(X, W, b):
    X, W, b = (np.asarray(a, np.float64) for a in (X, W, b))
    return X @ W.T + b


def affine_backward_ref(dY, X, W):
    dY, X, W = (np.asarray(a, np.float64) for a in (dY, X, W))
    return dY @ W, dY.T @ X, dY.sum(axis=0)


def relu_ref(Y):
    Y = np.asarray(Y, np.float64)
    return np.where(Y > 0, Y, 0.0)


def relu_backward_ref(dH, Y):
    return np.where(np.asarray(Y) > 0, np.asarray(dH, np.float64), 0.0)


def bn_forward_ref(Y, gamma, beta, eps):
    """P2 forward: biased variance, Ŷ = (Y − m)/√(v+ε), Z = γŶ + β."""
    Y = np.asarray(Y, np.float64)
    B = Y.shape[0]
    m = Y.sum(axis=0) / B
    d = Y - m
    v = (d * d).sum(axis=0) / B
    inv_std = 1.0 / np.sqrt(v + eps)
    Yhat = d * inv_std
    Z = np.asarray(gamma, np.float64) * Yhat + np.asarray(beta, np.float64)
    return SimpleNamespace(Z=Z, mean=m, var=v, inv_std=inv_std, Yhat=Yhat)


def bn_backward_ref(dZ, Y, gamma, eps):
    """Every gradient of P2.3 from the textbook long form (not the compact one).

    dγ = Σ dZ Ŷ; dβ = Σ dZ; dŶ = dZ γ;
    dv = Σ dŶ (Y − m) (−½)(v+ε)^(−3/2);
    dm = −Σ dŶ/√(v+ε) + dv (−2/B) Σ (Y − m);
    dY = dŶ/√(v+ε) + dv·2(Y − m)/B + dm/B.
    """
    dZ = np.asarray(dZ, np.float64)
    Y = np.asarray(Y, np.float64)
    gamma = np.asarray(gamma, np.float64)
    B = Y.shape[0]
    m = Y.sum(axis=0) / B
    d = Y - m
    v = (d * d).sum(axis=0) / B
    s = np.sqrt(v + eps)
    Yhat = d / s
    dgamma = (dZ * Yhat).sum(axis=0)
    dbeta = dZ.sum(axis=0)
    dYhat = dZ * gamma
    dvar = (dYhat * d).sum(axis=0) * (-0.5) * (v + eps) ** (-1.5)
    dmean = -(dYhat / s).sum(axis=0) + dvar * (-2.0 / B) * d.sum(axis=0)
    dY = dYhat / s + dvar * 2.0 * d / B + dmean / B
    return SimpleNamespace(dY=dY, dgamma=dgamma, dbeta=dbeta, dYhat=dYhat,
                           dvar=dvar, dmean=dmean)


def bn_relu_backward_ref(dH, Y, gamma, beta, eps):
    """Fused BN + ReLU: dZ = dH [Z > 0], then the BN gradients of dZ."""
    f = bn_forward_ref(Y, gamma, beta, eps)
    dZ = np.where(f.Z > 0, np.asarray(dH, np.float64), 0.0)
    g = bn_backward_ref(dZ, Y, gamma, eps)
    g.dZ = dZ
    return g


def softmax_xent_ref(logits, targets):
    """P4: mean over rows of −Σ_k y log softmax(z); stable log-sum-exp.

    targets (B, K) float (one-hot / soft). Returns (loss, P, dlogits = (P − T)/B)."""
    z = np.asarray(logits, np.float64)
    T = np.asarray(targets, np.float64)
    B = z.shape[0]
    mx = z.max(axis=1, keepdims=True)
    lse = mx + np.log(np.exp(z - mx).sum(axis=1, keepdims=True))
    logp = z - lse
    loss = -(T * logp).sum() / B
    P = np.exp(logp)
    return loss, P, (P - T) / B


def one_hot(labels, K):
    T = np.zeros((len(labels), K))
    T[np.arange(len(labels)), labels] = 1.0
    return T


REF = SimpleNamespace(
    affine=affine_ref, affine_backward=affine_backward_ref, relu=relu_ref,
    relu_backward=relu_backward_ref, bn_forward=bn_forward_ref,
    bn_backward=bn_backward_ref, bn_relu_backward=bn_relu_backward_ref,
    softmax_xent=softmax_xent_ref, one_hot=one_hot,
    rel_err=rel_err, assert_rel=assert_rel, RTOL=RTOL, DTYPES=DTYPES)


@pytest.fixture(scope="session")
def ref():
    """The float64 references and tolerance helpers (session-scoped, so
    Hypothesis tests may use it)."""
    return REF


@pytest.fixture
def rng():
    """A fresh, seeded generator per test: a failure reproduces."""
    return np.random.default_rng(20240611)


@pytest.fixture(params=DTYPES, ids=["float64", "float32"])
def dtype(request):
    return np.dtype(request.param)
