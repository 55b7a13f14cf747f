"""`nnkit gradcheck --strict` as the self-test of a build (issue 28): it runs
the threaded paths, conv stride/dilation and padded overlapping pools, checks
the documented side at kinks, and runs once per instruction-set level.

Each planted bug is simulated in Python (a kernel's wrapper returning a wrong
gradient, as the real bug would), so these tests run without a rebuild;
tools/plant_bugs.py plants the real ones in a scratch copy.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import nnkit
from nnkit import _kernels, cli, trace
from nnkit.gradcheck import (maxpool_routing, maxpool_tie_check, relu_side_check,
                             thread_split_check)


def _gradcheck(capsys, *argv):
    """(exit status, JSON document) of `nnkit gradcheck --strict --json ...`.

    Without an --isa of its own, it checks this process's ISA level in this
    process: the default (every level, each in a child process) would not see
    a test's monkeypatch (a simulated bug, a spy)."""
    if "--isa" in argv:
        code = cli.main(["gradcheck", "--strict", "--json", "--dtype", "float64", *argv])
    else:
        level = _kernels.level()
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("NNKIT_ISA", level)
            code = cli.main(["gradcheck", "--strict", "--json", "--dtype", "float64",
                             "--isa", level, *argv])
    return code, json.loads(capsys.readouterr().out)


# ------------------------------------------------------------ references
def _conv_loops(X, K, b, s, p, d):
    """Y[n,f,i,j] = b[f] + Σ K[f,c,u,v] X[n,c,s·i+d·u−p,s·j+d·v−p] (zero outside)."""
    B, C, H, W = X.shape
    F, _, k, _ = K.shape
    Ho = (H + 2 * p - d * (k - 1) - 1) // s + 1
    Wo = (W + 2 * p - d * (k - 1) - 1) // s + 1
    Y = np.zeros((B, F, Ho, Wo))
    for n in range(B):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    acc = b[f]
                    for c in range(C):
                        for u in range(k):
                            for v in range(k):
                                r, q = s * i + d * u - p, s * j + d * v - p
                                if 0 <= r < H and 0 <= q < W:
                                    acc += K[f, c, u, v] * X[n, c, r, q]
                    Y[n, f, i, j] = acc
    return Y


def _route_loops(A, dP, k, s, q, last=False):
    """Max-pool's ∂L/∂A by loops: each window's gradient to its first (or,
    for a planted bug, last) maximum in row-major order; padding never wins."""
    B, C, H, W = A.shape
    out = np.zeros(A.shape)
    for n in range(B):
        for c in range(C):
            for i in range(dP.shape[2]):
                for j in range(dP.shape[3]):
                    best, at = -np.inf, None
                    for u in range(k):
                        for v in range(k):
                            r, t = s * i + u - q, s * j + v - q
                            if 0 <= r < H and 0 <= t < W:
                                x = A[n, c, r, t]
                                if at is None or x > best or (last and x == best):
                                    best, at = x, (r, t)
                    out[n, c, at[0], at[1]] += dP[n, c, i, j]
    return out


@pytest.mark.parametrize("s,p,d", [(2, 1, 1), (1, 2, 2), (2, 1, 2)])
def test_conv_node_function_matches_loops(s, p, d):
    """The walkthrough's NumPy conv (what finite differences re-evaluate)
    with stride and dilation, against the definition as loops."""
    w = trace.get("conv")
    t = trace.Trace(w, B=2, C=2, H=9, W=7, F=2, k=3, padding=p, stride=s, dilation=d)
    v = t.values
    np.testing.assert_allclose(t.node("Y").fn(v["X"], v["K"], v["b"]),
                               _conv_loops(v["X"], v["K"], v["b"], s, p, d), rtol=1e-12,
                               atol=1e-12)   # float64 sums in another order


def test_pool_node_functions_match_loops():
    """3×3 stride-1 padding-1 max and avg pools of the walkthrough against loops."""
    rng = np.random.default_rng(0)
    A = np.maximum(rng.standard_normal((2, 2, 5, 6)), 0)
    t = trace.Trace("conv", H=5, W=6, pool_k=3, pool_stride=1, pool_padding=1)
    mx = t.node("P").fn(A)
    avg = trace.Trace("conv", H=5, W=6, pool="avg", pool_k=3, pool_stride=1,
                      pool_padding=1).node("P").fn(A)
    Ap = np.pad(A, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    Az = np.pad(A, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for i in range(5):
        for j in range(6):
            np.testing.assert_array_equal(mx[:, :, i, j], Ap[:, :, i:i + 3, j:j + 3].max((2, 3)))
            np.testing.assert_allclose(avg[:, :, i, j], Az[:, :, i:i + 3, j:j + 3].sum((2, 3)) / 9,
                                       rtol=1e-14)


@pytest.mark.parametrize("k,s,q", [(2, 2, 0), (3, 1, 1), (3, 2, 1)])
def test_maxpool_routing_matches_loops_with_ties(k, s, q):
    rng = np.random.default_rng(1)
    A = np.maximum(rng.standard_normal((2, 3, 7, 6)), 0)      # ReLU zeros: ties
    A[0, 0, :3, :3] = 0.5                                     # a tie at a positive max
    t = trace.Trace("conv", H=7, W=6, pool_k=k, pool_stride=s, pool_padding=q)
    dP = rng.standard_normal(t.node("P").fn(A).shape)
    np.testing.assert_allclose(maxpool_routing(A, dP, k, s, q), _route_loops(A, dP, k, s, q),
                               rtol=1e-13, atol=1e-15)


def test_kink_rules_fail_the_wrong_side():
    pre = np.array([[0.0, -1.0, 2.0], [-3.0, 0.0, 1.0]])
    good = np.array([[0.0, 0.0, 0.7], [0.0, 0.0, -0.2]])
    assert relu_side_check("Z", pre, good).passed
    at_zero = good.copy()
    at_zero[1, 1] = 0.3                   # a gradient through Z == 0
    assert not relu_side_check("Z", pre, at_zero).passed
    A = np.zeros((1, 1, 2, 2))            # one window, all tied
    dP = np.ones((1, 1, 1, 1))
    first = _route_loops(A, dP, 2, 2, 0)
    assert maxpool_tie_check("A", A, dP, first, 2, 2, 0, np.float64).passed
    assert not maxpool_tie_check("A", A, dP, _route_loops(A, dP, 2, 2, 0, last=True),
                                 2, 2, 0, np.float64).passed


def test_kink_configurations_put_an_input_at_exactly_zero():
    """The kink=True leaves make exactly one ReLU input exactly 0 in the
    kernels' forward too (else the side at 0 is never exercised)."""
    for dtype in ("float64", "float32"):
        t = trace.Trace("mlp", kink=True, B=5, dtype=dtype)
        Y1, _ = nnkit.affine_forward(t.value("X"), t.value("W1"), t.value("b1"))
        assert np.count_nonzero(Y1 == 0) == 1
        t = trace.Trace("bn-relu", kink=True, B=6, fused=False, dtype=dtype)
        Y, _ = nnkit.affine_forward(t.value("X"), t.value("W"), t.value("b"))
        Z, _ = nnkit.batchnorm_forward(Y, t.value("gamma"), t.value("beta"))
        assert np.count_nonzero(Z == 0) == 1
        t = trace.Trace("conv", kink=True, dtype=dtype)
        Y, _ = nnkit.conv2d_forward(t.value("X"), t.value("K"), t.value("b"), 1, 1)
        assert np.count_nonzero(Y == 0) == 1


# ------------------------------------------------- the new runs pass as they are
def test_new_configurations_pass_and_are_run(capsys):
    code, doc = _gradcheck(capsys, "-w", "conv", "-w", "mlp", "-w", "bn-relu")
    assert code == 0 and doc["passed"]
    conv = [r["config"] for r in doc["runs"] if r["walkthrough"] == "conv"]
    assert any(c["stride"] == 2 for c in conv) and any(c["dilation"] == 2 for c in conv)
    assert {c["pool"] for c in conv if (c["pool_k"], c["pool_stride"]) == (3, 1)} == \
        {"max", "avg", "lp"}
    assert any(c["pool_padding"] == 1 for c in conv)
    threaded = [r for r in doc["runs"] if r["threads"] == 2]
    assert {r["walkthrough"] for r in threaded} == {"conv", "mlp", "bn-relu"}
    for r in threaded:                   # an odd batch, above PARALLEL_MIN_ELEMENTS
        assert r["config"]["B"] % 2 == 1
    # under --strict the kink rules are rows of their own
    names = {t["name"] for r in doc["runs"] for t in r["tensors"]}
    assert {"Y₁ (0 where ≤ 0)", "Z (0 where ≤ 0)", "A (ties → first max)"} <= names
    assert {r["level"] for r in doc["runs"]} == set(doc["levels"])


def test_threaded_runs_set_two_threads(monkeypatch, capsys):
    seen = []
    real = nnkit.relu_forward

    def spy(Y, **kw):
        seen.append((Y.size, os.environ.get("NNKIT_NUM_THREADS")))
        return real(Y, **kw)
    monkeypatch.setattr(nnkit, "relu_forward", spy)
    monkeypatch.delenv("NNKIT_NUM_THREADS", raising=False)
    code, _ = _gradcheck(capsys, "-w", "mlp")
    assert code == 0
    assert any(n >= 65536 and th == "2" for n, th in seen)
    assert all(th is None for n, th in seen if n < 65536)
    assert "NNKIT_NUM_THREADS" not in os.environ           # restored


# ------------------------------------------- simulated bugs, one per category
def test_threaded_chunk_bug_fails(monkeypatch, capsys):
    """A row team's off-by-one: the first row of the second thread's block
    gets no gradient, only when the team has two threads."""
    real = nnkit.relu_backward

    def buggy(dH, cache, **kw):
        dY = real(dH, cache, **kw)
        if os.environ.get("NNKIT_NUM_THREADS") == "2" and dY.size >= 65536:
            dY[(dY.shape[0] + 1) // 2] = 0
        return dY
    monkeypatch.setattr(nnkit, "relu_backward", buggy)
    assert _gradcheck(capsys, "-w", "mlp")[0] == 1
    assert cli.main(["gradcheck", "-w", "mlp", "--dtype", "float64", "--no-threaded",
                     "--strict"]) == 0                      # unseen without the threaded runs


def _second_block_start(B):
    """First row of the second thread's block of B rows in a two-thread team
    (pyx/_common.pxd's row_start(1, 2, B))."""
    return B // 2


def test_thread_split_rule_tolerance():
    """Equal to rounding passes (float64 1e-12, float32 1e-5 of the scale);
    one wrong row fails; a sum cancelling to round-off is judged against the
    size of its terms when given."""
    rng = np.random.default_rng(3)
    one = rng.standard_normal((9, 4))
    close = one * (1 + 1e-14 * rng.standard_normal(one.shape))
    assert thread_split_check("Y", one, close, np.float64, 2).passed
    wrong = one.copy()
    wrong[4] *= 1 + 1e-9
    check = thread_split_check("Y", one, wrong, np.float64, 2)
    assert not check.passed and check.worst_index[0] == 4
    assert check.name == "Y (1 vs 2 threads)"
    f32 = one.astype(np.float32)
    assert thread_split_check("Y", f32, f32 * np.float32(1 + 2e-7), np.float32, 2).passed
    assert not thread_split_check("Y", f32, f32 * np.float32(1 + 1e-4), np.float32, 2).passed
    tiny = np.array([3e-16, -2e-16])                          # a sum that cancels
    assert not thread_split_check("b", tiny, -tiny, np.float64, 2).passed
    assert thread_split_check("b", tiny, -tiny, np.float64, 2, scale=10.0).passed


def test_whitening_threaded_run_passes_with_thread_rows(capsys):
    """Correct kernels pass; the threaded run has an odd batch large enough
    to start the row team (B·M ≥ 65,536), leaves ∂L/∂b, ∂L/∂Y and ∂L/∂X to
    the thread comparison, and shows the forward output and every gradient
    1 vs 2 threads as rows of their own."""
    code, doc = _gradcheck(capsys, "-w", "whitening-zca")
    assert code == 0 and doc["passed"]
    threaded = [r for r in doc["runs"] if r["threads"] == 2]
    assert len(threaded) == 1
    run = threaded[0]
    B, M = run["config"]["B"], run["config"]["M"]
    assert B % 2 == 1 and B * M >= 65536
    names = [t["name"] for t in run["tensors"]]
    assert not {"b", "Y", "X"} & set(names) and {"W", "Σ", "m"} <= set(names)
    rows = {n for n in names if n.endswith("(1 vs 2 threads)")}
    assert rows == {f"{k} (1 vs 2 threads)" for k in
                    ("H", "∂L/∂Z", "∂L/∂β", "∂L/∂γ", "∂L/∂Ŷ", "∂L/∂Σ", "∂L/∂m", "∂L/∂Y",
                     "∂L/∂b", "∂L/∂W", "∂L/∂X")}
    for t in run["tensors"]:
        if t["name"] in rows:              # compared everywhere, not sampled
            assert t["checked"] == t["total"]


def test_whitening_threaded_chunk_bug_fails(monkeypatch, capsys):
    """The whitening backward's row team losing the first row of the second
    thread's block (the gradient of that row is 0), only with two threads:
    --strict fails at the thread comparison of ∂L/∂Y, and nothing sees it
    without the threaded run."""
    real = nnkit.whitening_relu_backward

    def buggy(dH, cache, **kw):
        g = real(dH, cache, **kw)
        B, M = g.dY.shape
        if os.environ.get("NNKIT_NUM_THREADS") == "2" and B * M >= 65536:
            dY = g.dY.copy()
            dY[_second_block_start(B)] = 0
            g = g._replace(dY=dY)
        return g
    monkeypatch.setattr(nnkit, "whitening_relu_backward", buggy)
    code, doc = _gradcheck(capsys, "-w", "whitening-zca")
    assert code == 1
    failed = {t["name"] for r in doc["runs"] for t in r["tensors"] if not t["passed"]}
    assert {"∂L/∂Y (1 vs 2 threads)", "∂L/∂X (1 vs 2 threads)"} <= failed
    assert all(r["passed"] for r in doc["runs"] if r["threads"] is None)
    assert cli.main(["gradcheck", "-w", "whitening-zca", "--dtype", "float64",
                     "--no-threaded", "--strict", "--isa", _kernels.level()]) == 0


def test_whitening_threaded_forward_bug_fails(monkeypatch, capsys):
    """The forward's row team writing a wrong row of its output with two
    threads: the forward's thread comparison fails."""
    real = nnkit.whitening_relu_forward

    def buggy(Y, *args, **kw):
        H, cache = real(Y, *args, **kw)
        if os.environ.get("NNKIT_NUM_THREADS") == "2" and H.size >= 65536:
            H = H.copy()
            H[_second_block_start(H.shape[0])] += 1.0
        return H, cache
    monkeypatch.setattr(nnkit, "whitening_relu_forward", buggy)
    code, doc = _gradcheck(capsys, "-w", "whitening-zca")
    assert code == 1
    failed = {t["name"] for r in doc["runs"] for t in r["tensors"] if not t["passed"]}
    assert failed == {"H (1 vs 2 threads)"}


def test_gradient_at_zero_bug_fails(monkeypatch, capsys):
    """ReLU passing the gradient where its input is exactly 0 (Z ≥ 0 for Z > 0)."""
    inputs = {}
    real_f, real_b = nnkit.relu_forward, nnkit.relu_backward

    def forward(Y, **kw):
        H, cache = real_f(Y, **kw)
        inputs[id(cache)] = np.array(Y)
        return H, cache

    def backward(dH, cache, **kw):
        dY = real_b(dH, cache, **kw)
        Y = inputs[id(cache)].reshape(dY.shape)
        return np.where(Y == 0, dH, dY)
    monkeypatch.setattr(nnkit, "relu_forward", forward)
    monkeypatch.setattr(nnkit, "relu_backward", backward)
    code, doc = _gradcheck(capsys, "-w", "mlp", "--no-threaded")
    assert code == 1
    failed = {t["name"] for r in doc["runs"] for t in r["tensors"] if not t["passed"]}
    assert failed == {"Y₁ (0 where ≤ 0)"}                  # finite differences accept it
    assert cli.main(["gradcheck", "-w", "mlp", "--dtype", "float64", "--no-threaded"]) == 0


def test_tie_to_last_max_bug_fails(monkeypatch, capsys):
    real = nnkit.maxpool2d_forward

    def forward(A, k, s=None, q=0, **kw):
        P, cache = real(A, k, s, q, **kw)
        return P, (cache, np.array(A), k, s or k, q)

    def backward(dP, cache, **kw):
        c, A, k, s, q = cache
        return _route_loops(A, dP, k, s, q, last=True).astype(A.dtype)
    monkeypatch.setattr(nnkit, "maxpool2d_forward", forward)
    monkeypatch.setattr(nnkit, "maxpool2d_backward", backward)
    code, doc = _gradcheck(capsys, "-w", "conv", "--no-threaded")
    assert code == 1
    failed = {(t["name"], r["config"]["pool_k"]) for r in doc["runs"] for t in r["tensors"]
              if not t["passed"]}
    # in 2×2 windows only the rule sees it (finite differences accept either
    # side of a tie); overlapping 3×3 windows add up one-sided slopes
    assert ("A (ties → first max)", 2) in failed and ("A", 2) not in failed


def test_stride_and_dilation_bugs_fail(monkeypatch, capsys):
    """A backward that drops the last output column's contribution to dW,
    only at stride 2, then only at dilation 2 (the walkthroughs of main used
    neither)."""
    real = nnkit.conv2d_backward
    for field in ("stride", "dilation"):
        def buggy(dY, cache, field=field, **kw):
            if getattr(cache, field) != (1, 1):
                dY = np.array(dY)
                dY[..., -1] = 0
            return real(dY, cache, **kw)
        monkeypatch.setattr(nnkit, "conv2d_backward", buggy)
        assert _gradcheck(capsys, "-w", "conv", "--no-threaded")[0] == 1, field


def test_pool_padding_bug_fails(monkeypatch, capsys):
    """avg-pool's backward losing the border windows' share when padded."""
    real = nnkit.avgpool2d_backward

    def buggy(dP, cache, **kw):
        dX = real(dP, cache, **kw)
        if cache.padding != (0, 0):
            dX[..., 0, :] = 0
        return dX
    monkeypatch.setattr(nnkit, "avgpool2d_backward", buggy)
    assert _gradcheck(capsys, "-w", "conv", "--no-threaded")[0] == 1


# ---------------------------------------------------------------- --isa
def test_isa_one_level_runs_that_level_and_all_runs_every_level(capsys):
    """--isa LEVEL checks that level only (in a child process unless it is
    this process's); the default checks every level this build and CPU have."""
    from nnkit import _kernels
    levels = list(_kernels.supported_levels())
    lowest = levels[0]
    code, doc = _gradcheck(capsys, "-w", "mlp", "--no-threaded", "--isa", lowest)
    assert code == 0 and doc["levels"] == [lowest]
    assert {r["level"] for r in doc["runs"]} == {lowest}
    assert cli.main(["gradcheck", "-w", "mlp", "--dtype", "float64", "--no-threaded"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[0] == "level"
    assert f"on {len(levels)} level{'s' if len(levels) > 1 else ''} ({', '.join(levels)})" \
        in out


@pytest.mark.parametrize("isa", ["avx9", "", "ALL", "native"])
def test_isa_unknown_level_is_a_usage_error(capsys, isa):
    from nnkit import _kernels
    levels = list(_kernels.supported_levels())
    if isa in levels:
        pytest.skip(f"this build has the level {isa!r}")
    with pytest.raises(SystemExit) as e:
        cli.main(["gradcheck", "-w", "mlp", "--isa", isa])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"--isa: expected 'all' or one of {levels}" in err and repr(isa) in err


def _fake_dispatch(monkeypatch, levels, current):
    from nnkit import _kernels
    monkeypatch.setattr(_kernels, "supported_levels", lambda: levels, raising=False)
    monkeypatch.setattr(_kernels, "level", lambda: current, raising=False)


def test_isa_level_this_cpu_lacks_is_refused(monkeypatch, capsys):
    _fake_dispatch(monkeypatch, ("baseline", "avx2"), "avx2")
    with pytest.raises(SystemExit) as e:
        cli.main(["gradcheck", "--isa", "avx512"])
    assert e.value.code == 2
    assert "['baseline', 'avx2']" in capsys.readouterr().err


def test_isa_level_not_taken_is_an_error_not_a_recursion(monkeypatch, capsys):
    """A child started with NNKIT_ISA=baseline whose kernels run avx2 says so."""
    _fake_dispatch(monkeypatch, ("baseline", "avx2"), "avx2")
    monkeypatch.setenv("NNKIT_ISA", "baseline")
    with pytest.raises(SystemExit) as e:
        cli.main(["gradcheck", "-w", "mlp", "--isa", "baseline"])
    assert e.value.code == 2
    assert "NNKIT_ISA=baseline is set but the kernels run 'avx2'" in capsys.readouterr().err


def test_isa_all_runs_each_level_in_a_child(monkeypatch, capsys):
    """With dispatch, every level runs in a process of its own with NNKIT_ISA
    set; the runs come back with their level and the table shows it."""
    _fake_dispatch(monkeypatch, ("baseline", "avx2"), "avx2")
    asked = []

    def child(args, names, level):
        asked.append(level)
        return [cli._run_dict(r) for r in cli._check_level(args, names, level)]
    monkeypatch.setattr(cli, "_check_in_child", child)
    code, doc = _gradcheck(capsys, "-w", "mlp", "--no-threaded", "--isa", "all")
    assert code == 0 and asked == ["baseline", "avx2"]
    assert doc["levels"] == ["baseline", "avx2"]
    assert cli.main(["gradcheck", "-w", "mlp", "--no-threaded", "--dtype", "float64",
                     "--isa", "baseline"]) == 0
    assert "on 1 level (baseline)" in capsys.readouterr().out


def test_isa_child_process_round_trip():
    """The real child: `python -m nnkit.cli gradcheck --json` with NNKIT_ISA
    set to a level other than this process's where the CPU has one, its runs
    parsed back with that level."""
    from nnkit import _kernels
    level = _kernels.supported_levels()[0]
    args = cli._parser().parse_args(["gradcheck", "--strict", "--dtype", "float64",
                                     "--no-threaded", "--max-elements", "4"])
    runs = cli._check_in_child(args, ["mlp"], level)
    assert runs and all(r["level"] == level and r["passed"] for r in runs)


def test_fused_mask_at_zero_in_the_sums_fails(monkeypatch, capsys):
    """The fused batch norm + ReLU recomputing its mask as Z ≥ 0 inside the
    sums of ∂L/∂β and ∂L/∂γ (its returned ∂L/∂Z still right): only the
    sums' rule sees it."""
    real = nnkit.bn_relu_backward

    def buggy(G, cache, **kw):
        g = real(G, cache, **kw)
        yhat = np.asarray(cache.yhat, np.float64)
        at_zero = (cache.gamma * yhat + cache.beta) == 0
        extra = np.where(at_zero, np.asarray(G, np.float64), 0.0)
        return g._replace(dbeta=(g.dbeta + extra.sum(0)).astype(g.dbeta.dtype),
                          dgamma=(g.dgamma + (extra * yhat).sum(0)).astype(g.dgamma.dtype))
    monkeypatch.setattr(nnkit, "bn_relu_backward", buggy)
    code, doc = _gradcheck(capsys, "-w", "bn-relu", "--no-threaded")
    assert code == 1
    failed = {t["name"] for r in doc["runs"] for t in r["tensors"] if not t["passed"]}
    assert failed == {"β (Σ over Z > 0)"}      # Ŷ = 0 at the kink: γ's sum is unchanged
