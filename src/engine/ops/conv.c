/*
 * Operator family "conv": Conv and ConvTranspose (ai.onnx), float32.
 *
 * Subset of the spec implemented:
 *  - Conv (opsets 1, 11): X [N, C, D1..Dk] with k >= 1 spatial axes (any k up to 6), W
 *    [M, C/group, K1..Kk], optional B [M]. Attributes: kernel_shape (optional; when given it must
 *    equal W's spatial dims), strides, dilations (default 1, each >= 1), pads ([begin..., end...],
 *    default 0, each >= 0), group (>= 1, dividing C and M), auto_pad NOTSET / SAME_UPPER /
 *    SAME_LOWER / VALID. SAME: out = ceil(in / stride), total padding max(0, (out - 1) * stride +
 *    (K - 1) * dilation + 1 - in), the odd unit at the end (UPPER) or the beginning (LOWER).
 *    VALID: no padding. An output dim below 1 (the dilated kernel longer than the padded input)
 *    is a shape error, so a model whose shapes are known fails to load.
 *  - ConvTranspose (opsets 1, 11): X [N, C, D...], W [C, M/group, K...], optional B [M].
 *    strides, dilations, pads, output_padding (default 0), group, kernel_shape, output_shape (the
 *    spatial dims, or all N, C, D... dims of which the spatial ones are used), auto_pad. Output
 *    dim = stride * (in - 1) + output_padding + (K - 1) * dilation + 1 - pad_begin - pad_end.
 *    With output_shape (or SAME_*, which asks for in * stride) the total padding follows from that
 *    equation and is split as the spec says: SAME_UPPER puts total/2 (floor) at the beginning,
 *    anything else puts it at the end. A negative total (an output_shape larger than the full
 *    result) leaves the uncovered outputs at the bias.
 *  - auto_pad together with non-zero pads is refused at load (the spec forbids the combination).
 *  - Only float32: double is refused at load (no model we target has it).
 *
 * Algorithms (Conv; per batch item and group, Cg = C/group input and Mg = M/group output
 * channels, KS the kernel's size, OS the output's spatial size):
 *  - Pointwise (every kernel dim 1, stride 1, no padding): X's group block [Cg, OS] already is the
 *    B matrix: cblas_sgemm(W_g [Mg, Cg], X_g) straight into Y.
 *  - Depthwise and every Cg == 1 case of rank 1 or 2 (MobileNet, EfficientNet): direct, one
 *    output channel at a time (conv_kern.c). The channel is copied into a zero-padded plane
 *    covering exactly what the windows read, so the inner loops need no bounds checks; stride-2
 *    planes are stored deinterleaved (even columns, then odd ones; AVX2 shuffles), so 8
 *    neighbouring outputs always read 8 contiguous inputs. Outputs go 8 per vector, four vectors
 *    at once (taken across rows when a row is short: 7- and 14-wide maps too) so four independent
 *    sums hide the add latency; a row's last 1..7 columns are one more vector whose extra lanes
 *    read the next row or the plane's zeroed slack and are dropped. Each output accumulates bias,
 *    then tap 0, tap 1, ... in that order, multiply then add (no FMA), exactly like the portable
 *    loop used without AVX2, so results do not depend on the CPU. The tap loops are unrolled
 *    (3x3 and 5x5 specialised), the activation applied in registers.
 *  - Everything else: im2col in tiles of output positions. The column buffer [Cg * KS, T] and
 *    the output tile [Mg, T] are kept near CONV_TILE_BYTES (512 KiB: within this machine's 1 MiB
 *    L2 with room for W's panel), with T at least CONV_MIN_TILE (128) columns so that OpenBLAS's
 *    per-call packing of W (Mg x Cg*KS floats) is spread over enough work; the tiles are then
 *    evened out. One sgemm per tile writes into Y (ldc = OS).
 *  - Bias and the fused activation are applied to each output tile right after its sgemm, while
 *    it is still in cache (the depthwise path applies them in registers). Filling the tile with
 *    the bias and running the sgemm with beta 1 was measured and rejected: OpenBLAS then leaves
 *    its small-matrix (beta 0) kernels and small-K 1x1 layers get 1.8x slower.
 *  - ConvTranspose: per group, columns = W_g^T [Mg * KS, Cg] x X_g tile (one sgemm per tile of
 *    input positions, same tile rule), scattered (col2im) into Y, which starts at zero; then bias.
 *    Not a hot path in the target models.
 *  Rank 1 is run as rank 2 with a leading size-1 axis; ranks >= 3 use the generic N-D im2col and
 *  col2im (odometer loops; fine for the conformance sizes, not tuned).
 *
 * Weights packed at load: when W (and B, if present) are constants, init copies them into the
 * state (W in ONNX order [M, Cg * KS], which is the row-major A matrix the sgemm wants and, for
 * Cg == 1, the per-channel taps the depthwise path reads) and the run never touches the inputs.
 * Fusion rewrites this copy, never the model's constant. A non-constant W (the ONNX node tests
 * feed W as an input) runs the same code on the input tensors, unfused.
 *
 * Load-time fusion (the hook init sets in c->absorb, protocol in op.h): a Conv with packed weights takes over
 * its single consumer when it is
 *  - BatchNormalization (inference: training_mode 0; before opset 9 `spatial` must be 1) whose
 *    scale, B, mean and var are float constants of M elements, and no activation is fused yet:
 *    s = scale / sqrt(var + epsilon) (computed in double), W'[m] = W[m] * s[m],
 *    b'[m] = (b[m] - mean[m]) * s[m] + B[m];
 *  - Relu, LeakyRelu (alpha), Clip (min/max attributes before opset 11, constant inputs after; an
 *    absent bound is none) or HardSwish (as ops/activation.c: x * clamp(x / 6 + 0.5, 0, 1)),
 *    when no activation is fused yet;
 *  - SiLU / Swish, EfficientNet's activation: the diamond Sigmoid(y) -> Mul(y, that) (operands in
 *    either order), offered by the core as next = Mul, via = Sigmoid. exp is computed by the same
 *    Cephes-style polynomial in the AVX2 and the portable form (conv_kern.c), within a few ulp of
 *    the Sigmoid operator's.
 *  Chains (Conv -> BatchNormalization -> Relu) fuse step by step. Not fused: a Conv whose output
 *  is a graph output or has more than one reader other than the SiLU diamond (the core does not
 *  offer it), a non-constant W or B, a BN or Clip parameter that is not a constant, a second
 *  activation, ConvTranspose. The fused results differ from the unfused graph only by float
 *  rounding (the BN scale is applied to the weights instead of the sums).
 *
 * Tile size (CONV_TILE_BYTES): 128 KiB to 2 MiB were measured on resnet18 and mobilenet_v2
 * layers (thread CPU time, best of many runs, on a loaded 2-core machine): 512 KiB to 2 MiB are
 * equal within the noise, 128-256 KiB about 20% slower on 3x3 64->64 at 56x56 (more calls, each
 * repacking W); 512 KiB keeps the column buffer within L2.
 *
 * oneDNN: 2-D Convs with packed weights may instead run through conv_dnnl.c (written alongside
 * this file; its note has the per-layer choice rule and VIGIL_CONV_BACKEND). Everything above is
 * the path for what it declines (depthwise, 1-D, N-D, non-constant W, ConvTranspose, an
 * activation it cannot express such as SiLU) and with VIGIL_CONV_BACKEND=vigil.
 */
#include <cblas.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "conv_dnnl.h"
#include "conv_kern.h"
#include "op.h"

#define CONV_TILE_BYTES ((int64_t)512 * 1024)
#define CONV_MIN_TILE 128


struct conv_state {
    int transpose;
    int64_t group;
    enum vg_auto_pad auto_pad;
    size_t n_kernel, n_strides, n_dil, n_pads, n_out_pad, n_out_shape;
    int64_t kernel[VG_CONV_MAX_SP], strides[VG_CONV_MAX_SP], dil[VG_CONV_MAX_SP];
    int64_t pads[2 * VG_CONV_MAX_SP], out_pad[VG_CONV_MAX_SP], out_shape[VG_CONV_MAX_SP + 2];
    /* packed constants (Conv with constant W and B): NULL means read the inputs */
    float *w;
    float *bias;
    int64_t m, w_numel;
    struct vg_conv_act act;
    struct vg_conv_dnnl *dnnl; /* oneDNN primitives per X shape (conv_dnnl.c), or NULL */
};

/* Per-run geometry derived from the input shapes and the attributes. */
struct conv_dims {
    int64_t n, c, m, g, cg, mg;
    int k; /* spatial rank as run (1-D becomes 2-D) */
    int64_t in[VG_CONV_MAX_SP], out[VG_CONV_MAX_SP], kern[VG_CONV_MAX_SP];
    int64_t str[VG_CONV_MAX_SP], dil[VG_CONV_MAX_SP], pb[VG_CONV_MAX_SP];
    int64_t in_size, out_size, kern_size;
    int pointwise;
};

static int conv_absorb(struct vg_kctx *c, const struct vg_node *nx,
                       const struct vg_tensor *const *in);

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_single_thread(void)
{
    openblas_set_num_threads(1);
}

static void conv_release(void *p)
{
    struct conv_state *st = p;
    if (!st)
        return;
    free(st->w);
    free(st->bias);
    vg_conv_dnnl_free(st->dnnl);
    free(st);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int read_ints(struct vg_kctx *c, const char *name, size_t max, int64_t *dst, size_t *n)
{
    const int64_t *v;
    *n = vg_attr_ints(c->node, name, &v);
    if (*n > max)
        return vg_kerr(c, VG_EUNSUPPORTED, "attribute '%s' has %zu values, at most %zu supported",
                       name, *n, max);
    if (*n)
        memcpy(dst, v, sizeof(int64_t) * *n);
    return 0;
}

static int conv_init_common(struct vg_kctx *c, int transpose)
{
    const struct vg_node *nd = c->node;
    enum vg_dtype dt = c->in[0]->dtype;
    if (dt != VG_DT_FLOAT)
        return vg_kerr(c, VG_EUNSUPPORTED, "input type %s is not supported (float only)",
                       vg_dtype_name(dt));
    for (int i = 1; i < c->n_in && i < 3; i++)
        if (c->in[i] && c->in[i]->dtype != dt)
            return vg_kerr(c, VG_ETYPE, "input %s is %s but X is %s", i == 1 ? "W" : "B",
                           vg_dtype_name(c->in[i]->dtype), vg_dtype_name(dt));
    if (c->n_in > 3)
        return vg_kerr(c, VG_EGRAPH, "%d inputs given, at most 3 (X, W, B)", c->n_in);
    struct conv_state *st = calloc(1, sizeof(*st));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    c->state = st; /* released by the core even when init fails */
    st->transpose = transpose;
    st->group = vg_attr_i(nd, "group", 1);
    if (st->group < 1)
        return vg_kerr(c, VG_EGRAPH, "group must be >= 1, got %lld", (long long)st->group);
    const char *ap = vg_attr_s(nd, "auto_pad", "NOTSET");
    int ap_rc = vg_kattr_auto_pad(c, &st->auto_pad);
    if (ap_rc)
        return ap_rc;
    int rc;
    if ((rc = read_ints(c, "kernel_shape", VG_CONV_MAX_SP, st->kernel, &st->n_kernel)) ||
        (rc = read_ints(c, "strides", VG_CONV_MAX_SP, st->strides, &st->n_strides)) ||
        (rc = read_ints(c, "dilations", VG_CONV_MAX_SP, st->dil, &st->n_dil)) ||
        (rc = read_ints(c, "pads", 2 * VG_CONV_MAX_SP, st->pads, &st->n_pads)))
        return rc;
    if (transpose &&
        ((rc = read_ints(c, "output_padding", VG_CONV_MAX_SP, st->out_pad, &st->n_out_pad)) ||
         (rc = read_ints(c, "output_shape", VG_CONV_MAX_SP + 2, st->out_shape,
                         &st->n_out_shape))))
        return rc;
    for (size_t i = 0; i < st->n_kernel; i++)
        if (st->kernel[i] < 1)
            return vg_kerr(c, VG_EGRAPH, "kernel_shape values must be >= 1");
    for (size_t i = 0; i < st->n_strides; i++)
        if (st->strides[i] < 1)
            return vg_kerr(c, VG_EGRAPH, "strides must be >= 1");
    for (size_t i = 0; i < st->n_dil; i++)
        if (st->dil[i] < 1)
            return vg_kerr(c, VG_EGRAPH, "dilations must be >= 1");
    int any_pad = 0;
    for (size_t i = 0; i < st->n_pads; i++) {
        if (st->pads[i] < 0)
            return vg_kerr(c, VG_EUNSUPPORTED, "negative pads are not supported");
        any_pad |= st->pads[i] != 0;
    }
    if (st->n_pads % 2)
        return vg_kerr(c, VG_EGRAPH, "pads has %zu values, expected 2 per spatial axis",
                       st->n_pads);
    if (any_pad && st->auto_pad != VG_AUTO_PAD_NOTSET)
        return vg_kerr(c, VG_EGRAPH, "pads cannot be given together with auto_pad %s", ap);
    for (size_t i = 0; i < st->n_out_pad; i++)
        if (st->out_pad[i] < 0)
            return vg_kerr(c, VG_EGRAPH, "output_padding values must be >= 0");
    for (size_t i = 0; i < st->n_out_shape; i++)
        if (st->out_shape[i] < 0)
            return vg_kerr(c, VG_EGRAPH, "output_shape values must be >= 0");

    /* What the constants tell already (the shape probe checks the rest against X). */
    const struct vg_tensor *w = c->in[1];
    const struct vg_tensor *b = c->n_in > 2 ? c->in[2] : NULL;
    if (w->data) {
        if (w->rank < 3)
            return vg_kerr(c, VG_ESHAPE, "W must have rank >= 3 (M, C/group, kernel...), got %d",
                           w->rank);
        if (w->rank - 2 > VG_CONV_MAX_SP)
            return vg_kerr(c, VG_EUNSUPPORTED, "%d spatial axes, at most %d supported",
                           w->rank - 2, VG_CONV_MAX_SP);
        int k = w->rank - 2;
        if (st->n_kernel && (int)st->n_kernel != k)
            return vg_kerr(c, VG_ESHAPE, "kernel_shape has %zu values but W has %d spatial axes",
                           st->n_kernel, k);
        for (size_t i = 0; i < st->n_kernel; i++)
            if (st->kernel[i] != w->dims[2 + i])
                return vg_kerr(c, VG_ESHAPE, "kernel_shape[%zu] = %lld but W's is %lld", i,
                               (long long)st->kernel[i], (long long)w->dims[2 + i]);
        int64_t m = transpose ? w->dims[1] * st->group : w->dims[0];
        if (!transpose && m % st->group)
            return vg_kerr(c, VG_ESHAPE, "W has %lld output channels, not a multiple of group %lld",
                           (long long)m, (long long)st->group);
        if (transpose && w->dims[0] % st->group)
            return vg_kerr(c, VG_ESHAPE, "W has %lld input channels, not a multiple of group %lld",
                           (long long)w->dims[0], (long long)st->group);
        if (b && b->data && (b->rank != 1 || b->dims[0] != m))
            return vg_kerr(c, VG_ESHAPE, "B must be [%lld], got rank %d with %lld elements",
                           (long long)m, b->rank, (long long)vg_tensor_numel(b));
        /* Pack Conv's constants: the run then reads only the state (and fusion may rewrite it). */
        if (!transpose && (!b || b->data)) {
            st->m = m;
            st->w_numel = vg_tensor_numel(w);
            st->w = malloc(sizeof(float) * (size_t)(st->w_numel ? st->w_numel : 1));
            if (!st->w)
                return vg_kerr(c, VG_ENOMEM, "out of memory");
            if (st->w_numel)
                memcpy(st->w, w->data, sizeof(float) * (size_t)st->w_numel);
            if (b) {
                st->bias = malloc(sizeof(float) * (size_t)(m ? m : 1));
                if (!st->bias)
                    return vg_kerr(c, VG_ENOMEM, "out of memory");
                if (m)
                    memcpy(st->bias, b->data, sizeof(float) * (size_t)m);
            }
        }
    }
    if (st->w) {
        c->absorb = conv_absorb;
        st->dnnl = vg_conv_dnnl_new(); /* NULL: oneDNN disabled, own path only */
    }
    c->out[0]->dtype = dt;
    pthread_once(&blas_once, blas_single_thread);
    return 0;
}

static int conv_init(struct vg_kctx *c)
{
    return conv_init_common(c, 0);
}

static int convt_init(struct vg_kctx *c)
{
    return conv_init_common(c, 1);
}

/*
 * Shapes: fills d from X, W (and checks B). c may be NULL in run, where infer already checked
 * everything; any failure there is reported as a changed shape.
 */
static int conv_dims_get(struct vg_kctx *c, const struct conv_state *st,
                         const struct vg_tensor *x, const struct vg_tensor *w,
                         const struct vg_tensor *b, struct conv_dims *d, int64_t *ydims)
{
#define FAIL(code, ...) return c ? vg_kerr(c, code, __VA_ARGS__) : -(code)
    if (x->rank < 3)
        FAIL(VG_ESHAPE, "X must have rank >= 3 (N, C, spatial...), got %d", x->rank);
    if (x->rank - 2 > VG_CONV_MAX_SP)
        FAIL(VG_EUNSUPPORTED, "%d spatial axes, at most %d supported", x->rank - 2,
             VG_CONV_MAX_SP);
    if (w->rank != x->rank)
        FAIL(VG_ESHAPE, "W has rank %d but X has rank %d", w->rank, x->rank);
    int k = x->rank - 2;
    if (st->n_kernel && (int)st->n_kernel != k)
        FAIL(VG_ESHAPE, "kernel_shape has %zu values for %d spatial axes", st->n_kernel, k);
    if (st->n_strides && (int)st->n_strides != k)
        FAIL(VG_ESHAPE, "strides has %zu values for %d spatial axes", st->n_strides, k);
    if (st->n_dil && (int)st->n_dil != k)
        FAIL(VG_ESHAPE, "dilations has %zu values for %d spatial axes", st->n_dil, k);
    if (st->n_pads && (int)st->n_pads != 2 * k)
        FAIL(VG_ESHAPE, "pads has %zu values for %d spatial axes (2 per axis)", st->n_pads, k);
    if (st->n_out_pad && (int)st->n_out_pad != k)
        FAIL(VG_ESHAPE, "output_padding has %zu values for %d spatial axes", st->n_out_pad, k);
    if (st->n_out_shape && (int)st->n_out_shape != k && (int)st->n_out_shape != k + 2)
        FAIL(VG_ESHAPE, "output_shape has %zu values for %d spatial axes", st->n_out_shape, k);
    for (size_t i = 0; i < st->n_kernel; i++)
        if (st->kernel[i] != w->dims[2 + i])
            FAIL(VG_ESHAPE, "kernel_shape[%zu] = %lld but W's is %lld", i,
                 (long long)st->kernel[i], (long long)w->dims[2 + i]);
    d->n = x->dims[0];
    d->c = x->dims[1];
    d->g = st->group;
    if (!st->transpose) {
        d->m = w->dims[0];
        if (w->dims[1] * d->g != d->c)
            FAIL(VG_ESHAPE,
                 "X has %lld channels but W expects %lld (W's dim 1 = %lld times group %lld)",
                 (long long)d->c, (long long)(w->dims[1] * d->g), (long long)w->dims[1],
                 (long long)d->g);
        if (d->m % d->g)
            FAIL(VG_ESHAPE, "W has %lld output channels, not a multiple of group %lld",
                 (long long)d->m, (long long)d->g);
    } else {
        if (w->dims[0] != d->c)
            FAIL(VG_ESHAPE, "X has %lld channels but W's dim 0 is %lld", (long long)d->c,
                 (long long)w->dims[0]);
        if (d->c % d->g)
            FAIL(VG_ESHAPE, "X has %lld channels, not a multiple of group %lld", (long long)d->c,
                 (long long)d->g);
        d->m = w->dims[1] * d->g;
    }
    d->cg = d->c / d->g;
    d->mg = d->m / d->g;
    if (b && (b->rank != 1 || b->dims[0] != d->m))
        FAIL(VG_ESHAPE, "B must be [%lld], got rank %d with %lld elements", (long long)d->m,
             b->rank, (long long)vg_tensor_numel(b));

    d->pointwise = !st->transpose;
    for (int i = 0; i < k; i++) {
        int64_t in = x->dims[2 + i], kk = w->dims[2 + i];
        int64_t s = st->n_strides ? st->strides[i] : 1, dl = st->n_dil ? st->dil[i] : 1;
        int64_t pb = st->n_pads ? st->pads[i] : 0, pend = st->n_pads ? st->pads[k + i] : 0;
        int64_t ext = (kk - 1) * dl + 1, out;
        if (kk > INT32_MAX || s > INT32_MAX || dl > INT32_MAX || pb > INT32_MAX ||
            pend > INT32_MAX)
            FAIL(VG_EUNSUPPORTED, "kernel, stride, dilation or pad above %d", INT32_MAX);
        if (!st->transpose) {
            if (st->auto_pad == VG_AUTO_PAD_SAME_UPPER || st->auto_pad == VG_AUTO_PAD_SAME_LOWER) {
                vg_same_pads(st->auto_pad, in, ext, s, &out, &pb, &pend);
            } else {
                if (st->auto_pad == VG_AUTO_PAD_VALID)
                    pb = pend = 0;
                out = in + pb + pend < ext ? 0 : (in + pb + pend - ext) / s + 1;
                if (out < 1)
                    FAIL(VG_ESHAPE,
                         "spatial axis %d: the kernel spans %lld (size %lld, dilation %lld) but "
                         "the padded input is only %lld long",
                         i, (long long)ext, (long long)kk, (long long)dl,
                         (long long)(in + pb + pend));
            }
            if (kk != 1 || s != 1 || pb || pend)
                d->pointwise = 0;
        } else {
            int64_t op = st->n_out_pad ? st->out_pad[i] : 0;
            int64_t full = s * (in - 1) + op + ext;
            int64_t target = -1;
            if (st->n_out_shape)
                target = st->out_shape[st->n_out_shape - (size_t)k + (size_t)i];
            else if (st->auto_pad == VG_AUTO_PAD_SAME_UPPER || st->auto_pad == VG_AUTO_PAD_SAME_LOWER)
                target = in * s;
            if (target >= 0) {
                int64_t total = full - target;
                if (st->auto_pad == VG_AUTO_PAD_SAME_UPPER) {
                    pb = floor_div(total, 2);
                    pend = total - pb;
                } else {
                    pend = floor_div(total, 2);
                    pb = total - pend;
                }
                out = target;
            } else {
                if (st->auto_pad == VG_AUTO_PAD_VALID)
                    pb = pend = 0;
                out = full - pb - pend;
            }
            if (in < 1 || out < 1)
                FAIL(VG_ESHAPE, "spatial axis %d: input length %lld gives %lld outputs", i,
                     (long long)in, (long long)out);
        }
        d->in[i] = in;
        d->out[i] = out;
        d->kern[i] = kk;
        d->str[i] = s;
        d->dil[i] = dl;
        d->pb[i] = pb;
    }
    if (ydims) {
        ydims[0] = d->n;
        ydims[1] = d->m;
        for (int i = 0; i < k; i++)
            ydims[2 + i] = d->out[i];
    }
    d->k = k;
    if (k == 1) { /* run as 2-D with a leading size-1 axis */
        d->k = 2;
        d->in[1] = d->in[0], d->out[1] = d->out[0], d->kern[1] = d->kern[0];
        d->str[1] = d->str[0], d->dil[1] = d->dil[0], d->pb[1] = d->pb[0];
        d->in[0] = d->out[0] = d->kern[0] = d->str[0] = d->dil[0] = 1;
        d->pb[0] = 0;
    }
    d->in_size = d->out_size = d->kern_size = 1;
    for (int i = 0; i < d->k; i++) {
        d->in_size *= d->in[i];
        d->out_size *= d->out[i];
        d->kern_size *= d->kern[i];
    }
    return 0;
#undef FAIL
}

static void geom_of(const struct conv_dims *d, int64_t c, struct vg_conv_geom *g)
{
    memset(g, 0, sizeof(*g));
    g->k = d->k;
    g->c = c;
    for (int i = 0; i < d->k; i++) {
        g->in[i] = d->in[i];
        g->out[i] = d->out[i];
        g->kern[i] = d->kern[i];
        g->str[i] = d->str[i];
        g->dil[i] = d->dil[i];
        g->pad[i] = d->pb[i];
    }
    g->in_size = d->in_size;
    g->out_size = d->out_size;
    g->kern_size = d->kern_size;
}

/* Columns per tile so that a `rows`-row float block stays near CONV_TILE_BYTES. */
static int64_t tile_cols(int64_t rows, int64_t total)
{
    int64_t t = CONV_TILE_BYTES / (int64_t)sizeof(float) / (rows > 0 ? rows : 1);
    if (t < CONV_MIN_TILE)
        t = CONV_MIN_TILE;
    if (t >= total)
        return total > 0 ? total : 1;
    int64_t n = (total + t - 1) / t;
    return (total + n - 1) / n;
}

static int use_depthwise(const struct conv_dims *d)
{
    return d->cg == 1 && d->k == 2 && !d->pointwise;
}

/* The oneDNN backend's view of a 2-D (or 1-D run as 2-D) Conv; 0 when it cannot apply. */
static int dnnl_shape(const struct conv_state *st, const struct conv_dims *d,
                      struct vg_conv_dnnl_shape *s)
{
    if (!st->dnnl || st->transpose || d->k != 2 || d->n == 0 || d->m == 0 || d->cg == 0 ||
        d->out_size == 0)
        return 0;
    *s = (struct vg_conv_dnnl_shape){
        .n = d->n, .c = d->c, .h = d->in[0], .w = d->in[1], .m = d->m, .oh = d->out[0],
        .ow = d->out[1], .group = d->g, .kh = d->kern[0], .kw = d->kern[1], .sh = d->str[0],
        .sw = d->str[1], .dh = d->dil[0], .dw = d->dil[1], .pt = d->pb[0], .pl = d->pb[1]};
    return 1;
}

static int conv_infer(struct vg_kctx *c)
{
    const struct conv_state *st = c->state;
    const struct vg_tensor *b = c->n_in > 2 ? c->in[2] : NULL;
    struct conv_dims d;
    struct vg_tensor *y = c->out[0];
    int rc = conv_dims_get(c, st, c->in[0], c->in[1], b, &d, y->dims);
    if (rc)
        return rc;
    y->rank = c->in[0]->rank;
    int64_t kd = d.cg * d.kern_size;
    if (d.mg > INT_MAX || kd > INT_MAX || d.out_size > INT_MAX || d.in_size > INT_MAX ||
        d.mg * d.kern_size > INT_MAX)
        return vg_kerr(c, VG_EUNSUPPORTED, "matrix dimension above %d (BLAS limit)", INT_MAX);
    c->scratch_bytes = 0;
    if (st->transpose) {
        int64_t rows = d.mg * d.kern_size;
        c->scratch_bytes = sizeof(float) * (size_t)(rows * tile_cols(rows, d.in_size));
    } else if (use_depthwise(&d)) {
        struct vg_conv_geom g;
        geom_of(&d, 1, &g);
        c->scratch_bytes = sizeof(float) * vg_conv_dw_scratch(&g);
    } else if (!d.pointwise) {
        int64_t rows = kd > d.mg ? kd : d.mg;
        c->scratch_bytes = sizeof(float) * (size_t)(kd * tile_cols(rows, d.out_size));
    }
    struct vg_conv_dnnl_shape ds;
    if (dnnl_shape(st, &d, &ds)) { /* oneDNN takes the shape: the larger scratch covers both */
        size_t need = vg_conv_dnnl_prepare(st->dnnl, &ds, st->w, st->bias, &st->act);
        if (need > c->scratch_bytes)
            c->scratch_bytes = need;
    }
    return 0;
}

static void sgemm_nn(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float beta, float *y, int64_t ldy)
{
    if (n == 1 && ldy == 1 && beta == 0.0f) {
        /* one output position (the squeeze-excitation Convs on [C, 1, 1]): gemv is several
           times faster than a one-column gemm; y is zeroed first because OpenBLAS scales it by
           beta, and the arena's garbage may hold NaN */
        memset(y, 0, sizeof(float) * (size_t)m);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)m, (int)k, 1.0f, a, (int)lda, b, (int)ldb,
                    0.0f, y, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, a,
                (int)lda, b, (int)ldb, beta, y, (int)ldy);
}

static int conv_run(struct vg_kctx *c)
{
    const struct conv_state *st = c->state;
    const struct vg_tensor *x = c->in[0], *w = c->in[1];
    const struct vg_tensor *b = c->n_in > 2 ? c->in[2] : NULL;
    struct conv_dims d;
    if (conv_dims_get(NULL, st, x, w, b, &d, NULL))
        return vg_kerr(c, VG_ESHAPE, "shapes changed after planning");
    const float *X = x->data;
    float *Y = c->out[0]->data;
    const float *W = st->w ? st->w : w->data;
    const float *B = st->w ? st->bias : b ? b->data : NULL;
    static const struct vg_conv_act none = {0};
    const struct vg_conv_act *act = st->w ? &st->act : &none;
    int64_t kd = d.cg * d.kern_size, os = d.out_size, is = d.in_size;
    if (d.n == 0 || d.m == 0 || os == 0)
        return 0;
    if (kd == 0) { /* no input channels: the output is the bias (and activation) */
        memset(Y, 0, sizeof(float) * (size_t)(d.n * d.m * os));
        for (int64_t n = 0; n < d.n; n++)
            vg_conv_epilogue(Y + n * d.m * os, os, d.m, os, B, act);
        return 0;
    }
    struct vg_conv_dnnl_shape ds;
    if (dnnl_shape(st, &d, &ds)) {
        int r = vg_conv_dnnl_run(st->dnnl, &ds, X, Y, c->scratch, c->scratch_bytes);
        if (r < 0)
            return vg_kerr(c, -r, "oneDNN convolution failed");
        if (r)
            return 0;
    }
    struct vg_conv_geom g;
    geom_of(&d, d.cg, &g);
    if (use_depthwise(&d)) {
        for (int64_t n = 0; n < d.n; n++)
            for (int64_t m = 0; m < d.m; m++) {
                int64_t ci = m / d.mg; /* the group's single input channel */
                vg_conv_depthwise(&g, X + (n * d.c + ci) * is, W + m * d.kern_size,
                                  B ? B[m] : 0.0f, act, c->scratch, Y + (n * d.m + m) * os);
            }
        return 0;
    }
    int64_t rows = kd > d.mg ? kd : d.mg;
    int64_t tile = tile_cols(rows, os);
    for (int64_t n = 0; n < d.n; n++)
        for (int64_t gi = 0; gi < d.g; gi++) {
            const float *xg = X + (n * d.c + gi * d.cg) * is;
            float *yg = Y + (n * d.m + gi * d.mg) * os;
            const float *wg = W + gi * d.mg * kd;
            const float *bg = B ? B + gi * d.mg : NULL;
            for (int64_t t0 = 0; t0 < os; t0 += tile) {
                int64_t tn = os - t0 < tile ? os - t0 : tile;
                /* beta 0, bias in the output pass: with beta 1 over a bias-filled tile OpenBLAS
                   skips its small-matrix kernels and a 16->96 1x1 at 112x112 takes 1.8x longer */
                float beta = 0.0f;
                if (d.pointwise) {
                    sgemm_nn(d.mg, tn, kd, wg, kd, xg + t0, is, beta, yg + t0, os);
                } else {
                    vg_conv_im2col(&g, xg, t0, tn, c->scratch);
                    sgemm_nn(d.mg, tn, kd, wg, kd, c->scratch, tn, beta, yg + t0, os);
                }
                vg_conv_epilogue(yg + t0, os, d.mg, tn, bg, act);
            }
        }
    return 0;
}

static int convt_run(struct vg_kctx *c)
{
    const struct conv_state *st = c->state;
    const struct vg_tensor *x = c->in[0], *w = c->in[1];
    const struct vg_tensor *b = c->n_in > 2 ? c->in[2] : NULL;
    struct conv_dims d;
    if (conv_dims_get(NULL, st, x, w, b, &d, NULL))
        return vg_kerr(c, VG_ESHAPE, "shapes changed after planning");
    const float *X = x->data, *W = w->data, *B = b ? b->data : NULL;
    float *Y = c->out[0]->data;
    int64_t os = d.out_size, is = d.in_size, rows = d.mg * d.kern_size;
    static const struct vg_conv_act none = {0};
    if (d.n == 0 || d.m == 0 || os == 0)
        return 0;
    memset(Y, 0, sizeof(float) * (size_t)(d.n * d.m * os));
    struct vg_conv_geom g;
    geom_of(&d, d.mg, &g);
    int64_t tile = tile_cols(rows, is);
    float *col = c->scratch;
    for (int64_t n = 0; n < d.n && d.cg > 0 && rows > 0; n++)
        for (int64_t gi = 0; gi < d.g; gi++) {
            const float *xg = X + (n * d.c + gi * d.cg) * is;
            const float *wg = W + gi * d.cg * rows;
            float *yg = Y + (n * d.m + gi * d.mg) * os;
            for (int64_t t0 = 0; t0 < is; t0 += tile) {
                int64_t tn = is - t0 < tile ? is - t0 : tile;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)rows, (int)tn,
                            (int)d.cg, 1.0f, wg, (int)rows, xg + t0, (int)is, 0.0f, col,
                            (int)tn);
                vg_conv_col2im(&g, col, t0, tn, yg);
            }
        }
    for (int64_t n = 0; n < d.n; n++)
        vg_conv_epilogue(Y + n * d.m * os, os, d.m, os, B, &none);
    return 0;
}

/* ---- load-time fusion ------------------------------------------------------------------------ */

/* A float constant of exactly `n` elements, or NULL. */
static const float *const_floats(const struct vg_tensor *t, int64_t n)
{
    if (!t || !t->data || t->dtype != VG_DT_FLOAT || vg_tensor_numel(t) != n)
        return NULL;
    return t->data;
}

static int absorb_bn(struct vg_kctx *c, struct conv_state *st, const struct vg_node *bn,
                     const struct vg_tensor *const *in)
{
    if (bn->n_in < 5 || st->act.kind != VG_CONV_ACT_NONE)
        return 0;
    if (vg_attr_i(bn, "training_mode", 0) != 0)
        return 0;
    if (bn->opset < 9 && vg_attr_i(bn, "spatial", 1) != 1)
        return 0;
    const float *scale = const_floats(in[1], st->m), *beta = const_floats(in[2], st->m);
    const float *mean = const_floats(in[3], st->m), *var = const_floats(in[4], st->m);
    if (!scale || !beta || !mean || !var)
        return 0;
    for (int i = 1; i <= 4; i++)
        if (in[i]->rank != 1)
            return 0;
    double eps = vg_attr_f(bn, "epsilon", 1e-5f);
    if (!st->bias) {
        st->bias = calloc((size_t)(st->m ? st->m : 1), sizeof(float));
        if (!st->bias)
            return vg_kerr(c, VG_ENOMEM, "out of memory");
    }
    int64_t per = st->m ? st->w_numel / st->m : 0;
    for (int64_t m = 0; m < st->m; m++) {
        double s = (double)scale[m] / sqrt((double)var[m] + eps);
        float *wm = st->w + m * per;
        for (int64_t i = 0; i < per; i++)
            wm[i] = (float)((double)wm[i] * s);
        st->bias[m] = (float)(((double)st->bias[m] - (double)mean[m]) * s + (double)beta[m]);
    }
    return 1;
}

static int absorb_clip(const struct conv_state *st, const struct vg_node *nx,
                       const struct vg_tensor *const *in, struct vg_conv_act *a)
{
    float lo = -FLT_MAX, hi = FLT_MAX;
    (void)st;
    if (nx->opset < 11) {
        lo = vg_attr_f(nx, "min", -FLT_MAX);
        hi = vg_attr_f(nx, "max", FLT_MAX);
    } else {
        for (int i = 1; i < nx->n_in && i < 3; i++) {
            if (!in[i])
                continue;
            const float *v = const_floats(in[i], 1);
            if (!v)
                return 0;
            if (i == 1)
                lo = v[0];
            else
                hi = v[0];
        }
    }
    a->kind = VG_CONV_ACT_CLIP;
    a->a = lo;
    a->b = hi;
    return 1;
}

static int conv_absorb(struct vg_kctx *c, const struct vg_node *nx,
                       const struct vg_tensor *const *in)
{
    struct conv_state *st = c->state;
    if (!st || !st->w || st->transpose || nx->domain[0] || nx->n_in < 1)
        return 0;
    const char *op = nx->op_type;
    if (c->absorb_via) { /* x * Sigmoid(x): SiLU (EfficientNet's Swish) */
        const struct vg_node *sg = c->absorb_via;
        int v = c->node->out[0];
        if (st->act.kind != VG_CONV_ACT_NONE || strcmp(sg->op_type, "Sigmoid") ||
            sg->domain[0] || sg->n_in != 1 || sg->in[0] != v || strcmp(op, "Mul") ||
            nx->n_in != 2)
            return 0;
        int s = sg->out[0];
        if (!((nx->in[0] == v && nx->in[1] == s) || (nx->in[0] == s && nx->in[1] == v)))
            return 0;
        st->act.kind = VG_CONV_ACT_SILU;
        return 1;
    }
    if (!strcmp(op, "BatchNormalization"))
        return absorb_bn(c, st, nx, in);
    if (st->act.kind != VG_CONV_ACT_NONE)
        return 0;
    struct vg_conv_act a = {0};
    if (!strcmp(op, "Relu")) {
        a.kind = VG_CONV_ACT_RELU;
    } else if (!strcmp(op, "LeakyRelu")) {
        a.kind = VG_CONV_ACT_LEAKY;
        a.a = vg_attr_f(nx, "alpha", 0.01f);
    } else if (!strcmp(op, "HardSwish")) {
        a.kind = VG_CONV_ACT_HARDSWISH;
    } else if (!strcmp(op, "Clip")) {
        if (!absorb_clip(st, nx, in, &a))
            return 0;
    } else {
        return 0;
    }
    st->act = a;
    return 1;
}

const struct vg_op vg_ops_conv[] = {
    {"", "Conv", 1, 0, conv_init, conv_infer, conv_run, conv_release, 0, 2},
    {"", "ConvTranspose", 1, 0, convt_init, conv_infer, convt_run, conv_release, 0, 2},
    {0},
};
