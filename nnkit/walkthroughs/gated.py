"""P9 beyond the vanilla RNN: an LSTM and a GRU unrolled over T steps, every
gate a node (PyTorch's conventions, as nk.lstm_forward / nk.gru_forward).

LSTM, rows are samples, gate blocks i, f, g, o of W_ih (4H, N), W_hh (4H, H):
    a_t = x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh
    i_t = σ(a_t[i])  f_t = σ(a_t[f])  g_t = tanh(a_t[g])  o_t = σ(a_t[o])
    c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t          (the carry students get wrong)
    h_t = o_t ⊙ tanh(c_t),   L = Σ_t Σ G_t ⊙ h_t  (G_t a fixed upstream)
∂L/∂c_t has two terms: the direct one through h_t,
∂L/∂h_t ⊙ o_t ⊙ (1 − tanh² c_t), and the carried one f_{t+1} ⊙ ∂L/∂c_{t+1}.

GRU, gate blocks r, z, n of W_ih (3H, N), W_hh (3H, H):
    r_t = σ(x_t W_irᵀ + b_ir + h_{t−1} W_hrᵀ + b_hr),  z_t likewise
    hn_t = h_{t−1} W_hnᵀ + b_hn
    n_t = tanh(x_t W_inᵀ + b_in + r_t ⊙ hn_t)
    h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}

The node functions are plain NumPy; the analytic gradient of every node comes
from nk.lstm_backward / nk.gru_backward (the kernels): the pre-activations
and states directly (dA, dh, dc, dGx, dGh), a gate's value from them by the
one product its child applies (∂L/∂i_t = ∂L/∂c_t ⊙ g_t, ...).
"""
from __future__ import annotations

import numpy as np

import nnkit as nk

from ..trace import Node, Param, Term, Trace, Walkthrough, register
from ._common import cast, common_params


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def _params(T: int, H: int, gates: str):
    return (
        Param("T", T, "time steps", minimum=1, maximum=16),
        Param("B", 2, "batch size (rows)", minimum=1, maximum=256),
        Param("N", 2, "input features", minimum=1, maximum=256),
        Param("H", H, "hidden units", minimum=1, maximum=256),
        Param("w_scale", 1.0, f"scale of the recurrent weights W_hh ({gates})",
              minimum=0.0, maximum=100.0),
        *common_params(),
    )


def _leaves(cfg, rng, gates: int, cell: bool):
    T, B, N, H = cfg["T"], cfg["B"], cfg["N"], cfg["H"]
    k = 1.0 / np.sqrt(H)
    # unit-variance entries scaled by 1/√fan-in (uniform: √3 of the bound)
    vals = {"W_ih": rng.uniform(-1, 1, (gates * H, N)) * np.sqrt(3.0 / N),
            "W_hh": cfg["w_scale"] * rng.uniform(-1, 1, (gates * H, H)) * np.sqrt(3.0 / H),
            "b_ih": rng.uniform(-k, k, gates * H), "b_hh": rng.uniform(-k, k, gates * H),
            "h[0]": 0.5 * rng.standard_normal((B, H))}
    if cell:
        vals["c[0]"] = 0.5 * rng.standard_normal((B, H))
    for t in range(1, T + 1):
        vals[f"x[{t}]"] = rng.standard_normal((B, N))
        vals[f"G[{t}]"] = rng.standard_normal((B, H))
    return cast(vals, cfg["dtype"])


def _stacked(values, name, T):
    return np.stack([values[f"{name}[{t}]"] for t in range(1, T + 1)])


def _dot_loss(*a):
    T = len(a) // 2
    return sum(float(np.sum(np.asarray(g, np.float64) * np.asarray(h, np.float64)))
               for h, g in zip(a[:T], a[T:]))


def _common_nodes(T: int, gates: int, cell: bool) -> list[Node]:
    G = gates
    nodes = [
        Node("W_ih", f"W_ih ∈ ℝ^{{{G}H×N}}: input weights, gate blocks "
             + ("i, f, g, o" if cell else "r, z, n"), role="param"),
        Node("W_hh", f"W_hh ∈ ℝ^{{{G}H×H}}: recurrent weights", role="param"),
        Node("b_ih", f"b_ih ∈ ℝ^{{{G}H}}", role="param"),
        Node("b_hh", f"b_hh ∈ ℝ^{{{G}H}}", role="param"),
        Node("h[0]", "h_0: initial state", role="input", label="h_0", time=0,
             chain="forward"),
    ]
    if cell:
        nodes.append(Node("c[0]", "c_0: initial cell state", role="input", label="c_0",
                          time=0, chain="forward"))
    nodes += [Node(f"x[{t}]", f"x_{t} ∈ ℝ^{{B×N}}", role="input", label=f"x_{t}", time=t)
              for t in range(1, T + 1)]
    return nodes


def _loss_nodes(T: int) -> list[Node]:
    nodes = [Node(f"G[{t}]", f"G_{t} = ∂L/∂h_{t} (direct): fixed random upstream",
                  role="constant", label=f"G_{t}", time=t) for t in range(1, T + 1)]
    hs = [f"h[{t}]" for t in range(1, T + 1)]
    gs = [f"G[{t}]" for t in range(1, T + 1)]
    nodes.append(Node("L", "L = Σ_t Σ G_t ⊙ h_t", (*hs, *gs), _dot_loss, role="loss"))
    return nodes


def _norm_lines(trace: Trace, fam: str, T: int, what: str) -> list[str]:
    norms = [(t, float(np.linalg.norm(np.asarray(trace.grad(f"{fam}[{t}]"), np.float64))))
             for t in range(T, -1, -1)]
    return [f"P9  ||∂L/∂{what}_t|| in the order BPTT visits them (right to left): "
            + ", ".join(f"t={t}: {n:.3g}" for t, n in norms)]


@register
class LSTMWalkthrough(Walkthrough):
    name = "lstm"
    title = "LSTM through time (gates and the cell carry)"
    problem = "P9"
    description = ("An LSTM unrolled over T steps, every gate a node (PyTorch's i, f, g, o): "
                   "∂L/∂c_t = ∂L/∂h_t ⊙ o_t ⊙ (1 − tanh² c_t) + f_{t+1} ⊙ ∂L/∂c_{t+1}.")
    params = _params(3, 3, "4H×H")
    terms = {
        "dc": (Term("∂L/∂h_t ⊙ o_t ⊙ (1 − tanh² c_t) (the direct term, through h_t)",
                    lambda dh_t, o_t, c_t: dh_t * o_t * (1 - np.tanh(c_t) ** 2)),
               Term("f_{t+1} ⊙ ∂L/∂c_{t+1} (the carried term)",
                    lambda f_next, dc_next: f_next * dc_next)),
        "dh": (Term("G_t (the direct term)", lambda G_t: G_t),
               Term("∂L/∂a_{t+1} W_hh (the carried term)", lambda da_next, W_hh: da_next @ W_hh)),
    }

    def graph(self, cfg):
        T, H = cfg["T"], cfg["H"]
        nodes = _common_nodes(T, 4, True)
        blocks = {"i": (0, _sig, "σ"), "f": (1, _sig, "σ"), "g": (2, np.tanh, "tanh"),
                  "o": (3, _sig, "σ")}
        for t in range(1, T + 1):
            nodes.append(Node(
                f"a[{t}]", f"a_{t} = x_{t} W_ihᵀ + b_ih + h_{t - 1} W_hhᵀ + b_hh  (B×4H)",
                (f"h[{t - 1}]", "W_hh", f"x[{t}]", "W_ih", "b_ih", "b_hh"),
                lambda h, Whh, x, Wih, bih, bhh: x @ Wih.T + bih + h @ Whh.T + bhh,
                label=f"a_{t}", time=t, chain="forward",
                note="All four gates' pre-activations: the kernels' dA (one step product)."))
            for gate, (k, fn, sym) in blocks.items():
                nodes.append(Node(
                    f"{gate}[{t}]", f"{gate}_{t} = {sym}(a_{t}[{gate}])", (f"a[{t}]",),
                    lambda a, k=k, fn=fn: fn(a[:, k * H:(k + 1) * H]),
                    label=f"{gate}_{t}", time=t, chain="forward",
                    note={"i": "input gate: how much of g_t enters the cell",
                          "f": "forget gate: the cell's carry factor (∂c_t/∂c_{t−1} = f_t)",
                          "g": "candidate values",
                          "o": "output gate: how much of tanh(c_t) is shown as h_t"}[gate]))
            nodes.append(Node(
                f"c[{t}]", f"c_{t} = f_{t} ⊙ c_{t - 1} + i_{t} ⊙ g_{t}",
                (f"f[{t}]", f"c[{t - 1}]", f"i[{t}]", f"g[{t}]"),
                lambda f, c, i, g: f * c + i * g, label=f"c_{t}", time=t, chain="forward",
                note=("Two paths: through h_t, and carried: ∂L/∂c_t gets f_{t+1} ⊙ ∂L/∂c_{t+1}"
                      if t < T else "Last cell state: only h_T reads it.")))
            nodes.append(Node(
                f"h[{t}]", f"h_{t} = o_{t} ⊙ tanh(c_{t})", (f"o[{t}]", f"c[{t}]"),
                lambda o, c: o * np.tanh(c), label=f"h_{t}", time=t, chain="forward",
                note=(f"Total derivative: G_{t} + (∂L/∂a_{t + 1}) W_hh" if t < T
                      else f"Last state: only L reads it (G_{t}).")))
        return nodes + _loss_nodes(T)

    def leaves(self, cfg, rng):
        return _leaves(cfg, rng, 4, True)

    def analytic(self, values, cfg):
        T = cfg["T"]
        X, G = _stacked(values, "x", T), _stacked(values, "G", T)
        H, cache = nk.lstm_forward(X, values["h[0]"], values["c[0]"], values["W_ih"],
                                   values["W_hh"], values["b_ih"], values["b_hh"])
        g = nk.lstm_backward(G, cache)
        out = {"L": np.float64(1.0), "W_ih": g.dW_ih, "W_hh": g.dW_hh, "b_ih": g.db_ih,
               "b_hh": g.db_hh, "h[0]": g.dh0, "c[0]": g.dc0}
        for t in range(1, T + 1):
            s = t - 1
            c_prev = values["c[0]"] if t == 1 else cache.C[s - 1]
            out[f"x[{t}]"] = g.dX[s]
            out[f"a[{t}]"] = g.dA[s]
            out[f"i[{t}]"] = g.dc[s] * cache.gate("g")[s]
            out[f"f[{t}]"] = g.dc[s] * c_prev
            out[f"g[{t}]"] = g.dc[s] * cache.gate("i")[s]
            out[f"o[{t}]"] = g.dh[s] * cache.TC[s]
            out[f"c[{t}]"] = g.dc[s]
            out[f"h[{t}]"] = g.dh[s]
        return out

    def insights(self, trace: Trace, key: str):
        T = trace.cfg["T"]
        if key.startswith("c["):
            return _norm_lines(trace, "c", T, "c") + [
                "P9  the carried term f_{t+1} ⊙ ∂L/∂c_{t+1} multiplies by f only (no W_hh, "
                "no σ′): with f ≈ 1 the cell gradient does not vanish"]
        if key.startswith("h["):
            return _norm_lines(trace, "h", T, "h")
        return []

    def threaded_configs(self):
        """B·H²·gates ≥ 32,768 multiply-adds a step (gated.ROW_SPLIT_MIN) with
        B ≥ 8 rows starts the row team; an odd batch splits unevenly."""
        return [dict(T=2, B=11, N=3, H=32, seed=7)]

    def check_configs(self):
        return [dict(), dict(T=1, B=1, N=1, H=1), dict(T=4, B=3, N=4, H=5, seed=1),
                dict(T=5, w_scale=3.0, seed=2), dict(T=3, B=4, N=3, H=6, w_scale=0.3, seed=3)]


@register
class GRUWalkthrough(Walkthrough):
    name = "gru"
    title = "GRU through time (gates r, z, n)"
    problem = "P9"
    description = ("A GRU unrolled over T steps, every gate a node (PyTorch's r, z, n; "
                   "n_t = tanh(W_in x + b_in + r_t ⊙ (W_hn h_{t−1} + b_hn))).")
    params = _params(3, 3, "3H×H")
    terms = {
        "dh": (Term("G_t (the direct term)", lambda G_t: G_t),
               Term("z_{t+1} ⊙ ∂L/∂h_{t+1} (through the interpolation)",
                    lambda z_next, dh_next: z_next * dh_next),
               Term("(∂L/∂r_{t+1} ⊙ σ′) W_hr + (∂L/∂z_{t+1} ⊙ σ′) W_hz (through the gates)",
                    lambda dr_next, r_next, dz_next, z_next, W_hh, H:
                    (dr_next * r_next * (1 - r_next)) @ W_hh[:H]
                    + (dz_next * z_next * (1 - z_next)) @ W_hh[H:2 * H]),
               Term("∂L/∂hn_{t+1} W_hn (through the candidate)",
                    lambda dhn_next, W_hh, H: dhn_next @ W_hh[2 * H:])),
    }

    def graph(self, cfg):
        T, H = cfg["T"], cfg["H"]
        nodes = _common_nodes(T, 3, False)
        for t in range(1, T + 1):
            for gate, k in (("r", 0), ("z", 1)):
                nodes.append(Node(
                    f"{gate}[{t}]",
                    f"{gate}_{t} = σ(x_{t} W_i{gate}ᵀ + b_i{gate} + h_{t - 1} W_h{gate}ᵀ "
                    f"+ b_h{gate})",
                    (f"h[{t - 1}]", "W_hh", f"x[{t}]", "W_ih", "b_ih", "b_hh"),
                    lambda h, Whh, x, Wih, bih, bhh, k=k:
                    _sig(x @ Wih[k * H:(k + 1) * H].T + bih[k * H:(k + 1) * H]
                         + h @ Whh[k * H:(k + 1) * H].T + bhh[k * H:(k + 1) * H]),
                    label=f"{gate}_{t}", time=t, chain="forward",
                    note="reset gate: how much of hn_t the candidate sees" if gate == "r"
                    else "update gate: how much of h_{t−1} is kept"))
            nodes.append(Node(
                f"hn[{t}]", f"hn_{t} = h_{t - 1} W_hnᵀ + b_hn", (f"h[{t - 1}]", "W_hh", "b_hh"),
                lambda h, Whh, bhh: h @ Whh[2 * H:].T + bhh[2 * H:], label=f"hn_{t}", time=t,
                chain="forward", note="The recurrent part of the candidate, before r gates it."))
            nodes.append(Node(
                f"n[{t}]", f"n_{t} = tanh(x_{t} W_inᵀ + b_in + r_{t} ⊙ hn_{t})",
                (f"x[{t}]", "W_ih", "b_ih", f"r[{t}]", f"hn[{t}]"),
                lambda x, Wih, bih, r, hn: np.tanh(x @ Wih[2 * H:].T + bih[2 * H:] + r * hn),
                label=f"n_{t}", time=t, chain="forward", note="candidate state"))
            nodes.append(Node(
                f"h[{t}]", f"h_{t} = (1 − z_{t}) ⊙ n_{t} + z_{t} ⊙ h_{t - 1}",
                (f"z[{t}]", f"n[{t}]", f"h[{t - 1}]"),
                lambda z, n, h: (1 - z) * n + z * h, label=f"h_{t}", time=t, chain="forward",
                note=("Total derivative: G_t + z_{t+1} ⊙ ∂L/∂h_{t+1} + the gates' and the "
                      "candidate's W_hh terms" if t < T else "Last state: only L reads it.")))
        return nodes + _loss_nodes(T)

    def leaves(self, cfg, rng):
        return _leaves(cfg, rng, 3, False)

    def analytic(self, values, cfg):
        T = cfg["T"]
        X, G = _stacked(values, "x", T), _stacked(values, "G", T)
        _, cache = nk.gru_forward(X, values["h[0]"], values["W_ih"], values["W_hh"],
                                  values["b_ih"], values["b_hh"])
        g = nk.gru_backward(G, cache)
        Hh = cfg["H"]
        out = {"L": np.float64(1.0), "W_ih": g.dW_ih, "W_hh": g.dW_hh, "b_ih": g.db_ih,
               "b_hh": g.db_hh, "h[0]": g.dh0}
        for t in range(1, T + 1):
            s = t - 1
            h_prev = values["h[0]"] if t == 1 else cache.H[s - 1]
            z, n = cache.gate("z")[s], cache.gate("n")[s]
            out[f"x[{t}]"] = g.dX[s]
            out[f"r[{t}]"] = g.dGx[s][:, 2 * Hh:] * cache.HN[s]
            out[f"z[{t}]"] = g.dh[s] * (h_prev - n)
            out[f"hn[{t}]"] = g.dGh[s][:, 2 * Hh:]
            out[f"n[{t}]"] = g.dh[s] * (1 - z)
            out[f"h[{t}]"] = g.dh[s]
        return out

    def insights(self, trace: Trace, key: str):
        if key.startswith("h["):
            return _norm_lines(trace, "h", trace.cfg["T"], "h")
        return []

    def threaded_configs(self):
        """B·H²·gates ≥ 32,768 multiply-adds a step (gated.ROW_SPLIT_MIN) with
        B ≥ 8 rows starts the row team; an odd batch splits unevenly."""
        return [dict(T=2, B=11, N=3, H=32, seed=7)]

    def check_configs(self):
        return [dict(), dict(T=1, B=1, N=1, H=1), dict(T=4, B=3, N=4, H=5, seed=1),
                dict(T=5, w_scale=3.0, seed=2), dict(T=3, B=4, N=3, H=6, w_scale=0.3, seed=3)]
