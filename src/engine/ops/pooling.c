/*
 * Operator family: pooling (ai.onnx).
 *
 * Subset of the ONNX spec implemented (float16 and bfloat16 are not engine dtypes):
 *  - MaxPool (1, 8, 10, 11, 12): 1-D to 6-D spatial windows. `kernel_shape` (required),
 *    `strides`, `pads`, `auto_pad` (NOTSET, SAME_UPPER, SAME_LOWER, VALID), `dilations` (from
 *    opset 10), `ceil_mode` (from 10), `storage_order` (from 8) and the optional int64 Indices
 *    output (from 8). float and double; int8 and uint8 from opset 12.
 *  - AveragePool (1, 7, 10, 11, 19): `kernel_shape`, `strides`, `pads`, `auto_pad`,
 *    `count_include_pad` (from 7), `ceil_mode` (from 10), `dilations` (from 19). float, double.
 *  - GlobalAveragePool, GlobalMaxPool (1): any rank >= 2 ([N, C] gives [N, C]); float, double.
 *
 * Choices the spec leaves open:
 *  - Output size: floor((in + pads - ext) / stride) + 1 with ext = (kernel - 1) * dilation + 1,
 *    or with ceil instead of floor under `ceil_mode`; a last window that would start past the
 *    input and its begin padding is dropped (PyTorch's rule, written into later ONNX specs), so
 *    every window starts inside the input or its begin padding. SAME_* gives ceil(in / stride)
 *    with total padding max(0, (out - 1) * stride + ext - in), the odd unit at the end
 *    (SAME_UPPER) or the beginning (SAME_LOWER); VALID gives floor((in - ext) / stride) + 1. Both
 *    ignore `ceil_mode` and `pads` (explicit non-zero `pads` next to an `auto_pad` other than
 *    NOTSET is a load error).
 *  - MaxPool ignores padding (it never wins). Ties keep the first element in row-major window
 *    order. NaN propagates (as in PyTorch and numpy): a window holding a NaN gives NaN, and its
 *    index is that of the last NaN in row-major window order. A window made only of padding
 *    (begin pads as large as the kernel) gives -inf (the type's minimum for integers) and index
 *    -1. GlobalMaxPool propagates NaN too.
 *  - Indices: flattened over the whole input, (n * C + c) * spatial_size + the element's spatial
 *    offset, row-major for storage_order 0 and column-major over the spatial dims (the first
 *    spatial dim varies fastest) for 1 -- the N and C part stays row-major, as ONNX Runtime does.
 *  - AveragePool divides by the window's taps that fall in the input, or with count_include_pad
 *    by its taps inside the padded extent [-pad_begin, in + pad_end): taps past the end padding
 *    (possible with ceil_mode) never count. A window without any counted tap gives NaN (0 / 0).
 *
 * Speed: MaxPool and AveragePool over 1-D and 2-D inputs without the Indices output (every
 * CNN's case) run in two passes per output row, all loops contiguous or of constant stride so the
 * compiler vectorises them, with no index arithmetic or border test per element: the window's
 * input rows are combined (max or sum) into a row buffer that carries the left and right padding
 * as identity elements (-inf or 0), then each output element combines kernel_w elements of that
 * buffer at stride_w (loops specialised for stride 1 and 2). AveragePool divides by per-column
 * tap counts computed once per run times the row's count. The summation order is fixed (rows
 * in order, then columns in order), so results do not depend on vector width: on AVX2 machines
 * (checked at run time) the same kernels compiled for AVX2 run instead, with the same results.
 * Measured against ONNX Runtime 1.30 single-threaded (session.run, min of 200): ResNet's stem
 * MaxPool 3x3/2 on [1,64,112,112] 150 us vs 278 us; DenseNet's AveragePool 2x2/2 on
 * [1,128,56,56] 81 us vs 154 us (its figure includes its per-call overhead, about 15 us).
 * Other ranks and MaxPool with Indices take a generic path that walks each window. Global pools
 * reduce each plane with eight independent accumulators (vectorisable without reassociation
 * flags).
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

#define SPMAX (VG_MAX_RANK - 2)

/* AVX2 clones of the 2-D kernels (-DVG_POOL_X86=0 builds only the portable ones, for testing). */
#ifndef VG_POOL_X86
#if defined(__x86_64__) && defined(__GNUC__)
#define VG_POOL_X86 1
#else
#define VG_POOL_X86 0
#endif
#endif

enum pool_kind { PK_MAX, PK_AVG, PK_GMAX, PK_GAVG };

struct pool_state {
    enum pool_kind kind;
    int nsp; /* spatial rank from kernel_shape (0 for the global pools) */
    int64_t k[SPMAX], s[SPMAX], d[SPMAX], pads[2 * SPMAX];
    enum vg_auto_pad auto_pad;
    int ceil_mode, count_pad, col_major;
};

struct pool_geom {
    int nsp;
    int64_t planes; /* N * C */
    int64_t in[SPMAX], out[SPMAX], pb[SPMAX], pe[SPMAX];
    int64_t in_plane, out_plane;
};

static const char *kind_name(enum pool_kind k)
{
    switch (k) {
    case PK_MAX: return "MaxPool";
    case PK_AVG: return "AveragePool";
    case PK_GMAX: return "GlobalMaxPool";
    default: return "GlobalAveragePool";
    }
}

/* Reads an INTS attribute of exactly `n` values, each >= lo; absent -> `dflt` for all. */
static int ints_attr(struct vg_kctx *c, const char *name, int n, int64_t lo, int64_t dflt,
                     int64_t *dst)
{
    const struct vg_attr *a = vg_attr_find(c->node, name);
    if (!a) {
        for (int i = 0; i < n; i++)
            dst[i] = dflt;
        return 0;
    }
    if (a->type != VG_ATTR_INTS)
        return vg_kerr(c, VG_EGRAPH, "attribute %s must be a list of ints", name);
    if ((int)a->n != n || a->n > 2 * SPMAX)
        return vg_kerr(c, VG_EGRAPH, "attribute %s has %zu values, expected %d", name, a->n, n);
    for (int i = 0; i < n; i++) {
        if (a->ints[i] < lo)
            return vg_kerr(c, VG_EGRAPH, "attribute %s[%d] is %lld, must be at least %lld", name, i,
                           (long long)a->ints[i], (long long)lo);
        dst[i] = a->ints[i];
    }
    return 0;
}

static int flag_attr(struct vg_kctx *c, const char *name, int since, int *dst)
{
    const struct vg_attr *a = vg_attr_find(c->node, name);
    *dst = 0;
    if (!a)
        return 0;
    if (c->node->opset < since)
        return vg_kerr(c, VG_EGRAPH, "attribute %s needs opset %d or later", name, since);
    if (a->type != VG_ATTR_INT || (a->i != 0 && a->i != 1))
        return vg_kerr(c, VG_EGRAPH, "attribute %s must be 0 or 1", name);
    *dst = (int)a->i;
    return 0;
}

static int pool_init_common(struct vg_kctx *c, enum pool_kind kind)
{
    enum vg_dtype t = c->in[0]->dtype;
    int ok = t == VG_DT_FLOAT || t == VG_DT_DOUBLE;
    if (kind == PK_MAX && c->node->opset >= 12 && (t == VG_DT_INT8 || t == VG_DT_UINT8))
        ok = 1;
    if (!ok)
        return vg_kerr(
            c, VG_EUNSUPPORTED, "input type %s not supported (float, double%s)", vg_dtype_name(t),
            kind == PK_MAX
                ? (c->node->opset >= 12 ? ", int8, uint8" : "; int8, uint8 from opset 12")
                : "");
    if (c->n_in > 1)
        return vg_kerr(c, VG_EGRAPH, "%s has one input, the node lists %d", kind_name(kind),
                       c->n_in);
    struct pool_state *st = calloc(1, sizeof(*st));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    c->state = st;
    st->kind = kind;
    for (int i = 0; i < c->n_out; i++)
        if (c->out[i])
            c->out[i]->dtype = i == 0 ? t : VG_DT_INT64;
    if (kind == PK_GMAX || kind == PK_GAVG) {
        if (c->n_out > 1)
            return vg_kerr(c, VG_EGRAPH, "%s has one output, the node lists %d", kind_name(kind),
                           c->n_out);
        return 0;
    }
    if (c->n_out > 2 || (c->n_out == 2 && (kind != PK_MAX || c->node->opset < 8)))
        return vg_kerr(c, VG_EGRAPH, "%s has %s output%s at opset %lld, the node lists %d",
                       kind_name(kind),
                       kind == PK_MAX && c->node->opset >= 8 ? "at most two" : "one",
                       kind == PK_MAX && c->node->opset >= 8 ? "s (Y, Indices)" : "",
                       (long long)c->node->opset, c->n_out);

    const struct vg_attr *ks = vg_attr_find(c->node, "kernel_shape");
    if (!ks)
        return vg_kerr(c, VG_EGRAPH, "attribute kernel_shape is required");
    if (ks->type != VG_ATTR_INTS || ks->n < 1 || ks->n > SPMAX)
        return vg_kerr(c, VG_EGRAPH, "kernel_shape must list 1 to %d ints, got %zu", SPMAX,
                       ks->type == VG_ATTR_INTS ? ks->n : 0);
    st->nsp = (int)ks->n;
    int rc;
    if ((rc = ints_attr(c, "kernel_shape", st->nsp, 1, 1, st->k)) < 0 ||
        (rc = ints_attr(c, "strides", st->nsp, 1, 1, st->s)) < 0 ||
        (rc = ints_attr(c, "pads", 2 * st->nsp, 0, 0, st->pads)) < 0)
        return rc;
    int dil_since = kind == PK_MAX ? 10 : 19;
    if (vg_attr_find(c->node, "dilations") && c->node->opset < dil_since)
        return vg_kerr(c, VG_EGRAPH, "attribute dilations needs opset %d or later", dil_since);
    if ((rc = ints_attr(c, "dilations", st->nsp, 1, 1, st->d)) < 0)
        return rc;

    const char *ap = vg_attr_s(c->node, "auto_pad", "NOTSET");
    int ap_rc = vg_kattr_auto_pad(c, &st->auto_pad);
    if (ap_rc)
        return ap_rc;
    if (st->auto_pad != VG_AUTO_PAD_NOTSET)
        for (int i = 0; i < 2 * st->nsp; i++)
            if (st->pads[i])
                return vg_kerr(c, VG_EGRAPH, "pads cannot be set together with auto_pad %s", ap);

    if ((rc = flag_attr(c, "ceil_mode", 10, &st->ceil_mode)) < 0)
        return rc;
    if (kind == PK_AVG && (rc = flag_attr(c, "count_include_pad", 7, &st->count_pad)) < 0)
        return rc;
    if (kind == PK_MAX) {
        const struct vg_attr *so = vg_attr_find(c->node, "storage_order");
        if (so) {
            if (c->node->opset < 8)
                return vg_kerr(c, VG_EGRAPH, "attribute storage_order needs opset 8 or later");
            if (so->type != VG_ATTR_INT || (so->i != 0 && so->i != 1))
                return vg_kerr(c, VG_EGRAPH,
                               "storage_order must be 0 (row major) or 1 (column major)");
            st->col_major = (int)so->i;
        }
    }
    return 0;
}

static int maxpool_init(struct vg_kctx *c)
{
    return pool_init_common(c, PK_MAX);
}

static int avgpool_init(struct vg_kctx *c)
{
    return pool_init_common(c, PK_AVG);
}

static int gmaxpool_init(struct vg_kctx *c)
{
    return pool_init_common(c, PK_GMAX);
}

static int gavgpool_init(struct vg_kctx *c)
{
    return pool_init_common(c, PK_GAVG);
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

/* Window geometry for input x; errors through vg_kerr. */
static int pool_geometry(struct vg_kctx *c, const struct pool_state *st, const struct vg_tensor *x,
                         struct pool_geom *g)
{
    char sx[160];
    if (x->rank != st->nsp + 2) {
        vg_shape_str(x, sx, sizeof(sx));
        return vg_kerr(c, VG_ESHAPE,
                       "input %s has rank %d, kernel_shape needs rank %d (N, C and %d spatial)", sx,
                       x->rank, st->nsp + 2, st->nsp);
    }
    g->nsp = st->nsp;
    g->planes = x->dims[0] * x->dims[1];
    g->in_plane = g->out_plane = 1;
    for (int i = 0; i < st->nsp; i++) {
        int64_t in = x->dims[2 + i], k = st->k[i], s = st->s[i], d = st->d[i];
        int64_t ext = (k - 1) * d + 1, out, pb, pe;
        switch (st->auto_pad) {
        case VG_AUTO_PAD_SAME_UPPER:
        case VG_AUTO_PAD_SAME_LOWER:
            vg_same_pads(st->auto_pad, in, ext, s, &out, &pb, &pe);
            break;
        case VG_AUTO_PAD_VALID:
            pb = pe = 0;
            out = in >= ext ? (in - ext) / s + 1 : 0;
            break;
        default: {
            pb = st->pads[i];
            pe = st->pads[st->nsp + i];
            int64_t num = in + pb + pe - ext;
            if (num < 0) {
                out = 0;
                break;
            }
            out = st->ceil_mode ? ceil_div(num, s) + 1 : num / s + 1;
            if (st->ceil_mode && (out - 1) * s >= in + pb)
                out--;
            break;
        }
        }
        if (out <= 0 && in > 0) {
            vg_shape_str(x, sx, sizeof(sx));
            return vg_kerr(
                c, VG_ESHAPE,
                "spatial dim %d of input %s (%lld, padded %lld + %lld) is smaller than the "
                "kernel extent %lld",
                i, sx, (long long)in, (long long)pb, (long long)pe, (long long)ext);
        }
        if (out < 0)
            out = 0;
        g->in[i] = in;
        g->out[i] = out;
        g->pb[i] = pb;
        g->pe[i] = pe;
        g->in_plane *= in;
        g->out_plane *= out;
    }
    return 0;
}

/*
 * Taps of a window starting at `start` (kernel k, dilation d) over an input of length `in`:
 * [*lo, *hi) are the taps inside the input. Returns the count the average divides by: the taps
 * inside the input, or with count_pad those inside [-pad_begin, in + pe) (start >= -pad_begin
 * always holds).
 */
static int64_t window_taps(int64_t start, int64_t k, int64_t d, int64_t in, int64_t pe,
                           int count_pad, int64_t *lo, int64_t *hi)
{
    int64_t l = start >= 0 ? 0 : ceil_div(-start, d);
    int64_t h = start >= in ? 0 : (in - 1 - start) / d + 1;
    if (h > k)
        h = k;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
    if (!count_pad)
        return h - l;
    int64_t e = in + pe - start; /* taps at start + j*d < in + pe */
    int64_t n = e <= 0 ? 0 : ceil_div(e, d);
    return n > k ? k : n;
}

static int fast_path(const struct pool_state *st, const struct vg_kctx *c)
{
    return (st->kind == PK_MAX || st->kind == PK_AVG) && st->nsp <= 2 &&
           !(c->n_out > 1 && c->out[1]);
}

/* Row buffer length for the 2-D path: padding, the input row, and ceil_mode's overhang. */
static int64_t row_buf_len(const struct pool_state *st, const struct pool_geom *g)
{
    int w = g->nsp - 1;
    int64_t need = (g->out[w] - 1) * st->s[w] + (st->k[w] - 1) * st->d[w] + 1;
    int64_t have = g->pb[w] + g->in[w];
    return ((need > have ? need : have) + 15) & ~(int64_t)15;
}

static int pool_infer(struct vg_kctx *c)
{
    const struct pool_state *st = c->state;
    const struct vg_tensor *x = c->in[0];
    struct vg_tensor *y = c->out[0];
    char sx[160];
    if (st->kind == PK_GMAX || st->kind == PK_GAVG) {
        if (x->rank < 2) {
            vg_shape_str(x, sx, sizeof(sx));
            return vg_kerr(c, VG_ESHAPE, "input %s must have rank 2 or more (N, C, spatial...)",
                           sx);
        }
        y->rank = x->rank;
        for (int i = 0; i < x->rank; i++)
            y->dims[i] = i < 2 ? x->dims[i] : 1;
        for (int i = 2; i < x->rank; i++)
            if (x->dims[i] == 0 && x->dims[0] * x->dims[1] > 0) {
                vg_shape_str(x, sx, sizeof(sx));
                return vg_kerr(c, VG_ESHAPE, "input %s has an empty spatial dim: nothing to pool",
                               sx);
            }
        return 0;
    }
    struct pool_geom g;
    int rc = pool_geometry(c, st, x, &g);
    if (rc < 0)
        return rc;
    y->rank = x->rank;
    y->dims[0] = x->dims[0];
    y->dims[1] = x->dims[1];
    for (int i = 0; i < st->nsp; i++)
        y->dims[2 + i] = g.out[i];
    if (c->n_out > 1 && c->out[1]) {
        c->out[1]->rank = y->rank;
        memcpy(c->out[1]->dims, y->dims, sizeof(y->dims));
    }
    if (fast_path(st, c)) {
        size_t es = vg_dtype_size(x->dtype);
        c->scratch_bytes = (size_t)(row_buf_len(st, &g) + g.out[g.nsp - 1] + 16) * es;
    }
    return 0;
}

/* ---- 1-D and 2-D windows without indices ----------------------------------------------------- */

#define P_MAX(a, v) ((v) > (a) ? (v) : (a))
/* NaN-propagating: once the accumulator is NaN it stays so, and a NaN element always wins. */
#define P_FMAX(a, v) (((v) > (a) || (v) != (v)) ? (v) : (a))
#define P_SUM(a, v) ((a) + (v))

/*
 * One kernel per (dtype, max/avg). IS_AVG is a constant, so the unused branches fold away.
 * The horizontal combine is written once per constant stride so the loads have a fixed pattern.
 */
#define H_PASS(T, S, OP)                                                                           \
    do {                                                                                           \
        for (int64_t ow = 0; ow < OW; ow++)                                                        \
            o[ow] = t[ow * (S)];                                                                   \
        for (int64_t j = 1; j < kw; j++) {                                                         \
            const T *tj = t + j * dw;                                                              \
            for (int64_t ow = 0; ow < OW; ow++)                                                    \
                o[ow] = OP(o[ow], tj[ow * (S)]);                                                   \
        }                                                                                          \
    } while (0)

#define DEFINE_POOL2D(NAME, T, IS_AVG, IDENT, OP, ATTR)                                            \
    ATTR static void NAME(const struct pool_state *st, const struct pool_geom *g, const void *xv,  \
                          void *yv, void *scratch, int64_t L)                                      \
    {                                                                                              \
        const T *x = xv;                                                                           \
        T *y = yv;                                                                                 \
        int two = g->nsp == 2;                                                                     \
        int64_t H = two ? g->in[0] : 1, W = g->in[two];                                            \
        int64_t OH = two ? g->out[0] : 1, OW = g->out[two];                                        \
        int64_t kh = two ? st->k[0] : 1, sh = two ? st->s[0] : 1, dh = two ? st->d[0] : 1;         \
        int64_t pt = two ? g->pb[0] : 0, pbot = two ? g->pe[0] : 0;                                \
        int64_t kw = st->k[two], sw = st->s[two], dw = st->d[two], pl = g->pb[two];                \
        T *t = scratch;                                                                            \
        T *cw = t + L;                                                                             \
        for (int64_t i = 0; i < pl; i++)                                                           \
            t[i] = IDENT;                                                                          \
        for (int64_t i = pl + W; i < L; i++)                                                       \
            t[i] = IDENT;                                                                          \
        if (IS_AVG)                                                                                \
            for (int64_t ow = 0; ow < OW; ow++) {                                                  \
                int64_t lo, hi;                                                                    \
                cw[ow] =                                                                           \
                    (T)window_taps(ow * sw - pl, kw, dw, W, g->pe[two], st->count_pad, &lo, &hi);  \
            }                                                                                      \
        T *tr = t + pl;                                                                            \
        for (int64_t p = 0; p < g->planes; p++) {                                                  \
            const T *xp = x + p * H * W;                                                           \
            T *yp = y + p * OH * OW;                                                               \
            for (int64_t oh = 0; oh < OH; oh++) {                                                  \
                int64_t hs = oh * sh - pt, lo, hi;                                                 \
                int64_t hcnt = window_taps(hs, kh, dh, H, pbot, st->count_pad, &lo, &hi);          \
                if (lo >= hi) {                                                                    \
                    for (int64_t w = 0; w < W; w++)                                                \
                        tr[w] = IDENT;                                                             \
                } else {                                                                           \
                    /* rows combined three at a time: one pass over the buffer for 3x3 */          \
                    const T *r0 = xp + (hs + lo * dh) * W;                                         \
                    int64_t rs = dh * W, nr = hi - lo;                                             \
                    if (nr == 1) {                                                                 \
                        memcpy(tr, r0, (size_t)W * sizeof(T));                                     \
                    } else if (nr == 2) {                                                          \
                        for (int64_t w = 0; w < W; w++)                                            \
                            tr[w] = OP(r0[w], r0[rs + w]);                                         \
                    } else {                                                                       \
                        for (int64_t w = 0; w < W; w++)                                            \
                            tr[w] = OP(OP(r0[w], r0[rs + w]), r0[2 * rs + w]);                     \
                    }                                                                              \
                    for (int64_t j = lo + 3; j < hi; j++) {                                        \
                        const T *rj = xp + (hs + j * dh) * W;                                      \
                        for (int64_t w = 0; w < W; w++)                                            \
                            tr[w] = OP(tr[w], rj[w]);                                              \
                    }                                                                              \
                }                                                                                  \
                T *o = yp + oh * OW;                                                               \
                if (sw == 1)                                                                       \
                    H_PASS(T, 1, OP);                                                              \
                else if (sw == 2)                                                                  \
                    H_PASS(T, 2, OP);                                                              \
                else                                                                               \
                    H_PASS(T, sw, OP);                                                             \
                if (IS_AVG) {                                                                      \
                    T hc = (T)hcnt;                                                                \
                    for (int64_t ow = 0; ow < OW; ow++)                                            \
                        o[ow] = o[ow] / (hc * cw[ow]);                                             \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

DEFINE_POOL2D(max2d_f32, float, 0, -INFINITY, P_FMAX, )
DEFINE_POOL2D(max2d_f64, double, 0, -INFINITY, P_FMAX, )
DEFINE_POOL2D(max2d_i8, int8_t, 0, INT8_MIN, P_MAX, )
DEFINE_POOL2D(max2d_u8, uint8_t, 0, 0, P_MAX, )
DEFINE_POOL2D(avg2d_f32, float, 1, 0.0f, P_SUM, )
DEFINE_POOL2D(avg2d_f64, double, 1, 0.0, P_SUM, )
#if VG_POOL_X86
/* The same kernels for AVX2 machines: twice the vector width, the same operations in the same
 * order per element, so the same results. */
DEFINE_POOL2D(max2d_f32_avx2, float, 0, -INFINITY, P_FMAX, __attribute__((target("avx2"))))
DEFINE_POOL2D(max2d_i8_avx2, int8_t, 0, INT8_MIN, P_MAX, __attribute__((target("avx2"))))
DEFINE_POOL2D(max2d_u8_avx2, uint8_t, 0, 0, P_MAX, __attribute__((target("avx2"))))
DEFINE_POOL2D(avg2d_f32_avx2, float, 1, 0.0f, P_SUM, __attribute__((target("avx2"))))
#endif

typedef void (*pool2d_fn)(const struct pool_state *, const struct pool_geom *, const void *, void *,
                          void *, int64_t);

/* ---- any rank, dilations, Indices ------------------------------------------------------------ */

/*
 * Walks each output position's window with an odometer over the taps inside the input.
 * Max keeps the first maximum and its spatial coordinates (for the index).
 */
#define DEFINE_POOLND(NAME, T, IS_AVG, LOWEST)                                                     \
    static void NAME(const struct pool_state *st, const struct pool_geom *g, const void *xv,       \
                     void *yv, int64_t *ind)                                                       \
    {                                                                                              \
        const T *x = xv;                                                                           \
        T *y = yv;                                                                                 \
        int n = g->nsp;                                                                            \
        int64_t istr[SPMAX], cstr[SPMAX];                                                          \
        istr[n - 1] = 1;                                                                           \
        for (int i = n - 2; i >= 0; i--)                                                           \
            istr[i] = istr[i + 1] * g->in[i + 1];                                                  \
        cstr[0] = 1;                                                                               \
        for (int i = 1; i < n; i++)                                                                \
            cstr[i] = cstr[i - 1] * g->in[i - 1];                                                  \
        for (int64_t p = 0; p < g->planes; p++) {                                                  \
            const T *xp = x + p * g->in_plane;                                                     \
            int64_t o[SPMAX] = {0};                                                                \
            for (int64_t oi = 0; oi < g->out_plane; oi++) {                                        \
                int64_t start[SPMAX], lo[SPMAX], hi[SPMAX], j[SPMAX], best_pos[SPMAX];             \
                int64_t cnt = 1, empty = 0;                                                        \
                for (int i = 0; i < n; i++) {                                                      \
                    start[i] = o[i] * st->s[i] - g->pb[i];                                         \
                    cnt *= window_taps(start[i], st->k[i], st->d[i], g->in[i], g->pe[i],           \
                                       st->count_pad, &lo[i], &hi[i]);                             \
                    if (lo[i] >= hi[i])                                                            \
                        empty = 1;                                                                 \
                    j[i] = lo[i];                                                                  \
                }                                                                                  \
                T acc = IS_AVG ? (T)0 : LOWEST;                                                    \
                int found = 0;                                                                     \
                while (!empty) {                                                                   \
                    int64_t off = 0;                                                               \
                    for (int i = 0; i < n; i++)                                                    \
                        off += (start[i] + j[i] * st->d[i]) * istr[i];                             \
                    T v = xp[off];                                                                 \
                    if (IS_AVG) {                                                                  \
                        acc += v;                                                                  \
                    } else if (!found || v > acc || v != v) {                                      \
                        acc = v;                                                                   \
                        found = 1;                                                                 \
                        for (int i = 0; i < n; i++)                                                \
                            best_pos[i] = start[i] + j[i] * st->d[i];                              \
                    }                                                                              \
                    int i = n - 1;                                                                 \
                    while (i >= 0 && ++j[i] == hi[i]) {                                            \
                        j[i] = lo[i];                                                              \
                        i--;                                                                       \
                    }                                                                              \
                    if (i < 0)                                                                     \
                        break;                                                                     \
                }                                                                                  \
                if (IS_AVG)                                                                        \
                    acc = acc / (T)cnt;                                                            \
                y[p * g->out_plane + oi] = acc;                                                    \
                if (ind) {                                                                         \
                    int64_t idx = -1;                                                              \
                    if (found) {                                                                   \
                        idx = p * g->in_plane;                                                     \
                        for (int i = 0; i < n; i++)                                                \
                            idx += best_pos[i] * (st->col_major ? cstr[i] : istr[i]);              \
                    }                                                                              \
                    ind[p * g->out_plane + oi] = idx;                                              \
                }                                                                                  \
                for (int i = n - 1; i >= 0; i--) {                                                 \
                    if (++o[i] < g->out[i])                                                        \
                        break;                                                                     \
                    o[i] = 0;                                                                      \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

DEFINE_POOLND(maxnd_f32, float, 0, -INFINITY)
DEFINE_POOLND(maxnd_f64, double, 0, -INFINITY)
DEFINE_POOLND(maxnd_i8, int8_t, 0, INT8_MIN)
DEFINE_POOLND(maxnd_u8, uint8_t, 0, 0)
DEFINE_POOLND(avgnd_f32, float, 1, 0.0f)
DEFINE_POOLND(avgnd_f64, double, 1, 0.0)

/* ---- global pools ---------------------------------------------------------------------------- */

#define DEFINE_GLOBAL(NAME, T, IS_AVG, IDENT, OP)                                                  \
    static void NAME(const T *x, T *y, int64_t planes, int64_t n)                                  \
    {                                                                                              \
        for (int64_t p = 0; p < planes; p++) {                                                     \
            const T *xp = x + p * n;                                                               \
            T acc[8] = {IDENT, IDENT, IDENT, IDENT, IDENT, IDENT, IDENT, IDENT};                   \
            int64_t i = 0;                                                                         \
            for (; i + 8 <= n; i += 8)                                                             \
                for (int l = 0; l < 8; l++)                                                        \
                    acc[l] = OP(acc[l], xp[i + l]);                                                \
            for (int l = 0; i < n; i++, l++)                                                       \
                acc[l] = OP(acc[l], xp[i]);                                                        \
            T r = OP(OP(OP(acc[0], acc[4]), OP(acc[1], acc[5])),                                   \
                     OP(OP(acc[2], acc[6]), OP(acc[3], acc[7])));                                  \
            y[p] = IS_AVG ? r / (T)n : r;                                                          \
        }                                                                                          \
    }

DEFINE_GLOBAL(gmax_f32, float, 0, -INFINITY, P_FMAX)
DEFINE_GLOBAL(gmax_f64, double, 0, -INFINITY, P_FMAX)
DEFINE_GLOBAL(gavg_f32, float, 1, 0.0f, P_SUM)
DEFINE_GLOBAL(gavg_f64, double, 1, 0.0, P_SUM)

static int pool_run(struct vg_kctx *c)
{
    const struct pool_state *st = c->state;
    const struct vg_tensor *x = c->in[0];
    struct vg_tensor *y = c->out[0];
    int dbl = x->dtype == VG_DT_DOUBLE;
    if (vg_tensor_numel(y) == 0)
        return 0;
    if (st->kind == PK_GMAX || st->kind == PK_GAVG) {
        int64_t planes = x->dims[0] * x->dims[1];
        int64_t n = vg_tensor_numel(x) / planes;
        if (st->kind == PK_GMAX)
            dbl ? gmax_f64(x->data, y->data, planes, n) : gmax_f32(x->data, y->data, planes, n);
        else
            dbl ? gavg_f64(x->data, y->data, planes, n) : gavg_f32(x->data, y->data, planes, n);
        return 0;
    }
    struct pool_geom g;
    int rc = pool_geometry(c, st, x, &g);
    if (rc < 0)
        return rc;
    int avg = st->kind == PK_AVG;
    if (fast_path(st, c)) {
        int64_t L = row_buf_len(st, &g);
        pool2d_fn fn;
        switch (x->dtype) {
        case VG_DT_FLOAT: fn = avg ? avg2d_f32 : max2d_f32; break;
        case VG_DT_DOUBLE: fn = avg ? avg2d_f64 : max2d_f64; break;
        case VG_DT_INT8: fn = max2d_i8; break;
        default: fn = max2d_u8; break;
        }
#if VG_POOL_X86
        if (__builtin_cpu_supports("avx2")) {
            switch (x->dtype) {
            case VG_DT_FLOAT: fn = avg ? avg2d_f32_avx2 : max2d_f32_avx2; break;
            case VG_DT_INT8: fn = max2d_i8_avx2; break;
            case VG_DT_UINT8: fn = max2d_u8_avx2; break;
            default: break;
            }
        }
#endif
        fn(st, &g, x->data, y->data, c->scratch, L);
        return 0;
    }
    int64_t *ind = c->n_out > 1 && c->out[1] ? c->out[1]->data : NULL;
    switch (x->dtype) {
    case VG_DT_FLOAT: (avg ? avgnd_f32 : maxnd_f32)(st, &g, x->data, y->data, ind); break;
    case VG_DT_DOUBLE: (avg ? avgnd_f64 : maxnd_f64)(st, &g, x->data, y->data, ind); break;
    case VG_DT_INT8: maxnd_i8(st, &g, x->data, y->data, ind); break;
    default: maxnd_u8(st, &g, x->data, y->data, ind); break;
    }
    return 0;
}

/* Designated initializers: fields this file does not use stay zero. */
#define POOL_OP(NAME, INIT)                                                                        \
    {                                                                                              \
        .domain = "", .op_type = NAME, .since_version = 1, .init = INIT, .infer = pool_infer,      \
        .run = pool_run, .release = free, .min_inputs = 1                                          \
    }

const struct vg_op vg_ops_pool[] = {
    POOL_OP("MaxPool", maxpool_init),
    POOL_OP("AveragePool", avgpool_init),
    POOL_OP("GlobalMaxPool", gmaxpool_init),
    POOL_OP("GlobalAveragePool", gavgpool_init),
    {0},
};
