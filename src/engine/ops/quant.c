/*
 * Operator family "quant": linear quantization of the ai.onnx domain and the com.microsoft
 * contrib operators that ONNX Runtime's static quantizer emits around its QLinear graphs.
 *
 * Implemented:
 *   ai.onnx QuantizeLinear and DequantizeLinear, opsets 10+ (one entry each; `axis` read from 13):
 *     QuantizeLinear x float or int32 -> y uint8 or int8 (the zero point's type, uint8 without
 *     one); DequantizeLinear x uint8, int8 or int32 -> float. Scale and zero point are one value
 *     (per tensor) or, from opset 13, 1-D of length x.dims[axis] (per axis, axis default 1,
 *     negative allowed). A 1-D scale of one element is per tensor whatever the axis (ONNX Runtime
 *     does the same). Opset 19's float8 types and `saturate` are not supported (no such dtypes).
 *   ai.onnx DynamicQuantizeLinear, opset 11+: float -> uint8, scale and zero point as ONNX's
 *     reference implementation defines them: max = max(0, max(x)), min = min(0, min(x)),
 *     scale = (max == min ? 1 : max - min) / 255 (so an all-zero input gives scale 1/255, zero
 *     point 0, y = 0), zero point = saturate(round(0 - min / scale)), y = QuantizeLinear(x).
 *     NaN elements are ignored by the min/max scan; an empty x has min = max = 0.
 *   com.microsoft (since_version 1), T uint8 or int8, one T for every quantized input and output
 *   of a node; every scale and zero point one element (scalar or shape [1]); absent zero points 0:
 *     QLinearAdd, QLinearMul: A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp; numpy
 *       broadcasting.
 *     QLinearSigmoid, QLinearLeakyRelu (alpha, default 0.01): X, X_scale, X_zp, Y_scale, Y_zp.
 *     QLinearGlobalAveragePool (channels_last, default 0): rank >= 3, output N,C,1,.. or N,1,..,C.
 *     QLinearAveragePool: kernel_shape (required), strides, pads, auto_pad (NOTSET, VALID,
 *       SAME_UPPER, SAME_LOWER), ceil_mode, count_include_pad, channels_last; 1 to 3 spatial dims.
 *     QLinearConcat: Y_scale, Y_zp, then (X, X_scale, X_zp) triples; axis (required).
 *
 * Rounding and saturation: every quantization rounds half to even and saturates to the type's
 * range. QuantizeLinear divides (x / scale, as ONNX's formula and numpy's reference do), clamps
 * the quotient to [qmin - zp, qmax - zp] and rounds with the 1.5 * 2^23 add-and-subtract, which
 * rounds half to even under the default rounding mode and vectorises (nearbyintf does not at the
 * -O2 baseline); clamping first keeps the trick exact and maps NaN to qmin. int32 x is divided in
 * double (numpy promotes int32 / float32 to float64).
 *
 * Scales: a scale that is zero, negative in a com.microsoft operator, or not finite is refused at
 * load when it is a constant, and makes the run fail (VG_EINVAL) when it comes from data.
 * QuantizeLinear and DequantizeLinear accept negative scales (the formulas are defined).
 *
 * Integer requantization (no float round trip per element):
 *   QLinearAdd: C = round(ma * (A - za) + mb * (B - zb)) + zc with ma = sa / sc, mb = sb / sc.
 *     Both ratios become integer multipliers Ma = ma * 2^S, Mb = mb * 2^S with one shift S chosen
 *     so that the larger has 31 significant bits; each element is Ma * da + Mb * db in int64 and
 *     an integer shift that rounds half to even. A result is exact unless it lies within
 *     255 * 2^-30 * max(ma, mb) (about 2.4e-7 * max(ma, mb)) of a half-integer, which is finer
 *     than float32 arithmetic; ties at dyadic ratios such as 0.5 are exact. With AVX-512 the same
 *     integer formula runs 16 elements per step (vpmuldq products, 64-bit arithmetic shift).
 *   QLinearMul: C = round(m * (A - za) * (B - zb)) + zc, m = sa * sb / sc, as a 31-bit multiplier
 *     on the exact int32 product, accumulated in int64.
 *   QLinearGlobalAveragePool and QLinearAveragePool: integer window sums minus count * zx, times
 *     a per-divisor multiplier sx / (sy * divisor) of up to 31 bits (fewer only for windows of
 *     more than 2^22 elements) in int64, rounded half to even.
 *   QLinearSigmoid, QLinearLeakyRelu and QLinearConcat: a 256-entry table per (input, scales)
 *     built in double from the formula (f(dequantize(q)) / sy, rounded half to even, + zy), at
 *     load when scales and zero points are constants, else at the start of each run; a
 *     QLinearConcat input whose scale and zero point equal the output's is copied.
 * ONNX Runtime computes these in float (see tests/quant/README.md); results agree within one
 * quantization step, equal except near half-integers.
 *
 * QLinearAveragePool windows: a window starts at o * stride - pad_begin and ends at
 * min(start + kernel, in + pad_end); with count_include_pad the divisor is that clipped extent
 * (padding counts as zero, i.e. as the input zero point), else the count of real elements. With
 * ceil_mode an output position whose window would start past in + pad_begin is dropped (the last
 * window always starts inside the input or its leading padding), as ONNX Runtime and PyTorch do.
 * auto_pad SAME_* gives out = ceil(in / stride) with the odd pad at the end (UPPER) or the
 * beginning (LOWER); VALID gives out = ceil((in - kernel + 1) / stride).
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "no-trapping-math")
#endif

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

/* 1.5 * 2^23: adding and subtracting it rounds |v| < 2^22 to an integer, half to even. */
#define Q_MAGIC 12582912.0f

/* ---- quantization parameters ----------------------------------------------------------------- */

static int q_is8(enum vg_dtype dt)
{
    return dt == VG_DT_UINT8 || dt == VG_DT_INT8;
}

static int32_t q_min(enum vg_dtype dt)
{
    return dt == VG_DT_UINT8 ? 0 : dt == VG_DT_INT8 ? -128 : INT32_MIN;
}

static int32_t q_max(enum vg_dtype dt)
{
    return dt == VG_DT_UINT8 ? 255 : dt == VG_DT_INT8 ? 127 : INT32_MAX;
}

static int32_t q_get(const struct vg_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case VG_DT_UINT8: return ((const uint8_t *)t->data)[i];
    case VG_DT_INT8: return ((const int8_t *)t->data)[i];
    default: return ((const int32_t *)t->data)[i];
    }
}

/* One (scale, zero point) pair of a com.microsoft operator. */
struct qp {
    float s;
    int32_t z;
};

/* Is the scale a usable one? `positive`: the contrib operators build multipliers from ratios. */
static int q_scale_ok(float s, int positive)
{
    return isfinite(s) && s != 0.0f && (!positive || s > 0.0f);
}

/*
 * init: checks that input `si` is a one-element float scale and `zi` (may be absent) a one-element
 * zero point of type `dt`. Constant values are checked too. Returns 1 if both are constants
 * (then *out holds them), 0 if not, negative on error.
 */
static int qp_init(struct vg_kctx *c, int si, int zi, enum vg_dtype dt, struct qp *out)
{
    const struct vg_tensor *s = si < c->n_in ? c->in[si] : NULL;
    const struct vg_tensor *z = zi < c->n_in ? c->in[zi] : NULL;
    int konst = 1;

    if (!s)
        return vg_kerr(c, VG_EGRAPH, "input %d (scale) is required", si);
    if (s->dtype != VG_DT_FLOAT)
        return vg_kerr(c, VG_ETYPE, "input %d (scale) must be float, not %s", si,
                       vg_dtype_name(s->dtype));
    if (z && z->dtype != dt)
        return vg_kerr(c, VG_ETYPE, "input %d (zero point) is %s, expected %s", zi,
                       vg_dtype_name(z->dtype), vg_dtype_name(dt));
    out->s = 1.0f;
    out->z = 0;
    if (s->data) {
        if (vg_tensor_numel(s) != 1)
            return vg_kerr(c, VG_ESHAPE, "input %d (scale) must have one element, has %lld", si,
                           (long long)vg_tensor_numel(s));
        out->s = ((const float *)s->data)[0];
        if (!q_scale_ok(out->s, 1))
            return vg_kerr(c, VG_EINVAL, "input %d (scale) is %g: it must be finite and > 0", si,
                           (double)out->s);
    } else {
        konst = 0;
    }
    if (z) {
        if (z->data) {
            if (vg_tensor_numel(z) != 1)
                return vg_kerr(c, VG_ESHAPE,
                               "input %d (zero point) must have one element, has %lld", zi,
                               (long long)vg_tensor_numel(z));
            out->z = q_get(z, 0);
        } else {
            konst = 0;
        }
    }
    return konst;
}

/* infer: shapes of a scale / zero point pair that were not constants at load. */
static int qp_infer(struct vg_kctx *c, int si, int zi)
{
    if (vg_tensor_numel(c->in[si]) != 1)
        return vg_kerr(c, VG_ESHAPE, "input %d (scale) must have one element", si);
    if (zi < c->n_in && c->in[zi] && vg_tensor_numel(c->in[zi]) != 1)
        return vg_kerr(c, VG_ESHAPE, "input %d (zero point) must have one element", zi);
    return 0;
}

/* run: reads the pair (checked again: a scale from data is only seen now). */
static int qp_run(struct vg_kctx *c, int si, int zi, struct qp *out)
{
    out->s = ((const float *)c->in[si]->data)[0];
    out->z = zi < c->n_in && c->in[zi] ? q_get(c->in[zi], 0) : 0;
    if (!q_scale_ok(out->s, 1))
        return vg_kerr(c, VG_EINVAL, "input %d (scale) is %g: it must be finite and > 0", si,
                       (double)out->s);
    return 0;
}

/* ---- fixed-point multipliers ----------------------------------------------------------------- */

/* real ~= m * 2^-shift. */
struct qmul {
    int64_t m;
    int shift;
};

/*
 * A multiplier of at most `bits` significant bits (the larger of `real` and `ref` gets exactly
 * that many when no clamp applies): shift = bits - exponent(ref), clamped to [0, max_shift].
 * Ratios too large for the budget are clamped; they saturate every non-zero operand anyway.
 */
static struct qmul qmul_make(double real, double ref, int bits, int max_shift)
{
    struct qmul q;
    int e;
    double lim = ldexp(1.0, bits);

    frexp(ref, &e);
    q.shift = bits - e;
    if (q.shift < 0)
        q.shift = 0;
    if (q.shift > max_shift)
        q.shift = max_shift;
    double v = ldexp(real, q.shift);
    if (v > lim)
        v = lim;
    q.m = llrint(v);
    return q;
}

/* Integer acc * 2^-shift rounded half to even (arithmetic right shift, as GCC defines it). */
static inline int64_t q_rne64(int64_t acc, int shift)
{
    if (shift == 0)
        return acc;
    return (acc + (((int64_t)1 << (shift - 1)) - 1) + ((acc >> shift) & 1)) >> shift;
}

static inline int32_t q_sat(int64_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : v > hi ? hi : (int32_t)v;
}

/* Bits needed for |v| <= x. */
static int q_bits(double x)
{
    int e;
    frexp(x + 1.0, &e);
    return e;
}

/* ---- 256-entry lookup tables ----------------------------------------------------------------- */

enum { Q_TAB_SIGMOID, Q_TAB_LEAKY, Q_TAB_RESCALE };

/* tab[q - qmin] = quantize(f(dequantize(q))), in double. */
static void q_table(uint8_t *tab, int kind, float alpha, enum vg_dtype dt, struct qp x, struct qp y)
{
    int32_t lo = q_min(dt), hi = q_max(dt);
    for (int32_t q = lo; q <= hi; q++) {
        double v = (double)(q - x.z) * (double)x.s, r;
        if (kind == Q_TAB_SIGMOID)
            v = 1.0 / (1.0 + exp(-v));
        else if (kind == Q_TAB_LEAKY)
            v = v >= 0 ? v : (double)alpha * v;
        r = nearbyint(v / (double)y.s) + y.z;
        int32_t o = r < lo ? lo : r > hi ? hi : (int32_t)r;
        tab[q - lo] = (uint8_t)o; /* the int8 bit pattern for int8 */
    }
}

static void q_lookup(const uint8_t *tab, enum vg_dtype dt, const uint8_t *x, uint8_t *y, int64_t n)
{
    if (dt == VG_DT_UINT8) {
        for (int64_t i = 0; i < n; i++)
            y[i] = tab[x[i]];
    } else {
        for (int64_t i = 0; i < n; i++)
            y[i] = tab[(uint8_t)(x[i] ^ 0x80)];
    }
}

/* ---- QuantizeLinear / DequantizeLinear ------------------------------------------------------- */

struct qdq_state {
    int axis_attr; /* as given (may be negative); only used when per axis */
    int per_axis_ok;
    enum vg_dtype qdt; /* the quantized type */
};

static void qdq_release(void *p)
{
    free(p);
}

/* Common init: x at 0, scale at 1, zero point at 2 (optional). `quant`: QuantizeLinear. */
static int qdq_init(struct vg_kctx *c, int quant)
{
    const struct vg_tensor *x = c->in[0], *s = c->in[1];
    const struct vg_tensor *z = c->n_in > 2 ? c->in[2] : NULL;
    struct qdq_state *st;
    int rc = vg_kctx_need_inputs(c, 2);
    if (rc)
        return rc;
    if (c->n_in > 3)
        return vg_kerr(c, VG_EGRAPH, "takes at most 3 inputs, has %d", c->n_in);
    if (quant) {
        if (x->dtype != VG_DT_FLOAT && x->dtype != VG_DT_INT32)
            return vg_kerr(c, VG_ETYPE, "input x must be float or int32, not %s",
                           vg_dtype_name(x->dtype));
        if (z && !q_is8(z->dtype))
            return vg_kerr(c, VG_ETYPE, "y_zero_point must be uint8 or int8, not %s",
                           vg_dtype_name(z->dtype));
    } else {
        if (!q_is8(x->dtype) && x->dtype != VG_DT_INT32)
            return vg_kerr(c, VG_ETYPE, "input x must be uint8, int8 or int32, not %s",
                           vg_dtype_name(x->dtype));
        if (z && z->dtype != x->dtype)
            return vg_kerr(c, VG_ETYPE, "x_zero_point is %s, x is %s", vg_dtype_name(z->dtype),
                           vg_dtype_name(x->dtype));
    }
    if (s->dtype != VG_DT_FLOAT)
        return vg_kerr(c, VG_ETYPE, "the scale must be float, not %s", vg_dtype_name(s->dtype));

    int per_axis_ok = c->node->opset >= 13;
    if (s->data) {
        int64_t n = vg_tensor_numel(s);
        if (s->rank > 1 || (n != 1 && !per_axis_ok))
            return vg_kerr(c, VG_ESHAPE,
                           "the scale must be a scalar%s, has rank %d and %lld elements",
                           per_axis_ok ? " or 1-D" : " (per-axis needs opset 13)", s->rank,
                           (long long)n);
        for (int64_t i = 0; i < n; i++) {
            float v = ((const float *)s->data)[i];
            if (!q_scale_ok(v, 0))
                return vg_kerr(c, VG_EINVAL, "scale[%lld] is %g: it must be finite and non-zero",
                               (long long)i, (double)v);
        }
    }
    if (z && z->data && s->data && vg_tensor_numel(z) != vg_tensor_numel(s))
        return vg_kerr(c, VG_ESHAPE, "zero point has %lld elements, scale %lld",
                       (long long)vg_tensor_numel(z), (long long)vg_tensor_numel(s));

    st = calloc(1, sizeof *st);
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    st->axis_attr = per_axis_ok ? (int)vg_attr_i(c->node, "axis", 1) : 1;
    st->per_axis_ok = per_axis_ok;
    st->qdt = quant ? (z ? z->dtype : VG_DT_UINT8) : x->dtype;
    c->state = st;
    c->out[0]->dtype = quant ? st->qdt : VG_DT_FLOAT;
    return 0;
}

static int quantize_init(struct vg_kctx *c)
{
    return qdq_init(c, 1);
}

static int dequantize_init(struct vg_kctx *c)
{
    return qdq_init(c, 0);
}

/* Per-axis layout: x viewed as [outer, channels, inner]; channels == 1 when per tensor. */
struct qdq_layout {
    int64_t outer, ch, inner;
};

static int qdq_layout(struct vg_kctx *c, struct qdq_layout *l)
{
    const struct qdq_state *st = c->state;
    const struct vg_tensor *x = c->in[0], *s = c->in[1];
    const struct vg_tensor *z = c->n_in > 2 ? c->in[2] : NULL;
    int64_t n = vg_tensor_numel(s);

    if (s->rank > 1 || (n != 1 && !st->per_axis_ok))
        return vg_kerr(c, VG_ESHAPE, "the scale must be a scalar%s",
                       st->per_axis_ok ? " or 1-D" : "");
    if (z && vg_tensor_numel(z) != n)
        return vg_kerr(c, VG_ESHAPE, "zero point has %lld elements, scale %lld",
                       (long long)vg_tensor_numel(z), (long long)n);
    /* Per tensor: one run over everything (the kernels see the whole tensor, not 1 element). */
    l->outer = 1;
    l->ch = 1;
    l->inner = vg_tensor_numel(x);
    if (n == 1)
        return 0;
    l->inner = 1;
    int axis = vg_norm_axis(st->axis_attr, x->rank);
    if (axis < 0)
        return vg_kerr(c, VG_ESHAPE, "axis %d is out of range for rank %d", st->axis_attr, x->rank);
    if (x->dims[axis] != n)
        return vg_kerr(c, VG_ESHAPE, "per-axis scale has %lld elements, x has %lld along axis %d",
                       (long long)n, (long long)x->dims[axis], axis);
    l->outer = 1;
    for (int d = 0; d < axis; d++)
        l->outer *= x->dims[d];
    for (int d = axis + 1; d < x->rank; d++)
        l->inner *= x->dims[d];
    l->ch = n;
    return 0;
}

static int qdq_infer(struct vg_kctx *c)
{
    struct qdq_layout l;
    int rc = qdq_layout(c, &l);
    if (rc)
        return rc;
    c->out[0]->rank = c->in[0]->rank;
    memcpy(c->out[0]->dims, c->in[0]->dims, sizeof c->out[0]->dims);
    return 0;
}

static int qdq_check_scales(struct vg_kctx *c, int64_t n)
{
    const float *s = c->in[1]->data;
    for (int64_t i = 0; i < n; i++)
        if (!q_scale_ok(s[i], 0))
            return vg_kerr(c, VG_EINVAL, "scale[%lld] is %g: it must be finite and non-zero",
                           (long long)i, (double)s[i]);
    return 0;
}

/* The quantize kernels: lo/hi are qmin - zp and qmax - zp. The body is compiled twice, for the
 * baseline and for AVX2 (8 divisions per instruction; same IEEE operations, same results). */
#define QUANT_F32_BODY(T)                                                                          \
    for (int64_t i = 0; i < n; i++) {                                                              \
        float t = x[i] / s;                                                                        \
        t = t > lo ? t : lo;                                                                       \
        t = t < hi ? t : hi;                                                                       \
        t = (t + Q_MAGIC) - Q_MAGIC;                                                               \
        y[i] = (T)((int32_t)t + zp);                                                               \
    }

static void quant_f32_u8_c(const float *x, uint8_t *y, int64_t n, float s, float lo, float hi,
                           int32_t zp)
{
    QUANT_F32_BODY(uint8_t)
}

static void quant_f32_i8_c(const float *x, int8_t *y, int64_t n, float s, float lo, float hi,
                           int32_t zp)
{
    QUANT_F32_BODY(int8_t)
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static void quant_f32_u8_avx2(const float *x, uint8_t *y,
                                                              int64_t n, float s, float lo,
                                                              float hi, int32_t zp)
{
    QUANT_F32_BODY(uint8_t)
}

__attribute__((target("avx2"))) static void quant_f32_i8_avx2(const float *x, int8_t *y,
                                                              int64_t n, float s, float lo,
                                                              float hi, int32_t zp)
{
    QUANT_F32_BODY(int8_t)
}
#endif

static void quant_f32_u8(const float *x, uint8_t *y, int64_t n, float s, float lo, float hi,
                         int32_t zp)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) {
        quant_f32_u8_avx2(x, y, n, s, lo, hi, zp);
        return;
    }
#endif
    quant_f32_u8_c(x, y, n, s, lo, hi, zp);
}

static void quant_f32_i8(const float *x, int8_t *y, int64_t n, float s, float lo, float hi,
                         int32_t zp)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) {
        quant_f32_i8_avx2(x, y, n, s, lo, hi, zp);
        return;
    }
#endif
    quant_f32_i8_c(x, y, n, s, lo, hi, zp);
}

static void quant_i32(const int32_t *x, void *y, enum vg_dtype dt, int64_t n, float s, int32_t zp)
{
    int32_t lo = q_min(dt), hi = q_max(dt);
    for (int64_t i = 0; i < n; i++) {
        double t = nearbyint((double)x[i] / (double)s) + zp;
        int32_t v = t < lo ? lo : t > hi ? hi : (int32_t)t;
        if (dt == VG_DT_UINT8)
            ((uint8_t *)y)[i] = (uint8_t)v;
        else
            ((int8_t *)y)[i] = (int8_t)v;
    }
}

static int quantize_run(struct vg_kctx *c)
{
    const struct qdq_state *st = c->state;
    const struct vg_tensor *x = c->in[0], *s = c->in[1];
    const struct vg_tensor *z = c->n_in > 2 ? c->in[2] : NULL;
    size_t xs = vg_dtype_size(x->dtype);
    struct qdq_layout l;
    int rc = qdq_layout(c, &l);
    if (rc)
        return rc;
    if ((rc = qdq_check_scales(c, l.ch)))
        return rc;
    int32_t qlo = q_min(st->qdt), qhi = q_max(st->qdt);
    for (int64_t o = 0; o < l.outer; o++)
        for (int64_t ch = 0; ch < l.ch; ch++) {
            int64_t off = (o * l.ch + ch) * l.inner;
            float sc = ((const float *)s->data)[ch];
            int32_t zp = z ? q_get(z, ch) : 0;
            const char *xp = (const char *)x->data + (size_t)off * xs;
            char *yp = (char *)c->out[0]->data + off;
            if (x->dtype == VG_DT_INT32)
                quant_i32((const int32_t *)xp, yp, st->qdt, l.inner, sc, zp);
            else if (st->qdt == VG_DT_UINT8)
                quant_f32_u8((const float *)xp, (uint8_t *)yp, l.inner, sc, (float)(qlo - zp),
                             (float)(qhi - zp), zp);
            else
                quant_f32_i8((const float *)xp, (int8_t *)yp, l.inner, sc, (float)(qlo - zp),
                             (float)(qhi - zp), zp);
        }
    return 0;
}

static int dequantize_run(struct vg_kctx *c)
{
    const struct vg_tensor *x = c->in[0], *s = c->in[1];
    const struct vg_tensor *z = c->n_in > 2 ? c->in[2] : NULL;
    float *y = c->out[0]->data;
    struct qdq_layout l;
    int rc = qdq_layout(c, &l);
    if (rc)
        return rc;
    if ((rc = qdq_check_scales(c, l.ch)))
        return rc;
    for (int64_t o = 0; o < l.outer; o++)
        for (int64_t ch = 0; ch < l.ch; ch++) {
            int64_t off = (o * l.ch + ch) * l.inner, n = l.inner;
            float sc = ((const float *)s->data)[ch];
            float *yp = y + off;
            if (x->dtype == VG_DT_UINT8) {
                const uint8_t *xp = (const uint8_t *)x->data + off;
                int32_t zp = z ? q_get(z, ch) : 0;
                for (int64_t i = 0; i < n; i++)
                    yp[i] = (float)((int32_t)xp[i] - zp) * sc;
            } else if (x->dtype == VG_DT_INT8) {
                const int8_t *xp = (const int8_t *)x->data + off;
                int32_t zp = z ? q_get(z, ch) : 0;
                for (int64_t i = 0; i < n; i++)
                    yp[i] = (float)((int32_t)xp[i] - zp) * sc;
            } else {
                /* int32: subtract in float as numpy's reference does (no int32 overflow). */
                const int32_t *xp = (const int32_t *)x->data + off;
                float zp = z ? (float)q_get(z, ch) : 0.0f;
                for (int64_t i = 0; i < n; i++)
                    yp[i] = ((float)xp[i] - zp) * sc;
            }
        }
    return 0;
}

/* ---- DynamicQuantizeLinear ------------------------------------------------------------------- */

static int dql_init(struct vg_kctx *c)
{
    if (c->in[0]->dtype != VG_DT_FLOAT)
        return vg_kerr(c, VG_ETYPE, "input must be float, not %s", vg_dtype_name(c->in[0]->dtype));
    if (c->n_out > 3)
        return vg_kerr(c, VG_EGRAPH, "has at most 3 outputs, not %d", c->n_out);
    c->out[0]->dtype = VG_DT_UINT8;
    if (c->n_out > 1 && c->out[1])
        c->out[1]->dtype = VG_DT_FLOAT;
    if (c->n_out > 2 && c->out[2])
        c->out[2]->dtype = VG_DT_UINT8;
    return 0;
}

static int dql_infer(struct vg_kctx *c)
{
    c->out[0]->rank = c->in[0]->rank;
    memcpy(c->out[0]->dims, c->in[0]->dims, sizeof c->out[0]->dims);
    for (int i = 1; i < c->n_out && i < 3; i++)
        if (c->out[i])
            c->out[i]->rank = 0;
    return 0;
}

static int dql_run(struct vg_kctx *c)
{
    const float *x = c->in[0]->data;
    int64_t n = vg_tensor_numel(c->in[0]);
    float mn = 0.0f, mx = 0.0f; /* the range always includes 0 */
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
    }
    float scale = (mx == mn ? 1.0f : mx - mn) / 255.0f;
    float zpf = 0.0f - mn / scale;
    zpf = zpf > 0.0f ? zpf : 0.0f;
    zpf = zpf < 255.0f ? zpf : 255.0f;
    int32_t zp = (int32_t)nearbyintf(zpf);
    quant_f32_u8(x, c->out[0]->data, n, scale, (float)(0 - zp), (float)(255 - zp), zp);
    if (c->n_out > 1 && c->out[1])
        *(float *)c->out[1]->data = scale;
    if (c->n_out > 2 && c->out[2])
        *(uint8_t *)c->out[2]->data = (uint8_t)zp;
    return 0;
}

/* ---- broadcasting walker for QLinearAdd / QLinearMul ----------------------------------------- */

/* Collapsed iteration space: dims with both inputs' element strides, innermost last. */
struct q_bcast {
    int r;
    int64_t dims[VG_MAX_RANK], sa[VG_MAX_RANK], sb[VG_MAX_RANK];
};

static void q_bcast_make(const struct vg_tensor *a, const struct vg_tensor *b,
                         const struct vg_tensor *o, struct q_bcast *w)
{
    int64_t sa[VG_MAX_RANK], sb[VG_MAX_RANK];
    vg_broadcast_strides(a, o, sa);
    vg_broadcast_strides(b, o, sb);
    w->r = 0;
    for (int d = 0; d < o->rank; d++) {
        if (o->dims[d] == 1)
            continue;
        if (w->r > 0) {
            int k = w->r - 1;
            if (w->sa[k] == sa[d] * o->dims[d] && w->sb[k] == sb[d] * o->dims[d]) {
                w->dims[k] *= o->dims[d];
                w->sa[k] = sa[d];
                w->sb[k] = sb[d];
                continue;
            }
        }
        w->dims[w->r] = o->dims[d];
        w->sa[w->r] = sa[d];
        w->sb[w->r] = sb[d];
        w->r++;
    }
    if (w->r == 0) {
        w->r = 1;
        w->dims[0] = 1;
        w->sa[0] = 0;
        w->sb[0] = 0;
    }
}

/* Row kernel: n outputs from a (step sa_step, 0 or 1) and b (step sb_step). */
struct qbin;
typedef void (*qbin_fn)(const struct qbin *p, const void *a, int as, const void *b, int bs,
                        void *o, int64_t n);

static void q_bcast_run(const struct q_bcast *w, qbin_fn fn, const struct qbin *p, const char *a,
                        const char *b, char *o)
{
    int r = w->r;
    int64_t idx[VG_MAX_RANK] = {0}, inner = w->dims[r - 1];
    int as = (int)w->sa[r - 1], bs = (int)w->sb[r - 1];
    int64_t oa = 0, ob = 0, oo = 0;
    for (;;) {
        fn(p, a + oa, as, b + ob, bs, o + oo, inner);
        oo += inner;
        int d = r - 2;
        for (; d >= 0; d--) {
            idx[d]++;
            oa += w->sa[d];
            ob += w->sb[d];
            if (idx[d] < w->dims[d])
                break;
            oa -= w->sa[d] * w->dims[d];
            ob -= w->sb[d] * w->dims[d];
            idx[d] = 0;
        }
        if (d < 0)
            break;
    }
}

/* ---- QLinearAdd / QLinearMul ----------------------------------------------------------------- */

struct qbin {
    int64_t ma, mb; /* Add: one multiplier per input; Mul: ma */
    int shift;
    int32_t za, zb, zc, lo, hi;
};

struct qbin_state {
    enum vg_dtype dt;
    int mul;
    int konst;
    struct qbin p;
    qbin_fn fn;
};

static void qbin_release(void *p)
{
    free(p);
}

/*
 * |Ma * da + Mb * db| < 2^31 * 255 * 2 < 2^40 and |M * da * db| < 2^47: int64 never overflows.
 * Both loops vectorise (int64 lanes, even at the SSE2 baseline); AVX2 doubles the width.
 */
static inline int32_t qadd_one(const struct qbin *p, int32_t x, int32_t y)
{
    int64_t acc = p->ma * (x - p->za) + p->mb * (y - p->zb);
    int64_t v = q_rne64(acc, p->shift) + p->zc;
    return v < p->lo ? p->lo : v > p->hi ? p->hi : (int32_t)v;
}

static inline int32_t qmul_one(const struct qbin *p, int32_t x, int32_t y)
{
    int64_t acc = p->ma * ((x - p->za) * (y - p->zb));
    int64_t v = q_rne64(acc, p->shift) + p->zc;
    return v < p->lo ? p->lo : v > p->hi ? p->hi : (int32_t)v;
}

/*
 * Row kernels, one per (operation, type), for operand steps (1,1), (0,1), (1,0), (0,0); `EXPR`
 * reads `x` and `y` (int32 operands) and yields the saturated result. QBIN_KERNEL also makes an
 * AVX2 build of the same body, chosen at run time.
 */
#define QBIN_BODY(T, EXPR)                                                                         \
    const T *a = pa, *b = pb;                                                                      \
    T *o = po;                                                                                     \
    if (as && bs) {                                                                                \
        for (int64_t i = 0; i < n; i++) {                                                          \
            int32_t x = a[i], y = b[i];                                                            \
            o[i] = (T)(EXPR);                                                                      \
        }                                                                                          \
    } else if (bs) {                                                                               \
        int32_t x = a[0];                                                                          \
        for (int64_t i = 0; i < n; i++) {                                                          \
            int32_t y = b[i];                                                                      \
            o[i] = (T)(EXPR);                                                                      \
        }                                                                                          \
    } else if (as) {                                                                               \
        int32_t y = b[0];                                                                          \
        for (int64_t i = 0; i < n; i++) {                                                          \
            int32_t x = a[i];                                                                      \
            o[i] = (T)(EXPR);                                                                      \
        }                                                                                          \
    } else {                                                                                       \
        int32_t x = a[0], y = b[0];                                                                \
        T v = (T)(EXPR);                                                                           \
        for (int64_t i = 0; i < n; i++)                                                            \
            o[i] = v;                                                                              \
    }

#define QBIN_KERNEL(name, T, EXPR)                                                                 \
    static void name(const struct qbin *p, const void *pa, int as, const void *pb, int bs,        \
                     void *po, int64_t n)                                                          \
    {                                                                                              \
        QBIN_BODY(T, EXPR)                                                                         \
    }                                                                                              \
    __attribute__((target("avx2"))) static void name##_avx2(                                       \
        const struct qbin *p, const void *pa, int as, const void *pb, int bs, void *po, int64_t n) \
    {                                                                                              \
        QBIN_BODY(T, EXPR)                                                                         \
    }

QBIN_KERNEL(qadd_u8, uint8_t, qadd_one(p, x, y))
QBIN_KERNEL(qadd_i8, int8_t, qadd_one(p, x, y))
QBIN_KERNEL(qmul_u8, uint8_t, qmul_one(p, x, y))
QBIN_KERNEL(qmul_i8, int8_t, qmul_one(p, x, y))

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QADD512_T __attribute__((target("avx2,avx512f,avx512bw")))
/* QLinearAdd with AVX-512, 16 elements per step, the same integer formula as qadd_one: the
 * int64 products come from vpmuldq (multipliers below 2^31, operands int32), q_rne64 with a
 * 64-bit arithmetic shift, clamping in int64. The AVX2 build of the generic loop has no 64-bit
 * multiply and was 7 % of the int8 efficientnet-lite graph. Needs shift >= 1 and Ma, Mb < 2^31
 * (qbin_prepare checks). */
static inline __attribute__((always_inline)) QADD512_T __m512i
qadd512_half(__m512i da, __m512i db, __m512i ma, __m512i mb, __m512i hm1, __m128i sh, __m512i zc,
             __m512i lo, __m512i hi)
{
    __m512i acc = _mm512_add_epi64(_mm512_mul_epi32(da, ma), _mm512_mul_epi32(db, mb));
    __m512i bit = _mm512_and_si512(_mm512_sra_epi64(acc, sh), _mm512_set1_epi64(1));
    __m512i v = _mm512_sra_epi64(_mm512_add_epi64(_mm512_add_epi64(acc, hm1), bit), sh);
    v = _mm512_add_epi64(v, zc);
    return _mm512_min_epi64(_mm512_max_epi64(v, lo), hi);
}

static inline __attribute__((always_inline)) QADD512_T __m512i qadd512_load(const void *p, int u8,
                                                                            __mmask16 m)
{
    __m128i v = _mm512_castsi512_si128(_mm512_maskz_loadu_epi8((__mmask64)m, p));
    return u8 ? _mm512_cvtepu8_epi32(v) : _mm512_cvtepi8_epi32(v);
}

static inline __attribute__((always_inline)) QADD512_T void
qadd512_body(const struct qbin *p, const void *pa, int as, const void *pb, int bs, void *po,
             int64_t n, const int u8)
{
    const uint8_t *a = pa, *b = pb;
    uint8_t *o = po;
    __m512i ma = _mm512_set1_epi64(p->ma), mb = _mm512_set1_epi64(p->mb);
    __m512i hm1 = _mm512_set1_epi64(((int64_t)1 << (p->shift - 1)) - 1);
    __m128i sh = _mm_cvtsi32_si128(p->shift);
    __m512i zc = _mm512_set1_epi64(p->zc), lo = _mm512_set1_epi64(p->lo);
    __m512i hi = _mm512_set1_epi64(p->hi);
    __m512i za = _mm512_set1_epi32(p->za), zb = _mm512_set1_epi32(p->zb);
    /* A step-0 operand is one value for the whole row. */
    __m512i xa = _mm512_set1_epi32(u8 ? (int32_t)a[0] : (int32_t)(int8_t)a[0]);
    __m512i xb = _mm512_set1_epi32(u8 ? (int32_t)b[0] : (int32_t)(int8_t)b[0]);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512i da = _mm512_sub_epi32(as ? qadd512_load(a + i, u8, m) : xa, za);
        __m512i db = _mm512_sub_epi32(bs ? qadd512_load(b + i, u8, m) : xb, zb);
        __m512i ve = qadd512_half(da, db, ma, mb, hm1, sh, zc, lo, hi);
        __m512i vo = qadd512_half(_mm512_srli_epi64(da, 32), _mm512_srli_epi64(db, 32), ma, mb,
                                  hm1, sh, zc, lo, hi);
        __m512i v = _mm512_mask_blend_epi32(0xAAAA, ve, _mm512_slli_epi64(vo, 32));
        _mm512_mask_cvtepi32_storeu_epi8(o + i, m, v); /* in range already: truncation is exact */
    }
}

static QADD512_T void qadd_u8_avx512(const struct qbin *p, const void *pa, int as, const void *pb,
                                     int bs, void *po, int64_t n)
{
    qadd512_body(p, pa, as, pb, bs, po, n, 1);
}

static QADD512_T void qadd_i8_avx512(const struct qbin *p, const void *pa, int as, const void *pb,
                                     int bs, void *po, int64_t n)
{
    qadd512_body(p, pa, as, pb, bs, po, n, 0);
}
#endif

/* Multipliers and kernel for these parameters. */
static qbin_fn qbin_prepare(int mul, enum vg_dtype dt, struct qp a, struct qp b, struct qp cc,
                            struct qbin *p)
{
    int u8 = dt == VG_DT_UINT8, avx2 = __builtin_cpu_supports("avx2");
    memset(p, 0, sizeof *p);
    p->za = a.z;
    p->zb = b.z;
    p->zc = cc.z;
    p->lo = q_min(dt);
    p->hi = q_max(dt);
    if (mul) {
        double m = (double)a.s * (double)b.s / (double)cc.s;
        struct qmul q = qmul_make(m, m, 31, 62);
        p->ma = q.m;
        p->shift = q.shift;
        if (avx2)
            return u8 ? qmul_u8_avx2 : qmul_i8_avx2;
        return u8 ? qmul_u8 : qmul_i8;
    }
    double ma = (double)a.s / (double)cc.s, mb = (double)b.s / (double)cc.s;
    double ref = ma > mb ? ma : mb;
    struct qmul qa = qmul_make(ma, ref, 31, 62), qb = qmul_make(mb, ref, 31, 62);
    p->ma = qa.m;
    p->mb = qb.m;
    p->shift = qa.shift;
#if defined(__x86_64__) || defined(__i386__)
    if (p->shift >= 1 && p->ma >= 0 && p->ma <= INT32_MAX && p->mb >= 0 && p->mb <= INT32_MAX &&
        __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && avx2)
        return u8 ? qadd_u8_avx512 : qadd_i8_avx512;
#endif
    if (avx2)
        return u8 ? qadd_u8_avx2 : qadd_i8_avx2;
    return u8 ? qadd_u8 : qadd_i8;
}

static int qbin_init(struct vg_kctx *c, int mul)
{
    struct qp a, b, cc;
    int ka, kb, kc;
    if (c->n_in < 7 || c->n_in > 8 || !c->in[3])
        return vg_kerr(c, VG_EGRAPH, "takes 7 or 8 inputs (A, A_scale, A_zero_point, B, B_scale, "
                       "B_zero_point, C_scale[, C_zero_point]), B present; has %d", c->n_in);
    enum vg_dtype dt = c->in[0]->dtype;
    if (!q_is8(dt))
        return vg_kerr(c, VG_ETYPE, "A must be uint8 or int8, not %s", vg_dtype_name(dt));
    if (c->in[3]->dtype != dt)
        return vg_kerr(c, VG_ETYPE, "B is %s, A is %s", vg_dtype_name(c->in[3]->dtype),
                       vg_dtype_name(dt));
    if ((ka = qp_init(c, 1, 2, dt, &a)) < 0)
        return ka;
    if ((kb = qp_init(c, 4, 5, dt, &b)) < 0)
        return kb;
    if ((kc = qp_init(c, 6, 7, dt, &cc)) < 0)
        return kc;
    struct qbin_state *st = calloc(1, sizeof *st);
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    st->dt = dt;
    st->mul = mul;
    st->konst = ka && kb && kc;
    if (st->konst)
        st->fn = qbin_prepare(mul, dt, a, b, cc, &st->p);
    c->state = st;
    c->out[0]->dtype = dt;
    return 0;
}

static int qadd_init(struct vg_kctx *c)
{
    return qbin_init(c, 0);
}

static int qmul_init(struct vg_kctx *c)
{
    return qbin_init(c, 1);
}

static int qbin_infer(struct vg_kctx *c)
{
    const struct vg_tensor *shapes[2] = {c->in[0], c->in[3]};
    int rc;
    if ((rc = qp_infer(c, 1, 2)) || (rc = qp_infer(c, 4, 5)) || (rc = qp_infer(c, 6, 7)))
        return rc;
    return vg_broadcast_shape(c, 2, shapes, c->out[0]);
}

static int qbin_run(struct vg_kctx *c)
{
    const struct qbin_state *st = c->state;
    struct qbin local;
    const struct qbin *p = &st->p;
    qbin_fn fn = st->fn;
    struct q_bcast w;
    if (!st->konst) {
        struct qp a, b, cc;
        int rc;
        if ((rc = qp_run(c, 1, 2, &a)) || (rc = qp_run(c, 4, 5, &b)) || (rc = qp_run(c, 6, 7, &cc)))
            return rc;
        fn = qbin_prepare(st->mul, st->dt, a, b, cc, &local);
        p = &local;
    }
    if (vg_tensor_numel(c->out[0]) == 0)
        return 0;
    q_bcast_make(c->in[0], c->in[3], c->out[0], &w);
    q_bcast_run(&w, fn, p, c->in[0]->data, c->in[3]->data, c->out[0]->data);
    return 0;
}

/* ---- QLinearSigmoid / QLinearLeakyRelu ------------------------------------------------------- */

struct qlut_state {
    enum vg_dtype dt;
    int kind;
    float alpha;
    int konst;
    uint8_t tab[256];
};

static void qlut_release(void *p)
{
    free(p);
}

static int qlut_init(struct vg_kctx *c, int kind)
{
    struct qp x, y;
    int kx, ky;
    if (c->n_in < 4 || c->n_in > 5)
        return vg_kerr(c, VG_EGRAPH, "takes 4 or 5 inputs (X, X_scale, X_zero_point, Y_scale[, "
                       "Y_zero_point]), has %d", c->n_in);
    enum vg_dtype dt = c->in[0]->dtype;
    if (!q_is8(dt))
        return vg_kerr(c, VG_ETYPE, "X must be uint8 or int8, not %s", vg_dtype_name(dt));
    if ((kx = qp_init(c, 1, 2, dt, &x)) < 0)
        return kx;
    if ((ky = qp_init(c, 3, 4, dt, &y)) < 0)
        return ky;
    struct qlut_state *st = calloc(1, sizeof *st);
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    st->dt = dt;
    st->kind = kind;
    st->alpha = kind == Q_TAB_LEAKY ? vg_attr_f(c->node, "alpha", 0.01f) : 0.0f;
    st->konst = kx && ky;
    if (st->konst)
        q_table(st->tab, kind, st->alpha, dt, x, y);
    c->state = st;
    c->out[0]->dtype = dt;
    return 0;
}

static int qsigmoid_init(struct vg_kctx *c)
{
    return qlut_init(c, Q_TAB_SIGMOID);
}

static int qleaky_init(struct vg_kctx *c)
{
    return qlut_init(c, Q_TAB_LEAKY);
}

static int qlut_infer(struct vg_kctx *c)
{
    int rc;
    if ((rc = qp_infer(c, 1, 2)) || (rc = qp_infer(c, 3, 4)))
        return rc;
    c->out[0]->rank = c->in[0]->rank;
    memcpy(c->out[0]->dims, c->in[0]->dims, sizeof c->out[0]->dims);
    c->scratch_bytes = 256;
    return 0;
}

static int qlut_run(struct vg_kctx *c)
{
    const struct qlut_state *st = c->state;
    const uint8_t *tab = st->tab;
    if (!st->konst) {
        struct qp x, y;
        int rc;
        if ((rc = qp_run(c, 1, 2, &x)) || (rc = qp_run(c, 3, 4, &y)))
            return rc;
        q_table(c->scratch, st->kind, st->alpha, st->dt, x, y);
        tab = c->scratch;
    }
    q_lookup(tab, st->dt, c->in[0]->data, c->out[0]->data, vg_tensor_numel(c->in[0]));
    return 0;
}

/* ---- QLinearGlobalAveragePool ---------------------------------------------------------------- */

struct qgap_state {
    enum vg_dtype dt;
    int channels_last;
    int konst;
    struct qp x, y;
};

static void qgap_release(void *p)
{
    free(p);
}

static int qgap_init(struct vg_kctx *c)
{
    int kx, ky;
    if (c->n_in < 4 || c->n_in > 5)
        return vg_kerr(c, VG_EGRAPH, "takes 4 or 5 inputs (X, X_scale, X_zero_point, Y_scale[, "
                       "Y_zero_point]), has %d", c->n_in);
    enum vg_dtype dt = c->in[0]->dtype;
    if (!q_is8(dt))
        return vg_kerr(c, VG_ETYPE, "X must be uint8 or int8, not %s", vg_dtype_name(dt));
    struct qgap_state *st = calloc(1, sizeof *st);
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    c->state = st;
    if ((kx = qp_init(c, 1, 2, dt, &st->x)) < 0)
        return kx;
    if ((ky = qp_init(c, 3, 4, dt, &st->y)) < 0)
        return ky;
    st->dt = dt;
    st->konst = kx && ky;
    st->channels_last = vg_attr_i(c->node, "channels_last", 0) != 0;
    c->out[0]->dtype = dt;
    return 0;
}

static int qgap_infer(struct vg_kctx *c)
{
    const struct qgap_state *st = c->state;
    const struct vg_tensor *x = c->in[0];
    struct vg_tensor *o = c->out[0];
    int rc;
    if ((rc = qp_infer(c, 1, 2)) || (rc = qp_infer(c, 3, 4)))
        return rc;
    if (x->rank < 3)
        return vg_kerr(c, VG_ESHAPE, "X must have rank 3 or more, has %d", x->rank);
    o->rank = x->rank;
    for (int d = 0; d < x->rank; d++)
        o->dims[d] = 1;
    o->dims[0] = x->dims[0];
    if (st->channels_last) {
        o->dims[x->rank - 1] = x->dims[x->rank - 1];
        c->scratch_bytes = (size_t)x->dims[x->rank - 1] * sizeof(int32_t);
    } else {
        o->dims[1] = x->dims[1];
    }
    int64_t sp = 1;
    for (int d = st->channels_last ? 1 : 2; d < x->rank - (st->channels_last ? 1 : 0); d++)
        sp *= x->dims[d];
    if (sp > ((int64_t)1 << 23))
        return vg_kerr(c, VG_ESHAPE, "pooling over %lld elements per channel (at most 2^23)",
                       (long long)sp);
    return 0;
}

/* y = round((sum - count * zx) * sx / (sy * count)) + zy, in fixed point. */
static struct qmul q_avg_mul(struct qp x, struct qp y, int64_t count, int acc_bits)
{
    double m = (double)x.s / ((double)y.s * (double)count);
    int bits = 62 - acc_bits;
    if (bits > 31)
        bits = 31;
    return qmul_make(m, m, bits, 62);
}

static inline int32_t q_avg_out(int64_t acc, struct qmul q, int32_t zy, int32_t lo, int32_t hi)
{
    return q_sat(q_rne64(acc * q.m, q.shift) + zy, lo, hi);
}

static int qgap_run(struct vg_kctx *c)
{
    const struct qgap_state *st = c->state;
    const struct vg_tensor *x = c->in[0];
    struct qp qx = st->x, qy = st->y;
    int rc;
    if (!st->konst && ((rc = qp_run(c, 1, 2, &qx)) || (rc = qp_run(c, 3, 4, &qy))))
        return rc;
    int64_t n = x->dims[0], ch, sp = 1;
    if (st->channels_last) {
        ch = x->dims[x->rank - 1];
        for (int d = 1; d < x->rank - 1; d++)
            sp *= x->dims[d];
    } else {
        ch = x->dims[1];
        for (int d = 2; d < x->rank; d++)
            sp *= x->dims[d];
    }
    if (n * ch == 0)
        return 0;
    int32_t lo = q_min(st->dt), hi = q_max(st->dt);
    int u8 = st->dt == VG_DT_UINT8;
    if (sp == 0) {
        memset(c->out[0]->data, (uint8_t)q_sat(qy.z, lo, hi), (size_t)(n * ch));
        return 0;
    }
    struct qmul q = q_avg_mul(qx, qy, sp, q_bits(256.0 * (double)sp));
    int64_t bias = (int64_t)qx.z * sp;
    if (!st->channels_last) {
        for (int64_t i = 0; i < n * ch; i++) {
            int32_t sum = 0;
            if (u8) {
                const uint8_t *p = (const uint8_t *)x->data + i * sp;
                for (int64_t k = 0; k < sp; k++)
                    sum += p[k];
            } else {
                const int8_t *p = (const int8_t *)x->data + i * sp;
                for (int64_t k = 0; k < sp; k++)
                    sum += p[k];
            }
            ((uint8_t *)c->out[0]->data)[i] = (uint8_t)q_avg_out(sum - bias, q, qy.z, lo, hi);
        }
        return 0;
    }
    int32_t *acc = c->scratch;
    for (int64_t b = 0; b < n; b++) {
        memset(acc, 0, (size_t)ch * sizeof *acc);
        for (int64_t k = 0; k < sp; k++) {
            if (u8) {
                const uint8_t *p = (const uint8_t *)x->data + (b * sp + k) * ch;
                for (int64_t j = 0; j < ch; j++)
                    acc[j] += p[j];
            } else {
                const int8_t *p = (const int8_t *)x->data + (b * sp + k) * ch;
                for (int64_t j = 0; j < ch; j++)
                    acc[j] += p[j];
            }
        }
        uint8_t *o = (uint8_t *)c->out[0]->data + b * ch;
        for (int64_t j = 0; j < ch; j++)
            o[j] = (uint8_t)q_avg_out(acc[j] - bias, q, qy.z, lo, hi);
    }
    return 0;
}

/* ---- QLinearAveragePool ---------------------------------------------------------------------- */

#define QP_MAXSP 3
#define QP_MAX_KERNEL ((int64_t)1 << 16)


struct qpool_state {
    enum vg_dtype dt;
    int nsp; /* spatial dims */
    int64_t k[QP_MAXSP], s[QP_MAXSP], pads[2 * QP_MAXSP];
    enum vg_auto_pad auto_pad;
    int ceil_mode, count_include_pad, channels_last;
    int64_t kvol;
    int konst;
    struct qp x, y;
    struct qmul *muls; /* [kvol + 1] when konst: multiplier for each divisor */
};

static void qpool_release(void *p)
{
    struct qpool_state *st = p;
    if (st)
        free(st->muls);
    free(st);
}

static void qpool_muls(struct qmul *muls, int64_t kvol, struct qp x, struct qp y)
{
    int acc_bits = q_bits(256.0 * (double)kvol);
    muls[0].m = 0;
    muls[0].shift = 0;
    for (int64_t d = 1; d <= kvol; d++)
        muls[d] = q_avg_mul(x, y, d, acc_bits);
}

static int qpool_init(struct vg_kctx *c)
{
    const int64_t *v;
    size_t n;
    int kx, ky;
    if (c->n_in < 4 || c->n_in > 5)
        return vg_kerr(c, VG_EGRAPH, "takes 4 or 5 inputs (X, X_scale, X_zero_point, Y_scale[, "
                       "Y_zero_point]), has %d", c->n_in);
    enum vg_dtype dt = c->in[0]->dtype;
    if (!q_is8(dt))
        return vg_kerr(c, VG_ETYPE, "X must be uint8 or int8, not %s", vg_dtype_name(dt));
    struct qpool_state *st = calloc(1, sizeof *st);
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    c->state = st;
    st->dt = dt;
    if ((kx = qp_init(c, 1, 2, dt, &st->x)) < 0)
        return kx;
    if ((ky = qp_init(c, 3, 4, dt, &st->y)) < 0)
        return ky;
    n = vg_attr_ints(c->node, "kernel_shape", &v);
    if (n < 1 || n > QP_MAXSP)
        return vg_kerr(c, VG_EUNSUPPORTED, "kernel_shape must have 1 to %d values, has %zu",
                       QP_MAXSP, n);
    st->nsp = (int)n;
    st->kvol = 1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < 1 || v[i] > QP_MAX_KERNEL)
            return vg_kerr(c, VG_EINVAL, "kernel_shape[%zu] = %lld is out of range", i,
                           (long long)v[i]);
        st->k[i] = v[i];
        st->kvol *= v[i];
        st->s[i] = 1;
    }
    if (st->kvol > QP_MAX_KERNEL)
        return vg_kerr(c, VG_EUNSUPPORTED, "a kernel of %lld elements (at most %lld)",
                       (long long)st->kvol, (long long)QP_MAX_KERNEL);
    size_t ns = vg_attr_ints(c->node, "strides", &v);
    if (ns && ns != n)
        return vg_kerr(c, VG_EINVAL, "strides has %zu values, kernel_shape %zu", ns, n);
    for (size_t i = 0; i < ns; i++) {
        if (v[i] < 1)
            return vg_kerr(c, VG_EINVAL, "strides[%zu] = %lld must be >= 1", i, (long long)v[i]);
        st->s[i] = v[i];
    }
    size_t np = vg_attr_ints(c->node, "pads", &v);
    if (np && np != 2 * n)
        return vg_kerr(c, VG_EINVAL, "pads has %zu values, expected %zu", np, 2 * n);
    for (size_t i = 0; i < np; i++) {
        if (v[i] < 0 || v[i] > QP_MAX_KERNEL)
            return vg_kerr(c, VG_EINVAL, "pads[%zu] = %lld is out of range", i, (long long)v[i]);
        st->pads[i] = v[i];
    }
    const char *ap = vg_attr_s(c->node, "auto_pad", "NOTSET");
    int ap_rc = vg_kattr_auto_pad(c, &st->auto_pad);
    if (ap_rc)
        return ap_rc;
    if (st->auto_pad != VG_AUTO_PAD_NOTSET && np)
        return vg_kerr(c, VG_EINVAL, "pads and auto_pad %s are both given", ap);
    st->ceil_mode = vg_attr_i(c->node, "ceil_mode", 0) != 0;
    st->count_include_pad = vg_attr_i(c->node, "count_include_pad", 0) != 0;
    st->channels_last = vg_attr_i(c->node, "channels_last", 0) != 0;
    st->konst = kx && ky;
    if (st->konst) {
        st->muls = malloc((size_t)(st->kvol + 1) * sizeof *st->muls);
        if (!st->muls)
            return vg_kerr(c, VG_ENOMEM, "out of memory");
        qpool_muls(st->muls, st->kvol, st->x, st->y);
    }
    c->out[0]->dtype = dt;
    return 0;
}

/* Output size and effective begin pad of spatial dim i for input size `in`. */
static int qpool_dim(const struct qpool_state *st, int i, int64_t in, int64_t *out, int64_t *pb,
                     int64_t *pe)
{
    int64_t k = st->k[i], s = st->s[i], o;
    switch (st->auto_pad) {
    case VG_AUTO_PAD_VALID:
        o = in >= k ? (in - k) / s + 1 : 0;
        *pb = *pe = 0;
        break;
    case VG_AUTO_PAD_SAME_UPPER:
    case VG_AUTO_PAD_SAME_LOWER:
        vg_same_pads(st->auto_pad, in, k, s, &o, pb, pe);
        break;
    default:
        *pb = st->pads[i];
        *pe = st->pads[i + st->nsp];
        int64_t span = in + *pb + *pe - k;
        if (span < 0)
            return -1;
        o = (st->ceil_mode ? (span + s - 1) / s : span / s) + 1;
        if (st->ceil_mode && (o - 1) * s >= in + *pb)
            o--;
        break;
    }
    *out = o;
    return 0;
}

static int qpool_infer(struct vg_kctx *c)
{
    const struct qpool_state *st = c->state;
    const struct vg_tensor *x = c->in[0];
    struct vg_tensor *o = c->out[0];
    int rc;
    if ((rc = qp_infer(c, 1, 2)) || (rc = qp_infer(c, 3, 4)))
        return rc;
    if (x->rank != st->nsp + 2)
        return vg_kerr(c, VG_ESHAPE, "X has rank %d; kernel_shape needs rank %d", x->rank,
                       st->nsp + 2);
    int first = st->channels_last ? 1 : 2;
    o->rank = x->rank;
    o->dims[0] = x->dims[0];
    if (st->channels_last)
        o->dims[x->rank - 1] = x->dims[x->rank - 1];
    else
        o->dims[1] = x->dims[1];
    for (int i = 0; i < st->nsp; i++) {
        int64_t od, pb, pe;
        if (qpool_dim(st, i, x->dims[first + i], &od, &pb, &pe) < 0)
            return vg_kerr(c, VG_ESHAPE, "kernel %lld is larger than padded input %lld on axis %d",
                           (long long)st->k[i],
                           (long long)(x->dims[first + i] + st->pads[i] + st->pads[i + st->nsp]),
                           first + i);
        o->dims[first + i] = od;
    }
    size_t need = st->konst ? 0 : (size_t)(st->kvol + 1) * sizeof(struct qmul);
    if (st->channels_last)
        need += (size_t)x->dims[x->rank - 1] * sizeof(int32_t) + 64;
    c->scratch_bytes = need;
    return 0;
}

/* Window of output index `o` on one axis: clipped [lo, hi) and the pad-inclusive extent. */
static inline void qpool_win(int64_t o, int64_t s, int64_t k, int64_t pb, int64_t in, int64_t pe,
                             int64_t *lo, int64_t *hi, int64_t *ext)
{
    int64_t a = o * s - pb, b = a + k;
    if (b > in + pe)
        b = in + pe;
    *ext = b - a;
    *lo = a < 0 ? 0 : a;
    *hi = b > in ? in : b;
    if (*hi < *lo)
        *hi = *lo;
}

static int qpool_run(struct vg_kctx *c)
{
    const struct qpool_state *st = c->state;
    const struct vg_tensor *x = c->in[0];
    const struct vg_tensor *o = c->out[0];
    struct qp qx = st->x, qy = st->y;
    const struct qmul *muls = st->muls;
    char *scratch = c->scratch;
    int rc;
    if (!st->konst) {
        if ((rc = qp_run(c, 1, 2, &qx)) || (rc = qp_run(c, 3, 4, &qy)))
            return rc;
        qpool_muls((struct qmul *)scratch, st->kvol, qx, qy);
        muls = (const struct qmul *)scratch;
        scratch += ((size_t)(st->kvol + 1) * sizeof(struct qmul) + 63) / 64 * 64;
    }
    /* Spatial dims padded to 3 from the front. */
    int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1};
    int64_t pb[3] = {0, 0, 0}, pe[3] = {0, 0, 0};
    int first = st->channels_last ? 1 : 2, off = 3 - st->nsp;
    for (int i = 0; i < st->nsp; i++) {
        in[off + i] = x->dims[first + i];
        out[off + i] = o->dims[first + i];
        k[off + i] = st->k[i];
        s[off + i] = st->s[i];
        qpool_dim(st, i, in[off + i], &out[off + i], &pb[off + i], &pe[off + i]);
    }
    int64_t n = x->dims[0], ch = st->channels_last ? x->dims[x->rank - 1] : x->dims[1];
    int64_t isp = in[0] * in[1] * in[2], osp = out[0] * out[1] * out[2];
    int32_t lo = q_min(st->dt), hi = q_max(st->dt), zx = qx.z, zy = qy.z;
    int u8 = st->dt == VG_DT_UINT8;
    const uint8_t *xu = x->data;
    const int8_t *xi = x->data;
    uint8_t *y = o->data;
    if (n * ch * osp == 0)
        return 0;

    for (int64_t b = 0; b < n; b++)
        for (int64_t od = 0; od < out[0]; od++) {
            int64_t d0, d1, de;
            qpool_win(od, s[0], k[0], pb[0], in[0], pe[0], &d0, &d1, &de);
            for (int64_t oh = 0; oh < out[1]; oh++) {
                int64_t h0, h1, he;
                qpool_win(oh, s[1], k[1], pb[1], in[1], pe[1], &h0, &h1, &he);
                for (int64_t ow = 0; ow < out[2]; ow++) {
                    int64_t w0, w1, we;
                    qpool_win(ow, s[2], k[2], pb[2], in[2], pe[2], &w0, &w1, &we);
                    int64_t cnt = (d1 - d0) * (h1 - h0) * (w1 - w0);
                    int64_t div = st->count_include_pad ? de * he * we : cnt;
                    int64_t opos = (od * out[1] + oh) * out[2] + ow;
                    struct qmul q = div > 0 && div <= st->kvol ? muls[div] : muls[0];
                    if (!st->channels_last) {
                        for (int64_t cc = 0; cc < ch; cc++) {
                            int64_t base = (b * ch + cc) * isp;
                            int32_t sum = 0;
                            for (int64_t id = d0; id < d1; id++)
                                for (int64_t ih = h0; ih < h1; ih++) {
                                    int64_t row = base + (id * in[1] + ih) * in[2];
                                    if (u8)
                                        for (int64_t iw = w0; iw < w1; iw++)
                                            sum += xu[row + iw];
                                    else
                                        for (int64_t iw = w0; iw < w1; iw++)
                                            sum += xi[row + iw];
                                }
                            y[(b * ch + cc) * osp + opos] =
                                (uint8_t)q_avg_out(sum - cnt * zx, q, zy, lo, hi);
                        }
                    } else {
                        int32_t *acc = (int32_t *)scratch;
                        memset(acc, 0, (size_t)ch * sizeof *acc);
                        for (int64_t id = d0; id < d1; id++)
                            for (int64_t ih = h0; ih < h1; ih++)
                                for (int64_t iw = w0; iw < w1; iw++) {
                                    int64_t px = (b * isp + (id * in[1] + ih) * in[2] + iw) * ch;
                                    if (u8)
                                        for (int64_t j = 0; j < ch; j++)
                                            acc[j] += xu[px + j];
                                    else
                                        for (int64_t j = 0; j < ch; j++)
                                            acc[j] += xi[px + j];
                                }
                        uint8_t *yo = y + (b * osp + opos) * ch;
                        for (int64_t j = 0; j < ch; j++)
                            yo[j] = (uint8_t)q_avg_out(acc[j] - cnt * zx, q, zy, lo, hi);
                    }
                }
            }
        }
    return 0;
}

/* ---- QLinearConcat --------------------------------------------------------------------------- */

struct qcat_state {
    enum vg_dtype dt;
    int64_t axis_attr;
    int n;        /* tensors */
    int konst;    /* every scale and zero point constant */
    struct qp y;
    uint8_t *tabs;   /* [n][256] when konst */
    uint8_t *copy;   /* [n]: 1 when the input's parameters equal the output's (konst only) */
};

static void qcat_release(void *p)
{
    struct qcat_state *st = p;
    if (st) {
        free(st->tabs);
        free(st->copy);
    }
    free(st);
}

static int qcat_init(struct vg_kctx *c)
{
    if (c->n_in < 5 || (c->n_in - 2) % 3 != 0)
        return vg_kerr(c, VG_EGRAPH,
                       "inputs must be Y_scale, Y_zero_point, then (X, scale, zero point) "
                       "triples; %d inputs", c->n_in);
    if (!vg_attr_find(c->node, "axis"))
        return vg_kerr(c, VG_EINVAL, "attribute axis is required");
    int n = (c->n_in - 2) / 3;
    enum vg_dtype dt = c->in[1] ? c->in[1]->dtype : VG_DT_UNDEFINED;
    for (int i = 0; i < n; i++) {
        const struct vg_tensor *t = c->in[2 + 3 * i];
        if (!t)
            return vg_kerr(c, VG_EGRAPH, "input %d (tensor %d) is required", 2 + 3 * i, i);
        if (dt == VG_DT_UNDEFINED)
            dt = t->dtype;
        if (t->dtype != dt)
            return vg_kerr(c, VG_ETYPE, "input %d is %s, expected %s", 2 + 3 * i,
                           vg_dtype_name(t->dtype), vg_dtype_name(dt));
    }
    if (!q_is8(dt))
        return vg_kerr(c, VG_ETYPE, "tensors must be uint8 or int8, not %s", vg_dtype_name(dt));
    struct qcat_state *st = calloc(1, sizeof *st);
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    c->state = st;
    st->dt = dt;
    st->n = n;
    st->axis_attr = vg_attr_i(c->node, "axis", 0);
    int k = qp_init(c, 0, 1, dt, &st->y);
    if (k < 0)
        return k;
    st->konst = k;
    struct qp *xs = calloc((size_t)n, sizeof *xs);
    if (!xs)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        k = qp_init(c, 3 + 3 * i, 4 + 3 * i, dt, &xs[i]);
        if (k < 0) {
            free(xs);
            return k;
        }
        st->konst &= k;
    }
    if (st->konst) {
        st->tabs = malloc((size_t)n * 256);
        st->copy = malloc((size_t)n);
        if (!st->tabs || !st->copy) {
            free(xs);
            return vg_kerr(c, VG_ENOMEM, "out of memory");
        }
        for (int i = 0; i < n; i++) {
            st->copy[i] = xs[i].s == st->y.s && xs[i].z == st->y.z;
            q_table(st->tabs + (size_t)i * 256, Q_TAB_RESCALE, 0.0f, dt, xs[i], st->y);
        }
    }
    free(xs);
    c->out[0]->dtype = dt;
    return 0;
}

static int qcat_infer(struct vg_kctx *c)
{
    const struct qcat_state *st = c->state;
    const struct vg_tensor *x0 = c->in[2];
    struct vg_tensor *o = c->out[0];
    int rc;
    if ((rc = qp_infer(c, 0, 1)))
        return rc;
    int axis = vg_norm_axis(st->axis_attr, x0->rank);
    if (axis < 0 || x0->rank == 0)
        return vg_kerr(c, VG_ESHAPE, "axis %lld is out of range for rank %d",
                       (long long)st->axis_attr, x0->rank);
    o->rank = x0->rank;
    memcpy(o->dims, x0->dims, sizeof o->dims);
    o->dims[axis] = 0;
    for (int i = 0; i < st->n; i++) {
        const struct vg_tensor *t = c->in[2 + 3 * i];
        if ((rc = qp_infer(c, 3 + 3 * i, 4 + 3 * i)))
            return rc;
        if (t->rank != x0->rank)
            return vg_kerr(c, VG_ESHAPE, "tensor %d has rank %d, tensor 0 rank %d", i, t->rank,
                           x0->rank);
        for (int d = 0; d < t->rank; d++)
            if (d != axis && t->dims[d] != x0->dims[d]) {
                char a[96], b[96];
                vg_shape_str(t, a, sizeof a);
                vg_shape_str(x0, b, sizeof b);
                return vg_kerr(c, VG_ESHAPE, "tensor %d has shape %s, tensor 0 %s (axis %d)", i,
                               a, b, axis);
            }
        o->dims[axis] += t->dims[axis];
    }
    c->scratch_bytes = st->konst ? 0 : (size_t)st->n * 257;
    return 0;
}

static int qcat_run(struct vg_kctx *c)
{
    const struct qcat_state *st = c->state;
    const struct vg_tensor *o = c->out[0];
    const uint8_t *tabs = st->tabs, *copy = st->copy;
    int rc;
    if (!st->konst) {
        struct qp y, x;
        uint8_t *t = c->scratch, *cp = t + (size_t)st->n * 256;
        if ((rc = qp_run(c, 0, 1, &y)))
            return rc;
        for (int i = 0; i < st->n; i++) {
            if ((rc = qp_run(c, 3 + 3 * i, 4 + 3 * i, &x)))
                return rc;
            cp[i] = x.s == y.s && x.z == y.z;
            q_table(t + (size_t)i * 256, Q_TAB_RESCALE, 0.0f, st->dt, x, y);
        }
        tabs = t;
        copy = cp;
    }
    int axis = vg_norm_axis(st->axis_attr, o->rank);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= o->dims[d];
    for (int d = axis + 1; d < o->rank; d++)
        inner *= o->dims[d];
    int64_t orow = o->dims[axis] * inner, at = 0;
    uint8_t *y = o->data;
    for (int i = 0; i < st->n; i++) {
        const struct vg_tensor *t = c->in[2 + 3 * i];
        int64_t row = t->dims[axis] * inner;
        const uint8_t *x = t->data;
        for (int64_t r = 0; r < outer; r++) {
            if (copy[i])
                memcpy(y + r * orow + at, x + r * row, (size_t)row);
            else
                q_lookup(tabs + (size_t)i * 256, st->dt, x + r * row, y + r * orow + at, row);
        }
        at += row;
    }
    return 0;
}

/* ---- table ----------------------------------------------------------------------------------- */

#define MS "com.microsoft"

/* Designated initialisers: fields added to struct vg_op later default to zero. */
#define Q_OP(dom, name, since, in, inf, rn, rel, min)                                             \
    {.domain = dom, .op_type = name, .since_version = since, .init = in, .infer = inf, .run = rn,  \
     .release = rel, .min_inputs = min}

const struct vg_op vg_ops_quant[] = {
    Q_OP("", "QuantizeLinear", 10, quantize_init, qdq_infer, quantize_run, qdq_release, 2),
    Q_OP("", "DequantizeLinear", 10, dequantize_init, qdq_infer, dequantize_run, qdq_release, 2),
    Q_OP("", "DynamicQuantizeLinear", 11, dql_init, dql_infer, dql_run, NULL, 1),
    Q_OP(MS, "QLinearAdd", 1, qadd_init, qbin_infer, qbin_run, qbin_release, 2),
    Q_OP(MS, "QLinearMul", 1, qmul_init, qbin_infer, qbin_run, qbin_release, 2),
    Q_OP(MS, "QLinearSigmoid", 1, qsigmoid_init, qlut_infer, qlut_run, qlut_release, 2),
    Q_OP(MS, "QLinearLeakyRelu", 1, qleaky_init, qlut_infer, qlut_run, qlut_release, 2),
    Q_OP(MS, "QLinearGlobalAveragePool", 1, qgap_init, qgap_infer, qgap_run, qgap_release, 2),
    Q_OP(MS, "QLinearAveragePool", 1, qpool_init, qpool_infer, qpool_run, qpool_release, 2),
    Q_OP(MS, "QLinearConcat", 1, qcat_init, qcat_infer, qcat_run, qcat_release, 1),
    {0},
};
