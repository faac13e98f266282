/*
 * Operator family "activation" (ai.onnx): pointwise activations and the variadic Sum and Mean.
 *
 * Implemented (one table entry per operator, opset differences decided from node->opset; every
 * version up to the newest the engine imports):
 *   HardSigmoid 1, 6      y = max(0, min(1, alpha * x + beta)); alpha 0.2, beta 0.5 by default.
 *   HardSwish 14          y = x * HardSigmoid(x) with alpha 1/6, beta 0.5.
 *   Elu 1, 6              y = x < 0 ? alpha * (e^x - 1) : x; alpha 1 by default.
 *   Selu 1, 6             y = gamma * (x <= 0 ? alpha * (e^x - 1) : x), the spec's defaults.
 *   Softplus 1            y = ln(1 + e^x).
 *   Erf 9, 13             the error function.
 *   PRelu 1, 6, 7, 9, 16  y = x < 0 ? slope * x : x. Slope broadcasts unidirectionally to X
 *                         (numpy rules, the output has X's shape). Opsets 1 and 6 only say that a
 *                         one-element slope is shared; they get the same unidirectional rule, which
 *                         covers that and the same-shape case.
 *   Sum, Mean 1, 6, 8, 13 variadic (1 to 64 inputs); numpy broadcasting from opset 8, identical
 *                         shapes before. Mean is the sum divided by n; inputs are added in order.
 *   `consumed_inputs` (opset 1) is ignored.
 *
 * Types: float and double everywhere; PRelu also int32 and int64 from opset 9 (where the spec
 * adds integers), with wrapping multiplication. Every input must have X's type (VG_ETYPE at load).
 *
 * Numerics: float kernels avoid libm so that the loops vectorise. e^x for x <= 0 (the only range
 * these operators need) is a degree-7 polynomial on the reduced argument times 2^n built in two
 * halves, so results reach the denormal range; e^x - 1 uses its Taylor series for |x| < 0.35 to
 * avoid cancellation. Softplus is max(x, 0) + log1p(e^-|x|) with log1p(t) = 2 atanh(t / (2 + t)),
 * whose series converges fast for t in (0, 1] and has no cancellation. Erf is x * P(x^2) for
 * |x| < 1 and 1 - e^(-x^2) * Q(1/x - 0.6) up to 3.95, beyond which erf rounds to 1 in float;
 * P and Q are least-squares (Chebyshev) fits made for this file. Measured against double libm
 * over [-6, 6] in steps of 1e-5: Erf at most 1.8e-7 relative, Softplus 2.6e-7, e^x - 1 1.6e-7,
 * e^x 1e-7 (2 to 4 float ulps). Double kernels call libm (exp, expm1, log1p, erf).
 *
 * Kernels are plain loops the compiler vectorises: this file asks GCC for tree vectorisation
 * (which -O2 leaves out) and for no trapping math so that the selects on floats are if-converted;
 * nothing here reads the FP exception flags. On x86-64 the float activation kernels are also
 * compiled for AVX2 and for AVX-512 (512-bit vectors), picked once with __builtin_cpu_supports:
 * about 3x and 5x the SSE2 baseline's speed for Erf, Elu, Selu and Softplus. Contraction into
 * FMA is off for the whole file, so every variant performs the same IEEE operations per element
 * and gives bit-identical results.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "no-trapping-math", "fp-contract=off")
#define ACT_IVDEP _Pragma("GCC ivdep")
#else
#define ACT_IVDEP
#endif

/* x86-64: variants of the float kernels for AVX2 and AVX-512, chosen at run time. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define ACT_MULTI 1
#define ACT_T_AVX2 __attribute__((target("avx2")))
#define ACT_T_AVX512 __attribute__((target("avx512f,prefer-vector-width=512")))
#else
#define ACT_MULTI 0
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "op.h"

/* ---- float helpers (vectorisable) ------------------------------------------------------------ */

/* e^x for x <= 0 (larger x is treated as 0); see the design note. */
static inline float act_exp_neg(float x)
{
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float xc = x < -104.0f ? -104.0f : x;
    xc = xc > 0.0f ? 0.0f : xc;
    float t = xc * 1.44269504f + shifter;
    float n = t - shifter;
    float r = xc - n * 0.693359375f; /* ln2 high part: exact product for |n| < 2^12 */
    r = r + n * 2.12194440e-4f;      /* ln2 - 0.693359375 */
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t bits;
    memcpy(&bits, &t, sizeof(bits));
    int32_t ni = (int32_t)(bits - 0x4B400000u); /* n, from the low mantissa bits of t */
    int32_t n1 = ni / 2, n2 = ni - n1;          /* each half >= -52: 2^half is a normal float */
    uint32_t b1 = (uint32_t)(n1 + 127) << 23, b2 = (uint32_t)(n2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof(s1));
    memcpy(&s2, &b2, sizeof(s2));
    return p * s1 * s2;
}

/* e^x - 1 for x <= 0. */
static inline float act_expm1_neg(float x)
{
    float s = 1.0f / 40320;
    s = s * x + 1.0f / 5040;
    s = s * x + 1.0f / 720;
    s = s * x + 1.0f / 120;
    s = s * x + 1.0f / 24;
    s = s * x + 1.0f / 6;
    s = s * x + 0.5f;
    s = s * x + 1.0f;
    s = s * x;
    return x > -0.35f ? s : act_exp_neg(x) - 1.0f;
}

/* ln(1 + e^x) */
static inline float act_softplus(float x)
{
    float ax = fabsf(x);
    float t = act_exp_neg(-ax); /* in (0, 1] */
    float s = t / (2.0f + t);   /* in (0, 1/3] */
    float s2 = s * s;
    float p = 1.0f / 15;
    p = p * s2 + 1.0f / 13;
    p = p * s2 + 1.0f / 11;
    p = p * s2 + 1.0f / 9;
    p = p * s2 + 1.0f / 7;
    p = p * s2 + 1.0f / 5;
    p = p * s2 + 1.0f / 3;
    p = p * s2 + 1.0f;
    float l = 2.0f * s * p;
    /* x > ax is false for NaN, so NaN flows through ax into t and l. */
    return (x > 0.0f ? x : 0.0f) + l;
}

/* erf(x); see the design note for the two fits. */
static inline float act_erf(float x)
{
    float ax = fabsf(x);
    /* |x| < 1: erf(x) / x as a polynomial in x^2. */
    float u = ax * ax;
    float p = 8.00687407e-05f;
    p = p * u - 8.05375110e-04f;
    p = p * u + 5.19295787e-03f;
    p = p * u - 2.68560696e-02f;
    p = p * u + 1.12836346e-01f;
    p = p * u - 3.76126298e-01f;
    p = p * u + 1.12837917e+00f;
    float small = ax * p;
    /* 1 <= |x| < 3.95: erfc(x) e^(x^2) as a polynomial in 1/x - 0.6. */
    float axc = ax < 1.0f ? 1.0f : ax > 3.95f ? 3.95f : ax;
    float t = 1.0f / axc - 0.6f;
    float q = -0.009501269903532549f;
    q = q * t - 0.017431364128370347f;
    q = q * t + 0.04852486470857362f;
    q = q * t - 0.05471299651884086f;
    q = q * t + 0.029598602987576897f;
    q = q * t + 0.04115952448293028f;
    q = q * t - 0.17558178438942892f;
    q = q * t + 0.3909837083394132f;
    q = q * t + 0.2962874748841179f;
    float big = 1.0f - q * act_exp_neg(-axc * axc);
    float r = ax < 1.0f ? small : ax < 3.95f ? big : 1.0f;
    r = ax != ax ? ax : r; /* NaN */
    return copysignf(r, x);
}

/* ---- unary kernels --------------------------------------------------------------------------- */

/* Attribute values a unary kernel may use (alpha, beta, gamma). */
struct act_params {
    float a, b, g;
};

typedef void (*act_un_fn)(const void *x, void *y, int64_t n, const struct act_params *p);

#define ACT_UN_BODY(name, T, EXPR, ATTR)                                                           \
    ATTR static void name(const void *px, void *py, int64_t n, const struct act_params *prm)       \
    {                                                                                              \
        const T *xs = px;                                                                          \
        T *ys = py;                                                                                \
        const T alpha = (T)prm->a, beta = (T)prm->b, gamma = (T)prm->g;                            \
        (void)alpha;                                                                               \
        (void)beta;                                                                                \
        (void)gamma;                                                                               \
        ACT_IVDEP for (int64_t i = 0; i < n; i++)                                                  \
        {                                                                                          \
            T x = xs[i];                                                                           \
            ys[i] = (EXPR);                                                                        \
        }                                                                                          \
    }

#define ACT_UN(name, T, EXPR) ACT_UN_BODY(name, T, EXPR, )

/* cpu level for the float kernels: 0 baseline, 1 AVX2, 2 AVX-512F (decided once) */
static int act_cpu_level(void)
{
#if ACT_MULTI
    static int level = -1;
    int l = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (l < 0) {
        __builtin_cpu_init();
        l = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&level, l, __ATOMIC_RELAXED);
    }
    return l;
#else
    return 0;
#endif
}

/* A float kernel in three builds and a dispatcher `name` choosing one by act_cpu_level(). */
#if ACT_MULTI
#define ACT_UN_F32(name, EXPR)                                                                     \
    ACT_UN_BODY(name##_base, float, EXPR, )                                                        \
    ACT_UN_BODY(name##_avx2, float, EXPR, ACT_T_AVX2)                                              \
    ACT_UN_BODY(name##_avx512, float, EXPR, ACT_T_AVX512)                                          \
    static void name(const void *px, void *py, int64_t n, const struct act_params *prm)            \
    {                                                                                              \
        int l = act_cpu_level();                                                                   \
        (l == 2 ? name##_avx512 : l == 1 ? name##_avx2 : name##_base)(px, py, n, prm);             \
    }
#else
#define ACT_UN_F32(name, EXPR) ACT_UN_BODY(name, float, EXPR, )
#endif

/* `v < 0 ? 0 : v` then `v > 1 ? 1 : v` keeps NaN, as numpy's clip does. */
#define ACT_CLAMP01(v) ((v) < 0 ? 0 : (v) > 1 ? 1 : (v))

ACT_UN_F32(act_hardsigmoid_f32, ACT_CLAMP01(alpha *x + beta))
ACT_UN(act_hardsigmoid_f64, double, ACT_CLAMP01(alpha *x + beta))
ACT_UN_F32(act_hardswish_f32, x *ACT_CLAMP01(x *(1.0f / 6.0f) + 0.5f))
ACT_UN(act_hardswish_f64, double, x *ACT_CLAMP01(x *(1.0 / 6.0) + 0.5))
ACT_UN_F32(act_elu_f32, x < 0 ? alpha * act_expm1_neg(x) : x)
ACT_UN(act_elu_f64, double, x < 0 ? alpha * expm1(x) : x)
ACT_UN_F32(act_selu_f32, gamma *(x <= 0 ? alpha * act_expm1_neg(x) : x))
ACT_UN(act_selu_f64, double, gamma *(x <= 0 ? alpha * expm1(x) : x))
ACT_UN_F32(act_softplus_f32, act_softplus(x))
ACT_UN(act_softplus_f64, double, (x > 0 ? x : 0) + log1p(exp(-fabs(x))))
ACT_UN_F32(act_erf_f32, act_erf(x))
ACT_UN(act_erf_f64, double, erf(x))

struct act_unop {
    act_un_fn f32, f64;
    float a, b, g; /* attribute defaults */
};

static const struct act_unop act_hardsigmoid = {act_hardsigmoid_f32, act_hardsigmoid_f64, 0.2f,
                                                0.5f, 0.0f};
static const struct act_unop act_hardswish = {act_hardswish_f32, act_hardswish_f64, 0, 0, 0};
static const struct act_unop act_elu = {act_elu_f32, act_elu_f64, 1.0f, 0, 0};
static const struct act_unop act_selu = {act_selu_f32, act_selu_f64, 1.67326319217681884765625f, 0,
                                         1.05070102214813232421875f};
static const struct act_unop act_softplus_op = {act_softplus_f32, act_softplus_f64, 0, 0, 0};
static const struct act_unop act_erf_op = {act_erf_f32, act_erf_f64, 0, 0, 0};

static int act_float_type(enum vg_dtype t)
{
    return t == VG_DT_FLOAT || t == VG_DT_DOUBLE;
}

static int act_unary_init(struct vg_kctx *c, const struct act_unop *op)
{
    int rc = vg_kctx_need_inputs(c, 1);
    if (rc)
        return rc;
    if (c->n_in != 1)
        return vg_kerr(c, VG_EGRAPH, "takes 1 input, node lists %d", c->n_in);
    if (!act_float_type(c->in[0]->dtype))
        return vg_kerr(c, VG_ETYPE, "input type %s is not supported (float or double)",
                       vg_dtype_name(c->in[0]->dtype));
    float v;
    if ((rc = vg_kattr_f(c, "alpha", op->a, &v)) || (rc = vg_kattr_f(c, "beta", 0, &v)) ||
        (rc = vg_kattr_f(c, "gamma", 0, &v)))
        return rc;
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

static int act_unary_infer(struct vg_kctx *c)
{
    c->out[0]->rank = c->in[0]->rank;
    memcpy(c->out[0]->dims, c->in[0]->dims, sizeof(c->out[0]->dims));
    return 0;
}

static int act_unary_run(struct vg_kctx *c, const struct act_unop *op)
{
    struct act_params p = {vg_attr_f(c->node, "alpha", op->a), vg_attr_f(c->node, "beta", op->b),
                           vg_attr_f(c->node, "gamma", op->g)};
    act_un_fn fn = c->in[0]->dtype == VG_DT_FLOAT ? op->f32 : op->f64;
    fn(c->in[0]->data, c->out[0]->data, vg_tensor_numel(c->in[0]), &p);
    return 0;
}

#define ACT_UNARY_WRAPPERS(lname, desc)                                                            \
    static int lname##_init(struct vg_kctx *c)                                                     \
    {                                                                                              \
        return act_unary_init(c, &desc);                                                           \
    }                                                                                              \
    static int lname##_run(struct vg_kctx *c)                                                      \
    {                                                                                              \
        return act_unary_run(c, &desc);                                                            \
    }

ACT_UNARY_WRAPPERS(hardsigmoid, act_hardsigmoid)
ACT_UNARY_WRAPPERS(hardswish, act_hardswish)
ACT_UNARY_WRAPPERS(elu, act_elu)
ACT_UNARY_WRAPPERS(selu, act_selu)
ACT_UNARY_WRAPPERS(softplus, act_softplus_op)
ACT_UNARY_WRAPPERS(erf, act_erf_op)

/* ---- binary kernels (walked over broadcast inputs by vg_binary_nd, tensor.c) ----------------- */

/* A vg_bin_fn (op.h) for one type. */
#define ACT_BIN(name, T, EXPR)                                                                     \
    static void name(const void *pa, int sa, const void *pb, int sb, void *po, int64_t n)          \
    {                                                                                              \
        const T *as = pa, *bs = pb;                                                                \
        T *os = po;                                                                                \
        if (sa && sb) {                                                                            \
            ACT_IVDEP for (int64_t i = 0; i < n; i++)                                              \
            {                                                                                      \
                T x = as[i], y = bs[i];                                                            \
                os[i] = (EXPR);                                                                    \
            }                                                                                      \
        } else if (sa) {                                                                           \
            const T y = bs[0];                                                                     \
            ACT_IVDEP for (int64_t i = 0; i < n; i++)                                              \
            {                                                                                      \
                T x = as[i];                                                                       \
                os[i] = (EXPR);                                                                    \
            }                                                                                      \
        } else if (sb) {                                                                           \
            const T x = as[0];                                                                     \
            ACT_IVDEP for (int64_t i = 0; i < n; i++)                                              \
            {                                                                                      \
                T y = bs[i];                                                                       \
                os[i] = (EXPR);                                                                    \
            }                                                                                      \
        } else {                                                                                   \
            const T x = as[0], y = bs[0];                                                          \
            const T v = (EXPR);                                                                    \
            for (int64_t i = 0; i < n; i++)                                                        \
                os[i] = v;                                                                         \
        }                                                                                          \
    }

/* Wrapping integer product (signed overflow is undefined in C). */
#define ACT_WMUL32(x, y) ((int32_t)((uint32_t)(x) * (uint32_t)(y)))
#define ACT_WMUL64(x, y) ((int64_t)((uint64_t)(x) * (uint64_t)(y)))

ACT_BIN(act_prelu_f32, float, x < 0 ? y * x : x)
ACT_BIN(act_prelu_f64, double, x < 0 ? y * x : x)
ACT_BIN(act_prelu_i32, int32_t, x < 0 ? ACT_WMUL32(y, x) : x)
ACT_BIN(act_prelu_i64, int64_t, x < 0 ? ACT_WMUL64(y, x) : x)
ACT_BIN(act_add_f32, float, x + y)
ACT_BIN(act_add_f64, double, x + y)

static int act_same_shape(const struct vg_tensor *a, const struct vg_tensor *b)
{
    if (a->rank != b->rank)
        return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i])
            return 0;
    return 1;
}

/* ---- PRelu ----------------------------------------------------------------------------------- */

static int prelu_init(struct vg_kctx *c)
{
    int rc = vg_kctx_need_inputs(c, 2);
    if (rc)
        return rc;
    if (c->n_in != 2)
        return vg_kerr(c, VG_EGRAPH, "takes 2 inputs, node lists %d", c->n_in);
    enum vg_dtype t = c->in[0]->dtype;
    int ok = act_float_type(t) || (c->node->opset >= 9 && (t == VG_DT_INT32 || t == VG_DT_INT64));
    if (!ok)
        return vg_kerr(c, VG_ETYPE, "input type %s is not supported at opset %lld",
                       vg_dtype_name(t), (long long)c->node->opset);
    if (c->in[1]->dtype != t)
        return vg_kerr(c, VG_ETYPE, "slope has type %s, X has %s", vg_dtype_name(c->in[1]->dtype),
                       vg_dtype_name(t));
    c->out[0]->dtype = t;
    return 0;
}

static int prelu_infer(struct vg_kctx *c)
{
    const struct vg_tensor *shapes[2] = {c->in[0], c->in[1]};
    struct vg_tensor o = {.dtype = c->in[0]->dtype};
    int rc = vg_broadcast_shape(c, 2, shapes, &o);
    if (rc)
        return rc;
    if (!act_same_shape(&o, c->in[0])) {
        char sx[160], ss[160];
        vg_shape_str(c->in[0], sx, sizeof(sx));
        vg_shape_str(c->in[1], ss, sizeof(ss));
        return vg_kerr(c, VG_ESHAPE,
                       "slope %s does not broadcast unidirectionally to X %s (it would change "
                       "X's shape)",
                       ss, sx);
    }
    return act_unary_infer(c);
}

static int prelu_run(struct vg_kctx *c)
{
    int64_t sx[VG_MAX_RANK], ss[VG_MAX_RANK];
    vg_bin_fn fn;
    switch (c->in[0]->dtype) {
    case VG_DT_FLOAT: fn = act_prelu_f32; break;
    case VG_DT_DOUBLE: fn = act_prelu_f64; break;
    case VG_DT_INT32: fn = act_prelu_i32; break;
    default: fn = act_prelu_i64; break;
    }
    size_t es = vg_dtype_size(c->out[0]->dtype);
    vg_contig_strides(c->out[0], sx);
    vg_broadcast_strides(c->in[1], c->out[0], ss);
    vg_binary_nd(fn, c->in[0]->data, es, sx, c->in[1]->data, es, ss, c->out[0]->data, es, c->out[0],
                 NULL, 0);
    return 0;
}

/* ---- Sum, Mean ------------------------------------------------------------------------------- */

enum { SUM_MAX_IN = 64 };

static int sum_init(struct vg_kctx *c)
{
    int rc = vg_kctx_need_inputs(c, 1);
    if (rc)
        return rc;
    if (c->n_in > SUM_MAX_IN)
        return vg_kerr(c, VG_EUNSUPPORTED, "more than %d inputs (%d)", SUM_MAX_IN, c->n_in);
    enum vg_dtype t = c->in[0]->dtype;
    if (!act_float_type(t))
        return vg_kerr(c, VG_ETYPE, "input type %s is not supported (float or double)",
                       vg_dtype_name(t));
    for (int i = 1; i < c->n_in; i++) {
        if (!c->in[i])
            return vg_kerr(c, VG_EGRAPH, "input %d is required", i);
        if (c->in[i]->dtype != t)
            return vg_kerr(c, VG_ETYPE, "input %d has type %s, input 0 has %s", i,
                           vg_dtype_name(c->in[i]->dtype), vg_dtype_name(t));
    }
    c->out[0]->dtype = t;
    return 0;
}

static int sum_exec(struct vg_kctx *c, int mean)
{
    struct vg_tensor *o = c->out[0];
    int f32 = o->dtype == VG_DT_FLOAT;
    int64_t n = vg_tensor_numel(o);

    vg_variadic_run(c, f32 ? act_add_f32 : act_add_f64);
    if (mean && c->n_in > 1) {
        if (f32) {
            float *p = o->data, k = (float)c->n_in;
            ACT_IVDEP for (int64_t i = 0; i < n; i++) p[i] /= k;
        } else {
            double *p = o->data, k = (double)c->n_in;
            ACT_IVDEP for (int64_t i = 0; i < n; i++) p[i] /= k;
        }
    }
    return 0;
}

static int sum_run(struct vg_kctx *c)
{
    return sum_exec(c, 0);
}

static int mean_run(struct vg_kctx *c)
{
    return sum_exec(c, 1);
}

/* ---- table ----------------------------------------------------------------------------------- */

/* Designated initialisers: fields the core may add later stay zero. */
#define ACT_OP(name, since, fi, fn, fr, min_in)                                                    \
    {                                                                                              \
        .domain = "", .op_type = name, .since_version = since, .init = fi, .infer = fn, .run = fr, \
        .min_inputs = min_in                                                                       \
    }
#define ACT_UNARY(name, lname, since)                                                              \
    ACT_OP(name, since, lname##_init, act_unary_infer, lname##_run, 1)

const struct vg_op vg_ops_activation[] = {
    ACT_UNARY("HardSigmoid", hardsigmoid, 1),
    ACT_UNARY("HardSwish", hardswish, 14),
    ACT_UNARY("Elu", elu, 1),
    ACT_UNARY("Selu", selu, 1),
    ACT_UNARY("Softplus", softplus, 1),
    ACT_UNARY("Erf", erf, 9),
    ACT_OP("PRelu", 1, prelu_init, prelu_infer, prelu_run, 2),
    ACT_OP("Sum", 1, sum_init, vg_variadic_infer, sum_run, 1),
    ACT_OP("Mean", 1, sum_init, vg_variadic_infer, mean_run, 1),
    {0},
};
