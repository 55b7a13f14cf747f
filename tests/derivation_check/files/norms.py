"""P8: batch, layer, instance and group norm of X (B, C, F), with m and v as nodes.

The statistics are taken over the axes of the chosen norm (n values each):
    batch (0, 2): m, v ∈ ℝ^C;   layer (1, 2): ∈ ℝ^B;   instance (2,): ∈ ℝ^{B×C}
    group: X seen as (B, G, C/G·F), G = groups, over the last axis: ∈ ℝ^{B×G}
γ, β ∈ ℝ^{C×F} for layer norm, ∈ ℝ^C otherwise. Then P2.3's derivation with
"Σ_i" the sum over those axes and B replaced by n:
    dv = Σ dX̂ (X − m) · (−½)(v + ε)^(−3/2)
    dm = −Σ dX̂ / √(v + ε) + dv · (−2/n) Σ (X − m)
    dX = dX̂/√(v + ε) + dv · 2(X − m)/n + dm/n
"""
import numpy as np

WALKTHROUGH = "norms"

_AXES = {"batch": (0, 2), "layer": (1, 2), "instance": (2,)}


def _ax(norm):
    return _AXES[norm]


def _n(X, norm):
    return int(np.prod([X.shape[a] for a in _ax(norm)]))


def _expand(s, norm):
    """a statistic (m, v or their gradients) broadcast against X."""
    return np.expand_dims(s, _ax(norm))


def _affine_axes(norm):
    """the axes γ, β are shared over."""
    return (0,) if norm == "layer" else (0, 2)


def _gb(g, norm):
    return g[None] if norm == "layer" else g[None, :, None]


def _grouped(A, groups):
    """group norm: (B, C, F) -> (B, G, C/G·F), a group's n = C/G·F values in a row."""
    return A.reshape(A.shape[0], groups, -1)


def dZ(G):
    return G


def dbeta(dZ, norm):
    return dZ.sum(axis=_affine_axes(norm))


def dgamma(dZ, Xhat, norm):
    return (dZ * Xhat).sum(axis=_affine_axes(norm))


def dXhat(dZ, gamma, norm):
    return dZ * _gb(gamma, norm)


def dv(dXhat, X, m, v, eps, norm, groups=1):
    if norm == "group":
        Xc = _grouped(X, groups) - m[:, :, None]
        return (_grouped(dXhat, groups) * Xc).sum(axis=2) * -0.5 * (v + eps) ** -1.5
    Xc = X - _expand(m, norm)
    return (dXhat * Xc).sum(axis=_ax(norm)) * -0.5 * (v + eps) ** -1.5


def dm(dXhat, dv, X, m, v, eps, norm, groups=1):
    if norm == "group":
        Xc = _grouped(X, groups) - m[:, :, None]
        n = Xc.shape[2]
        return (-(_grouped(dXhat, groups) / np.sqrt(v + eps)[:, :, None]).sum(axis=2)
                + dv * (-2.0 / n) * Xc.sum(axis=2))
    Xc = X - _expand(m, norm)
    n = _n(X, norm)
    return (-(dXhat / np.sqrt(_expand(v, norm) + eps)).sum(axis=_ax(norm))
            + dv * (-2.0 / n) * Xc.sum(axis=_ax(norm)))


def dX(dXhat, dv, dm, X, m, v, eps, norm, groups=1):
    if norm == "group":
        Xc = _grouped(X, groups) - m[:, :, None]
        n = Xc.shape[2]
        out = (_grouped(dXhat, groups) / np.sqrt(v + eps)[:, :, None]
               + dv[:, :, None] * 2.0 * Xc / n + dm[:, :, None] / n)
        return out.reshape(X.shape)
    n = _n(X, norm)
    Xc = X - _expand(m, norm)
    return (dXhat / np.sqrt(_expand(v, norm) + eps)
            + _expand(dv, norm) * 2.0 * Xc / n + _expand(dm, norm) / n)
