/*
 * Operator family "quant" (placeholder: being written). Will hold: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear; com.microsoft QLinearAdd, QLinearMul, QLinearGlobalAveragePool, QLinearAveragePool, QLinearConcat, QLinearSigmoid, QLinearLeakyRelu.
 */
#include "op.h"

const struct vg_op vg_ops_quant[] = {
    {0},
};
