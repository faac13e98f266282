/*
 * Structural operators of ai.onnx: they move, select, reshape or convert elements without
 * arithmetic. Subset of the ONNX spec implemented, per operator and opset form:
 *
 *   Identity 1+            tensors only (no sequence/optional values: the engine has none).
 *   Cast 1-5, 6+           `to` as a type name (1-5) or TensorProto.DataType (6+); between float,
 *                          double, int64, int32, int8, uint8, bool and string. CastLike 15+.
 *   Reshape 1-4, 5+        shape as attribute (1-4) or int64 input (5+); 0 copies the input dim,
 *                          one -1 is inferred; allowzero (14+) keeps 0 literally.
 *   Flatten 1+             axis in [0, r], negative axes from opset 11.
 *   Concat 1-3, 4+         axis defaults to 1 before opset 4; negative axes from opset 11.
 *   Gather 1+              int32/int64 indices, negative indices count from the end.
 *   Squeeze / Unsqueeze    axes as attribute (1-12) or int64 input (13+), negative from 11.
 *   Transpose 1+           perm attribute or reversed axes.
 *   Shape 1-14, 15+        start/end (15+) clamped to [0, rank].
 *   Constant 1+            value (tensor); value_float(s)/value_int(s)/value_string(s) from 12;
 *                          sparse_value is not supported.
 *   ConstantOfShape 9+     value is a one-element tensor of any engine dtype (default float 0).
 *   Slice 1-9, 10+         starts/ends/axes as attributes (1-9) or int32/int64 inputs with steps
 *                          (10+): negative starts/ends count from the end, values are clamped
 *                          (so INT64_MAX/INT64_MIN act as "to the end"), negative steps walk back.
 *   Expand 8+, Where 9+    numpy broadcasting; every engine dtype including string.
 *
 * Strings are arrays of `const char *`: copying operators copy the pointers (the pointees outlive
 * the outputs, see engine.h); Cast to string formats into the session's string pool.
 *
 * Cast conversions the spec leaves open are pinned down here: float to int64/int32 saturates
 * (NaN gives 0), float to int8/uint8 truncates then wraps modulo 256 as a C conversion through
 * int64 does; numbers are formatted as NumPy's str() does (shortest round-trip digits, positional
 * for 1e-4 <= |x| < 1e16, "nan", "inf"); bool formats as "True"/"False"; strings are parsed with
 * strtod/strtoll ("NaN", "INF", "+INF", "-INF" accepted), "true"/"false" also parse to bool, and a
 * string that is not a number fails the run with VG_EINVAL.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "op.h"

/* ---- Shared helpers -------------------------------------------------------------------------- */

static int dtype_supported(enum vg_dtype dt)
{
    switch (dt) {
    case VG_DT_FLOAT:
    case VG_DT_DOUBLE:
    case VG_DT_INT64:
    case VG_DT_INT32:
    case VG_DT_INT8:
    case VG_DT_UINT8:
    case VG_DT_BOOL:
    case VG_DT_STRING:
        return 1;
    case VG_DT_UNDEFINED:
        break;
    }
    return 0;
}

/* Copies n bytes; tolerates in-place execution and the NULL data of empty tensors. */
static void copy_bytes(void *dst, const void *src, size_t n)
{
    if (n > 0 && dst != src)
        memmove(dst, src, n);
}

static size_t tensor_bytes(const struct vg_tensor *t)
{
    return (size_t)vg_tensor_numel(t) * vg_dtype_size(t->dtype);
}

static int infer_same_shape(struct vg_kctx *c)
{
    return vg_set_out_shape(c, c->out[0], c->in[0]->rank, c->in[0]->dims);
}

static int run_copy(struct vg_kctx *c)
{
    copy_bytes(c->out[0]->data, c->in[0]->data, tensor_bytes(c->in[0]));
    return 0;
}

static int is_index_dtype(enum vg_dtype dt)
{
    return dt == VG_DT_INT64 || dt == VG_DT_INT32;
}

/* Copies `inner` elements of size esz from src (element stride `step`) to contiguous dst. */
#define STRIDED_ROW(SZ)                                                                        \
    for (int64_t j = 0; j < inner; j++)                                                        \
        memcpy(dst + j * (int64_t)(SZ), src + j * step * (int64_t)(SZ), (SZ));

static void copy_row(char *dst, const char *src, size_t esz, int64_t inner, int64_t step)
{
    if (step == 1) {
        memcpy(dst, src, (size_t)inner * esz);
        return;
    }
    switch (esz) {
    case 1: STRIDED_ROW(1) break;
    case 4: STRIDED_ROW(4) break;
    case 8: STRIDED_ROW(8) break;
    default: STRIDED_ROW(esz) break;
    }
}

/*
 * Writes the view of src whose element at index (i_0..i_{r-1}) of `dims` is
 * src[base + sum_k i_k * sstride[k]] to dst, contiguous. Serves Transpose, Slice and Expand.
 */
static void gather_view(char *dst, const char *src, size_t esz, int rank, const int64_t *dims,
                        const int64_t *sstride, int64_t base)
{
    for (int k = 0; k < rank; k++)
        if (dims[k] == 0)
            return;
    if (rank == 0) {
        memcpy(dst, src + base * (int64_t)esz, esz);
        return;
    }
    int64_t idx[VG_MAX_RANK] = {0};
    int64_t inner = dims[rank - 1], step = sstride[rank - 1], off = base;
    for (;;) {
        copy_row(dst, src + off * (int64_t)esz, esz, inner, step);
        dst += inner * (int64_t)esz;
        int k = rank - 2;
        for (; k >= 0; k--) {
            off += sstride[k];
            if (++idx[k] < dims[k])
                break;
            off -= sstride[k] * dims[k];
            idx[k] = 0;
        }
        if (k < 0)
            break;
    }
}

/* ---- Identity -------------------------------------------------------------------------------- */

static int identity_init(struct vg_kctx *c)
{
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

/* ---- Cast ------------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    enum vg_dtype dt;
} cast_type_names[] = {
    {"FLOAT", VG_DT_FLOAT}, {"DOUBLE", VG_DT_DOUBLE}, {"INT64", VG_DT_INT64},
    {"INT32", VG_DT_INT32}, {"INT8", VG_DT_INT8},     {"UINT8", VG_DT_UINT8},
    {"BOOL", VG_DT_BOOL},   {"STRING", VG_DT_STRING},
};

static int cast_check(struct vg_kctx *c, enum vg_dtype to)
{
    if (!dtype_supported(c->in[0]->dtype))
        return vg_kerr(c, VG_EUNSUPPORTED, "input dtype %d is not supported", c->in[0]->dtype);
    if (!dtype_supported(to))
        return vg_kerr(c, VG_EUNSUPPORTED, "cast to dtype %d is not supported", (int)to);
    c->out[0]->dtype = to;
    return 0;
}

static int cast_init(struct vg_kctx *c)
{
    const struct vg_attr *a = vg_attr_find(c->node, "to");
    if (!a)
        return vg_kerr(c, VG_EINVAL, "attribute 'to' is required");
    if (c->node->opset < 6) {
        /* Cast-1 names the type as a string ("FLOAT", "INT64", ...). */
        if (a->type != VG_ATTR_STRING)
            return vg_kerr(c, VG_EINVAL, "attribute 'to' must be a type name before opset 6");
        for (size_t i = 0; i < sizeof(cast_type_names) / sizeof(cast_type_names[0]); i++)
            if (!strcasecmp(a->s, cast_type_names[i].name))
                return cast_check(c, cast_type_names[i].dt);
        return vg_kerr(c, VG_EUNSUPPORTED, "cast to type '%s' is not supported", a->s);
    }
    if (a->type != VG_ATTR_INT)
        return vg_kerr(c, VG_EINVAL, "attribute 'to' must be an int");
    if (a->i < 0 || a->i > 64)
        return vg_kerr(c, VG_EUNSUPPORTED, "cast to dtype %lld is not supported",
                       (long long)a->i);
    return cast_check(c, (enum vg_dtype)a->i);
}

static int castlike_init(struct vg_kctx *c)
{
    return cast_check(c, c->in[1]->dtype);
}

/* Float source: out-of-range values saturate to int64 / int32 (C leaves them undefined);
 * int8 / uint8 take the low byte of the saturated int64, i.e. they wrap like an integer cast. */
#define CONV_PLAIN(x) (x)
#define CONV_F2I64(x) vg_sat_i64(x)
#define CONV_F2I32(x) vg_sat_i32(x)
#define CONV_F2I8(x) ((int8_t)(uint8_t)(uint64_t)vg_sat_i64(x))
#define CONV_F2U8(x) ((uint8_t)(uint64_t)vg_sat_i64(x))
#define CONV_BOOL(x) ((x) != 0)

#define CAST_LOOP(ST, DT, CONV)                                                                \
    do {                                                                                       \
        const ST *s_ = src;                                                                    \
        DT *d_ = dst;                                                                          \
        for (int64_t i_ = 0; i_ < n; i_++)                                                     \
            d_[i_] = (DT)CONV(s_[i_]);                                                         \
    } while (0)

/* Integer (and bool) source: C conversions are exact or wrap, as the spec intends. */
#define CAST_FROM_INT(ST)                                                                      \
    switch (to) {                                                                              \
    case VG_DT_FLOAT: CAST_LOOP(ST, float, CONV_PLAIN); return 0;                              \
    case VG_DT_DOUBLE: CAST_LOOP(ST, double, CONV_PLAIN); return 0;                            \
    case VG_DT_INT64: CAST_LOOP(ST, int64_t, CONV_PLAIN); return 0;                            \
    case VG_DT_INT32: CAST_LOOP(ST, int32_t, CONV_PLAIN); return 0;                            \
    case VG_DT_INT8: CAST_LOOP(ST, int8_t, CONV_PLAIN); return 0;                              \
    case VG_DT_UINT8: CAST_LOOP(ST, uint8_t, CONV_PLAIN); return 0;                            \
    case VG_DT_BOOL: CAST_LOOP(ST, uint8_t, CONV_BOOL); return 0;                              \
    default: return -1;                                                                        \
    }

#define CAST_FROM_REAL(ST)                                                                     \
    switch (to) {                                                                              \
    case VG_DT_FLOAT: CAST_LOOP(ST, float, CONV_PLAIN); return 0;                              \
    case VG_DT_DOUBLE: CAST_LOOP(ST, double, CONV_PLAIN); return 0;                            \
    case VG_DT_INT64: CAST_LOOP(ST, int64_t, CONV_F2I64); return 0;                            \
    case VG_DT_INT32: CAST_LOOP(ST, int32_t, CONV_F2I32); return 0;                            \
    case VG_DT_INT8: CAST_LOOP(ST, int8_t, CONV_F2I8); return 0;                               \
    case VG_DT_UINT8: CAST_LOOP(ST, uint8_t, CONV_F2U8); return 0;                             \
    case VG_DT_BOOL: CAST_LOOP(ST, uint8_t, CONV_BOOL); return 0;                              \
    default: return -1;                                                                        \
    }

/* Numeric to numeric; -1 if either side is not numeric. */
static int cast_numeric(const void *src, enum vg_dtype from, void *dst, enum vg_dtype to,
                        int64_t n)
{
    switch (from) {
    case VG_DT_FLOAT: CAST_FROM_REAL(float)
    case VG_DT_DOUBLE: CAST_FROM_REAL(double)
    case VG_DT_INT64: CAST_FROM_INT(int64_t)
    case VG_DT_INT32: CAST_FROM_INT(int32_t)
    case VG_DT_INT8: CAST_FROM_INT(int8_t)
    case VG_DT_UINT8: CAST_FROM_INT(uint8_t)
    case VG_DT_BOOL: CAST_FROM_INT(uint8_t)
    default: return -1;
    }
}

/*
 * Formats x as NumPy's str() does for float32 (is_float) or float64: the shortest digit string
 * that reads back to the same value, positional when 1e-4 <= |x| < 1e16 (always with a fraction
 * part, "1.0"), else scientific with a two-digit-minimum exponent ("1e+20", "1.5e-05").
 */
static void format_real(char *buf, size_t cap, double x, int is_float)
{
    if (isnan(x)) {
        snprintf(buf, cap, "nan");
        return;
    }
    if (isinf(x)) {
        snprintf(buf, cap, x < 0 ? "-inf" : "inf");
        return;
    }
    char sci[48];
    int max_digits = is_float ? 9 : 17;
    for (int p = 1; p <= max_digits; p++) {
        snprintf(sci, sizeof(sci), "%.*e", p - 1, x);
        if (is_float ? strtof(sci, NULL) == (float)x : strtod(sci, NULL) == x)
            break;
    }
    /* sci is [-]d[.ddd]e(+|-)XX: split into sign, digits and decimal exponent. */
    const char *p = sci;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    char digits[24];
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.' && nd < (int)sizeof(digits) - 1)
            digits[nd++] = *p;
    int exp10 = *p == 'e' ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';

    char *o = buf, *end = buf + cap - 1;
#define PUT(ch)                                                                                \
    do {                                                                                       \
        if (o < end)                                                                           \
            *o++ = (ch);                                                                       \
    } while (0)
    if (neg)
        PUT('-');
    double ax = fabs(x);
    if (x == 0 || (ax >= 1e-4 && ax < 1e16)) {
        if (exp10 >= 0) {
            for (int i = 0; i <= exp10; i++)
                PUT(i < nd ? digits[i] : '0');
            PUT('.');
            if (exp10 + 1 >= nd)
                PUT('0');
            for (int i = exp10 + 1; i < nd; i++)
                PUT(digits[i]);
        } else {
            PUT('0');
            PUT('.');
            for (int i = 0; i < -exp10 - 1; i++)
                PUT('0');
            for (int i = 0; i < nd; i++)
                PUT(digits[i]);
        }
        *o = '\0';
    } else {
        PUT(digits[0]);
        if (nd > 1) {
            PUT('.');
            for (int i = 1; i < nd; i++)
                PUT(digits[i]);
        }
        *o = '\0';
        size_t used = (size_t)(o - buf);
        snprintf(o, cap - used, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
#undef PUT
}

static int cast_to_string(struct vg_kctx *c, const struct vg_tensor *in, const char **dst,
                          int64_t n)
{
    char buf[64];
    for (int64_t i = 0; i < n; i++) {
        switch (in->dtype) {
        case VG_DT_FLOAT:
            format_real(buf, sizeof(buf), ((const float *)in->data)[i], 1);
            break;
        case VG_DT_DOUBLE:
            format_real(buf, sizeof(buf), ((const double *)in->data)[i], 0);
            break;
        case VG_DT_BOOL:
            snprintf(buf, sizeof(buf), "%s", ((const uint8_t *)in->data)[i] ? "True" : "False");
            break;
        default:
            snprintf(buf, sizeof(buf), "%lld", (long long)vg_tensor_get_i64(in, i));
            break;
        }
        dst[i] = vg_kctx_strdup(c, buf, strlen(buf));
        if (!dst[i])
            return vg_kerr(c, VG_ENOMEM, "out of memory for output strings");
    }
    return 0;
}

/* Parses the whole of s (surrounding blanks allowed) as a double; 0 or -1. */
static int parse_real(const char *s, double *v)
{
    char *end;
    *v = strtod(s, &end);
    if (end == s)
        return -1;
    while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
        end++;
    return *end ? -1 : 0;
}

static int parse_int(const char *s, int64_t *v)
{
    char *end;
    errno = 0;
    long long r = strtoll(s, &end, 10);
    if (end != s) {
        while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
            end++;
        if (!*end) {
            *v = r; /* ERANGE saturates, as float to int does */
            return 0;
        }
    }
    double d;
    if (parse_real(s, &d))
        return -1;
    *v = vg_sat_i64(d);
    return 0;
}

static int cast_from_string(struct vg_kctx *c, const char *const *src, void *dst,
                            enum vg_dtype to, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const char *s = src[i] ? src[i] : "";
        double d = 0;
        int64_t v = 0;
        int bad = 0;
        switch (to) {
        case VG_DT_FLOAT: {
            /* strtof rounds once (strtod then a float cast could round twice). */
            char *end;
            float f = strtof(s, &end);
            bad = parse_real(s, &d);
            ((float *)dst)[i] = f;
            break;
        }
        case VG_DT_DOUBLE:
            bad = parse_real(s, &d);
            ((double *)dst)[i] = d;
            break;
        case VG_DT_BOOL:
            if (!strcasecmp(s, "true"))
                d = 1;
            else if (!strcasecmp(s, "false"))
                d = 0;
            else
                bad = parse_real(s, &d);
            ((uint8_t *)dst)[i] = d != 0;
            break;
        default:
            bad = parse_int(s, &v);
            if (to == VG_DT_INT64)
                ((int64_t *)dst)[i] = v;
            else if (to == VG_DT_INT32)
                ((int32_t *)dst)[i] = (int32_t)v;
            else if (to == VG_DT_INT8)
                ((int8_t *)dst)[i] = (int8_t)v;
            else
                ((uint8_t *)dst)[i] = (uint8_t)v;
            break;
        }
        if (bad)
            return vg_kerr(c, VG_EINVAL, "element %lld: '%.64s' is not a number", (long long)i,
                           s);
    }
    return 0;
}

static int cast_run(struct vg_kctx *c)
{
    const struct vg_tensor *in = c->in[0];
    struct vg_tensor *out = c->out[0];
    int64_t n = vg_tensor_numel(in);
    if (n == 0)
        return 0;
    if (in->dtype == out->dtype)
        return run_copy(c);
    if (out->dtype == VG_DT_STRING)
        return cast_to_string(c, in, (const char **)out->data, n);
    if (in->dtype == VG_DT_STRING)
        return cast_from_string(c, (const char *const *)in->data, out->data, out->dtype, n);
    if (cast_numeric(in->data, in->dtype, out->data, out->dtype, n))
        return vg_kerr(c, VG_EUNSUPPORTED, "cast from dtype %d to %d", in->dtype, out->dtype);
    return 0;
}

/* ---- Reshape --------------------------------------------------------------------------------- */

/* Checks a requested shape's entries and computes the output dims for input `in`. */
static int reshape_dims(struct vg_kctx *c, const struct vg_tensor *in, const int64_t *shape,
                        int n, int allowzero, int64_t *dims)
{
    int infer_at = -1;
    int64_t known = 1;
    for (int i = 0; i < n; i++) {
        int64_t s = shape[i];
        if (s == -1) {
            if (infer_at >= 0)
                return vg_kerr(c, VG_ESHAPE, "shape has more than one -1");
            if (allowzero)
                for (int j = 0; j < n; j++)
                    if (shape[j] == 0)
                        return vg_kerr(c, VG_ESHAPE, "shape with allowzero=1 holds both 0 and -1");
            infer_at = i;
            dims[i] = 1;
            continue;
        }
        if (s < -1)
            return vg_kerr(c, VG_ESHAPE, "shape[%d] = %lld is invalid", i, (long long)s);
        if (s == 0 && !allowzero) {
            if (!in)
                continue;
            if (i >= in->rank)
                return vg_kerr(c, VG_ESHAPE, "shape[%d] = 0 copies a dim the rank-%d input lacks",
                               i, in->rank);
            s = in->dims[i];
        }
        dims[i] = s;
        if (s > 0 && known > INT64_MAX / s)
            return vg_kerr(c, VG_ESHAPE, "shape is too large");
        known *= s;
    }
    if (!in)
        return 0; /* init: entries checked, no input shape yet */
    int64_t total = vg_tensor_numel(in);
    if (infer_at >= 0) {
        if (known == 0 || total % known)
            return vg_kerr(c, VG_ESHAPE, "cannot reshape %lld elements: -1 has no whole value",
                           (long long)total);
        dims[infer_at] = total / known;
    } else if (known != total) {
        return vg_kerr(c, VG_ESHAPE, "cannot reshape %lld elements into %lld", (long long)total,
                       (long long)known);
    }
    return 0;
}

static int reshape_allowzero(struct vg_kctx *c)
{
    return c->node->opset >= 14 && vg_attr_i(c->node, "allowzero", 0) != 0;
}

static int reshape1_init(struct vg_kctx *c)
{
    int64_t shape[VG_MAX_RANK], dims[VG_MAX_RANK];
    int n, present;
    int rc;
    if ((rc = vg_kattr_ints(c, "shape", shape, VG_MAX_RANK, &n, &present)))
        return rc;
    if (!present)
        return vg_kerr(c, VG_EINVAL, "attribute 'shape' is required");
    if ((rc = reshape_dims(c, NULL, shape, n, 0, dims)))
        return rc;
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

static int reshape1_infer(struct vg_kctx *c)
{
    int64_t shape[VG_MAX_RANK], dims[VG_MAX_RANK];
    int n, rc;
    if ((rc = vg_kattr_ints(c, "shape", shape, VG_MAX_RANK, &n, NULL)))
        return rc;
    if ((rc = reshape_dims(c, c->in[0], shape, n, 0, dims)))
        return rc;
    return vg_set_out_shape(c, c->out[0], n, dims);
}

static int reshape_init(struct vg_kctx *c)
{
    if (c->in[1]->dtype != VG_DT_INT64)
        return vg_kerr(c, VG_ETYPE, "shape must be int64");
    const struct vg_tensor *sv = vg_kctx_value(c, 1);
    if (sv) {
        int64_t shape[VG_MAX_RANK], dims[VG_MAX_RANK];
        int n;
        int rc = vg_kread_ints(c, sv, "shape", shape, VG_MAX_RANK, &n);
        if (rc)
            return rc;
        if ((rc = reshape_dims(c, NULL, shape, n, reshape_allowzero(c), dims)))
            return rc;
    }
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

static int reshape_infer(struct vg_kctx *c)
{
    const struct vg_tensor *sv = vg_kctx_value(c, 1);
    if (!sv)
        return -VG_EDYNAMIC;
    int64_t shape[VG_MAX_RANK], dims[VG_MAX_RANK];
    int n, rc;
    if ((rc = vg_kread_ints(c, sv, "shape", shape, VG_MAX_RANK, &n)))
        return rc;
    if ((rc = reshape_dims(c, c->in[0], shape, n, reshape_allowzero(c), dims)))
        return rc;
    return vg_set_out_shape(c, c->out[0], n, dims);
}

/* ---- Flatten --------------------------------------------------------------------------------- */

static int flatten_init(struct vg_kctx *c)
{
    if (c->node->opset < 11 && vg_attr_i(c->node, "axis", 1) < 0)
        return vg_kerr(c, VG_EINVAL, "negative axis needs opset 11");
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

static int flatten_infer(struct vg_kctx *c)
{
    const struct vg_tensor *in = c->in[0];
    int64_t axis = vg_attr_i(c->node, "axis", 1);
    if (axis < 0)
        axis += in->rank;
    if (axis < 0 || axis > in->rank)
        return vg_kerr(c, VG_ESHAPE, "axis %lld is out of range for rank %d",
                       (long long)vg_attr_i(c->node, "axis", 1), in->rank);
    int64_t dims[2] = {1, 1};
    for (int i = 0; i < in->rank; i++)
        dims[i < axis ? 0 : 1] *= in->dims[i];
    return vg_set_out_shape(c, c->out[0], 2, dims);
}

/* ---- Concat ---------------------------------------------------------------------------------- */

static int concat_init(struct vg_kctx *c)
{
    if (c->n_in < 1)
        return vg_kerr(c, VG_EGRAPH, "needs at least one input");
    int rc = vg_kctx_need_inputs(c, c->n_in);
    if (rc)
        return rc;
    if (c->node->opset >= 4 && !vg_attr_find(c->node, "axis"))
        return vg_kerr(c, VG_EINVAL, "attribute 'axis' is required");
    if (c->node->opset < 11 && vg_attr_i(c->node, "axis", 1) < 0)
        return vg_kerr(c, VG_EINVAL, "negative axis needs opset 11");
    for (int i = 1; i < c->n_in; i++)
        if (c->in[i]->dtype != c->in[0]->dtype)
            return vg_kerr(c, VG_ETYPE, "input %d's dtype differs from input 0's", i);
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

/* Before opset 4 the axis defaulted to 1. */
static int concat_axis(struct vg_kctx *c, int rank)
{
    return vg_norm_axis(vg_attr_i(c->node, "axis", 1), rank);
}

static int concat_infer(struct vg_kctx *c)
{
    const struct vg_tensor *in0 = c->in[0];
    int axis = concat_axis(c, in0->rank);
    if (axis < 0)
        return vg_kerr(c, VG_ESHAPE, "axis %lld is out of range for rank %d",
                       (long long)vg_attr_i(c->node, "axis", 1), in0->rank);
    int64_t dims[VG_MAX_RANK];
    memcpy(dims, in0->dims, sizeof(int64_t) * (size_t)in0->rank);
    for (int i = 1; i < c->n_in; i++) {
        const struct vg_tensor *t = c->in[i];
        if (t->rank != in0->rank)
            return vg_kerr(c, VG_ESHAPE, "input %d has rank %d, input 0 rank %d", i, t->rank,
                           in0->rank);
        for (int k = 0; k < t->rank; k++)
            if (k != axis && t->dims[k] != in0->dims[k])
                return vg_kerr(c, VG_ESHAPE, "input %d: dim %d is %lld, input 0 has %lld", i, k,
                               (long long)t->dims[k], (long long)in0->dims[k]);
        dims[axis] += t->dims[axis];
    }
    return vg_set_out_shape(c, c->out[0], in0->rank, dims);
}

static int concat_run(struct vg_kctx *c)
{
    struct vg_tensor *out = c->out[0];
    if (vg_tensor_numel(out) == 0)
        return 0;
    int axis = concat_axis(c, out->rank);
    size_t esz = vg_dtype_size(out->dtype);
    int64_t outer = 1;
    for (int k = 0; k < axis; k++)
        outer *= out->dims[k];
    char *dst = out->data;
    for (int64_t o = 0; o < outer; o++)
        for (int i = 0; i < c->n_in; i++) {
            const struct vg_tensor *t = c->in[i];
            size_t block = esz;
            for (int k = axis; k < t->rank; k++)
                block *= (size_t)t->dims[k];
            if (block) {
                memcpy(dst, (const char *)t->data + (size_t)o * block, block);
                dst += block;
            }
        }
    return 0;
}

/* ---- Gather ---------------------------------------------------------------------------------- */

static int gather_init(struct vg_kctx *c)
{
    if (!is_index_dtype(c->in[1]->dtype))
        return vg_kerr(c, VG_ETYPE, "indices must be int32 or int64");
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

/* Checks every index against the axis length k; VG_ERANGE names the first bad one. */
static int gather_check_indices(struct vg_kctx *c, const struct vg_tensor *idx, int64_t k)
{
    int64_t n = vg_tensor_numel(idx);
    for (int64_t j = 0; j < n; j++) {
        int64_t v = vg_tensor_get_i64(idx, j);
        if (v < -k || v >= k)
            return vg_kerr(c, VG_ERANGE, "index %lld is out of range [-%lld, %lld)",
                           (long long)v, (long long)k, (long long)k);
    }
    return 0;
}

static int gather_infer(struct vg_kctx *c)
{
    const struct vg_tensor *data = c->in[0], *idx = c->in[1];
    if (data->rank < 1)
        return vg_kerr(c, VG_ESHAPE, "data must have rank >= 1");
    int axis = vg_norm_axis(vg_attr_i(c->node, "axis", 0), data->rank);
    if (axis < 0)
        return vg_kerr(c, VG_ESHAPE, "axis %lld is out of range for rank %d",
                       (long long)vg_attr_i(c->node, "axis", 0), data->rank);
    int rank = data->rank - 1 + idx->rank;
    if (rank > VG_MAX_RANK)
        return vg_kerr(c, VG_EUNSUPPORTED, "output rank %d exceeds %d", rank, VG_MAX_RANK);
    int64_t dims[VG_MAX_RANK];
    int r = 0;
    for (int k = 0; k < axis; k++)
        dims[r++] = data->dims[k];
    for (int k = 0; k < idx->rank; k++)
        dims[r++] = idx->dims[k];
    for (int k = axis + 1; k < data->rank; k++)
        dims[r++] = data->dims[k];
    /* Constant indices are checked now so that a planned model cannot fail on them later. */
    const struct vg_tensor *iv = vg_kctx_value(c, 1);
    if (iv && iv->data) {
        int rc = gather_check_indices(c, iv, data->dims[axis]);
        if (rc)
            return rc;
    }
    return vg_set_out_shape(c, c->out[0], rank, dims);
}

static int gather_run(struct vg_kctx *c)
{
    const struct vg_tensor *data = c->in[0], *idx = c->in[1];
    struct vg_tensor *out = c->out[0];
    int axis = vg_norm_axis(vg_attr_i(c->node, "axis", 0), data->rank);
    int64_t k = data->dims[axis], outer = 1, nidx = vg_tensor_numel(idx);
    size_t block = vg_dtype_size(data->dtype);
    for (int i = 0; i < axis; i++)
        outer *= data->dims[i];
    for (int i = axis + 1; i < data->rank; i++)
        block *= (size_t)data->dims[i];
    int rc = gather_check_indices(c, idx, k);
    if (rc)
        return rc;
    if (vg_tensor_numel(out) == 0)
        return 0;
    const char *src = data->data;
    char *dst = out->data;
    for (int64_t o = 0; o < outer; o++) {
        const char *base = src + (size_t)(o * k) * block;
        for (int64_t j = 0; j < nidx; j++) {
            int64_t v = idx->dtype == VG_DT_INT64 ? ((const int64_t *)idx->data)[j]
                                                  : ((const int32_t *)idx->data)[j];
            if (v < 0)
                v += k;
            memcpy(dst, base + (size_t)v * block, block);
            dst += block;
        }
    }
    return 0;
}

/* ---- Squeeze / Unsqueeze --------------------------------------------------------------------- */

/*
 * The axes of Squeeze/Unsqueeze: the attribute before opset 13, input 1 from 13. *given is 0
 * when none were given (Squeeze then drops every dim of 1). In infer an input whose value is
 * not known yet gives -VG_EDYNAMIC.
 */
static int squeeze_axes(struct vg_kctx *c, int64_t *axes, int *n, int *given)
{
    if (c->node->opset < 13)
        return vg_kattr_ints(c, "axes", axes, VG_MAX_RANK, n, given);
    *n = 0;
    *given = c->n_in > 1 && c->in[1];
    if (!*given)
        return 0;
    const struct vg_tensor *v = vg_kctx_value(c, 1);
    if (!v)
        return -VG_EDYNAMIC;
    return vg_kread_ints(c, v, "axes", axes, VG_MAX_RANK, n);
}

/* Normalises axes against rank r: range, sign (negative from opset 11), no duplicates. */
static int norm_axes(struct vg_kctx *c, int64_t *axes, int n, int r)
{
    unsigned seen = 0;
    for (int i = 0; i < n; i++) {
        if (axes[i] < 0 && c->node->opset < 11)
            return vg_kerr(c, VG_EINVAL, "negative axis needs opset 11");
        int a = vg_norm_axis(axes[i], r);
        if (a < 0)
            return vg_kerr(c, VG_ESHAPE, "axis %lld is out of range for rank %d",
                           (long long)axes[i], r);
        if (seen & (1u << a))
            return vg_kerr(c, VG_ESHAPE, "axis %lld is repeated", (long long)axes[i]);
        seen |= 1u << a;
        axes[i] = a;
    }
    return 0;
}

static int squeeze_init_common(struct vg_kctx *c, int axes_required)
{
    if (c->node->opset >= 13) {
        if (axes_required && (c->n_in < 2 || !c->in[1]))
            return vg_kerr(c, VG_EGRAPH, "input 'axes' is required");
        if (c->n_in > 1 && c->in[1] && c->in[1]->dtype != VG_DT_INT64)
            return vg_kerr(c, VG_ETYPE, "axes must be int64");
    } else {
        int64_t axes[VG_MAX_RANK];
        int n, given;
        int rc = vg_kattr_ints(c, "axes", axes, VG_MAX_RANK, &n, &given);
        if (rc)
            return rc;
        if (axes_required && !given)
            return vg_kerr(c, VG_EINVAL, "attribute 'axes' is required");
        for (int i = 0; i < n; i++)
            if (axes[i] < 0 && c->node->opset < 11)
                return vg_kerr(c, VG_EINVAL, "negative axis needs opset 11");
    }
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

static int squeeze_init(struct vg_kctx *c)
{
    return squeeze_init_common(c, 0);
}

static int unsqueeze_init(struct vg_kctx *c)
{
    return squeeze_init_common(c, 1);
}

static int squeeze_infer(struct vg_kctx *c)
{
    const struct vg_tensor *in = c->in[0];
    int64_t axes[VG_MAX_RANK], dims[VG_MAX_RANK];
    int n, given, rc;
    if ((rc = squeeze_axes(c, axes, &n, &given)))
        return rc;
    if ((rc = norm_axes(c, axes, n, in->rank)))
        return rc;
    unsigned drop = 0;
    for (int i = 0; i < n; i++) {
        if (in->dims[axes[i]] != 1)
            return vg_kerr(c, VG_ESHAPE, "cannot squeeze axis %lld of size %lld",
                           (long long)axes[i], (long long)in->dims[axes[i]]);
        drop |= 1u << axes[i];
    }
    int r = 0;
    for (int k = 0; k < in->rank; k++) {
        int squeezed = given ? (drop >> k) & 1 : in->dims[k] == 1;
        if (!squeezed)
            dims[r++] = in->dims[k];
    }
    return vg_set_out_shape(c, c->out[0], r, dims);
}

static int unsqueeze_infer(struct vg_kctx *c)
{
    const struct vg_tensor *in = c->in[0];
    int64_t axes[VG_MAX_RANK], dims[VG_MAX_RANK];
    int n, given, rc;
    if ((rc = squeeze_axes(c, axes, &n, &given)))
        return rc;
    int r = in->rank + n;
    if (r > VG_MAX_RANK)
        return vg_kerr(c, VG_EUNSUPPORTED, "output rank %d exceeds %d", r, VG_MAX_RANK);
    if ((rc = norm_axes(c, axes, n, r)))
        return rc;
    unsigned add = 0;
    for (int i = 0; i < n; i++)
        add |= 1u << axes[i];
    for (int k = 0, j = 0; k < r; k++)
        dims[k] = (add >> k) & 1 ? 1 : in->dims[j++];
    return vg_set_out_shape(c, c->out[0], r, dims);
}

/* ---- Transpose ------------------------------------------------------------------------------- */

/* perm for rank r: the attribute, or reversed axes when absent. */
static int transpose_perm(struct vg_kctx *c, int r, int64_t *perm)
{
    int n, given, rc;
    if ((rc = vg_kattr_ints(c, "perm", perm, VG_MAX_RANK, &n, &given)))
        return rc;
    if (!given) {
        for (int i = 0; i < r; i++)
            perm[i] = r - 1 - i;
        return 0;
    }
    if (r >= 0 && n != r)
        return vg_kerr(c, VG_ESHAPE, "perm has %d entries, the input rank is %d", n, r);
    unsigned seen = 0;
    for (int i = 0; i < n; i++) {
        if (perm[i] < 0 || perm[i] >= n || (seen >> perm[i]) & 1)
            return vg_kerr(c, VG_EINVAL, "perm is not a permutation of 0..%d", n - 1);
        seen |= 1u << perm[i];
    }
    return 0;
}

static int transpose_init(struct vg_kctx *c)
{
    int64_t perm[VG_MAX_RANK];
    int rc = transpose_perm(c, -1, perm);
    if (rc)
        return rc;
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

static int transpose_infer(struct vg_kctx *c)
{
    const struct vg_tensor *in = c->in[0];
    int64_t perm[VG_MAX_RANK], dims[VG_MAX_RANK];
    int rc = transpose_perm(c, in->rank, perm);
    if (rc)
        return rc;
    for (int i = 0; i < in->rank; i++)
        dims[i] = in->dims[perm[i]];
    return vg_set_out_shape(c, c->out[0], in->rank, dims);
}

static int transpose_run(struct vg_kctx *c)
{
    const struct vg_tensor *in = c->in[0];
    struct vg_tensor *out = c->out[0];
    int64_t perm[VG_MAX_RANK], in_st[VG_MAX_RANK], st[VG_MAX_RANK];
    int rc = transpose_perm(c, in->rank, perm);
    if (rc)
        return rc;
    vg_contig_strides(in, in_st);
    for (int i = 0; i < in->rank; i++)
        st[i] = in_st[perm[i]];
    gather_view(out->data, in->data, vg_dtype_size(in->dtype), out->rank, out->dims, st, 0);
    return 0;
}

/* ---- Shape ----------------------------------------------------------------------------------- */

static int shape_init(struct vg_kctx *c)
{
    c->out[0]->dtype = VG_DT_INT64;
    return 0;
}

/* [start, end) of the dims Shape reports (opset 15 slicing; the whole shape before). */
static void shape_range(struct vg_kctx *c, int r, int64_t *start, int64_t *end)
{
    *start = 0;
    *end = r;
    if (c->node->opset < 15)
        return;
    *start = vg_attr_i(c->node, "start", 0);
    *end = vg_attr_i(c->node, "end", r);
    if (*start < 0)
        *start += r;
    if (*end < 0)
        *end += r;
    *start = *start < 0 ? 0 : *start > r ? r : *start;
    *end = *end < 0 ? 0 : *end > r ? r : *end;
    if (*end < *start)
        *end = *start;
}

static int shape_infer(struct vg_kctx *c)
{
    int64_t start, end;
    shape_range(c, c->in[0]->rank, &start, &end);
    int64_t n = end - start;
    return vg_set_out_shape(c, c->out[0], 1, &n);
}

static int shape_run(struct vg_kctx *c)
{
    int64_t start, end;
    shape_range(c, c->in[0]->rank, &start, &end);
    int64_t *dst = c->out[0]->data;
    for (int64_t i = start; i < end; i++)
        dst[i - start] = c->in[0]->dims[i];
    return 0;
}

/* ---- Constant -------------------------------------------------------------------------------- */

static const char *const constant_attrs[] = {
    "value",      "sparse_value", "value_float",  "value_floats",
    "value_int",  "value_ints",   "value_string", "value_strings",
};

static int constant_init(struct vg_kctx *c)
{
    if (c->n_out < 1 || !c->out[0])
        return vg_kerr(c, VG_EGRAPH, "output 0 is required");
    const struct vg_attr *a = NULL;
    int count = 0;
    for (size_t i = 0; i < sizeof(constant_attrs) / sizeof(constant_attrs[0]); i++) {
        const struct vg_attr *x = vg_attr_find(c->node, constant_attrs[i]);
        if (x) {
            a = x;
            count++;
        }
    }
    if (count != 1)
        return vg_kerr(c, VG_EINVAL, "exactly one value attribute is required, got %d", count);
    if (!strcmp(a->name, "sparse_value"))
        return vg_kerr(c, VG_EUNSUPPORTED, "sparse_value is not supported");
    if (strcmp(a->name, "value") && c->node->opset < 12)
        return vg_kerr(c, VG_EINVAL, "attribute '%s' needs opset 12", a->name);

    struct vg_tensor *t = calloc(1, sizeof(*t));
    if (!t)
        return vg_kerr(c, VG_ENOMEM, "out of memory");
    /* The tensor points into the node's attributes, which live as long as the model. */
    int ok = 1;
    if (!strcmp(a->name, "value")) {
        ok = a->type == VG_ATTR_TENSOR && a->t;
        if (ok)
            *t = *a->t;
    } else if (!strcmp(a->name, "value_float")) {
        ok = a->type == VG_ATTR_FLOAT;
        t->dtype = VG_DT_FLOAT;
        t->data = (void *)&a->f;
    } else if (!strcmp(a->name, "value_floats")) {
        ok = a->type == VG_ATTR_FLOATS;
        t->dtype = VG_DT_FLOAT;
        t->rank = 1;
        t->dims[0] = (int64_t)a->n;
        t->data = (void *)a->floats;
    } else if (!strcmp(a->name, "value_int")) {
        ok = a->type == VG_ATTR_INT;
        t->dtype = VG_DT_INT64;
        t->data = (void *)&a->i;
    } else if (!strcmp(a->name, "value_ints")) {
        ok = a->type == VG_ATTR_INTS;
        t->dtype = VG_DT_INT64;
        t->rank = 1;
        t->dims[0] = (int64_t)a->n;
        t->data = (void *)a->ints;
    } else if (!strcmp(a->name, "value_string")) {
        ok = a->type == VG_ATTR_STRING;
        t->dtype = VG_DT_STRING;
        t->data = (void *)&a->s;
    } else {
        ok = a->type == VG_ATTR_STRINGS;
        t->dtype = VG_DT_STRING;
        t->rank = 1;
        t->dims[0] = (int64_t)a->n;
        t->data = (void *)a->strings;
    }
    if (!ok) {
        free(t);
        return vg_kerr(c, VG_EINVAL, "attribute '%s' has the wrong type", a->name);
    }
    if (!dtype_supported(t->dtype)) {
        int dt = t->dtype;
        free(t);
        return vg_kerr(c, VG_EUNSUPPORTED, "constant dtype %d is not supported", dt);
    }
    c->state = t;
    c->out[0]->dtype = t->dtype;
    return 0;
}

static int constant_infer(struct vg_kctx *c)
{
    const struct vg_tensor *t = c->state;
    return vg_set_out_shape(c, c->out[0], t->rank, t->dims);
}

static int constant_run(struct vg_kctx *c)
{
    const struct vg_tensor *t = c->state;
    copy_bytes(c->out[0]->data, t->data, tensor_bytes(t));
    return 0;
}

static void release_free(void *state)
{
    free(state);
}

/* ---- ConstantOfShape ------------------------------------------------------------------------- */

static int constant_of_shape_init(struct vg_kctx *c)
{
    if (c->in[0]->dtype != VG_DT_INT64)
        return vg_kerr(c, VG_ETYPE, "input must be int64");
    const struct vg_attr *a = vg_attr_find(c->node, "value");
    enum vg_dtype dt = VG_DT_FLOAT;
    if (a) {
        if (a->type != VG_ATTR_TENSOR || !a->t || vg_tensor_numel(a->t) != 1)
            return vg_kerr(c, VG_EINVAL, "attribute 'value' must be a one-element tensor");
        dt = a->t->dtype;
        if (!dtype_supported(dt))
            return vg_kerr(c, VG_EUNSUPPORTED, "value dtype %d is not supported", (int)dt);
    }
    c->out[0]->dtype = dt;
    return 0;
}

static int constant_of_shape_infer(struct vg_kctx *c)
{
    const struct vg_tensor *v = vg_kctx_value(c, 0);
    if (!v)
        return -VG_EDYNAMIC;
    int64_t dims[VG_MAX_RANK];
    int n, rc;
    if ((rc = vg_kread_ints(c, v, "shape", dims, VG_MAX_RANK, &n)))
        return rc;
    return vg_set_out_shape(c, c->out[0], n, dims);
}

static int constant_of_shape_run(struct vg_kctx *c)
{
    struct vg_tensor *out = c->out[0];
    const struct vg_tensor *value = vg_attr_t(c->node, "value");
    int64_t n = vg_tensor_numel(out);
    size_t esz = vg_dtype_size(out->dtype);
    if (n == 0)
        return 0;
    if (!value) {
        float *dst = out->data;
        for (int64_t i = 0; i < n; i++)
            dst[i] = 0.0f;
        return 0;
    }
    char *dst = out->data;
    switch (esz) {
    case 1: memset(dst, *(const unsigned char *)value->data, (size_t)n); break;
    case 4:
        for (int64_t i = 0; i < n; i++)
            memcpy(dst + i * 4, value->data, 4);
        break;
    default:
        for (int64_t i = 0; i < n; i++)
            memcpy(dst + (size_t)i * esz, value->data, esz);
        break;
    }
    return 0;
}

/* ---- Slice ----------------------------------------------------------------------------------- */

/* Per input axis: first index, step and number of elements taken. */
struct slice_plan {
    int64_t start[VG_MAX_RANK], step[VG_MAX_RANK], count[VG_MAX_RANK];
};

/* Reads starts/ends/axes/steps (attributes before opset 10, inputs from 10). */
static int slice_params(struct vg_kctx *c, int64_t *starts, int64_t *ends, int64_t *axes,
                        int64_t *steps, int *n, int *has_axes)
{
    int ns, ne, na = 0, nst = 0, rc, given;
    *has_axes = 0;
    if (c->node->opset < 10) {
        if ((rc = vg_kattr_ints(c, "starts", starts, VG_MAX_RANK, &ns, &given)))
            return rc;
        if (!given)
            return vg_kerr(c, VG_EINVAL, "attribute 'starts' is required");
        if ((rc = vg_kattr_ints(c, "ends", ends, VG_MAX_RANK, &ne, &given)))
            return rc;
        if (!given)
            return vg_kerr(c, VG_EINVAL, "attribute 'ends' is required");
        if ((rc = vg_kattr_ints(c, "axes", axes, VG_MAX_RANK, &na, has_axes)))
            return rc;
    } else {
        const struct vg_tensor *v;
        if (!(v = vg_kctx_value(c, 1)))
            return -VG_EDYNAMIC;
        if ((rc = vg_kread_ints(c, v, "starts", starts, VG_MAX_RANK, &ns)))
            return rc;
        if (!(v = vg_kctx_value(c, 2)))
            return -VG_EDYNAMIC;
        if ((rc = vg_kread_ints(c, v, "ends", ends, VG_MAX_RANK, &ne)))
            return rc;
        if (c->n_in > 3 && c->in[3]) {
            if (!(v = vg_kctx_value(c, 3)))
                return -VG_EDYNAMIC;
            if ((rc = vg_kread_ints(c, v, "axes", axes, VG_MAX_RANK, &na)))
                return rc;
            *has_axes = 1;
        }
        if (c->n_in > 4 && c->in[4]) {
            if (!(v = vg_kctx_value(c, 4)))
                return -VG_EDYNAMIC;
            if ((rc = vg_kread_ints(c, v, "steps", steps, VG_MAX_RANK, &nst)))
                return rc;
            if (nst != ns)
                return vg_kerr(c, VG_ESHAPE, "steps has %d values, starts %d", nst, ns);
        }
    }
    if (ne != ns)
        return vg_kerr(c, VG_ESHAPE, "ends has %d values, starts %d", ne, ns);
    if (*has_axes && na != ns)
        return vg_kerr(c, VG_ESHAPE, "axes has %d values, starts %d", na, ns);
    for (int i = 0; i < ns; i++) {
        if (!*has_axes)
            axes[i] = i;
        if (!nst)
            steps[i] = 1;
        if (steps[i] == 0)
            return vg_kerr(c, VG_EINVAL, "steps[%d] is 0", i);
    }
    *n = ns;
    return 0;
}

static int slice_make_plan(struct vg_kctx *c, const struct vg_tensor *data, struct slice_plan *p)
{
    int64_t starts[VG_MAX_RANK], ends[VG_MAX_RANK], axes[VG_MAX_RANK], steps[VG_MAX_RANK];
    int n, has_axes, r = data->rank;
    int rc = slice_params(c, starts, ends, axes, steps, &n, &has_axes);
    if (rc)
        return rc;
    for (int k = 0; k < r; k++) {
        p->start[k] = 0;
        p->step[k] = 1;
        p->count[k] = data->dims[k];
    }
    unsigned seen = 0;
    for (int i = 0; i < n; i++) {
        int a = vg_norm_axis(axes[i], r);
        if (a < 0)
            return vg_kerr(c, VG_ESHAPE, "axis %lld is out of range for rank %d",
                           (long long)axes[i], r);
        if ((seen >> a) & 1)
            return vg_kerr(c, VG_ESHAPE, "axis %lld is repeated", (long long)axes[i]);
        seen |= 1u << a;
        int64_t d = data->dims[a], s = starts[i], e = ends[i], st = steps[i];
        /* Adding d to INT64_MIN cannot overflow (d >= 0); INT64_MAX is clamped below. */
        if (s < 0)
            s += d;
        if (e < 0)
            e += d;
        /* Counts are ceil(span / |step|) as (span - 1) / |step| + 1: no overflow for huge steps. */
        int64_t cnt;
        if (st > 0) {
            s = s < 0 ? 0 : s > d ? d : s;
            e = e < 0 ? 0 : e > d ? d : e;
            cnt = e > s ? (e - s - 1) / st + 1 : 0;
        } else {
            s = s < 0 ? 0 : s > d - 1 ? d - 1 : s;
            e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
            /* -st would overflow for INT64_MIN, which takes at most one element anyway. */
            cnt = s > e ? (st == INT64_MIN ? 1 : (s - e - 1) / (-st) + 1) : 0;
        }
        p->start[a] = cnt ? s : 0;
        /* A step only matters between two taken elements; a huge one taking a single element
         * would overflow when scaled by the axis stride. */
        p->step[a] = cnt > 1 ? st : 1;
        p->count[a] = cnt;
    }
    return 0;
}

static int slice_init(struct vg_kctx *c)
{
    int rc = vg_kctx_need_inputs(c, c->node->opset < 10 ? 1 : 3);
    if (rc)
        return rc;
    if (c->node->opset >= 10) {
        for (int i = 1; i < c->n_in && i < 5; i++)
            if (c->in[i] && !is_index_dtype(c->in[i]->dtype))
                return vg_kerr(c, VG_ETYPE, "input %d must be int32 or int64", i);
    }
    int64_t starts[VG_MAX_RANK], ends[VG_MAX_RANK], axes[VG_MAX_RANK], steps[VG_MAX_RANK];
    int n, has_axes;
    /* Attributes, or constant inputs: check counts and steps now. */
    rc = slice_params(c, starts, ends, axes, steps, &n, &has_axes);
    if (rc && rc != -VG_EDYNAMIC)
        return rc;
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

static int slice_infer(struct vg_kctx *c)
{
    struct slice_plan p;
    int rc = slice_make_plan(c, c->in[0], &p);
    if (rc)
        return rc;
    return vg_set_out_shape(c, c->out[0], c->in[0]->rank, p.count);
}

static int slice_run(struct vg_kctx *c)
{
    const struct vg_tensor *in = c->in[0];
    struct slice_plan p;
    int rc = slice_make_plan(c, in, &p);
    if (rc)
        return rc;
    int64_t in_st[VG_MAX_RANK], st[VG_MAX_RANK], base = 0;
    vg_contig_strides(in, in_st);
    for (int k = 0; k < in->rank; k++) {
        base += p.start[k] * in_st[k];
        st[k] = p.step[k] * in_st[k];
    }
    gather_view(c->out[0]->data, in->data, vg_dtype_size(in->dtype), in->rank, p.count, st,
                base);
    return 0;
}

/* ---- Expand ---------------------------------------------------------------------------------- */

static int expand_init(struct vg_kctx *c)
{
    if (c->in[1]->dtype != VG_DT_INT64)
        return vg_kerr(c, VG_ETYPE, "shape must be int64");
    c->out[0]->dtype = c->in[0]->dtype;
    return 0;
}

static int expand_infer(struct vg_kctx *c)
{
    const struct vg_tensor *v = vg_kctx_value(c, 1);
    if (!v)
        return -VG_EDYNAMIC;
    struct vg_tensor target = {.dtype = c->in[0]->dtype};
    int n, rc;
    if ((rc = vg_kread_ints(c, v, "shape", target.dims, VG_MAX_RANK, &n)))
        return rc;
    target.rank = n;
    for (int i = 0; i < n; i++)
        if (target.dims[i] < 0)
            return vg_kerr(c, VG_ESHAPE, "shape[%d] = %lld is negative", i,
                           (long long)target.dims[i]);
    const struct vg_tensor *shapes[2] = {c->in[0], &target};
    struct vg_tensor out = {.dtype = c->out[0]->dtype};
    if ((rc = vg_broadcast_shape(c, 2, shapes, &out)))
        return rc;
    return vg_set_out_shape(c, c->out[0], out.rank, out.dims);
}

static int expand_run(struct vg_kctx *c)
{
    struct vg_tensor *out = c->out[0];
    int64_t st[VG_MAX_RANK];
    vg_broadcast_strides(c->in[0], out, st);
    gather_view(out->data, c->in[0]->data, vg_dtype_size(out->dtype), out->rank, out->dims, st,
                0);
    return 0;
}

/* ---- Where ----------------------------------------------------------------------------------- */

static int where_init(struct vg_kctx *c)
{
    if (c->in[0]->dtype != VG_DT_BOOL)
        return vg_kerr(c, VG_ETYPE, "condition must be bool");
    if (c->in[1]->dtype != c->in[2]->dtype)
        return vg_kerr(c, VG_ETYPE, "X and Y must have the same dtype");
    c->out[0]->dtype = c->in[1]->dtype;
    return 0;
}

static int where_infer(struct vg_kctx *c)
{
    struct vg_tensor out = {.dtype = c->out[0]->dtype};
    const struct vg_tensor *shapes[3] = {c->in[0], c->in[1], c->in[2]};
    int rc = vg_broadcast_shape(c, 3, shapes, &out);
    if (rc)
        return rc;
    return vg_set_out_shape(c, c->out[0], out.rank, out.dims);
}

#define WHERE_ROW(SZ)                                                                          \
    for (int64_t j = 0; j < inner; j++) {                                                      \
        const char *s_ = cond[oc + j * sc] ? x + (ox + j * sx) * (SZ) : y + (oy + j * sy) * (SZ); \
        memcpy(dst + j * (SZ), s_, (SZ));                                                      \
    }

static int where_run(struct vg_kctx *c)
{
    struct vg_tensor *out = c->out[0];
    if (vg_tensor_numel(out) == 0)
        return 0;
    const uint8_t *cond = c->in[0]->data;
    const char *x = c->in[1]->data, *y = c->in[2]->data;
    size_t esz = vg_dtype_size(out->dtype);
    int r = out->rank;
    /* A rank-1 view of a scalar output keeps the loop below uniform. */
    int64_t stc[VG_MAX_RANK] = {0}, stx[VG_MAX_RANK] = {0}, sty[VG_MAX_RANK] = {0};
    int64_t dims[VG_MAX_RANK] = {1};
    if (r > 0) {
        vg_broadcast_strides(c->in[0], out, stc);
        vg_broadcast_strides(c->in[1], out, stx);
        vg_broadcast_strides(c->in[2], out, sty);
        memcpy(dims, out->dims, sizeof(int64_t) * (size_t)r);
    } else {
        r = 1;
    }
    int64_t idx[VG_MAX_RANK] = {0}, oc = 0, ox = 0, oy = 0;
    int64_t inner = dims[r - 1], sc = stc[r - 1], sx = stx[r - 1], sy = sty[r - 1];
    char *dst = out->data;
    for (;;) {
        switch (esz) {
        case 1: WHERE_ROW(1) break;
        case 4: WHERE_ROW(4) break;
        case 8: WHERE_ROW(8) break;
        default: WHERE_ROW((int64_t)esz) break;
        }
        dst += inner * (int64_t)esz;
        int k = r - 2;
        for (; k >= 0; k--) {
            oc += stc[k];
            ox += stx[k];
            oy += sty[k];
            if (++idx[k] < dims[k])
                break;
            oc -= stc[k] * dims[k];
            ox -= stx[k] * dims[k];
            oy -= sty[k] * dims[k];
            idx[k] = 0;
        }
        if (k < 0)
            break;
    }
    return 0;
}

/* ---- Table ----------------------------------------------------------------------------------- */

const struct vg_op vg_ops_structure[] = {
    {"", "Identity", 1, 0, identity_init, infer_same_shape, run_copy, NULL, 0, 1},
    {"", "Cast", 1, 0, cast_init, infer_same_shape, cast_run, NULL, 0, 1},
    {"", "CastLike", 15, 0, castlike_init, infer_same_shape, cast_run, NULL, 0, 2},
    {"", "Reshape", 1, 4, reshape1_init, reshape1_infer, run_copy, NULL, 0, 1},
    {"", "Reshape", 5, 0, reshape_init, reshape_infer, run_copy, NULL, 0, 2},
    {"", "Flatten", 1, 0, flatten_init, flatten_infer, run_copy, NULL, 0, 1},
    {"", "Concat", 1, 0, concat_init, concat_infer, concat_run, NULL, 0, 1},
    {"", "Gather", 1, 0, gather_init, gather_infer, gather_run, NULL, 0, 2},
    {"", "Squeeze", 1, 0, squeeze_init, squeeze_infer, run_copy, NULL, 0, 1},
    {"", "Unsqueeze", 1, 0, unsqueeze_init, unsqueeze_infer, run_copy, NULL, 0, 1},
    {"", "Transpose", 1, 0, transpose_init, transpose_infer, transpose_run, NULL, 0, 1},
    {"", "Shape", 1, 0, shape_init, shape_infer, shape_run, NULL, VG_OPF_SHAPE_ONLY, 1},
    {"", "Constant", 1, 0, constant_init, constant_infer, constant_run, release_free, 0, 0},
    {"", "ConstantOfShape", 9, 0, constant_of_shape_init, constant_of_shape_infer,
     constant_of_shape_run, NULL, 0, 1},
    {"", "Slice", 1, 0, slice_init, slice_infer, slice_run, NULL, 0, 1},
    {"", "Expand", 8, 0, expand_init, expand_infer, expand_run, NULL, 0, 2},
    {"", "Where", 9, 0, where_init, where_infer, where_run, NULL, 0, 3},
    {0},
};
