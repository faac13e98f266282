/*
 * Operator family "norm" (placeholder: being written). Will hold: BatchNormalization, InstanceNormalization, LayerNormalization, LRN, Dropout.
 */
#include "op.h"

const struct vg_op vg_ops_norm[] = {
    {0},
};
