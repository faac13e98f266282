/*
 * oneDNN (libdnnl) backend for float 2-D Conv, used by ops/conv.c. Design note and the per-layer
 * choice rule are at the top of conv_dnnl.c.
 */
#ifndef VIGIL_ENGINE_OPS_CONV_DNNL_H
#define VIGIL_ENGINE_OPS_CONV_DNNL_H

#include <stddef.h>
#include <stdint.h>

#include "conv_kern.h"

/* Per-node backend state: a cache of primitives keyed by X's shape. */
struct vg_conv_dnnl;

/* One 2-D convolution as conv.c resolved it (pads are ONNX's begin/end pads after auto_pad). */
struct vg_conv_dnnl_shape {
    int64_t n, c, h, w;                 /* X [N, C, H, W] */
    int64_t m, oh, ow;                  /* Y [N, M, OH, OW] */
    int64_t group;
    int64_t kh, kw, sh, sw, dh, dw;     /* kernel, strides, dilations (ONNX: 1 = dense) */
    int64_t pt, pl;                     /* begin pads (top, left) */
};

/*
 * init: a backend state for a Conv with constant weights, or NULL when oneDNN is disabled
 * (VIGIL_CONV_BACKEND=vigil) or out of memory (conv.c then always runs its own path).
 */
struct vg_conv_dnnl *vg_conv_dnnl_new(void);
void vg_conv_dnnl_free(struct vg_conv_dnnl *d);

/*
 * infer: decides whether oneDNN runs this shape (the choice rule) and, if so, builds its
 * primitive once for the shape (weights `w` [M, C/group, KH, KW] reordered into the primitive's
 * layout, `bias` [M] or NULL, `act` as post-op). Returns the scratch bytes a run needs (> 0) when
 * oneDNN takes the shape, 0 when conv.c's own path should run it (rule, or oneDNN declined).
 */
size_t vg_conv_dnnl_prepare(struct vg_conv_dnnl *d, const struct vg_conv_dnnl_shape *s,
                            const float *w, const float *bias, const struct vg_conv_act *act);

/*
 * run: executes the primitive prepared for `s` on NCHW x into NCHW y, using `scratch` (64-byte
 * aligned, scratch_bytes long). Returns 1 when done, 0 when nothing is prepared for this shape
 * or the scratch is too small (the caller runs its own path), < 0 (-VG_E*) on a oneDNN failure.
 */
int vg_conv_dnnl_run(const struct vg_conv_dnnl *d, const struct vg_conv_dnnl_shape *s,
                     const float *x, float *y, void *scratch, size_t scratch_bytes);

#endif
