/* The LSTM and GRU cells of pyx/gated.pyx: each step's fused elementwise pass.
     nnkit_lstm_cell_f/_d   A (B, 4H) pre-activations i, f, g, o -> activated
                            gates in place; c = f c_prev + i g, tc = tanh(c), h = o tc
     nnkit_lstm_back_f/_d   one step back: dc (total, through h and from t + 1),
                            dA (B, 4H) the pre-activation gradients
     nnkit_gru_cell_f/_d    r, z, n (PyTorch's GRU: n = tanh(x_n + r (h W_hn + b_hn)))
     nnkit_gru_back_f/_d    one step back: dX3, dH3 the x- and h-side gate gradients
   One pass over the step's memory each, forward and back; float32 computed in
   double and rounded once. tanh and sigmoid are nnkit_act.h's (NNKIT_NO_TRAP
   lets gcc vectorize the loops: see there). */
#ifndef NNKIT_GATED_H
#define NNKIT_GATED_H

#include <stddef.h>
#include "nnkit_act.h"

#define NNKIT_LSTM_CELL(NAME, T, SINGLE)                                   \
NNKIT_NO_TRAP static void NAME(Py_ssize_t B, Py_ssize_t H,               \
        T* restrict A, const T* restrict c_prev, T* restrict c,            \
        T* restrict tc, T* restrict h) {                                   \
    for (Py_ssize_t b = 0; b < B; b++) {                                   \
        T* restrict a = A + b * 4 * H;                                     \
        const T* restrict cp = c_prev + b * H;                             \
        T* restrict cb = c + b * H;                                        \
        T* restrict tb = tc + b * H;                                       \
        T* restrict hb = h + b * H;                                        \
        for (Py_ssize_t j = 0; j < H; j++) {                               \
            T ig = (T)nnkit_sigmoid(a[j], SINGLE);                       \
            T fg = (T)nnkit_sigmoid(a[H + j], SINGLE);                   \
            T gg = (T)nnkit_tanh(a[2 * H + j], SINGLE);                  \
            T og = (T)nnkit_sigmoid(a[3 * H + j], SINGLE);               \
            T cv = fg * cp[j] + ig * gg;                                   \
            T tv = (T)nnkit_tanh(cv, SINGLE);                            \
            a[j] = ig; a[H + j] = fg; a[2 * H + j] = gg; a[3 * H + j] = og;\
            cb[j] = cv; tb[j] = tv; hb[j] = og * tv;                       \
        }                                                                  \
    }                                                                      \
}
NNKIT_LSTM_CELL(nnkit_lstm_cell_f, float, 1)
NNKIT_LSTM_CELL(nnkit_lstm_cell_d, double, 0)

/* LSTM step, backward. G (B, 4H) the step's gates, c_prev (B, H), tc
   (B, H) tanh(c_t), dh (B, H) total dL/dh_t; dc_next, f_next (rows 4H
   apart: the next step's gate block + H) the carry dc_{t+1} ⊙ f_{t+1}, or
   NULL where the chain is cut. Out: dc (B, H) total dL/dc_t, dA (B, 4H)
   dL/da for i, f, g, o. */
#define NNKIT_LSTM_CELL_BACK(NAME, T)                                      \
NNKIT_NO_TRAP static void NAME(Py_ssize_t B, Py_ssize_t H,               \
        const T* restrict G, const T* restrict c_prev,                     \
        const T* restrict tc, const T* restrict dh,                        \
        const T* restrict dc_next, const T* restrict f_next,               \
        T* restrict dc, T* restrict dA) {                                  \
    for (Py_ssize_t b = 0; b < B; b++) {                                   \
        const T* restrict g4 = G + b * 4 * H;                              \
        const T* restrict cp = c_prev + b * H;                             \
        const T* restrict tb = tc + b * H;                                 \
        const T* restrict db = dh + b * H;                                 \
        T* restrict dcb = dc + b * H;                                      \
        T* restrict da = dA + b * 4 * H;                                   \
        const T* restrict dcn = dc_next ? dc_next + b * H : NULL;          \
        const T* restrict fn = f_next ? f_next + b * 4 * H : NULL;         \
        for (Py_ssize_t j = 0; j < H; j++) {                               \
            T ig = g4[j], fg = g4[H + j], gg = g4[2 * H + j];              \
            T og = g4[3 * H + j], tv = tb[j], d = db[j];                   \
            T dcv = d * og * ((T)1 - tv * tv);                             \
            if (dcn) dcv = dcv + dcn[j] * fn[j];                           \
            dcb[j] = dcv;                                                  \
            da[j] = dcv * gg * ig * ((T)1 - ig);                           \
            da[H + j] = dcv * cp[j] * fg * ((T)1 - fg);                    \
            da[2 * H + j] = dcv * ig * ((T)1 - gg * gg);                   \
            da[3 * H + j] = d * tv * og * ((T)1 - og);                     \
        }                                                                  \
    }                                                                      \
}
NNKIT_LSTM_CELL_BACK(nnkit_lstm_back_f, float)
NNKIT_LSTM_CELL_BACK(nnkit_lstm_back_d, double)

/* GRU step, forward. A (B, 3H): gx = x W_ihᵀ + b_ih in, activated gates
   r, z, n out; S (B, 3H) gh without its bias (h_prev W_hhᵀ); bhh (3H,);
   h_prev (B, H); out hn (B, H) = W_hn h_prev + b_hn, h (B, H). */
#define NNKIT_GRU_CELL(NAME, T, SINGLE)                                    \
NNKIT_NO_TRAP static void NAME(Py_ssize_t B, Py_ssize_t H,               \
        T* restrict A, const T* restrict S, const T* restrict bhh,         \
        const T* restrict h_prev, T* restrict hn, T* restrict h) {         \
    for (Py_ssize_t b = 0; b < B; b++) {                                   \
        T* restrict a = A + b * 3 * H;                                     \
        const T* restrict s = S + b * 3 * H;                               \
        const T* restrict hp = h_prev + b * H;                             \
        T* restrict hnb = hn + b * H;                                      \
        T* restrict hb = h + b * H;                                        \
        for (Py_ssize_t j = 0; j < H; j++) {                               \
            T r = (T)nnkit_sigmoid(a[j] + (s[j] + bhh[j]), SINGLE);      \
            T z = (T)nnkit_sigmoid(a[H + j] + (s[H + j] + bhh[H + j]), SINGLE);\
            T ghn = s[2 * H + j] + bhh[2 * H + j];                         \
            T n = (T)nnkit_tanh(a[2 * H + j] + r * ghn, SINGLE);         \
            a[j] = r; a[H + j] = z; a[2 * H + j] = n;                      \
            hnb[j] = ghn;                                                  \
            hb[j] = n + z * (hp[j] - n);                                   \
        }                                                                  \
    }                                                                      \
}
NNKIT_GRU_CELL(nnkit_gru_cell_f, float, 1)
NNKIT_GRU_CELL(nnkit_gru_cell_d, double, 0)

/* GRU step, backward. G (B, 3H) gates r, z, n; hn (B, H); h_prev (B, H);
   dh (B, H) total dL/dh_t. Out: dX3 (B, 3H) dL/dgx (r, z, n
   pre-activations), dH3 (B, 3H) dL/dgh (= dX3 for r, z; r ⊙ da_n for n). */
#define NNKIT_GRU_CELL_BACK(NAME, T)                                       \
NNKIT_NO_TRAP static void NAME(Py_ssize_t B, Py_ssize_t H,               \
        const T* restrict G, const T* restrict hn,                         \
        const T* restrict h_prev, const T* restrict dh,                    \
        T* restrict dX3, T* restrict dH3) {                                \
    for (Py_ssize_t b = 0; b < B; b++) {                                   \
        const T* restrict g3 = G + b * 3 * H;                              \
        const T* restrict hnb = hn + b * H;                                \
        const T* restrict hp = h_prev + b * H;                             \
        const T* restrict d = dh + b * H;                                  \
        T* restrict dx = dX3 + b * 3 * H;                                  \
        T* restrict dg = dH3 + b * 3 * H;                                  \
        for (Py_ssize_t j = 0; j < H; j++) {                               \
            T r = g3[j], z = g3[H + j], n = g3[2 * H + j];                 \
            T dan = d[j] * ((T)1 - z) * ((T)1 - n * n);                    \
            T daz = d[j] * (hp[j] - n) * z * ((T)1 - z);                   \
            T dar = dan * hnb[j] * r * ((T)1 - r);                         \
            dx[j] = dar; dx[H + j] = daz; dx[2 * H + j] = dan;             \
            dg[j] = dar; dg[H + j] = daz; dg[2 * H + j] = dan * r;         \
        }                                                                  \
    }                                                                      \
}
NNKIT_GRU_CELL_BACK(nnkit_gru_back_f, float)
NNKIT_GRU_CELL_BACK(nnkit_gru_back_d, double)

#endif  /* NNKIT_GATED_H */
