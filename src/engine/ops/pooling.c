/*
 * Operator family "pool" (placeholder: being written). Will hold: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.
 */
#include "op.h"

const struct vg_op vg_ops_pool[] = {
    {0},
};
