/* The end of a template header's instantiation: #undef every parameter and
   short name the templates use (nnkit_as_float.h, nnkit_vec_names.h, the
   tile's vector and intrinsics), so none leaks into the code that includes
   them. No include guard on purpose. */
#undef T
#undef S
#undef VEC
#undef IVEC
#undef VL
#undef LOAD
#undef STORE
#undef FOLD
#undef SQRT
#undef L
#undef LD
#undef ST
#undef BC
#undef FMA
#undef ADD
#undef ZERO
