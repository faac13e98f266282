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
