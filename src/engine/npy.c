/*
 * NumPy .npy files: one tensor per file.
 *
 * Subset of the NPY format implemented (numpy's format.py documents it):
 * - magic "\x93NUMPY", major version 1 (u16 little-endian header length), 2 or 3 (u32 header
 *   length; version 3 only differs by allowing UTF-8 in the header, which we never need).
 * - the header is a Python dict literal with exactly the keys 'descr', 'fortran_order' and 'shape',
 *   in any order, single- or double-quoted keys, optional trailing comma, padded with spaces and a
 *   final newline.
 * - descr: '<f4' '<f8' '<i8' '<i4' '|i1' '|u1' '|b1' ('<i1', '<u1', '<b1', '=' and '|' for the
 *   one-byte types are accepted as numpy treats them the same). No big-endian, no structured or
 *   object dtypes, no strings. fortran_order True is refused (we only do C order).
 * - shape: a tuple of non-negative integers, at most VG_MAX_RANK of them.
 * Reading checks the header length against a cap and the file size, and requires the data to be
 * exactly the size the header announces, so a truncated or lying file is an error, not a crash.
 * Writing produces version 1.0 (our header is at most a few hundred bytes) with the data start
 * aligned to 64 bytes, as numpy does. The host is assumed little-endian (checked at compile time).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "vigil/tensor_io.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c reads and writes little-endian data in place: port the byte swapping first"
#endif

/* numpy itself refuses headers above 10000 bytes unless asked; leave room for long shapes. */
#define NPY_MAX_HEADER 65536
#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64

static const struct {
    const char *descr;
    enum vg_dtype dt;
} npy_types[] = {
    {"<f4", VG_DT_FLOAT}, {"<f8", VG_DT_DOUBLE}, {"<i8", VG_DT_INT64}, {"<i4", VG_DT_INT32},
    {"|i1", VG_DT_INT8},  {"<i1", VG_DT_INT8},   {"=i1", VG_DT_INT8},  {"|u1", VG_DT_UINT8},
    {"<u1", VG_DT_UINT8}, {"=u1", VG_DT_UINT8},  {"|b1", VG_DT_BOOL},  {"<b1", VG_DT_BOOL},
    {"=b1", VG_DT_BOOL},
};

/* The descr written for each dtype: the first table entry that names it. */
static const char *npy_descr(enum vg_dtype dt)
{
    for (size_t i = 0; i < sizeof(npy_types) / sizeof(npy_types[0]); i++)
        if (npy_types[i].dt == dt)
            return npy_types[i].descr;
    return NULL;
}

/* ---- header parsing: a tiny reader for the one dict literal numpy writes ------------------- */

struct npy_hdr {
    const char *p, *end;
};

static void skip_ws(struct npy_hdr *h)
{
    while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r'))
        h->p++;
}

static int eat(struct npy_hdr *h, char ch)
{
    skip_ws(h);
    if (h->p < h->end && *h->p == ch) {
        h->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string without escapes (none of the values we accept need them). */
static int parse_str(struct npy_hdr *h, char *out, size_t cap)
{
    skip_ws(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"'))
        return -1;
    char q = *h->p++;
    size_t n = 0;
    while (h->p < h->end && *h->p != q) {
        if (*h->p == '\\' || n + 1 >= cap)
            return -1;
        out[n++] = *h->p++;
    }
    if (h->p >= h->end)
        return -1;
    h->p++;
    out[n] = '\0';
    return 0;
}

static int parse_word(struct npy_hdr *h, const char *w)
{
    size_t n = strlen(w);
    skip_ws(h);
    if ((size_t)(h->end - h->p) < n || memcmp(h->p, w, n))
        return 0;
    h->p += n;
    return 1;
}

/* "(d0, d1, ...)" with an optional trailing comma; "()" is a scalar. Python ints may carry an L. */
static int parse_shape(struct npy_hdr *h, struct vg_tensor *t)
{
    if (!eat(h, '('))
        return -1;
    t->rank = 0;
    for (;;) {
        if (eat(h, ')'))
            return 0;
        if (t->rank == VG_MAX_RANK)
            return -2;
        skip_ws(h);
        int64_t v = 0;
        int digits = 0;
        while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
            if (v > (INT64_MAX - 9) / 10)
                return -1;
            v = v * 10 + (*h->p++ - '0');
            digits++;
        }
        if (!digits)
            return -1;
        if (h->p < h->end && (*h->p == 'L' || *h->p == 'l'))
            h->p++;
        t->dims[t->rank++] = v;
        if (eat(h, ','))
            continue;
        if (eat(h, ')'))
            return 0;
        return -1;
    }
}

static int parse_header(const char *path, const char *text, size_t len, struct vg_tensor *t,
                        struct vg_error *err)
{
    struct npy_hdr h = {text, text + len};
    int have_descr = 0, have_order = 0, have_shape = 0;
    char key[32], descr[32];

    if (!eat(&h, '{'))
        goto bad;
    while (!eat(&h, '}')) {
        if (parse_str(&h, key, sizeof(key)) || !eat(&h, ':'))
            goto bad;
        if (!strcmp(key, "descr") && !have_descr) {
            if (parse_str(&h, descr, sizeof(descr)))
                return vg__err(err, VG_EUNSUPPORTED,
                               "%s: unsupported .npy dtype (only plain numeric and bool types)",
                               path);
            t->dtype = VG_DT_UNDEFINED;
            for (size_t i = 0; i < sizeof(npy_types) / sizeof(npy_types[0]); i++)
                if (!strcmp(descr, npy_types[i].descr))
                    t->dtype = npy_types[i].dt;
            if (t->dtype == VG_DT_UNDEFINED)
                return vg__err(err, VG_EUNSUPPORTED,
                               "%s: unsupported .npy dtype '%s' (supported: <f4 <f8 <i8 <i4 |i1 "
                               "|u1 |b1, little-endian)",
                               path, descr);
            have_descr = 1;
        } else if (!strcmp(key, "fortran_order") && !have_order) {
            if (parse_word(&h, "True"))
                return vg__err(err, VG_EUNSUPPORTED,
                               "%s: Fortran-order .npy arrays are not supported (save a "
                               "C-contiguous array, e.g. numpy.ascontiguousarray)",
                               path);
            if (!parse_word(&h, "False"))
                goto bad;
            have_order = 1;
        } else if (!strcmp(key, "shape") && !have_shape) {
            int rc = parse_shape(&h, t);
            if (rc == -2)
                return vg__err(err, VG_EUNSUPPORTED, "%s: .npy rank above the limit of %d", path,
                               VG_MAX_RANK);
            if (rc)
                goto bad;
            have_shape = 1;
        } else {
            goto bad;
        }
        if (!eat(&h, ',')) {
            if (!eat(&h, '}'))
                goto bad;
            break;
        }
    }
    skip_ws(&h);
    if (h.p != h.end || !have_descr || !have_order || !have_shape)
        goto bad;
    return 0;
bad:
    return vg__err(err, VG_EPARSE, "%s: malformed .npy header", path);
}

/* ---- reading ------------------------------------------------------------------------------- */

int vg_tensor_read_npy(const char *path, struct vg_tensor *t, struct vg_error *err)
{
    int rc = 0;
    char *header = NULL;
    void *data = NULL;
    unsigned char pre[12];
    struct stat st;

    memset(t, 0, sizeof(*t));
    FILE *f = fopen(path, "rb");
    if (!f)
        return vg__err(err, VG_EIO, "%s: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        rc = vg__err(err, VG_EIO, "%s: not a regular file", path);
        goto out;
    }
    int64_t file_size = (int64_t)st.st_size;

    if (file_size < 10 || fread(pre, 1, 10, f) != 10 || memcmp(pre, NPY_MAGIC, NPY_MAGIC_LEN)) {
        rc = vg__err(err, VG_EPARSE, "%s: not a .npy file (bad magic)", path);
        goto out;
    }
    int major = pre[6];
    int64_t prefix = 10, header_len;
    if (major == 1) {
        header_len = (int64_t)pre[8] | (int64_t)pre[9] << 8;
    } else if (major == 2 || major == 3) {
        if (file_size < 12 || fread(pre + 10, 1, 2, f) != 2) {
            rc = vg__err(err, VG_EPARSE, "%s: truncated .npy header", path);
            goto out;
        }
        prefix = 12;
        header_len = (int64_t)pre[8] | (int64_t)pre[9] << 8 | (int64_t)pre[10] << 16 |
                     (int64_t)pre[11] << 24;
    } else {
        rc = vg__err(err, VG_EUNSUPPORTED, "%s: .npy format version %d.%d not supported", path,
                     major, pre[7]);
        goto out;
    }
    if (header_len > NPY_MAX_HEADER) {
        rc = vg__err(err, VG_ENOMEM, "%s: .npy header of %lld bytes exceeds the limit of %d", path,
                     (long long)header_len, NPY_MAX_HEADER);
        goto out;
    }
    if (prefix + header_len > file_size) {
        rc = vg__err(err, VG_EPARSE, "%s: truncated .npy header", path);
        goto out;
    }
    header = malloc((size_t)header_len + 1);
    if (!header) {
        rc = vg__err(err, VG_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    if (fread(header, 1, (size_t)header_len, f) != (size_t)header_len) {
        rc = vg__err(err, VG_EIO, "%s: read error", path);
        goto out;
    }
    header[header_len] = '\0';
    if (memchr(header, '\0', (size_t)header_len)) {
        rc = vg__err(err, VG_EPARSE, "%s: malformed .npy header", path);
        goto out;
    }
    rc = parse_header(path, header, (size_t)header_len, t, err);
    if (rc)
        goto out;
    rc = vg__check_dims(t, path, err);
    if (rc)
        goto out;

    int64_t data_bytes = vg__tensor_bytes(t);
    int64_t avail = file_size - prefix - header_len;
    if (data_bytes != avail) {
        rc = vg__err(err, VG_EPARSE,
                     "%s: .npy header announces %lld data bytes but the file holds %lld%s", path,
                     (long long)data_bytes, (long long)avail,
                     data_bytes > avail ? " (truncated file)" : "");
        goto out;
    }
    data = malloc(data_bytes ? (size_t)data_bytes : 1);
    if (!data) {
        rc = vg__err(err, VG_ENOMEM, "%s: cannot allocate %lld bytes", path, (long long)data_bytes);
        goto out;
    }
    if (fread(data, 1, (size_t)data_bytes, f) != (size_t)data_bytes) {
        rc = vg__err(err, VG_EIO, "%s: read error", path);
        goto out;
    }
    /* The engine stores bool as exactly 0 or 1; numpy does too, but a file may not. */
    if (t->dtype == VG_DT_BOOL) {
        unsigned char *b = data;
        for (int64_t i = 0; i < data_bytes; i++)
            b[i] = b[i] != 0;
    }
    t->data = data;
    data = NULL;
out:
    if (rc)
        memset(t, 0, sizeof(*t));
    free(data);
    free(header);
    fclose(f);
    return rc;
}

/* ---- writing ------------------------------------------------------------------------------- */

int vg_tensor_write_npy(const char *path, const struct vg_tensor *t, struct vg_error *err)
{
    const char *descr = npy_descr(t->dtype);
    if (!descr)
        return vg__err(err, VG_EUNSUPPORTED, "%s: cannot write %s tensors to .npy", path,
                       vg_dtype_name(t->dtype));
    int rc = vg__check_dims(t, path, err);
    if (rc)
        return rc;
    int64_t data_bytes = vg__tensor_bytes(t);
    if (data_bytes > 0 && !t->data)
        return vg__err(err, VG_EINVAL, "%s: tensor has no data", path);

    /* Shape text: at most VG_MAX_RANK 19-digit numbers; 512 bytes is ample. */
    char dict[512];
    int n =
        snprintf(dict, sizeof(dict), "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < t->rank; i++)
        n += snprintf(dict + n, sizeof(dict) - (size_t)n, "%s%lld", i ? ", " : "",
                      (long long)t->dims[i]);
    n += snprintf(dict + n, sizeof(dict) - (size_t)n, "%s), }", t->rank == 1 ? "," : "");

    /* Pad with spaces and one final newline so the data starts on a 64-byte boundary. */
    size_t prefix = 10;
    size_t total = ((prefix + (size_t)n + 1 + NPY_ALIGN - 1) / NPY_ALIGN) * NPY_ALIGN;
    size_t header_len = total - prefix;
    unsigned char head[10 + sizeof(dict) + NPY_ALIGN];
    memcpy(head, NPY_MAGIC, NPY_MAGIC_LEN);
    head[6] = 1;
    head[7] = 0;
    head[8] = (unsigned char)(header_len & 0xff);
    head[9] = (unsigned char)(header_len >> 8);
    memcpy(head + prefix, dict, (size_t)n);
    memset(head + prefix + n, ' ', header_len - (size_t)n - 1);
    head[total - 1] = '\n';

    FILE *f = fopen(path, "wb");
    if (!f)
        return vg__err(err, VG_EIO, "%s: %s", path, strerror(errno));
    if (fwrite(head, 1, total, f) != total ||
        (data_bytes && fwrite(t->data, 1, (size_t)data_bytes, f) != (size_t)data_bytes))
        rc = vg__err(err, VG_EIO, "%s: write error: %s", path, strerror(errno));
    if (fclose(f) && !rc)
        rc = vg__err(err, VG_EIO, "%s: write error: %s", path, strerror(errno));
    if (rc)
        remove(path);
    return rc;
}
