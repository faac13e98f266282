/*
 * Operator family "activation" (placeholder: being written). Will hold: HardSigmoid, HardSwish, PRelu, Elu, Selu, Softplus, Erf, Sum, Mean.
 */
#include "op.h"

const struct vg_op vg_ops_activation[] = {
    {0},
};
