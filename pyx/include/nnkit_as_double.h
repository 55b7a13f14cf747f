/* Instantiates the template header included next for double: T the element
   type, S the name suffix (the template ends with nnkit_template_end.h). No
   include guard on purpose. */
#define T double
#define S d
