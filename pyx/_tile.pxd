# nnkit's register-tiled product for small GEMMs whose right operand is
# reused many times (the RNN's per-step product, the convolution's implicit
# GEMM). The C, its packed layout and its ISA choice: pyx/include/nnkit_tile.h.
from _common cimport floating


cdef extern from "nnkit_tile.h":
    # out[:, j0:M] (+)= V (B, K) R, R a (K, M - j0) row-major block
    void nnkit_plain_gemm_f(Py_ssize_t B, Py_ssize_t K, Py_ssize_t M, Py_ssize_t j0,
                            const float* V, const float* R, int accumulate,
                            float* out) noexcept nogil
    void nnkit_plain_gemm_d(Py_ssize_t B, Py_ssize_t K, Py_ssize_t M, Py_ssize_t j0,
                            const double* V, const double* R, int accumulate,
                            double* out) noexcept nogil
    # out[:, ja:jb] (+)= V (B, K) op(W)[:, ja:jb], op(W) (K, M) packed in P
    void nnkit_small_gemm_f(Py_ssize_t B, Py_ssize_t K, Py_ssize_t M, Py_ssize_t ja,
                            Py_ssize_t jb, const float* V,
                            const float* P, int accumulate, float* out) noexcept nogil
    void nnkit_small_gemm_d(Py_ssize_t B, Py_ssize_t K, Py_ssize_t M, Py_ssize_t ja,
                            Py_ssize_t jb, const double* V,
                            const double* P, int accumulate, double* out) noexcept nogil
    int NNKIT_PANEL_F         # panel width in columns; 0: no tile kernel in this build
    int NNKIT_PANEL_D
    int NNKIT_TILE_WIDE       # 1: the AVX-512 kernel (512-bit vectors)


cdef inline floating* pack_panels(const floating* W, Py_ssize_t K, Py_ssize_t M, bint transpose,
                     floating* P) noexcept nogil:
    """P (K M values, from a workspace: on a 64-byte boundary) = op(W) (K, M)
    in the tile kernel's packed layout (pyx/include/nnkit_tile.h), op(W)[k, j]
    = W[j, k] for W (M, K) (transpose; the forward's Wh^T) or W[k, j] for
    W (K, M) (the backward's Wh): panels of PW columns as contiguous (K, PW)
    blocks, then the leftover columns as a (K, rest) block. Returns P. Done
    once per call, O(K M)."""
    cdef Py_ssize_t pw = NNKIT_PANEL_F if floating is float else NNKIT_PANEL_D
    cdef Py_ssize_t M2 = M - M % pw if pw > 0 else 0, rest = M - M2, j, k, c
    for k in range(K):
        for j in range(M):
            c = j * K + k if transpose else k * M + j
            if j < M2:
                P[(j - j % pw) * K + k * pw + j % pw] = W[c]
            else:
                P[M2 * K + k * rest + (j - M2)] = W[c]
    return P

