"""P9.4: a bidirectional RNN unrolled over T steps (T = 3 by default).

Graph (rows are samples, B of them; P9.4 writes W h + U x for column vectors,
here U = Wx, W = Wh and rows are samples: h Whᵀ + x Wxᵀ):
    h^f_0 given,     h^f_t = σ(h^f_{t−1} W^fᵀ + x_t U^fᵀ)        t = 1..T
    h^b_{T+1} given, h^b_t = σ(h^b_{t+1} W^bᵀ + x_t U^bᵀ)        t = T..1
    y_t = [h^f_t, h^b_t] Wyᵀ + by,    L = Σ_t ½ ||y_t − z_t||²
The targets z_t are constants. No recurrence biases (as P9.4 writes it).
The node functions are plain NumPy; the analytic gradients of every node come
from nk.birnn_forward / nk.birnn_backward (the kernels), so each node's
finite-difference check compares the kernels' BPTT with an independent forward.
`nnkit gradcheck` runs every activation the kernels offer (sigmoid, tanh,
relu) in both walkthroughs.
"""
from __future__ import annotations

import numpy as np

import nnkit as nk

from ..trace import Node, Param, Term, Trace, Walkthrough, register
from ._common import cast, common_params

_GAMMA = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0}     # max |σ′| (P9.2's γ)
ACTIVATIONS = tuple(_GAMMA)


def _act(name):
    if name == "tanh":
        return np.tanh
    if name == "relu":
        return lambda a: np.maximum(a, 0)
    return lambda a: 1.0 / (1.0 + np.exp(-a))


def _dact(name, h):
    """σ′ written with the state h = σ(a)."""
    if name == "sigmoid":
        return h * (1 - h)
    if name == "relu":
        return (h > 0).astype(np.float64)
    return 1 - h * h


def _symbol(name):
    return {"sigmoid": "σ", "tanh": "tanh", "relu": "relu"}[name]


def _params(T: int, M: int, activation: str, recurrent: str, outputs: bool):
    """The parameters of both RNN walkthroughs (one definition)."""
    return (
        Param("T", T, "time steps", minimum=1, maximum=16),
        Param("B", 2, "batch size (rows)", minimum=1, maximum=256),
        Param("N", 2, "input features", minimum=1, maximum=256),
        Param("M", M, "hidden units" + (" per chain" if outputs else ""), minimum=1,
              maximum=256),
        *((Param("K", 2, "output features", minimum=1, maximum=256),) if outputs else ()),
        Param("activation", activation, "state nonlinearity σ", choices=ACTIVATIONS),
        Param("w_scale", 1.0, f"scale of the recurrent weights {recurrent} (P9.2/P9.3)",
              minimum=0.0, maximum=100.0),
        *common_params(),
    )


def _activation_configs(default: str) -> list[dict]:
    """One run per activation other than the walkthrough's default."""
    return [dict(activation=a, seed=7) for a in ACTIVATIONS if a != default]


def _stacked(values: dict, name: str, T: int) -> np.ndarray:
    """The per-step nodes name[1] … name[T] as one (T, B, ·) array: the
    time-major layout the kernels take (both walkthroughs feed them this way)."""
    return np.stack([values[f"{name}[{t}]"] for t in range(1, T + 1)])


def _draw_steps(vals: dict, rng, T: int, B: int, N: int, const: str, width: int) -> dict:
    """Add the per-step leaves of both walkthroughs to vals: the input x[t]
    (B, N) and the constant const[t] (B, width) (targets z or upstream G),
    drawn step by step in that order (the order fixes each seed's values)."""
    for t in range(1, T + 1):
        vals[f"x[{t}]"] = rng.standard_normal((B, N))
        vals[f"{const}[{t}]"] = rng.standard_normal((B, width))
    return vals


def _chain_state(c: str, t: int, prev: int, symbol: str, act, note: str) -> Node:
    """h^c_t = σ(h^c_prev W^cᵀ + x_t U^cᵀ): the state node of the BiRNN's
    forward (c = "f", prev = t − 1) or backward (c = "b", prev = t + 1) chain;
    the two chains differ only in which neighbour they read."""
    return Node(f"h{c}[{t}]", f"h^{c}_{t} = {symbol}(h^{c}_{prev} W^{c}ᵀ + x_{t} U^{c}ᵀ)",
                (f"h{c}[{prev}]", f"W{c}", f"x[{t}]", f"U{c}"),
                lambda h, W, x, U: act(h @ W.T + x @ U.T), label=f"h^{c}_{t}", time=t,
                chain="forward" if c == "f" else "backward", note=note)


def _loss(*ys_and_zs):
    T = len(ys_and_zs) // 2
    return 0.5 * sum(np.sum((np.asarray(y, np.float64) - np.asarray(z, np.float64)) ** 2)
                     for y, z in zip(ys_and_zs[:T], ys_and_zs[T:]))


@register
class BiRNNWalkthrough(Walkthrough):
    name = "birnn"
    title = "Bidirectional RNN through time"
    problem = "P9"
    description = ("A bidirectional RNN unrolled over T steps with both initial states "
                   "as nodes; BPTT: the forward chain's gradients accumulate right to "
                   "left in time, the backward chain's left to right (P9.4).")
    params = _params(3, 3, "sigmoid", "W^f, W^b", outputs=True)
    # P9.4's total derivatives as sums of named terms, for `nnkit check`: the
    # forward chain carries from t + 1, the backward chain from t − 1
    terms = {
        "dhf": (Term("∂L/∂y_t W_y[:, :M] (through the output)",
                     lambda dy_t, Wy, M: dy_t @ Wy[:, :M]),
                Term("(∂L/∂h^f_{t+1} ⊙ σ′) W^f (carried from t + 1)",
                     lambda dhf_next, hf_next, Wf, activation:
                     (dhf_next * _dact(activation, hf_next)) @ Wf)),
        "dhb": (Term("∂L/∂y_t W_y[:, M:] (through the output)",
                     lambda dy_t, Wy, M: dy_t @ Wy[:, M:]),
                Term("(∂L/∂h^b_{t−1} ⊙ σ′) W^b (carried from t − 1)",
                     lambda dhb_prev, hb_prev, Wb, activation:
                     (dhb_prev * _dact(activation, hb_prev)) @ Wb)),
    }

    def graph(self, cfg):
        T, act = cfg["T"], cfg["activation"]
        s = _symbol(act)
        f = _act(act)
        nodes = [
            Node("Uf", "U^f ∈ ℝ^{M×N}: forward-chain input weights", role="param", label="U^f"),
            Node("Wf", "W^f ∈ ℝ^{M×M}: forward-chain recurrent weights", role="param",
                 label="W^f"),
            Node("Ub", "U^b ∈ ℝ^{M×N}: backward-chain input weights", role="param", label="U^b"),
            Node("Wb", "W^b ∈ ℝ^{M×M}: backward-chain recurrent weights", role="param",
                 label="W^b"),
            Node("Wy", "W_y ∈ ℝ^{K×2M}: output weights on [h^f_t, h^b_t]", role="param",
                 label="W_y"),
            Node("by", "b_y ∈ ℝ^K", role="param", label="b_y"),
        ]
        nodes += [Node(f"x[{t}]", f"x_{t} ∈ ℝ^{{B×N}}", role="input", label=f"x_{t}", time=t)
                  for t in range(1, T + 1)]
        nodes.append(Node("hf[0]", "h^f_0: initial state of the forward chain", role="input",
                          label="h^f_0", time=0, chain="forward"))
        nodes.append(Node(f"hb[{T + 1}]", f"h^b_{T + 1}: initial state of the backward chain",
                          role="input", label=f"h^b_{T + 1}", time=T + 1, chain="backward"))
        for t in range(1, T + 1):
            nodes.append(_chain_state(
                "f", t, t - 1, s, f,
                note=(f"∂L/∂h^f_{t} = y_{t}'s part + W^fᵀ-carried ∂L/∂a^f_{t + 1} "
                      "(accumulates right to left)") if t < T else
                     f"Last forward state: only y_{t} reads it."))
        for t in range(T, 0, -1):
            nodes.append(_chain_state(
                "b", t, t + 1, s, f,
                note=(f"∂L/∂h^b_{t} = y_{t}'s part + W^bᵀ-carried ∂L/∂a^b_{t - 1} "
                      "(accumulates left to right)") if t > 1 else
                     f"Last backward state: only y_{t} reads it."))
        for t in range(1, T + 1):
            nodes.append(Node(
                f"y[{t}]", f"y_{t} = [h^f_{t}, h^b_{t}] W_yᵀ + b_y",
                (f"hf[{t}]", f"hb[{t}]", "Wy", "by"),
                lambda hf, hb, Wy, by: np.concatenate([hf, hb], axis=1) @ Wy.T + by,
                label=f"y_{t}", time=t))
        nodes += [Node(f"z[{t}]", f"z_{t}: target (constant)", role="constant",
                       label=f"z_{t}", time=t) for t in range(1, T + 1)]
        ys = [f"y[{t}]" for t in range(1, T + 1)]
        zs = [f"z[{t}]" for t in range(1, T + 1)]
        nodes.append(Node("L", "L = Σ_t ½ ||y_t − z_t||²", (*ys, *zs), _loss, role="loss"))
        return nodes

    def leaves(self, cfg, rng):
        T, B, N, M, K = cfg["T"], cfg["B"], cfg["N"], cfg["M"], cfg["K"]
        ws = cfg["w_scale"]
        vals = {
            "Uf": rng.standard_normal((M, N)) / np.sqrt(N),
            "Wf": ws * rng.standard_normal((M, M)) / np.sqrt(M),
            "Ub": rng.standard_normal((M, N)) / np.sqrt(N),
            "Wb": ws * rng.standard_normal((M, M)) / np.sqrt(M),
            "Wy": rng.standard_normal((K, 2 * M)) / np.sqrt(2 * M),
            "by": 0.5 * rng.standard_normal(K),
            "hf[0]": 0.5 * rng.standard_normal((B, M)),
            f"hb[{T + 1}]": 0.5 * rng.standard_normal((B, M)),
        }
        return cast(_draw_steps(vals, rng, T, B, N, "z", K), cfg["dtype"])

    def _run(self, values, cfg):
        T = cfg["T"]
        X, Z = _stacked(values, "x", T), _stacked(values, "z", T)
        Y, cache = nk.birnn_forward(X, values["hf[0]"], values[f"hb[{T + 1}]"],
                                     values["Uf"], values["Wf"], values["Ub"], values["Wb"],
                                     values["Wy"], values["by"], cfg["activation"])
        dY = (Y - Z).astype(Y.dtype)
        return dY, cache, nk.birnn_backward(dY, cache)

    def analytic(self, values, cfg):
        T = cfg["T"]
        dY, cache, g = self._run(values, cfg)
        out = {"L": np.float64(1.0), "Uf": g.dWxf, "Wf": g.dWhf, "Ub": g.dWxb,
               "Wb": g.dWhb, "Wy": g.dWy, "by": g.dby, "hf[0]": g.dhf0,
               f"hb[{T + 1}]": g.dhb0}
        for t in range(1, T + 1):
            out[f"x[{t}]"] = g.dX[t - 1]
            out[f"hf[{t}]"] = g.dhf[t - 1]
            out[f"hb[{t}]"] = g.dhb[t - 1]
            out[f"y[{t}]"] = dY[t - 1]
        return out

    # -------------------------------------------------------------- teaching
    def _chain_of(self, trace: Trace, key: str):
        node = trace.node(key)
        if node.chain not in ("forward", "backward"):
            return None
        return node.chain

    def views(self, trace: Trace, key: str):
        node = trace.node(key)
        chain = self._chain_of(trace, key)
        T = trace.cfg["T"]
        if chain is None or node.time in (0, T + 1):
            return {}
        h = np.asarray(trace.value(key), np.float64)
        d = _dact(trace.cfg["activation"], h)
        c = "f" if chain == "forward" else "b"
        return {f"σ′(a^{c}_{node.time})": d,
                f"∂L/∂a^{c}_{node.time} = ∂L/∂h^{c}_{node.time} ⊙ σ′":
                    np.asarray(trace.grad(key), np.float64) * d}

    def insights(self, trace: Trace, key: str):
        chain = self._chain_of(trace, key)
        if chain is None:
            return []
        T = trace.cfg["T"]
        c = "f" if chain == "forward" else "b"
        times = range(0, T + 1) if chain == "forward" else range(T + 1, 0, -1)
        W = trace.value("Wf" if c == "f" else "Wb")
        order = range(1, T + 1) if c == "f" else range(T, 0, -1)
        return _vanishing_lines(trace, [f"h{c}[{t}]" for t in times],
                                [f"h{c}[{t}]" for t in order], W, f"h^{c}", f"W^{c}",
                                "right to left" if c == "f" else "left to right")

    def threaded_configs(self):
        """B·M² ≥ 32,768 multiply-adds a step (rnn.ROW_SPLIT_MIN) with B ≥ 8
        rows starts the time loop's row team; an odd batch splits unevenly."""
        return [dict(T=2, B=33, N=3, M=32, K=2, seed=7)]

    def check_configs(self):
        return [
            dict(), dict(T=1, B=1, N=1, M=1, K=1), dict(T=2, B=3, N=4, M=5, K=3, seed=1),
            dict(T=4, activation="tanh", seed=2), dict(T=5, w_scale=3.0, seed=3),
            dict(T=3, B=4, N=3, M=6, K=2, w_scale=0.3, seed=4),
        ] + _activation_configs("sigmoid")


def _vanishing_lines(trace: Trace, visit: list, steps: list, W, h: str, w: str,
                     direction: str) -> list:
    """P9.2/P9.4 lines: ||∂L/∂h_t|| in BPTT order, the bound δ = γ√λ1(WᵀW), and
    the measured ||∂h_end/∂h_start|| (sample 0) against δ^T.

    visit: state keys in forward-evaluation order (initial state first);
    steps: the keys of the computed states in that order."""
    act = trace.cfg["activation"]
    T = len(steps)
    norms = [(trace.node(k).time, float(np.linalg.norm(np.asarray(trace.grad(k), np.float64))))
             for k in visit]
    W = np.asarray(W, np.float64)
    gamma = _GAMMA[act]
    s1 = float(np.sqrt(np.linalg.eigvalsh(W.T @ W)[-1]))
    delta = gamma * s1
    J = np.eye(W.shape[0])                 # Π diag(σ′(a_t)) W along the chain
    for k in steps:
        hv = np.asarray(trace.value(k), np.float64)[0]
        d = _dact(act, hv)
        J = (d[:, None] * W) @ J
    jn = float(np.linalg.norm(J, 2))
    return [
        f"P9.4  ||∂L/∂{h}_t|| in the order BPTT visits them ({direction}): "
        + ", ".join(f"t={t}: {n:.3g}" for t, n in reversed(norms)),
        f"P9.2  γ = max|σ′| = {gamma:g}, √λ1({w}ᵀ{w}) = {s1:.3g}, so every step's "
        f"Jacobian has norm ≤ δ = γ√λ1 = {delta:.3g}",
        f"P9.2  ||∂{h}_end/∂{h}_start|| over the {T} steps (sample 0) = {jn:.3g} "
        f"≤ δ^T = {delta ** T:.3g}"
        + ("  (δ < 1: the gradient vanishes geometrically)" if delta < 1 else
           "  (δ ≥ 1: no vanishing guaranteed; P9.3: exploding is not guaranteed either)"),
    ]


@register
class RNNWalkthrough(Walkthrough):
    name = "rnn"
    title = "RNN through time (BPTT)"
    problem = "P9"
    description = ("A simple RNN unrolled over T steps with the pre-activations a_t as "
                   "nodes: dh_t = G_t + (∂L/∂a_{t+1}) Wh, ∂L/∂a_t = dh_t ⊙ σ′(a_t).")
    params = _params(4, 3, "tanh", "Wh", outputs=False)
    # dh_t = G_t + (∂L/∂a_{t+1}) Wh as named terms, for `nnkit check`
    terms = {
        "dh": (Term("G_t (the direct term)", lambda G_t: G_t),
               Term("∂L/∂a_{t+1} Wh (the carried term)", lambda da_next, Wh: da_next @ Wh)),
    }

    def graph(self, cfg):
        T, act = cfg["T"], cfg["activation"]
        s = _symbol(act)
        f = _act(act)
        nodes = [
            Node("Wx", "Wx ∈ ℝ^{M×N}: input weights (U)", role="param"),
            Node("Wh", "Wh ∈ ℝ^{M×M}: recurrent weights (W)", role="param"),
            Node("b", "b ∈ ℝ^M", role="param"),
            Node("h[0]", "h_0: initial state", role="input", label="h_0", time=0,
                 chain="forward"),
        ]
        nodes += [Node(f"x[{t}]", f"x_{t} ∈ ℝ^{{B×N}}", role="input", label=f"x_{t}", time=t)
                  for t in range(1, T + 1)]
        for t in range(1, T + 1):
            nodes.append(Node(f"a[{t}]", f"a_{t} = h_{t - 1} Whᵀ + x_{t} Wxᵀ + b",
                              (f"h[{t - 1}]", "Wh", f"x[{t}]", "Wx", "b"),
                              lambda h, W, x, U, b: h @ W.T + x @ U.T + b,
                              label=f"a_{t}", time=t, chain="forward",
                              note="∂L/∂a_t = ∂L/∂h_t ⊙ σ′(a_t): what the kernels call dA."))
            nodes.append(Node(f"h[{t}]", f"h_{t} = {s}(a_{t})", (f"a[{t}]",), f,
                              label=f"h_{t}", time=t, chain="forward",
                              note=(f"Total derivative: G_{t} + (∂L/∂a_{t + 1}) Wh"
                                    if t < T else f"Last state: only L reads it (G_{t}).")))
        nodes += [Node(f"G[{t}]", f"G_{t} = ∂L/∂h_{t} (direct): fixed random upstream",
                       role="constant", label=f"G_{t}", time=t) for t in range(1, T + 1)]
        hs = [f"h[{t}]" for t in range(1, T + 1)]
        gs = [f"G[{t}]" for t in range(1, T + 1)]
        nodes.append(Node("L", "L = Σ_t Σ G_t ⊙ h_t", (*hs, *gs),
                          lambda *a: sum(float(np.sum(np.asarray(g, np.float64) * h))
                                         for h, g in zip(a[:len(a) // 2], a[len(a) // 2:])),
                          role="loss"))
        return nodes

    def leaves(self, cfg, rng):
        T, B, N, M = cfg["T"], cfg["B"], cfg["N"], cfg["M"]
        vals = {"Wx": rng.standard_normal((M, N)) / np.sqrt(N),
                "Wh": cfg["w_scale"] * rng.standard_normal((M, M)) / np.sqrt(M),
                "b": 0.5 * rng.standard_normal(M), "h[0]": 0.5 * rng.standard_normal((B, M))}
        return cast(_draw_steps(vals, rng, T, B, N, "G", M), cfg["dtype"])

    def analytic(self, values, cfg):
        T = cfg["T"]
        X, G = _stacked(values, "x", T), _stacked(values, "G", T)
        _, cache = nk.rnn_forward(X, values["h[0]"], values["Wx"], values["Wh"],
                                   values["b"], cfg["activation"])
        g = nk.rnn_backward(G, cache)
        out = {"L": np.float64(1.0), "Wx": g.dWx, "Wh": g.dWh, "b": g.db, "h[0]": g.dh0}
        for t in range(1, T + 1):
            out[f"x[{t}]"] = g.dX[t - 1]
            out[f"a[{t}]"] = g.dA[t - 1]
            out[f"h[{t}]"] = g.dh[t - 1]
        return out

    def insights(self, trace: Trace, key: str):
        if not key.startswith("h["):
            return []
        T = trace.cfg["T"]
        return _vanishing_lines(trace, [f"h[{t}]" for t in range(T + 1)],
                                [f"h[{t}]" for t in range(1, T + 1)], trace.value("Wh"),
                                "h", "Wh", "right to left")

    def threaded_configs(self):
        """B·M² ≥ 32,768 multiply-adds a step (rnn.ROW_SPLIT_MIN) with B ≥ 8
        rows starts the time loop's row team; an odd batch splits unevenly."""
        return [dict(T=3, B=33, N=3, M=32, seed=7)]

    def check_configs(self):
        return [dict(), dict(T=1, B=1, N=1, M=1), dict(T=6, B=3, N=4, M=5, seed=1),
                dict(activation="sigmoid", w_scale=3.0, seed=2),
                dict(activation="relu", T=6, B=3, N=4, M=5, seed=1)] + _activation_configs("tanh")
