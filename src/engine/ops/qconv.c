/*
 * Operator family "qconv" (placeholder: being written). Will hold: QLinearConv, ConvInteger, MatMulInteger, QLinearMatMul.
 */
#include "op.h"

const struct vg_op vg_ops_qconv[] = {
    {0},
};
