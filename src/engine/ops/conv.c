/*
 * Operator family "conv" (placeholder: being written). Will hold: Conv, ConvTranspose.
 */
#include "op.h"

const struct vg_op vg_ops_conv[] = {
    {0},
};
