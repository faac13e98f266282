/*
 * Float convolution kernels used by ops/conv.c (Conv, ConvTranspose): column building (im2col),
 * scattering back (col2im), the direct depthwise path and the bias + activation output pass.
 * Design and choices are in the note at the top of conv.c. Every kernel with an AVX2 variant has
 * a portable one that computes the same operations in the same order (no FMA contraction), so
 * results do not depend on the CPU; the variant is chosen once with __builtin_cpu_supports().
 */
#ifndef VIGIL_ENGINE_OPS_CONV_KERN_H
#define VIGIL_ENGINE_OPS_CONV_KERN_H

#include <stddef.h>
#include <stdint.h>

#define VG_CONV_MAX_SP 6 /* spatial rank limit: VG_MAX_RANK - 2 */

enum vg_conv_act_kind {
    VG_CONV_ACT_NONE = 0,
    VG_CONV_ACT_RELU,      /* x < 0 ? 0 : x (NaN kept, as the Relu operator) */
    VG_CONV_ACT_CLIP,      /* lo/hi as the Clip operator: NaN kept */
    VG_CONV_ACT_LEAKY,     /* x < 0 ? a * x : x */
    VG_CONV_ACT_HARDSWISH, /* x * clamp(x * (1/6) + 0.5, 0, 1), NaN kept */
    VG_CONV_ACT_SILU,      /* x * sigmoid(x), computed as x / (1 + exp(-x)) */
};

struct vg_conv_act {
    int kind;
    float a, b; /* CLIP: lo, hi; LEAKY: alpha */
};

/*
 * Geometry of one group of a convolution, spatial rank k (a 1-D convolution is given as 2-D with
 * a leading size-1 axis). `in` is X's spatial shape and `out` Y's. Conv reads X at
 * out_pos * str - pad + kpos * dil; ConvTranspose writes Y at in_pos * str - pad + kpos * dil
 * (pad is the beginning pad; the end is implied by `out`).
 */
struct vg_conv_geom {
    int k;
    int64_t c; /* rows of kernel positions per column block: channels of the group */
    int64_t in[VG_CONV_MAX_SP], out[VG_CONV_MAX_SP], kern[VG_CONV_MAX_SP];
    int64_t str[VG_CONV_MAX_SP], dil[VG_CONV_MAX_SP], pad[VG_CONV_MAX_SP];
    int64_t in_size, out_size, kern_size; /* products */
};

/*
 * Conv: col[r * tn + t] for r < c * kern_size (channel-major, then kernel positions row-major)
 * and output positions t0 .. t0 + tn - 1; zero where the window reads padding. x is the group's
 * [c, in...] block.
 */
void vg_conv_im2col(const struct vg_conv_geom *g, const float *x, int64_t t0, int64_t tn,
                    float *col);

/*
 * ConvTranspose: y[m, out...] += col[r * tn + t] for r < c * kern_size (r = m * kern_size +
 * kernel position) and input positions t0 .. t0 + tn - 1, skipping targets outside y. Here
 * g->c is the group's output channel count and y its [c, out...] block.
 */
void vg_conv_col2im(const struct vg_conv_geom *g, const float *col, int64_t t0, int64_t tn,
                    float *y);

/* y[m * ldy + t] = act(y[m * ldy + t] + bias[m]) for m < rows, t < cols; bias may be NULL. */
void vg_conv_epilogue(float *y, int64_t ldy, int64_t rows, int64_t cols, const float *bias,
                      const struct vg_conv_act *act);


/*
 * Direct 2-D depthwise convolution of one channel plane: y = act(bias + sum w * x) over the
 * window. g->k must be 2, g->c is ignored. `pad_buf` must hold vg_conv_dw_scratch(g) floats.
 */
size_t vg_conv_dw_scratch(const struct vg_conv_geom *g);
void vg_conv_depthwise(const struct vg_conv_geom *g, const float *x, const float *w, float bias,
                       const struct vg_conv_act *act, float *pad_buf, float *y);

#endif
