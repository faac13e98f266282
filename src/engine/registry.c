/*
 * The operator registry: every operator family's table, walked in order. Adding a family means
 * one new file in ops/ and one line here; the core never names an operator.
 */
#include <string.h>

#include "op.h"

static const struct vg_op *const families[] = {
    vg_ops_structure, vg_ops_elementwise, vg_ops_matrix,
    vg_ops_reduce,    vg_ops_tree,        vg_ops_ml,
    vg_ops_conv,      vg_ops_pool,        vg_ops_norm,
    vg_ops_activation, vg_ops_layout,     vg_ops_quant,
    vg_ops_qconv,
};

const struct vg_op *vg_op_lookup(const char *domain, const char *op_type, int64_t opset)
{
    if (!strcmp(domain, "ai.onnx"))
        domain = "";
    for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++)
        for (const struct vg_op *op = families[f]; op->op_type; op++) {
            if (strcmp(op->op_type, op_type) || strcmp(op->domain, domain))
                continue;
            if (opset < op->since_version)
                continue;
            if (op->until_version && opset > op->until_version)
                continue;
            return op;
        }
    return NULL;
}
