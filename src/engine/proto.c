/*
 * TensorProto -> vg_tensor. Supports the engine's dtypes stored in raw_data (little-endian),
 * in the typed fields (float_data, double_data, int32_data for int32/int8/uint8/bool,
 * int64_data, string_data), or as external data (keys location, offset, length; the location
 * must be a relative path without "..", resolved against the model's directory). Segments and
 * other dtypes are refused with VG_EUNSUPPORTED.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "onnx.pb-c.h"
#include "vigil/tensor_io.h"

static int dtype_supported(int32_t dt)
{
    switch (dt) {
    case VG_DT_FLOAT: case VG_DT_UINT8: case VG_DT_INT8: case VG_DT_INT32:
    case VG_DT_INT64: case VG_DT_STRING: case VG_DT_BOOL: case VG_DT_DOUBLE:
        return 1;
    default:
        return 0;
    }
}

static const char *onnx_dtype_name(int32_t dt)
{
    static const char *const names[] = {"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16",
                                        "INT16", "INT32", "INT64", "STRING", "BOOL",
                                        "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64",
                                        "COMPLEX128", "BFLOAT16"};
    if (dt >= 0 && dt < (int32_t)(sizeof(names) / sizeof(names[0])))
        return names[dt];
    return "unknown";
}

/*
 * Reads an external-data tensor into a block from `alloc`, stored in t->data. The block is
 * allocated only once the reference is valid and the file opens, so a small proto cannot make us
 * allocate a huge tensor just to fail.
 */
static int read_external(const Onnx__TensorProto *tp, const char *base_dir, vg_alloc_fn alloc,
                         void *alloc_ctx, struct vg_tensor *t, int64_t nbytes, const char *what,
                         struct vg_error *err)
{
    const char *location = NULL;
    long long offset = 0, length = -1;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (!e->key || !e->value)
            continue;
        char *end;
        if (!strcmp(e->key, "location"))
            location = e->value;
        else if (!strcmp(e->key, "offset") || !strcmp(e->key, "length")) {
            errno = 0;
            long long v = strtoll(e->value, &end, 10);
            if (errno || *end || v < 0)
                return vg__err(err, VG_EINVAL, "tensor '%s': bad external data %s '%s'", what,
                               e->key, e->value);
            if (e->key[0] == 'o')
                offset = v;
            else
                length = v;
        }
    }
    if (!location || !location[0])
        return vg__err(err, VG_EINVAL, "tensor '%s': external data without a location", what);
    if (!base_dir)
        return vg__err(err, VG_EINVAL,
                       "tensor '%s': external data '%s' but the model was loaded from memory",
                       what, location);
    if (location[0] == '/' || strstr(location, ".."))
        return vg__err(err, VG_EINVAL,
                       "tensor '%s': external data location '%s' must be a relative path inside "
                       "the model's directory", what, location);
    if (length >= 0 && length != nbytes)
        return vg__err(err, VG_EINVAL,
                       "tensor '%s': external data length %lld does not match its shape (%lld bytes)",
                       what, length, (long long)nbytes);
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", base_dir, location) >= sizeof(path))
        return vg__err(err, VG_EINVAL, "tensor '%s': external data path too long", what);
    FILE *f = fopen(path, "rb");
    if (!f)
        return vg__err(err, VG_EIO, "tensor '%s': cannot open external data '%s': %s", what, path,
                       strerror(errno));
    int rc = 0;
    t->data = alloc(alloc_ctx, nbytes ? (size_t)nbytes : 1);
    if (!t->data) {
        rc = vg__err(err, VG_ENOMEM, "tensor '%s': out of memory (%lld bytes)", what,
                     (long long)nbytes);
        goto out;
    }
    if (fseeko(f, (off_t)offset, SEEK_SET) != 0 ||
        fread(t->data, 1, (size_t)nbytes, f) != (size_t)nbytes)
        rc = vg__err(err, VG_EIO, "tensor '%s': external data '%s' is shorter than %lld bytes at "
                     "offset %lld", what, path, (long long)nbytes, offset);
out:
    fclose(f);
    return rc;
}

int vg__tensor_from_proto(const Onnx__TensorProto *tp, const char *base_dir, vg_alloc_fn alloc,
                          void *alloc_ctx, struct vg_tensor *t, struct vg_error *err)
{
    const char *what = tp->name && tp->name[0] ? tp->name : "(unnamed)";
    memset(t, 0, sizeof(*t));
    if (!dtype_supported(tp->data_type))
        return vg__err(err, VG_EUNSUPPORTED, "tensor '%s': data type %s (%d) is not supported",
                       what, onnx_dtype_name(tp->data_type), (int)tp->data_type);
    if (tp->segment)
        return vg__err(err, VG_EUNSUPPORTED, "tensor '%s': segmented tensors are not supported",
                       what);
    if (tp->n_dims > VG_MAX_RANK)
        return vg__err(err, VG_EUNSUPPORTED, "tensor '%s': rank %zu exceeds the limit of %d",
                       what, tp->n_dims, VG_MAX_RANK);
    t->dtype = (enum vg_dtype)tp->data_type;
    t->rank = (int)tp->n_dims;
    for (size_t i = 0; i < tp->n_dims; i++)
        t->dims[i] = tp->dims[i];
    char desc[300];
    snprintf(desc, sizeof(desc), "tensor '%s'", what);
    int rc = vg__check_dims(t, desc, err);
    if (rc)
        return rc;
    int64_t n = vg_tensor_numel(t);
    size_t es = vg_dtype_size(t->dtype);
    int64_t nbytes = n * (int64_t)es;
    int external = tp->has_data_location &&
                   tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;

    if (t->dtype == VG_DT_STRING) {
        if (external || tp->has_raw_data)
            return vg__err(err, VG_EUNSUPPORTED, "tensor '%s': strings must be in string_data",
                           what);
        if ((int64_t)tp->n_string_data != n)
            return vg__err(err, VG_EINVAL, "tensor '%s': %zu strings for %lld elements", what,
                           tp->n_string_data, (long long)n);
        size_t total = (size_t)nbytes;
        for (size_t i = 0; i < tp->n_string_data; i++)
            total += tp->string_data[i].len + 1;
        char **ptrs = alloc(alloc_ctx, total ? total : 1);
        if (!ptrs)
            return vg__err(err, VG_ENOMEM, "tensor '%s': out of memory", what);
        char *chars = (char *)(ptrs + n);
        for (int64_t i = 0; i < n; i++) {
            const ProtobufCBinaryData *s = &tp->string_data[i];
            if (s->len)
                memcpy(chars, s->data, s->len);
            chars[s->len] = 0;
            ptrs[i] = chars;
            chars += s->len + 1;
        }
        t->data = ptrs;
        return 0;
    }

    if (external)
        return read_external(tp, base_dir, alloc, alloc_ctx, t, nbytes, what, err);
    /* The stored values must match the shape before we allocate for it (a 10-byte proto can
     * declare gigabytes). */
    if (tp->has_raw_data) {
        if ((int64_t)tp->raw_data.len != nbytes)
            return vg__err(err, VG_EINVAL, "tensor '%s': raw_data has %zu bytes, shape needs %lld",
                           what, tp->raw_data.len, (long long)nbytes);
    } else {
        size_t have;
        switch (t->dtype) {
        case VG_DT_FLOAT: have = tp->n_float_data; break;
        case VG_DT_DOUBLE: have = tp->n_double_data; break;
        case VG_DT_INT64: have = tp->n_int64_data; break;
        default: have = tp->n_int32_data; break;
        }
        if ((int64_t)have != n)
            return vg__err(err, VG_EINVAL, "tensor '%s': %zu values stored for %lld elements",
                           what, have, (long long)n);
    }
    void *data = alloc(alloc_ctx, nbytes ? (size_t)nbytes : 1);
    if (!data)
        return vg__err(err, VG_ENOMEM, "tensor '%s': out of memory (%lld bytes)", what,
                       (long long)nbytes);
    t->data = data;
    if (tp->has_raw_data) {
        if (nbytes)
            memcpy(data, tp->raw_data.data, (size_t)nbytes);
        return 0;
    }
    for (int64_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case VG_DT_FLOAT: ((float *)data)[i] = tp->float_data[i]; break;
        case VG_DT_DOUBLE: ((double *)data)[i] = tp->double_data[i]; break;
        case VG_DT_INT64: ((int64_t *)data)[i] = tp->int64_data[i]; break;
        case VG_DT_INT32: ((int32_t *)data)[i] = tp->int32_data[i]; break;
        case VG_DT_INT8: ((int8_t *)data)[i] = (int8_t)tp->int32_data[i]; break;
        case VG_DT_UINT8: ((uint8_t *)data)[i] = (uint8_t)tp->int32_data[i]; break;
        case VG_DT_BOOL: ((uint8_t *)data)[i] = tp->int32_data[i] != 0; break;
        default: break;
        }
    }
    return 0;
}

/* ---- tensor_io.h: TensorProto files --------------------------------------------------------- */

static void *malloc_alloc(void *ctx, size_t n)
{
    (void)ctx;
    return calloc(1, n);
}

int vg_tensor_parse_pb(const void *bytes, size_t len, struct vg_tensor *t, char **name,
                       struct vg_error *err)
{
    memset(t, 0, sizeof(*t));
    if (name)
        *name = NULL;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, bytes);
    if (!tp)
        return vg__err(err, VG_EPARSE, "not a valid TensorProto (protobuf parse failed)");
    int rc = vg__tensor_from_proto(tp, NULL, malloc_alloc, NULL, t, err);
    if (rc) {
        free(t->data);
        t->data = NULL;
    } else if (name) {
        *name = strdup(tp->name ? tp->name : "");
        if (!*name) {
            free(t->data);
            t->data = NULL;
            rc = vg__err(err, VG_ENOMEM, "out of memory");
        }
    }
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return rc;
}

int vg__read_file(const char *path, size_t cap, unsigned char **out, size_t *len,
                  struct vg_error *err)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return vg__err(err, VG_EIO, "%s: %s", path, strerror(errno));
    int rc = 0;
    unsigned char *buf = NULL;
    long sz;
    if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        rc = vg__err(err, VG_EIO, "%s: cannot determine size", path);
        goto out;
    }
    if ((size_t)sz > cap) {
        rc = vg__err(err, VG_ENOMEM, "%s: file of %ld bytes exceeds the limit of %zu", path, sz,
                     cap);
        goto out;
    }
    buf = malloc(sz ? (size_t)sz : 1);
    if (!buf) {
        rc = vg__err(err, VG_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        rc = vg__err(err, VG_EIO, "%s: read failed", path);
        free(buf);
        buf = NULL;
        goto out;
    }
    *out = buf;
    *len = (size_t)sz;
out:
    fclose(f);
    return rc;
}

int vg_tensor_read_pb(const char *path, struct vg_tensor *t, char **name, struct vg_error *err)
{
    unsigned char *buf;
    size_t len;
    memset(t, 0, sizeof(*t));
    int rc = vg__read_file(path, (size_t)VG_MAX_TENSOR_BYTES + (1u << 20), &buf, &len, err);
    if (rc)
        return rc;
    rc = vg_tensor_parse_pb(buf, len, t, name, err);
    if (rc)
        vg__err_prefix(err, path);
    free(buf);
    return rc;
}

void vg_tensor_free_data(struct vg_tensor *t)
{
    free(t->data);
    t->data = NULL;
}
