/* Prints every registered operator as a Markdown table row: family, domain, op_type, opsets.
 * docs/engine.md's operator table is made with it. */
#include <stdio.h>

#include "op.h"

static void family(const char *name, const struct vg_op *ops)
{
    for (const struct vg_op *op = ops; op->op_type; op++) {
        char range[32];
        if (op->until_version)
            snprintf(range, sizeof(range), "%d–%d", op->since_version, op->until_version);
        else
            snprintf(range, sizeof(range), "%d+", op->since_version);
        printf("| %s | %s | %s | %s |\n", name, op->domain[0] ? op->domain : "ai.onnx",
               op->op_type, range);
    }
}

int main(void)
{
    printf("| family | domain | operator | opsets |\n|---|---|---|---|\n");
    family("structure", vg_ops_structure);
    family("elementwise", vg_ops_elementwise);
    family("matrix", vg_ops_matrix);
    family("reduce", vg_ops_reduce);
    family("tree", vg_ops_tree);
    family("ml", vg_ops_ml);
    family("conv", vg_ops_conv);
    family("pooling", vg_ops_pool);
    family("normalization", vg_ops_norm);
    family("activation", vg_ops_activation);
    family("layout", vg_ops_layout);
    family("quant", vg_ops_quant);
    family("qconv", vg_ops_qconv);
    return 0;
}
