/* Tensor basics shared by the core and the operators: sizes, names, errors, broadcasting. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

int64_t vg_tensor_numel(const struct vg_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->dims[i];
    return n;
}

size_t vg_dtype_size(enum vg_dtype dt)
{
    switch (dt) {
    case VG_DT_FLOAT: return 4;
    case VG_DT_DOUBLE: return 8;
    case VG_DT_INT64: return 8;
    case VG_DT_INT32: return 4;
    case VG_DT_INT8: return 1;
    case VG_DT_UINT8: return 1;
    case VG_DT_BOOL: return 1;
    case VG_DT_STRING: return sizeof(char *);
    case VG_DT_UNDEFINED: break;
    }
    return 0;
}

static const struct {
    enum vg_dtype dt;
    const char *name;
} dtype_names[] = {
    {VG_DT_FLOAT, "FP32"}, {VG_DT_DOUBLE, "FP64"}, {VG_DT_INT64, "INT64"},
    {VG_DT_INT32, "INT32"}, {VG_DT_INT8, "INT8"},   {VG_DT_UINT8, "UINT8"},
    {VG_DT_BOOL, "BOOL"},   {VG_DT_STRING, "BYTES"},
};

const char *vg_dtype_name(enum vg_dtype dt)
{
    for (size_t i = 0; i < sizeof(dtype_names) / sizeof(dtype_names[0]); i++)
        if (dtype_names[i].dt == dt)
            return dtype_names[i].name;
    return "UNDEFINED";
}

enum vg_dtype vg_dtype_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(dtype_names) / sizeof(dtype_names[0]); i++)
        if (!strcasecmp(dtype_names[i].name, name))
            return dtype_names[i].dt;
    return VG_DT_UNDEFINED;
}

const char *vg_strerror(int code)
{
    static const char *const msgs[] = {
        [VG_OK] = "success",
        [VG_EINVAL] = "invalid argument",
        [VG_ENOMEM] = "out of memory or size limit exceeded",
        [VG_EIO] = "input/output error",
        [VG_EPARSE] = "not a valid ONNX protobuf",
        [VG_EUNSUPPORTED] = "not supported",
        [VG_EGRAPH] = "malformed graph",
        [VG_ETYPE] = "type mismatch",
        [VG_ESHAPE] = "shape mismatch",
        [VG_ERANGE] = "value out of range",
        [VG_EDYNAMIC] = "shape depends on a value unknown at planning time",
    };
    if (code < 0)
        code = -code;
    if (code < (int)(sizeof(msgs) / sizeof(msgs[0])) && msgs[code])
        return msgs[code];
    return "unknown error";
}

int vg__err(struct vg_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return -code;
}

void vg__err_prefix(struct vg_error *err, const char *prefix)
{
    if (!err)
        return;
    char msg[sizeof(err->msg)];
    /* the message is cut to fit: its start names the failing place, which matters most */
    int w = snprintf(msg, sizeof(msg), "%s: %s", prefix, err->msg);
    if (w >= 0)
        memcpy(err->msg, msg, sizeof(msg));
}

int64_t vg__tensor_bytes(const struct vg_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) {
        if (t->dims[i] < 0)
            return -1;
        if (t->dims[i] && n > VG_MAX_TENSOR_BYTES / t->dims[i])
            return -1;
        n *= t->dims[i];
    }
    int64_t es = (int64_t)vg_dtype_size(t->dtype);
    if (es && n > VG_MAX_TENSOR_BYTES / es)
        return -1;
    return n * es;
}

int vg__check_dims(const struct vg_tensor *t, const char *what, struct vg_error *err)
{
    if (t->rank < 0 || t->rank > VG_MAX_RANK)
        return vg__err(err, VG_EUNSUPPORTED, "%s: rank %d is above the engine's limit of %d", what,
                       t->rank, VG_MAX_RANK);
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] < 0)
            return vg__err(err, VG_ESHAPE, "%s: negative dimension %lld at axis %d", what,
                           (long long)t->dims[i], i);
    if (vg__tensor_bytes(t) < 0)
        return vg__err(err, VG_ENOMEM, "%s: size exceeds the limit of %lld bytes", what,
                       (long long)VG_MAX_TENSOR_BYTES);
    return 0;
}

double vg_tensor_get_f64(const struct vg_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case VG_DT_FLOAT: return ((const float *)t->data)[i];
    case VG_DT_DOUBLE: return ((const double *)t->data)[i];
    case VG_DT_INT64: return (double)((const int64_t *)t->data)[i];
    case VG_DT_INT32: return ((const int32_t *)t->data)[i];
    case VG_DT_INT8: return ((const int8_t *)t->data)[i];
    case VG_DT_UINT8:
    case VG_DT_BOOL: return ((const uint8_t *)t->data)[i];
    case VG_DT_STRING:
    case VG_DT_UNDEFINED: break;
    }
    return 0;
}

int64_t vg_tensor_get_i64(const struct vg_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case VG_DT_FLOAT: return (int64_t)((const float *)t->data)[i];
    case VG_DT_DOUBLE: return (int64_t)((const double *)t->data)[i];
    case VG_DT_INT64: return ((const int64_t *)t->data)[i];
    case VG_DT_INT32: return ((const int32_t *)t->data)[i];
    case VG_DT_INT8: return ((const int8_t *)t->data)[i];
    case VG_DT_UINT8:
    case VG_DT_BOOL: return ((const uint8_t *)t->data)[i];
    case VG_DT_STRING:
    case VG_DT_UNDEFINED: break;
    }
    return 0;
}

int64_t vg_sat_i64(double v)
{
    if (isnan(v))
        return 0;
    if (v >= 9223372036854775807.0)
        return INT64_MAX;
    if (v <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)v;
}

int32_t vg_sat_i32(double v)
{
    if (isnan(v))
        return 0;
    if (v >= 2147483647.0)
        return INT32_MAX;
    if (v <= -2147483648.0)
        return INT32_MIN;
    return (int32_t)v;
}

int8_t vg_sat_i8(double v)
{
    return (int8_t)(isnan(v) ? 0 : v >= 127.0 ? 127 : v <= -128.0 ? -128 : (int)v);
}

uint8_t vg_sat_u8(double v)
{
    return (uint8_t)(isnan(v) ? 0 : v >= 255.0 ? 255 : v <= 0.0 ? 0 : (int)v);
}

void vg_shape_str(const struct vg_tensor *t, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->rank && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? "," : "", (long long)t->dims[i]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
}

int vg_broadcast_shape(struct vg_kctx *c, int n, const struct vg_tensor *const *shapes,
                       struct vg_tensor *out)
{
    int rank = 0;
    for (int k = 0; k < n; k++)
        if (shapes[k] && shapes[k]->rank > rank)
            rank = shapes[k]->rank;
    int64_t dims[VG_MAX_RANK];
    for (int i = 0; i < rank; i++)
        dims[i] = 1;
    for (int k = 0; k < n; k++) {
        const struct vg_tensor *s = shapes[k];
        if (!s)
            continue;
        int off = rank - s->rank;
        for (int i = 0; i < s->rank; i++) {
            int64_t d = s->dims[i], *o = &dims[off + i];
            if (d == *o || d == 1)
                continue;
            if (*o == 1) {
                *o = d;
                continue;
            }
            char a[128], b[128];
            vg_shape_str(shapes[0], a, sizeof(a));
            vg_shape_str(s, b, sizeof(b));
            return vg_kerr(c, VG_ESHAPE, "shapes %s and %s cannot be broadcast (axis %d: %lld vs %lld)",
                           a, b, off + i, (long long)*o, (long long)d);
        }
    }
    out->rank = rank;
    memcpy(out->dims, dims, sizeof(int64_t) * (size_t)rank);
    return 0;
}

int vg_set_out_shape(struct vg_kctx *c, struct vg_tensor *out, int rank, const int64_t *dims)
{
    if (rank > VG_MAX_RANK)
        return vg_kerr(c, VG_EUNSUPPORTED, "output rank %d exceeds the engine's limit %d", rank,
                       VG_MAX_RANK);
    size_t esz = vg_dtype_size(out->dtype);
    int64_t cap = VG_MAX_TENSOR_BYTES / (int64_t)(esz ? esz : 1), n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return vg_kerr(c, VG_ESHAPE, "output dim %d is negative (%lld)", i,
                           (long long)dims[i]);
        if (dims[i] > 0 && n > cap / dims[i])
            return vg_kerr(c, VG_ENOMEM, "output shape exceeds the tensor size cap");
        n *= dims[i];
    }
    int64_t tmp[VG_MAX_RANK];
    memcpy(tmp, dims, sizeof(int64_t) * (size_t)rank);
    out->rank = rank;
    memcpy(out->dims, tmp, sizeof(int64_t) * (size_t)rank);
    return 0;
}

void vg_broadcast_strides(const struct vg_tensor *in, const struct vg_tensor *out, int64_t *strides)
{
    int off = out->rank - in->rank;
    int64_t st = 1;
    for (int i = out->rank - 1; i >= 0; i--) {
        int j = i - off;
        if (j < 0) {
            strides[i] = 0;
            continue;
        }
        strides[i] = in->dims[j] == 1 && out->dims[i] != 1 ? 0 : st;
        st *= in->dims[j];
    }
}

int vg_norm_axis(int64_t axis, int rank)
{
    if (axis < -rank || axis >= rank)
        return -1;
    return (int)(axis < 0 ? axis + rank : axis);
}

/* ---- Broadcast walks for binary kernels (elementwise.c, activation.c) ------------------------ */

/* Innermost rows shorter than VG_SHORT_ROW are batched into calls of about VG_TILE_ELEMS. */
#define VG_SHORT_ROW 32
#define VG_TILE_ELEMS 512

/* An output walk: `r` axes (size-1 axes dropped, mergeable neighbours merged) and the inputs'
 * element strides on them; the innermost axis has step 0 or 1 for each input. */
struct bc_walk {
    int r;
    int64_t dims[VG_MAX_RANK], sa[VG_MAX_RANK], sb[VG_MAX_RANK];
};

/* Fills `l` from out's dims and the inputs' strides aligned to them; 0 when out is empty. */
static int bc_collapse(const struct vg_tensor *out, const int64_t *a_strides,
                       const int64_t *b_strides, struct bc_walk *l)
{
    int r = 0;
    for (int i = 0; i < out->rank; i++) {
        if (out->dims[i] == 0)
            return 0;
        if (out->dims[i] == 1)
            continue;
        /* The previous axis merges into this one when both inputs step over it exactly as far
         * as one full pass over this axis (both contiguous, or both repeating). */
        if (r > 0 && l->sa[r - 1] == a_strides[i] * out->dims[i] &&
            l->sb[r - 1] == b_strides[i] * out->dims[i]) {
            l->dims[r - 1] *= out->dims[i];
            l->sa[r - 1] = a_strides[i];
            l->sb[r - 1] = b_strides[i];
            continue;
        }
        l->dims[r] = out->dims[i];
        l->sa[r] = a_strides[i];
        l->sb[r] = b_strides[i];
        r++;
    }
    if (r == 0) {
        l->dims[0] = 1;
        l->sa[0] = l->sb[0] = 0;
        r = 1;
    }
    l->r = r;
    return 1;
}

/*
 * Short rows, as in [batch, 4] - [4]: a kernel call per 4-element row costs more than the
 * arithmetic. When one input walks the two innermost axes contiguously and the other repeats one
 * contiguous row along the second-innermost axis, copies of that row laid side by side in scratch
 * let one call cover many rows. Returns the rows per call (0: not applicable) and sets *rep_is_b
 * to tell which input repeats.
 */
static int64_t bc_tile_rows(const struct bc_walk *l, int *rep_is_b)
{
    int r = l->r;
    if (r < 2)
        return 0;
    int64_t inner = l->dims[r - 1];
    if (inner >= VG_SHORT_ROW)
        return 0;
    if (l->sa[r - 1] == 1 && l->sa[r - 2] == inner && l->sb[r - 1] == 1 && l->sb[r - 2] == 0)
        *rep_is_b = 1;
    else if (l->sb[r - 1] == 1 && l->sb[r - 2] == inner && l->sa[r - 1] == 1 && l->sa[r - 2] == 0)
        *rep_is_b = 0;
    else
        return 0;
    int64_t m = VG_TILE_ELEMS / inner;
    return m < l->dims[r - 2] ? m : l->dims[r - 2];
}

/* Scratch bytes vg_binary_nd can use for this walk (0 when it would not tile). */
size_t vg_binary_tile_bytes(const struct vg_tensor *out, const int64_t *a_strides, size_t a_size,
                            const int64_t *b_strides, size_t b_size)
{
    struct bc_walk l;
    int rep_is_b = 0;
    if (!bc_collapse(out, a_strides, b_strides, &l))
        return 0;
    int64_t m = bc_tile_rows(&l, &rep_is_b);
    return (size_t)(m * l.dims[l.r - 1]) * (rep_is_b ? b_size : a_size);
}

/* The tiled walk (see bc_tile_rows): outer axes by index counter, m rows per kernel call. */
static void bc_binary_tiled(vg_bin_fn fn, const struct bc_walk *l, int64_t m, int rep_is_b,
                            const char *pa, size_t a_size, const char *pb, size_t b_size, char *po,
                            size_t o_size, char *scratch)
{
    int r = l->r;
    int64_t rows = l->dims[r - 2], inner = l->dims[r - 1], outer = 1, idx[VG_MAX_RANK];
    size_t rep_size = rep_is_b ? b_size : a_size, walk_size = rep_is_b ? a_size : b_size;
    size_t row_bytes = (size_t)inner * rep_size;
    int64_t off_a = 0, off_b = 0, filled = -1;

    for (int k = 0; k < r - 2; k++) {
        outer *= l->dims[k];
        idx[k] = 0;
    }
    for (int64_t n = 0; n < outer; n++) {
        int64_t rep_off = rep_is_b ? off_b : off_a;
        const char *rep = rep_is_b ? pb + (size_t)off_b * b_size : pa + (size_t)off_a * a_size;
        const char *walk = rep_is_b ? pa + (size_t)off_a * a_size : pb + (size_t)off_b * b_size;
        char *o = po + (size_t)(n * rows * inner) * o_size;
        if (rep_off != filled) {
            for (int64_t j = 0; j < m; j++)
                memcpy(scratch + (size_t)j * row_bytes, rep, row_bytes);
            filled = rep_off;
        }
        for (int64_t row = 0; row < rows; row += m) {
            int64_t cnt = rows - row < m ? rows - row : m;
            const char *w = walk + (size_t)(row * inner) * walk_size;
            char *dst = o + (size_t)(row * inner) * o_size;
            if (rep_is_b)
                fn(w, 1, scratch, 1, dst, cnt * inner);
            else
                fn(scratch, 1, w, 1, dst, cnt * inner);
        }
        for (int k = r - 3; k >= 0; k--) {
            off_a += l->sa[k];
            off_b += l->sb[k];
            if (++idx[k] < l->dims[k])
                break;
            off_a -= l->sa[k] * l->dims[k];
            off_b -= l->sb[k] * l->dims[k];
            idx[k] = 0;
        }
    }
}

/*
 * Computes out = fn(a, b) where a and b are read through element strides aligned to out's rank
 * (0 on broadcast axes) and out is contiguous. Walks the collapsed layout row by row with an
 * index counter, or tiled when short rows allow it and `scratch` holds vg_binary_tile_bytes()
 * bytes.
 */
void vg_binary_nd(vg_bin_fn fn, const void *a, size_t a_size, const int64_t *a_strides,
                  const void *b, size_t b_size, const int64_t *b_strides, void *o, size_t o_size,
                  const struct vg_tensor *out, void *scratch, size_t scratch_bytes)
{
    struct bc_walk l;
    int64_t idx[VG_MAX_RANK];
    int rep_is_b = 0;

    if (!bc_collapse(out, a_strides, b_strides, &l))
        return;
    int r = l.r;
    int64_t m = scratch ? bc_tile_rows(&l, &rep_is_b) : 0;
    if (m > 0 && (size_t)(m * l.dims[r - 1]) * (rep_is_b ? b_size : a_size) <= scratch_bytes) {
        bc_binary_tiled(fn, &l, m, rep_is_b, a, a_size, b, b_size, o, o_size, scratch);
        return;
    }

    const char *pa = a, *pb = b;
    char *po = o;
    int64_t inner = l.dims[r - 1];
    int step_a = l.sa[r - 1] != 0, step_b = l.sb[r - 1] != 0;
    int64_t rows = 1;
    for (int i = 0; i < r - 1; i++) {
        rows *= l.dims[i];
        idx[i] = 0;
    }
    int64_t off_a = 0, off_b = 0;
    for (int64_t row = 0; row < rows; row++) {
        fn(pa + (size_t)off_a * a_size, step_a, pb + (size_t)off_b * b_size, step_b,
           po + (size_t)(row * inner) * o_size, inner);
        for (int k = r - 2; k >= 0; k--) {
            off_a += l.sa[k];
            off_b += l.sb[k];
            if (++idx[k] < l.dims[k])
                break;
            off_a -= l.sa[k] * l.dims[k];
            off_b -= l.sb[k] * l.dims[k];
            idx[k] = 0;
        }
    }
}

void vg_contig_strides(const struct vg_tensor *t, int64_t *strides)
{
    int64_t st = 1;
    for (int i = t->rank - 1; i >= 0; i--) {
        strides[i] = st;
        st *= t->dims[i];
    }
}

int vg_variadic_infer(struct vg_kctx *c)
{
    const struct vg_tensor *shapes[64];
    if (c->n_in > 64)
        return vg_kerr(c, VG_EUNSUPPORTED, "more than 64 inputs (%d)", c->n_in);
    /* Before opset 8 every input has the same shape. */
    if (c->node->opset < 8) {
        for (int i = 1; i < c->n_in; i++) {
            int same = c->in[i]->rank == c->in[0]->rank;
            for (int d = 0; same && d < c->in[0]->rank; d++)
                same = c->in[i]->dims[d] == c->in[0]->dims[d];
            if (!same) {
                char s0[160], si[160];
                vg_shape_str(c->in[0], s0, sizeof(s0));
                vg_shape_str(c->in[i], si, sizeof(si));
                return vg_kerr(c, VG_ESHAPE,
                               "inputs 0 and %d have shapes %s and %s; opset %lld does not "
                               "broadcast",
                               i, s0, si, (long long)c->node->opset);
            }
        }
    }
    for (int i = 0; i < c->n_in; i++)
        shapes[i] = c->in[i];
    int rc = vg_broadcast_shape(c, c->n_in, shapes, c->out[0]);
    if (rc || c->n_in < 2)
        return rc;
    /* Scratch for the largest tile of any step of vg_variadic_run. */
    const struct vg_tensor *o = c->out[0];
    size_t es = vg_dtype_size(o->dtype), need = 0;
    int64_t sa[VG_MAX_RANK], sb[VG_MAX_RANK];
    for (int i = 1; i < c->n_in; i++) {
        if (i == 1)
            vg_broadcast_strides(c->in[0], o, sa);
        else
            vg_contig_strides(o, sa);
        vg_broadcast_strides(c->in[i], o, sb);
        size_t bytes = vg_binary_tile_bytes(o, sa, es, sb, es);
        need = bytes > need ? bytes : need;
    }
    c->scratch_bytes = need;
    return 0;
}

void vg_variadic_run(struct vg_kctx *c, vg_bin_fn fn)
{
    struct vg_tensor *o = c->out[0];
    size_t es = vg_dtype_size(o->dtype);
    int64_t so[VG_MAX_RANK], sa[VG_MAX_RANK], sb[VG_MAX_RANK];

    if (c->n_in == 1) {
        if (vg_tensor_numel(o) > 0)
            memcpy(o->data, c->in[0]->data, (size_t)vg_tensor_numel(o) * es);
        return;
    }
    /* First pair into out, then fold every further input into out in place. */
    vg_broadcast_strides(c->in[0], o, sa);
    vg_broadcast_strides(c->in[1], o, sb);
    vg_binary_nd(fn, c->in[0]->data, es, sa, c->in[1]->data, es, sb, o->data, es, o, c->scratch,
                 c->scratch_bytes);
    vg_contig_strides(o, so);
    for (int i = 2; i < c->n_in; i++) {
        vg_broadcast_strides(c->in[i], o, sb);
        vg_binary_nd(fn, o->data, es, so, c->in[i]->data, es, sb, o->data, es, o, c->scratch,
                     c->scratch_bytes);
    }
}

int vg_mm_geometry(struct vg_kctx *c, const struct vg_tensor *a, const struct vg_tensor *b,
                   struct vg_mm_geom *g)
{
    char sa[160] = "", sb[160] = "";
    if (c) {
        vg_shape_str(a, sa, sizeof(sa));
        vg_shape_str(b, sb, sizeof(sb));
    }
    if (a->rank < 1 || b->rank < 1)
        return c ? vg_kerr(c, VG_ESHAPE, "inputs must have rank >= 1, got A %s and B %s", sa, sb)
                 : -VG_ESHAPE;
    int ab_rank = a->rank > 2 ? a->rank - 2 : 0;
    int bb_rank = b->rank > 2 ? b->rank - 2 : 0;
    g->m = a->rank == 1 ? 1 : a->dims[a->rank - 2];
    g->k = a->dims[a->rank - 1];
    int64_t kb = b->rank == 1 ? b->dims[0] : b->dims[b->rank - 2];
    g->n = b->rank == 1 ? 1 : b->dims[b->rank - 1];
    if (g->k != kb)
        return c ? vg_kerr(c, VG_ESHAPE,
                           "inner dimensions differ: A %s has K=%lld, B %s has K=%lld", sa,
                           (long long)g->k, sb, (long long)kb)
                 : -VG_ESHAPE;

    g->batch_rank = ab_rank > bb_rank ? ab_rank : bb_rank;
    int64_t sa_run = g->m * g->k, sb_run = g->k * g->n;
    g->n_batch = 1;
    for (int i = g->batch_rank - 1; i >= 0; i--) {
        int ia = i - (g->batch_rank - ab_rank), ib = i - (g->batch_rank - bb_rank);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        int64_t d;
        if (da == db || db == 1)
            d = da;
        else if (da == 1)
            d = db;
        else
            return c ? vg_kerr(c, VG_ESHAPE, "batch dimensions of A %s and B %s do not broadcast",
                               sa, sb)
                     : -VG_ESHAPE;
        g->batch[i] = d;
        g->a_stride[i] = da == 1 ? 0 : sa_run;
        g->b_stride[i] = db == 1 ? 0 : sb_run;
        sa_run *= da;
        sb_run *= db;
        g->n_batch *= d;
    }
    g->a_batches = 1;
    for (int i = 0; i < ab_rank; i++)
        g->a_batches *= a->dims[i];
    g->b_batches = 1;
    for (int i = 0; i < bb_rank; i++)
        g->b_batches *= b->dims[i];
    return 0;
}
