/*
 * Operator family: normalization and Dropout (ai.onnx).
 *
 * Subset of the ONNX spec implemented (float16 and bfloat16 are not engine dtypes). Every
 * operator takes float or double; all its float inputs must share that dtype.
 *  - BatchNormalization (1, 6, 7, 9, 14, 15): inputs X, scale, B, input_mean, input_var, X of
 *    rank >= 2 ([N, C, D1...]). `epsilon` (default 1e-5). Inference: y = x * a + b per channel
 *    with a = scale / sqrt(var + epsilon), b = B - mean * a, computed in double and stored in the
 *    node's state at load when the four parameters are constants (the usual case), else per run
 *    into scratch. Before opset 9, `spatial` = 0 takes parameters of shape [C, D1...] (one per
 *    activation); `is_test` and `consumed_inputs` are ignored (inference whatever is_test says,
 *    as ONNX Runtime does), and so is `momentum` in inference.
 *    Training (`training_mode` = 1, opset 14+): the batch mean and (population) variance per
 *    channel normalise X, and the optional outputs running_mean / running_var are
 *    input_mean * momentum + batch_mean * (1 - momentum) (same for the variance), momentum
 *    default 0.9. The training outputs of opsets 1-13 (mean, var, saved_mean, saved_var, whose
 *    meaning those specs leave open) are a load error, as are extra outputs without
 *    training_mode.
 *  - InstanceNormalization (1, 6): per (n, c) over the spatial dims, population variance,
 *    `epsilon` (default 1e-5); X of rank >= 2 (rank 2 gives B: one element has variance 0).
 *    Statistics in double; y = (x - mean) * a + B, centred first so a large mean does not cancel.
 *  - LayerNormalization (17): `axis` (default -1, negative counts from the back), `epsilon`
 *    (default 1e-5), `stash_type` 1 (float: the only value the opset-17 schema allows for the
 *    Mean and InvStdDev type). Scale and the optional B broadcast unidirectionally to
 *    X.shape[axis:]; the optional outputs Mean and InvStdDev (float) have shape X.shape[:axis]
 *    followed by ones. Statistics are accumulated in double.
 *  - LRN (1, 13): `size` (required, >= 1), `alpha` (1e-4), `beta` (0.75), `bias` (1.0);
 *    square_sum over channels [c - floor((size-1)/2), c + ceil((size-1)/2)] clipped to [0, C-1],
 *    y = x / (bias + alpha / size * square_sum) ^ beta. X of rank >= 2.
 *  - Dropout (1, 6, 7, 10, 12, 13): inference is a copy of X plus the optional mask of all ones
 *    (type T before opset 10, bool from 10). Before opset 12 the node is always in inference mode
 *    (`is_test` and `ratio` are ignored, as ONNX Runtime does: this is an inference engine).
 *    From opset 12 the optional inputs ratio (float or double scalar, default 0.5) and
 *    training_mode (bool scalar, default false) are honoured: training with ratio 0 is a copy;
 *    training with 0 < ratio < 1 drops each element with probability ratio and scales the rest by
 *    1 / (1 - ratio), from a splitmix64 stream seeded by `seed` when given (so every run draws
 *    the same mask) or by the clock and a process-wide counter otherwise. A ratio outside [0, 1) is
 * a load error when it is a constant, else a run error when training.
 *
 * Speed: BatchNormalization is one multiply-add per element over contiguous planes (vectorised:
 * this file asks for tree vectorisation, which -O2 leaves out). A BatchNormalization right after a
 * Conv is normally folded into the Conv at load, so this kernel mostly runs after other producers.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "no-trapping-math")
#endif

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "op.h"

static int float_type(enum vg_dtype t)
{
    return t == VG_DT_FLOAT || t == VG_DT_DOUBLE;
}

/* Inputs first..n-1 (when present) must have X's dtype. */
static int same_dtype(struct vg_kctx *c, int first, int n, const char *const *names)
{
    enum vg_dtype t = c->in[0]->dtype;
    for (int i = first; i < n && i < c->n_in; i++)
        if (c->in[i] && c->in[i]->dtype != t)
            return vg_kerr(c, VG_EUNSUPPORTED, "input %s is %s, X is %s: all must have one dtype",
                           names[i], vg_dtype_name(c->in[i]->dtype), vg_dtype_name(t));
    return 0;
}

static int check_x_float(struct vg_kctx *c)
{
    if (!float_type(c->in[0]->dtype))
        return vg_kerr(c, VG_EUNSUPPORTED, "input type %s not supported (float, double)",
                       vg_dtype_name(c->in[0]->dtype));
    return 0;
}

static int64_t numel(const struct vg_tensor *t)
{
    return vg_tensor_numel(t);
}

static double elem(const struct vg_tensor *t, int64_t i)
{
    return t->dtype == VG_DT_DOUBLE ? ((const double *)t->data)[i]
                                    : (double)((const float *)t->data)[i];
}

/* ---- BatchNormalization ---------------------------------------------------------------------- */

struct bn_state {
    double eps, momentum;
    int training;
    int spatial;
    int64_t n_const; /* parameter count of the folded a/b (0 when not constant) */
    void *ab;        /* a[n_const] then b[n_const], in X's dtype */
};

static void bn_release(void *p)
{
    struct bn_state *st = p;
    if (st)
        free(st->ab);
    free(st);
}

static int bn_init(struct vg_kctx *c)
{
    static const char *const names[] = {"X", "scale", "B", "input_mean", "input_var"};
    int rc = check_x_float(c);
    if (rc == 0 && c->n_in > 5)
        rc = vg_kerr(c, VG_EGRAPH, "BatchNormalization takes at most 5 inputs, the node lists %d",
                     c->n_in);
    if (rc < 0 || (rc = same_dtype(c, 1, 5, names)) < 0)
        return rc;
    struct bn_state *st = calloc(1, sizeof(*st));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    c->state = st;
    st->eps = vg_attr_f(c->node, "epsilon", 1e-5f);
    st->momentum = vg_attr_f(c->node, "momentum", 0.9f);
    st->spatial = c->node->opset < 9 ? vg_attr_i(c->node, "spatial", 1) != 0 : 1;
    int64_t opset = c->node->opset;
    if (opset >= 14) {
        int64_t tm = vg_attr_i(c->node, "training_mode", 0);
        if (tm != 0 && tm != 1)
            return vg_kerr(c, VG_EGRAPH, "training_mode must be 0 or 1, got %lld", (long long)tm);
        st->training = (int)tm;
    }
    int extra = 0;
    for (int i = 1; i < c->n_out; i++)
        if (c->out[i])
            extra = 1;
    if (extra && opset < 14)
        return vg_kerr(c, VG_EUNSUPPORTED,
                       "training outputs (mean, var, saved_mean, saved_var) before opset 14 are "
                       "not supported: only output Y (inference)");
    if (extra && !st->training)
        return vg_kerr(c, VG_EGRAPH, "outputs running_mean and running_var need training_mode = 1");
    if (c->n_out > (opset >= 14 ? 3 : 5))
        return vg_kerr(c, VG_EGRAPH, "too many outputs (%d)", c->n_out);
    for (int i = 0; i < c->n_out; i++)
        if (c->out[i])
            c->out[i]->dtype = c->in[0]->dtype;

    /* Constant parameters: fold scale, B, mean, var into a and b now. */
    if (!st->training && c->in[1]->data && c->in[2]->data && c->in[3]->data && c->in[4]->data) {
        int64_t n = numel(c->in[1]);
        for (int i = 2; i < 5; i++)
            if (numel(c->in[i]) != n)
                return vg_kerr(c, VG_ESHAPE, "input %s has %lld elements, scale has %lld", names[i],
                               (long long)numel(c->in[i]), (long long)n);
        size_t es = vg_dtype_size(c->in[0]->dtype);
        st->ab = malloc((size_t)(2 * n + 1) * es);
        if (!st->ab)
            return vg_kerr(c, VG_ENOMEM, "out of memory");
        for (int64_t i = 0; i < n; i++) {
            double a = elem(c->in[1], i) / sqrt(elem(c->in[4], i) + st->eps);
            double b = elem(c->in[2], i) - elem(c->in[3], i) * a;
            if (c->in[0]->dtype == VG_DT_DOUBLE) {
                ((double *)st->ab)[i] = a;
                ((double *)st->ab)[n + i] = b;
            } else {
                ((float *)st->ab)[i] = (float)a;
                ((float *)st->ab)[n + i] = (float)b;
            }
        }
        st->n_const = n;
    }
    return 0;
}

static int bn_infer(struct vg_kctx *c)
{
    static const char *const names[] = {"X", "scale", "B", "input_mean", "input_var"};
    const struct bn_state *st = c->state;
    const struct vg_tensor *x = c->in[0];
    char sx[160], sp[160];
    if (x->rank < 2) {
        vg_shape_str(x, sx, sizeof(sx));
        return vg_kerr(c, VG_ESHAPE, "X %s must have rank 2 or more (N, C, ...)", sx);
    }
    int64_t C = x->dims[1], S = 1;
    for (int i = 2; i < x->rank; i++)
        S *= x->dims[i];
    int64_t want = st->spatial ? C : C * S;
    for (int i = 1; i < 5; i++) {
        const struct vg_tensor *p = c->in[i];
        int ok = numel(p) == want;
        if (st->spatial)
            ok = ok && p->rank == 1;
        if (!ok) {
            vg_shape_str(x, sx, sizeof(sx));
            vg_shape_str(p, sp, sizeof(sp));
            return vg_kerr(c, VG_ESHAPE, "input %s %s does not match X %s: expected %s", names[i],
                           sp, sx, st->spatial ? "[C]" : "C x D1 x ... elements (spatial = 0)");
        }
    }
    c->out[0]->rank = x->rank;
    memcpy(c->out[0]->dims, x->dims, sizeof(x->dims));
    for (int i = 1; i < c->n_out; i++)
        if (c->out[i]) {
            c->out[i]->rank = 1;
            c->out[i]->dims[0] = C;
        }
    if (st->training)
        c->scratch_bytes = (size_t)(2 * C) * sizeof(double);
    else if (!st->n_const)
        c->scratch_bytes = (size_t)(2 * want) * vg_dtype_size(x->dtype);
    return 0;
}

/* y = x * a[k] + b[k] over planes of S elements; k runs over P parameters (C, or C*S). */
#define DEFINE_BN_APPLY(NAME, T)                                                                   \
    static void NAME(const T *x, T *y, const T *a, const T *b, int64_t N, int64_t C, int64_t S,    \
                     int per_elem)                                                                 \
    {                                                                                              \
        for (int64_t n = 0; n < N; n++)                                                            \
            for (int64_t ch = 0; ch < C; ch++) {                                                   \
                const T *xp = x + (n * C + ch) * S;                                                \
                T *yp = y + (n * C + ch) * S;                                                      \
                if (per_elem) {                                                                    \
                    const T *ap = a + ch * S, *bp = b + ch * S;                                    \
                    for (int64_t i = 0; i < S; i++)                                                \
                        yp[i] = xp[i] * ap[i] + bp[i];                                             \
                } else {                                                                           \
                    T av = a[ch], bv = b[ch];                                                      \
                    for (int64_t i = 0; i < S; i++)                                                \
                        yp[i] = xp[i] * av + bv;                                                   \
                }                                                                                  \
            }                                                                                      \
    }
DEFINE_BN_APPLY(bn_apply_f32, float)
DEFINE_BN_APPLY(bn_apply_f64, double)

static void put(void *dst, enum vg_dtype t, int64_t i, double v)
{
    if (t == VG_DT_DOUBLE)
        ((double *)dst)[i] = v;
    else
        ((float *)dst)[i] = (float)v;
}

static int bn_run(struct vg_kctx *c)
{
    const struct bn_state *st = c->state;
    const struct vg_tensor *x = c->in[0];
    enum vg_dtype t = x->dtype;
    int64_t N = x->dims[0], C = x->dims[1], S = 1;
    for (int i = 2; i < x->rank; i++)
        S *= x->dims[i];
    int64_t P = st->spatial ? C : C * S;
    const void *a, *b;
    if (st->training) {
        /* Batch statistics per channel, two passes in double. */
        double *mean = c->scratch, *var = mean + C;
        double cnt = (double)(N * S);
        for (int64_t ch = 0; ch < C; ch++) {
            double s = 0, q = 0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < S; i++)
                    s += elem(x, (n * C + ch) * S + i);
            double m = cnt > 0 ? s / cnt : 0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < S; i++) {
                    double d = elem(x, (n * C + ch) * S + i) - m;
                    q += d * d;
                }
            mean[ch] = m;
            var[ch] = cnt > 0 ? q / cnt : 0;
        }
        for (int64_t ch = 0; ch < C; ch++) {
            double inv = 1.0 / sqrt(var[ch] + st->eps);
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < S; i++) {
                    int64_t k = (n * C + ch) * S + i;
                    put(c->out[0]->data, t, k,
                        (elem(x, k) - mean[ch]) * inv * elem(c->in[1], ch) + elem(c->in[2], ch));
                }
            double mom = st->momentum;
            if (c->n_out > 1 && c->out[1])
                put(c->out[1]->data, t, ch, elem(c->in[3], ch) * mom + mean[ch] * (1 - mom));
            if (c->n_out > 2 && c->out[2])
                put(c->out[2]->data, t, ch, elem(c->in[4], ch) * mom + var[ch] * (1 - mom));
        }
        return 0;
    }
    if (st->n_const) {
        size_t es = vg_dtype_size(t);
        a = st->ab;
        b = (const char *)st->ab + (size_t)st->n_const * es;
    } else {
        void *ab = c->scratch;
        for (int64_t i = 0; i < P; i++) {
            double av = elem(c->in[1], i) / sqrt(elem(c->in[4], i) + st->eps);
            put(ab, t, i, av);
            put(ab, t, P + i, elem(c->in[2], i) - elem(c->in[3], i) * av);
        }
        a = ab;
        b = (const char *)ab + (size_t)P * vg_dtype_size(t);
    }
    if (t == VG_DT_DOUBLE)
        bn_apply_f64(x->data, c->out[0]->data, a, b, N, C, S, !st->spatial);
    else
        bn_apply_f32(x->data, c->out[0]->data, a, b, N, C, S, !st->spatial);
    return 0;
}

/* ---- InstanceNormalization ------------------------------------------------------------------- */

struct eps_state {
    double eps;
};

static int in_init(struct vg_kctx *c)
{
    static const char *const names[] = {"input", "scale", "B"};
    int rc = check_x_float(c);
    if (rc == 0 && c->n_in > 3)
        rc = vg_kerr(c, VG_EGRAPH,
                     "InstanceNormalization takes at most 3 inputs, the node lists %d", c->n_in);
    if (rc < 0 || (rc = same_dtype(c, 1, 3, names)) < 0)
        return rc;
    struct eps_state *st = calloc(1, sizeof(*st));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    c->state = st;
    st->eps = vg_attr_f(c->node, "epsilon", 1e-5f);
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

static int in_infer(struct vg_kctx *c)
{
    const struct vg_tensor *x = c->in[0];
    char sx[160], sp[160];
    if (x->rank < 2) {
        vg_shape_str(x, sx, sizeof(sx));
        return vg_kerr(c, VG_ESHAPE, "input %s must have rank 2 or more (N, C, ...)", sx);
    }
    for (int i = 1; i < 3; i++)
        if (c->in[i]->rank != 1 || c->in[i]->dims[0] != x->dims[1]) {
            vg_shape_str(x, sx, sizeof(sx));
            vg_shape_str(c->in[i], sp, sizeof(sp));
            return vg_kerr(c, VG_ESHAPE, "%s %s must be [C] for input %s", i == 1 ? "scale" : "B",
                           sp, sx);
        }
    c->out[0]->rank = x->rank;
    memcpy(c->out[0]->dims, x->dims, sizeof(x->dims));
    return 0;
}

#define DEFINE_IN(NAME, T)                                                                         \
    static void NAME(const T *x, T *y, const T *sc, const T *bias, int64_t N, int64_t C,           \
                     int64_t S, double eps)                                                        \
    {                                                                                              \
        for (int64_t p = 0; p < N * C; p++) {                                                      \
            const T *xp = x + p * S;                                                               \
            T *yp = y + p * S;                                                                     \
            double s = 0, q = 0;                                                                   \
            for (int64_t i = 0; i < S; i++)                                                        \
                s += xp[i];                                                                        \
            double m = S ? s / (double)S : 0;                                                      \
            for (int64_t i = 0; i < S; i++) {                                                      \
                double d = xp[i] - m;                                                              \
                q += d * d;                                                                        \
            }                                                                                      \
            double inv = 1.0 / sqrt((S ? q / (double)S : 0) + eps);                                \
            /* centre first: x * a + b would cancel badly when |mean| >> stddev */                 \
            T a = (T)(inv * sc[p % C]), b = bias[p % C], mt = (T)m;                                \
            for (int64_t i = 0; i < S; i++)                                                        \
                yp[i] = (xp[i] - mt) * a + b;                                                      \
        }                                                                                          \
    }
DEFINE_IN(in_f32, float)
DEFINE_IN(in_f64, double)

static int in_run(struct vg_kctx *c)
{
    const struct eps_state *st = c->state;
    const struct vg_tensor *x = c->in[0];
    int64_t S = 1;
    for (int i = 2; i < x->rank; i++)
        S *= x->dims[i];
    if (x->dtype == VG_DT_DOUBLE)
        in_f64(x->data, c->out[0]->data, c->in[1]->data, c->in[2]->data, x->dims[0], x->dims[1], S,
               st->eps);
    else
        in_f32(x->data, c->out[0]->data, c->in[1]->data, c->in[2]->data, x->dims[0], x->dims[1], S,
               st->eps);
    return 0;
}

/* ---- LayerNormalization ---------------------------------------------------------------------- */

struct ln_state {
    double eps;
    int64_t axis;
};

static int ln_init(struct vg_kctx *c)
{
    static const char *const names[] = {"X", "Scale", "B"};
    int rc = check_x_float(c);
    if (rc == 0 && c->n_in > 3)
        rc = vg_kerr(c, VG_EGRAPH, "LayerNormalization takes at most 3 inputs, the node lists %d",
                     c->n_in);
    if (rc < 0 || (rc = same_dtype(c, 1, 3, names)) < 0)
        return rc;
    struct ln_state *st = calloc(1, sizeof(*st));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    c->state = st;
    st->eps = vg_attr_f(c->node, "epsilon", 1e-5f);
    st->axis = vg_attr_i(c->node, "axis", -1);
    int64_t stash = vg_attr_i(c->node, "stash_type", 1);
    if (stash != 1)
        return vg_kerr(c, VG_EUNSUPPORTED, "stash_type %lld not supported (1: float)",
                       (long long)stash);
    if (c->n_out > 3)
        return vg_kerr(c, VG_EGRAPH, "too many outputs (%d)", c->n_out);
    c->out[0]->dtype = c->in[0]->dtype;
    for (int i = 1; i < c->n_out; i++)
        if (c->out[i])
            c->out[i]->dtype = VG_DT_FLOAT;
    return 0;
}

/* Checks that p broadcasts unidirectionally to x.shape[axis:]. */
static int ln_check_param(struct vg_kctx *c, const struct vg_tensor *x, int axis,
                          const struct vg_tensor *p, const char *name)
{
    int nr = x->rank - axis;
    int ok = p->rank <= nr;
    for (int i = 0; ok && i < p->rank; i++) {
        int64_t pd = p->dims[p->rank - 1 - i], xd = x->dims[x->rank - 1 - i];
        ok = pd == xd || pd == 1;
    }
    if (!ok) {
        char sx[160], sp[160];
        vg_shape_str(x, sx, sizeof(sx));
        vg_shape_str(p, sp, sizeof(sp));
        return vg_kerr(c, VG_ESHAPE, "%s %s does not broadcast to X %s from axis %d", name, sp, sx,
                       axis);
    }
    return 0;
}

static int ln_axis(const struct ln_state *st, int rank)
{
    return vg_norm_axis(st->axis, rank);
}

static int ln_infer(struct vg_kctx *c)
{
    const struct ln_state *st = c->state;
    const struct vg_tensor *x = c->in[0];
    int axis = ln_axis(st, x->rank);
    if (axis < 0)
        return vg_kerr(c, VG_ESHAPE, "axis %lld out of range for rank %d", (long long)st->axis,
                       x->rank);
    int rc = ln_check_param(c, x, axis, c->in[1], "Scale");
    if (rc < 0)
        return rc;
    if (c->n_in > 2 && c->in[2] && (rc = ln_check_param(c, x, axis, c->in[2], "B")) < 0)
        return rc;
    c->out[0]->rank = x->rank;
    memcpy(c->out[0]->dims, x->dims, sizeof(x->dims));
    for (int i = 1; i < c->n_out; i++)
        if (c->out[i]) {
            c->out[i]->rank = x->rank;
            for (int d = 0; d < x->rank; d++)
                c->out[i]->dims[d] = d < axis ? x->dims[d] : 1;
        }
    int64_t L = 1;
    for (int d = axis; d < x->rank; d++)
        L *= x->dims[d];
    c->scratch_bytes = (size_t)(2 * L) * sizeof(double);
    return 0;
}

/* Expands p (broadcastable to dims[axis:]) to L doubles. */
static void ln_expand(const struct vg_tensor *x, int axis, const struct vg_tensor *p, double *dst,
                      int64_t L)
{
    if (!p) {
        for (int64_t i = 0; i < L; i++)
            dst[i] = 0;
        return;
    }
    if (numel(p) == L) {
        for (int64_t i = 0; i < L; i++)
            dst[i] = elem(p, i);
        return;
    }
    int nr = x->rank - axis;
    int64_t pstr[VG_MAX_RANK] = {0}, idx[VG_MAX_RANK] = {0};
    int64_t s = 1;
    for (int i = nr - 1; i >= 0; i--) {
        int pi = p->rank - (nr - i); /* p's axis aligned with normalized axis i */
        int64_t pd = pi >= 0 ? p->dims[pi] : 1;
        pstr[i] = pd == 1 ? 0 : s;
        s *= pd;
    }
    for (int64_t i = 0; i < L; i++) {
        int64_t off = 0;
        for (int d = 0; d < nr; d++)
            off += idx[d] * pstr[d];
        dst[i] = elem(p, off);
        for (int d = nr - 1; d >= 0; d--) {
            if (++idx[d] < x->dims[axis + d])
                break;
            idx[d] = 0;
        }
    }
}

static int ln_run(struct vg_kctx *c)
{
    const struct ln_state *st = c->state;
    const struct vg_tensor *x = c->in[0];
    int axis = ln_axis(st, x->rank);
    int64_t rows = 1, L = 1;
    for (int d = 0; d < x->rank; d++)
        *(d < axis ? &rows : &L) *= x->dims[d];
    double *sc = c->scratch, *bi = sc + L;
    ln_expand(x, axis, c->in[1], sc, L);
    ln_expand(x, axis, c->n_in > 2 ? c->in[2] : NULL, bi, L);
    float *mo = c->n_out > 1 && c->out[1] ? c->out[1]->data : NULL;
    float *io = c->n_out > 2 && c->out[2] ? c->out[2]->data : NULL;
    int dbl = x->dtype == VG_DT_DOUBLE;
    for (int64_t r = 0; r < rows; r++) {
        double s = 0, q = 0;
        if (dbl) {
            const double *xp = (const double *)x->data + r * L;
            for (int64_t i = 0; i < L; i++)
                s += xp[i];
        } else {
            const float *xp = (const float *)x->data + r * L;
            for (int64_t i = 0; i < L; i++)
                s += xp[i];
        }
        double m = L ? s / (double)L : 0;
        if (dbl) {
            const double *xp = (const double *)x->data + r * L;
            for (int64_t i = 0; i < L; i++)
                q += (xp[i] - m) * (xp[i] - m);
        } else {
            const float *xp = (const float *)x->data + r * L;
            for (int64_t i = 0; i < L; i++)
                q += (xp[i] - m) * (xp[i] - m);
        }
        double inv = 1.0 / sqrt((L ? q / (double)L : 0) + st->eps);
        if (dbl) {
            const double *xp = (const double *)x->data + r * L;
            double *yp = (double *)c->out[0]->data + r * L;
            for (int64_t i = 0; i < L; i++)
                yp[i] = (xp[i] - m) * inv * sc[i] + bi[i];
        } else {
            const float *xp = (const float *)x->data + r * L;
            float *yp = (float *)c->out[0]->data + r * L;
            for (int64_t i = 0; i < L; i++)
                yp[i] = (float)((xp[i] - m) * inv * sc[i] + bi[i]);
        }
        if (mo)
            mo[r] = (float)m;
        if (io)
            io[r] = (float)inv;
    }
    return 0;
}

/* ---- LRN ------------------------------------------------------------------------------------- */

struct lrn_state {
    int64_t size;
    double alpha, beta, bias;
};

static int lrn_init(struct vg_kctx *c)
{
    int rc = check_x_float(c);
    if (rc == 0 && c->n_in > 1)
        rc = vg_kerr(c, VG_EGRAPH, "LRN takes one input, the node lists %d", c->n_in);
    if (rc < 0)
        return rc;
    struct lrn_state *st = calloc(1, sizeof(*st));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    c->state = st;
    const struct vg_attr *a = vg_attr_find(c->node, "size");
    if (!a || a->type != VG_ATTR_INT)
        return vg_kerr(c, VG_EGRAPH, "attribute size (int) is required");
    if (a->i < 1)
        return vg_kerr(c, VG_EGRAPH, "size must be at least 1, got %lld", (long long)a->i);
    st->size = a->i;
    st->alpha = vg_attr_f(c->node, "alpha", 1e-4f);
    st->beta = vg_attr_f(c->node, "beta", 0.75f);
    st->bias = vg_attr_f(c->node, "bias", 1.0f);
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

static int lrn_infer(struct vg_kctx *c)
{
    const struct vg_tensor *x = c->in[0];
    if (x->rank < 2) {
        char sx[160];
        vg_shape_str(x, sx, sizeof(sx));
        return vg_kerr(c, VG_ESHAPE, "input %s must have rank 2 or more (N, C, ...)", sx);
    }
    int64_t S = 1;
    for (int i = 2; i < x->rank; i++)
        S *= x->dims[i];
    c->out[0]->rank = x->rank;
    memcpy(c->out[0]->dims, x->dims, sizeof(x->dims));
    c->scratch_bytes = (size_t)S * sizeof(double);
    return 0;
}

#define DEFINE_LRN(NAME, T, POW)                                                                   \
    static void NAME(const struct lrn_state *st, const T *x, T *y, int64_t N, int64_t C,           \
                     int64_t S, T *acc)                                                            \
    {                                                                                              \
        int64_t before = (st->size - 1) / 2, after = st->size - 1 - before;                        \
        T k = (T)(st->alpha / (double)st->size), bias = (T)st->bias, beta = (T)st->beta;           \
        for (int64_t n = 0; n < N; n++)                                                            \
            for (int64_t ch = 0; ch < C; ch++) {                                                   \
                int64_t lo = ch - before < 0 ? 0 : ch - before;                                    \
                int64_t hi = ch + after > C - 1 ? C - 1 : ch + after;                              \
                for (int64_t i = 0; i < S; i++)                                                    \
                    acc[i] = 0;                                                                    \
                for (int64_t j = lo; j <= hi; j++) {                                               \
                    const T *xj = x + (n * C + j) * S;                                             \
                    for (int64_t i = 0; i < S; i++)                                                \
                        acc[i] += xj[i] * xj[i];                                                   \
                }                                                                                  \
                const T *xp = x + (n * C + ch) * S;                                                \
                T *yp = y + (n * C + ch) * S;                                                      \
                for (int64_t i = 0; i < S; i++)                                                    \
                    yp[i] = xp[i] / POW(bias + k * acc[i], beta);                                  \
            }                                                                                      \
    }
DEFINE_LRN(lrn_f32, float, powf)
DEFINE_LRN(lrn_f64, double, pow)

static int lrn_run(struct vg_kctx *c)
{
    const struct vg_tensor *x = c->in[0];
    int64_t S = 1;
    for (int i = 2; i < x->rank; i++)
        S *= x->dims[i];
    if (x->dtype == VG_DT_DOUBLE)
        lrn_f64(c->state, x->data, c->out[0]->data, x->dims[0], x->dims[1], S, c->scratch);
    else
        lrn_f32(c->state, x->data, c->out[0]->data, x->dims[0], x->dims[1], S, c->scratch);
    return 0;
}

/* ---- Dropout --------------------------------------------------------------------------------- */

struct dropout_state {
    int modern;    /* opset >= 12: ratio and training_mode inputs */
    int mask_bool; /* opset >= 10 */
    int has_seed;
    uint64_t seed;
};

static atomic_uint_fast64_t dropout_counter;

static int dropout_init(struct vg_kctx *c)
{
    int rc = check_x_float(c);
    if (rc < 0)
        return rc;
    struct dropout_state *st = calloc(1, sizeof(*st));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    c->state = st;
    st->modern = c->node->opset >= 12;
    st->mask_bool = c->node->opset >= 10;
    const struct vg_attr *seed = vg_attr_find(c->node, "seed");
    if (seed && st->modern) {
        st->has_seed = 1;
        st->seed = (uint64_t)seed->i;
    }
    if (c->n_in > 1 && !st->modern)
        return vg_kerr(c, VG_EGRAPH, "Dropout has one input before opset 12, the node lists %d",
                       c->n_in);
    if (c->n_in > 3 || c->n_out > 2)
        return vg_kerr(c, VG_EGRAPH, "too many inputs or outputs");
    if (c->n_in > 1 && c->in[1]) {
        const struct vg_tensor *r = c->in[1];
        if (!float_type(r->dtype))
            return vg_kerr(c, VG_EUNSUPPORTED, "ratio must be float or double, got %s",
                           vg_dtype_name(r->dtype));
        if (r->data) {
            if (numel(r) != 1)
                return vg_kerr(c, VG_ESHAPE, "ratio must be a scalar");
            double v = elem(r, 0);
            if (!(v >= 0 && v < 1))
                return vg_kerr(c, VG_EGRAPH, "ratio %g is outside [0, 1)", v);
        }
    }
    if (c->n_in > 2 && c->in[2]) {
        const struct vg_tensor *t = c->in[2];
        if (t->dtype != VG_DT_BOOL)
            return vg_kerr(c, VG_EUNSUPPORTED, "training_mode must be bool, got %s",
                           vg_dtype_name(t->dtype));
        if (t->data && numel(t) != 1)
            return vg_kerr(c, VG_ESHAPE, "training_mode must be a scalar");
    }
    c->out[0]->dtype = c->in[0]->dtype;
    if (c->n_out > 1 && c->out[1])
        c->out[1]->dtype = st->mask_bool ? VG_DT_BOOL : c->in[0]->dtype;
    return 0;
}

static int dropout_infer(struct vg_kctx *c)
{
    const struct vg_tensor *x = c->in[0];
    for (int i = 1; i < c->n_in; i++)
        if (c->in[i] && numel(c->in[i]) != 1)
            return vg_kerr(c, VG_ESHAPE, "%s must be a scalar", i == 1 ? "ratio" : "training_mode");
    for (int i = 0; i < c->n_out; i++)
        if (c->out[i]) {
            c->out[i]->rank = x->rank;
            memcpy(c->out[i]->dims, x->dims, sizeof(x->dims));
        }
    return 0;
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int dropout_run(struct vg_kctx *c)
{
    const struct dropout_state *st = c->state;
    const struct vg_tensor *x = c->in[0];
    int64_t n = numel(x);
    size_t es = vg_dtype_size(x->dtype);
    void *mask = c->n_out > 1 && c->out[1] ? c->out[1]->data : NULL;
    int training = 0;
    double ratio = 0.5;
    if (st->modern && c->n_in > 2 && c->in[2])
        training = ((const uint8_t *)c->in[2]->data)[0] != 0;
    if (training && c->n_in > 1 && c->in[1])
        ratio = elem(c->in[1], 0);
    if (training && !(ratio >= 0 && ratio < 1))
        return vg_kerr(c, VG_EINVAL, "ratio %g is outside [0, 1)", ratio);
    if (!training || ratio == 0) {
        if (c->out[0]->data != x->data && n)
            memcpy(c->out[0]->data, x->data, (size_t)n * es);
        if (mask) {
            if (st->mask_bool)
                memset(mask, 1, (size_t)n);
            else
                for (int64_t i = 0; i < n; i++)
                    put(mask, x->dtype, i, 1.0);
        }
        return 0;
    }
    uint64_t s = st->has_seed ? st->seed
                              : (uint64_t)time(NULL) ^
                                    (atomic_fetch_add(&dropout_counter, 1) * 0x2545F4914F6CDD1Dull);
    double scale = 1.0 / (1.0 - ratio);
    /* keep when a uniform double in [0, 1) is >= ratio */
    for (int64_t i = 0; i < n; i++) {
        double u = (double)(splitmix64(&s) >> 11) * (1.0 / 9007199254740992.0);
        int keep = u >= ratio;
        put(c->out[0]->data, x->dtype, i, keep ? elem(x, i) * scale : 0.0);
        if (mask)
            ((uint8_t *)mask)[i] = (uint8_t)keep;
    }
    return 0;
}

/* Designated initializers: fields this file does not use stay zero. */
#define NORM_OP(NAME, SINCE, PREFIX, RELEASE, MIN_IN)                                              \
    {                                                                                              \
        .domain = "", .op_type = NAME, .since_version = SINCE, .init = PREFIX##_init,              \
        .infer = PREFIX##_infer, .run = PREFIX##_run, .release = RELEASE, .min_inputs = MIN_IN     \
    }

const struct vg_op vg_ops_norm[] = {
    NORM_OP("BatchNormalization", 1, bn, bn_release, 5),
    NORM_OP("InstanceNormalization", 1, in, free, 3),
    NORM_OP("LayerNormalization", 17, ln, free, 2),
    NORM_OP("LRN", 1, lrn, free, 1),
    NORM_OP("Dropout", 1, dropout, free, 1),
    {0},
};
