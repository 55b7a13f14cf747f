/* Short names for the vector helpers (nnkit_vec.h) of the element type being
   instantiated (S, from nnkit_as_float.h or nnkit_as_double.h), for the
   templates of nnkit_bn.h and nnkit_norms.h; nnkit_template_end.h #undefs
   them. No include guard on purpose. */
#define VEC NNKIT_PASTE(nnkit_vec, S)
#define IVEC NNKIT_PASTE(nnkit_ivec, S)
#define VL NNKIT_PASTE(NNKIT_VL, S)
#define LOAD NNKIT_PASTE(nnkit_load, S)
#define STORE NNKIT_PASTE(nnkit_store, S)
