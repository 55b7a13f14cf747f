"""P8: batch, layer, instance and group norm of a (B, C, F) tensor, with m and v as nodes.

Graph (P8's example is B = 4, C = 2, F = 3):
    X (B, C, F)
    m = mean of X over the axes of the chosen norm, v = mean (X − m)² (biased)
        batch    per channel over (batch, features)     m, v: (C,)
        layer    per sample over (channels, features)   m, v: (B,)
        instance per (sample, channel) over features    m, v: (B, C)
        group    per (sample, group of C/G channels) over (its channels,
                 features), G = `groups` dividing C      m, v: (B, G)
    X̂ = (X − m)/√(v + ε),  Z = γ ⊙ X̂ + β,  L = Σ G ⊙ Z
γ, β have shape (C, F) for layer norm (X.shape[1:], as F.layer_norm) and (C,)
otherwise. Group norm with groups = 1 normalizes as layer norm, with
groups = C as instance norm (γ, β per channel in both). The analytic
gradients, dm and dv included (total derivatives: m feeds v and X̂), come
from nk.layernorm_*, nk.instancenorm_*, nk.groupnorm_* and
nk.batchnorm_channels_* (the kernels the LayerNorm, InstanceNorm, GroupNorm
and 3-D BatchNorm layers run).
"""
from __future__ import annotations

import numpy as np

import nnkit as nk

from ..trace import Node, Param, Trace, Walkthrough, register
from ._common import cast, common_params, dot_loss

AXES = {"batch": (0, 2), "layer": (1, 2), "instance": (2,)}
OVER = {"batch": "per channel over (batch, features)",
        "layer": "per sample over (channels, features)",
        "instance": "per (sample, channel) over features",
        "group": "per (sample, group of C/G channels) over (its channels, features)"}


def _grouped(A, G):
    """(B, C, F) -> (B, G, C/G·F): one row per (sample, group)."""
    A = np.asarray(A)
    return A.reshape(A.shape[0], G, -1)


def _moment(A, kind, G):
    """The mean of A over the axes of `kind` (group: over each group's row)."""
    if kind == "group":
        return _grouped(A, G).mean(axis=2)
    return A.mean(axis=AXES[kind])


def _expand(s, kind, C=None):
    """m or v back to broadcast against X (B, C, F) (group: each of the G
    groups repeated over its C/G channels)."""
    s = np.asarray(s)
    if kind == "group":
        return np.repeat(s, C // s.shape[1], axis=1)[:, :, None]
    return {"batch": lambda: s[None, :, None], "layer": lambda: s[:, None, None],
            "instance": lambda: s[:, :, None]}[kind]()


def _affine_shape(cfg):
    return (cfg["C"], cfg["F"]) if cfg["norm"] == "layer" else (cfg["C"],)


def _gb(g, kind):
    g = np.asarray(g)
    return g[None] if kind == "layer" else g[None, :, None]


@register
class NormsWalkthrough(Walkthrough):
    name = "norms"
    title = "Batch, layer, instance and group norm of (B, C, F)"
    problem = "P8"
    description = ("One (B, C, F) tensor normalized four ways: the axes of the mean and "
                   "variance decide batch, layer, instance or group norm; every gradient "
                   "with m and v as graph nodes.")
    params = (
        Param("norm", "layer", "which normalization",
              choices=("layer", "instance", "batch", "group")),
        Param("B", 4, "batch size", minimum=1, maximum=1024),
        Param("C", 2, "channels", minimum=1, maximum=256),
        Param("F", 3, "features per channel", minimum=1, maximum=4096),
        Param("eps", 1e-5, "ε added to the variance", minimum=0.0),
        Param("groups", 1, "groups of channels (norm=group; divides C)", minimum=1,
              maximum=256),
        *common_params(),
    )

    def validate(self, cfg):
        if cfg["norm"] == "group" and cfg["C"] % cfg["groups"]:
            raise ValueError(f"groups: group norm needs a divisor of C = {cfg['C']}, "
                             f"got {cfg['groups']}")
        # layer and group norm take a statistic of one value (as PyTorch's do)
        if cfg["norm"] in ("layer", "group"):
            return
        n = {"batch": cfg["B"] * cfg["F"], "instance": cfg["F"]}[cfg["norm"]]
        if n < 2:
            raise ValueError(f"{'F' if cfg['norm'] == 'instance' else 'B'}: {cfg['norm']} "
                             f"norm needs at least 2 values per statistic, got {n}")

    def graph(self, cfg):
        kind, eps, C, G = cfg["norm"], cfg["eps"], cfg["C"], cfg["groups"]
        shp = {"batch": "C", "layer": "B", "instance": "B×C", "group": "B×G"}[kind]
        over = OVER[kind] + (f", G = {G}" if kind == "group" else "")
        return [
            Node("X", "X ∈ ℝ^{B×C×F}", role="input"),
            Node("m", f"m = mean of X {over}  (m ∈ ℝ^{shp})", ("X",),
                 lambda X: _moment(X, kind, G),
                 note="m feeds v and X̂: dm is a total derivative."),
            Node("v", f"v = mean (X − m)² {over}", ("X", "m"),
                 lambda X, m: _moment((X - _expand(m, kind, C)) ** 2, kind, G)),
            Node("Xhat", f"X̂ = (X − m)/√(v + ε),  ε = {eps:g}", ("X", "m", "v"),
                 lambda X, m, v: ((X - _expand(m, kind, C))
                                  / np.sqrt(_expand(v, kind, C) + eps)),
                 label="X̂"),
            Node("gamma", "γ ∈ ℝ^{C×F}" if kind == "layer" else "γ ∈ ℝ^C (one per channel)",
                 role="param", label="γ"),
            Node("beta", "β, like γ", role="param", label="β"),
            Node("Z", "Z = γ ⊙ X̂ + β", ("gamma", "Xhat", "beta"),
                 lambda g, Xh, b: _gb(g, kind) * Xh + _gb(b, kind)),
            Node("G", "G = ∂L/∂Z: a fixed random upstream gradient", role="constant"),
            Node("L", "L = Σ G ⊙ Z", ("G", "Z"), dot_loss, role="loss"),
        ]

    def leaves(self, cfg, rng):
        B, C, F = cfg["B"], cfg["C"], cfg["F"]
        ps = _affine_shape(cfg)
        vals = dict(X=2.0 + 3.0 * rng.standard_normal((B, C, F)),
                    gamma=1.0 + 0.5 * rng.standard_normal(ps),
                    beta=0.5 * rng.standard_normal(ps), G=rng.standard_normal((B, C, F)))
        return cast(vals, cfg["dtype"])

    def analytic(self, values, cfg):
        kind, eps = cfg["norm"], cfg["eps"]
        X, g, b, G = values["X"], values["gamma"], values["beta"], values["G"]
        if kind == "batch":
            _, c = nk.batchnorm_channels_forward(X, g, b, eps)
            r = nk.batchnorm_channels_backward(G, c)
        elif kind == "group":
            _, c = nk.groupnorm_forward(X, g, b, cfg["groups"], eps)
            r = nk.groupnorm_backward(G, c)
        else:
            fwd, bwd = ((nk.layernorm_forward, nk.layernorm_backward) if kind == "layer"
                        else (nk.instancenorm_forward, nk.instancenorm_backward))
            _, c = fwd(X, g, b, eps)
            r = bwd(G, c)
        return dict(L=np.float64(1.0), Z=G, gamma=r.dgamma, beta=r.dbeta, Xhat=r.dXhat,
                    v=r.dvar, m=r.dmean, X=r.dX)

    def insights(self, trace: Trace, key: str):
        kind = trace.cfg["norm"]
        G = trace.cfg["groups"]
        if key in ("m", "v"):
            out = [f"P8  {kind} norm: {key} has shape {np.shape(trace.value(key))} "
                   f"({OVER[kind]})."]
            if kind == "group":
                out.append(f"P8  groups = {G} of C = {trace.cfg['C']}: groups = 1 is layer "
                           f"norm's statistics, groups = C instance norm's.")
            return out
        if key == "Xhat":
            Xh = np.asarray(trace.value("Xhat"), np.float64)
            mean = _moment(Xh, kind, G)
            var = _moment((Xh - _expand(mean, kind, Xh.shape[1])) ** 2, kind, G)
            return [f"P8  X̂ {OVER[kind]}: max |mean| {np.abs(mean).max():.2e} "
                    f"(0), variance in [{var.min():.4f}, "
                    f"{var.max():.4f}] (v/(v+ε) ≈ 1)."]
        return []

    def threaded_configs(self):
        """2·rows·D ≥ 65,536 (rows·D = 33·4·256 elements) starts the norms
        kernels' team; an odd batch leaves the threads unequal blocks."""
        return [dict(norm=kind, B=33, C=4, F=256, seed=7, **extra) for kind, extra in
                (("layer", {}), ("instance", {}), ("batch", {}), ("group", dict(groups=2)))]

    def check_configs(self):
        out = []
        for kind in ("layer", "instance", "batch"):
            out += [dict(norm=kind), dict(norm=kind, B=3, C=3, F=5, seed=1),
                    dict(norm=kind, B=2, C=1, F=2, seed=2, eps=1e-3)]
        # group: two groups of two channels; three of two; as instance norm
        # (groups = C); as layer norm (one group) with F = 1
        out += [dict(norm="group", C=4, groups=2), dict(norm="group", B=3, C=6, F=5,
                                                         groups=3, seed=1),
                dict(norm="group", B=2, C=3, F=2, groups=3, seed=2, eps=1e-3),
                dict(norm="group", B=2, C=3, F=1, groups=1, seed=3)]
        return out + [dict(norm="layer", B=1, C=1, F=1)]
