# nnkit's register-tiled product for small GEMMs whose right operand is
# reused many times (the RNN's per-step product, the convolution's implicit
# GEMM). The C, its packed layout and its ISA choice: pyx/include/nnkit_tile.h.
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
