/*
 * Operator family: integer convolution and matrix products (ai.onnx).
 *
 * Subset of the ONNX spec implemented:
 *  - QLinearConv (10): x uint8 or int8, w uint8 or int8 (independently), y uint8 or int8 (the
 *    dtype of y_zero_point). x_scale, y_scale, x_zero_point, y_zero_point one element each;
 *    w_scale and w_zero_point one element or one per output channel (M); B optional, int32, [M].
 *    y = saturate(round_half_to_even(acc * x_scale * w_scale / y_scale) + y_zero_point), acc the
 *    exact int32 sum of (x - x_zp) * (w - w_zp) plus B.
 *  - ConvInteger (10): x and w uint8 or int8, x_zero_point one element, w_zero_point one element
 *    or one per output channel, both optional (0); y int32.
 *    Both convolutions: 1-D and 2-D (x [N, C, W] or [N, C, H, W]), attributes kernel_shape (must
 *    match w), strides, dilations (>= 1), pads (>= 0), group (dividing C and M), auto_pad
 *    NOTSET / SAME_UPPER / SAME_LOWER / VALID (auto_pad with non-zero pads is refused at load).
 *    Padding takes the value x_zero_point, i.e. contributes 0 to the sum, as the spec's
 *    reference does.
 *  - QLinearMatMul (10): a and b uint8 or int8 (independently), numpy matmul semantics (1-D
 *    operands, broadcasting of batch dims). a_scale: one element, or per row of A when b_scale is
 *    one element; b_scale / b_zero_point: one element, N (per column) or one per column of each
 *    of B's matrices; y_scale, y_zero_point one element; y's dtype is y_zero_point's.
 *  - MatMulInteger (10): a and b uint8 or int8, y int32. a_zero_point: one element, M (per row)
 *    or one per row of each of A's matrices; b_zero_point: one element, N or one per column of
 *    each of B's matrices; both optional (0).
 *  Zero points must have the dtype of their tensor, scales must be float32 and positive (checked
 *  at load when constant, else at run time, the only data-dependent error here).
 *
 * Choices the spec leaves open: the multiplier x_scale * w_scale / y_scale is formed in double
 * from the float32 scales and applied in integers (qgemm.c: equal to the exact real formula
 * except within a relative 2^-31 of a .5 tie); int32 sums wrap on overflow (they cannot for
 * K < 65793, the largest reduction where 255 * 255 * K fits).
 *
 * Speed: everything stays in integers (qgemm.c). Constant weights are packed at load with their
 * row sums, and constant scales turned into per-channel fixed-point multipliers; weights or
 * scales given as graph inputs (the ONNX node tests do that) are prepared the same way into
 * scratch at every run. 1x1 stride-1 unpadded convolutions feed x to the GEMM directly; other
 * convolutions build im2col columns for a chunk of output pixels at a time (the chunk sized so
 * its packed columns stay in L2); depthwise convolutions (one input and one output channel per
 * group, dilation 1, width stride 1 or 2, kernel width <= 8) run a dedicated kernel on an int16
 * copy of the padded plane with (x - x_zp) values, multiplying pairs of taps with vpmaddwd
 * (exact; 16 int16 lanes with AVX2, 32 with AVX-512 when the GEMM path is AVX-512) and
 * requantizing each output plane in integers. On the AVX-512 path (u8/s8 output) the
 * requantization is applied to each row's sums in registers (vpdpwssd accumulation, no int32
 * plane), and stride-1 maps narrower than 32 (14x14, 7x7) are computed as one long row over a
 * plane of row length ow + kw - 1, the lanes that straddle a row end dropped by a compress. The
 * stride-2 im2col (the stem) gathers with AVX-512BW on that path.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "qgemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QC_X86 1
#else
#define QC_X86 0
#endif

static size_t al64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static int is_q8(enum vg_dtype t)
{
    return t == VG_DT_UINT8 || t == VG_DT_INT8;
}

static int32_t zp_at(const struct vg_tensor *t, int64_t i)
{
    if (!t)
        return 0;
    return t->dtype == VG_DT_INT8 ? ((const int8_t *)t->data)[i] : ((const uint8_t *)t->data)[i];
}

static const struct vg_tensor *opt_in(const struct vg_kctx *c, int i)
{
    return i < c->n_in ? c->in[i] : NULL;
}

/* Checks a scale input: float32; when constant, every element finite and > 0. */
static int check_scale(struct vg_kctx *c, int i, const char *name)
{
    const struct vg_tensor *t = c->in[i];
    if (t->dtype != VG_DT_FLOAT)
        return vg_kerr(c, VG_ETYPE, "%s must be float, got %s", name, vg_dtype_name(t->dtype));
    if (t->data) {
        int64_t n = vg_tensor_numel(t);
        for (int64_t j = 0; j < n; j++) {
            float v = ((const float *)t->data)[j];
            if (!(v > 0) || !isfinite(v))
                return vg_kerr(c, VG_EINVAL, "%s must be positive and finite, got %g", name,
                               (double)v);
        }
    }
    return 0;
}

static int check_zp(struct vg_kctx *c, int i, const char *name, int of, const char *of_name)
{
    const struct vg_tensor *t = opt_in(c, i);
    if (!t)
        return 0;
    enum vg_dtype want = c->in[of]->dtype;
    if (t->dtype != want)
        return vg_kerr(c, VG_ETYPE, "%s must have the dtype of %s (%s), got %s", name, of_name,
                       vg_dtype_name(want), vg_dtype_name(t->dtype));
    return 0;
}

/* Run-time check of non-constant scales (the load-time one covers constants). */
static int scales_positive(struct vg_kctx *c, const struct vg_tensor *t, const char *name)
{
    int64_t n = vg_tensor_numel(t);
    for (int64_t j = 0; j < n; j++) {
        float v = ((const float *)t->data)[j];
        if (!(v > 0) || !isfinite(v))
            return vg_kerr(c, VG_EINVAL, "%s must be positive and finite, got %g", name,
                           (double)v);
    }
    return 0;
}

/* ==== Convolutions ============================================================================ */


struct qconv {
    int qlinear;
    int ix, ixs, ixz, iw, iws, iwz, iys, iyz, ib; /* input indices; -1 when absent */
    enum vg_qgemm_out_kind out_kind;
    int path;
    /* attributes, spatial dims in [H, W] order (1-D: H = 1) */
    enum vg_auto_pad auto_pad;
    int has_kshape, nsp;
    int64_t kshape[2], strides[2], dil[2], pads[4]; /* pads: begin H, begin W, end H, end W */
    int64_t group;
    /* prepared at load when the inputs they come from are constant */
    int64_t cout, cin_g, kh, kw; /* from w when constant */
    int depthwise;
    void *wmem;                 /* packed weights (GEMM) or int16 taps (depthwise) */
    struct vg_qgemm_pa *pa;     /* group entries */
    int16_t *dw;                /* depthwise taps (w - w_zp), [M][kh][pairs * 2] */
    struct vg_qgemm_rq *rq;     /* cout entries, or NULL */
    int32_t *wzp;               /* cout entries, or NULL */
};

struct cgeom {
    int64_t n, c, h, w, m, kh, kw, oh, ow;
    int64_t sh, sw, dh, dw, pt, pl;
    int64_t g, cin_g, m_g, kc;
    int depthwise, pointwise;
};

static void qconv_release(void *p)
{
    struct qconv *st = p;
    if (!st)
        return;
    free(st->wmem);
    free(st->rq);
    free(st->wzp);
    free(st->pa);
    free(st);
}

static int read_pair(struct vg_kctx *c, const char *name, int nsp, int64_t dflt, int64_t *out,
                     int64_t min)
{
    const int64_t *v;
    size_t n = vg_attr_ints(c->node, name, &v);
    out[0] = out[1] = dflt;
    if (!n)
        return 0;
    if ((int)n != nsp)
        return vg_kerr(c, VG_EINVAL, "attribute '%s' has %zu values, expected %d", name, n, nsp);
    for (int i = 0; i < nsp; i++) {
        if (v[i] < min)
            return vg_kerr(c, VG_EINVAL, "attribute '%s' values must be >= %lld", name,
                           (long long)min);
        out[2 - nsp + i] = v[i];
    }
    return 0;
}

static int dw_ok(const struct cgeom *g)
{
    return g->cin_g == 1 && g->m_g == 1 && g->dh == 1 && g->dw == 1 &&
           (g->sw == 1 || g->sw == 2) && g->kw <= 8;
}

/* Geometry from x's and w's shapes. c != NULL: report errors (infer). */
static int conv_geom(struct vg_kctx *c, const struct qconv *st, const struct vg_tensor *x,
                     const struct vg_tensor *w, struct cgeom *g)
{
    char sx[160], sw[160];
    vg_shape_str(x, sx, sizeof(sx));
    vg_shape_str(w, sw, sizeof(sw));
    if (x->rank != 3 && x->rank != 4)
        return vg_kerr(c, VG_EUNSUPPORTED, "x %s: only 1-D and 2-D convolutions (rank 3 or 4)",
                       sx);
    if (w->rank != x->rank)
        return vg_kerr(c, VG_ESHAPE, "w %s must have the rank of x %s", sw, sx);
    int nsp = x->rank - 2;
    if (st->nsp && st->nsp != nsp)
        return vg_kerr(c, VG_ESHAPE, "attributes are for %d spatial dims, x %s has %d", st->nsp,
                       sx, nsp);
    g->n = x->dims[0];
    g->c = x->dims[1];
    g->h = nsp == 2 ? x->dims[2] : 1;
    g->w = x->dims[x->rank - 1];
    g->m = w->dims[0];
    g->kh = nsp == 2 ? w->dims[2] : 1;
    g->kw = w->dims[w->rank - 1];
    g->g = st->group;
    if (g->m < 1 || g->c % g->g || g->m % g->g)
        return vg_kerr(c, VG_ESHAPE, "group %lld must divide C (x %s) and M (w %s)",
                       (long long)g->g, sx, sw);
    g->cin_g = g->c / g->g;
    g->m_g = g->m / g->g;
    if (w->dims[1] != g->cin_g)
        return vg_kerr(c, VG_ESHAPE, "w %s: dim 1 must be C / group = %lld (x %s)", sw,
                       (long long)g->cin_g, sx);
    if (st->has_kshape && (st->kshape[0] != g->kh || st->kshape[1] != g->kw))
        return vg_kerr(c, VG_ESHAPE, "kernel_shape does not match w %s", sw);
    g->sh = st->strides[0];
    g->sw = st->strides[1];
    g->dh = st->dil[0];
    g->dw = st->dil[1];
    int64_t in[2] = {g->h, g->w}, k[2] = {g->kh, g->kw}, s[2] = {g->sh, g->sw},
            d[2] = {g->dh, g->dw}, out[2], pb[2];
    for (int i = 0; i < 2; i++) {
        int64_t ek = (k[i] - 1) * d[i] + 1;
        if (st->auto_pad == VG_AUTO_PAD_NOTSET) {
            pb[i] = st->pads[i];
            int64_t span = in[i] + st->pads[i] + st->pads[i + 2] - ek;
            out[i] = span < 0 ? 0 : span / s[i] + 1;
        } else if (st->auto_pad == VG_AUTO_PAD_VALID) {
            pb[i] = 0;
            out[i] = in[i] < ek ? 0 : (in[i] - ek) / s[i] + 1;
        } else {
            int64_t pe;
            vg_same_pads(st->auto_pad, in[i], ek, s[i], &out[i], &pb[i], &pe);
        }
        if (out[i] < 1)
            return vg_kerr(c, VG_ESHAPE, "kernel %s larger than the padded input %s", sw, sx);
    }
    g->oh = out[0];
    g->ow = out[1];
    g->pt = pb[0];
    g->pl = pb[1];
    g->kc = g->cin_g * g->kh * g->kw;
    if (g->kc > INT_MAX / 4 || g->m > INT_MAX || g->oh * g->ow > INT_MAX)
        return vg_kerr(c, VG_EUNSUPPORTED, "convolution too large");
    g->depthwise = dw_ok(g);
    g->pointwise = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 &&
                   g->pl == 0 && g->oh == g->h && g->ow == g->w;
    return 0;
}

static int64_t dw_pairs(int64_t kw)
{
    return (kw + 1) / 2;
}

/* Depthwise taps: (w - w_zp) as int16, each kernel row padded to an even count with 0. */
static void dw_prepare(const struct vg_tensor *w, const struct vg_tensor *wzp, int64_t m,
                       int64_t kh, int64_t kw, int16_t *dst)
{
    int64_t per = kh * dw_pairs(kw) * 2;
    int sgn = w->dtype == VG_DT_INT8;
    int64_t nz = wzp ? vg_tensor_numel(wzp) : 1;
    for (int64_t ch = 0; ch < m; ch++) {
        int32_t z = zp_at(wzp, nz > 1 ? ch : 0);
        int16_t *d = dst + ch * per;
        memset(d, 0, (size_t)per * sizeof(*d));
        for (int64_t y = 0; y < kh; y++)
            for (int64_t x = 0; x < kw; x++) {
                size_t at = (size_t)((ch * kh + y) * kw + x);
                int32_t v = sgn ? ((const int8_t *)w->data)[at] : ((const uint8_t *)w->data)[at];
                d[y * dw_pairs(kw) * 2 + x] = (int16_t)(v - z);
            }
    }
}

static size_t conv_pack_bytes(int path, const struct cgeom *g)
{
    return (size_t)g->g * al64(vg_qgemm_pack_a_bytes(path, (int)g->m_g, (int)g->kc));
}

static void conv_pack(int path, const struct vg_tensor *w, const struct cgeom *g, void *mem,
                      struct vg_qgemm_pa *pa)
{
    size_t each = al64(vg_qgemm_pack_a_bytes(path, (int)g->m_g, (int)g->kc));
    for (int64_t gi = 0; gi < g->g; gi++)
        vg_qgemm_pack_a(path, (const uint8_t *)w->data + (size_t)(gi * g->m_g * g->kc),
                        w->dtype == VG_DT_INT8, (size_t)g->kc, (int)g->m_g, (int)g->kc,
                        (char *)mem + (size_t)gi * each, &pa[gi]);
}

/* Per output channel multipliers from the three scale tensors. */
static void conv_rq(const struct vg_tensor *xs, const struct vg_tensor *ws,
                    const struct vg_tensor *ys, int64_t m, struct vg_qgemm_rq *rq)
{
    double x = ((const float *)xs->data)[0], y = ((const float *)ys->data)[0];
    int64_t nw = vg_tensor_numel(ws);
    for (int64_t i = 0; i < m; i++)
        vg_qgemm_requant_param(x * (double)((const float *)ws->data)[nw > 1 ? i : 0] / y, &rq[i]);
}

static int qconv_init_common(struct vg_kctx *c, int qlinear)
{
    const struct vg_node *nd = c->node;
    struct qconv *st = calloc(1, sizeof(*st));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    c->state = st;
    st->qlinear = qlinear;
    st->path = vg_qgemm_path();
    int rc;
    if (qlinear) {
        if ((rc = vg_kctx_need_inputs(c, 8)))
            return rc;
        st->ix = 0, st->ixs = 1, st->ixz = 2, st->iw = 3, st->iws = 4, st->iwz = 5;
        st->iys = 6, st->iyz = 7, st->ib = c->n_in > 8 && c->in[8] ? 8 : -1;
    } else {
        st->ix = 0, st->iw = 1, st->ixs = st->iws = st->iys = st->iyz = st->ib = -1;
        st->ixz = c->n_in > 2 && c->in[2] ? 2 : -1;
        st->iwz = c->n_in > 3 && c->in[3] ? 3 : -1;
    }
    const struct vg_tensor *x = c->in[st->ix], *w = c->in[st->iw];
    if (!is_q8(x->dtype))
        return vg_kerr(c, VG_ETYPE, "x must be uint8 or int8, got %s", vg_dtype_name(x->dtype));
    if (!is_q8(w->dtype))
        return vg_kerr(c, VG_ETYPE, "w must be uint8 or int8, got %s", vg_dtype_name(w->dtype));
    if (st->ixz >= 0 && (rc = check_zp(c, st->ixz, "x_zero_point", st->ix, "x")))
        return rc;
    if (st->iwz >= 0 && (rc = check_zp(c, st->iwz, "w_zero_point", st->iw, "w")))
        return rc;
    if (qlinear) {
        if ((rc = check_scale(c, st->ixs, "x_scale")) || (rc = check_scale(c, st->iws, "w_scale")) ||
            (rc = check_scale(c, st->iys, "y_scale")))
            return rc;
        enum vg_dtype yt = c->in[st->iyz]->dtype;
        if (!is_q8(yt))
            return vg_kerr(c, VG_ETYPE, "y_zero_point must be uint8 or int8, got %s",
                           vg_dtype_name(yt));
        if (st->ib >= 0 && c->in[st->ib]->dtype != VG_DT_INT32)
            return vg_kerr(c, VG_ETYPE, "B (bias) must be int32, got %s",
                           vg_dtype_name(c->in[st->ib]->dtype));
        st->out_kind = yt == VG_DT_UINT8 ? VG_QGEMM_OUT_U8 : VG_QGEMM_OUT_S8;
        c->out[0]->dtype = yt;
    } else {
        st->out_kind = VG_QGEMM_OUT_I32;
        c->out[0]->dtype = VG_DT_INT32;
    }

    /* Attributes. */
    const char *ap = vg_attr_s(nd, "auto_pad", "NOTSET");
    int ap_rc = vg_kattr_auto_pad(c, &st->auto_pad);
    if (ap_rc)
        return ap_rc;
    st->group = vg_attr_i(nd, "group", 1);
    if (st->group < 1)
        return vg_kerr(c, VG_EINVAL, "group must be >= 1, got %lld", (long long)st->group);
    /* Number of spatial dims: from w when constant, else from the attribute lengths (the
     * defaults are the same for every dim, so without any the count does not matter). */
    int nsp = 0;
    const int64_t *v;
    if (w->data)
        nsp = w->rank - 2;
    if (w->data && (w->rank < 3 || w->rank > 4))
        return vg_kerr(c, VG_EUNSUPPORTED, "only 1-D and 2-D convolutions (w of rank 3 or 4)");
    size_t nk = vg_attr_ints(nd, "kernel_shape", &v);
    if (!nsp)
        nsp = nk ? (int)nk
                 : vg_attr_ints(nd, "strides", &v)   ? (int)vg_attr_ints(nd, "strides", &v)
                 : vg_attr_ints(nd, "dilations", &v) ? (int)vg_attr_ints(nd, "dilations", &v)
                                                     : (int)vg_attr_ints(nd, "pads", &v) / 2;
    if (nsp > 2)
        return vg_kerr(c, VG_EUNSUPPORTED, "only 1-D and 2-D convolutions");
    st->nsp = nsp;
    int np = nsp ? nsp : 2;
    nk = vg_attr_ints(nd, "kernel_shape", &v);
    if (nk) {
        if ((int)nk != np)
            return vg_kerr(c, VG_EINVAL, "kernel_shape has %zu values, expected %d", nk, np);
        st->has_kshape = 1;
        st->kshape[0] = np == 2 ? v[0] : 1;
        st->kshape[1] = v[nk - 1];
    }
    if ((rc = read_pair(c, "strides", np, 1, st->strides, 1)))
        return rc;
    if ((rc = read_pair(c, "dilations", np, 1, st->dil, 1)))
        return rc;
    size_t npads = vg_attr_ints(nd, "pads", &v);
    st->pads[0] = st->pads[1] = st->pads[2] = st->pads[3] = 0;
    if (npads) {
        if ((int)npads != 2 * np)
            return vg_kerr(c, VG_EINVAL, "pads has %zu values, expected %d", npads, 2 * np);
        for (size_t i = 0; i < npads; i++)
            if (v[i] < 0)
                return vg_kerr(c, VG_EINVAL, "pads must be >= 0");
        if (np == 2) {
            memcpy(st->pads, v, 4 * sizeof(*v));
        } else {
            st->pads[1] = v[0];
            st->pads[3] = v[1];
        }
        int nonzero = 0;
        for (size_t i = 0; i < npads; i++)
            nonzero |= v[i] != 0;
        if (nonzero && st->auto_pad != VG_AUTO_PAD_NOTSET)
            return vg_kerr(c, VG_EINVAL, "pads and auto_pad %s cannot both be set", ap);
    }

    /* Load-time preparation of constant weights and scales. */
    if (w->data) {
        st->cout = w->dims[0];
        st->cin_g = w->dims[1];
        st->kh = w->rank == 4 ? w->dims[2] : 1;
        st->kw = w->dims[w->rank - 1];
        if (st->cout < 1 || st->cout % st->group)
            return vg_kerr(c, VG_ESHAPE, "group %lld must divide M = %lld", (long long)st->group,
                           (long long)st->cout);
        const struct vg_tensor *wzp = st->iwz >= 0 ? c->in[st->iwz] : NULL;
        if (wzp) {
            int64_t nz = vg_tensor_numel(wzp);
            if (nz != 1 && nz != st->cout)
                return vg_kerr(c, VG_ESHAPE, "w_zero_point has %lld elements, expected 1 or %lld",
                               (long long)nz, (long long)st->cout);
        }
        if (qlinear) {
            int64_t ns = vg_tensor_numel(c->in[st->iws]);
            if (ns != 1 && ns != st->cout)
                return vg_kerr(c, VG_ESHAPE, "w_scale has %lld elements, expected 1 or %lld",
                               (long long)ns, (long long)st->cout);
        }
        struct cgeom g = {0};
        g.g = st->group;
        g.cin_g = st->cin_g;
        g.m_g = st->cout / st->group;
        g.kh = st->kh;
        g.kw = st->kw;
        g.kc = g.cin_g * g.kh * g.kw;
        g.dh = st->dil[0];
        g.dw = st->dil[1];
        g.sw = st->strides[1];
        if (g.kc > INT_MAX / 4)
            return vg_kerr(c, VG_EUNSUPPORTED, "convolution too large");
        st->depthwise = dw_ok(&g);
        if (st->depthwise && (!wzp || wzp->data)) {
            size_t bytes = (size_t)(st->cout * st->kh * dw_pairs(st->kw) * 2) * sizeof(int16_t);
            st->wmem = aligned_alloc(64, al64(bytes));
            if (!st->wmem)
                return vg_kerr(c, VG_ENOMEM, "out of memory");
            st->dw = st->wmem;
            dw_prepare(w, wzp, st->cout, st->kh, st->kw, st->dw);
        } else if (!st->depthwise) {
            st->pa = calloc((size_t)st->group, sizeof(*st->pa));
            st->wmem = aligned_alloc(64, al64(conv_pack_bytes(st->path, &g)));
            if (!st->pa || !st->wmem)
                return vg_kerr(c, VG_ENOMEM, "out of memory");
            conv_pack(st->path, w, &g, st->wmem, st->pa);
        }
        if (wzp && wzp->data) {
            st->wzp = malloc((size_t)st->cout * sizeof(int32_t));
            if (!st->wzp)
                return vg_kerr(c, VG_ENOMEM, "out of memory");
            int64_t nz = vg_tensor_numel(wzp);
            for (int64_t i = 0; i < st->cout; i++)
                st->wzp[i] = zp_at(wzp, nz > 1 ? i : 0);
        }
        if (qlinear && c->in[st->ixs]->data && c->in[st->iws]->data && c->in[st->iys]->data) {
            if (vg_tensor_numel(c->in[st->ixs]) != 1 || vg_tensor_numel(c->in[st->iys]) != 1)
                return vg_kerr(c, VG_ESHAPE, "x_scale and y_scale must have one element");
            st->rq = malloc((size_t)st->cout * sizeof(*st->rq));
            if (!st->rq)
                return vg_kerr(c, VG_ENOMEM, "out of memory");
            conv_rq(c->in[st->ixs], c->in[st->iws], c->in[st->iys], st->cout, st->rq);
        }
    }
    return 0;
}

static int qlinearconv_init(struct vg_kctx *c)
{
    return qconv_init_common(c, 1);
}

static int convinteger_init(struct vg_kctx *c)
{
    return qconv_init_common(c, 0);
}

/* Scratch plan of one convolution. */
struct cscratch {
    size_t pack, rq, wzp, dwtaps, cols, bpack, plane, acc, total;
    int nc;       /* output pixels per chunk (GEMM path) */
    int64_t wbuf; /* depthwise plane row length (int16) */
    int64_t hp;   /* depthwise plane rows */
};

static void conv_scratch(const struct qconv *st, const struct cgeom *g, struct cscratch *s)
{
    memset(s, 0, sizeof(*s));
    size_t off = 0;
    int need_pack = !g->depthwise && !st->pa;
    int need_dw = g->depthwise && !st->dw;
    s->pack = off;
    if (need_pack)
        off += al64(conv_pack_bytes(st->path, g));
    s->dwtaps = off;
    if (need_dw)
        off += al64((size_t)(g->m * g->kh * dw_pairs(g->kw) * 2) * sizeof(int16_t));
    s->rq = off;
    if (st->qlinear && !st->rq)
        off += al64((size_t)g->m * sizeof(struct vg_qgemm_rq));
    s->wzp = off;
    if (!st->wzp)
        off += al64((size_t)g->m * sizeof(int32_t));
    if (g->depthwise) {
        /* Vector steps: 32 outputs (16 at stride 2) with AVX-512, else 16 (8). */
        int64_t owp = (g->ow + 31) / 32 * 32;
        int64_t wp = g->w + g->pl + g->kw + g->sw * (g->ow + 16); /* covers right padding */
        int64_t need = g->sw == 1 ? owp + 2 * dw_pairs(g->kw) + 2
                                  : 2 * ((g->ow + 15) / 16 * 16) + 2 * dw_pairs(g->kw) + 2;
        s->wbuf = (wp > need ? wp : need + 0);
        s->wbuf = (s->wbuf + 15) / 16 * 16;
        s->hp = (g->oh - 1) * g->sh + g->kh;
        if (s->hp < g->h + g->pt)
            s->hp = g->h + g->pt;
        s->plane = off;
        /* + slack: the flat layout's last step reads up to 2 * pairs + 33 past hp * wf */
        off += al64((size_t)(s->hp * s->wbuf + 64) * sizeof(int16_t));
        s->acc = off; /* the output plane's sums, + slack for the last row's vector tail */
        off += al64((size_t)((g->oh - 1) * g->ow + owp) * sizeof(int32_t));
    } else {
        int nr = vg_qgemm_nr(st->path);
        int64_t n = g->oh * g->ow;
        int64_t nc = (128 * 1024) / (g->kc > 0 ? g->kc : 1);
        nc = nc / nr * nr;
        if (nc < nr)
            nc = nr;
        if (nc > n)
            nc = (n + nr - 1) / nr * nr;
        s->nc = (int)nc;
        s->cols = off;
        if (!g->pointwise)
            off += al64((size_t)(g->kc * nc));
        s->bpack = off;
        off += al64(vg_qgemm_pack_b_bytes(st->path, (int)g->kc, (int)nc));
    }
    s->total = off;
}

static int qconv_infer(struct vg_kctx *c)
{
    const struct qconv *st = c->state;
    const struct vg_tensor *x = c->in[st->ix], *w = c->in[st->iw];
    struct cgeom g;
    int rc = conv_geom(c, st, x, w, &g);
    if (rc)
        return rc;
    const char *one[] = {"x_scale", "x_zero_point", "y_scale", "y_zero_point"};
    int idx[] = {st->ixs, st->ixz, st->iys, st->iyz};
    for (int i = 0; i < 4; i++)
        if (idx[i] >= 0 && vg_tensor_numel(c->in[idx[i]]) != 1)
            return vg_kerr(c, VG_ESHAPE, "%s must have one element", one[i]);
    if (st->iws >= 0) {
        int64_t k = vg_tensor_numel(c->in[st->iws]);
        if (k != 1 && k != g.m)
            return vg_kerr(c, VG_ESHAPE, "w_scale has %lld elements, expected 1 or M = %lld",
                           (long long)k, (long long)g.m);
    }
    if (st->iwz >= 0) {
        int64_t k = vg_tensor_numel(c->in[st->iwz]);
        if (k != 1 && k != g.m)
            return vg_kerr(c, VG_ESHAPE, "w_zero_point has %lld elements, expected 1 or M = %lld",
                           (long long)k, (long long)g.m);
    }
    if (st->ib >= 0) {
        const struct vg_tensor *b = c->in[st->ib];
        if (b->rank != 1 || b->dims[0] != g.m)
            return vg_kerr(c, VG_ESHAPE, "B must be [M] = [%lld]", (long long)g.m);
    }
    struct vg_tensor *y = c->out[0];
    y->rank = x->rank;
    y->dims[0] = g.n;
    y->dims[1] = g.m;
    if (x->rank == 4) {
        y->dims[2] = g.oh;
        y->dims[3] = g.ow;
    } else {
        y->dims[2] = g.ow;
    }
    struct cscratch s;
    conv_scratch(st, &g, &s);
    c->scratch_bytes = s.total;
    return 0;
}

#if QC_X86
/* d[j] = src[2 * j] for j < n with AVX-512BW: vpmovwb keeps the low (even) byte of each word.
 * Masked loads stop at src[2 * n - 2], the last byte read: nothing past the row is touched. */
static __attribute__((target("avx2,avx512f,avx512bw"))) void gather2_avx512(const uint8_t *src,
                                                                          int64_t n, uint8_t *d)
{
    for (int64_t j = 0; j < n; j += 32) {
        int64_t cnt = n - j < 32 ? n - j : 32;
        __mmask64 lm = cnt == 32 ? ~(__mmask64)0 >> 1 : ((__mmask64)1 << (2 * cnt - 1)) - 1;
        __mmask32 sm = cnt == 32 ? ~(__mmask32)0 : ((__mmask32)1 << cnt) - 1;
        __m512i v = _mm512_maskz_loadu_epi8(lm, src + 2 * j);
        _mm512_mask_cvtepi16_storeu_epi8(d + j, sm, v);
    }
}
#endif

/* im2col for output pixels [p0, p0 + np) of group gi: rows (c, ky, kx), ld = np. simd = 2: the
 * stride-2 gather uses AVX-512BW. */
static void im2col(const uint8_t *x, const struct cgeom *g, uint8_t pad, int64_t p0, int np,
                   uint8_t *cols, int simd)
{
    int64_t k = 0;
    for (int64_t ch = 0; ch < g->cin_g; ch++) {
        const uint8_t *plane = x + ch * g->h * g->w;
        for (int64_t ky = 0; ky < g->kh; ky++)
            for (int64_t kx = 0; kx < g->kw; kx++, k++) {
                uint8_t *row = cols + k * np;
                int64_t p = p0, end = p0 + np;
                while (p < end) {
                    int64_t oy = p / g->ow, ox = p % g->ow;
                    int64_t seg = g->ow - ox;
                    if (seg > end - p)
                        seg = end - p;
                    int64_t iy = oy * g->sh - g->pt + ky * g->dh;
                    uint8_t *d = row + (p - p0);
                    if (iy < 0 || iy >= g->h) {
                        memset(d, pad, (size_t)seg);
                    } else {
                        const uint8_t *src = plane + iy * g->w;
                        int64_t ix0 = ox * g->sw - g->pl + kx * g->dw;
                        if (g->sw == 1) {
                            /* Contiguous: pad, copy, pad. */
                            int64_t a = ix0 < 0 ? -ix0 : 0;
                            if (a > seg)
                                a = seg;
                            int64_t b = g->w - ix0;
                            if (b > seg)
                                b = seg;
                            if (b < a)
                                b = a;
                            memset(d, pad, (size_t)a);
                            memcpy(d + a, src + ix0 + a, (size_t)(b - a));
                            memset(d + b, pad, (size_t)(seg - b));
                        } else {
                            /* Strided: [0, ja) and [jb, seg) read padding, the middle is a
                             * plain gather with no bounds test. */
                            int64_t sw = g->sw;
                            int64_t ja = ix0 < 0 ? (-ix0 + sw - 1) / sw : 0;
                            int64_t jb = g->w - ix0 > 0 ? (g->w - ix0 + sw - 1) / sw : 0;
                            if (ja > seg)
                                ja = seg;
                            if (jb > seg)
                                jb = seg;
                            if (jb < ja)
                                jb = ja;
                            memset(d, pad, (size_t)ja);
#if QC_X86
                            if (simd == 2 && sw == 2 && jb > ja)
                                gather2_avx512(src + ix0 + ja * 2, jb - ja, d + ja);
                            else
#endif
                                for (int64_t j = ja; j < jb; j++)
                                    d[j] = src[ix0 + j * sw];
                            memset(d + jb, pad, (size_t)(seg - jb));
                        }
                    }
                    p += seg;
                }
            }
    }
}

/* ---- Depthwise ------------------------------------------------------------------------------- */

/* One output row: acc[ox] = bias + taps . plane rows, all in int32. Portable version. */
static void dw_row_c(const int16_t *plane, int64_t wbuf, const int16_t *taps, int64_t kh,
                     int64_t kw, int64_t sw, int64_t ow, int32_t bias, int32_t *acc)
{
    int64_t pk = dw_pairs(kw) * 2;
    for (int64_t ox = 0; ox < ow; ox++)
        acc[ox] = bias;
    for (int64_t ky = 0; ky < kh; ky++) {
        const int16_t *row = plane + ky * wbuf;
        const int16_t *t = taps + ky * pk;
        for (int64_t ox = 0; ox < ow; ox++) {
            const int16_t *r = row + ox * sw;
            int32_t s = 0;
            for (int64_t kx = 0; kx < kw; kx++)
                s += (int32_t)t[kx] * r[kx];
            acc[ox] += s;
        }
    }
}

#if QC_X86
/* Body specialised by the dispatcher below for the common kernels (constant kh, kw, sw). */
static inline __attribute__((always_inline, target("avx2"))) void
dw_row_avx2_body(const int16_t *plane, int64_t wbuf, const int16_t *taps, const int64_t kh,
                 const int64_t kw, const int64_t sw, int64_t ow, int32_t bias, int32_t *acc)
{
    int64_t np = dw_pairs(kw), pk = np * 2;
    const __m256i bv = _mm256_set1_epi32(bias);
    if (sw == 1) {
        for (int64_t ox = 0; ox < ow; ox += 16) {
            __m256i ev = _mm256_setzero_si256(), od = _mm256_setzero_si256();
#pragma GCC unroll 7
            for (int64_t ky = 0; ky < kh; ky++) {
                const int16_t *r = plane + ky * wbuf + ox;
                const int16_t *t = taps + ky * pk;
#pragma GCC unroll 4
                for (int64_t q = 0; q < np; q++) {
                    int32_t wp;
                    memcpy(&wp, t + 2 * q, sizeof(wp));
                    __m256i wv = _mm256_set1_epi32(wp);
                    __m256i a = _mm256_loadu_si256((const __m256i *)(r + 2 * q));
                    __m256i b = _mm256_loadu_si256((const __m256i *)(r + 2 * q + 1));
                    ev = _mm256_add_epi32(ev, _mm256_madd_epi16(a, wv));
                    od = _mm256_add_epi32(od, _mm256_madd_epi16(b, wv));
                }
            }
            __m256i lo = _mm256_unpacklo_epi32(ev, od), hi = _mm256_unpackhi_epi32(ev, od);
            __m256i o0 = _mm256_permute2x128_si256(lo, hi, 0x20);
            __m256i o1 = _mm256_permute2x128_si256(lo, hi, 0x31);
            __m256i *dst = (__m256i *)(acc + ox);
            _mm256_storeu_si256(dst, _mm256_add_epi32(bv, o0));
            _mm256_storeu_si256(dst + 1, _mm256_add_epi32(bv, o1));
        }
    } else {
        for (int64_t ox = 0; ox < ow; ox += 8) {
            __m256i s = _mm256_setzero_si256();
#pragma GCC unroll 7
            for (int64_t ky = 0; ky < kh; ky++) {
                const int16_t *r = plane + ky * wbuf + 2 * ox;
                const int16_t *t = taps + ky * pk;
#pragma GCC unroll 4
                for (int64_t q = 0; q < np; q++) {
                    int32_t wp;
                    memcpy(&wp, t + 2 * q, sizeof(wp));
                    __m256i a = _mm256_loadu_si256((const __m256i *)(r + 2 * q));
                    s = _mm256_add_epi32(s, _mm256_madd_epi16(a, _mm256_set1_epi32(wp)));
                }
            }
            _mm256_storeu_si256((__m256i *)(acc + ox), _mm256_add_epi32(bv, s));
        }
    }
}


__attribute__((target("avx2"))) static void dw_row_avx2(const int16_t *plane, int64_t wbuf,
                                                        const int16_t *taps, int64_t kh,
                                                        int64_t kw, int64_t sw, int64_t ow,
                                                        int32_t bias, int32_t *acc)
{
    if (kh == 3 && kw == 3 && sw == 1)
        dw_row_avx2_body(plane, wbuf, taps, 3, 3, 1, ow, bias, acc);
    else if (kh == 3 && kw == 3 && sw == 2)
        dw_row_avx2_body(plane, wbuf, taps, 3, 3, 2, ow, bias, acc);
    else if (kh == 5 && kw == 5 && sw == 1)
        dw_row_avx2_body(plane, wbuf, taps, 5, 5, 1, ow, bias, acc);
    else if (kh == 5 && kw == 5 && sw == 2)
        dw_row_avx2_body(plane, wbuf, taps, 5, 5, 2, ow, bias, acc);
    else
        dw_row_avx2_body(plane, wbuf, taps, kh, kw, sw, ow, bias, acc);
}
#endif

#if QC_X86
/* Only run when the GEMM path is AVX-512 (simd == 2), which requires AVX512-VNNI too. */
#define DW512_T __attribute__((target("avx2,avx512f,avx512bw,avx512vnni")))
/* acc += pairwise int16 products (vpdpwssd, wrapping: the same int32 sum as vpmaddwd + vpaddd,
 * whose pair sums cannot overflow with |x - x_zp|, |w - w_zp| <= 255). In asm because GCC 12
 * copies the accumulator of the intrinsic at every step. */
#define DPWSSD512(acc, x, y) __asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(y))
/* The AVX-512 form of dw_row_avx2_body: 32 outputs per step at stride 1, 16 at stride 2. */
/* Requantization applied to a row's sums in registers (same integer formula as qgemm.c's
 * vg_qgemm_requant_row: round_half_even(acc * mult / 2^shift), shift in [32, 62], + zp, saturate),
 * then a masked byte store: no int32 plane and no second pass over it. */
struct dwq {
    __m512i mult, sh, hm1, z;
    int u8;
};

/* (A double-precision form, exact while |sum| < 2^22, measured slower on this machine.) */
static DW512_T void dwq_make(struct dwq *q, const struct vg_qgemm_rq *rq, int32_t yz, int u8)
{
    q->mult = _mm512_set1_epi64((int64_t)rq->mult);
    q->sh = _mm512_set1_epi64(rq->shift);
    q->hm1 = _mm512_set1_epi64(((int64_t)1 << (rq->shift - 1)) - 1);
    q->z = _mm512_set1_epi32(yz);
    q->u8 = u8;
}

static inline __attribute__((always_inline)) DW512_T __m512i dw_rshift(__m512i p, const struct dwq *q)
{
    __m512i bit = _mm512_and_si512(_mm512_srlv_epi64(p, q->sh), _mm512_set1_epi64(1));
    return _mm512_srav_epi64(_mm512_add_epi64(_mm512_add_epi64(p, q->hm1), bit), q->sh);
}

/* The requantized value + zero point, not yet saturated. */
static inline __attribute__((always_inline)) DW512_T __m512i dw_rq(__m512i v, const struct dwq *q)
{
    __m512i pe = dw_rshift(_mm512_mul_epi32(v, q->mult), q);
    __m512i po = dw_rshift(_mm512_mul_epi32(_mm512_srli_epi64(v, 32), q->mult), q);
    return _mm512_add_epi32(_mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32)), q->z);
}

static inline __attribute__((always_inline)) DW512_T void
dw_store_q(__m512i v, const struct dwq *q, __mmask16 mask, uint8_t *y)
{
    v = dw_rq(v, q);
    if (q->u8)
        _mm512_mask_cvtusepi32_storeu_epi8(y, mask, _mm512_max_epi32(v, _mm512_setzero_si512()));
    else
        _mm512_mask_cvtsepi32_storeu_epi8(y, mask, v);
}

/* Two vectors (outputs 0-15 and 16-31) requantized as dw_store_q, then saturated to bytes with
 * two packs and a dword permute (cheaper than two vpmov[u]sdb) and stored under `mask`. */
static inline __attribute__((always_inline)) DW512_T void
dw_store32_q(__m512i v0, __m512i v1, const struct dwq *q, __mmask64 mask, uint8_t *y)
{
    v0 = dw_rq(v0, q);
    v1 = dw_rq(v1, q);
    __m512i w, b;
    if (q->u8) {
        w = _mm512_packus_epi32(v0, v1);
        b = _mm512_packus_epi16(w, w);
    } else {
        w = _mm512_packs_epi32(v0, v1);
        b = _mm512_packs_epi16(w, w);
    }
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
    b = _mm512_permutexvar_epi32(idx, b);
    if (mask == 0xFFFFFFFFu)
        _mm256_storeu_si256((__m256i *)y, _mm512_castsi512_si256(b));
    else
        _mm512_mask_storeu_epi8(y, mask, b);
}

static inline __attribute__((always_inline)) DW512_T __mmask16 dw_mask(int64_t left)
{
    return left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
}

/* With q != NULL the row is requantized into yq (ow bytes) instead of stored to acc. */
static inline __attribute__((always_inline)) DW512_T void
dw_row_avx512_body(const int16_t *plane, int64_t wbuf, const int16_t *taps, const int64_t kh,
                   const int64_t kw, const int64_t sw, int64_t ow, int32_t bias, int32_t *acc,
                   const struct dwq *dq, uint8_t *yq)
{
    int64_t np = dw_pairs(kw), pk = np * 2;
    const __m512i bv = _mm512_set1_epi32(bias);
    if (sw == 1) {
        const __m512i i0 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
        const __m512i i1 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
        for (int64_t ox = 0; ox < ow; ox += 32) {
            __m512i ev = _mm512_setzero_si512(), od = _mm512_setzero_si512();
#pragma GCC unroll 7
            for (int64_t ky = 0; ky < kh; ky++) {
                const int16_t *r = plane + ky * wbuf + ox;
                const int16_t *t = taps + ky * pk;
#pragma GCC unroll 4
                for (int64_t q = 0; q < np; q++) {
                    int32_t wp;
                    memcpy(&wp, t + 2 * q, sizeof(wp));
                    __m512i wv = _mm512_set1_epi32(wp);
                    __m512i a = _mm512_loadu_si512((const void *)(r + 2 * q));
                    __m512i b = _mm512_loadu_si512((const void *)(r + 2 * q + 1));
                    DPWSSD512(ev, a, wv);
                    DPWSSD512(od, b, wv);
                }
            }
            /* ev holds outputs 0, 2, 4, ..., od 1, 3, 5, ...: interleave per 128-bit lane, then
             * put the lanes in order. */
            __m512i lo = _mm512_unpacklo_epi32(ev, od), hi = _mm512_unpackhi_epi32(ev, od);
            __m512i v0 = _mm512_add_epi32(bv, _mm512_permutex2var_epi64(lo, i0, hi));
            __m512i v1 = _mm512_add_epi32(bv, _mm512_permutex2var_epi64(lo, i1, hi));
            if (dq) {
                int64_t left = ow - ox;
                dw_store32_q(v0, v1, dq,
                             left >= 32 ? (__mmask64)0xFFFFFFFFu : ((__mmask64)1 << left) - 1,
                             yq + ox);
                continue;
            }
            _mm512_storeu_si512((void *)(acc + ox), v0);
            _mm512_storeu_si512((void *)(acc + ox + 16), v1);
        }
    } else {
        int64_t ox = 0;
        /* Requantized output: two 16-output steps share one pack-and-store while the second
         * one still has outputs (it then reads only what the single steps would read). */
        for (; dq && ox + 16 < ow; ox += 32) {
            __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
#pragma GCC unroll 7
            for (int64_t ky = 0; ky < kh; ky++) {
                const int16_t *r = plane + ky * wbuf + 2 * ox;
                const int16_t *t = taps + ky * pk;
#pragma GCC unroll 4
                for (int64_t q = 0; q < np; q++) {
                    int32_t wp;
                    memcpy(&wp, t + 2 * q, sizeof(wp));
                    __m512i wv = _mm512_set1_epi32(wp);
                    __m512i a = _mm512_loadu_si512((const void *)(r + 2 * q));
                    __m512i b = _mm512_loadu_si512((const void *)(r + 32 + 2 * q));
                    DPWSSD512(s0, a, wv);
                    DPWSSD512(s1, b, wv);
                }
            }
            int64_t left = ow - ox;
            dw_store32_q(_mm512_add_epi32(bv, s0), _mm512_add_epi32(bv, s1), dq,
                         left >= 32 ? (__mmask64)0xFFFFFFFFu : ((__mmask64)1 << left) - 1,
                         yq + ox);
        }
        for (; ox < ow; ox += 16) {
            __m512i sacc = _mm512_setzero_si512();
#pragma GCC unroll 7
            for (int64_t ky = 0; ky < kh; ky++) {
                const int16_t *r = plane + ky * wbuf + 2 * ox;
                const int16_t *t = taps + ky * pk;
#pragma GCC unroll 4
                for (int64_t q = 0; q < np; q++) {
                    int32_t wp;
                    memcpy(&wp, t + 2 * q, sizeof(wp));
                    __m512i a = _mm512_loadu_si512((const void *)(r + 2 * q));
                    __m512i wv = _mm512_set1_epi32(wp);
                    DPWSSD512(sacc, a, wv);
                }
            }
            if (dq) {
                dw_store_q(_mm512_add_epi32(bv, sacc), dq, dw_mask(ow - ox), yq + ox);
                continue;
            }
            _mm512_storeu_si512((void *)(acc + ox), _mm512_add_epi32(bv, sacc));
        }
    }
}

static DW512_T void dw_row_avx512(const int16_t *plane, int64_t wbuf, const int16_t *taps,
                                  int64_t kh, int64_t kw, int64_t sw, int64_t ow, int32_t bias,
                                  int32_t *acc)
{
    if (kh == 3 && kw == 3 && sw == 1)
        dw_row_avx512_body(plane, wbuf, taps, 3, 3, 1, ow, bias, acc, NULL, NULL);
    else if (kh == 3 && kw == 3 && sw == 2)
        dw_row_avx512_body(plane, wbuf, taps, 3, 3, 2, ow, bias, acc, NULL, NULL);
    else if (kh == 5 && kw == 5 && sw == 1)
        dw_row_avx512_body(plane, wbuf, taps, 5, 5, 1, ow, bias, acc, NULL, NULL);
    else if (kh == 5 && kw == 5 && sw == 2)
        dw_row_avx512_body(plane, wbuf, taps, 5, 5, 2, ow, bias, acc, NULL, NULL);
    else
        dw_row_avx512_body(plane, wbuf, taps, kh, kw, sw, ow, bias, acc, NULL, NULL);
}

/* A whole output plane with the requantization fused (u8/s8 output, shift in [32, 62]). */
static DW512_T void dw_plane_avx512_q(const int16_t *plane, int64_t wbuf, const int16_t *taps,
                                      int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t oh,
                                      int64_t ow, int32_t bias, const struct vg_qgemm_rq *rq,
                                      int32_t yz, int u8, uint8_t *y)
{
    struct dwq q;
    dwq_make(&q, rq, yz, u8);
#define DWQ_ROWS(KH, KW, SW)                                                                       \
    for (int64_t oy = 0; oy < oh; oy++)                                                            \
        dw_row_avx512_body(plane + oy * sh * wbuf, wbuf, taps, KH, KW, SW, ow, bias, NULL, &q,     \
                           y + oy * ow);
    if (kh == 3 && kw == 3 && sw == 1) {
        DWQ_ROWS(3, 3, 1)
    } else if (kh == 3 && kw == 3 && sw == 2) {
        DWQ_ROWS(3, 3, 2)
    } else if (kh == 5 && kw == 5 && sw == 1) {
        DWQ_ROWS(5, 5, 1)
    } else if (kh == 5 && kw == 5 && sw == 2) {
        DWQ_ROWS(5, 5, 2)
    } else {
        DWQ_ROWS(kh, kw, sw)
    }
#undef DWQ_ROWS
}

/* Stride 1 on a small map (14x14, 7x7): one 32-lane step per row would leave most lanes idle,
 * so the plane is stored with a row length of wf = ow + kw - 1 and the plane is treated as one
 * long row: the sum at flat position f = oy * wf + ox is output (oy, ox) when ox < ow, and the
 * lanes with ox >= ow (reading across a row end) are dropped by a compress before the store.
 * Every lane is computed exactly as in dw_row_avx512_body; only which lanes are kept differs. */
static inline __attribute__((always_inline)) DW512_T void
dw_flat_store(__m512i v, const struct dwq *q, __m512i *col, __m512i *fi, __m512i wfv, __m512i owv,
              __m512i totv, uint8_t *y, int64_t *outpos)
{
    __mmask16 keep = _mm512_cmplt_epi32_mask(*col, owv) & _mm512_cmplt_epi32_mask(*fi, totv);
    /* Requantize all lanes (as dw_store_q), then pack the kept ones to the front. */
    v = _mm512_maskz_compress_epi32(keep, dw_rq(v, q));
    int cnt = __builtin_popcount((unsigned)keep);
    __mmask16 sm = (__mmask16)((1u << cnt) - 1);
    if (q->u8)
        _mm512_mask_cvtusepi32_storeu_epi8(y + *outpos, sm,
                                           _mm512_max_epi32(v, _mm512_setzero_si512()));
    else
        _mm512_mask_cvtsepi32_storeu_epi8(y + *outpos, sm, v);
    *outpos += cnt;
    /* Advance the lanes' flat index and column by 16. */
    *fi = _mm512_add_epi32(*fi, _mm512_set1_epi32(16));
    *col = _mm512_add_epi32(*col, _mm512_set1_epi32(16));
    for (;;) {
        __mmask16 over = _mm512_cmpge_epi32_mask(*col, wfv);
        if (!over)
            break;
        *col = _mm512_mask_sub_epi32(*col, over, *col, wfv);
    }
}

static inline __attribute__((always_inline)) DW512_T void
dw_flat_body(const int16_t *plane, int64_t wf, const int16_t *taps, const int64_t kh,
             const int64_t kw, int64_t oh, int64_t ow, int32_t bias, const struct dwq *q,
             uint8_t *y)
{
    int64_t np = dw_pairs(kw), pk = np * 2, total = oh * wf;
    const __m512i bv = _mm512_set1_epi32(bias);
    const __m512i i0 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
    const __m512i i1 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i wfv = _mm512_set1_epi32((int32_t)wf), owv = _mm512_set1_epi32((int32_t)ow);
    __m512i totv = _mm512_set1_epi32((int32_t)total);
    __m512i fi = iota, col = iota;
    for (;;) {
        __mmask16 over = _mm512_cmpge_epi32_mask(col, wfv);
        if (!over)
            break;
        col = _mm512_mask_sub_epi32(col, over, col, wfv);
    }
    int64_t outpos = 0;
    for (int64_t f = 0; f < total; f += 32) {
        __m512i ev = _mm512_setzero_si512(), od = _mm512_setzero_si512();
#pragma GCC unroll 7
        for (int64_t ky = 0; ky < kh; ky++) {
            const int16_t *r = plane + ky * wf + f;
            const int16_t *t = taps + ky * pk;
#pragma GCC unroll 4
            for (int64_t qq = 0; qq < np; qq++) {
                int32_t wp;
                memcpy(&wp, t + 2 * qq, sizeof(wp));
                __m512i wv = _mm512_set1_epi32(wp);
                __m512i a = _mm512_loadu_si512((const void *)(r + 2 * qq));
                __m512i b = _mm512_loadu_si512((const void *)(r + 2 * qq + 1));
                DPWSSD512(ev, a, wv);
                DPWSSD512(od, b, wv);
            }
        }
        __m512i lo = _mm512_unpacklo_epi32(ev, od), hi = _mm512_unpackhi_epi32(ev, od);
        dw_flat_store(_mm512_add_epi32(bv, _mm512_permutex2var_epi64(lo, i0, hi)), q, &col, &fi,
                      wfv, owv, totv, y, &outpos);
        dw_flat_store(_mm512_add_epi32(bv, _mm512_permutex2var_epi64(lo, i1, hi)), q, &col, &fi,
                      wfv, owv, totv, y, &outpos);
    }
}

static DW512_T void dw_flat_avx512(const int16_t *plane, int64_t wf, const int16_t *taps,
                                   int64_t kh, int64_t kw, int64_t oh, int64_t ow, int32_t bias,
                                   const struct vg_qgemm_rq *rq, int32_t yz, int u8, uint8_t *y)
{
    struct dwq q;
    dwq_make(&q, rq, yz, u8);
    if (kh == 3 && kw == 3)
        dw_flat_body(plane, wf, taps, 3, 3, oh, ow, bias, &q, y);
    else if (kh == 5 && kw == 5)
        dw_flat_body(plane, wf, taps, 5, 5, oh, ow, bias, &q, y);
    else
        dw_flat_body(plane, wf, taps, kh, kw, oh, ow, bias, &q, y);
}

/* to_i16 with masked loads and stores: no scalar tail (rows are often 7 to 56 wide). */
static DW512_T void to_i16_avx512(const uint8_t *src, int64_t n, int sgn, int32_t z, int16_t *d)
{
    __m512i zv = _mm512_set1_epi16((int16_t)z);
    for (int64_t i = 0; i < n; i += 32) {
        int64_t left = n - i;
        __mmask32 m = left >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << left) - 1);
        __m256i v = _mm512_castsi512_si256(_mm512_maskz_loadu_epi8((__mmask64)m, src + i));
        __m512i w = sgn ? _mm512_cvtepi8_epi16(v) : _mm512_cvtepu8_epi16(v);
        _mm512_mask_storeu_epi16(d + i, m, _mm512_sub_epi16(w, zv));
    }
}

/* A whole plane (h rows of w) into rows of stride wb: one call per channel instead of per row
 * (rows of 7 or 14 made the calls cost as much as the conversion). */
static inline __attribute__((always_inline)) DW512_T void
to_i16_plane_body(const uint8_t *src, int64_t h, int64_t w, const int sgn, int32_t z, int16_t *d,
                  int64_t wb)
{
    __m512i zv = _mm512_set1_epi16((int16_t)z);
    for (int64_t y = 0; y < h; y++, src += w, d += wb)
        for (int64_t i = 0; i < w; i += 32) {
            int64_t left = w - i;
            __mmask32 m = left >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << left) - 1);
            __m256i v = _mm512_castsi512_si256(_mm512_maskz_loadu_epi8((__mmask64)m, src + i));
            __m512i x = sgn ? _mm512_cvtepi8_epi16(v) : _mm512_cvtepu8_epi16(v);
            _mm512_mask_storeu_epi16(d + i, m, _mm512_sub_epi16(x, zv));
        }
}

static DW512_T void to_i16_plane_avx512(const uint8_t *src, int64_t h, int64_t w, int sgn,
                                        int32_t z, int16_t *d, int64_t wb)
{
    if (sgn)
        to_i16_plane_body(src, h, w, 1, z, d, wb);
    else
        to_i16_plane_body(src, h, w, 0, z, d, wb);
}
#endif

#if QC_X86
__attribute__((target("avx2"))) static void to_i16_avx2(const uint8_t *src, int64_t n, int sgn,
                                                        int32_t z, int16_t *d)
{
    __m256i zv = _mm256_set1_epi16((int16_t)z);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(src + i));
        __m256i w = sgn ? _mm256_cvtepi8_epi16(v) : _mm256_cvtepu8_epi16(v);
        _mm256_storeu_si256((__m256i *)(d + i), _mm256_sub_epi16(w, zv));
    }
    for (; i < n; i++)
        d[i] = (int16_t)((sgn ? (int32_t)(int8_t)src[i] : (int32_t)src[i]) - z);
}
#endif

/* d[i] = x[i] - x_zp as int16 (exact: both in [-255, 255]). */
static void to_i16(const uint8_t *src, int64_t n, int sgn, int32_t z, int16_t *d, int simd)
{
#if QC_X86
    if (simd == 2) {
        to_i16_avx512(src, n, sgn, z, d);
        return;
    }
    if (simd) {
        to_i16_avx2(src, n, sgn, z, d);
        return;
    }
#endif
    (void)simd;
    for (int64_t i = 0; i < n; i++)
        d[i] = (int16_t)((sgn ? (int32_t)(int8_t)src[i] : (int32_t)src[i]) - z);
}

static void conv_depthwise(const struct qconv *st, const struct cgeom *g, const struct cscratch *s,
                           char *scratch, const uint8_t *x, int x_signed, int32_t xz,
                           const int16_t *taps, const struct vg_qgemm_rq *rq, const int32_t *bias,
                           int32_t yz, void *y)
{
    int16_t *plane = (int16_t *)(scratch + s->plane);
    int32_t *acc = (int32_t *)(scratch + s->acc);
    int64_t pk = g->kh * dw_pairs(g->kw) * 2;
    int simd = 0;
#if QC_X86
    simd = st->path == VG_QGEMM_AVX512 ? 2 : st->path != VG_QGEMM_PORTABLE;
#endif
    size_t es = st->out_kind == VG_QGEMM_OUT_I32 ? 4 : 1;
    /* The flat layout (dw_flat_avx512) on rows shorter than one 32-lane step when it takes
     * fewer steps than one row at a time (on 56- and 112-wide rows it measured no faster), and
     * every channel's requantization fits the fused AVX-512 stage. */
    int64_t wb = s->wbuf;
    int flat = 0;
#if QC_X86
    if (simd == 2 && g->sw == 1 && st->out_kind != VG_QGEMM_OUT_I32) {
        int64_t wf = g->ow + g->kw - 1;
        flat = (g->oh * wf + 31) / 32 < g->oh * ((g->ow + 31) / 32) && g->ow < 32 &&
               g->oh * wf < (1 << 30);
        for (int64_t ch = 0; ch < g->c && flat; ch++)
            flat = rq[ch].shift >= 32 && rq[ch].shift <= 62;
        if (flat)
            wb = wf;
    }
#endif
    memset(plane, 0, (size_t)(s->hp * s->wbuf + 64) * sizeof(int16_t));
    for (int64_t b = 0; b < g->n; b++)
        for (int64_t ch = 0; ch < g->c; ch++) {
            const uint8_t *xp = x + (b * g->c + ch) * g->h * g->w;
            /* Interior rows: x - x_zp; the borders stay 0 from the memset above. */
#if QC_X86
            if (simd == 2)
                to_i16_plane_avx512(xp, g->h, g->w, x_signed, xz, plane + g->pt * wb + g->pl, wb);
            else
#endif
                for (int64_t iy = 0; iy < g->h; iy++)
                    to_i16(xp + iy * g->w, g->w, x_signed, xz, plane + (iy + g->pt) * wb + g->pl,
                           simd);
            const int16_t *t = taps + ch * pk;
            int32_t bv = bias ? bias[ch] : 0;
            int64_t plane_n = g->oh * g->ow;
            char *yp = (char *)y + (size_t)((b * g->m + ch) * plane_n) * es;
#if QC_X86
            if (flat) {
                dw_flat_avx512(plane, wb, t, g->kh, g->kw, g->oh, g->ow, bv, &rq[ch], yz,
                               st->out_kind == VG_QGEMM_OUT_U8, (uint8_t *)yp);
                continue;
            }
            if (simd == 2 && st->out_kind != VG_QGEMM_OUT_I32 && rq[ch].shift >= 32 &&
                rq[ch].shift <= 62) {
                dw_plane_avx512_q(plane, s->wbuf, t, g->kh, g->kw, g->sh, g->sw, g->oh, g->ow, bv,
                                  &rq[ch], yz, st->out_kind == VG_QGEMM_OUT_U8, (uint8_t *)yp);
                continue;
            }
#endif
            /* Row oy's vector tail runs into row oy + 1, which is written after it. */
            for (int64_t oy = 0; oy < g->oh; oy++) {
                int32_t *a = acc + oy * g->ow;
                const int16_t *rows = plane + oy * g->sh * s->wbuf;
#if QC_X86
                if (simd == 2)
                    dw_row_avx512(rows, s->wbuf, t, g->kh, g->kw, g->sw, g->ow, bv, a);
                else if (simd)
                    dw_row_avx2(rows, s->wbuf, t, g->kh, g->kw, g->sw, g->ow, bv, a);
                else
#endif
                    dw_row_c(rows, s->wbuf, t, g->kh, g->kw, g->sw, g->ow, bv, a);
            }
            if (st->out_kind == VG_QGEMM_OUT_I32)
                memcpy(yp, acc, (size_t)plane_n * sizeof(int32_t));
            else
                vg_qgemm_requant_row(acc, (int)plane_n, &rq[ch], yz, st->out_kind, yp);
        }
    (void)simd;
}

static int qconv_run(struct vg_kctx *c)
{
    const struct qconv *st = c->state;
    const struct vg_tensor *x = c->in[st->ix], *w = c->in[st->iw];
    struct cgeom g;
    if (conv_geom(NULL, st, x, w, &g))
        return vg_kerr(c, VG_ESHAPE, "shapes changed after planning");
    struct cscratch s;
    conv_scratch(st, &g, &s);
    char *scr = c->scratch;
    if (vg_tensor_numel(c->out[0]) == 0)
        return 0;

    /* Zero points and multipliers (prepared at load when constant). */
    const struct vg_tensor *wzp_t = st->iwz >= 0 ? c->in[st->iwz] : NULL;
    const int32_t *wzp = st->wzp;
    if (!wzp) {
        int32_t *z = (int32_t *)(scr + s.wzp);
        int64_t nz = wzp_t ? vg_tensor_numel(wzp_t) : 1;
        for (int64_t i = 0; i < g.m; i++)
            z[i] = zp_at(wzp_t, nz > 1 ? i : 0);
        wzp = z;
    }
    int32_t xz = st->ixz >= 0 ? zp_at(c->in[st->ixz], 0) : 0;
    int32_t yz = st->iyz >= 0 ? zp_at(c->in[st->iyz], 0) : 0;
    const struct vg_qgemm_rq *rq = st->rq;
    if (st->qlinear && !rq) {
        int rc;
        if ((rc = scales_positive(c, c->in[st->ixs], "x_scale")) ||
            (rc = scales_positive(c, c->in[st->iws], "w_scale")) ||
            (rc = scales_positive(c, c->in[st->iys], "y_scale")))
            return rc;
        struct vg_qgemm_rq *q = (struct vg_qgemm_rq *)(scr + s.rq);
        conv_rq(c->in[st->ixs], c->in[st->iws], c->in[st->iys], g.m, q);
        rq = q;
    }
    const int32_t *bias = st->ib >= 0 ? c->in[st->ib]->data : NULL;
    int x_signed = x->dtype == VG_DT_INT8;
    const uint8_t *xd = x->data;

    if (g.depthwise) {
        const int16_t *taps = st->dw;
        if (!taps) {
            int16_t *t = (int16_t *)(scr + s.dwtaps);
            dw_prepare(w, wzp_t, g.m, g.kh, g.kw, t);
            taps = t;
        }
        conv_depthwise(st, &g, &s, scr, xd, x_signed, xz, taps, rq, bias, yz, c->out[0]->data);
        return 0;
    }

    struct vg_qgemm_pa local[16];
    const struct vg_qgemm_pa *pa = st->pa;
    struct vg_qgemm_pa *tmp = NULL;
    if (!pa) {
        /* Weights as an input: pack them into scratch for this run, one group at a time. */
        tmp = g.g <= 16 ? local : NULL;
    }
    size_t pack_each = al64(vg_qgemm_pack_a_bytes(st->path, (int)g.m_g, (int)g.kc));
    size_t es = st->out_kind == VG_QGEMM_OUT_I32 ? 4 : 1;
    int64_t npix = g.oh * g.ow;
    uint8_t *cols = (uint8_t *)(scr + s.cols);
    void *bmem = scr + s.bpack;
    for (int64_t gi = 0; gi < g.g; gi++) {
        struct vg_qgemm_pa one;
        const struct vg_qgemm_pa *a;
        if (pa) {
            a = &pa[gi];
        } else {
            vg_qgemm_pack_a(st->path, (const uint8_t *)w->data + (size_t)(gi * g.m_g * g.kc),
                            w->dtype == VG_DT_INT8, (size_t)g.kc, (int)g.m_g, (int)g.kc,
                            scr + s.pack + (size_t)gi * pack_each, tmp ? &tmp[gi] : &one);
            a = tmp ? &tmp[gi] : &one;
        }
        /* Column sums are needed when a w zero point differs from 0 in the int8 domain. */
        int need_cs = 0;
        int32_t zoff = w->dtype == VG_DT_INT8 ? 0 : -128;
        for (int64_t i = 0; i < g.m_g; i++)
            need_cs |= wzp[gi * g.m_g + i] + zoff != 0;
        for (int64_t b = 0; b < g.n; b++) {
            const uint8_t *xg = xd + (size_t)((b * g.c + gi * g.cin_g) * g.h * g.w);
            char *yg = (char *)c->out[0]->data + (size_t)((b * g.m + gi * g.m_g) * npix) * es;
            for (int64_t p0 = 0; p0 < npix; p0 += s.nc) {
                int np = (int)(npix - p0 < s.nc ? npix - p0 : s.nc);
                struct vg_qgemm_pb pb;
                if (g.pointwise) {
                    vg_qgemm_pack_b(st->path, xg + p0, x_signed, (size_t)npix, (int)g.kc, np,
                                    need_cs, bmem, &pb);
                } else {
                    im2col(xg, &g, (uint8_t)xz, p0, np, cols, st->path == VG_QGEMM_AVX512 ? 2 : 0);
                    vg_qgemm_pack_b(st->path, cols, x_signed, (size_t)np, (int)g.kc, np, need_cs,
                                    bmem, &pb);
                }
                struct vg_qgemm_out o = {0};
                o.za = wzp + gi * g.m_g;
                o.za_per_row = 1;
                o.zb = &xz;
                o.bias = bias ? bias + gi * g.m_g : NULL;
                o.kind = st->out_kind;
                o.y = yg + (size_t)p0 * es;
                o.ldy = (size_t)npix;
                o.rq = rq ? rq + gi * g.m_g : NULL;
                o.rq_per_row = 1;
                o.y_zp = yz;
                vg_qgemm(a, &pb, &o);
            }
        }
    }
    return 0;
}

/* ==== Matrix products ========================================================================= */

struct qmm {
    int qlinear;
    int ia, ias, iaz, ib, ibs, ibz, iys, iyz;
    enum vg_qgemm_out_kind out_kind;
    int path;
    /* B constant: every matrix of B packed at load, with column sums */
    void *bmem;
    struct vg_qgemm_pb *pb;
    int64_t b_mats;
    /* constant scales: multipliers (1, per row or per column entries) */
    struct vg_qgemm_rq *rq;
    int64_t n_rq;
};


static void qmm_release(void *p)
{
    struct qmm *st = p;
    if (!st)
        return;
    free(st->bmem);
    free(st->pb);
    free(st->rq);
    free(st);
}

/* Multipliers: a per tensor or per row, b per tensor or per column (of each of B's matrices). */
static void qmm_rq(const struct vg_tensor *as, const struct vg_tensor *bs,
                   const struct vg_tensor *ys, struct vg_qgemm_rq *rq, int64_t *n_rq)
{
    int64_t na = vg_tensor_numel(as), nb = vg_tensor_numel(bs);
    double y = ((const float *)ys->data)[0];
    const float *a = as->data, *b = bs->data;
    int64_t n = na > nb ? na : nb;
    for (int64_t i = 0; i < n; i++)
        vg_qgemm_requant_param((double)a[na > 1 ? i : 0] * (double)b[nb > 1 ? i : 0] / y, &rq[i]);
    *n_rq = n;
}

static int qmm_init_common(struct vg_kctx *c, int qlinear)
{
    struct qmm *st = calloc(1, sizeof(*st));
    if (!st)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    c->state = st;
    st->qlinear = qlinear;
    st->path = vg_qgemm_path();
    int rc;
    if (qlinear) {
        if ((rc = vg_kctx_need_inputs(c, 8)))
            return rc;
        st->ia = 0, st->ias = 1, st->iaz = 2, st->ib = 3, st->ibs = 4, st->ibz = 5;
        st->iys = 6, st->iyz = 7;
    } else {
        st->ia = 0, st->ib = 1, st->ias = st->ibs = st->iys = st->iyz = -1;
        st->iaz = c->n_in > 2 && c->in[2] ? 2 : -1;
        st->ibz = c->n_in > 3 && c->in[3] ? 3 : -1;
    }
    const struct vg_tensor *a = c->in[st->ia], *b = c->in[st->ib];
    if (!is_q8(a->dtype))
        return vg_kerr(c, VG_ETYPE, "A must be uint8 or int8, got %s", vg_dtype_name(a->dtype));
    if (!is_q8(b->dtype))
        return vg_kerr(c, VG_ETYPE, "B must be uint8 or int8, got %s", vg_dtype_name(b->dtype));
    if (st->iaz >= 0 && (rc = check_zp(c, st->iaz, "a_zero_point", st->ia, "A")))
        return rc;
    if (st->ibz >= 0 && (rc = check_zp(c, st->ibz, "b_zero_point", st->ib, "B")))
        return rc;
    if (qlinear) {
        if ((rc = check_scale(c, st->ias, "a_scale")) || (rc = check_scale(c, st->ibs, "b_scale")) ||
            (rc = check_scale(c, st->iys, "y_scale")))
            return rc;
        enum vg_dtype yt = c->in[st->iyz]->dtype;
        if (!is_q8(yt))
            return vg_kerr(c, VG_ETYPE, "y_zero_point must be uint8 or int8, got %s",
                           vg_dtype_name(yt));
        st->out_kind = yt == VG_DT_UINT8 ? VG_QGEMM_OUT_U8 : VG_QGEMM_OUT_S8;
        c->out[0]->dtype = yt;
    } else {
        st->out_kind = VG_QGEMM_OUT_I32;
        c->out[0]->dtype = VG_DT_INT32;
    }
    if (b->data && b->rank >= 2) {
        int64_t k = b->dims[b->rank - 2], n = b->dims[b->rank - 1];
        if (k > INT_MAX / 4 || n > INT_MAX)
            return vg_kerr(c, VG_EUNSUPPORTED, "matrix dimension too large");
        st->b_mats = 1;
        for (int i = 0; i < b->rank - 2; i++)
            st->b_mats *= b->dims[i];
        size_t each = al64(vg_qgemm_pack_b_bytes(st->path, (int)k, (int)n));
        st->pb = calloc((size_t)(st->b_mats ? st->b_mats : 1), sizeof(*st->pb));
        st->bmem = aligned_alloc(64, each * (size_t)(st->b_mats ? st->b_mats : 1));
        if (!st->pb || !st->bmem)
            return vg_kerr(c, VG_ENOMEM, "out of memory");
        for (int64_t i = 0; i < st->b_mats; i++)
            vg_qgemm_pack_b(st->path, (const uint8_t *)b->data + (size_t)(i * k * n),
                            b->dtype == VG_DT_INT8, (size_t)n, (int)k, (int)n, 1,
                            (char *)st->bmem + (size_t)i * each, &st->pb[i]);
    }
    if (qlinear && c->in[st->ias]->data && c->in[st->ibs]->data && c->in[st->iys]->data) {
        int64_t na = vg_tensor_numel(c->in[st->ias]), nb = vg_tensor_numel(c->in[st->ibs]);
        if (vg_tensor_numel(c->in[st->iys]) != 1)
            return vg_kerr(c, VG_ESHAPE, "y_scale must have one element");
        if (na > 1 && nb > 1)
            return vg_kerr(c, VG_EUNSUPPORTED,
                           "a_scale per row together with b_scale per column is not supported");
        st->rq = malloc((size_t)(na > nb ? na : nb) * sizeof(*st->rq));
        if (!st->rq)
            return vg_kerr(c, VG_ENOMEM, "out of memory");
        qmm_rq(c->in[st->ias], c->in[st->ibs], c->in[st->iys], st->rq, &st->n_rq);
    }
    return 0;
}

static int qlinearmatmul_init(struct vg_kctx *c)
{
    return qmm_init_common(c, 1);
}

static int matmulinteger_init(struct vg_kctx *c)
{
    return qmm_init_common(c, 0);
}

/* Scratch: packed A, packed B (when not constant), multipliers, zero points as int32. */
struct mscratch {
    size_t apack, bpack, rq, za, zb, total;
};

static void mm_scratch(const struct qmm *st, const struct vg_mm_geom *g, int64_t rows,
                       struct mscratch *s)
{
    size_t off = 0;
    s->apack = off;
    off += al64(vg_qgemm_pack_a_bytes(st->path, (int)rows, (int)g->k));
    s->bpack = off;
    if (!st->pb)
        off += al64(vg_qgemm_pack_b_bytes(st->path, (int)g->k, (int)g->n));
    s->rq = off;
    if (st->qlinear && !st->rq) {
        int64_t mx = g->m > g->n ? g->m : g->n;
        off += al64((size_t)mx * sizeof(struct vg_qgemm_rq));
    }
    s->za = off;
    off += al64((size_t)rows * sizeof(int32_t));
    s->zb = off;
    off += al64((size_t)g->n * sizeof(int32_t));
    s->total = off;
}

/* A's batch folds into its rows when B is one matrix used by every batch and nothing is per
 * row (zero points, scales). */
static int mm_fold(const struct qmm *st, struct vg_kctx *c, const struct vg_mm_geom *g)
{
    if (g->b_batches != 1 || g->a_batches != g->n_batch || g->n_batch == 1)
        return 0;
    if (st->iaz >= 0 && vg_tensor_numel(c->in[st->iaz]) != 1)
        return 0;
    return !st->qlinear || vg_tensor_numel(c->in[st->ias]) == 1;
}

static int zp_count_ok(int64_t nz, int64_t per, int64_t mats)
{
    return nz == 1 || nz == per || nz == per * mats;
}

static int qmm_infer(struct vg_kctx *c)
{
    const struct qmm *st = c->state;
    const struct vg_tensor *a = c->in[st->ia], *b = c->in[st->ib];
    struct vg_mm_geom g;
    int rc = vg_mm_geometry(c, a, b, &g);
    if (rc)
        return rc;
    if (g.m > INT_MAX || g.n > INT_MAX || g.k > INT_MAX / 4)
        return vg_kerr(c, VG_EUNSUPPORTED, "matrix dimension too large");
    if (st->iaz >= 0 && !zp_count_ok(vg_tensor_numel(c->in[st->iaz]), g.m, g.a_batches))
        return vg_kerr(c, VG_ESHAPE, "a_zero_point must have 1 or M = %lld elements (per row)",
                       (long long)g.m);
    if (st->ibz >= 0 && !zp_count_ok(vg_tensor_numel(c->in[st->ibz]), g.n, g.b_batches))
        return vg_kerr(c, VG_ESHAPE, "b_zero_point must have 1 or N = %lld elements (per column)",
                       (long long)g.n);
    if (st->qlinear) {
        int64_t na = vg_tensor_numel(c->in[st->ias]), nb = vg_tensor_numel(c->in[st->ibs]);
        if (na != 1 && na != g.m)
            return vg_kerr(c, VG_EUNSUPPORTED, "a_scale must have 1 or M = %lld elements",
                           (long long)g.m);
        if (nb != 1 && nb != g.n)
            return vg_kerr(c, VG_EUNSUPPORTED, "b_scale must have 1 or N = %lld elements",
                           (long long)g.n);
        if (na > 1 && nb > 1)
            return vg_kerr(c, VG_EUNSUPPORTED,
                           "a_scale per row together with b_scale per column is not supported");
        if (vg_tensor_numel(c->in[st->iys]) != 1 || vg_tensor_numel(c->in[st->iyz]) != 1)
            return vg_kerr(c, VG_ESHAPE, "y_scale and y_zero_point must have one element");
    }
    struct vg_tensor *y = c->out[0];
    y->rank = 0;
    for (int i = 0; i < g.batch_rank; i++)
        y->dims[y->rank++] = g.batch[i];
    if (a->rank > 1)
        y->dims[y->rank++] = g.m;
    if (b->rank > 1)
        y->dims[y->rank++] = g.n;
    struct mscratch s;
    mm_scratch(st, &g, mm_fold(st, c, &g) ? g.m * g.n_batch : g.m, &s);
    c->scratch_bytes = s.total;
    return 0;
}

static int qmm_run(struct vg_kctx *c)
{
    const struct qmm *st = c->state;
    const struct vg_tensor *a = c->in[st->ia], *b = c->in[st->ib];
    const struct vg_tensor *azp = st->iaz >= 0 ? c->in[st->iaz] : NULL;
    const struct vg_tensor *bzp = st->ibz >= 0 ? c->in[st->ibz] : NULL;
    struct vg_mm_geom g;
    if (vg_mm_geometry(NULL, a, b, &g))
        return vg_kerr(c, VG_ESHAPE, "shapes changed after planning");
    int fold = mm_fold(st, c, &g);
    struct mscratch s;
    int64_t rows = fold ? g.m * g.n_batch : g.m;
    mm_scratch(st, &g, rows, &s);
    char *scr = c->scratch;
    int64_t numel = vg_tensor_numel(c->out[0]);
    if (numel == 0)
        return 0;
    size_t es = st->out_kind == VG_QGEMM_OUT_I32 ? 4 : 1;
    int32_t yz = st->qlinear ? zp_at(c->in[st->iyz], 0) : 0;

    const struct vg_qgemm_rq *rq = st->rq;
    int64_t n_rq = st->n_rq;
    int rq_per_row = 0, rq_per_col = 0;
    if (st->qlinear) {
        if (!rq) {
            int rc;
            if ((rc = scales_positive(c, c->in[st->ias], "a_scale")) ||
                (rc = scales_positive(c, c->in[st->ibs], "b_scale")) ||
                (rc = scales_positive(c, c->in[st->iys], "y_scale")))
                return rc;
            struct vg_qgemm_rq *q = (struct vg_qgemm_rq *)(scr + s.rq);
            qmm_rq(c->in[st->ias], c->in[st->ibs], c->in[st->iys], q, &n_rq);
            rq = q;
        }
        if (n_rq > 1) {
            if (vg_tensor_numel(c->in[st->ias]) > 1)
                rq_per_row = 1;
            else
                rq_per_col = 1;
        }
    }
    if (g.k == 0) {
        /* Empty sums are 0: the output is y_zero_point (or 0). */
        if (st->qlinear)
            memset(c->out[0]->data, (int)(uint8_t)yz, (size_t)numel);
        else
            memset(c->out[0]->data, 0, (size_t)numel * es);
        return 0;
    }
    int64_t naz = azp ? vg_tensor_numel(azp) : 1, nbz = bzp ? vg_tensor_numel(bzp) : 1;
    int32_t *za = (int32_t *)(scr + s.za), *zb = (int32_t *)(scr + s.zb);
    int a_signed = a->dtype == VG_DT_INT8, b_signed = b->dtype == VG_DT_INT8;
    int64_t n_iter = fold ? 1 : g.n_batch;
    int64_t idx[VG_MAX_RANK] = {0};
    int64_t a_off = 0, b_off = 0;
    for (int64_t t = 0; t < n_iter; t++) {
        int64_t a_mat = a_off / (g.m * g.k), b_mat = b_off / (g.k * g.n);
        struct vg_qgemm_pa pa;
        vg_qgemm_pack_a(st->path, (const uint8_t *)a->data + a_off, a_signed, (size_t)g.k,
                        (int)rows, (int)g.k, scr + s.apack, &pa);
        struct vg_qgemm_pb pbl;
        const struct vg_qgemm_pb *pb;
        if (st->pb) {
            pb = &st->pb[st->b_mats > 1 ? b_mat : 0];
        } else {
            vg_qgemm_pack_b(st->path, (const uint8_t *)b->data + b_off, b_signed, (size_t)g.n,
                            (int)g.k, (int)g.n, 1, scr + s.bpack, &pbl);
            pb = &pbl;
        }
        struct vg_qgemm_out o = {0};
        if (naz == 1) {
            za[0] = zp_at(azp, 0);
        } else {
            int64_t base = naz == g.m ? 0 : a_mat * g.m;
            for (int64_t i = 0; i < g.m; i++)
                za[i] = zp_at(azp, base + i);
            o.za_per_row = 1;
        }
        if (nbz == 1) {
            zb[0] = zp_at(bzp, 0);
        } else {
            int64_t base = nbz == g.n ? 0 : b_mat * g.n;
            for (int64_t i = 0; i < g.n; i++)
                zb[i] = zp_at(bzp, base + i);
            o.zb_per_col = 1;
        }
        o.za = za;
        o.zb = zb;
        o.kind = st->out_kind;
        o.y = (char *)c->out[0]->data + (size_t)(t * g.m * g.n) * es;
        o.ldy = (size_t)g.n;
        o.rq = rq;
        o.rq_per_row = rq_per_row;
        o.rq_per_col = rq_per_col;
        o.y_zp = yz;
        vg_qgemm(&pa, pb, &o);
        vg_mm_next_batch(&g, idx, &a_off, &b_off);
    }
    return 0;
}

const struct vg_op vg_ops_qconv[] = {
    {"", "QLinearConv", 10, 0, qlinearconv_init, qconv_infer, qconv_run, qconv_release, 0, 8},
    {"", "ConvInteger", 10, 0, convinteger_init, qconv_infer, qconv_run, qconv_release, 0, 2},
    {"", "QLinearMatMul", 10, 0, qlinearmatmul_init, qmm_infer, qmm_run, qmm_release, 0, 8},
    {"", "MatMulInteger", 10, 0, matmulinteger_init, qmm_infer, qmm_run, qmm_release, 0, 2},
    {0},
};
