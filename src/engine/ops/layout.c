/*
 * Operator family "layout" (placeholder: being written). Will hold: Pad, Resize, Split, Tile, DepthToSpace, SpaceToDepth.
 */
#include "op.h"

const struct vg_op vg_ops_layout[] = {
    {0},
};
