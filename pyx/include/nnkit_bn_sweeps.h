/* One instantiation of nnkit_bn.h's sweeps for the element type T with name
   suffix S (nnkit_as_float.h, nnkit_as_double.h); nnkit_bn.h includes it
   once per type. No include guard on purpose. */
#include "nnkit_vec_names.h"

/* dh where z > 0 or z is NaN (not z <= 0), else 0: relu_grad per lane */
static inline VEC NNKIT_PASTE(nnkit_bn_mask, S)(VEC dh, VEC z) {
    const VEC zero = {0};
    return (VEC)((IVEC)dh & ~(IVEC)(z <= zero));
}

/* the same for one value */
static inline T NNKIT_PASTE(nnkit_bn_mask1, S)(T dh, T z) { return z <= 0 ? 0 : dh; }

/* rows a (and b when two) of the reduce sweep, columns [0, M) */
static void NNKIT_PASTE(nnkit_bn_reduce, S)(
        const T* ya, const T* yb, const T* da, const T* db, ptrdiff_t M, const T* m,
        const T* s, const T* bt, int relu, int two, T* psb, T* psg, T* psc) {
    const ptrdiff_t L = VL;
    ptrdiff_t j = 0;
    if (two) {
        for (; j + L <= M; j += L) {
            VEC mm = LOAD(m + j);
            VEC ca = LOAD(ya + j) - mm;
            VEC cb = LOAD(yb + j) - mm;
            VEC za = LOAD(da + j), zb = LOAD(db + j);
            if (relu) {
                VEC ss = LOAD(s + j), bb = LOAD(bt + j);
                za = NNKIT_PASTE(nnkit_bn_mask, S)(za, ca * ss + bb);
                zb = NNKIT_PASTE(nnkit_bn_mask, S)(zb, cb * ss + bb);
            }
            STORE(psb + j, LOAD(psb + j) + (za + zb));
            STORE(psg + j, LOAD(psg + j) + (za * ca + zb * cb));
            STORE(psc + j, LOAD(psc + j) + (ca + cb));
        }
        for (; j < M; j++) {
            T ca = ya[j] - m[j], cb = yb[j] - m[j], za = da[j], zb = db[j];
            if (relu) {
                za = NNKIT_PASTE(nnkit_bn_mask1, S)(za, ca * s[j] + bt[j]);
                zb = NNKIT_PASTE(nnkit_bn_mask1, S)(zb, cb * s[j] + bt[j]);
            }
            psb[j] += za + zb; psg[j] += za * ca + zb * cb; psc[j] += ca + cb;
        }
    } else {
        for (; j + L <= M; j += L) {
            VEC ca = LOAD(ya + j) - LOAD(m + j);
            VEC za = LOAD(da + j);
            if (relu)
                za = NNKIT_PASTE(nnkit_bn_mask, S)(za, ca * LOAD(s + j) + LOAD(bt + j));
            STORE(psb + j, LOAD(psb + j) + za);
            STORE(psg + j, LOAD(psg + j) + za * ca);
            STORE(psc + j, LOAD(psc + j) + ca);
        }
        for (; j < M; j++) {
            T ca = ya[j] - m[j], za = da[j];
            if (relu) za = NNKIT_PASTE(nnkit_bn_mask1, S)(za, ca * s[j] + bt[j]);
            psb[j] += za; psg[j] += za * ca; psc[j] += ca;
        }
    }
}

/* dst[0:n] = s dz - mt - vi c for one row's columns [0, n) */
static void NNKIT_PASTE(nnkit_bn_dy, S)(
        const T* y, const T* dh, ptrdiff_t n, const T* m, const T* s, const T* bt,
        const T* mt, const T* vi, int relu, T* dst) {
    const ptrdiff_t L = VL;
    ptrdiff_t j = 0;
    for (; j + L <= n; j += L) {
        VEC c = LOAD(y + j) - LOAD(m + j);
        VEC ss = LOAD(s + j), dz = LOAD(dh + j);
        if (relu) dz = NNKIT_PASTE(nnkit_bn_mask, S)(dz, c * ss + LOAD(bt + j));
        STORE(dst + j, ss * dz - LOAD(mt + j) - LOAD(vi + j) * c);
    }
    for (; j < n; j++) {
        T c = y[j] - m[j], dz = dh[j];
        if (relu) dz = NNKIT_PASTE(nnkit_bn_mask1, S)(dz, c * s[j] + bt[j]);
        dst[j] = s[j] * dz - mt[j] - vi[j] * c;
    }
}

#include "nnkit_template_end.h"
