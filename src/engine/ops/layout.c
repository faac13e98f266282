/*
 * Operator family "layout" (ai.onnx): operators that move elements between positions, with
 * interpolation for Resize. Subset of the spec implemented, per operator and opset form:
 *
 *   Pad 1, 2, 11, 13, 18, 19
 *       pads as attribute (`paddings` at opset 1, `pads` at 2) with the float attribute `value`,
 *       or as an int64 input (11+) with an optional one-element constant_value input of the data's
 *       type (absent or empty: 0, false or ""); the axes input of opset 18 (int32/int64, negative
 *       counts from the end); modes constant, reflect, edge, and wrap (opset 19 only). Every engine
 *       dtype, strings included, in every mode. The opset-1/2 `value` converts to integer types by
 *       saturation (bool: non-zero is true).
 *       Negative pads crop. A pair with one negative side is applied as "crop, then pad the cropped
 *       data" (the spec leaves mixed signs open), so reflect and wrap mirror or wrap within what is
 *       kept. Reflect needs every positive pad < the kept length, edge and wrap a kept length > 0
 *       when they pad; wrap repeats the kept data periodically. These are shape errors at planning
 *       (at load when the pads are constants).
 *   Resize 10, 11, 13, 18, 19
 *       opset 10: X and scales; mode nearest or linear; asymmetric coordinates; nearest takes the
 *       floor (Upsample's rule, which Resize-10 replaced; the opset says nothing). 11+: roi,
 *       scales, sizes; one of scales and sizes (an empty tensor or an absent input counts as not
 *       given: both given is a load error when both are constants, else a planning error); modes
 *       nearest (round_prefer_floor, round_prefer_ceil, floor, ceil), linear (N-linear) and cubic
 *       (cubic_coeff_a, exclude_outside); coordinate modes half_pixel, pytorch_half_pixel,
 *       align_corners, asymmetric, tf_half_pixel_for_nn and tf_crop_and_resize (roi and
 *       extrapolation_value; a point outside the input on any axis takes extrapolation_value).
 *       Opset 18-19 extras (antialias != 0, axes, keep_aspect_ratio_policy other than "stretch",
 *       half_pixel_symmetric) are refused at load. Nearest moves any engine dtype; linear and cubic
 *       need float or double (integer interpolation would need a rounding rule: refused at load).
 *       Output size: floor(input * scale) computed in double from the float scale; with sizes, the
 *       scale is output / input in double. Coordinates follow ONNX's reference implementation: for
 *       align_corners and tf_crop_and_resize the output length in the formula is input * scale
 *       (with sizes, the output length itself); pytorch_half_pixel maps a length-1 output to 0.
 *       Nearest rounds the source coordinate and clamps it into the input; linear and cubic take
 *       the taps floor-below the coordinate (the coordinate itself when it is an integer, with
 *       weight 1) and clamp tap indices into the input (edge replication), as the reference does.
 *       Weights are computed in double and applied in the data's type (the reference accumulates
 *       in double: float results differ by a few ulps).
 *   Split 1, 2, 11, 13, 18
 *       split as attribute (1-12), as an optional second input (opset 1 and 13+; an empty tensor
 *       counts as absent), or equal parts (the dimension must divide by the output count); opset
 *       18's num_outputs gives parts of ceil(dim / n) with a smaller last one. Sizes may be 0 and
 *       must add up to the dimension. Every engine dtype.
 *   Tile 1, 6, 13
 *       opset 1: scalar `tiles` and `axis` inputs; 6+: int64 `repeats` of the input's rank.
 *       Repeats must be >= 0. Every engine dtype.
 *   DepthToSpace 1, 11, 13 (mode DCR, and CRD from 11); SpaceToDepth 1, 13. Rank-4 input, every
 *       engine dtype; the channel count (and H, W for SpaceToDepth) must divide by the block.
 *
 * Values that shapes depend on (pads, sizes, scales, split, repeats) are read with vg_kctx_value at
 * planning; when unknown, the plan falls back to node-by-node execution (VG_EDYNAMIC).
 *
 * Speed: Pad builds a source index per output position of each axis in scratch, then copies each
 * output row as constant fill, a gather of the borders and one memcpy of the kept middle. Resize
 * builds per-axis tables (source indices, weights, out-of-range flags) in scratch at the start of
 * the run; nearest is then a gather per row (a row that maps to the same source row as the one
 * before is a memcpy of it); linear and cubic are separable: one pass per resized axis, innermost
 * first, each a gather-and-multiply-add over the taps (the innermost axis) or a combination of
 * whole rows (outer axes), through scratch buffers sized for one block of the axes from the
 * outermost resized one in. Axes that map every position to itself are skipped. Tile copies
 * each input row repeated, then, axis by axis outwards, each finished block again right after
 * itself (few large memcpy calls); Split copies one contiguous slab per output and outer index.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "no-trapping-math")
#define LAY_IVDEP _Pragma("GCC ivdep")
#else
#define LAY_IVDEP
#endif

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

/* ---- shared helpers -------------------------------------------------------------------------- */

static int lay_dtype_ok(enum vg_dtype dt)
{
    switch (dt) {
    case VG_DT_FLOAT:
    case VG_DT_DOUBLE:
    case VG_DT_INT64:
    case VG_DT_INT32:
    case VG_DT_INT8:
    case VG_DT_UINT8:
    case VG_DT_BOOL:
    case VG_DT_STRING: return 1;
    default: return 0;
    }
}

static int lay_check_dtype(struct vg_kctx *c, enum vg_dtype dt)
{
    if (!lay_dtype_ok(dt))
        return vg_kerr(c, VG_ETYPE, "input type %s is not supported", vg_dtype_name(dt));
    return 0;
}

/* Index of s in the NULL-terminated list, or -1. */
static int lay_pick(const char *s, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static int64_t lay_prod(const int64_t *dims, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++)
        p *= dims[i];
    return p;
}

static size_t lay_align(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

/* dst[0..n) = the element at `val` (esz bytes) repeated. */
static void lay_fill(void *dst, const void *val, size_t esz, int64_t n)
{
    switch (esz) {
    case 1: memset(dst, *(const uint8_t *)val, (size_t)n); break;
    case 4: {
        uint32_t v, *d = dst;
        memcpy(&v, val, 4);
        for (int64_t i = 0; i < n; i++)
            d[i] = v;
        break;
    }
    case 8: {
        uint64_t v, *d = dst;
        memcpy(&v, val, 8);
        for (int64_t i = 0; i < n; i++)
            d[i] = v;
        break;
    }
    default:
        for (int64_t i = 0; i < n; i++)
            memcpy((char *)dst + (size_t)i * esz, val, esz);
        break;
    }
}

/* dst[j] = idx[j] < 0 ? *val : src[idx[j]] for j < n (elements of esz bytes). */
#define LAY_GATHER(T)                                                                              \
    {                                                                                              \
        const T *s = src;                                                                          \
        T *d = dst, v;                                                                             \
        memcpy(&v, val, sizeof(T));                                                                \
        for (int64_t j = 0; j < n; j++)                                                            \
            d[j] = idx[j] < 0 ? v : s[idx[j]];                                                     \
    }

static void lay_gather(void *dst, const void *src, const int64_t *idx, int64_t n, size_t esz,
                       const void *val)
{
    switch (esz) {
    case 1: LAY_GATHER(uint8_t) break;
    case 4: LAY_GATHER(uint32_t) break;
    case 8: LAY_GATHER(uint64_t) break;
    default:
        for (int64_t j = 0; j < n; j++)
            memcpy((char *)dst + (size_t)j * esz,
                   idx[j] < 0 ? val : (const char *)src + (size_t)idx[j] * esz, esz);
        break;
    }
}

/* One element of dtype dt holding the double v (saturating for integers; "" for strings). */
union lay_scalar {
    float f32;
    double f64;
    int64_t i64;
    int32_t i32;
    int8_t i8;
    uint8_t u8;
    const char *str;
};

static void lay_scalar_from_double(enum vg_dtype dt, double v, union lay_scalar *s)
{
    memset(s, 0, sizeof(*s));
    switch (dt) {
    case VG_DT_FLOAT: s->f32 = (float)v; break;
    case VG_DT_DOUBLE: s->f64 = v; break;
    case VG_DT_INT64: s->i64 = vg_sat_i64(v); break;
    case VG_DT_INT32: s->i32 = vg_sat_i32(v); break;
    case VG_DT_INT8: s->i8 = vg_sat_i8(v); break;
    case VG_DT_UINT8: s->u8 = vg_sat_u8(v); break;
    case VG_DT_BOOL: s->u8 = v != 0; break;
    case VG_DT_STRING: s->str = ""; break;
    default: break;
    }
}

/* ---- Pad ------------------------------------------------------------------------------------- */

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

static int pad_mode(struct vg_kctx *c, int *mode)
{
    static const char *const names[] = {"constant", "reflect", "edge", "wrap", NULL};
    const char *s;
    int rc = vg_kattr_s(c, "mode", "constant", &s);
    if (rc)
        return rc;
    *mode = lay_pick(s, names);
    if (*mode < 0)
        return vg_kerr(c, VG_EUNSUPPORTED, "mode '%s' is not one of constant, reflect, edge%s", s,
                       c->node->opset >= 19 ? ", wrap" : "");
    if (*mode == PAD_WRAP && c->node->opset < 19)
        return vg_kerr(c, VG_EUNSUPPORTED, "mode 'wrap' needs opset 19 (model imports %lld)",
                       (long long)c->node->opset);
    return 0;
}

/*
 * The begin/end pads for every axis of a rank-`rank` input, from the attribute or the inputs.
 * rank < 0 (init, rank unknown): only validates what is known. -VG_EDYNAMIC when the pads input's
 * value is unknown.
 */
static int pad_read(struct vg_kctx *c, int rank, int64_t *b, int64_t *e)
{
    int64_t v[2 * VG_MAX_RANK], axes[VG_MAX_RANK];
    int n = 0, naxes = -1, rc;

    if (c->node->opset < 11) {
        const char *name = c->node->opset < 2 ? "paddings" : "pads";
        int present;
        if ((rc = vg_kattr_ints(c, name, v, 2 * VG_MAX_RANK, &n, &present)))
            return rc;
        if (!present)
            return vg_kerr(c, VG_EINVAL, "attribute '%s' is required", name);
    } else {
        const struct vg_tensor *t = vg_kctx_value(c, 1);
        if (!t)
            return rank < 0 ? 0 : -VG_EDYNAMIC;
        if (t->dtype != VG_DT_INT64)
            return vg_kerr(c, VG_ETYPE, "pads must be int64, got %s", vg_dtype_name(t->dtype));
        if ((rc = vg_kread_ints(c, t, "pads", v, 2 * VG_MAX_RANK, &n)))
            return rc;
        if (c->node->opset >= 18 && c->n_in > 3 && c->in[3]) {
            const struct vg_tensor *at = vg_kctx_value(c, 3);
            if (!at)
                return rank < 0 ? 0 : -VG_EDYNAMIC;
            if ((rc = vg_kread_ints(c, at, "axes", axes, VG_MAX_RANK, &naxes)))
                return rc;
        }
    }
    if (n % 2)
        return vg_kerr(c, VG_EINVAL, "pads has %d values, an odd count", n);
    if (naxes >= 0 && n != 2 * naxes)
        return vg_kerr(c, VG_ESHAPE, "pads has %d values for %d axes (needs twice as many)", n,
                       naxes);
    if (rank < 0)
        return 0;
    for (int i = 0; i < rank; i++)
        b[i] = e[i] = 0;
    if (naxes < 0) {
        if (n != 2 * rank)
            return vg_kerr(c, VG_ESHAPE, "pads has %d values, the input has rank %d (needs %d)", n,
                           rank, 2 * rank);
        for (int i = 0; i < rank; i++) {
            b[i] = v[i];
            e[i] = v[rank + i];
        }
        return 0;
    }
    unsigned seen = 0;
    for (int i = 0; i < naxes; i++) {
        int a = vg_norm_axis(axes[i], rank);
        if (a < 0)
            return vg_kerr(c, VG_ESHAPE, "axes[%d] = %lld is out of range for rank %d", i,
                           (long long)axes[i], rank);
        if (seen & (1u << a))
            return vg_kerr(c, VG_EINVAL, "axis %d is listed twice in axes", a);
        seen |= 1u << a;
        b[a] = v[i];
        e[a] = v[naxes + i];
    }
    return 0;
}

static int pad_init(struct vg_kctx *c)
{
    int mode, rc;
    int max_in = c->node->opset < 11 ? 1 : c->node->opset < 18 ? 3 : 4;
    if (c->n_in > max_in)
        return vg_kerr(c, VG_EGRAPH, "takes at most %d inputs at opset %lld, node lists %d", max_in,
                       (long long)c->node->opset, c->n_in);
    if ((rc = vg_kctx_need_inputs(c, c->node->opset < 11 ? 1 : 2)))
        return rc;
    if ((rc = lay_check_dtype(c, c->in[0]->dtype)) || (rc = pad_mode(c, &mode)))
        return rc;
    if (c->node->opset >= 11) {
        if (c->in[1]->dtype != VG_DT_INT64)
            return vg_kerr(c, VG_ETYPE, "pads must be int64, got %s",
                           vg_dtype_name(c->in[1]->dtype));
        if (c->n_in > 2 && c->in[2] && c->in[2]->dtype != c->in[0]->dtype)
            return vg_kerr(c, VG_ETYPE, "constant_value has type %s, data has %s",
                           vg_dtype_name(c->in[2]->dtype), vg_dtype_name(c->in[0]->dtype));
        if (c->n_in > 3 && c->in[3] && c->in[3]->dtype != VG_DT_INT64 &&
            c->in[3]->dtype != VG_DT_INT32)
            return vg_kerr(c, VG_ETYPE, "axes must be int32 or int64, got %s",
                           vg_dtype_name(c->in[3]->dtype));
    } else {
        float f;
        if ((rc = vg_kattr_f(c, "value", 0.0f, &f)))
            return rc;
    }
    if ((rc = pad_read(c, -1, NULL, NULL)))
        return rc;
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

/* Checks the pads against the input and computes the output dims. */
static int pad_shape(struct vg_kctx *c, const int64_t *b, const int64_t *e, int mode,
                     int64_t *odims)
{
    static const char *const names[] = {"constant", "reflect", "edge", "wrap"};
    const struct vg_tensor *x = c->in[0];
    for (int i = 0; i < x->rank; i++) {
        int64_t n = x->dims[i];
        int64_t kept = n + (b[i] < 0 ? b[i] : 0) + (e[i] < 0 ? e[i] : 0);
        if (kept < 0)
            return vg_kerr(c, VG_ESHAPE, "axis %d: pads %lld, %lld crop more than its %lld values",
                           i, (long long)b[i], (long long)e[i], (long long)n);
        int64_t pb = b[i] > 0 ? b[i] : 0, pe = e[i] > 0 ? e[i] : 0;
        if (mode != PAD_CONSTANT && (pb > 0 || pe > 0)) {
            if (kept == 0)
                return vg_kerr(c, VG_ESHAPE, "axis %d: %s padding of an empty axis", i,
                               names[mode]);
            if (mode == PAD_REFLECT && (pb >= kept || pe >= kept))
                return vg_kerr(c, VG_ESHAPE,
                               "axis %d: reflect pads %lld, %lld must be smaller than the axis "
                               "length %lld",
                               i, (long long)pb, (long long)pe, (long long)kept);
        }
        odims[i] = kept + pb + pe;
    }
    return 0;
}

static int pad_infer(struct vg_kctx *c)
{
    int64_t b[VG_MAX_RANK], e[VG_MAX_RANK], od[VG_MAX_RANK];
    int mode, rc;
    if ((rc = pad_mode(c, &mode)) || (rc = pad_read(c, c->in[0]->rank, b, e)) ||
        (rc = pad_shape(c, b, e, mode, od)))
        return rc;
    if (c->node->opset >= 11 && c->n_in > 2 && c->in[2] && vg_tensor_numel(c->in[2]) > 1)
        return vg_kerr(c, VG_ESHAPE, "constant_value must hold one value, has %lld",
                       (long long)vg_tensor_numel(c->in[2]));
    if ((rc = vg_set_out_shape(c, c->out[0], c->in[0]->rank, od)))
        return rc;
    int64_t total = 0;
    for (int i = 0; i < c->in[0]->rank; i++)
        total += od[i];
    c->scratch_bytes = sizeof(int64_t) * (size_t)total;
    return 0;
}

/* Source index on an axis of n values for padded position i in kept coordinates (or -1). */
static int64_t pad_src(int mode, int64_t i, int64_t kept)
{
    if (i >= 0 && i < kept)
        return i;
    switch (mode) {
    case PAD_EDGE: return i < 0 ? 0 : kept - 1;
    case PAD_REFLECT: return i < 0 ? -i : 2 * (kept - 1) - i;
    case PAD_WRAP: return ((i % kept) + kept) % kept;
    default: return -1;
    }
}

static int pad_run(struct vg_kctx *c)
{
    const struct vg_tensor *x = c->in[0];
    struct vg_tensor *y = c->out[0];
    int64_t b[VG_MAX_RANK], e[VG_MAX_RANK], od[VG_MAX_RANK], ist[VG_MAX_RANK];
    int64_t moff[VG_MAX_RANK] = {0}; /* each axis's map, as an offset into scratch */
    int mode, rc, r = x->rank;
    size_t esz = vg_dtype_size(x->dtype);
    union lay_scalar cval;

    if ((rc = pad_mode(c, &mode)) || (rc = pad_read(c, r, b, e)) ||
        (rc = pad_shape(c, b, e, mode, od)))
        return rc;
    int64_t total = vg_tensor_numel(y);
    if (total == 0)
        return 0;
    if (c->node->opset < 11)
        lay_scalar_from_double(x->dtype, vg_attr_f(c->node, "value", 0.0f), &cval);
    else if (c->n_in > 2 && c->in[2] && vg_tensor_numel(c->in[2]) == 1)
        memcpy(&cval, c->in[2]->data, esz);
    else
        lay_scalar_from_double(x->dtype, 0.0, &cval);
    if (r == 0) {
        memcpy(y->data, x->data, esz);
        return 0;
    }

    /* Per axis, the input index of every output position (-1: constant). */
    int64_t *maps = c->scratch, used = 0;
    for (int k = 0; k < r; k++) {
        int64_t crop = b[k] < 0 ? -b[k] : 0, pb = b[k] > 0 ? b[k] : 0;
        int64_t kept = x->dims[k] - crop - (e[k] < 0 ? -e[k] : 0);
        moff[k] = used;
        for (int64_t o = 0; o < od[k]; o++) {
            int64_t s = pad_src(mode, o - pb, kept);
            maps[used + o] = s < 0 ? -1 : s + crop;
        }
        used += od[k];
    }
    const int64_t *last = maps + moff[r - 1];
    vg_contig_strides(x, ist);

    int64_t inner = od[r - 1], idx[VG_MAX_RANK] = {0};
    if (inner == 0) /* total > 0 rules it out; said for the analyser */
        return 0;
    int64_t rows = total / inner;
    int64_t pb_in = b[r - 1] > 0 ? b[r - 1] : 0;
    int64_t crop_in = b[r - 1] < 0 ? -b[r - 1] : 0;
    int64_t kept_in = x->dims[r - 1] - crop_in - (e[r - 1] < 0 ? -e[r - 1] : 0);
    const char *src = x->data;
    char *dst = y->data;
    for (int64_t row = 0; row < rows; row++, dst += (size_t)inner * esz) {
        int64_t off = 0;
        int outside = 0;
        for (int k = 0; k < r - 1; k++) {
            int64_t m = maps[moff[k] + idx[k]];
            outside |= m < 0;
            off += m * ist[k];
        }
        if (outside) {
            lay_fill(dst, &cval, esz, inner);
        } else {
            const char *s = src + (size_t)off * esz;
            /* Borders through the map, the kept middle in one copy. */
            lay_gather(dst, s, last, pb_in, esz, &cval);
            if (kept_in > 0)
                memcpy(dst + (size_t)pb_in * esz, s + (size_t)crop_in * esz, (size_t)kept_in * esz);
            int64_t tail = pb_in + kept_in;
            lay_gather(dst + (size_t)tail * esz, s, last + tail, inner - tail, esz, &cval);
        }
        for (int k = r - 2; k >= 0; k--) {
            if (++idx[k] < od[k])
                break;
            idx[k] = 0;
        }
    }
    return 0;
}

/* ---- Split ----------------------------------------------------------------------------------- */

/* The split sizes from the attribute or input, if any; *given = 0 when neither. */
static int split_sizes_given(struct vg_kctx *c, int64_t *v, int cap, int *n, int *given)
{
    int rc;
    *given = 0;
    *n = 0;
    if (c->node->opset >= 13 || (c->node->opset == 1 && c->n_in > 1 && c->in[1])) {
        if (c->n_in > 1 && c->in[1]) {
            const struct vg_tensor *t = vg_kctx_value(c, 1);
            if (!t)
                return c->phase == VG_PHASE_INIT ? 0 : -VG_EDYNAMIC;
            if ((rc = vg_kread_ints(c, t, "split", v, cap, n)))
                return rc;
            *given = *n > 0; /* an empty split tensor counts as absent */
        }
        if (c->node->opset >= 13)
            return 0;
    }
    if (!*given && c->node->opset < 13) {
        if ((rc = vg_kattr_ints(c, "split", v, cap, n, given)))
            return rc;
    }
    return 0;
}

enum { SPLIT_MAX_OUT = 1024 };

static int split_init(struct vg_kctx *c)
{
    int64_t v[SPLIT_MAX_OUT], axis, nout = 0;
    int n, given, rc;
    if (c->n_out > SPLIT_MAX_OUT)
        return vg_kerr(c, VG_EUNSUPPORTED, "more than %d outputs (%d)", SPLIT_MAX_OUT, c->n_out);
    if (c->n_in > 2 || (c->n_in > 1 && c->in[1] && c->node->opset >= 2 && c->node->opset < 13))
        return vg_kerr(c, VG_EGRAPH, "takes one input at opset %lld, node lists %d",
                       (long long)c->node->opset, c->n_in);
    if ((rc = lay_check_dtype(c, c->in[0]->dtype)) || (rc = vg_kattr_i(c, "axis", 0, &axis)))
        return rc;
    if (c->node->opset < 11 && axis < 0)
        return vg_kerr(c, VG_EINVAL, "axis %lld is negative; opset %lld allows only 0..rank-1",
                       (long long)axis, (long long)c->node->opset);
    if (c->node->opset >= 18 && (rc = vg_kattr_i(c, "num_outputs", 0, &nout)))
        return rc;
    if ((rc = split_sizes_given(c, v, SPLIT_MAX_OUT, &n, &given)))
        return rc;
    if (nout && given)
        return vg_kerr(c, VG_EINVAL, "num_outputs and split are both given");
    if (nout && nout != c->n_out)
        return vg_kerr(c, VG_EGRAPH, "num_outputs is %lld, node lists %d outputs", (long long)nout,
                       c->n_out);
    if (given && n != c->n_out)
        return vg_kerr(c, VG_EINVAL, "split has %d sizes, node lists %d outputs", n, c->n_out);
    for (int i = 0; given && i < n; i++)
        if (v[i] < 0)
            return vg_kerr(c, VG_EINVAL, "split[%d] = %lld is negative", i, (long long)v[i]);
    for (int i = 0; i < c->n_out; i++)
        if (c->out[i])
            c->out[i]->dtype = c->in[0]->dtype;
    return 0;
}

/* Sizes along the axis for every output; *axis_out gets the normalised axis. */
static int split_plan(struct vg_kctx *c, int64_t *sizes, int *axis_out)
{
    const struct vg_tensor *x = c->in[0];
    int64_t axis = vg_attr_i(c->node, "axis", 0);
    int a = vg_norm_axis(axis, x->rank), n, given, rc;
    if (a < 0)
        return vg_kerr(c, VG_ESHAPE, "axis %lld is out of range for rank %d", (long long)axis,
                       x->rank);
    if ((rc = split_sizes_given(c, sizes, SPLIT_MAX_OUT, &n, &given)))
        return rc;
    int64_t dim = x->dims[a], sum = 0;
    int k = c->n_out;
    if (given) {
        for (int i = 0; i < n; i++)
            sum += sizes[i];
        if (sum != dim)
            return vg_kerr(c, VG_ESHAPE, "split sizes add up to %lld, axis %d has %lld",
                           (long long)sum, a, (long long)dim);
    } else if (c->node->opset >= 18 && vg_attr_find(c->node, "num_outputs")) {
        int64_t part = (dim + k - 1) / k;
        for (int i = 0; i < k; i++) {
            int64_t left = dim - part * i;
            sizes[i] = left < 0 ? 0 : left < part ? left : part;
        }
    } else {
        if (dim % k)
            return vg_kerr(c, VG_ESHAPE,
                           "axis %d has %lld values, which do not split into %d equal parts", a,
                           (long long)dim, k);
        for (int i = 0; i < k; i++)
            sizes[i] = dim / k;
    }
    *axis_out = a;
    return 0;
}

static int split_infer(struct vg_kctx *c)
{
    int64_t sizes[SPLIT_MAX_OUT], d[VG_MAX_RANK];
    int a, rc;
    if ((rc = split_plan(c, sizes, &a)))
        return rc;
    memcpy(d, c->in[0]->dims, sizeof(d));
    for (int i = 0; i < c->n_out; i++) {
        if (!c->out[i])
            continue;
        d[a] = sizes[i];
        if ((rc = vg_set_out_shape(c, c->out[i], c->in[0]->rank, d)))
            return rc;
    }
    return 0;
}

static int split_run(struct vg_kctx *c)
{
    int64_t sizes[SPLIT_MAX_OUT];
    int a, rc;
    if ((rc = split_plan(c, sizes, &a)))
        return rc;
    const struct vg_tensor *x = c->in[0];
    size_t esz = vg_dtype_size(x->dtype);
    int64_t outer = lay_prod(x->dims, 0, a), inner = lay_prod(x->dims, a + 1, x->rank);
    size_t in_row = (size_t)(x->dims[a] * inner) * esz;
    size_t off = 0;
    for (int i = 0; i < c->n_out; i++) {
        size_t part = (size_t)(sizes[i] * inner) * esz;
        if (c->out[i] && part > 0) {
            const char *s = (const char *)x->data + off;
            char *d = c->out[i]->data;
            for (int64_t o = 0; o < outer; o++)
                memcpy(d + (size_t)o * part, s + (size_t)o * in_row, part);
        }
        off += part;
    }
    return 0;
}

/* ---- Tile ------------------------------------------------------------------------------------ */

static int tile_init(struct vg_kctx *c)
{
    int rc = vg_kctx_need_inputs(c, c->node->opset < 6 ? 3 : 2);
    if (rc)
        return rc;
    if (c->n_in != (c->node->opset < 6 ? 3 : 2))
        return vg_kerr(c, VG_EGRAPH, "takes %d inputs at opset %lld, node lists %d",
                       c->node->opset < 6 ? 3 : 2, (long long)c->node->opset, c->n_in);
    if ((rc = lay_check_dtype(c, c->in[0]->dtype)))
        return rc;
    for (int i = 1; i < c->n_in; i++)
        if (c->in[i]->dtype != VG_DT_INT64 && c->in[i]->dtype != VG_DT_INT32)
            return vg_kerr(c, VG_ETYPE, "input %d must be int64, got %s", i,
                           vg_dtype_name(c->in[i]->dtype));
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

/* Repeats per axis. */
static int tile_repeats(struct vg_kctx *c, int64_t *rep)
{
    const struct vg_tensor *x = c->in[0];
    int r = x->rank, n, rc;
    if (c->node->opset < 6) {
        const struct vg_tensor *t = vg_kctx_value(c, 1), *at = vg_kctx_value(c, 2);
        if (!t || !at)
            return -VG_EDYNAMIC;
        if (vg_tensor_numel(t) != 1 || vg_tensor_numel(at) != 1)
            return vg_kerr(c, VG_ESHAPE, "tiles and axis must be scalars");
        int a = vg_norm_axis(vg_tensor_get_i64(at, 0), r);
        if (a < 0)
            return vg_kerr(c, VG_ESHAPE, "axis %lld is out of range for rank %d",
                           (long long)vg_tensor_get_i64(at, 0), r);
        for (int i = 0; i < r; i++)
            rep[i] = 1;
        rep[a] = vg_tensor_get_i64(t, 0);
    } else {
        const struct vg_tensor *t = vg_kctx_value(c, 1);
        if (!t)
            return -VG_EDYNAMIC;
        if ((rc = vg_kread_ints(c, t, "repeats", rep, VG_MAX_RANK, &n)))
            return rc;
        if (n != r)
            return vg_kerr(c, VG_ESHAPE, "repeats has %d values, the input has rank %d", n, r);
    }
    for (int i = 0; i < r; i++)
        if (rep[i] < 0)
            return vg_kerr(c, VG_ESHAPE, "repeats[%d] = %lld is negative", i, (long long)rep[i]);
    return 0;
}

static int tile_infer(struct vg_kctx *c)
{
    int64_t rep[VG_MAX_RANK], d[VG_MAX_RANK];
    const struct vg_tensor *x = c->in[0];
    int rc = tile_repeats(c, rep);
    if (rc)
        return rc;
    for (int i = 0; i < x->rank; i++) {
        if (rep[i] > 0 && x->dims[i] > INT64_MAX / rep[i])
            return vg_kerr(c, VG_ENOMEM, "output shape exceeds the tensor size cap");
        d[i] = x->dims[i] * rep[i];
    }
    return vg_set_out_shape(c, c->out[0], x->rank, d);
}

/*
 * Input rows go to their place in the output, each repeated along the last axis; then, from the
 * innermost axis out, every finished block of axis k (its input extent times the output stride)
 * is copied rep[k] - 1 more times right after itself. Copies are whole blocks, so large repeats
 * are a few big memcpy calls.
 */
static int tile_run(struct vg_kctx *c)
{
    const struct vg_tensor *x = c->in[0];
    struct vg_tensor *y = c->out[0];
    int64_t rep[VG_MAX_RANK], ost[VG_MAX_RANK], idx[VG_MAX_RANK] = {0};
    int rc = tile_repeats(c, rep), r = x->rank;
    if (rc)
        return rc;
    size_t esz = vg_dtype_size(x->dtype);
    if (vg_tensor_numel(y) == 0)
        return 0;
    if (r == 0) {
        memcpy(y->data, x->data, esz);
        return 0;
    }
    vg_contig_strides(y, ost);
    const int64_t *d = x->dims;
    const char *src = x->data;
    char *out = y->data;
    size_t row = (size_t)d[r - 1] * esz;
    int64_t rows = lay_prod(d, 0, r - 1);
    for (int64_t i = 0; i < rows; i++, src += row) {
        int64_t off = 0;
        for (int k = 0; k < r - 1; k++)
            off += idx[k] * ost[k];
        char *dst = out + (size_t)off * esz;
        for (int64_t t = 0; t < rep[r - 1]; t++)
            memcpy(dst + (size_t)t * row, src, row);
        for (int k = r - 2; k >= 0; k--) {
            if (++idx[k] < d[k])
                break;
            idx[k] = 0;
        }
    }
    for (int k = r - 2; k >= 0; k--) {
        size_t blk = (size_t)(d[k] * ost[k]) * esz;
        int64_t n = lay_prod(d, 0, k);
        memset(idx, 0, sizeof(idx));
        for (int64_t i = 0; i < n; i++) {
            int64_t off = 0;
            for (int j = 0; j < k; j++)
                off += idx[j] * ost[j];
            char *dst = out + (size_t)off * esz;
            for (int64_t t = 1; t < rep[k]; t++)
                memcpy(dst + (size_t)t * blk, dst, blk);
            for (int j = k - 1; j >= 0; j--) {
                if (++idx[j] < d[j])
                    break;
                idx[j] = 0;
            }
        }
    }
    return 0;
}

/* ---- DepthToSpace, SpaceToDepth -------------------------------------------------------------- */

static int d2s_init(struct vg_kctx *c)
{
    int64_t bs;
    int rc;
    if ((rc = lay_check_dtype(c, c->in[0]->dtype)) || (rc = vg_kattr_i(c, "blocksize", 0, &bs)))
        return rc;
    if (!vg_attr_find(c->node, "blocksize"))
        return vg_kerr(c, VG_EINVAL, "attribute 'blocksize' is required");
    if (bs < 1 || bs > 65536)
        return vg_kerr(c, VG_EINVAL, "blocksize %lld is out of range", (long long)bs);
    if (strcmp(c->node->op_type, "DepthToSpace") == 0) {
        const char *m;
        if ((rc = vg_kattr_s(c, "mode", "DCR", &m)))
            return rc;
        if (strcmp(m, "DCR") != 0 && (strcmp(m, "CRD") != 0 || c->node->opset < 11))
            return vg_kerr(c, VG_EUNSUPPORTED, "mode '%s' is not %s", m,
                           c->node->opset < 11 ? "DCR (opset < 11)" : "DCR or CRD");
    }
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

static int d2s_check_rank(struct vg_kctx *c)
{
    if (c->in[0]->rank != 4) {
        char s[160];
        vg_shape_str(c->in[0], s, sizeof(s));
        return vg_kerr(c, VG_ESHAPE, "input must be 4-D [N, C, H, W], got %s", s);
    }
    return 0;
}

static int d2s_infer(struct vg_kctx *c)
{
    const int64_t *d = c->in[0]->dims;
    int64_t b = vg_attr_i(c->node, "blocksize", 1), od[4];
    int rc = d2s_check_rank(c);
    if (rc)
        return rc;
    if (d[1] % (b * b))
        return vg_kerr(c, VG_ESHAPE, "%lld channels do not divide by blocksize^2 = %lld",
                       (long long)d[1], (long long)b * b);
    od[0] = d[0];
    od[1] = d[1] / (b * b);
    od[2] = d[2] * b;
    od[3] = d[3] * b;
    return vg_set_out_shape(c, c->out[0], 4, od);
}

static int s2d_infer(struct vg_kctx *c)
{
    const int64_t *d = c->in[0]->dims;
    int64_t b = vg_attr_i(c->node, "blocksize", 1), od[4];
    int rc = d2s_check_rank(c);
    if (rc)
        return rc;
    if (d[2] % b || d[3] % b)
        return vg_kerr(c, VG_ESHAPE, "height %lld and width %lld must divide by blocksize %lld",
                       (long long)d[2], (long long)d[3], (long long)b);
    if (d[1] > INT64_MAX / (b * b))
        return vg_kerr(c, VG_ENOMEM, "output shape exceeds the tensor size cap");
    od[0] = d[0];
    od[1] = d[1] * b * b;
    od[2] = d[2] / b;
    od[3] = d[3] / b;
    return vg_set_out_shape(c, c->out[0], 4, od);
}

/* dst[w * step] = src[w] for w < n, elements of esz bytes (and the reverse with `gather`). */
#define LAY_STRIDED(T)                                                                             \
    {                                                                                              \
        T *d_ = dst;                                                                               \
        const T *s_ = src;                                                                         \
        if (gather)                                                                                \
            for (int64_t w = 0; w < n; w++)                                                        \
                d_[w] = s_[w * step];                                                              \
        else                                                                                       \
            for (int64_t w = 0; w < n; w++)                                                        \
                d_[w * step] = s_[w];                                                              \
    }

static void lay_strided(void *dst, const void *src, int64_t n, int64_t step, size_t esz, int gather)
{
    switch (esz) {
    case 1: LAY_STRIDED(uint8_t) break;
    case 4: LAY_STRIDED(uint32_t) break;
    case 8: LAY_STRIDED(uint64_t) break;
    default:
        for (int64_t w = 0; w < n; w++) {
            if (gather)
                memcpy((char *)dst + (size_t)w * esz, (const char *)src + (size_t)(w * step) * esz,
                       esz);
            else
                memcpy((char *)dst + (size_t)(w * step) * esz, (const char *)src + (size_t)w * esz,
                       esz);
        }
        break;
    }
}

/*
 * DepthToSpace: out[n, c, h*b + i, w*b + j] = in[n, ch(c, i, j), h, w] with ch = (i*b + j)*C' + c
 * (DCR) or c*b*b + i*b + j (CRD). SpaceToDepth is the inverse with the DCR order.
 */
static void d2s_move(const struct vg_tensor *big, const struct vg_tensor *small, int64_t b, int crd,
                     int to_space, size_t esz)
{
    /* `small` is the deep tensor [N, C'*b*b, H, W]; `big` is [N, C', H*b, W*b]. */
    int64_t N = big->dims[0], C = big->dims[1], H = small->dims[2], W = small->dims[3];
    char *bp = big->data, *sp = small->data;
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t i = 0; i < b; i++)
                for (int64_t j = 0; j < b; j++) {
                    int64_t sc = crd ? ch * b * b + i * b + j : (i * b + j) * C + ch;
                    for (int64_t h = 0; h < H; h++) {
                        char *row =
                            bp + (size_t)((((n * C + ch) * H + h) * b + i) * W * b + j) * esz;
                        char *srow = sp + (size_t)(((n * C * b * b + sc) * H + h) * W) * esz;
                        if (to_space)
                            lay_strided(row, srow, W, b, esz, 0);
                        else
                            lay_strided(srow, row, W, b, esz, 1);
                    }
                }
}

static int d2s_run(struct vg_kctx *c)
{
    const char *m = vg_attr_s(c->node, "mode", "DCR");
    if (vg_tensor_numel(c->out[0]) == 0)
        return 0;
    d2s_move(c->out[0], c->in[0], vg_attr_i(c->node, "blocksize", 1), strcmp(m, "CRD") == 0, 1,
             vg_dtype_size(c->in[0]->dtype));
    return 0;
}

static int s2d_run(struct vg_kctx *c)
{
    if (vg_tensor_numel(c->out[0]) == 0)
        return 0;
    d2s_move(c->in[0], c->out[0], vg_attr_i(c->node, "blocksize", 1), 0, 0,
             vg_dtype_size(c->in[0]->dtype));
    return 0;
}

/* ---- Resize ---------------------------------------------------------------------------------- */

enum { RZ_NEAREST, RZ_LINEAR, RZ_CUBIC };
enum {
    RZ_HALF_PIXEL,
    RZ_PYTORCH_HALF_PIXEL,
    RZ_ALIGN_CORNERS,
    RZ_ASYMMETRIC,
    RZ_TF_HALF_PIXEL_FOR_NN,
    RZ_TF_CROP_AND_RESIZE,
};
enum { RZ_ROUND_PREFER_FLOOR, RZ_ROUND_PREFER_CEIL, RZ_FLOOR, RZ_CEIL };

struct rz_state {
    int mode, coord, nearest, exclude_outside;
    double cubic_a, extrapolation;
    int in_roi, in_scales, in_sizes; /* input positions; -1 when the opset has none */
};

/* Geometry of one plan: shapes, scales and crop box per axis. */
struct rz_geom {
    int rank;
    int64_t in[VG_MAX_RANK], out[VG_MAX_RANK];
    double scale[VG_MAX_RANK], width[VG_MAX_RANK]; /* width: input * scale, the reference's */
    double roi_lo[VG_MAX_RANK], roi_hi[VG_MAX_RANK];
};

static void rz_release(void *state)
{
    free(state);
}

static int rz_init(struct vg_kctx *c)
{
    static const char *const modes[] = {"nearest", "linear", "cubic", NULL};
    static const char *const coords[] = {"half_pixel", "pytorch_half_pixel",   "align_corners",
                                         "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize",
                                         NULL};
    static const char *const nearests[] = {"round_prefer_floor", "round_prefer_ceil", "floor",
                                           "ceil", NULL};
    int64_t opset = c->node->opset, iv;
    const char *s;
    float f;
    int rc;
    struct rz_state st = {.in_roi = -1, .in_scales = 1, .in_sizes = -1};

    if (opset >= 11) {
        st.in_roi = 1;
        st.in_scales = 2;
        st.in_sizes = 3;
    }
    int max_in = opset < 11 ? 2 : 4;
    if (c->n_in > max_in)
        return vg_kerr(c, VG_EGRAPH, "takes at most %d inputs at opset %lld, node lists %d", max_in,
                       (long long)opset, c->n_in);
    if ((rc = vg_kctx_need_inputs(c, 1)) || (rc = lay_check_dtype(c, c->in[0]->dtype)))
        return rc;
    if (opset < 13 && (c->n_in <= st.in_scales || !c->in[st.in_scales]))
        return vg_kerr(c, VG_EGRAPH, "input 'scales' is required at opset %lld", (long long)opset);

    if ((rc = vg_kattr_s(c, "mode", "nearest", &s)))
        return rc;
    st.mode = lay_pick(s, modes);
    if (st.mode < 0 || (opset < 11 && st.mode == RZ_CUBIC))
        return vg_kerr(c, VG_EUNSUPPORTED, "mode '%s' is not one of nearest, linear%s", s,
                       opset < 11 ? "" : ", cubic");
    if (st.mode != RZ_NEAREST && c->in[0]->dtype != VG_DT_FLOAT && c->in[0]->dtype != VG_DT_DOUBLE)
        return vg_kerr(c, VG_EUNSUPPORTED, "mode '%s' needs float or double data, got %s", s,
                       vg_dtype_name(c->in[0]->dtype));
    if (opset < 11) {
        st.coord = RZ_ASYMMETRIC;
        st.nearest = RZ_FLOOR;
    } else {
        if ((rc = vg_kattr_s(c, "coordinate_transformation_mode", "half_pixel", &s)))
            return rc;
        st.coord = lay_pick(s, coords);
        if (st.coord < 0)
            return vg_kerr(c, VG_EUNSUPPORTED,
                           "coordinate_transformation_mode '%s' is not supported (half_pixel, "
                           "pytorch_half_pixel, align_corners, asymmetric, tf_half_pixel_for_nn, "
                           "tf_crop_and_resize)",
                           s);
        if ((rc = vg_kattr_s(c, "nearest_mode", "round_prefer_floor", &s)))
            return rc;
        st.nearest = lay_pick(s, nearests);
        if (st.nearest < 0)
            return vg_kerr(c, VG_EUNSUPPORTED,
                           "nearest_mode '%s' is not one of round_prefer_floor, "
                           "round_prefer_ceil, floor, ceil",
                           s);
        if ((rc = vg_kattr_f(c, "cubic_coeff_a", -0.75f, &f)))
            return rc;
        st.cubic_a = f;
        if ((rc = vg_kattr_i(c, "exclude_outside", 0, &iv)))
            return rc;
        if (iv != 0 && iv != 1)
            return vg_kerr(c, VG_EINVAL, "exclude_outside must be 0 or 1, got %lld", (long long)iv);
        st.exclude_outside = (int)iv;
        if ((rc = vg_kattr_f(c, "extrapolation_value", 0.0f, &f)))
            return rc;
        st.extrapolation = f;
    }
    /* Opset 18+ attributes this file does not implement. */
    if ((rc = vg_kattr_i(c, "antialias", 0, &iv)))
        return rc;
    if (iv != 0)
        return vg_kerr(c, VG_EUNSUPPORTED, "antialias (opset 18) is not supported");
    if (vg_attr_find(c->node, "axes"))
        return vg_kerr(c, VG_EUNSUPPORTED, "the axes attribute (opset 18) is not supported");
    if ((rc = vg_kattr_s(c, "keep_aspect_ratio_policy", "stretch", &s)))
        return rc;
    if (strcmp(s, "stretch") != 0)
        return vg_kerr(c, VG_EUNSUPPORTED,
                       "keep_aspect_ratio_policy '%s' (opset 18) is not supported", s);

    /* Inputs: types, and what constants already tell. */
    const struct vg_tensor *sc = c->n_in > st.in_scales ? c->in[st.in_scales] : NULL;
    const struct vg_tensor *sz =
        st.in_sizes >= 0 && c->n_in > st.in_sizes ? c->in[st.in_sizes] : NULL;
    const struct vg_tensor *roi = st.in_roi >= 0 && c->n_in > st.in_roi ? c->in[st.in_roi] : NULL;
    if (sc && sc->dtype != VG_DT_FLOAT)
        return vg_kerr(c, VG_ETYPE, "scales must be float, got %s", vg_dtype_name(sc->dtype));
    if (sz && sz->dtype != VG_DT_INT64)
        return vg_kerr(c, VG_ETYPE, "sizes must be int64, got %s", vg_dtype_name(sz->dtype));
    if (roi && roi->dtype != VG_DT_FLOAT && roi->dtype != VG_DT_DOUBLE)
        return vg_kerr(c, VG_ETYPE, "roi must be float or double, got %s",
                       vg_dtype_name(roi->dtype));
    if (!sc && !sz)
        return vg_kerr(c, VG_EGRAPH, "one of 'scales' and 'sizes' must be given");
    if (sc && sz && sc->data && sz->data && vg_tensor_numel(sc) > 0 && vg_tensor_numel(sz) > 0)
        return vg_kerr(c, VG_EINVAL, "'scales' and 'sizes' are both given; only one may be");
    if (sc && !sz && sc->data && vg_tensor_numel(sc) == 0)
        return vg_kerr(c, VG_EINVAL, "'scales' is empty and 'sizes' is not given");
    if (sc && sc->data)
        for (int64_t i = 0; i < vg_tensor_numel(sc); i++) {
            float v = ((const float *)sc->data)[i];
            if (!(v > 0) || isinf(v))
                return vg_kerr(c, VG_EINVAL, "scales[%lld] = %g must be positive and finite",
                               (long long)i, (double)v);
        }
    if (st.coord == RZ_TF_CROP_AND_RESIZE && !roi)
        return vg_kerr(c, VG_EGRAPH, "tf_crop_and_resize needs the 'roi' input");

    struct rz_state *p = malloc(sizeof(*p));
    if (!p)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    *p = st;
    c->state = p;
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

/* Shapes, scales and roi for the current input shape; -VG_EDYNAMIC when a value is unknown. */
static int rz_geometry(struct vg_kctx *c, struct rz_geom *g)
{
    const struct rz_state *s = c->state;
    const struct vg_tensor *x = c->in[0], *sc = NULL, *sz = NULL;
    int r = x->rank;

    g->rank = r;
    if (c->n_in > s->in_scales && c->in[s->in_scales]) {
        if (!(sc = vg_kctx_value(c, s->in_scales)))
            return -VG_EDYNAMIC;
        if (vg_tensor_numel(sc) == 0)
            sc = NULL;
    }
    if (s->in_sizes >= 0 && c->n_in > s->in_sizes && c->in[s->in_sizes]) {
        if (!(sz = vg_kctx_value(c, s->in_sizes)))
            return -VG_EDYNAMIC;
        if (vg_tensor_numel(sz) == 0)
            sz = NULL;
    }
    if (sc && sz)
        return vg_kerr(c, VG_EINVAL, "'scales' and 'sizes' are both given; only one may be");
    if (!sc && !sz)
        return vg_kerr(c, VG_EINVAL, "neither 'scales' nor 'sizes' has values");
    const struct vg_tensor *t = sc ? sc : sz;
    if (t->rank != 1 || t->dims[0] != r)
        return vg_kerr(c, VG_ESHAPE, "%s has %lld values, the input has rank %d",
                       sc ? "scales" : "sizes", (long long)vg_tensor_numel(t), r);
    for (int i = 0; i < r; i++) {
        int64_t in = x->dims[i];
        g->in[i] = in;
        if (sc) {
            float f = ((const float *)sc->data)[i];
            if (!(f > 0) || isinf(f))
                return vg_kerr(c, VG_EINVAL, "scales[%d] = %g must be positive and finite", i,
                               (double)f);
            g->scale[i] = f;
            double o = floor((double)in * g->scale[i]);
            if (o > 9.0e15)
                return vg_kerr(c, VG_ENOMEM, "output shape exceeds the tensor size cap");
            g->out[i] = (int64_t)o;
        } else {
            int64_t o = ((const int64_t *)sz->data)[i];
            if (o < 0)
                return vg_kerr(c, VG_ESHAPE, "sizes[%d] = %lld is negative", i, (long long)o);
            g->out[i] = o;
            g->scale[i] = in > 0 ? (double)o / (double)in : 1.0;
        }
        if (in == 0 && g->out[i] > 0)
            return vg_kerr(c, VG_ESHAPE, "axis %d is empty and cannot be resized to %lld", i,
                           (long long)g->out[i]);
        g->width[i] = sc ? (double)in * g->scale[i] : (double)g->out[i];
        g->roi_lo[i] = 0;
        g->roi_hi[i] = 1;
    }
    if (s->coord == RZ_TF_CROP_AND_RESIZE) {
        const struct vg_tensor *roi = vg_kctx_value(c, s->in_roi);
        if (!roi)
            return -VG_EDYNAMIC;
        if (vg_tensor_numel(roi) != 2 * r)
            return vg_kerr(c, VG_ESHAPE, "roi has %lld values, needs %d (2 x rank)",
                           (long long)vg_tensor_numel(roi), 2 * r);
        for (int i = 0; i < r; i++) {
            g->roi_lo[i] = vg_tensor_get_f64(roi, i);
            g->roi_hi[i] = vg_tensor_get_f64(roi, r + i);
        }
    }
    return 0;
}

/* Source coordinate of output position x on axis k; *oob set when it lies outside the crop. */
static double rz_coord(const struct rz_state *s, const struct rz_geom *g, int k, int64_t x,
                       int *oob)
{
    double xd = (double)x, sc = g->scale[k], in = (double)g->in[k], w = g->width[k];
    *oob = 0;
    switch (s->coord) {
    case RZ_HALF_PIXEL: return (xd + 0.5) / sc - 0.5;
    case RZ_PYTORCH_HALF_PIXEL: return g->out[k] > 1 ? (xd + 0.5) / sc - 0.5 : 0.0;
    case RZ_ALIGN_CORNERS: return w == 1.0 ? 0.0 : xd * (in - 1) / (w - 1);
    case RZ_ASYMMETRIC: return xd / sc;
    case RZ_TF_HALF_PIXEL_FOR_NN: return (xd + 0.5) / sc;
    default: {
        double lo = g->roi_lo[k], hi = g->roi_hi[k], v;
        if (w == 1.0)
            v = (hi - lo) * (in - 1) / 2;
        else
            v = xd * (hi - lo) * (in - 1) / (w - 1);
        v += lo * (in - 1);
        *oob = v < 0 || v > in - 1;
        return v;
    }
    }
}

static int64_t rz_clamp(int64_t i, int64_t n)
{
    return i < 0 ? 0 : i >= n ? n - 1 : i;
}

static int rz_taps(const struct rz_state *s)
{
    return s->mode == RZ_NEAREST ? 1 : s->mode == RZ_LINEAR ? 2 : 4;
}

/* Whether axis k maps every output position to the same input position (nothing to do). */
static int rz_identity(const struct rz_state *s, const struct rz_geom *g, int k)
{
    if (g->in[k] != g->out[k])
        return 0;
    for (int64_t x = 0; x < g->out[k]; x++) {
        int oob;
        if (rz_coord(s, g, k, x, &oob) != (double)x || oob)
            return 0;
    }
    return 1;
}

/* Where everything lives in scratch, for one geometry. */
struct rz_layout {
    int taps, nact, act[VG_MAX_RANK]; /* resized axes, ascending (linear and cubic) */
    size_t idx[VG_MAX_RANK], w[VG_MAX_RANK], oob[VG_MAX_RANK]; /* offsets per axis */
    size_t buf[2], buf_elems, total;
};

static void rz_layout(const struct rz_state *s, const struct rz_geom *g, size_t esz,
                      struct rz_layout *l)
{
    size_t off = 0;
    int r = g->rank;
    l->taps = rz_taps(s);
    l->nact = 0;
    for (int k = 0; k < r; k++) {
        size_t n = (size_t)g->out[k] * (size_t)l->taps;
        l->idx[k] = off;
        off += lay_align(n * sizeof(int64_t));
        l->w[k] = off;
        if (s->mode != RZ_NEAREST)
            off += lay_align(n * esz);
        l->oob[k] = off;
        off += lay_align((size_t)g->out[k]);
        if (s->mode != RZ_NEAREST && !rz_identity(s, g, k))
            l->act[l->nact++] = k;
    }
    /* Intermediates of the separable passes over one block [act[0], r). */
    l->buf_elems = 0;
    if (l->nact >= 2) {
        int64_t cur[VG_MAX_RANK];
        memcpy(cur, g->in, sizeof(cur));
        for (int p = l->nact - 1; p >= 1; p--) {
            cur[l->act[p]] = g->out[l->act[p]];
            size_t n = (size_t)lay_prod(cur, l->act[0], r);
            l->buf_elems = n > l->buf_elems ? n : l->buf_elems;
        }
    }
    l->buf[0] = off;
    if (l->nact >= 2)
        off += lay_align(l->buf_elems * esz);
    l->buf[1] = off;
    if (l->nact >= 3)
        off += lay_align(l->buf_elems * esz);
    l->total = off;
}

static int rz_infer(struct vg_kctx *c)
{
    struct rz_geom g;
    struct rz_layout l;
    int rc = rz_geometry(c, &g);
    if (rc)
        return rc;
    if ((rc = vg_set_out_shape(c, c->out[0], g.rank, g.out)))
        return rc;
    rz_layout(c->state, &g, vg_dtype_size(c->in[0]->dtype), &l);
    c->scratch_bytes = l.total;
    return 0;
}

/* Fills axis k's tables: source indices (clamped), weights, out-of-range flags. */
static void rz_table(const struct rz_state *s, const struct rz_geom *g, int k, int64_t *idx,
                     double *wd, float *wf, uint8_t *oob)
{
    int64_t n = g->in[k];
    for (int64_t x = 0; x < g->out[k]; x++) {
        int out;
        double v = rz_coord(s, g, k, x, &out);
        oob[x] = (uint8_t)out;
        if (s->mode == RZ_NEAREST) {
            double rv;
            switch (s->nearest) {
            case RZ_ROUND_PREFER_FLOOR: rv = ceil(v - 0.5); break;
            case RZ_ROUND_PREFER_CEIL: rv = floor(v + 0.5); break;
            case RZ_FLOOR: rv = floor(v); break;
            default: rv = ceil(v); break;
            }
            rv = rv < -1.0 ? -1.0 : rv > (double)n ? (double)n : rv;
            idx[x] = out ? -1 : rz_clamp((int64_t)rv, n);
            continue;
        }
        /* Taps start below the coordinate; an integer coordinate gets ratio 1 on its own tap. */
        double base = ceil(v) - 1;
        base = base < -4.0 ? -4.0 : base > (double)n + 4 ? (double)n + 4 : base;
        double t = v - base, w[4];
        int64_t f = (int64_t)base, first;
        int taps;
        if (s->mode == RZ_LINEAR) {
            w[0] = 1 - t;
            w[1] = t;
            first = f;
            taps = 2;
        } else {
            double a = s->cubic_a, u = 1 - t;
            w[0] = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a;
            w[1] = ((a + 2) * t - (a + 3)) * t * t + 1;
            w[2] = ((a + 2) * u - (a + 3)) * u * u + 1;
            w[3] = ((a * (u + 1) - 5 * a) * (u + 1) + 8 * a) * (u + 1) - 4 * a;
            first = f - 1;
            taps = 4;
        }
        if (s->exclude_outside) {
            double sum = 0;
            for (int j = 0; j < taps; j++) {
                int64_t i = first + j;
                if (i < 0 || i >= n)
                    w[j] = 0;
                sum += w[j];
            }
            for (int j = 0; j < taps; j++)
                w[j] = sum != 0 ? w[j] / sum : 0;
        }
        for (int j = 0; j < taps; j++) {
            idx[x * taps + j] = rz_clamp(first + j, n);
            double wj = out ? 0 : w[j];
            if (wd)
                wd[x * taps + j] = wj;
            else
                wf[x * taps + j] = (float)wj;
        }
    }
}

/*
 * One separable pass over axis of length lin -> lout in a [P, lin, Q] -> [P, lout, Q] tensor.
 * Q == 1: a gather and multiply-add over the taps; Q > 1: a weighted sum of whole rows.
 */
#define RZ_PASS(name, T)                                                                           \
    static void name(const T *src, T *dst, int64_t P, int64_t lin, int64_t lout, int64_t Q,        \
                     int taps, const int64_t *idx, const T *w, const uint8_t *oob, int any_oob,    \
                     T extrap)                                                                     \
    {                                                                                              \
        for (int64_t p = 0; p < P; p++) {                                                          \
            const T *s = src + p * lin * Q;                                                        \
            T *d = dst + p * lout * Q;                                                             \
            if (Q == 1) {                                                                          \
                if (taps == 2) {                                                                   \
                    LAY_IVDEP for (int64_t j = 0; j < lout; j++) d[j] =                            \
                        w[2 * j] * s[idx[2 * j]] + w[2 * j + 1] * s[idx[2 * j + 1]];               \
                } else {                                                                           \
                    LAY_IVDEP for (int64_t j = 0; j < lout; j++) d[j] =                            \
                        w[4 * j] * s[idx[4 * j]] + w[4 * j + 1] * s[idx[4 * j + 1]] +              \
                        w[4 * j + 2] * s[idx[4 * j + 2]] + w[4 * j + 3] * s[idx[4 * j + 3]];       \
                }                                                                                  \
                if (any_oob)                                                                       \
                    for (int64_t j = 0; j < lout; j++)                                             \
                        d[j] = oob[j] ? extrap : d[j];                                             \
                continue;                                                                          \
            }                                                                                      \
            for (int64_t j = 0; j < lout; j++, d += Q) {                                           \
                const int64_t *ix = idx + j * taps;                                                \
                const T *wj = w + j * taps;                                                        \
                if (oob[j]) {                                                                      \
                    for (int64_t q = 0; q < Q; q++)                                                \
                        d[q] = extrap;                                                             \
                } else if (taps == 2) {                                                            \
                    const T *s0 = s + ix[0] * Q, *s1 = s + ix[1] * Q;                              \
                    const T w0 = wj[0], w1 = wj[1];                                                \
                    LAY_IVDEP for (int64_t q = 0; q < Q; q++) d[q] = w0 * s0[q] + w1 * s1[q];      \
                } else {                                                                           \
                    const T *s0 = s + ix[0] * Q, *s1 = s + ix[1] * Q, *s2 = s + ix[2] * Q,         \
                            *s3 = s + ix[3] * Q;                                                   \
                    const T w0 = wj[0], w1 = wj[1], w2 = wj[2], w3 = wj[3];                        \
                    LAY_IVDEP for (int64_t q = 0; q < Q; q++) d[q] =                               \
                        w0 * s0[q] + w1 * s1[q] + w2 * s2[q] + w3 * s3[q];                         \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

RZ_PASS(rz_pass_f32, float)
RZ_PASS(rz_pass_f64, double)

/* Nearest: every output row is a gather from one input row (or the extrapolation value). */
static void rz_nearest(const struct vg_tensor *x, struct vg_tensor *y, const char *sp,
                       const struct rz_layout *l, const void *extrap)
{
    int r = x->rank;
    size_t esz = vg_dtype_size(x->dtype);
    int64_t ist[VG_MAX_RANK], pos[VG_MAX_RANK] = {0};
    if (r == 0) {
        memcpy(y->data, x->data, esz);
        return;
    }
    vg_contig_strides(x, ist);
    int64_t inner = y->dims[r - 1], prev = -2;
    if (inner == 0)
        return;
    int64_t rows = vg_tensor_numel(y) / inner;
    const char *src = x->data;
    char *dst = y->data;
    for (int64_t row = 0; row < rows; row++, dst += (size_t)inner * esz) {
        int64_t off = 0;
        for (int k = 0; k < r - 1; k++) {
            int64_t m = ((const int64_t *)(sp + l->idx[k]))[pos[k]];
            if (m < 0) {
                off = -1;
                break;
            }
            off += m * ist[k];
        }
        if (off < 0)
            lay_fill(dst, extrap, esz, inner);
        else if (off == prev)
            memcpy(dst, dst - (size_t)inner * esz, (size_t)inner * esz);
        else
            lay_gather(dst, src + (size_t)off * esz, (const int64_t *)(sp + l->idx[r - 1]), inner,
                       esz, extrap);
        prev = off;
        for (int k = r - 2; k >= 0; k--) {
            if (++pos[k] < y->dims[k])
                break;
            pos[k] = 0;
        }
    }
}

static int rz_run(struct vg_kctx *c)
{
    const struct rz_state *s = c->state;
    const struct vg_tensor *x = c->in[0];
    struct vg_tensor *y = c->out[0];
    struct rz_geom g;
    struct rz_layout l;
    int rc = rz_geometry(c, &g);
    if (rc)
        return rc;
    if (vg_tensor_numel(y) == 0)
        return 0;
    size_t esz = vg_dtype_size(x->dtype);
    int f32 = x->dtype == VG_DT_FLOAT, r = g.rank;
    rz_layout(s, &g, esz, &l);
    if (l.total > c->scratch_bytes)
        return vg_kerr(c, VG_EINVAL, "internal: resize scratch is too small");
    char *sp = c->scratch;
    int any_oob[VG_MAX_RANK] = {0};
    for (int k = 0; k < r; k++) {
        int64_t *idx = (int64_t *)(sp + l.idx[k]);
        uint8_t *oob = (uint8_t *)(sp + l.oob[k]);
        int need = s->mode == RZ_NEAREST;
        for (int a = 0; a < l.nact; a++)
            need |= l.act[a] == k;
        if (!need)
            continue;
        rz_table(s, &g, k, idx, f32 || s->mode == RZ_NEAREST ? NULL : (double *)(sp + l.w[k]),
                 f32 ? (float *)(sp + l.w[k]) : NULL, oob);
        any_oob[k] = 0;
        for (int64_t j = 0; j < g.out[k]; j++)
            any_oob[k] |= oob[j];
    }

    if (s->mode == RZ_NEAREST) {
        union lay_scalar ev;
        lay_scalar_from_double(x->dtype, s->extrapolation, &ev);
        rz_nearest(x, y, sp, &l, &ev);
        return 0;
    }
    if (l.nact == 0) {
        memcpy(y->data, x->data, (size_t)vg_tensor_numel(x) * esz);
        return 0;
    }

    /* Separable passes, innermost resized axis first, one block of axes [a0, r) at a time. */
    int a0 = l.act[0];
    int64_t blocks = lay_prod(g.in, 0, a0);
    int64_t in_blk = lay_prod(g.in, a0, r), out_blk = lay_prod(g.out, a0, r);
    for (int64_t bi = 0; bi < blocks; bi++) {
        const char *src = (const char *)x->data + (size_t)(bi * in_blk) * esz;
        int64_t cur[VG_MAX_RANK];
        memcpy(cur, g.in, sizeof(cur));
        for (int p = l.nact - 1, nb = 0; p >= 0; p--, nb ^= 1) {
            int k = l.act[p];
            char *dst = p == 0 ? (char *)y->data + (size_t)(bi * out_blk) * esz : sp + l.buf[nb];
            int64_t P = lay_prod(cur, a0, k), Q = lay_prod(cur, k + 1, r);
            const uint8_t *oob = (const uint8_t *)(sp + l.oob[k]);
            if (f32)
                rz_pass_f32((const float *)src, (float *)dst, P, g.in[k], g.out[k], Q, l.taps,
                            (const int64_t *)(sp + l.idx[k]), (const float *)(sp + l.w[k]), oob,
                            any_oob[k], (float)s->extrapolation);
            else
                rz_pass_f64((const double *)src, (double *)dst, P, g.in[k], g.out[k], Q, l.taps,
                            (const int64_t *)(sp + l.idx[k]), (const double *)(sp + l.w[k]), oob,
                            any_oob[k], s->extrapolation);
            cur[k] = g.out[k];
            src = dst;
        }
    }
    return 0;
}

/* ---- table ----------------------------------------------------------------------------------- */

/* Designated initialisers: fields the core may add later stay zero. */
#define LAY_OP(name, since, fi, fn, fr, frel, min_in)                                              \
    {                                                                                              \
        .domain = "", .op_type = name, .since_version = since, .init = fi, .infer = fn, .run = fr, \
        .release = frel, .min_inputs = min_in                                                      \
    }

const struct vg_op vg_ops_layout[] = {
    LAY_OP("Pad", 1, pad_init, pad_infer, pad_run, NULL, 1),
    LAY_OP("Resize", 10, rz_init, rz_infer, rz_run, rz_release, 1),
    LAY_OP("Split", 1, split_init, split_infer, split_run, NULL, 1),
    LAY_OP("Tile", 1, tile_init, tile_infer, tile_run, NULL, 2),
    LAY_OP("DepthToSpace", 1, d2s_init, d2s_infer, d2s_run, NULL, 1),
    LAY_OP("SpaceToDepth", 1, d2s_init, s2d_infer, s2d_run, NULL, 1),
    {0},
};
