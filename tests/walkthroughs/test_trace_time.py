"""The trace mechanism on time-indexed nodes and two chains (the RNN/BiRNN shape).

A toy bidirectional recurrence unrolled over T steps, built in this test with
NumPy and an analytic backpropagation through time written here:
    f_t = tanh(Wf f_{t-1} + x_t),  b_t = tanh(Wb b_{t+1} + x_t),
    L = Σ_t G_t · (f_t + b_t)
The forward chain's gradient accumulates right to left in time, the backward
chain's left to right (P9.4). Every node (states, inputs, both weight
matrices, initial states) must pass the trace's finite-difference check, which
perturbs one node and re-evaluates only its descendants.
"""
import numpy as np
import pytest

from nnkit.trace import Node, Param, Trace, Walkthrough

T, D = 3, 2


class ToyBiRNN(Walkthrough):
    name = "toy-birnn"
    title = "toy bidirectional recurrence"
    problem = "P9"
    params = (Param("seed", 0), Param("dtype", "float64", choices=("float64",)))

    def graph(self, cfg):
        nodes = [Node("Wf", "W^f", role="param"), Node("Wb", "W^b", role="param"),
                 Node("f[0]", "f_0", role="input", time=0, chain="forward"),
                 Node(f"b[{T + 1}]", f"b_{T + 1}", role="input", time=T + 1, chain="backward")]
        nodes += [Node(f"x[{t}]", f"x_{t}", role="input", time=t) for t in range(1, T + 1)]
        for t in range(1, T + 1):
            nodes.append(Node(f"f[{t}]", f"f_{t} = tanh(W^f f_{t - 1} + x_{t})",
                              ("Wf", f"f[{t - 1}]", f"x[{t}]"),
                              lambda W, h, x: np.tanh(W @ h + x), time=t, chain="forward"))
        for t in range(T, 0, -1):
            nodes.append(Node(f"b[{t}]", f"b_{t} = tanh(W^b b_{t + 1} + x_{t})",
                              ("Wb", f"b[{t + 1}]", f"x[{t}]"),
                              lambda W, h, x: np.tanh(W @ h + x), time=t, chain="backward"))
        nodes.append(Node("G", "upstream", role="constant"))
        keys = [f"f[{t}]" for t in range(1, T + 1)] + [f"b[{t}]" for t in range(1, T + 1)]
        nodes.append(Node("L", "L = Σ_t G_t·(f_t + b_t)", ("G", *keys),
                          lambda G, *hs: float(sum(G[i % T] @ h for i, h in enumerate(hs))),
                          role="loss"))
        return nodes

    def leaves(self, cfg, rng):
        vals = {"Wf": rng.standard_normal((D, D)), "Wb": rng.standard_normal((D, D)),
                "f[0]": rng.standard_normal(D), f"b[{T + 1}]": rng.standard_normal(D),
                "G": rng.standard_normal((T, D))}
        vals.update({f"x[{t}]": rng.standard_normal(D) for t in range(1, T + 1)})
        return vals

    def analytic(self, v, cfg):
        G = v["G"]
        g = {"L": 1.0}
        dWf, dWb = np.zeros((D, D)), np.zeros((D, D))
        dx = {t: np.zeros(D) for t in range(1, T + 1)}
        carry = np.zeros(D)                       # forward chain: right to left
        for t in range(T, 0, -1):
            dh = G[t - 1] + carry
            g[f"f[{t}]"] = dh
            da = dh * (1 - v[f"f[{t}]"] ** 2)
            dWf += np.outer(da, v[f"f[{t - 1}]"])
            dx[t] += da
            carry = v["Wf"].T @ da
        g["f[0]"] = carry
        carry = np.zeros(D)                       # backward chain: left to right
        for t in range(1, T + 1):
            dh = G[t - 1] + carry
            g[f"b[{t}]"] = dh
            da = dh * (1 - v[f"b[{t}]"] ** 2)
            dWb += np.outer(da, v[f"b[{t + 1}]"])
            dx[t] += da
            carry = v["Wb"].T @ da
        g[f"b[{T + 1}]"] = carry
        g.update({f"x[{t}]": dx[t] for t in dx})
        g["Wf"], g["Wb"] = dWf, dWb
        return g


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_time_indexed_node_passes(seed):
    trace = Trace(ToyBiRNN(), seed=seed)
    report = trace.check_all()
    assert report.passed, report.table()
    # Wf, Wb, f_0, b_{T+1}, x_1..T, f_1..T, b_1..T, L (G is a constant)
    assert len(report.checks) == 2 + 2 + T + 2 * T + 1
    assert {n.chain for n in trace.nodes if n.time is not None} == {None, "forward", "backward"}


def test_descendants_follow_each_chain_in_its_direction():
    trace = Trace(ToyBiRNN())
    # f_1 feeds f_2, f_3 (and L), never the backward chain
    assert trace.descendants("f[1]") == ["f[2]", "f[3]", "L"]
    # b_3 feeds b_2, b_1; x_2 feeds both chains from step 2 on
    assert trace.descendants("b[3]") == ["b[2]", "b[1]", "L"]
    assert trace.descendants("x[2]") == ["f[2]", "f[3]", "b[2]", "b[1]", "L"]


def test_a_wrong_bptt_is_caught():
    """Dropping the carried gradient (truncated BPTT) must fail the check."""
    class Truncated(ToyBiRNN):
        def analytic(self, v, cfg):
            g = super().analytic(v, cfg)
            g["f[1]"] = v["G"][0]                 # ignores what flows back from f_2
            return g
    report = Trace(Truncated()).check_all()
    assert not report.passed
    assert not report["f[1]"].passed
    assert report["f[2]"].passed          # the rest of the chain is untouched


# -- the order a recurrence is presented in (weights, t = 0, 1, ..., loss)
@pytest.mark.parametrize("name", ["rnn", "birnn"])
def test_recurrence_nodes_come_in_runs_of_one_time_step(name):
    from nnkit.trace import get
    walk = get(name)
    graph = walk.graph(walk.config())            # the walkthrough's own order
    order = Trace(name).forward_steps()
    assert sorted(n.key for n in order) == sorted(n.key for n in graph)
    seen = set()
    for n in order:                              # still an evaluation order
        assert set(n.parents) <= seen, n.key
        seen.add(n.key)
    timed = [n for n in order if n.time is not None]
    assert all(n.time is None and n.is_leaf for n in order[:order.index(timed[0])])
    assert order[-1].role == "loss"
    # each time step is one run or (BiRNN) one run per sweep: times change
    # between runs, never inside one, and no run splits a step's nodes apart
    runs = [timed[0].time]
    for n in timed[1:]:
        if n.time != runs[-1]:
            runs.append(n.time)
    T = walk.config()["T"]
    if name == "rnn":
        assert runs == list(range(0, T + 1))     # t = 0, 1, ..., T once each
    else:
        fwd, bwd = runs[:T + 1], runs[T + 1:]    # forward sweep, then backward sweep
        assert fwd == list(range(0, T + 1)) and bwd == list(range(T + 1, 0, -1))


def test_the_rnn_step_holds_its_input_preactivation_state_and_target():
    order = [n.key for n in Trace("rnn").forward_steps()]
    i = order.index("a[2]")
    assert order[i - 1:i + 3] == ["x[2]", "a[2]", "h[2]", "G[2]"]


def test_graphs_without_times_keep_their_order():
    from nnkit.trace import get
    walk = get("bn-relu")
    assert [n.key for n in Trace("bn-relu").forward_steps()] == \
        [n.key for n in walk.graph(walk.config())]
