"""P9: the rnn and birnn walkthroughs (every node checked by the one trace engine)."""
import numpy as np
import pytest

from nnkit.trace import Trace, registry
import nnkit as nk
from rnn_reference import (ACTS, BIRNN_GRADS, RNN_GRADS, birnn_ref, grad_norms_ref,
                           make_birnn, make_rnn, rnn_bptt_ref, rnn_ref)


# ------------------------------------------------------------ walkthrough
def test_birnn_walkthrough_graph():
    assert "birnn" in registry()
    t = Trace("birnn")
    T = t.cfg["T"]
    assert T == 3
    keys = {n.key for n in t.nodes}
    assert {f"hf[{i}]" for i in range(0, 4)} <= keys
    assert {f"hb[{i}]" for i in range(1, 5)} <= keys
    assert {f"y[{i}]" for i in range(1, 4)} <= keys
    assert t.node("hf[2]").chain == "forward" and t.node("hf[2]").time == 2
    assert t.node("hb[4]").chain == "backward" and t.node("hb[4]").time == 4
    # descendants come in the trace's order, which groups the nodes by time (the
    # backward chain runs t = 4..1, so y[t] follows hb[t]): compare the sets and
    # check that the order is topological (every node after its parents).
    order = [n.key for n in t.nodes]
    for start, expected in (("hf[1]", {"hf[2]", "hf[3]", "y[1]", "y[2]", "y[3]", "L"}),
                            ("hb[2]", {"hb[1]", "y[1]", "y[2]", "L"})):
        got = t.descendants(start)
        assert set(got) == expected and len(got) == len(expected)
        assert got == sorted(got, key=order.index)
    for i, key in enumerate(order):
        assert all(order.index(p) < i for p in t.node(key).parents), key
    # the loss is Σ ½||y − z||², independently of the kernels
    Y = np.stack([t.value(f"y[{i}]") for i in range(1, 4)])
    Z = np.stack([t.value(f"z[{i}]") for i in range(1, 4)])
    assert t.loss == pytest.approx(0.5 * np.sum((Y - Z) ** 2), rel=1e-12)


@pytest.mark.parametrize("dt", ["float64", "float32"])
def test_birnn_walkthrough_every_node_passes(dt):
    w = registry()["birnn"]
    for cfg in w.check_configs()[:3]:
        rep = Trace(w, dtype=dt, **cfg).check_all(max_elements=32)
        assert rep.passed, rep.table()


def test_birnn_walkthrough_catches_a_truncated_bptt():
    w = registry()["birnn"]

    class Truncated(type(w)):
        def analytic(self, values, cfg):
            g = super().analytic(values, cfg)
            g["hf[1]"] = g["y[1]"] @ values["Wy"][:, :cfg["M"]]   # drops what h^f_2 sends back
            return g
    rep = Trace(Truncated()).check_all()
    assert not rep.passed and not rep["h^f_1"].passed
    assert rep["h^f_2"].passed and rep["h^b_1"].passed


def test_birnn_walkthrough_insights():
    t = Trace("birnn", w_scale=0.5)
    lines = t.insights("hf[2]")
    assert any("right to left" in s for s in lines)
    assert any("δ^T" in s for s in lines)
    assert any("left to right" in s for s in t.insights("hb[1]"))
    assert t.insights("Wy") == []
    v = t.views("hf[2]")
    assert len(v) == 2 and all(a.shape == (2, 3) for a in v.values())


@pytest.mark.parametrize("dt", ["float64", "float32"])
def test_rnn_walkthrough_every_node_passes(dt):
    w = registry()["rnn"]
    for cfg in w.check_configs()[:3]:
        t = Trace(w, dtype=dt, **cfg)
        rep = t.check_all(max_elements=32)
        assert rep.passed, rep.table()
        # h_0 plus T pre-activations and T states are time-indexed on one chain
        T = t.cfg["T"]
        assert sum(n.chain == "forward" for n in t.nodes) == 2 * T + 1


def test_rnn_walkthrough_nodes_against_the_reference():
    """The trace's a_t and h_t values (NumPy node functions) and the kernels'
    dA, dh gradients agree with the reference BPTT."""
    t = Trace("rnn", T=3, seed=5)
    v = t.values
    X = np.stack([v[f"x[{i}]"] for i in (1, 2, 3)])
    G = np.stack([v[f"G[{i}]"] for i in (1, 2, 3)])
    r = rnn_bptt_ref(G, X, v["h[0]"], v["Wx"], v["Wh"], v["b"], "tanh")
    for i in (1, 2, 3):
        np.testing.assert_allclose(v[f"h[{i}]"], r["H"][i - 1], rtol=1e-12)
        np.testing.assert_allclose(t.grad(f"a[{i}]"), r["dA"][i - 1], rtol=1e-11)
        np.testing.assert_allclose(t.grad(f"h[{i}]"), r["dh"][i - 1], rtol=1e-11)
    np.testing.assert_allclose(t.grad("h[0]"), r["dh0"], rtol=1e-11)
    assert any("δ^T" in s for s in t.insights("h[2]"))
