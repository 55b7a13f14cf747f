/* Instantiates the template header included next for float: T the element
   type, S the name suffix (the template ends with nnkit_template_end.h). No
   include guard on purpose. */
#define T float
#define S f
