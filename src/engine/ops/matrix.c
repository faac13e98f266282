/*
 * Operator family: matrix products and the softmax family (ai.onnx).
 *
 * Subset of the ONNX spec implemented (opsets 1 to the newest, float16/bfloat16 excluded since
 * the engine has no such dtypes):
 *  - MatMul (1, 9, 13): numpy matmul semantics. A 1-D A is read as [1, K] and a 1-D B as [K, 1],
 *    the added dimension being dropped from the result; batch dimensions (all but the last two)
 *    broadcast multidirectionally. float and double go through OpenBLAS (sgemm/dgemm, or gemv
 *    when one side is a vector); int32 and int64 (opset 9+) use a plain loop that wraps on
 *    overflow like two's-complement hardware. uint32/uint64 are not engine dtypes.
 *  - Gemm (1, 6, 7, 9, 11, 13): Y = alpha * A' * B' + beta * C with transA/transB, A and B 2-D.
 *    C is required before opset 11 and optional from 11. From opset 7, C broadcasts
 *    unidirectionally to [M, N]; before 7 it does so only when the `broadcast` attribute is set,
 *    otherwise it must be exactly [M, N]. float and double only: the integer types opset 9 added
 *    (int32, int64, uint32, uint64) are rejected at load time with VG_EUNSUPPORTED.
 *  - Softmax, LogSoftmax (1, 11, 13): before opset 13 the input is coerced to 2-D at `axis`
 *    (default 1, range [-r, r]) and normalised over the whole second part; from 13 along the
 *    single `axis` (default -1, range [-r, r-1]). Both subtract the maximum first so large
 *    inputs do not overflow. float and double.
 *
 * Threads: the engine runs one session per thread, so OpenBLAS is told once, through a
 * pthread_once in the init of every BLAS-backed op, to use one thread
 * (openblas_set_num_threads(1)); its own worker pool would only fight the server's threads.
 *
 * Speed: run calls BLAS directly on the arena buffers (row-major, no copies). When B has no batch
 * of its own, a batched MatMul folds A's batch into M for one gemm; M == 1 (batch-1 inference)
 * uses gemv, which OpenBLAS 0.3.21 runs about 5x faster than a 1-row gemm (784x256 weights).
 */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_single_thread(void)
{
    openblas_set_num_threads(1);
}

static int64_t dims_prod(const int64_t *dims, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++)
        p *= dims[i];
    return p;
}

/* ---- MatMul ---------------------------------------------------------------------------------- */

static int matmul_init(struct vg_kctx *c)
{
    enum vg_dtype ta = c->in[0]->dtype, tb = c->in[1]->dtype;
    int ok = ta == VG_DT_FLOAT || ta == VG_DT_DOUBLE ||
             (c->node->opset >= 9 && (ta == VG_DT_INT32 || ta == VG_DT_INT64));
    if (!ok)
        return vg_kerr(c, VG_EUNSUPPORTED, "input type %s not supported (float, double%s)",
                       vg_dtype_name(ta), c->node->opset >= 9 ? ", int32, int64" : "");
    if (ta != tb)
        return vg_kerr(c, VG_ETYPE, "A is %s but B is %s", vg_dtype_name(ta), vg_dtype_name(tb));
    c->out[0]->dtype = ta;
    pthread_once(&blas_once, blas_single_thread);
    return 0;
}

static int matmul_infer(struct vg_kctx *c)
{
    const struct vg_tensor *a = c->in[0], *b = c->in[1];
    struct vg_tensor *y = c->out[0];
    struct vg_mm_geom g;
    int rc = vg_mm_geometry(c, a, b, &g);
    if (rc)
        return rc;
    if (g.m > INT_MAX || g.k > INT_MAX || g.n > INT_MAX)
        return vg_kerr(c, VG_EUNSUPPORTED, "matrix dimension above %d (BLAS limit)", INT_MAX);
    y->rank = 0;
    for (int i = 0; i < g.batch_rank; i++)
        y->dims[y->rank++] = g.batch[i];
    if (a->rank > 1)
        y->dims[y->rank++] = g.m;
    if (b->rank > 1)
        y->dims[y->rank++] = g.n;
    return 0;
}

/* One [m,k] x [k,n] product into y (row-major, dense). k >= 1. */
static void mm_f32(const float *a, const float *b, float *y, int64_t m, int64_t k, int64_t n)
{
    if (m == 1) {
        memset(y, 0, (size_t)n * sizeof(*y));
        cblas_sgemv(CblasRowMajor, CblasTrans, (int)k, (int)n, 1.0f, b, (int)n, a, 1, 0.0f, y, 1);
    } else if (n == 1) {
        memset(y, 0, (size_t)m * sizeof(*y));
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)m, (int)k, 1.0f, a, (int)k, b, 1, 0.0f, y, 1);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, a,
                    (int)k, b, (int)n, 0.0f, y, (int)n);
    }
}

static void mm_f64(const double *a, const double *b, double *y, int64_t m, int64_t k, int64_t n)
{
    if (m == 1) {
        memset(y, 0, (size_t)n * sizeof(*y));
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)k, (int)n, 1.0, b, (int)n, a, 1, 0.0, y, 1);
    } else if (n == 1) {
        memset(y, 0, (size_t)m * sizeof(*y));
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)m, (int)k, 1.0, a, (int)k, b, 1, 0.0, y, 1);
    } else {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0, a,
                    (int)k, b, (int)n, 0.0, y, (int)n);
    }
}

/* Integer products wrap (unsigned arithmetic) instead of overflowing, which C leaves undefined. */
#define DEFINE_MM_INT(NAME, T, U)                                                                  \
    static void NAME(const T *a, const T *b, T *y, int64_t m, int64_t k, int64_t n)                \
    {                                                                                              \
        for (int64_t i = 0; i < m; i++) {                                                          \
            U *row = (U *)(y + i * n);                                                             \
            for (int64_t j = 0; j < n; j++)                                                        \
                row[j] = 0;                                                                        \
            for (int64_t p = 0; p < k; p++) {                                                      \
                U av = (U)a[i * k + p];                                                            \
                const T *brow = b + p * n;                                                         \
                for (int64_t j = 0; j < n; j++)                                                    \
                    row[j] += av * (U)brow[j];                                                     \
            }                                                                                      \
        }                                                                                          \
    }
DEFINE_MM_INT(mm_i32, int32_t, uint32_t)
DEFINE_MM_INT(mm_i64, int64_t, uint64_t)

static void mm_one(enum vg_dtype dt, const char *a, const char *b, char *y, int64_t m, int64_t k,
                   int64_t n)
{
    switch (dt) {
    case VG_DT_FLOAT: mm_f32((const float *)a, (const float *)b, (float *)y, m, k, n); break;
    case VG_DT_DOUBLE: mm_f64((const double *)a, (const double *)b, (double *)y, m, k, n); break;
    case VG_DT_INT32: mm_i32((const int32_t *)a, (const int32_t *)b, (int32_t *)y, m, k, n); break;
    default: mm_i64((const int64_t *)a, (const int64_t *)b, (int64_t *)y, m, k, n); break;
    }
}

static int matmul_run(struct vg_kctx *c)
{
    const struct vg_tensor *a = c->in[0], *b = c->in[1];
    struct vg_tensor *y = c->out[0];
    struct vg_mm_geom g;
    if (vg_mm_geometry(NULL, a, b, &g))
        return vg_kerr(c, VG_ESHAPE, "shapes changed after planning");
    int64_t y_numel = vg_tensor_numel(y);
    size_t es = vg_dtype_size(y->dtype);
    if (y_numel == 0)
        return 0;
    if (g.k == 0) {
        memset(y->data, 0, (size_t)y_numel * es);
        return 0;
    }
    const char *ap = a->data, *bp = b->data;
    char *yp = y->data;
    /* B shared by every batch and A not broadcast: A's batch is just more rows. */
    if (g.b_batches == 1 && g.a_batches == g.n_batch) {
        mm_one(y->dtype, ap, bp, yp, g.m * g.n_batch, g.k, g.n);
        return 0;
    }
    int64_t idx[VG_MAX_RANK] = {0};
    int64_t a_off = 0, b_off = 0, y_mat = g.m * g.n;
    for (int64_t t = 0; t < g.n_batch; t++) {
        mm_one(y->dtype, ap + (size_t)a_off * es, bp + (size_t)b_off * es,
               yp + (size_t)(t * y_mat) * es, g.m, g.k, g.n);
        vg_mm_next_batch(&g, idx, &a_off, &b_off);
    }
    return 0;
}

/* ---- Gemm ------------------------------------------------------------------------------------ */

struct gemm_state {
    int trans_a, trans_b;
    float alpha, beta;
    int c_exact; /* opset < 7 without `broadcast`: C must be [M, N] */
};

static int gemm_init(struct vg_kctx *c)
{
    const struct vg_node *n = c->node;
    enum vg_dtype ta = c->in[0]->dtype;
    if (ta != VG_DT_FLOAT && ta != VG_DT_DOUBLE)
        return vg_kerr(c, VG_EUNSUPPORTED, "input type %s not supported (float, double)",
                       vg_dtype_name(ta));
    if (c->in[1]->dtype != ta)
        return vg_kerr(c, VG_ETYPE, "A is %s but B is %s", vg_dtype_name(ta),
                       vg_dtype_name(c->in[1]->dtype));
    int has_c = c->n_in >= 3 && c->in[2];
    if (!has_c && n->opset < 11)
        return vg_kerr(c, VG_EGRAPH, "input C is required before opset 11");
    if (has_c && c->in[2]->dtype != ta)
        return vg_kerr(c, VG_ETYPE, "A is %s but C is %s", vg_dtype_name(ta),
                       vg_dtype_name(c->in[2]->dtype));
    struct gemm_state *st = calloc(1, sizeof(*st));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    st->trans_a = vg_attr_i(n, "transA", 0) != 0;
    st->trans_b = vg_attr_i(n, "transB", 0) != 0;
    st->alpha = vg_attr_f(n, "alpha", 1.0f);
    st->beta = vg_attr_f(n, "beta", 1.0f);
    st->c_exact = n->opset < 7 && vg_attr_i(n, "broadcast", 0) == 0;
    c->state = st;
    c->out[0]->dtype = ta;
    pthread_once(&blas_once, blas_single_thread);
    return 0;
}

static int gemm_infer(struct vg_kctx *c)
{
    const struct gemm_state *st = c->state;
    const struct vg_tensor *a = c->in[0], *b = c->in[1];
    const struct vg_tensor *cc = c->n_in >= 3 ? c->in[2] : NULL;
    char sa[160], sb[160], sc[160];
    vg_shape_str(a, sa, sizeof(sa));
    vg_shape_str(b, sb, sizeof(sb));
    if (a->rank != 2 || b->rank != 2)
        return vg_kerr(c, VG_ESHAPE, "A and B must be 2-D, got A %s and B %s", sa, sb);
    int64_t m = a->dims[st->trans_a ? 1 : 0], k = a->dims[st->trans_a ? 0 : 1];
    int64_t kb = b->dims[st->trans_b ? 1 : 0], n = b->dims[st->trans_b ? 0 : 1];
    if (k != kb)
        return vg_kerr(c, VG_ESHAPE,
                       "inner dimensions differ: A %s (transA=%d) has K=%lld, B %s (transB=%d) "
                       "has K=%lld",
                       sa, st->trans_a, (long long)k, sb, st->trans_b, (long long)kb);
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX)
        return vg_kerr(c, VG_EUNSUPPORTED, "matrix dimension above %d (BLAS limit)", INT_MAX);
    if (cc) {
        int ok;
        if (st->c_exact)
            ok = cc->rank == 2 && cc->dims[0] == m && cc->dims[1] == n;
        else {
            int64_t cr = cc->rank == 2 ? cc->dims[0] : 1;
            int64_t ccol = cc->rank >= 1 ? cc->dims[cc->rank - 1] : 1;
            ok = cc->rank <= 2 && (cr == 1 || cr == m) && (ccol == 1 || ccol == n);
        }
        if (!ok) {
            vg_shape_str(cc, sc, sizeof(sc));
            return vg_kerr(c, VG_ESHAPE, "C %s does not %s the output [%lld,%lld]", sc,
                           st->c_exact ? "match (broadcast=0)" : "broadcast to", (long long)m,
                           (long long)n);
        }
    }
    c->out[0]->rank = 2;
    c->out[0]->dims[0] = m;
    c->out[0]->dims[1] = n;
    return 0;
}

/* Writes C broadcast to [m, n] into y. */
#define DEFINE_FILL_BIAS(NAME, T)                                                                  \
    static void NAME(const struct vg_tensor *cc, T *y, int64_t m, int64_t n)                       \
    {                                                                                              \
        const T *cv = cc->data;                                                                    \
        int64_t cr = cc->rank == 2 ? cc->dims[0] : 1;                                              \
        int64_t ccol = cc->rank >= 1 ? cc->dims[cc->rank - 1] : 1;                                 \
        if (cr == m && ccol == n) {                                                                \
            memcpy(y, cv, (size_t)(m * n) * sizeof(T));                                            \
            return;                                                                                \
        }                                                                                          \
        for (int64_t i = 0; i < m; i++) {                                                          \
            const T *crow = cv + (cr == 1 ? 0 : i * ccol);                                         \
            T *yrow = y + i * n;                                                                   \
            if (ccol == 1)                                                                         \
                for (int64_t j = 0; j < n; j++)                                                    \
                    yrow[j] = crow[0];                                                             \
            else                                                                                   \
                memcpy(yrow, crow, (size_t)n * sizeof(T));                                         \
        }                                                                                          \
    }
DEFINE_FILL_BIAS(fill_bias_f32, float)
DEFINE_FILL_BIAS(fill_bias_f64, double)

/*
 * Gemm body for one real type. BLAS computes Y = alpha*A'B' + beta*Y with Y pre-filled from C,
 * or beta 0 on a zeroed Y when there is no C. M == 1 or N == 1 use gemv (one vector side).
 */
#define DEFINE_GEMM(NAME, T, FILL, GEMM, GEMV)                                                     \
    static void NAME(const struct gemm_state *st, const T *a, const T *b,                          \
                     const struct vg_tensor *cc, T *y, int64_t m, int64_t k, int64_t n)            \
    {                                                                                              \
        T beta = (T)st->beta, alpha = (T)st->alpha;                                                \
        if (cc && st->beta != 0.0f)                                                                \
            FILL(cc, y, m, n);                                                                     \
        else {                                                                                     \
            memset(y, 0, (size_t)(m * n) * sizeof(T));                                             \
            beta = 0;                                                                              \
        }                                                                                          \
        if (k == 0) {                                                                              \
            for (int64_t i = 0; i < m * n; i++)                                                    \
                y[i] *= beta;                                                                      \
            return;                                                                                \
        }                                                                                          \
        if (m == 1) {                                                                              \
            if (st->trans_b)                                                                       \
                GEMV(CblasRowMajor, CblasNoTrans, (int)n, (int)k, alpha, b, (int)k, a, 1, beta, y, \
                     1);                                                                           \
            else                                                                                   \
                GEMV(CblasRowMajor, CblasTrans, (int)k, (int)n, alpha, b, (int)n, a, 1, beta, y,   \
                     1);                                                                           \
        } else if (n == 1) {                                                                       \
            if (st->trans_a)                                                                       \
                GEMV(CblasRowMajor, CblasTrans, (int)k, (int)m, alpha, a, (int)m, b, 1, beta, y,   \
                     1);                                                                           \
            else                                                                                   \
                GEMV(CblasRowMajor, CblasNoTrans, (int)m, (int)k, alpha, a, (int)k, b, 1, beta, y, \
                     1);                                                                           \
        } else {                                                                                   \
            GEMM(CblasRowMajor, st->trans_a ? CblasTrans : CblasNoTrans,                           \
                 st->trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a,        \
                 st->trans_a ? (int)m : (int)k, b, st->trans_b ? (int)k : (int)n, beta, y,         \
                 (int)n);                                                                          \
        }                                                                                          \
    }
DEFINE_GEMM(gemm_f32, float, fill_bias_f32, cblas_sgemm, cblas_sgemv)
DEFINE_GEMM(gemm_f64, double, fill_bias_f64, cblas_dgemm, cblas_dgemv)

static int gemm_run(struct vg_kctx *c)
{
    const struct gemm_state *st = c->state;
    const struct vg_tensor *a = c->in[0], *b = c->in[1];
    const struct vg_tensor *cc = c->n_in >= 3 ? c->in[2] : NULL;
    struct vg_tensor *y = c->out[0];
    int64_t m = y->dims[0], n = y->dims[1], k = a->dims[st->trans_a ? 0 : 1];
    if (m == 0 || n == 0)
        return 0;
    if (y->dtype == VG_DT_FLOAT)
        gemm_f32(st, a->data, b->data, cc, y->data, m, k, n);
    else
        gemm_f64(st, a->data, b->data, cc, y->data, m, k, n);
    return 0;
}

/* ---- Softmax, LogSoftmax --------------------------------------------------------------------- */

struct softmax_state {
    int log;      /* LogSoftmax */
    int coerce2d; /* opset < 13 */
    int64_t axis;
};

static int softmax_init_common(struct vg_kctx *c, int log)
{
    enum vg_dtype t = c->in[0]->dtype;
    if (t != VG_DT_FLOAT && t != VG_DT_DOUBLE)
        return vg_kerr(c, VG_EUNSUPPORTED, "input type %s not supported (float, double)",
                       vg_dtype_name(t));
    struct softmax_state *st = calloc(1, sizeof(*st));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    st->log = log;
    st->coerce2d = c->node->opset < 13;
    st->axis = vg_attr_i(c->node, "axis", st->coerce2d ? 1 : -1);
    c->state = st;
    c->out[0]->dtype = t;
    return 0;
}

static int softmax_init(struct vg_kctx *c)
{
    return softmax_init_common(c, 0);
}

static int logsoftmax_init(struct vg_kctx *c)
{
    return softmax_init_common(c, 1);
}

/* Splits the input into [outer, n, inner]: normalisation runs over n, for each (outer, inner). */
static int softmax_split(const struct softmax_state *st, const struct vg_tensor *x, int64_t *outer,
                         int64_t *n, int64_t *inner)
{
    int r = x->rank;
    int64_t ax = st->axis;
    if (st->coerce2d) {
        if (ax < -r || ax > r)
            return -1;
        if (ax < 0)
            ax += r;
        *outer = dims_prod(x->dims, 0, (int)ax);
        *n = dims_prod(x->dims, (int)ax, r);
        *inner = 1;
        return 0;
    }
    int a = vg_norm_axis(ax, r);
    if (a < 0)
        return -1;
    *outer = dims_prod(x->dims, 0, a);
    *n = x->dims[a];
    *inner = dims_prod(x->dims, a + 1, r);
    return 0;
}

static int softmax_infer(struct vg_kctx *c)
{
    const struct softmax_state *st = c->state;
    const struct vg_tensor *x = c->in[0];
    int64_t outer, n, inner;
    if (softmax_split(st, x, &outer, &n, &inner)) {
        char sx[160];
        vg_shape_str(x, sx, sizeof(sx));
        return vg_kerr(c, VG_ESHAPE, "axis %lld out of range for input %s (rank %d)",
                       (long long)st->axis, sx, x->rank);
    }
    struct vg_tensor *y = c->out[0];
    y->rank = x->rank;
    memcpy(y->dims, x->dims, sizeof(y->dims));
    /* running maximum and sum for each of the `inner` interleaved rows */
    c->scratch_bytes = 2 * (size_t)(inner > 0 ? inner : 1) * vg_dtype_size(x->dtype);
    return 0;
}

/*
 * For each outer block, rows are interleaved with stride `inner`; the passes walk the block
 * contiguously and keep `inner` maxima and sums in scratch.
 */
#define DEFINE_SOFTMAX(NAME, T, EXP, LOG)                                                          \
    static void NAME(const T *x, T *y, int64_t outer, int64_t n, int64_t inner, int want_log,      \
                     T *mx, T *sum)                                                                \
    {                                                                                              \
        for (int64_t o = 0; o < outer; o++) {                                                      \
            const T *xb = x + o * n * inner;                                                       \
            T *yb = y + o * n * inner;                                                             \
            for (int64_t j = 0; j < inner; j++) {                                                  \
                mx[j] = xb[j];                                                                     \
                sum[j] = 0;                                                                        \
            }                                                                                      \
            for (int64_t i = 1; i < n; i++)                                                        \
                for (int64_t j = 0; j < inner; j++)                                                \
                    if (xb[i * inner + j] > mx[j])                                                 \
                        mx[j] = xb[i * inner + j];                                                 \
            for (int64_t i = 0; i < n; i++)                                                        \
                for (int64_t j = 0; j < inner; j++) {                                              \
                    T e = EXP(xb[i * inner + j] - mx[j]);                                          \
                    yb[i * inner + j] = e;                                                         \
                    sum[j] += e;                                                                   \
                }                                                                                  \
            if (want_log) {                                                                        \
                for (int64_t j = 0; j < inner; j++)                                                \
                    sum[j] = mx[j] + LOG(sum[j]);                                                  \
                for (int64_t i = 0; i < n; i++)                                                    \
                    for (int64_t j = 0; j < inner; j++)                                            \
                        yb[i * inner + j] = xb[i * inner + j] - sum[j];                            \
            } else {                                                                               \
                for (int64_t i = 0; i < n; i++)                                                    \
                    for (int64_t j = 0; j < inner; j++)                                            \
                        yb[i * inner + j] /= sum[j];                                               \
            }                                                                                      \
        }                                                                                          \
    }
DEFINE_SOFTMAX(softmax_f32, float, expf, logf)
DEFINE_SOFTMAX(softmax_f64, double, exp, log)

static int softmax_run(struct vg_kctx *c)
{
    const struct softmax_state *st = c->state;
    const struct vg_tensor *x = c->in[0];
    struct vg_tensor *y = c->out[0];
    int64_t outer, n, inner;
    if (softmax_split(st, x, &outer, &n, &inner))
        return vg_kerr(c, VG_ESHAPE, "shapes changed after planning");
    if (vg_tensor_numel(x) == 0)
        return 0;
    if (x->dtype == VG_DT_FLOAT) {
        float *mx = c->scratch;
        softmax_f32(x->data, y->data, outer, n, inner, st->log, mx, mx + inner);
    } else {
        double *mx = c->scratch;
        softmax_f64(x->data, y->data, outer, n, inner, st->log, mx, mx + inner);
    }
    return 0;
}

const struct vg_op vg_ops_matrix[] = {
    {"", "MatMul", 1, 0, matmul_init, matmul_infer, matmul_run, NULL, 0, 2},
    {"", "Gemm", 1, 0, gemm_init, gemm_infer, gemm_run, free, 0, 2},
    {"", "Softmax", 1, 0, softmax_init, softmax_infer, softmax_run, free, 0, 1},
    {"", "LogSoftmax", 1, 0, logsoftmax_init, softmax_infer, softmax_run, free, 0, 1},
    {0},
};
