"""P8: batch, layer and instance norm of a (B, C, F) tensor, with m and v as nodes.

Graph (P8's example is B = 4, C = 2, F = 3):
    X (B, C, F)
    m = mean of X over the axes of the chosen norm, v = mean (X − m)² (biased)
        batch    per channel over (batch, features)     m, v: (C,)
        layer    per sample over (channels, features)   m, v: (B,)
        instance per (sample, channel) over features    m, v: (B, C)
    X̂ = (X − m)/√(v + ε),  Z = γ ⊙ X̂ + β,  L = Σ G ⊙ Z
γ, β have shape (C, F) for layer norm (X.shape[1:], as F.layer_norm) and (C,)
otherwise. The analytic gradients, dm and dv included (total derivatives: m
feeds v and X̂), come from nk.layernorm_*, nk.instancenorm_* and
nk.batchnorm_channels_* (the kernels the LayerNorm, InstanceNorm and 3-D
BatchNorm layers run).
"""
from __future__ import annotations

import numpy as np

import nnkit as nk

from ..trace import Node, Param, Trace, Walkthrough, register
from ._common import cast, common_params, dot_loss

AXES = {"batch": (0, 2), "layer": (1, 2), "instance": (2,)}
OVER = {"batch": "per channel over (batch, features)",
        "layer": "per sample over (channels, features)",
        "instance": "per (sample, channel) over features"}


def _expand(s, kind):
    """m or v back to broadcast against X (B, C, F)."""
    s = np.asarray(s)
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
    title = "Batch, layer and instance norm of (B, C, F)"
    problem = "P8"
    description = ("One (B, C, F) tensor normalized three ways: the axes of the mean and "
                   "variance decide batch, layer or instance norm; every gradient with "
                   "m and v as graph nodes.")
    params = (
        Param("norm", "layer", "which normalization", choices=("layer", "instance", "batch")),
        Param("B", 4, "batch size", minimum=1, maximum=1024),
        Param("C", 2, "channels", minimum=1, maximum=256),
        Param("F", 3, "features per channel", minimum=1, maximum=4096),
        Param("eps", 1e-5, "ε added to the variance", minimum=0.0),
        *common_params(),
    )

    def validate(self, cfg):
        n = {"batch": cfg["B"] * cfg["F"], "layer": cfg["C"] * cfg["F"],
             "instance": cfg["F"]}[cfg["norm"]]
        if cfg["norm"] != "layer" and n < 2:
            raise ValueError(f"{'F' if cfg['norm'] == 'instance' else 'B'}: {cfg['norm']} "
                             f"norm needs at least 2 values per statistic, got {n}")

    def graph(self, cfg):
        kind, eps = cfg["norm"], cfg["eps"]
        ax = AXES[kind]
        shp = {"batch": "C", "layer": "B", "instance": "B×C"}[kind]
        return [
            Node("X", "X ∈ ℝ^{B×C×F}", role="input"),
            Node("m", f"m = mean of X {OVER[kind]}  (m ∈ ℝ^{shp})", ("X",),
                 lambda X: X.mean(axis=ax), note="m feeds v and X̂: dm is a total derivative."),
            Node("v", f"v = mean (X − m)² {OVER[kind]}", ("X", "m"),
                 lambda X, m: ((X - _expand(m, kind)) ** 2).mean(axis=ax)),
            Node("Xhat", f"X̂ = (X − m)/√(v + ε),  ε = {eps:g}", ("X", "m", "v"),
                 lambda X, m, v: (X - _expand(m, kind)) / np.sqrt(_expand(v, kind) + eps),
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
        else:
            fwd, bwd = ((nk.layernorm_forward, nk.layernorm_backward) if kind == "layer"
                        else (nk.instancenorm_forward, nk.instancenorm_backward))
            _, c = fwd(X, g, b, eps)
            r = bwd(G, c)
        return dict(L=np.float64(1.0), Z=G, gamma=r.dgamma, beta=r.dbeta, Xhat=r.dXhat,
                    v=r.dvar, m=r.dmean, X=r.dX)

    def insights(self, trace: Trace, key: str):
        kind = trace.cfg["norm"]
        if key in ("m", "v"):
            return [f"P8  {kind} norm: {key} has shape {np.shape(trace.value(key))} "
                    f"({OVER[kind]})."]
        if key == "Xhat":
            Xh = np.asarray(trace.value("Xhat"), np.float64)
            ax = AXES[kind]
            return [f"P8  X̂ {OVER[kind]}: max |mean| {np.abs(Xh.mean(axis=ax)).max():.2e} "
                    f"(0), variance in [{Xh.var(axis=ax).min():.4f}, "
                    f"{Xh.var(axis=ax).max():.4f}] (v/(v+ε) ≈ 1)."]
        return []

    def check_configs(self):
        out = []
        for kind in ("layer", "instance", "batch"):
            out += [dict(norm=kind), dict(norm=kind, B=3, C=3, F=5, seed=1),
                    dict(norm=kind, B=2, C=1, F=2, seed=2, eps=1e-3)]
        return out + [dict(norm="layer", B=1, C=1, F=1)]
