/*
 * Training data from CSV (vg_dataset_read_csv).
 *
 * Format: the RFC 4180 subset that spreadsheets and pandas write.
 * - Comma separator; records end with LF or CRLF; the last record's newline is optional. A lone CR
 *   is data, not a line end.
 * - A field may be enclosed in double quotes; inside quotes, "" is one quote and commas and
 *   newlines are data. Only spaces and tabs may sit between a closing quote and the next comma.
 *   A quote inside an unquoted field is kept as data.
 * - A UTF-8 byte order mark at the start is skipped. A NUL byte anywhere is an error.
 * - Every cell (header names too) is trimmed of spaces and tabs around its content, so " 5.1 "
 *   is 5.1 and a quoted " setosa" is the class "setosa".
 * - Empty lines (no bytes at all between two line ends) are skipped; a line of only commas is a row
 *   of empty cells.
 * - Line numbers in messages are physical lines of the file (the header is line 1); a record whose
 *   quoted field spans lines is reported at the line it starts on.
 *
 * Values: features are parsed with strtod and must use the whole cell. "nan" (any case) and empty
 * cells are missing values, filled with the column mean or median over the rows that have a value
 * when `impute` asks for it, else an error. Infinities, and numbers beyond float range, are
 * errors: the features are stored as float32, as the ONNX model will see them.
 *
 * Target: task AUTO picks classification when a value is not a number, or when every value is an
 * integer and there are at most 20 distinct values; else regression. Numeric class names are
 * printed canonically ("1", not "1.0", when integral; else the shortest %g that round-trips), so
 * "1" and "1.0" are one class; text class names are kept byte for byte (after trimming).
 *
 * Caps (curl's dynbuf habit: sizes from outside are bounded): the file size, one record's length,
 * the number of columns and the number of classes; each has its own message.
 */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "vigil/train.h"

#define VG_CSV_MAX_FILE ((size_t)2 << 30)    /* 2 GiB */
#define VG_CSV_MAX_RECORD ((size_t)16 << 20) /* 16 MiB for one row */
#define VG_CSV_MAX_COLUMNS 10000
#define VG_CSV_MAX_CLASSES 4096
#define VG_CSV_AUTO_MAX_CLASSES 20 /* AUTO: integer targets with at most this many values */

/* How much of a bad cell a message quotes. */
#define VG_CSV_QUOTE_LEN 40

/* ---- reading and splitting ----------------------------------------------------------------- */

static int read_file(const char *path, char **out, size_t *out_len, struct vg_error *err)
{
    int rc = 0;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc = vg__err(err, VG_EIO, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            if (ncap > VG_CSV_MAX_FILE + 1)
                ncap = VG_CSV_MAX_FILE + 1;
            if (ncap <= len) {
                rc = vg__err(err, VG_ENOMEM, "%s: file is larger than the %zu-byte cap", path,
                             VG_CSV_MAX_FILE);
                goto out;
            }
            char *nbuf = realloc(buf, ncap + 1);
            if (!nbuf) {
                rc = vg__err(err, VG_ENOMEM, "%s: out of memory reading the file", path);
                goto out;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                rc = vg__err(err, VG_EIO, "%s: read error", path);
                goto out;
            }
            break;
        }
    }
    if (len > VG_CSV_MAX_FILE) {
        rc = vg__err(err, VG_ENOMEM, "%s: file is larger than the %zu-byte cap", path,
                     VG_CSV_MAX_FILE);
        goto out;
    }
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    buf = NULL;
out:
    if (f)
        fclose(f);
    free(buf);
    return rc;
}

/*
 * Cursor over the file buffer. next_record() decodes one record in place: quotes are removed,
 * each cell is NUL-terminated and trimmed, and cells[] points at them. Decoding never writes ahead
 * of the read position, so in-place is safe.
 */
struct csv_reader {
    const char *path;
    char *buf;
    size_t len, pos;
    long line;        /* physical line of the next byte to read */
    long record_line; /* line the current record started on */
    char **cells;
    int n_cells, cap_cells;
};

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static char *trim(char *s, char *end)
{
    while (s < end && is_blank(*s))
        s++;
    while (end > s && is_blank(end[-1]))
        end--;
    *end = 0;
    return s;
}

static int push_cell(struct csv_reader *r, char *cell, struct vg_error *err)
{
    if (r->n_cells >= VG_CSV_MAX_COLUMNS)
        return vg__err(err, VG_ENOMEM, "%s: line %ld: more than %d columns", r->path,
                       r->record_line, VG_CSV_MAX_COLUMNS);
    if (r->n_cells == r->cap_cells) {
        int ncap = r->cap_cells ? r->cap_cells * 2 : 64;
        char **n = realloc(r->cells, (size_t)ncap * sizeof *n);
        if (!n)
            return vg__err(err, VG_ENOMEM, "%s: out of memory", r->path);
        r->cells = n;
        r->cap_cells = ncap;
    }
    r->cells[r->n_cells++] = cell;
    return 0;
}

/* Returns 1 with a record, 0 at end of file, or a negative error. */
static int next_record(struct csv_reader *r, struct vg_error *err)
{
    char *b = r->buf;
    size_t end = r->len;
    /* Skip empty lines. */
    for (;;) {
        if (r->pos >= end)
            return 0;
        if (b[r->pos] == '\n') {
            r->pos++;
            r->line++;
        } else if (b[r->pos] == '\r' && r->pos + 1 < end && b[r->pos + 1] == '\n') {
            r->pos += 2;
            r->line++;
        } else {
            break;
        }
    }
    r->record_line = r->line;
    r->n_cells = 0;
    size_t start = r->pos;
    for (;;) {
        /* One cell starting at r->pos. */
        size_t p = r->pos;
        while (p < end && is_blank(b[p]))
            p++;
        char *cell;
        int rc;
        if (p < end && b[p] == '"') {
            size_t w = p; /* decoded content is written from the opening quote on */
            cell = b + w;
            p++;
            for (;;) {
                if (p >= end)
                    return vg__err(err, VG_EINVAL,
                                   "%s: line %ld, column %d: quoted field is not closed before "
                                   "the end of the file",
                                   r->path, r->record_line, r->n_cells + 1);
                if (b[p] == '"') {
                    if (p + 1 < end && b[p + 1] == '"') {
                        b[w++] = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                if (b[p] == '\n')
                    r->line++;
                b[w++] = b[p++];
            }
            char *content_end = b + w;
            while (p < end && is_blank(b[p]))
                p++;
            if (p < end && b[p] != ',' && b[p] != '\n' &&
                !(b[p] == '\r' && p + 1 < end && b[p + 1] == '\n'))
                return vg__err(err, VG_EINVAL,
                               "%s: line %ld, column %d: unexpected '%c' after a closing quote",
                               r->path, r->line, r->n_cells + 1,
                               isprint((unsigned char)b[p]) ? b[p] : '?');
            /* content_end is before the closing quote, so the terminator at p survives. */
            char term = p < end ? b[p] : 0;
            rc = push_cell(r, trim(cell, content_end), err);
            if (rc < 0)
                return rc;
            if (term == ',') {
                r->pos = p + 1;
            } else {
                r->pos = p + (term == '\r' ? 2 : term == '\n' ? 1 : 0);
                if (term)
                    r->line++;
                break;
            }
        } else {
            size_t q = r->pos;
            while (q < end && b[q] != ',' && b[q] != '\n' &&
                   !(b[q] == '\r' && q + 1 < end && b[q + 1] == '\n'))
                q++;
            char term = q < end ? b[q] : 0;
            cell = trim(b + r->pos, b + q); /* writes the NUL at or before q */
            rc = push_cell(r, cell, err);
            if (rc < 0)
                return rc;
            if (term == ',') {
                r->pos = q + 1; /* at end of file the next pass makes the last, empty cell */
            } else {
                r->pos = q + (term == '\r' ? 2 : term == '\n' ? 1 : 0);
                if (term)
                    r->line++;
                break;
            }
        }
        if (r->pos - start > VG_CSV_MAX_RECORD)
            break;
    }
    if (r->pos - start > VG_CSV_MAX_RECORD)
        return vg__err(err, VG_ENOMEM, "%s: line %ld is longer than the %zu-byte cap", r->path,
                       r->record_line, VG_CSV_MAX_RECORD);
    return 1;
}

/* ---- values -------------------------------------------------------------------------------- */

static int is_missing(const char *s)
{
    return s[0] == 0 || strcasecmp(s, "nan") == 0;
}

/* 1 when s is a whole finite number (sets *v). */
static int parse_number(const char *s, double *v)
{
    if (!*s)
        return 0;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (*end != 0 || end == s)
        return 0;
    if (!isfinite(d))
        return 0;
    *v = d;
    return 1;
}

/* Copies at most VG_CSV_QUOTE_LEN bytes of s for a message, with "..." when cut. */
static void quote_cell(const char *s, char *out, size_t out_len)
{
    size_t n = strlen(s);
    if (n > VG_CSV_QUOTE_LEN)
        snprintf(out, out_len, "%.*s...", VG_CSV_QUOTE_LEN, s);
    else
        snprintf(out, out_len, "%s", s);
}

/* Canonical text of a numeric class: integral values without a fraction, else shortest %g. */
static void format_class_number(double v, char *out, size_t out_len)
{
    v += 0.0; /* -0 prints as 0 */
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, out_len, "%.0f", v);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, out_len, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

struct class_num {
    double v;
    int32_t row;
};
struct class_str {
    const char *s;
    int32_t row;
};

static int cmp_class_num(const void *a, const void *b)
{
    const struct class_num *x = a, *y = b;
    if (x->v != y->v)
        return x->v < y->v ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

static int cmp_class_str(const void *a, const void *b)
{
    const struct class_str *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    if (c)
        return c;
    return (x->row > y->row) - (x->row < y->row);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- growing arrays ------------------------------------------------------------------------ */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 1024;
    while (ncap < need)
        ncap *= 2;
    void *n = realloc(*p, ncap * elem);
    if (!n)
        return -1;
    *p = n;
    *cap = ncap;
    return 0;
}

/* ---- the reader ---------------------------------------------------------------------------- */

void vg_dataset_release(struct vg_dataset *ds)
{
    if (!ds)
        return;
    if (ds->feature_names)
        for (int i = 0; i < ds->n_features; i++)
            free(ds->feature_names[i]);
    free(ds->feature_names);
    free(ds->target_name);
    free(ds->x);
    if (ds->class_names)
        for (int i = 0; i < ds->n_classes; i++)
            free(ds->class_names[i]);
    free(ds->class_names);
    free(ds->y_class);
    free(ds->y_value);
    memset(ds, 0, sizeof *ds);
}

/* Builds classes from the target texts; tv holds their numeric values when all_numeric. */
static int build_classes(struct vg_dataset *ds, const char *path, char **tgt, const double *tv,
                         int all_numeric, struct vg_error *err)
{
    int rc = 0;
    int n = ds->n_rows;
    struct class_num *nums = NULL;
    struct class_str *strs = NULL;
    ds->y_class = malloc((size_t)n * sizeof *ds->y_class);
    if (!ds->y_class) {
        rc = vg__err(err, VG_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    int n_classes = 0;
    if (all_numeric) {
        nums = malloc((size_t)n * sizeof *nums);
        if (!nums) {
            rc = vg__err(err, VG_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        for (int i = 0; i < n; i++)
            nums[i] = (struct class_num){tv[i], i};
        qsort(nums, (size_t)n, sizeof *nums, cmp_class_num);
        for (int i = 0; i < n; i++)
            if (i == 0 || nums[i].v != nums[i - 1].v)
                n_classes++;
    } else {
        strs = malloc((size_t)n * sizeof *strs);
        if (!strs) {
            rc = vg__err(err, VG_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        for (int i = 0; i < n; i++)
            strs[i] = (struct class_str){tgt[i], i};
        qsort(strs, (size_t)n, sizeof *strs, cmp_class_str);
        for (int i = 0; i < n; i++)
            if (i == 0 || strcmp(strs[i].s, strs[i - 1].s) != 0)
                n_classes++;
    }
    if (n_classes < 2) {
        rc = vg__err(err, VG_EINVAL,
                     "%s: column '%s': the target has one class ('%s') in %d rows; "
                     "classification needs at least two",
                     path, ds->target_name, tgt[0], n);
        goto out;
    }
    if (n_classes > VG_CSV_MAX_CLASSES) {
        rc = vg__err(err, VG_ENOMEM, "%s: column '%s': %d classes, more than the cap of %d", path,
                     ds->target_name, n_classes, VG_CSV_MAX_CLASSES);
        goto out;
    }
    ds->class_names = calloc((size_t)n_classes, sizeof *ds->class_names);
    if (!ds->class_names) {
        rc = vg__err(err, VG_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    ds->n_classes = n_classes;
    int c = -1;
    for (int i = 0; i < n; i++) {
        int is_new;
        int32_t row;
        char numbuf[64];
        const char *name;
        if (all_numeric) {
            is_new = i == 0 || nums[i].v != nums[i - 1].v;
            row = nums[i].row;
            format_class_number(nums[i].v, numbuf, sizeof numbuf);
            name = numbuf;
        } else {
            is_new = i == 0 || strcmp(strs[i].s, strs[i - 1].s) != 0;
            row = strs[i].row;
            name = strs[i].s;
        }
        if (is_new) {
            c++;
            ds->class_names[c] = strdup(name);
            if (!ds->class_names[c]) {
                rc = vg__err(err, VG_ENOMEM, "%s: out of memory", path);
                goto out;
            }
        }
        ds->y_class[row] = c;
    }
out:
    free(nums);
    free(strs);
    return rc;
}

/*
 * Fills the missing cells (NaN) of each feature with its column's mean or median. col_feature
 * maps file columns to features, to name the file column in messages.
 */
static int impute_columns(struct vg_dataset *ds, const char *path, enum vg_impute impute,
                          const int *col_feature, int n_cols, struct vg_error *err)
{
    int rc = 0;
    double *vals = NULL;
    int n = ds->n_rows, nf = ds->n_features;
    for (int j = 0; j < nf; j++) {
        int n_missing = 0;
        double sum = 0;
        int n_have = 0;
        for (int i = 0; i < n; i++) {
            float v = ds->x[(size_t)i * nf + j];
            if (isnan(v)) {
                n_missing++;
            } else {
                sum += v;
                n_have++;
            }
        }
        if (!n_missing)
            continue;
        if (n_have == 0) {
            int col = 0;
            while (col < n_cols - 1 && col_feature[col] != j)
                col++;
            rc = vg__err(err, VG_EINVAL,
                         "%s: column '%s' (%d) has no value in any row; nothing to impute from",
                         path, ds->feature_names[j], col + 1);
            goto out;
        }
        double fill;
        if (impute == VG_IMPUTE_MEAN) {
            fill = sum / n_have;
        } else {
            if (!vals) {
                vals = malloc((size_t)n * sizeof *vals);
                if (!vals) {
                    rc = vg__err(err, VG_ENOMEM, "%s: out of memory", path);
                    goto out;
                }
            }
            int k = 0;
            for (int i = 0; i < n; i++) {
                float v = ds->x[(size_t)i * nf + j];
                if (!isnan(v))
                    vals[k++] = v;
            }
            qsort(vals, (size_t)k, sizeof *vals, cmp_double);
            fill = k % 2 ? vals[k / 2] : (vals[k / 2 - 1] + vals[k / 2]) / 2;
        }
        for (int i = 0; i < n; i++) {
            float *v = &ds->x[(size_t)i * nf + j];
            if (isnan(*v))
                *v = (float)fill;
        }
    }
out:
    free(vals);
    return rc;
}

/* "'a', 'b', 'c'" for a message, cut with "..." to fit. */
static void list_columns(char **names, int n, char *out, size_t out_len)
{
    size_t used = 0;
    out[0] = 0;
    for (int j = 0; j < n; j++) {
        int w = snprintf(out + used, out_len - used, "%s'%s'", j ? ", " : "", names[j]);
        if (w < 0 || (size_t)w >= out_len - used) {
            snprintf(out + out_len - 4, 4, "...");
            return;
        }
        used += (size_t)w;
    }
}

/*
 * vg_dataset_read_csv with a feature selection: only the named columns are read, in the order
 * given; other columns (ids, free text) are skipped without being parsed. features NULL means
 * every column but the target, in file order. Errors besides the reader's: a listed name not in
 * the header, a name listed twice, the target listed as a feature. target NULL (with a feature
 * list) reads the features alone: no target column, ds->task as given, no classes or values.
 */
int vg_dataset_read_csv(const char *path, const char *target, enum vg_task task,
                        enum vg_impute impute, struct vg_dataset *ds, struct vg_error *err)
{
    return vg_dataset_read_csv_select(path, target, NULL, 0, task, impute, ds, err);
}

int vg_dataset_read_csv_select(const char *path, const char *target, const char *const *features,
                               int n_features, enum vg_task task, enum vg_impute impute,
                               struct vg_dataset *ds, struct vg_error *err)
{
    int rc = 0;
    struct csv_reader r = {0};
    char **tgt = NULL; /* target text per row, pointing into the file buffer */
    double *tv = NULL; /* target value per row, while every value is a number */
    size_t tgt_cap = 0, tv_cap = 0, x_cap = 0;
    int all_numeric = 1, all_integral = 1;
    char **header = NULL;
    int *col_feature = NULL; /* per column: its feature index, or -1 (target, not selected) */
    char quoted[VG_CSV_QUOTE_LEN + 8];
    char list[400];

    if (!ds)
        return vg__err(err, VG_EINVAL, "vg_dataset_read_csv: bad argument");
    memset(ds, 0, sizeof *ds);
    if (!path || (!target && !features) || (features && n_features <= 0) ||
        (!features && n_features != 0) ||
        (task != VG_TASK_AUTO && task != VG_TASK_CLASSIFICATION && task != VG_TASK_REGRESSION) ||
        (impute != VG_IMPUTE_NONE && impute != VG_IMPUTE_MEAN && impute != VG_IMPUTE_MEDIAN)) {
        rc = vg__err(err, VG_EINVAL, "vg_dataset_read_csv: bad argument");
        goto out;
    }
    r.path = path;
    r.line = 1;
    rc = read_file(path, &r.buf, &r.len, err);
    if (rc < 0)
        goto out;
    if (memchr(r.buf, 0, r.len)) {
        rc = vg__err(err, VG_EINVAL, "%s: contains a NUL byte; not a text CSV file", path);
        goto out;
    }
    if (r.len >= 3 && memcmp(r.buf, "\xEF\xBB\xBF", 3) == 0)
        r.pos = 3;

    /* Header. */
    rc = next_record(&r, err);
    if (rc < 0)
        goto out;
    if (rc == 0) {
        rc = vg__err(err, VG_EINVAL, "%s: the file is empty; expected a header row", path);
        goto out;
    }
    long header_line = r.record_line;
    int n_cols = r.n_cells;
    header = malloc((size_t)n_cols * sizeof *header);
    col_feature = malloc((size_t)n_cols * sizeof *col_feature);
    if (!header || !col_feature) {
        rc = vg__err(err, VG_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    memcpy(header, r.cells, (size_t)n_cols * sizeof *header);
    int target_col = -1;
    for (int j = 0; j < n_cols; j++) {
        if (!header[j][0]) {
            rc = vg__err(err, VG_EINVAL, "%s: line %ld, column %d: empty column name", path,
                         header_line, j + 1);
            goto out;
        }
        for (int k = 0; k < j; k++)
            if (strcmp(header[k], header[j]) == 0) {
                rc = vg__err(err, VG_EINVAL,
                             "%s: line %ld, column '%s' (%d): duplicate column name (also column "
                             "%d)",
                             path, header_line, header[j], j + 1, k + 1);
                goto out;
            }
        if (target && strcmp(header[j], target) == 0)
            target_col = j;
        col_feature[j] = -1;
    }
    if (target && target_col < 0) {
        list_columns(header, n_cols, list, sizeof list);
        rc = vg__err(err, VG_EINVAL, "%s: line %ld: no column '%s' for the target; columns: %s",
                     path, header_line, target, list);
        goto out;
    }
    if (features) {
        for (int f = 0; f < n_features; f++) {
            int col = -1;
            for (int j = 0; j < n_cols && col < 0; j++)
                if (features[f] && strcmp(header[j], features[f]) == 0)
                    col = j;
            if (col < 0) {
                list_columns(header, n_cols, list, sizeof list);
                rc = vg__err(err, VG_EINVAL,
                             "%s: line %ld: no column '%s' for feature %d; columns: %s", path,
                             header_line, features[f] ? features[f] : "(null)", f + 1, list);
                goto out;
            }
            if (target && col == target_col) {
                rc = vg__err(err, VG_EINVAL,
                             "%s: line %ld, column '%s' (%d): the target is also listed as a "
                             "feature (feature %d)",
                             path, header_line, header[col], col + 1, f + 1);
                goto out;
            }
            if (col_feature[col] >= 0) {
                rc = vg__err(err, VG_EINVAL,
                             "%s: line %ld, column '%s' (%d): listed twice as a feature (features "
                             "%d and %d)",
                             path, header_line, header[col], col + 1, col_feature[col] + 1, f + 1);
                goto out;
            }
            col_feature[col] = f;
        }
    } else {
        for (int j = 0; j < n_cols; j++)
            if (j != target_col)
                col_feature[j] = n_features++;
    }
    if (n_features < 1) {
        rc = vg__err(err, VG_EINVAL, "%s: line %ld: only the target column '%s'; no features", path,
                     header_line, target);
        goto out;
    }
    ds->n_features = n_features;
    ds->feature_names = calloc((size_t)ds->n_features, sizeof *ds->feature_names);
    ds->target_name = target ? strdup(target) : NULL;
    if (!ds->feature_names || (target && !ds->target_name)) {
        rc = vg__err(err, VG_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    for (int j = 0; j < n_cols; j++) {
        int f = col_feature[j];
        if (f < 0)
            continue;
        ds->feature_names[f] = strdup(header[j]);
        if (!ds->feature_names[f]) {
            rc = vg__err(err, VG_ENOMEM, "%s: out of memory", path);
            goto out;
        }
    }

    /* Rows. */
    int n_missing = 0;
    for (;;) {
        rc = next_record(&r, err);
        if (rc < 0)
            goto out;
        if (rc == 0)
            break;
        rc = 0;
        long line = r.record_line;
        if (r.n_cells < n_cols) {
            rc = vg__err(err, VG_EINVAL,
                         "%s: line %ld, column '%s' (%d): missing; the row has %d cells, the "
                         "header %d",
                         path, line, header[r.n_cells], r.n_cells + 1, r.n_cells, n_cols);
            goto out;
        }
        if (r.n_cells > n_cols) {
            rc = vg__err(err, VG_EINVAL,
                         "%s: line %ld, column %d: extra cell; the row has %d cells, the header %d",
                         path, line, n_cols + 1, r.n_cells, n_cols);
            goto out;
        }
        if (ds->n_rows == INT_MAX / 2) {
            rc =
                vg__err(err, VG_ENOMEM, "%s: line %ld: more than %d rows", path, line, INT_MAX / 2);
            goto out;
        }
        size_t row = (size_t)ds->n_rows;
        if (grow((void **)&ds->x, &x_cap, (row + 1) * (size_t)ds->n_features, sizeof *ds->x) ||
            grow((void **)&tgt, &tgt_cap, row + 1, sizeof *tgt) ||
            grow((void **)&tv, &tv_cap, row + 1, sizeof *tv)) {
            rc = vg__err(err, VG_ENOMEM, "%s: out of memory at line %ld", path, line);
            goto out;
        }
        float *xr = ds->x + row * (size_t)ds->n_features;
        for (int j = 0; j < n_cols; j++) {
            const char *cell = r.cells[j];
            int f = col_feature[j];
            double v;
            if (target && j == target_col) {
                if (is_missing(cell)) {
                    rc = vg__err(err, VG_EINVAL,
                                 "%s: line %ld, column '%s' (%d): the target value is missing",
                                 path, line, header[j], j + 1);
                    goto out;
                }
                tgt[row] = r.cells[j];
                if (parse_number(cell, &v)) {
                    tv[row] = v;
                    if (v != floor(v) || fabs(v) >= 9007199254740992.0)
                        all_integral = 0;
                } else {
                    all_numeric = 0;
                    if (task == VG_TASK_REGRESSION) {
                        quote_cell(cell, quoted, sizeof quoted);
                        rc = vg__err(err, VG_EINVAL,
                                     "%s: line %ld, column '%s' (%d): '%s' is not a number "
                                     "(regression needs a numeric target)",
                                     path, line, header[j], j + 1, quoted);
                        goto out;
                    }
                }
                continue;
            }
            if (f < 0)
                continue;
            if (is_missing(cell)) {
                if (impute == VG_IMPUTE_NONE) {
                    rc = vg__err(err, VG_EINVAL,
                                 "%s: line %ld, column '%s' (%d): %s value; missing values "
                                 "need imputing (vigil train --impute mean|median)",
                                 path, line, header[j], j + 1, cell[0] ? "NaN" : "empty");
                    goto out;
                }
                xr[f] = NAN;
                n_missing++;
                continue;
            }
            if (!parse_number(cell, &v)) {
                quote_cell(cell, quoted, sizeof quoted);
                char *end;
                double d = strtod(cell, &end);
                int is_inf = *end == 0 && end != cell && isinf(d);
                rc = vg__err(err, VG_EINVAL, "%s: line %ld, column '%s' (%d): '%s' is %s", path,
                             line, header[j], j + 1, quoted,
                             is_inf ? "infinite (or beyond double range); not a usable feature"
                                    : "not a number");
                goto out;
            }
            if (fabs(v) > (double)FLT_MAX) {
                quote_cell(cell, quoted, sizeof quoted);
                rc = vg__err(err, VG_EINVAL,
                             "%s: line %ld, column '%s' (%d): '%s' is beyond float32 range", path,
                             line, header[j], j + 1, quoted);
                goto out;
            }
            xr[f] = (float)v;
        }
        ds->n_rows++;
    }
    if (ds->n_rows == 0) {
        rc = vg__err(err, VG_EINVAL, "%s: only a header (line %ld); no data rows", path,
                     header_line);
        goto out;
    }
    if (n_missing) {
        rc = impute_columns(ds, path, impute, col_feature, n_cols, err);
        if (rc < 0)
            goto out;
    }

    /* Target (none read: the rows have features only, and the task stays as given). */
    if (target && task == VG_TASK_AUTO) {
        task = VG_TASK_REGRESSION;
        if (!all_numeric) {
            task = VG_TASK_CLASSIFICATION;
        } else if (all_integral) {
            double *sorted = malloc((size_t)ds->n_rows * sizeof *sorted);
            if (!sorted) {
                rc = vg__err(err, VG_ENOMEM, "%s: out of memory", path);
                goto out;
            }
            memcpy(sorted, tv, (size_t)ds->n_rows * sizeof *sorted);
            qsort(sorted, (size_t)ds->n_rows, sizeof *sorted, cmp_double);
            int distinct = 0;
            for (int i = 0; i < ds->n_rows; i++)
                if (i == 0 || sorted[i] != sorted[i - 1])
                    distinct++;
            free(sorted);
            if (distinct <= VG_CSV_AUTO_MAX_CLASSES)
                task = VG_TASK_CLASSIFICATION;
        }
    }
    ds->task = task;
    /* Give back the growth slack of the feature matrix. */
    float *x_fit = realloc(ds->x, (size_t)ds->n_rows * (size_t)ds->n_features * sizeof *x_fit);
    if (x_fit)
        ds->x = x_fit;
    if (!target)
        goto out;
    if (task == VG_TASK_CLASSIFICATION) {
        rc = build_classes(ds, path, tgt, tv, all_numeric, err);
        if (rc < 0)
            goto out;
    } else {
        ds->y_value = tv;
        tv = NULL;
        /* Shrink away the growth slack. */
        double *shrunk = realloc(ds->y_value, (size_t)ds->n_rows * sizeof *shrunk);
        if (shrunk)
            ds->y_value = shrunk;
    }
out:
    if (rc < 0)
        vg_dataset_release(ds);
    free(header);
    free(col_feature);
    free(tgt);
    free(tv);
    free(r.cells);
    free(r.buf);
    return rc;
}
