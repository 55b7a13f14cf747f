/* The optimizer steps (pyx/optim.pyx): one loop per rule over a slice of
   the parameter p, its gradient g and the rule's state, each a single pass
   (reads p, g and the state; writes p and the state). Arithmetic in the
   parameter's type, as torch.optim's. Weight decay is the L2 form: the
   gradient used is g' = g + wd p, formed in a register.
     nnkit_step_f/_d(rule, p, g, s1, s2, n, h)  one slice of rule `rule`
     (s1, s2: its state arrays, unused ones any valid pointer; h: the rule's
     hyperparameters in its function's order below). */
#ifndef NNKIT_OPTIM_H
#define NNKIT_OPTIM_H

#include "nnkit_base.h"

enum { NNKIT_SGD, NNKIT_MOMENTUM, NNKIT_ADAM, NNKIT_ADAGRAD };

#include "nnkit_as_float.h"
#define SQRT __builtin_sqrtf
#include "nnkit_optim_rules.h"

#include "nnkit_as_double.h"
#define SQRT __builtin_sqrt
#include "nnkit_optim_rules.h"

#endif  /* NNKIT_OPTIM_H */
