"""P2.4 end to end: affine → whitening batch norm → ReLU → L = Σ G ⊙ H.

Graph (rows are samples):
    X (B,N), W (M,N), b (M,)  →  Y = X Wᵀ + b
    m = mean_i Y
    Σ = (Y − m)ᵀ(Y − m)/B + εI       (M, M); with groups, only the diagonal
                                      blocks (zeros elsewhere, never read)
    Ŷ = (Y − m) W(Σ)                  W per group from sym(Σ) by the method
    γ, β  →  Z = γ ⊙ Ŷ + β  →  H = max(Z, 0)  →  L = Σ G ⊙ H
The node functions below are plain NumPy written independently of the
kernels; the analytic gradients come from the kernels a layer runs:
nk.whitening_relu_forward/backward (WhiteningBatchNorm(relu=True)) by
default, nk.whitening_forward/backward then nk.relu_backward with
fused=False. `nnkit gradcheck` runs both, and every method (ZCA, PCA,
Cholesky, Newton–Schulz).
Σ is a full matrix node: a finite-difference check perturbs one entry (i, j)
at a time, and the whitening functions read the symmetric part (Σ + Σᵀ)/2,
so ∂L/∂Σ is the symmetric dcov.

spectrum="repeated" builds X = √B Q diag(d) with Q orthonormal columns
orthogonal to 1 and d = (2, 2, 1, 1, ...), and W orthogonal (N = M): the
covariance of Y then has exactly repeated eigenvalues (4, 4, 1, 1, ...), the
case where a backward written with 1/(λᵢ − λⱼ) divides by zero.
"""
from __future__ import annotations

import numpy as np

import nnkit as nk

from ..gradcheck import num_threads, thread_split_check
from ..trace import Node, Param, Trace, Walkthrough, register
from ..whitening import METHODS
from .._samples import cov, offdiag
from ._common import (FUSED, affine_nodes, cast, common_params,
                      scale_shift_relu_nodes)


# ------------------------------------------------ independent NumPy reference
def _groups(M, g):
    g = g or M
    return [(c, min(g, M - c)) for c in range(0, M, g)]


def _whiten_block(S, method, T):
    """W with Ŷ = Yc W for one symmetric block S (float64 or float32)."""
    if method in ("zca", "pca"):
        lam, D = np.linalg.eigh(S)
        if method == "pca":
            # same sign convention as the kernels: largest |entry| of each column > 0
            top = D[np.argmax(np.abs(D), axis=0), np.arange(D.shape[1])]
            D = D * np.where(top < 0, -1.0, 1.0)
            return D / np.sqrt(lam)
        return (D / np.sqrt(lam)) @ D.T
    if method == "cholesky":
        L = np.linalg.cholesky(S)
        return np.linalg.inv(L).T
    # coupled Newton–Schulz (Higham §6.3): Z_k → (S/tr S)^(−½). The uncoupled
    # P ← ½(3P − P³S/tr S) has the same iterates in exact arithmetic but
    # amplifies rounding once converged (it diverges by T = 20-30)
    t = np.trace(S)
    I = np.eye(S.shape[0], dtype=S.dtype)
    Yk, Zk = S / t, I
    for _ in range(T):
        Tk = 1.5 * I - 0.5 * Zk @ Yk
        Yk, Zk = Yk @ Tk, Tk @ Zk
    return Zk / np.sqrt(t)


def _block_mask(M, g):
    mask = np.zeros((M, M), bool)
    for c, k in _groups(M, g):
        mask[c:c + k, c:c + k] = True
    return mask


class _WhiteningBase(Walkthrough):
    problem = "P2.4"
    method_default = "zca"

    @property
    def params(self):
        return (
            # defaults: N >= M so Σ_Y has full rank; with N < M (or B <= M) Σ is
            # singular up to ε and central differences of dΣ lose their accuracy
            Param("B", 8, "batch size (rows)", minimum=2, maximum=4096),
            Param("N", 5, "input features", minimum=1, maximum=4096),
            Param("M", 4, "output features (whitened)", minimum=1, maximum=512),
            Param("eps", 1e-5, "ε added to the diagonal of Σ (> 0)", minimum=1e-12),
            Param("method", self.method_default, "whitening matrix",
                  choices=METHODS),
            Param("iterations", 5, "Newton–Schulz iterations T (newton)", minimum=1,
                  maximum=100),
            Param("group_size", 0, "whiten groups of this many features (0: all)",
                  minimum=0, maximum=512),
            Param("spectrum", "random", "Y's covariance: random, or exactly repeated "
                  "eigenvalues", choices=("random", "repeated")),
            FUSED,
            *common_params(),
        )

    def validate(self, cfg):
        if cfg["group_size"] > cfg["M"]:
            raise ValueError(f"group_size: expected 0 (no groups) or at most M = "
                             f"{cfg['M']}, got {cfg['group_size']}")
        if cfg["spectrum"] == "repeated":
            if cfg["N"] != cfg["M"]:
                raise ValueError(f"N: spectrum='repeated' needs N = M = {cfg['M']} "
                                 f"(W orthogonal), got {cfg['N']}")
            if cfg["B"] <= cfg["M"]:
                raise ValueError(f"B: spectrum='repeated' needs B > M = {cfg['M']}, "
                                 f"got {cfg['B']}")

    def graph(self, cfg):
        eps, method, T = cfg["eps"], cfg["method"], cfg["iterations"]
        M, g = cfg["M"], cfg["group_size"]
        groups = _groups(M, g)
        mask = _block_mask(M, g)
        wname = dict(zca="Σ^(−½)", pca="Λ^(−½)Dᵀ", cholesky="L^(−ᵀ)",
                     newton=f"P_{T}/√tr Σ (Newton–Schulz)")[method]

        def sigma(Y, m):
            Yc = Y - m
            S = Yc.T @ Yc / Y.shape[0] + eps * np.eye(M, dtype=Y.dtype)
            return np.where(mask, S, 0)

        def yhat(Y, m, S):
            Ss = 0.5 * (S + S.T)
            Wm = np.zeros_like(Ss)
            for c, k in groups:
                Wm[c:c + k, c:c + k] = _whiten_block(Ss[c:c + k, c:c + k], method, T)
            return (Y - m) @ Wm

        grp = "" if not g or g >= M else f", groups of {g}"
        return [
            *affine_nodes(),
            Node("m", "m_j = (1/B) Σ_i Y_ij", ("Y",), lambda Y: Y.mean(axis=0),
                 note="m feeds both Σ and Ŷ: dm is a total derivative."),
            Node("Sigma", f"Σ = (Y − m)ᵀ(Y − m)/B + εI,  ε = {eps:g}{grp}", ("Y", "m"),
                 sigma, label="Σ",
                 note="A matrix node; its gradient is the symmetric dcov."),
            Node("Yhat", f"Ŷ = (Y − m) W,  W = {wname}", ("Y", "m", "Sigma"), yhat,
                 label="Ŷ", note="ZCA: Cov(Ŷ) = Σ_Y (Σ_Y + εI)⁻¹ → I."),
            *scale_shift_relu_nodes(),
        ]

    def leaves(self, cfg, rng):
        B, N, M = cfg["B"], cfg["N"], cfg["M"]
        if cfg["spectrum"] == "repeated":
            # Q: M orthonormal columns orthogonal to the ones vector (so X is centred)
            A = np.column_stack([np.ones(B), rng.standard_normal((B, M))])
            Q = np.linalg.qr(A)[0][:, 1:]
            d = np.where(np.arange(M) < M // 2, 2.0, 1.0)
            X = np.sqrt(B) * Q * d
            W = np.linalg.qr(rng.standard_normal((M, M)))[0]
        else:
            # Controlled spectrum, correlated features: X = √B Q diag(dx) R has
            # sample covariance with eigenvalues dx² ∈ [0.36, 2] on an r-dim
            # subspace (r = min(N, B − 1)), and W = U diag(σ) Vᵀ, σ ∈ [0.7, 1.5],
            # mixes the features. Cov(Y) has eigenvalues in ~[0.18, 4.4] on a
            # min(r, M)-dim subspace and 0 elsewhere (then only ε lifts them):
            # finite differences with h = 1e-6 stay accurate ((h/λ)² ≪ 1e-7).
            r = min(N, B - 1)
            A = np.column_stack([np.ones(B), rng.standard_normal((B, r))])
            Q = np.linalg.qr(A)[0][:, 1:]
            R = np.linalg.qr(rng.standard_normal((N, r)))[0].T            # (r, N)
            X = np.sqrt(B) * (Q * rng.uniform(0.6, 1.4, r)) @ R
            k = min(M, N)
            U = np.linalg.qr(rng.standard_normal((M, k)))[0]
            V = np.linalg.qr(rng.standard_normal((N, k)))[0]
            W = (U * rng.uniform(0.7, 1.5, k)) @ V.T
        vals = dict(X=X, W=W, b=rng.standard_normal(M),
                    gamma=1.0 + 0.5 * rng.standard_normal(M),
                    beta=0.5 * rng.standard_normal(M), G=rng.standard_normal((B, M)))
        return cast(vals, cfg["dtype"])

    def analytic(self, values, cfg):
        return self._kernels(values, cfg)[1]

    def _kernels(self, values, cfg):
        """(the kernels' forward output, H or Z, (B, M); ∂L/∂node by key)."""
        X, W, b, G = values["X"], values["W"], values["b"], values["G"]
        Y, aff = nk.affine_forward(X, W, b)
        args = (Y, values["gamma"], values["beta"], cfg["eps"], cfg["method"],
                cfg["group_size"] or None)
        if cfg["fused"]:
            out, cache = nk.whitening_relu_forward(*args, iterations=cfg["iterations"])
            g = nk.whitening_relu_backward(G, cache)
            dZ = g.dZ
        else:
            out, cache = nk.whitening_forward(*args, iterations=cfg["iterations"])
            _, relu_cache = nk.relu_forward(out)
            dZ = nk.relu_backward(G, relu_cache)
            g = nk.whitening_backward(dZ, cache)
        a = nk.affine_backward(g.dY, aff)
        return out, dict(L=np.float64(1.0), H=G, Z=dZ, gamma=g.dgamma, beta=g.dbeta,
                         Yhat=g.dYhat, Sigma=g.dcov, m=g.dmean, Y=g.dY, X=a.dX, W=a.dW,
                         b=a.db)

    def views(self, trace: Trace, key: str):
        out = {}
        if key in ("Y", "Sigma", "Yhat"):
            out["Cov(Y)"] = cov(trace.value("Y"))
        if key in ("Sigma", "Yhat"):
            S = np.asarray(trace.value("Sigma"), np.float64)
            out["eigenvalues of Σ"] = np.linalg.eigvalsh(0.5 * (S + S.T))
        if key in ("Yhat", "Z", "H"):
            out["Cov(Ŷ)"] = cov(trace.value("Yhat"))
        return out

    def insights(self, trace: Trace, key: str):
        cfg = trace.cfg
        eps, M = cfg["eps"], cfg["M"]
        if key == "Sigma":
            S = np.asarray(trace.value("Sigma"), np.float64)
            lam = np.linalg.eigvalsh(0.5 * (S + S.T))
            gaps = np.diff(lam)
            lines = [f"condition number of Σ + εI: {lam[-1] / lam[0]:.3g} "
                     f"(λ_max {lam[-1]:.3g}, λ_min {lam[0]:.3g})"]
            if cfg["B"] <= M:
                lines.append(f"B = {cfg['B']} ≤ M = {M}: Σ_Y has rank ≤ B − 1 = "
                             f"{cfg['B'] - 1}; only ε = {eps:g} keeps Σ invertible")
            if gaps.size:
                lines.append(f"smallest eigenvalue gap {gaps.min():.2e}: 1/(λᵢ − λⱼ) would be "
                             f"{'∞' if gaps.min() == 0 else f'{1 / gaps.min():.2e}'}; "
                             f"the ZCA backward uses F_ij = −1/(√λᵢ√λⱼ(√λᵢ+√λⱼ)), "
                             f"max |F| = {1 / (2 * lam[0] ** 1.5):.3g}")
            return lines
        if key == "Yhat":
            C = cov(trace.value("Yhat"))
            lines = [f"max |off-diagonal| of Cov(Ŷ): {offdiag(C):.3e}"]
            if cfg["method"] == "zca" and not (cfg["group_size"] and cfg["group_size"] < M):
                SY = cov(trace.value("Y"))
                pred = SY @ np.linalg.inv(SY + eps * np.eye(M))
                lines.append(f"ZCA: Cov(Ŷ) − Σ_Y(Σ_Y + εI)⁻¹ max |diff| "
                             f"{np.max(np.abs(C - pred)):.2e} (predicted equal)")
            if cfg["method"] == "newton":
                lines.append(f"Newton–Schulz with T = {cfg['iterations']}: approximate; "
                             f"Cov(Ŷ) → I as T grows")
            return lines
        return []

    def check_configs(self):
        return self._shape_configs() + self._variant_configs()

    def threaded_configs(self):
        """B·M ≥ 65,536 (2049·32) starts the whitening kernels' row team (the
        centring sums, the backward's pointwise passes); an odd batch leaves
        the two threads unequal blocks of rows."""
        return [dict(B=2049, N=32, M=32, seed=7)]

    # At the threaded size central differences cannot reproduce ∂L/∂b (exactly
    # 0: Ŷ is centred, so L does not depend on b, and round-off uses up the
    # tolerance), nor reliably ∂L/∂Y and ∂L/∂X (per-row entries small against
    # the round-off of central differences of an L summed over B·M terms); the
    # thread comparison below checks them instead (∂L/∂W, a sum over every
    # row, is still checked by finite differences and sees a wrong row).
    threaded_unchecked = ("b", "Y", "X")

    def thread_checks(self, trace, threads):
        """The forward output and every gradient the kernels give with
        `threads` threads against one thread's, at the trace's configuration
        (rows under --strict in the threaded run). ∂L/∂b sums ∂L/∂Y over rows
        and cancels to round-off, so its scale is what it sums, max_j Σ_i |∂L/∂Y_ij|."""
        with num_threads(1):
            out1, g1 = self._kernels(trace.values, trace.cfg)
        with num_threads(threads):
            outn, gn = self._kernels(trace.values, trace.cfg)
        dt = trace.dtype
        fwd = "H" if trace.cfg["fused"] else "Z"
        checks = [thread_split_check(fwd, out1, outn, dt, threads)]
        for key in ("Z", "beta", "gamma", "Yhat", "Sigma", "m", "Y", "b", "W", "X"):
            scale = (float(np.max(np.abs(np.asarray(g1["Y"], np.float64)).sum(axis=0)))
                     if key == "b" else None)
            checks.append(thread_split_check(f"∂L/∂{trace.node(key).name}", g1[key], gn[key],
                                             dt, threads, scale))
        return checks

    def _variant_configs(self):
        """The unfused kernels, and PCA and Cholesky whitening (they have no
        walkthrough of their own; PCA's eigenvectors are not unique at repeated
        eigenvalues, so only random spectra for it)."""
        out = [dict(B=6, N=4, M=4, seed=1, fused=False),
               dict(B=9, N=4, M=7, group_size=3, seed=2, fused=False)]
        for method in ("pca", "cholesky"):
            out += [dict(B=6, N=4, M=4, seed=1, method=method),
                    dict(B=9, N=4, M=7, group_size=3, seed=2, method=method),
                    dict(B=8, N=5, M=5, seed=6, method=method, fused=False)]
            if method != "pca":
                out.append(dict(B=8, N=5, M=5, spectrum="repeated", method=method))
        return out

    def _shape_configs(self):
        return [
            dict(B=2, N=1, M=1), dict(B=3, N=2, M=2), dict(B=6, N=4, M=4, seed=1),
            dict(B=8, N=5, M=5, spectrum="repeated"),
            dict(B=12, N=6, M=6, spectrum="repeated", seed=3, eps=1e-3),
            dict(B=9, N=4, M=7, group_size=3, seed=2),           # groups 3, 3, 1
            # B ≤ M: Σ_Y singular; ε = 1e-2 keeps cond(Σ + εI) ~ 1e2 so the
            # float32 run stays inside the float32 tolerances
            dict(B=4, N=5, M=6, eps=1e-2, seed=4),
            # N < M: rank 8 < 10. With ε = 1e-3 (cond 2.5e3) the float32 dΣ misses
            # the float32 tolerance (rel err 1.3e-3 against rtol 2e-3 + atol 1e-4)
            dict(B=16, N=8, M=10, seed=5, eps=1e-2),
        ]


@register
class WhiteningZCA(_WhiteningBase):
    name = "whitening-zca"
    title = "Affine → ZCA whitening BN → ReLU"
    description = ("Whitening batch norm: Ŷ = (Y − m) Σ^(−½), so Cov(Ŷ) ≈ I; the backward "
                   "through Σ^(−½) uses divided differences, finite at repeated eigenvalues.")
    method_default = "zca"


@register
class WhiteningNewton(_WhiteningBase):
    name = "whitening-newton"
    title = "Affine → Newton–Schulz (IterNorm) whitening BN → ReLU"
    description = ("Whitening without an eigendecomposition: T Newton–Schulz iterations on "
                   "Σ/tr Σ (IterNorm); the backward runs back through the iterations.")
    method_default = "newton"

    def _variant_configs(self):
        """The unfused kernels, and more iterations (they must never hurt)."""
        return [dict(B=6, N=4, M=4, seed=1, fused=False),
                dict(B=9, N=4, M=7, group_size=3, seed=2, fused=False),
                dict(B=8, N=5, M=5, seed=6, iterations=10),
                dict(B=8, N=5, M=5, seed=6, iterations=30, fused=False)]
