"""P9: RNN and BiRNN kernels against the independent NumPy BPTT (rnn_reference.py):
values, every gradient, shapes, dtypes, layouts."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nnkit as nk
from rnn_reference import (ACTS, BIRNN_GRADS, RNN_GRADS, birnn_ref, grad_norms_ref,
                           make_birnn, make_rnn, rnn_bptt_ref, rnn_ref,
                           preact_bptt_ref, truncated_bptt_ref)


# ----------------------------------------------------- against the reference
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (5, 3, 4, 6), (7, 2, 3, 5), (3, 9, 17, 4)])
def test_rnn_matches_numpy_bptt(shape, act, dtype, rng, ref):
    T, B, N, M = shape
    p = make_rnn(rng, T, B, N, M, dtype)
    H, cache = nk.rnn_forward(p["X"], p["h0"], p["Wx"], p["Wh"], p["b"], act)
    assert H.dtype == dtype and H.shape == (T, B, M)
    dH = rng.standard_normal(H.shape).astype(dtype)
    g = nk.rnn_backward(dH, cache)
    r = rnn_bptt_ref(dH, p["X"], p["h0"], p["Wx"], p["Wh"], p["b"], act)
    # float32: rounding carried through up to 7 recurrent steps: 1e-5 -> 1e-4
    tol = ref.RTOL[dtype] * (1 if dtype == np.float64 else 10)
    ref.assert_rel(H, r["H"], tol, "H")
    for name in RNN_GRADS:
        got = getattr(g, name)
        assert got.dtype == dtype, name
        ref.assert_rel(got, r[name], tol, name)


def _both_forms_match(rng, ref, T, B, N, M, dtype):
    p = make_rnn(rng, T, B, N, M, dtype, scale=0.5 / np.sqrt(M))
    tol = ref.RTOL[dtype] * (1 if dtype == np.float64 else 10)
    for form, bptt_ref in (("standard", rnn_bptt_ref), ("preactivation", preact_bptt_ref)):
        H, cache = nk.rnn_forward(p["X"], p["h0"], p["Wx"], p["Wh"], p["b"], "tanh",
                                  form=form)
        dH = rng.standard_normal(H.shape).astype(dtype)
        g = nk.rnn_backward(dH, cache)
        r = bptt_ref(dH, p["X"], p["h0"], p["Wx"], p["Wh"], p["b"], "tanh")
        ref.assert_rel(H, r["H"], tol, f"{form} H")
        for name in ("dX", "dWx", "dWh", "db", "dh0"):
            ref.assert_rel(getattr(g, name), r[name], tol, f"{form} {name}")
    return tol


# Each step's product runs in the packed tile kernel (pyx/rnn.pyx) or in BLAS,
# on one thread or on a team (nnkit/rnn.py _step_plan): the tile kernel's
# team splits the batch's rows when it has 4 per thread (B = 8, 9, 13 on 2
# threads; 13 on 3), else the columns. The policy's limits are patched so
# every path runs at small shapes: B around the tile's 4 rows (leftover rows
# run one at a time; blocks of 8 first on AVX-512), M around its panel width
# (AVX2: 16 float32 / 8 float64 columns; AVX-512: 32 / 16; of the leftover
# columns one vector's worth as a one-vector tile, the rest in the plain
# loop), M = K past the kernel's 128-row blocks of K (150: two blocks, 300:
# three), and split over 1, 2 and 3 threads (uneven blocks of panels or of
# rows).
@pytest.mark.parametrize("path", ["tile", "blas"])
@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("B, M", [(1, 1), (1, 17), (3, 8), (4, 16), (5, 33), (8, 64),
                                  (9, 7), (13, 40), (13, 150), (20, 300)])
def test_step_product_paths(path, threads, B, M, dtype, rng, ref, monkeypatch):
    monkeypatch.setenv("NNKIT_NUM_THREADS", threads)
    limit = 1 << 62 if path == "tile" else 0        # the tile kernel, or the plain loop
    monkeypatch.setattr(nk.rnn, "TILE_MAX_MACS", limit)
    monkeypatch.setattr(nk.rnn, "PLAIN_MAX_MACS", limit)   # (builds without AVX2 + FMA)
    for name in ("STEP_SPLIT_MIN", "ROW_SPLIT_MIN"):
        monkeypatch.setattr(nk.rnn, name, 0 if threads != "1" else 1 << 62)
    monkeypatch.setattr(nk.rnn, "free_core_threads", lambda: int(threads))
    assert nk.rnn._step_plan(B, M) == (path == "tile", int(threads))
    _both_forms_match(rng, ref, 3, B, 5, M, dtype)


@pytest.mark.parametrize("form", ["standard", "preactivation"])
@pytest.mark.parametrize("B", [8, 9, 13, 20])
@pytest.mark.parametrize("M", [19, 150])
def test_team_of_rows_gives_the_bits_of_one_thread(form, B, M, rng):
    """The tile kernel's team on blocks of rows (4 or more per thread): each
    row runs the path it runs on one thread (blocks start at multiples of 4;
    an 8-row and a 4-row block sum an element in the same chain; M = 150 has
    two blocks of K), so the states and gradients are the same bits; only
    the norms' sums of squares are added in another order (rounding)."""
    T, N = 6, 5
    p = make_rnn(rng, T, B, N, M)
    rows = lambda a: a.reshape(-1, a.shape[-1])
    pre = form == "preactivation"
    K = nk._kernels.rnn
    dH = rows(rng.standard_normal((T, B, M)))
    res = []
    for nt in (1, 2, 3):
        H = np.empty((T * B, M))
        G = np.empty((T * B, M)) if pre else None
        K.project(rows(p["X"]), p["Wx"], p["b"], H, 1)
        K.recur(p["h0"], p["Wh"], 0, False, pre, T, H, G, True, nt)
        out = [np.empty((T * B, M)), None if pre else np.empty((T * B, M)), np.empty(T),
               np.empty((B, M))]
        K.bptt(dH, H, G, p["Wh"], 0, False, pre, T, 2, *out, True, nt)
        res.append([H, G] + out)
    for other in res[1:]:
        for k, (a, b) in enumerate(zip(res[0], other)):
            if a is None:
                continue
            if k == 4:                                   # the norms
                np.testing.assert_allclose(a, b, rtol=1e-14)
            else:
                np.testing.assert_array_equal(a, b)


# The policy's real limits, unpatched, and the weight gradients' GEMMs over
# all T·B rows: on 2 threads as two tasks (dWh | dX, dWx: weight_grads,
# from 2^20 multiply-adds when N <= M <= 4N), else each split by blocks of
# rows from 2^24 (float32) / 2^22 (float64) multiply-adds (gemm_team in
# pyx/_common.pxd): T·B·N·M = 40·50·97·97 = 18.8 M is over all of them.
@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_split_products_match_the_reference(threads, dtype, rng, ref, monkeypatch):
    monkeypatch.setenv("NNKIT_NUM_THREADS", threads)
    T, B, N, M = 40, 50, 97, 97
    assert T * B * N * M >= 1 << 24
    tol = _both_forms_match(rng, ref, T, B, N, M, dtype)
    q = make_birnn(rng, T, B, N, M, 3, dtype, bias=True)
    for key in ("Wxf", "Whf", "Wxb", "Whb"):       # contracting, as make_rnn's scale above
        q[key] = (q[key] / np.sqrt(M)).astype(dtype)
    Y, cache = nk.birnn_forward(**q, activation="tanh")
    dY = rng.standard_normal(Y.shape).astype(dtype)
    g = nk.birnn_backward(dY, cache)
    r = birnn_ref(dY, **q, act="tanh")
    ref.assert_rel(Y, r["Y"], tol, "birnn Y")
    for name in BIRNN_GRADS:
        ref.assert_rel(getattr(g, name), r[name], tol, f"birnn {name}")


# A backward whose time loop runs on one thread reduces dWx and dWh on a
# second thread while the loop runs (bptt_grads, nnkit/rnn.py OVERLAP_MIN),
# in chunks of 512 // B steps: patched on at small shapes, with T below,
# at and above one chunk (B = 100: 5 steps a chunk), both forms, both
# directions (the BiRNN), truncation, against the independent references.
def _overlap_on(monkeypatch):
    monkeypatch.setattr(nk.rnn, "OVERLAP_MIN", 0)
    monkeypatch.setattr(nk.rnn, "free_core_threads", lambda: 2)
    monkeypatch.setattr(nk.rnn, "STEP_SPLIT_MIN", 1 << 62)
    monkeypatch.setattr(nk.rnn, "PLAIN_MAX_MACS", 1 << 62)    # the overlap needs the
    monkeypatch.setattr(nk.rnn, "TILE_MAX_MACS", 1 << 62)     # tile path


@pytest.mark.parametrize("T, B", [(1, 3), (4, 100), (5, 100), (11, 100), (30, 7)])
def test_overlapped_weight_gradients(T, B, dtype, rng, ref, monkeypatch):
    _overlap_on(monkeypatch)
    tol = _both_forms_match(rng, ref, T, B, 6, 9, dtype)
    q = make_birnn(rng, T, B, 6, 9, 3, dtype, bias=True)
    Y, cache = nk.birnn_forward(**q, activation="tanh")
    dY = rng.standard_normal(Y.shape).astype(dtype)
    g = nk.birnn_backward(dY, cache)
    r = birnn_ref(dY, **q, act="tanh")
    for name in BIRNN_GRADS:
        ref.assert_rel(getattr(g, name), r[name], tol, f"birnn {name}")


@pytest.mark.parametrize("k", [1, 3, 6])
def test_overlapped_truncated_bptt(k, rng, monkeypatch):
    _overlap_on(monkeypatch)
    T = 13
    p = make_rnn(rng, T, 100, 3, 4)
    H, cache = nk.rnn_forward(**p, activation="tanh")
    dH = rng.standard_normal(H.shape)
    g = nk.rnn_backward(dH, cache, truncate=k)
    r = truncated_bptt_ref(dH, **p, act="tanh", k=k)
    for name in RNN_GRADS:
        np.testing.assert_allclose(getattr(g, name), r[name], rtol=1e-11, atol=1e-13,
                                   err_msg=name)
    np.testing.assert_allclose(g.grad_norms, grad_norms_ref(r["dh"]), rtol=1e-12)


def test_overlapped_sums_do_not_depend_on_the_team(rng):
    """One thread or two, the chunks are reduced in the same order: the same
    bits."""
    T, B, N, M = 40, 20, 5, 7
    p = make_rnn(rng, T, B, N, M)
    H, _ = nk.rnn_forward(**p, activation="tanh")
    rows = lambda a: a.reshape(-1, a.shape[-1])
    dH = rng.standard_normal(H.shape)
    res = []
    for nt in (1, 2):
        out = [np.empty((T * B, M)), np.empty((T * B, M)), np.empty(T), np.empty((B, M)),
               np.empty((T * B, N)), np.empty((M, N)), np.empty((M, M)), np.empty(M)]
        nk._kernels.rnn.bptt_grads(rows(dH), rows(p["X"]), rows(H), None, p["h0"], p["Wx"],
                                   p["Wh"], 0, False, False, T, 0, False, *out,
                                   np.empty(M), nt)
        res.append(out)
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("form", ["standard", "preactivation"])
@pytest.mark.parametrize("reverse", [False, True])
def test_overlapped_projection_is_project_then_recur(form, reverse, rng):
    """project_recur on one thread or two: the same bits (the chunks do not
    depend on the team), and project then recur to rounding."""
    T, B, N, M = 45, 20, 5, 7          # 25 steps a chunk: two chunks
    p = make_rnn(rng, T, B, N, M)
    rows = lambda a: a.reshape(-1, a.shape[-1])
    pre = form == "preactivation"
    K = nk._kernels.rnn
    res = []
    for nt in (0, 1, 2):
        H = np.empty((T * B, M))
        G = np.empty((T * B, M)) if pre else None
        if nt == 0:
            K.project(rows(p["X"]), p["Wx"], p["b"], H, 1)
            K.recur(p["h0"], p["Wh"], 0, reverse, pre, T, H, G, True, 1)
        else:
            K.project_recur(rows(p["X"]), p["Wx"], p["b"], p["h0"], p["Wh"], 0, reverse, pre,
                            T, H, G, nt)
        res.append((H, G))
    np.testing.assert_array_equal(res[1][0], res[2][0])
    np.testing.assert_allclose(res[1][0], res[0][0], rtol=1e-13, atol=1e-15)
    if pre:
        np.testing.assert_array_equal(res[1][1], res[2][1])
        np.testing.assert_allclose(res[1][1], res[0][1], rtol=1e-13, atol=1e-15)


def test_step_policy_limits(monkeypatch):
    """The tile kernel below TILE_MAX_MACS multiply-adds per step (2^26; in a
    build without AVX2 + FMA the plain loop below PLAIN_MAX_MACS, 2^16), BLAS
    from it; with two free cores, a team of rows from ROW_SPLIT_MIN (2^15)
    when B >= 8, of columns from STEP_SPLIT_MIN (2^17) when B < 8; one
    thread with one free core."""
    monkeypatch.setattr(nk.rnn, "free_core_threads", lambda: 2)
    plan = nk.rnn._step_plan
    if nk._kernels.rnn.VECTOR_TILES:
        assert plan(8, 64) == (True, 2) and plan(8, 63) == (True, 1)     # rows: 2^15
        assert plan(7, 136) == (True, 1) and plan(2, 256) == (True, 2)   # columns: 2^17
        assert plan(32, 128) == (True, 2)
    monkeypatch.setattr(nk.rnn, "free_core_threads", lambda: 1)
    assert plan(8, 64)[1] == 1 and plan(32, 128)[1] == 1
    if nk._kernels.rnn.VECTOR_TILES:
        assert nk.rnn._step_plan(255, 512)[0] and nk.rnn._step_plan(64, 512)[0]
    else:
        assert not nk.rnn._step_plan(4, 128)[0]
    assert not nk.rnn._step_plan(256, 512)[0]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("bias", [False, True])
def test_birnn_matches_numpy_bptt(act, bias, dtype, rng, ref):
    T, B, N, M, K = 4, 3, 5, 6, 2
    p = make_birnn(rng, T, B, N, M, K, dtype, bias=bias)
    Y, cache = nk.birnn_forward(**p, activation=act)
    dY = rng.standard_normal(Y.shape).astype(dtype)
    g = nk.birnn_backward(dY, cache)
    r = birnn_ref(dY, **p, act=act)
    tol = ref.RTOL[dtype] * (1 if dtype == np.float64 else 10)
    ref.assert_rel(Y, r["Y"], tol, "Y")
    for name in BIRNN_GRADS:
        ref.assert_rel(getattr(g, name), r[name], tol, name)


def test_birnn_without_bias_is_bias_zero(rng):
    p = make_birnn(rng, 3, 2, 3, 4, 2)
    Y0, c0 = nk.birnn_forward(**p)
    Y1, c1 = nk.birnn_forward(**p, bf=np.zeros(4), bb=np.zeros(4))
    np.testing.assert_array_equal(Y0, Y1)
    G = rng.standard_normal(Y0.shape)
    g0, g1 = nk.birnn_backward(G, c0), nk.birnn_backward(G, c1)
    for name in BIRNN_GRADS:
        np.testing.assert_allclose(getattr(g0, name), getattr(g1, name), rtol=1e-13, atol=1e-14)
    # the returned dbf is Σ dA^f (what a bias at 0 would receive)
    np.testing.assert_allclose(g0.dbf, g0.dAf.sum(axis=(0, 1)), rtol=1e-12)


def test_reversed_chain_is_the_forward_chain_on_the_reversed_sequence(rng):
    """birnn's backward chain equals an rnn run on X[::-1] (read back reversed)."""
    p = make_birnn(rng, 5, 2, 3, 4, 2, bias=True)
    Y, cache = nk.birnn_forward(**p, activation="tanh")
    Hb, _ = nk.rnn_forward(p["X"][::-1], p["hb0"], p["Wxb"], p["Whb"], p["bb"], "tanh")
    np.testing.assert_allclose(cache.Hb, Hb[::-1], rtol=1e-13, atol=1e-15)


def test_bptt_carries_gradient_back_in_time(rng):
    """Only dH at the last step is nonzero; earlier steps still get gradient
    (and in the reversed chain, only at the first step)."""
    p = make_rnn(rng, 4, 2, 3, 3)
    H, cache = nk.rnn_forward(**p)
    dH = np.zeros_like(H)
    dH[-1] = 1.0
    g = nk.rnn_backward(dH, cache)
    assert np.all(np.abs(g.dh[:-1]).sum(axis=(1, 2)) > 0)
    np.testing.assert_array_equal(g.dh[-1], dH[-1])
    np.testing.assert_allclose(g.dh[:-1], np.einsum("tbm,mk->tbk", g.dA[1:], p["Wh"]),
                               rtol=1e-12, atol=1e-15)


# ---------------------------------------------------- dtypes, edge cases
def test_float32_agrees_with_float64(rng):
    p = make_rnn(rng, 6, 4, 5, 7)
    G = rng.standard_normal((6, 4, 7))
    H64, c64 = nk.rnn_forward(**p)
    H32, c32 = nk.rnn_forward(**{k: a.astype(np.float32) for k, a in p.items()})
    g64, g32 = nk.rnn_backward(G, c64), nk.rnn_backward(G.astype(np.float32), c32)
    np.testing.assert_allclose(H32, H64, rtol=1e-5, atol=1e-6)
    for name in RNN_GRADS:   # float32 rounding through 6 steps and T·B sums
        np.testing.assert_allclose(getattr(g32, name), getattr(g64, name), rtol=1e-4,
                                   atol=1e-5, err_msg=name)


def test_single_step_single_sample_single_feature(rng, ref):
    X, h0 = np.array([[[0.7]]]), np.array([[-0.3]])
    Wx, Wh, b = np.array([[1.5]]), np.array([[0.5]]), np.array([0.2])
    H, cache = nk.rnn_forward(X, h0, Wx, Wh, b)
    a = 0.7 * 1.5 - 0.3 * 0.5 + 0.2
    assert H[0, 0, 0] == pytest.approx(np.tanh(a), rel=1e-15)
    g = nk.rnn_backward(np.ones_like(H), cache)
    d = 1 - np.tanh(a) ** 2
    assert g.dX[0, 0, 0] == pytest.approx(d * 1.5, rel=1e-14)
    assert g.dh0[0, 0] == pytest.approx(d * 0.5, rel=1e-14)
    assert g.dWx[0, 0] == pytest.approx(d * 0.7, rel=1e-14)
    assert g.dWh[0, 0] == pytest.approx(d * -0.3, rel=1e-14)
    assert g.db[0] == pytest.approx(d, rel=1e-14)


def test_defaults_zero_state_and_no_bias(rng):
    p = make_rnn(rng, 3, 2, 2, 3, bias=False)
    H, cache = nk.rnn_forward(p["X"], None, p["Wx"], p["Wh"], None)
    r, _ = rnn_ref(p["X"], np.zeros((2, 3)), p["Wx"], p["Wh"], None, "tanh")
    np.testing.assert_allclose(H, r, rtol=1e-13)


def test_non_contiguous_inputs(rng):
    p = make_rnn(rng, 4, 3, 5, 6)
    big = rng.standard_normal((4, 3, 10))
    Xs = big[:, :, ::2]                          # strided view
    Wx_f = np.asfortranarray(p["Wx"])
    Wh_t = np.ascontiguousarray(p["Wh"].T).T     # transposed view
    h0_s = np.repeat(p["h0"], 2, axis=0)[::2]
    assert not Xs.flags.c_contiguous and not Wh_t.flags.c_contiguous
    H, cache = nk.rnn_forward(Xs, h0_s, Wx_f, Wh_t, p["b"])
    Hc, cc = nk.rnn_forward(np.ascontiguousarray(Xs), p["h0"], p["Wx"], p["Wh"], p["b"])
    np.testing.assert_array_equal(H, Hc)
    G = rng.standard_normal((8, 3, 6))[::2]
    g, gc = nk.rnn_backward(G, cache), nk.rnn_backward(np.ascontiguousarray(G), cc)
    for name in RNN_GRADS:
        np.testing.assert_array_equal(getattr(g, name), getattr(gc, name))
    # birnn: Wy as a transposed view
    q = make_birnn(rng, 3, 2, 3, 4, 2)
    Wy = q["Wy"]
    q["Wy"] = np.ascontiguousarray(Wy.T).T
    Y, _ = nk.birnn_forward(**q)
    q["Wy"] = Wy
    np.testing.assert_array_equal(Y, nk.birnn_forward(**q)[0])


def test_inputs_are_not_modified_and_out_is_used(rng):
    p = make_rnn(rng, 3, 2, 2, 3)
    copies = {k: a.copy() for k, a in p.items()}
    out = np.empty((3, 2, 3))
    H, cache = nk.rnn_forward(**p, out=out)
    assert H is out
    G = rng.standard_normal(H.shape)
    Gc = G.copy()
    nk.rnn_backward(G, cache)
    for k in p:
        np.testing.assert_array_equal(p[k], copies[k])
    np.testing.assert_array_equal(G, Gc)
    buf = p["X"].copy().reshape(-1)            # X (3, 2, 2) and out (3, 2, 3) on one buffer
    buf = np.concatenate([buf, np.zeros(6)])
    p["X"] = buf[:12].reshape(3, 2, 2)
    with pytest.raises(ValueError, match="out: shares memory with input X"):
        nk.rnn_forward(**p, out=buf.reshape(3, 2, 3))


@given(T=st.integers(1, 5), B=st.integers(1, 4), N=st.integers(1, 5), M=st.integers(1, 5),
       act=st.sampled_from(ACTS), seed=st.integers(0, 2**16))
def test_hypothesis_rnn_shapes(T, B, N, M, act, seed):
    rng = np.random.default_rng(seed)
    p = make_rnn(rng, T, B, N, M)
    H, cache = nk.rnn_forward(**p, activation=act)
    dH = rng.standard_normal(H.shape)
    g = nk.rnn_backward(dH, cache)
    r = rnn_bptt_ref(dH, **p, act=act)
    np.testing.assert_allclose(H, r["H"], rtol=1e-12, atol=1e-13)
    for name in RNN_GRADS:
        np.testing.assert_allclose(getattr(g, name), r[name], rtol=1e-10, atol=1e-12,
                                   err_msg=name)


@given(T=st.integers(1, 4), B=st.integers(1, 3), N=st.integers(1, 4), M=st.integers(1, 4),
       K=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_hypothesis_birnn_shapes(T, B, N, M, K, seed):
    rng = np.random.default_rng(seed)
    p = make_birnn(rng, T, B, N, M, K, bias=seed % 2 == 1)
    Y, cache = nk.birnn_forward(**p)
    dY = rng.standard_normal(Y.shape)
    g = nk.birnn_backward(dY, cache)
    r = birnn_ref(dY, **p, act="sigmoid")
    np.testing.assert_allclose(Y, r["Y"], rtol=1e-12, atol=1e-13)
    for name in BIRNN_GRADS:
        np.testing.assert_allclose(getattr(g, name), r[name], rtol=1e-10, atol=1e-12,
                                   err_msg=name)


# ------------------------------------------------- grad_norms, truncated BPTT
@pytest.mark.parametrize("act", ACTS)
def test_grad_norms_are_the_reference_dh_norms(act, dtype, rng):
    p = make_rnn(rng, 7, 3, 4, 5, dtype)
    H, cache = nk.rnn_forward(**p, activation=act)
    dH = rng.standard_normal(H.shape).astype(dtype)
    r = rnn_bptt_ref(dH, **p, act=act)
    for full in (True, False):              # computed whether or not dh is written
        g = nk.rnn_backward(dH, cache, full=full)
        assert g.grad_norms.shape == (7,) and g.grad_norms.dtype == np.float64
        np.testing.assert_allclose(g.grad_norms, grad_norms_ref(r["dh"]),
                                   rtol=1e-12 if dtype == np.float64 else 1e-4)


def test_birnn_grad_norms_per_chain(rng):
    p = make_birnn(rng, 5, 2, 3, 4, 2, bias=True)
    Y, cache = nk.birnn_forward(**p, activation="tanh")
    dY = rng.standard_normal(Y.shape)
    g = nk.birnn_backward(dY, cache)
    r = birnn_ref(dY, **p, act="tanh")
    assert g.grad_norms.shape == (2, 5)
    np.testing.assert_allclose(g.grad_norms[0], grad_norms_ref(r["dhf"]), rtol=1e-12)
    np.testing.assert_allclose(g.grad_norms[1], grad_norms_ref(r["dhb"]), rtol=1e-12)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("T,k", [(10, 3), (9, 3), (5, 1), (6, 6), (4, 10), (12, 5)])
def test_truncated_bptt_is_detaching_the_state(T, k, act, rng):
    p = make_rnn(rng, T, 2, 3, 4)
    H, cache = nk.rnn_forward(**p, activation=act)
    dH = rng.standard_normal(H.shape)
    g = nk.rnn_backward(dH, cache, truncate=k)
    r = truncated_bptt_ref(dH, **p, act=act, k=k)
    for name in RNN_GRADS:
        np.testing.assert_allclose(getattr(g, name), r[name], rtol=1e-11, atol=1e-13,
                                   err_msg=name)
    np.testing.assert_allclose(g.grad_norms, grad_norms_ref(r["dh"]), rtol=1e-12)
    full = nk.rnn_backward(dH, cache)
    if k < T:      # the cut is real: full BPTT differs (states before a cut)
        assert not np.allclose(full.dh, g.dh)
    else:          # a window as long as the sequence is full BPTT
        np.testing.assert_array_equal(full.dWh, g.dWh)


def test_truncate_none_is_full(rng):
    p = make_rnn(rng, 5, 2, 3, 4)
    H, cache = nk.rnn_forward(**p)
    dH = rng.standard_normal(H.shape)
    a, b = nk.rnn_backward(dH, cache), nk.rnn_backward(dH, cache, truncate=None)
    for name in RNN_GRADS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_truncated_preactivation_form_is_detaching_the_state(rng):
    """Truncation in the P9.1 form: chunks run from their (constant) state."""
    from rnn_reference import preact_bptt_ref
    T, k = 7, 3
    p = make_rnn(rng, T, 2, 3, 4)
    H, cache = nk.rnn_forward(**p, form="preactivation")
    dH = rng.standard_normal(H.shape)
    g = nk.rnn_backward(dH, cache, truncate=k)
    dWh, dh = 0.0, []
    for s in range(0, T, k):
        init = p["h0"] if s == 0 else H[s - 1]
        r = preact_bptt_ref(dH[s:s + k], p["X"][s:s + k], init, p["Wx"], p["Wh"], p["b"],
                            "tanh")
        dWh, dh = dWh + r["dWh"], dh + [r["dh"]]
    np.testing.assert_allclose(g.dWh, dWh, rtol=1e-11)
    np.testing.assert_allclose(g.dh, np.concatenate(dh), rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("B", [1, 2])
def test_single_sample_uses_the_same_math(B, dtype, rng, ref):
    """B = 1 runs the step as a GEMV: same results as the reference."""
    p = make_rnn(rng, 20, B, 3, 6, dtype)
    H, cache = nk.rnn_forward(**p)
    dH = rng.standard_normal(H.shape).astype(dtype)
    g = nk.rnn_backward(dH, cache)
    r = rnn_bptt_ref(dH, **p, act="tanh")
    tol = ref.RTOL[dtype] * (1 if dtype == np.float64 else 10)
    for name in RNN_GRADS:
        ref.assert_rel(getattr(g, name), r[name], tol, name)


def test_serial_blas_restores_the_thread_count():
    from nnkit import _threads
    if not _threads.blas_controllable():
        pytest.skip("SciPy's OpenBLAS thread symbols not found")
    setn, getn = _threads._BLAS
    before = getn()
    setn(2)                      # a count to restore even on a 1-core machine
    try:
        with _threads.serial_blas():
            assert getn() == 1
        assert getn() == 2
        with pytest.raises(RuntimeError):
            with _threads.serial_blas():
                raise RuntimeError("restored on the way out")
        assert getn() == 2
        with _threads.serial_blas(active=False):
            assert getn() == 2
    finally:
        setn(before)
