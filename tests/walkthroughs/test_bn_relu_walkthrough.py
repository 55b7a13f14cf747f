"""The bn-relu walkthrough (P2 end to end) and the trace mechanism on it."""
import numpy as np
import pytest

import nnkit as nk
from nnkit import trace
from nnkit.gradcheck import CheckCancelled

CONFIGS = [
    dict(B=2, N=1, M=1), dict(B=2, N=3, M=4), dict(B=2, N=2, M=3, constant_feature=True),
    dict(B=5, N=4, M=17, seed=3), dict(B=6, N=4, M=5, constant_feature=True),
    dict(B=9, N=3, M=2, seed=7, eps=0.1), dict(B=16, N=8, M=33, seed=2, eps=1e-3),
]


def test_registry_lists_bn_relu():
    reg = trace.registry()
    assert "bn-relu" in reg
    w = reg["bn-relu"]
    assert w.name == "bn-relu" and w.problem == "P2"
    assert trace.get("bn-relu") is w
    assert w.check_configs(), "the CLI needs at least one configuration"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_every_node_passes_its_check(cfg, dtype):
    t = trace.Trace("bn-relu", dtype=dtype, **cfg)
    rep = t.check_all(max_elements=64)
    assert rep.passed, rep.table()
    checked = {n.key for n in t.nodes if n.checked}
    assert {c.name for c in rep.checks} == {t.node(k).name for k in checked}
    assert "G" not in checked and len(rep.checks) == 12
    for c in rep.checks:
        assert c.checked >= 1 and np.isfinite(c.max_rel_err)


def test_check_configs_all_pass():
    w = trace.get("bn-relu")
    configs = w.check_configs()
    assert any(c.get("B") == 2 for c in configs)
    assert any(c.get("constant_feature") for c in configs)
    for cfg in configs:
        rep = trace.Trace(w, **cfg).check_all()
        assert rep.passed, rep.table()


def test_graph_structure_and_descendants():
    t = trace.Trace("bn-relu")
    keys = [n.key for n in t.nodes]
    assert keys == ["X", "W", "b", "Y", "m", "v", "Yhat", "gamma", "beta", "Z", "H", "G", "L"]
    assert t.descendants("m") == ["v", "Yhat", "Z", "H", "L"]
    assert t.descendants("v") == ["Yhat", "Z", "H", "L"]
    assert t.descendants("Y") == ["m", "v", "Yhat", "Z", "H", "L"]
    assert t.descendants("X") == ["Y", "m", "v", "Yhat", "Z", "H", "L"]
    assert t.descendants("gamma") == ["Z", "H", "L"]
    assert t.descendants("G") == ["L"]
    assert t.descendants("L") == []
    assert t.node("m").parents == ("Y",) and t.node("Yhat").parents == ("Y", "m", "v")
    assert t.node("L").role == "loss" and not t.node("G").checked
    assert [n.key for n in t.backward_steps()][0] == "L"


def _forward_ref(X, W, b, gamma, beta, G, eps):
    Y = X @ W.T + b
    m = Y.mean(axis=0)
    v = ((Y - m) ** 2).mean(axis=0)
    Yhat = (Y - m) / np.sqrt(v + eps)
    Z = gamma * Yhat + beta
    H = np.maximum(Z, 0.0)
    return dict(Y=Y, m=m, v=v, Yhat=Yhat, Z=Z, H=H, L=np.sum(G * H))


def test_node_values_and_gradients_against_reference(ref):
    t = trace.Trace("bn-relu", B=7, N=4, M=6, seed=11, eps=1e-3)
    val = {k: np.asarray(v, np.float64) for k, v in t.values.items()}
    want = _forward_ref(val["X"], val["W"], val["b"], val["gamma"], val["beta"], val["G"], 1e-3)
    for k, w in want.items():
        ref.assert_rel(t.value(k), w, 1e-12, k)
    assert t.loss == pytest.approx(float(want["L"]), rel=1e-12)
    dZ = np.where(want["Z"] > 0, val["G"], 0.0)
    r = ref.bn_backward(dZ, want["Y"], val["gamma"], 1e-3)
    dX, dW, db = ref.affine_backward(r.dY, val["X"], val["W"])
    expect = dict(H=val["G"], Z=dZ, gamma=r.dgamma, beta=r.dbeta, Yhat=r.dYhat,
                  v=r.dvar, X=dX, W=dW)
    for k, w in expect.items():
        ref.assert_rel(t.grad(k), w, 1e-11, f"d{k}")
    # dY and dm cancel (see tests/batchnorm/test_batchnorm.py): absolute against term size
    term = np.abs(r.dYhat) / np.sqrt(want["v"] + 1e-3)
    assert np.max(np.abs(t.grad("Y") - r.dY)) <= 1e-12 * term.max()
    assert np.max(np.abs(t.grad("m") - r.dmean)) <= 1e-12 * term.sum(axis=0).max()
    # db = Σ_rows dY = 0: batch norm removes any per-feature shift of Y
    assert np.max(np.abs(db)) <= 1e-12 * term.sum(axis=0).max()
    assert np.max(np.abs(t.grad("b"))) <= 1e-12 * term.sum(axis=0).max()


def test_perturbing_m_reevaluates_v_and_yhat():
    t = trace.Trace("bn-relu", B=5, N=3, M=4, seed=1)
    val = {k: np.asarray(v, np.float64) for k, v in t.values.items()}
    Y, G, g, bt = val["Y"], val["G"], val["gamma"], val["beta"]
    eps = t.cfg["eps"]
    m2 = val["m"] + np.array([0.3, -0.2, 0.1, 0.05])
    v2 = ((Y - m2) ** 2).mean(axis=0)                 # v recomputed from the new m
    L2 = np.sum(G * np.maximum(g * (Y - m2) / np.sqrt(v2 + eps) + bt, 0))
    assert t.loss_with("m", m2) == pytest.approx(L2, rel=1e-13)
    # perturbing v keeps m: Ŷ uses the old m and the new v
    vv = val["v"] * 1.5
    Lv = np.sum(G * np.maximum(g * (Y - val["m"]) / np.sqrt(vv + eps) + bt, 0))
    assert t.loss_with("v", vv) == pytest.approx(Lv, rel=1e-13)
    # the stored values are untouched
    np.testing.assert_array_equal(t.value("m"), val["m"])


def _p23_dm(Y, m, gamma, beta, G, eps):
    """P2.3 total derivative dm at an arbitrary m (v recomputed from it)."""
    B = Y.shape[0]
    v = ((Y - m) ** 2).mean(axis=0)
    Yhat = (Y - m) / np.sqrt(v + eps)
    Z = gamma * Yhat + beta
    dYhat = np.where(Z > 0, G, 0.0) * gamma
    dv = (dYhat * (Y - m)).sum(axis=0) * (-0.5) * (v + eps) ** (-1.5)
    dm = -(dYhat / np.sqrt(v + eps)).sum(axis=0) + dv * (-2.0 / B) * (Y - m).sum(axis=0)
    return dm, dv


@pytest.mark.parametrize("cfg", [dict(B=5, N=3, M=4, seed=1),
                                 dict(B=2, N=2, M=3, seed=4, eps=1e-2),
                                 dict(B=8, N=3, M=5, seed=9, constant_feature=True, eps=1e-2)])
def test_numeric_dm_is_the_p23_total_derivative(cfg):
    t = trace.Trace("bn-relu", **cfg)
    val = {k: np.asarray(v, np.float64) for k, v in t.values.items()}
    Y, G, g, bt = val["Y"], val["G"], val["gamma"], val["beta"]
    eps = t.cfg["eps"]
    # at the batch mean Σ(Y − m) = 0: the trace's own numeric dm vs the formula
    rep = t.check("m", max_elements=None)
    dm, dv = _p23_dm(Y, val["m"], g, bt, G, eps)
    np.testing.assert_allclose(rep.numeric, dm, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(t.check("v", max_elements=None).numeric, dv, rtol=1e-6, atol=1e-7)
    # away from the mean the (−2/B)Σ(Y − m) term is non-zero: finite
    # differences through the trace (m perturbed, v and Ŷ re-evaluated) still
    # equal the P2.3 formula, and differ from the partial derivative without it
    m_off = val["m"] + 0.25
    x = m_off.copy()
    num = nk.numeric_gradient(lambda: t.loss_with("m", x), x)
    dm_off, dv_off = _p23_dm(Y, m_off, g, bt, G, eps)
    # central differences h = 1e-6 in float64: ~1e-8 absolute
    np.testing.assert_allclose(num, dm_off, rtol=1e-6, atol=1e-7)
    B = Y.shape[0]
    extra = dv_off * (-2.0 / B) * (Y - m_off).sum(axis=0)
    assert np.max(np.abs(extra)) > 1e-3        # the term the total derivative adds
    assert not np.allclose(num, dm_off - extra, rtol=1e-6, atol=1e-7)


def test_p2_1_in_the_trace_eps_zero_constant_feature():
    t = trace.Trace("bn-relu", B=4, N=3, M=3, constant_feature=True, eps=0.0)
    assert t.value("v")[0] == 0
    assert not np.all(np.isfinite(t.value("Yhat")[:, 0]))
    assert np.all(np.isfinite(t.value("Yhat")[:, 1:]))
    lines = " ".join(t.insights("Yhat") + t.insights("v"))
    assert "P2.1" in lines
    t2 = trace.Trace("bn-relu", B=4, N=3, M=3, constant_feature=True, eps=1e-5)
    assert np.all(np.isfinite(t2.value("Yhat"))) and np.all(t2.value("Yhat")[:, 0] == 0)
    assert t2.check_all().passed


def test_p2_2_yhat_moments_in_the_trace():
    t = trace.Trace("bn-relu", B=12, N=4, M=6, seed=5, eps=0.3)
    Yh = np.asarray(t.value("Yhat"))
    Y = np.asarray(t.value("Y"))
    v = Y.var(axis=0)
    np.testing.assert_allclose(Yh.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Yh.var(axis=0), v / (v + 0.3), rtol=1e-12)
    assert any("P2.2" in s for s in t.insights("Yhat"))


def test_resample_and_seed_reproducible():
    a = trace.Trace("bn-relu", seed=3)
    b = trace.Trace("bn-relu", seed=3)
    for k in a.values:
        np.testing.assert_array_equal(a.value(k), b.value(k))
    b.resample(4)
    assert b.cfg["seed"] == 4 and not np.array_equal(a.value("X"), b.value("X"))
    assert trace.Trace("bn-relu", dtype="float32").value("Y").dtype == np.float32


def test_check_sampling_and_cancel():
    t = trace.Trace("bn-relu", B=10, N=6, M=8)
    c = t.check("Y", max_elements=5)
    assert c.checked == 5 and c.total == 80 and c.passed
    assert t.reports["Y"] is c
    with pytest.raises(CheckCancelled):
        t.check("X", cancelled=lambda: True)
    seen = []
    rep = t.check_all(max_elements=4, progress=lambda i, n, k: seen.append((i, n, k)))
    assert rep.passed and seen[0] == (0, 12, "L") and seen[-1] == (12, 12, "")


def test_arrays_export():
    t = trace.Trace("bn-relu")
    arr = t.arrays()
    assert {"X", "L", "grad_X", "grad_m", "grad_v"} <= set(arr)
    assert "grad_G" not in arr
