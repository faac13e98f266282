/*
 * Operator family: reductions and arg-reductions (ai.onnx).
 *
 * Subset of the ONNX spec implemented (float16/bfloat16, uint32/uint64 and bool are not engine
 * dtypes and are rejected at load time):
 *  - ArgMax, ArgMin (1, 11, 12, 13): `axis` (default 0, negative counts from the back),
 *    `keepdims` (default 1), `select_last_index` (default 0: first occurrence of the extreme value
 *    wins; 1: last). Output int64. float, double, int32, int64, int8, uint8. An axis of length 0
 *    is a shape error (there is no index to return). NaN gets no special treatment (comparisons
 *    with it are false, so it is never selected unless it comes first).
 *  - ReduceSum (1, 11, 13), ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceSumSquare,
 *    ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp (1, 11, 13, 18): `keepdims` (default 1).
 *    The axes come from the `axes` attribute before opset 13 (ReduceSum) or 18 (the others), and
 *    from the optional second input (int64) from then on, with `noop_with_empty_axes`: when the
 *    axes are empty or absent, 0 reduces over all axes and 1 returns the input unchanged.
 *    Negative axes count from the back; a repeated axis is an error. float, double, int32, int64,
 *    plus int8 and uint8 for ReduceMax/ReduceMin from opset 12.
 *  - Empty-set reductions (a reduced axis of length 0) give the spec's identities: 0 for sums and
 *    ReduceL1/L2, 1 for ReduceProd, -inf (float) or the type's minimum for ReduceMax, +inf or the
 *    maximum for ReduceMin, -inf for ReduceLogSum/ReduceLogSumExp (float), NaN for a float
 *    ReduceMean (0/0) and 0 for an integer one (the spec leaves it undefined).
 *  - ReduceMax/ReduceMin propagate NaN. Integer sums and products wrap (two's complement);
 *    integer results of sqrt/log/exp saturate to the type's range.
 *  - ReduceLogSumExp subtracts the per-output maximum before exponentiating, so it does not
 *    overflow on large inputs.
 *
 * Method: adjacent axes that are both reduced or both kept are merged, and one pass walks the
 * input in memory order, folding each element into its output slot (the output starts at the
 * reduction's identity), so reads are always sequential.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

static const char *shape_str(const struct vg_tensor *t, char *buf, size_t len)
{
    size_t pos = 0;
    pos += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->rank && pos < len; i++)
        pos +=
            (size_t)snprintf(buf + pos, len - pos, "%s%lld", i ? ", " : "", (long long)t->dims[i]);
    if (pos < len)
        snprintf(buf + pos, len - pos, "]");
    return buf;
}

/* Dtype index used by the kernel tables. */
enum { T_F32, T_F64, T_I32, T_I64, T_I8, T_U8, T_COUNT };

static int type_index(enum vg_dtype dt)
{
    switch (dt) {
    case VG_DT_FLOAT: return T_F32;
    case VG_DT_DOUBLE: return T_F64;
    case VG_DT_INT32: return T_I32;
    case VG_DT_INT64: return T_I64;
    case VG_DT_INT8: return T_I8;
    case VG_DT_UINT8: return T_U8;
    default: return -1;
    }
}

#define CAST_F32(v) ((float)(v))
#define CAST_F64(v) ((double)(v))

/* ---- ArgMax, ArgMin -------------------------------------------------------------------------- */

struct arg_state {
    int is_min;
    int keepdims;
    int last;
    int64_t axis;
};

static int arg_init_common(struct vg_kctx *c, int is_min)
{
    enum vg_dtype t = c->in[0]->dtype;
    if (type_index(t) < 0)
        return vg_kerr(c, VG_EUNSUPPORTED,
                       "input type %s not supported (float, double, int32, int64, int8, uint8)",
                       vg_dtype_name(t));
    struct arg_state *st = calloc(1, sizeof(*st));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    st->is_min = is_min;
    st->axis = vg_attr_i(c->node, "axis", 0);
    st->keepdims = vg_attr_i(c->node, "keepdims", 1) != 0;
    st->last = vg_attr_i(c->node, "select_last_index", 0) != 0;
    c->state = st;
    c->out[0]->dtype = VG_DT_INT64;
    return 0;
}

static int argmax_init(struct vg_kctx *c)
{
    return arg_init_common(c, 0);
}

static int argmin_init(struct vg_kctx *c)
{
    return arg_init_common(c, 1);
}

static int arg_infer(struct vg_kctx *c)
{
    const struct arg_state *st = c->state;
    const struct vg_tensor *x = c->in[0];
    struct vg_tensor *y = c->out[0];
    char sx[160];
    int a = vg_norm_axis(st->axis, x->rank);
    if (a < 0)
        return vg_kerr(c, VG_ESHAPE, "axis %lld out of range for input %s (rank %d)",
                       (long long)st->axis, shape_str(x, sx, sizeof(sx)), x->rank);
    y->rank = 0;
    int64_t rest = 1;
    for (int i = 0; i < x->rank; i++) {
        if (i == a) {
            if (st->keepdims)
                y->dims[y->rank++] = 1;
            continue;
        }
        y->dims[y->rank++] = x->dims[i];
        rest *= x->dims[i];
    }
    if (x->dims[a] == 0 && rest > 0)
        return vg_kerr(c, VG_ESHAPE, "axis %d of input %s is empty: no index to return", a,
                       shape_str(x, sx, sizeof(sx)));
    return 0;
}

#define DEFINE_ARG(NAME, T)                                                                        \
    static void NAME(const void *xv, int64_t *y, int64_t outer, int64_t n, int64_t inner,          \
                     int is_min, int last)                                                         \
    {                                                                                              \
        const T *x = xv;                                                                           \
        for (int64_t o = 0; o < outer; o++)                                                        \
            for (int64_t j = 0; j < inner; j++) {                                                  \
                const T *p = x + o * n * inner + j;                                                \
                T best = p[0];                                                                     \
                int64_t bi = 0;                                                                    \
                for (int64_t k = 1; k < n; k++) {                                                  \
                    T v = p[k * inner];                                                            \
                    int better = is_min ? (v < best || (last && !(v > best)))                      \
                                        : (v > best || (last && !(v < best)));                     \
                    if (better) {                                                                  \
                        best = v;                                                                  \
                        bi = k;                                                                    \
                    }                                                                              \
                }                                                                                  \
                y[o * inner + j] = bi;                                                             \
            }                                                                                      \
    }
DEFINE_ARG(arg_f32, float)
DEFINE_ARG(arg_f64, double)
DEFINE_ARG(arg_i32, int32_t)
DEFINE_ARG(arg_i64, int64_t)
DEFINE_ARG(arg_i8, int8_t)
DEFINE_ARG(arg_u8, uint8_t)

typedef void (*arg_fn)(const void *, int64_t *, int64_t, int64_t, int64_t, int, int);
static const arg_fn arg_kernels[T_COUNT] = {arg_f32, arg_f64, arg_i32, arg_i64, arg_i8, arg_u8};

static int arg_run(struct vg_kctx *c)
{
    const struct arg_state *st = c->state;
    const struct vg_tensor *x = c->in[0];
    int a = vg_norm_axis(st->axis, x->rank);
    if (a < 0)
        return vg_kerr(c, VG_ESHAPE, "shapes changed after planning");
    int64_t outer = 1, inner = 1, n = x->dims[a];
    for (int i = 0; i < a; i++)
        outer *= x->dims[i];
    for (int i = a + 1; i < x->rank; i++)
        inner *= x->dims[i];
    if (outer * inner == 0)
        return 0;
    arg_kernels[type_index(x->dtype)](x->data, c->out[0]->data, outer, n, inner, st->is_min,
                                      st->last);
    return 0;
}

/* ---- Reduce* --------------------------------------------------------------------------------- */

enum red_kind {
    RK_SUM,
    RK_MEAN,
    RK_MAX,
    RK_MIN,
    RK_PROD,
    RK_SUMSQ,
    RK_L1,
    RK_L2,
    RK_LOGSUM,
    RK_LOGSUMEXP,
};

/* The fold each kind applies per element (LogSumExp folds a maximum, then sums in scratch). */
enum { FOLD_SUM, FOLD_SUMSQ, FOLD_L1, FOLD_PROD, FOLD_MAX, FOLD_MIN, FOLD_COUNT };

static const int kind_fold[] = {
    [RK_SUM] = FOLD_SUM,    [RK_MEAN] = FOLD_SUM,      [RK_MAX] = FOLD_MAX, [RK_MIN] = FOLD_MIN,
    [RK_PROD] = FOLD_PROD,  [RK_SUMSQ] = FOLD_SUMSQ,   [RK_L1] = FOLD_L1,   [RK_L2] = FOLD_SUMSQ,
    [RK_LOGSUM] = FOLD_SUM, [RK_LOGSUMEXP] = FOLD_MAX,
};

struct red_state {
    enum red_kind kind;
    int keepdims;
    int noop_empty; /* noop_with_empty_axes */
    int axes_input; /* axes from input 1 (ReduceSum 13+, others 18+) */
    size_t n_axes;  /* attribute form */
    const int64_t *axes;
};

/* Iteration plan derived from the input shape and the axes. */
struct red_geom {
    int noop; /* output is the input */
    int rank; /* merged axes, >= 1 */
    int64_t size[VG_MAX_RANK];
    int64_t ostride[VG_MAX_RANK]; /* output stride per merged axis, 0 when reduced */
    int64_t count;                /* input elements folded into each output element */
    int out_rank;
    int64_t out_dims[VG_MAX_RANK];
};

static int reduce_init(struct vg_kctx *c, enum red_kind kind)
{
    const struct vg_node *n = c->node;
    enum vg_dtype t = c->in[0]->dtype;
    int extremum = kind == RK_MAX || kind == RK_MIN;
    int ti = type_index(t);
    if (ti < 0 || (ti >= T_I8 && !(extremum && n->opset >= 12)))
        return vg_kerr(c, VG_EUNSUPPORTED, "input type %s not supported (float, double, int32, %s)",
                       vg_dtype_name(t),
                       !extremum        ? "int64"
                       : n->opset >= 12 ? "int64, int8, uint8"
                                        : "int64; int8 and uint8 from opset 12");
    /* Validated in a local copy so that a failure leaves nothing to free. */
    struct red_state st = {.kind = kind};
    int since = kind == RK_SUM ? 13 : 18;
    st.keepdims = vg_attr_i(n, "keepdims", 1) != 0;
    st.axes_input = n->opset >= since;
    if (st.axes_input) {
        st.noop_empty = vg_attr_i(n, "noop_with_empty_axes", 0) != 0;
        if (vg_attr_find(n, "axes"))
            return vg_kerr(c, VG_EINVAL, "attribute 'axes' is an input from opset %d", since);
        if (c->n_in >= 2 && c->in[1] && c->in[1]->dtype != VG_DT_INT64)
            return vg_kerr(c, VG_ETYPE, "axes must be int64, got %s",
                           vg_dtype_name(c->in[1]->dtype));
    } else {
        st.n_axes = vg_attr_ints(n, "axes", &st.axes);
        if (c->n_in >= 2 && c->in[1])
            return vg_kerr(c, VG_EGRAPH, "axes input needs opset %d or later", since);
    }
    struct red_state *heap = malloc(sizeof(*heap));
    if (!heap)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    *heap = st;
    c->state = heap;
    c->out[0]->dtype = t;
    return 0;
}

/*
 * Builds the plan. `axes_t` is the axes input (NULL when absent or in attribute form).
 * c is used for error messages only; infer has validated what run passes again.
 */
static int red_geometry(struct vg_kctx *c, const struct red_state *st, const struct vg_tensor *x,
                        const struct vg_tensor *axes_t, struct red_geom *g)
{
    char sx[160];
    int r = x->rank;
    const int64_t *axes = st->axes;
    int64_t n_axes = (int64_t)st->n_axes;
    if (st->axes_input) {
        axes = axes_t ? axes_t->data : NULL;
        n_axes = axes_t ? vg_tensor_numel(axes_t) : 0;
    }
    int reduced[VG_MAX_RANK] = {0};
    memset(g, 0, sizeof(*g));
    if (n_axes == 0) {
        if (st->noop_empty) {
            g->noop = 1;
            g->out_rank = r;
            memcpy(g->out_dims, x->dims, sizeof(g->out_dims));
            return 0;
        }
        for (int i = 0; i < r; i++)
            reduced[i] = 1;
    }
    for (int64_t i = 0; i < n_axes; i++) {
        int a = vg_norm_axis(axes[i], r);
        if (a < 0)
            return vg_kerr(c, VG_EINVAL, "axis %lld out of range for input %s (rank %d)",
                           (long long)axes[i], shape_str(x, sx, sizeof(sx)), r);
        if (reduced[a])
            return vg_kerr(c, VG_EINVAL, "axis %lld listed twice", (long long)axes[i]);
        reduced[a] = 1;
    }
    g->count = 1;
    for (int i = 0; i < r; i++) {
        if (reduced[i]) {
            g->count *= x->dims[i];
            if (st->keepdims)
                g->out_dims[g->out_rank++] = 1;
        } else {
            g->out_dims[g->out_rank++] = x->dims[i];
        }
        if (x->dims[i] == 1)
            continue; /* size-1 axes change nothing in the walk */
        if (g->rank > 0 && (g->ostride[g->rank - 1] != 0) == !reduced[i]) {
            g->size[g->rank - 1] *= x->dims[i];
        } else {
            g->size[g->rank] = x->dims[i];
            g->ostride[g->rank] = !reduced[i]; /* marks kept axes; real strides below */
            g->rank++;
        }
    }
    if (g->rank == 0) {
        g->rank = 1;
        g->size[0] = 1;
        g->ostride[0] = 0;
    }
    int64_t s = 1;
    for (int i = g->rank - 1; i >= 0; i--) {
        if (g->ostride[i]) {
            g->ostride[i] = s;
            s *= g->size[i];
        }
    }
    return 0;
}

static int reduce_infer(struct vg_kctx *c)
{
    const struct red_state *st = c->state;
    const struct vg_tensor *axes_t = NULL;
    if (st->axes_input && c->n_in >= 2 && c->in[1]) {
        axes_t = vg_kctx_value(c, 1);
        if (!axes_t)
            return -VG_EDYNAMIC;
    }
    struct red_geom g;
    int rc = red_geometry(c, st, c->in[0], axes_t, &g);
    if (rc)
        return rc;
    struct vg_tensor *y = c->out[0];
    y->rank = g.out_rank;
    memcpy(y->dims, g.out_dims, sizeof(y->dims));
    if (st->kind == RK_LOGSUMEXP && !g.noop)
        c->scratch_bytes = (size_t)vg_tensor_numel(y) * sizeof(double);
    return 0;
}

/* Folds: U is the unsigned twin of integer T so sums and products wrap instead of overflowing. */
#define FOLD_SUM_OP(T, U, a, v) ((T)((U)(a) + (U)(v)))
#define FOLD_SUMSQ_OP(T, U, a, v) ((T)((U)(a) + (U)(v) * (U)(v)))
#define FOLD_L1_OP(T, U, a, v) ((T)((U)(a) + ((v) < 0 ? (U)0 - (U)(v) : (U)(v))))
#define FOLD_PROD_OP(T, U, a, v) ((T)((U)(a) * (U)(v)))
#define FOLD_MAX_OP(T, U, a, v) ((v) > (a) || isnan((double)(v)) ? (v) : (a))
#define FOLD_MIN_OP(T, U, a, v) ((v) < (a) || isnan((double)(v)) ? (v) : (a))

#define DEFINE_WALK(NAME, T, U, FOLD)                                                              \
    static void NAME(const struct red_geom *g, const void *xv, int64_t x_numel, void *yv)          \
    {                                                                                              \
        const T *x = xv;                                                                           \
        T *y = yv;                                                                                 \
        int r = g->rank;                                                                           \
        int64_t inner = g->size[r - 1], off = 0;                                                   \
        int64_t idx[VG_MAX_RANK] = {0};                                                            \
        for (int64_t pos = 0; pos < x_numel; pos += inner) {                                       \
            const T *xp = x + pos;                                                                 \
            if (g->ostride[r - 1] == 0) {                                                          \
                T acc = y[off];                                                                    \
                for (int64_t i = 0; i < inner; i++)                                                \
                    acc = FOLD(T, U, acc, xp[i]);                                                  \
                y[off] = acc;                                                                      \
            } else {                                                                               \
                T *yp = y + off;                                                                   \
                for (int64_t i = 0; i < inner; i++)                                                \
                    yp[i] = FOLD(T, U, yp[i], xp[i]);                                              \
            }                                                                                      \
            for (int d = r - 2; d >= 0; d--) {                                                     \
                off += g->ostride[d];                                                              \
                if (++idx[d] < g->size[d])                                                         \
                    break;                                                                         \
                off -= g->ostride[d] * g->size[d];                                                 \
                idx[d] = 0;                                                                        \
            }                                                                                      \
        }                                                                                          \
    }

#define DEFINE_WALKS_WIDE(FOLD_NAME, FOLD)                                                         \
    DEFINE_WALK(walk_##FOLD_NAME##_f32, float, float, FOLD)                                        \
    DEFINE_WALK(walk_##FOLD_NAME##_f64, double, double, FOLD)                                      \
    DEFINE_WALK(walk_##FOLD_NAME##_i32, int32_t, uint32_t, FOLD)                                   \
    DEFINE_WALK(walk_##FOLD_NAME##_i64, int64_t, uint64_t, FOLD)
#define DEFINE_WALKS_ALL(FOLD_NAME, FOLD)                                                          \
    DEFINE_WALKS_WIDE(FOLD_NAME, FOLD)                                                             \
    DEFINE_WALK(walk_##FOLD_NAME##_i8, int8_t, uint8_t, FOLD)                                      \
    DEFINE_WALK(walk_##FOLD_NAME##_u8, uint8_t, uint8_t, FOLD)

DEFINE_WALKS_WIDE(sum, FOLD_SUM_OP)
DEFINE_WALKS_WIDE(sumsq, FOLD_SUMSQ_OP)
DEFINE_WALKS_WIDE(l1, FOLD_L1_OP)
DEFINE_WALKS_WIDE(prod, FOLD_PROD_OP)
DEFINE_WALKS_ALL(max, FOLD_MAX_OP)
DEFINE_WALKS_ALL(min, FOLD_MIN_OP)

typedef void (*walk_fn)(const struct red_geom *, const void *, int64_t, void *);
#define WALKS_WIDE(F)                                                                              \
    {                                                                                              \
        walk_##F##_f32, walk_##F##_f64, walk_##F##_i32, walk_##F##_i64, NULL, NULL                 \
    }
#define WALKS_ALL(F)                                                                               \
    {                                                                                              \
        walk_##F##_f32, walk_##F##_f64, walk_##F##_i32, walk_##F##_i64, walk_##F##_i8,             \
            walk_##F##_u8                                                                          \
    }
static const walk_fn walk_kernels[FOLD_COUNT][T_COUNT] = {
    [FOLD_SUM] = WALKS_WIDE(sum),   [FOLD_SUMSQ] = WALKS_WIDE(sumsq), [FOLD_L1] = WALKS_WIDE(l1),
    [FOLD_PROD] = WALKS_WIDE(prod), [FOLD_MAX] = WALKS_ALL(max),      [FOLD_MIN] = WALKS_ALL(min),
};

/* Second LogSumExp pass: sums exp(x - max) per output slot into `acc` (doubles). */
#define DEFINE_LSE_WALK(NAME, T)                                                                   \
    static void NAME(const struct red_geom *g, const void *xv, int64_t x_numel, const void *mv,    \
                     double *acc)                                                                  \
    {                                                                                              \
        const T *x = xv, *mx = mv;                                                                 \
        int r = g->rank;                                                                           \
        int64_t inner = g->size[r - 1], off = 0, step = g->ostride[r - 1];                         \
        int64_t idx[VG_MAX_RANK] = {0};                                                            \
        for (int64_t pos = 0; pos < x_numel; pos += inner) {                                       \
            const T *xp = x + pos;                                                                 \
            for (int64_t i = 0; i < inner; i++)                                                    \
                acc[off + i * step] += exp((double)xp[i] - (double)mx[off + i * step]);            \
            for (int d = r - 2; d >= 0; d--) {                                                     \
                off += g->ostride[d];                                                              \
                if (++idx[d] < g->size[d])                                                         \
                    break;                                                                         \
                off -= g->ostride[d] * g->size[d];                                                 \
                idx[d] = 0;                                                                        \
            }                                                                                      \
        }                                                                                          \
    }
DEFINE_LSE_WALK(lse_f32, float)
DEFINE_LSE_WALK(lse_f64, double)
DEFINE_LSE_WALK(lse_i32, int32_t)
DEFINE_LSE_WALK(lse_i64, int64_t)

typedef void (*lse_fn)(const struct red_geom *, const void *, int64_t, const void *, double *);
static const lse_fn lse_kernels[T_COUNT] = {lse_f32, lse_f64, lse_i32, lse_i64, NULL, NULL};

/*
 * Per-type start and finish: `fill` writes the identity of the reduction, `finish` turns the
 * folded values into the result (mean, sqrt, log). LO/HI are the identities of max/min,
 * EMPTY_MEAN the mean of nothing, CAST converts a double result back to T.
 */
#define DEFINE_ENDS(SUF, T, LO, HI, EMPTY_MEAN, CAST)                                              \
    static void fill_##SUF(enum red_kind k, void *yv, int64_t n)                                   \
    {                                                                                              \
        T *y = yv, v;                                                                              \
        switch (k) {                                                                               \
        case RK_MAX:                                                                               \
        case RK_LOGSUMEXP: v = LO; break;                                                          \
        case RK_MIN: v = HI; break;                                                                \
        case RK_PROD: v = 1; break;                                                                \
        default: v = 0; break;                                                                     \
        }                                                                                          \
        for (int64_t i = 0; i < n; i++)                                                            \
            y[i] = v;                                                                              \
    }                                                                                              \
    static void finish_##SUF(enum red_kind k, void *yv, int64_t n, int64_t count,                  \
                             const double *acc)                                                    \
    {                                                                                              \
        T *y = yv;                                                                                 \
        switch (k) {                                                                               \
        case RK_MEAN:                                                                              \
            for (int64_t i = 0; i < n; i++)                                                        \
                y[i] = count ? (T)(y[i] / (T)count) : EMPTY_MEAN;                                  \
            break;                                                                                 \
        case RK_L2:                                                                                \
            for (int64_t i = 0; i < n; i++)                                                        \
                y[i] = CAST(sqrt((double)y[i]));                                                   \
            break;                                                                                 \
        case RK_LOGSUM:                                                                            \
            for (int64_t i = 0; i < n; i++)                                                        \
                y[i] = CAST(log((double)y[i]));                                                    \
            break;                                                                                 \
        case RK_LOGSUMEXP:                                                                         \
            for (int64_t i = 0; i < n; i++) {                                                      \
                double m = (double)y[i];                                                           \
                y[i] = CAST(isinf(m) ? m : m + log(acc[i]));                                       \
            }                                                                                      \
            break;                                                                                 \
        default: break;                                                                            \
        }                                                                                          \
    }
DEFINE_ENDS(f32, float, -INFINITY, INFINITY, NAN, CAST_F32)
DEFINE_ENDS(f64, double, -INFINITY, INFINITY, NAN, CAST_F64)
DEFINE_ENDS(i32, int32_t, INT32_MIN, INT32_MAX, 0, vg_sat_i32)
DEFINE_ENDS(i64, int64_t, INT64_MIN, INT64_MAX, 0, vg_sat_i64)
DEFINE_ENDS(i8, int8_t, INT8_MIN, INT8_MAX, 0, vg_sat_i8)
DEFINE_ENDS(u8, uint8_t, 0, UINT8_MAX, 0, vg_sat_u8)

typedef void (*fill_fn)(enum red_kind, void *, int64_t);
typedef void (*finish_fn)(enum red_kind, void *, int64_t, int64_t, const double *);
static const fill_fn fill_kernels[T_COUNT] = {fill_f32, fill_f64, fill_i32,
                                              fill_i64, fill_i8,  fill_u8};
static const finish_fn finish_kernels[T_COUNT] = {finish_f32, finish_f64, finish_i32,
                                                  finish_i64, finish_i8,  finish_u8};

static int reduce_run(struct vg_kctx *c)
{
    const struct red_state *st = c->state;
    const struct vg_tensor *x = c->in[0];
    const struct vg_tensor *axes_t = st->axes_input && c->n_in >= 2 ? c->in[1] : NULL;
    struct vg_tensor *y = c->out[0];
    struct red_geom g;
    int rc = red_geometry(c, st, x, axes_t, &g);
    if (rc)
        return rc;
    int64_t x_numel = vg_tensor_numel(x), y_numel = vg_tensor_numel(y);
    if (g.noop) {
        memcpy(y->data, x->data, (size_t)x_numel * vg_dtype_size(x->dtype));
        return 0;
    }
    int ti = type_index(x->dtype);
    fill_kernels[ti](st->kind, y->data, y_numel);
    walk_kernels[kind_fold[st->kind]][ti](&g, x->data, x_numel, y->data);
    double *acc = NULL;
    if (st->kind == RK_LOGSUMEXP) {
        acc = c->scratch;
        memset(acc, 0, (size_t)y_numel * sizeof(double));
        lse_kernels[ti](&g, x->data, x_numel, y->data, acc);
    }
    finish_kernels[ti](st->kind, y->data, y_numel, g.count, acc);
    return 0;
}

static int reduce_sum_init(struct vg_kctx *c)
{
    return reduce_init(c, RK_SUM);
}

static int reduce_mean_init(struct vg_kctx *c)
{
    return reduce_init(c, RK_MEAN);
}

static int reduce_max_init(struct vg_kctx *c)
{
    return reduce_init(c, RK_MAX);
}

static int reduce_min_init(struct vg_kctx *c)
{
    return reduce_init(c, RK_MIN);
}

static int reduce_prod_init(struct vg_kctx *c)
{
    return reduce_init(c, RK_PROD);
}

static int reduce_sumsq_init(struct vg_kctx *c)
{
    return reduce_init(c, RK_SUMSQ);
}

static int reduce_l1_init(struct vg_kctx *c)
{
    return reduce_init(c, RK_L1);
}

static int reduce_l2_init(struct vg_kctx *c)
{
    return reduce_init(c, RK_L2);
}

static int reduce_logsum_init(struct vg_kctx *c)
{
    return reduce_init(c, RK_LOGSUM);
}

static int reduce_logsumexp_init(struct vg_kctx *c)
{
    return reduce_init(c, RK_LOGSUMEXP);
}

const struct vg_op vg_ops_reduce[] = {
    {"", "ArgMax", 1, 0, argmax_init, arg_infer, arg_run, free, 0, 1},
    {"", "ArgMin", 1, 0, argmin_init, arg_infer, arg_run, free, 0, 1},
    {"", "ReduceSum", 1, 0, reduce_sum_init, reduce_infer, reduce_run, free, 0, 1},
    {"", "ReduceMean", 1, 0, reduce_mean_init, reduce_infer, reduce_run, free, 0, 1},
    {"", "ReduceMax", 1, 0, reduce_max_init, reduce_infer, reduce_run, free, 0, 1},
    {"", "ReduceMin", 1, 0, reduce_min_init, reduce_infer, reduce_run, free, 0, 1},
    {"", "ReduceProd", 1, 0, reduce_prod_init, reduce_infer, reduce_run, free, 0, 1},
    {"", "ReduceSumSquare", 1, 0, reduce_sumsq_init, reduce_infer, reduce_run, free, 0, 1},
    {"", "ReduceL1", 1, 0, reduce_l1_init, reduce_infer, reduce_run, free, 0, 1},
    {"", "ReduceL2", 1, 0, reduce_l2_init, reduce_infer, reduce_run, free, 0, 1},
    {"", "ReduceLogSum", 1, 0, reduce_logsum_init, reduce_infer, reduce_run, free, 0, 1},
    {"", "ReduceLogSumExp", 1, 0, reduce_logsumexp_init, reduce_infer, reduce_run, free, 0, 1},
    {0},
};
