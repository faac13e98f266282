/*
 * onnx_conformance: runs ONNX backend-style test cases through the engine.
 *
 *   onnx_conformance DIR... [--filter SUBSTR] [--exclusions FILE] [--rtol R] [--atol A]
 *                   [--int-atol N] [-v]
 *
 * Case layout (as onnx.backend.test.cmd_tools generate-data writes it):
 *   DIR/test_x/model.onnx, DIR/test_x/test_data_set_K/input_N.pb, output_N.pb (TensorProto).
 * A DIR that itself holds model.onnx is run as one case.
 *
 * test_* cases: the model's nodes (subgraphs included) are listed from the protobuf; if any
 * (domain, op_type) is not registered at the opset the model imports, the case is skipped. Else
 * the model is loaded, input_N.pb is bound to the N-th graph input that is not an initializer
 * (by name, so the engine's input order does not matter), the model runs, and output_N.pb is
 * compared with the N-th graph output the way ONNX's backend test runner does: dtype and shape
 * equal; floats within |got - expected| <= atol + rtol * |expected| (numpy assert_allclose,
 * defaults rtol 1e-3, atol 1e-7), NaN equal to NaN, infinities equal only to themselves; integers
 * within --int-atol (default 0: exactly; the int8 comparison with ONNX Runtime allows one
 * quantization step, and then prints how many elements differ by exactly that much), bools and
 * strings exactly. A ZipMap output (map_keys set) is compared through its [N, C] values.
 *
 * bad_* cases: model.onnx must fail to load with an error whose message contains the text of
 * expected_error.txt (trailing whitespace ignored). If the model loads and the case has
 * test_data_set_0, binding its inputs or running must fail that way instead (errors only data can
 * reveal). Either way the case counts as passed or failed.
 *
 * Exclusions file: one case name per line, then optionally `# reason`; blank lines and lines
 * starting with # are ignored. An excluded case still runs (so a stale entry is noticed) but counts
 * as skipped; an entry whose case now passes or does not exist is reported as a stale warning.
 *
 * Output: one line per failure (always), one per case with -v, then a summary ending with exactly
 * "N passed, N failed, N skipped" on its own line. Exit status 1 if any case failed, 2 on usage or
 * I/O errors.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "onnx.pb-c.h"
#include "op.h"
#include "vigil/engine.h"
#include "vigil/tensor_io.h"

#define MODEL_BYTES_CAP ((size_t)1 << 30)
#define REASON_LEN 1024
#define OPS_LEN 256

struct options {
    const char *filter;
    const char *exclusions_path;
    double rtol, atol;
    int64_t int_atol; /* integer outputs may differ by this much */
    int verbose;
};

struct exclusion {
    char *name;
    char *reason;
    int seen;
};

struct exclusions {
    struct exclusion *v;
    size_t n;
};

struct tally {
    int passed, failed, skipped, excluded, stale;
};

enum outcome { CASE_PASS, CASE_FAIL, CASE_SKIP };

/* What a case's failure or skip line says. `ops` lists the case's operators for routing. */
struct verdict {
    char reason[REASON_LEN];
    char ops[OPS_LEN];
};

static enum outcome fail(struct verdict *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum outcome fail(struct verdict *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof v->reason, fmt, ap);
    va_end(ap);
    return CASE_FAIL;
}

static int path_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Reads a whole file (at most `cap` bytes). Caller frees *out. Returns 0 or -1 with errno set. */
static int read_file(const char *path, size_t cap, unsigned char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t size = 0, alloc = 0;
    int rc = -1;

    if (!f)
        return -1;
    for (;;) {
        if (size == alloc) {
            size_t grown = alloc ? alloc * 2 : 65536;
            unsigned char *p;
            if (alloc >= cap) {
                errno = EFBIG;
                goto out;
            }
            if (grown > cap)
                grown = cap;
            p = realloc(buf, grown);
            if (!p)
                goto out;
            buf = p;
            alloc = grown;
        }
        size_t got = fread(buf + size, 1, alloc - size, f);
        size += got;
        if (got == 0) {
            if (ferror(f))
                goto out;
            break;
        }
    }
    *out = buf;
    *len = size;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    fclose(f);
    return rc;
}

/* ---- Exclusions ------------------------------------------------------------------------------ */

static char *trim(char *s)
{
    char *end;
    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
        *--end = '\0';
    return s;
}

static void exclusions_release(struct exclusions *ex)
{
    for (size_t i = 0; i < ex->n; i++) {
        free(ex->v[i].name);
        free(ex->v[i].reason);
    }
    free(ex->v);
    ex->v = NULL;
    ex->n = 0;
}

static int exclusions_load(struct exclusions *ex, const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t line_cap = 0;
    int rc = -1;

    if (!f) {
        fprintf(stderr, "onnx_conformance: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (getline(&line, &line_cap, f) >= 0) {
        char *s = trim(line), *hash, *name_end, *reason = "";
        struct exclusion *grown;

        if (*s == '\0' || *s == '#')
            continue;
        hash = strchr(s, '#');
        if (hash) {
            *hash = '\0';
            reason = trim(hash + 1);
        }
        name_end = s + strcspn(s, " \t");
        *name_end = '\0';
        grown = realloc(ex->v, (ex->n + 1) * sizeof *ex->v);
        if (!grown)
            goto out;
        ex->v = grown;
        ex->v[ex->n].name = strdup(s);
        ex->v[ex->n].reason = strdup(reason);
        ex->v[ex->n].seen = 0;
        ex->n++;
        if (!ex->v[ex->n - 1].name || !ex->v[ex->n - 1].reason)
            goto out;
    }
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "onnx_conformance: %s: out of memory\n", path);
    free(line);
    fclose(f);
    return rc;
}

static struct exclusion *exclusions_find(struct exclusions *ex, const char *name)
{
    for (size_t i = 0; i < ex->n; i++)
        if (strcmp(ex->v[i].name, name) == 0)
            return &ex->v[i];
    return NULL;
}

/* ---- Which operators a model uses ------------------------------------------------------------ */

static const char *norm_domain(const char *d)
{
    return !d || strcmp(d, "ai.onnx") == 0 ? "" : d;
}

static void note_op(struct verdict *v, const char *op_type)
{
    size_t len = strlen(v->ops), n = strlen(op_type);
    const char *p = v->ops;

    /* Listed once each: the string is a comma-separated set. */
    while ((p = strstr(p, op_type)) != NULL) {
        if ((p == v->ops || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return;
        p += n;
    }
    if (len + n + 2 >= sizeof v->ops)
        return;
    if (len)
        v->ops[len++] = ',';
    memcpy(v->ops + len, op_type, n + 1);
}

/* Returns 0 if every node of `g` (and its subgraphs) is registered, else 1 with the skip reason. */
static int check_graph_ops(const Onnx__ModelProto *mp, const Onnx__GraphProto *g, struct verdict *v,
                           int depth)
{
    int missing = 0;

    if (depth > 64)
        return 0;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *nd = g->node[i];
        const char *domain = norm_domain(nd->domain), *op_type = nd->op_type ? nd->op_type : "";
        int64_t opset = -1;

        note_op(v, op_type);
        for (size_t k = 0; k < mp->n_opset_import; k++)
            if (strcmp(norm_domain(mp->opset_import[k]->domain), domain) == 0)
                opset = mp->opset_import[k]->version;
        if (!missing) {
            if (opset < 0) {
                snprintf(v->reason, sizeof v->reason, "no opset import for domain '%s' (%s)",
                         domain, op_type);
                missing = 1;
            } else if (!vg_op_lookup(domain, op_type, opset)) {
                snprintf(v->reason, sizeof v->reason, "%s%s%s opset %" PRId64 " not registered",
                         domain, *domain ? "." : "", op_type, opset);
                missing = 1;
            }
        }
        for (size_t a = 0; a < nd->n_attribute; a++) {
            const Onnx__AttributeProto *at = nd->attribute[a];
            if (at->g && check_graph_ops(mp, at->g, v, depth + 1) && !missing)
                missing = 1;
            for (size_t k = 0; k < at->n_graphs; k++)
                if (check_graph_ops(mp, at->graphs[k], v, depth + 1) && !missing)
                    missing = 1;
        }
    }
    return missing;
}

static int is_initializer(const Onnx__GraphProto *g, const char *name)
{
    for (size_t i = 0; i < g->n_initializer; i++)
        if (g->initializer[i]->name && strcmp(g->initializer[i]->name, name) == 0)
            return 1;
    for (size_t i = 0; i < g->n_sparse_initializer; i++) {
        const Onnx__SparseTensorProto *sp = g->sparse_initializer[i];
        if (sp->values && sp->values->name && strcmp(sp->values->name, name) == 0)
            return 1;
    }
    return 0;
}

/* Name of the n-th graph input that is not an initializer, or NULL. */
static const char *data_input_name(const Onnx__GraphProto *g, int n)
{
    for (size_t i = 0; i < g->n_input; i++) {
        const char *name = g->input[i]->name ? g->input[i]->name : "";
        if (is_initializer(g, name))
            continue;
        if (n-- == 0)
            return name;
    }
    return NULL;
}

/* ---- Comparison ------------------------------------------------------------------------------ */

static int is_float_dtype(enum vg_dtype dt)
{
    return dt == VG_DT_FLOAT || dt == VG_DT_DOUBLE;
}

static double elem_f64(const struct vg_tensor *t, int64_t i)
{
    return t->dtype == VG_DT_FLOAT ? (double)((const float *)t->data)[i]
                                   : ((const double *)t->data)[i];
}

static int64_t elem_i64(const struct vg_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case VG_DT_UINT8: return ((const uint8_t *)t->data)[i];
    case VG_DT_INT8: return ((const int8_t *)t->data)[i];
    case VG_DT_INT32: return ((const int32_t *)t->data)[i];
    case VG_DT_INT64: return ((const int64_t *)t->data)[i];
    case VG_DT_BOOL: return ((const uint8_t *)t->data)[i] != 0;
    default: return 0;
    }
}

static const char *elem_str(const struct vg_tensor *t, int64_t i)
{
    const char *s = ((const char *const *)t->data)[i];
    return s ? s : "";
}

static void format_shape(char *out, size_t cap, const struct vg_tensor *t)
{
    size_t len = 0;
    out[0] = '\0';
    len += (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < t->rank && len < cap; d++)
        len += (size_t)snprintf(out + len, cap - len, "%s%" PRId64, d ? "," : "", t->dims[d]);
    if (len < cap)
        snprintf(out + len, cap - len, "]");
}

static void format_index(char *out, size_t cap, const struct vg_tensor *t, int64_t flat)
{
    int64_t coord[VG_MAX_RANK];
    size_t len = 0;

    for (int d = t->rank - 1; d >= 0; d--) {
        coord[d] = t->dims[d] ? flat % t->dims[d] : 0;
        flat = t->dims[d] ? flat / t->dims[d] : 0;
    }
    out[0] = '\0';
    len += (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < t->rank && len < cap; d++)
        len += (size_t)snprintf(out + len, cap - len, "%s%" PRId64, d ? "," : "", coord[d]);
    if (len < cap)
        snprintf(out + len, cap - len, "]");
}

static int floats_close(double want, double got, double rtol, double atol)
{
    if (isnan(want) || isnan(got))
        return isnan(want) && isnan(got);
    if (isinf(want) || isinf(got))
        return want == got;
    return fabs(got - want) <= atol + rtol * fabs(want);
}

/* Compares one output; on mismatch writes why into v and returns -1. */
static int compare_output(const struct options *o, const char *set_dir, int idx,
                          const char *name, const struct vg_tensor *want,
                          const struct vg_tensor *got, struct verdict *v)
{
    char ws[128], gs[128], where[128];
    int64_t n, bad = 0, first = -1, near = 0;
    double max_diff = 0;

    if (want->dtype != got->dtype) {
        fail(v, "output %d '%s': dtype %s, expected %s", idx, name, vg_dtype_name(got->dtype),
             vg_dtype_name(want->dtype));
        return -1;
    }
    if (want->rank != got->rank ||
        memcmp(want->dims, got->dims, (size_t)want->rank * sizeof want->dims[0]) != 0) {
        format_shape(ws, sizeof ws, want);
        format_shape(gs, sizeof gs, got);
        fail(v, "output %d '%s': shape %s, expected %s", idx, name, gs, ws);
        return -1;
    }
    n = vg_tensor_numel(want);
    if (n > 0 && (!got->data || !want->data)) {
        fail(v, "output %d '%s': no data", idx, name);
        return -1;
    }
    for (int64_t i = 0; i < n; i++) {
        int ok;
        if (is_float_dtype(want->dtype)) {
            double w = elem_f64(want, i), g = elem_f64(got, i);
            ok = floats_close(w, g, o->rtol, o->atol);
            if (!ok && !isnan(w) && !isnan(g) && fabs(g - w) > max_diff)
                max_diff = fabs(g - w);
        } else if (want->dtype == VG_DT_STRING) {
            ok = strcmp(elem_str(want, i), elem_str(got, i)) == 0;
        } else if (o->int_atol > 0 && want->dtype != VG_DT_BOOL) {
            int64_t d = elem_i64(got, i) - elem_i64(want, i);
            d = d < 0 ? -d : d;
            ok = d <= o->int_atol;
            if (ok && d == o->int_atol)
                near++;
        } else {
            ok = elem_i64(want, i) == elem_i64(got, i);
        }
        if (!ok) {
            if (first < 0)
                first = i;
            bad++;
        }
    }
    if (near)
        printf("  %s: output %d '%s': %" PRId64 "/%" PRId64 " elements (%.4f%%) differ by %" PRId64
               "\n", set_dir, idx, name, near, n, 100.0 * (double)near / (double)n, o->int_atol);
    if (!bad)
        return 0;

    format_index(where, sizeof where, want, first);
    if (is_float_dtype(want->dtype)) {
        snprintf(ws, sizeof ws, "%.9g", elem_f64(want, first));
        snprintf(gs, sizeof gs, "%.9g", elem_f64(got, first));
    } else if (want->dtype == VG_DT_STRING) {
        snprintf(ws, sizeof ws, "\"%.60s\"", elem_str(want, first));
        snprintf(gs, sizeof gs, "\"%.60s\"", elem_str(got, first));
    } else {
        snprintf(ws, sizeof ws, "%" PRId64, elem_i64(want, first));
        snprintf(gs, sizeof gs, "%" PRId64, elem_i64(got, first));
    }
    fail(v, "output %d '%s'%s: %" PRId64 "/%" PRId64 " elements differ; first at %s: expected %s got %s",
         idx, name, got->map_keys ? " (map)" : "", bad, n, where, ws, gs);
    if (max_diff > 0) {
        size_t len = strlen(v->reason);
        snprintf(v->reason + len, sizeof v->reason - len, " (max abs diff %.3g)", max_diff);
    }
    return -1;
}

/* ---- Running one data set -------------------------------------------------------------------- */

#define MAX_IO 64

struct data_set {
    struct vg_tensor inputs[MAX_IO];
    int n_inputs;
};

static void data_set_release(struct data_set *ds)
{
    for (int i = 0; i < ds->n_inputs; i++)
        vg_tensor_free_data(&ds->inputs[i]);
    ds->n_inputs = 0;
}

/*
 * Reads and binds set_dir's input_N.pb. Returns 0, or -1 with the failure in v. With `data_err`
 * non-NULL (bad cases), binding errors from the engine go there instead and return 1.
 */
static int bind_inputs(const Onnx__GraphProto *g, const struct vg_model *m, struct vg_session *s,
                       const char *set_dir, struct data_set *ds, struct verdict *v,
                       struct vg_error *data_err)
{
    for (int j = 0;; j++) {
        char file[64], path[4096], *pb_name = NULL;
        struct vg_error err = {0};
        const char *name;
        int idx, rc;

        snprintf(file, sizeof file, "input_%d.pb", j);
        if (path_join(path, sizeof path, set_dir, file) < 0) {
            fail(v, "path too long: %s", set_dir);
            return -1;
        }
        if (!is_file(path))
            return 0;
        if (j >= MAX_IO) {
            fail(v, "more than %d inputs", MAX_IO);
            return -1;
        }
        memset(&ds->inputs[j], 0, sizeof ds->inputs[j]);
        rc = vg_tensor_read_pb(path, &ds->inputs[j], &pb_name, &err);
        if (rc < 0) {
            free(pb_name);
            fail(v, "%s: %s", file, err.msg[0] ? err.msg : vg_strerror(rc));
            return -1;
        }
        ds->n_inputs = j + 1;

        name = data_input_name(g, j);
        idx = name ? vg_model_input_index(m, name) : -1;
        if (idx < 0 && pb_name && *pb_name)
            idx = vg_model_input_index(m, pb_name);
        if (idx < 0) {
            fail(v, "%s: the model has no input '%s'", file,
                 name ? name : (pb_name ? pb_name : ""));
            free(pb_name);
            return -1;
        }
        free(pb_name);
        rc = vg_session_set_input(s, idx, &ds->inputs[j], data_err ? data_err : &err);
        if (rc < 0) {
            if (data_err)
                return 1;
            fail(v, "%s: set_input: %s", file, err.msg[0] ? err.msg : vg_strerror(rc));
            return -1;
        }
    }
}

static int compare_outputs(const struct options *o, const Onnx__GraphProto *g,
                           const struct vg_model *m, const struct vg_session *s,
                           const char *set_dir, struct verdict *v)
{
    int j;

    for (j = 0;; j++) {
        char file[64], path[4096], *pb_name = NULL;
        struct vg_tensor want = {0};
        struct vg_error err = {0};
        const struct vg_tensor *got;
        const char *name;
        int idx, rc;

        snprintf(file, sizeof file, "output_%d.pb", j);
        if (path_join(path, sizeof path, set_dir, file) < 0) {
            fail(v, "path too long: %s", set_dir);
            return -1;
        }
        if (!is_file(path))
            break;
        rc = vg_tensor_read_pb(path, &want, &pb_name, &err);
        if (rc < 0) {
            free(pb_name);
            fail(v, "%s: %s", file, err.msg[0] ? err.msg : vg_strerror(rc));
            return -1;
        }
        name = (size_t)j < g->n_output && g->output[j]->name ? g->output[j]->name : pb_name;
        idx = name ? vg_model_output_index(m, name) : -1;
        if (idx < 0 && j < vg_model_n_outputs(m))
            idx = j;
        got = idx >= 0 ? vg_session_output(s, idx) : NULL;
        if (!got) {
            fail(v, "output %d '%s': missing", j, name ? name : "");
            rc = -1;
        } else {
            rc = compare_output(o, set_dir, j, name ? name : "", &want, got, v);
        }
        vg_tensor_free_data(&want);
        free(pb_name);
        if (rc < 0)
            return -1;
    }
    if (j == 0) {
        fail(v, "no output_0.pb");
        return -1;
    }
    return 0;
}

/* Lists set_dir names (test_data_set_*) in order. Caller frees with free_names. */
static int list_subdirs(const char *dir, const char *prefix, char ***names, int *n)
{
    struct dirent **ents = NULL;
    int count = scandir(dir, &ents, NULL, alphasort), kept = 0, rc = 0;
    char **out;

    *names = NULL;
    *n = 0;
    if (count < 0)
        return -1;
    out = calloc((size_t)count + 1, sizeof *out);
    for (int i = 0; i < count; i++) {
        char path[4096];
        if (out && rc == 0 && strncmp(ents[i]->d_name, prefix, strlen(prefix)) == 0 &&
            path_join(path, sizeof path, dir, ents[i]->d_name) == 0 && is_dir(path)) {
            out[kept] = strdup(ents[i]->d_name);
            if (!out[kept])
                rc = -1;
            else
                kept++;
        }
        free(ents[i]);
    }
    free(ents);
    if (!out || rc) {
        for (int i = 0; out && i < kept; i++)
            free(out[i]);
        free(out);
        return -1;
    }
    *names = out;
    *n = kept;
    return 0;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static Onnx__ModelProto *parse_model(const char *path, struct verdict *v)
{
    unsigned char *bytes = NULL;
    size_t len = 0;
    Onnx__ModelProto *mp;

    if (read_file(path, MODEL_BYTES_CAP, &bytes, &len) < 0) {
        fail(v, "%s: %s", path, strerror(errno));
        return NULL;
    }
    mp = onnx__model_proto__unpack(NULL, len, bytes);
    free(bytes);
    if (!mp)
        fail(v, "model.onnx is not a valid ModelProto");
    else if (!mp->graph) {
        fail(v, "model.onnx has no graph");
        onnx__model_proto__free_unpacked(mp, NULL);
        mp = NULL;
    }
    return mp;
}

static enum outcome run_test_case(const struct options *o, const char *case_dir, struct verdict *v)
{
    char path[4096];
    Onnx__ModelProto *mp = NULL;
    struct vg_model *m = NULL;
    struct vg_session *s = NULL;
    struct vg_error err = {0};
    char **sets = NULL;
    int n_sets = 0, rc;
    enum outcome res = CASE_FAIL;

    if (path_join(path, sizeof path, case_dir, "model.onnx") < 0)
        return fail(v, "path too long");
    mp = parse_model(path, v);
    if (!mp)
        return CASE_FAIL;
    if (check_graph_ops(mp, mp->graph, v, 0)) {
        res = CASE_SKIP;
        goto out;
    }
    rc = vg_engine_load_file(path, &m, &err);
    if (rc < 0) {
        fail(v, "load: %s", err.msg[0] ? err.msg : vg_strerror(rc));
        goto out;
    }
    s = vg_session_new(m);
    if (!s) {
        fail(v, "vg_session_new failed");
        goto out;
    }
    if (list_subdirs(case_dir, "test_data_set_", &sets, &n_sets) < 0) {
        fail(v, "cannot list %s", case_dir);
        goto out;
    }
    if (n_sets == 0) {
        fail(v, "no test_data_set_*");
        goto out;
    }
    for (int k = 0; k < n_sets; k++) {
        struct data_set ds = {0};
        char set_dir[4096];

        if (path_join(set_dir, sizeof set_dir, case_dir, sets[k]) < 0) {
            fail(v, "path too long");
            goto out;
        }
        rc = bind_inputs(mp->graph, m, s, set_dir, &ds, v, NULL);
        if (rc == 0) {
            rc = vg_session_run(s, &err);
            if (rc < 0)
                fail(v, "run: %s", err.msg[0] ? err.msg : vg_strerror(rc));
            else
                rc = compare_outputs(o, mp->graph, m, s, set_dir, v);
        }
        /* Outputs may point into the inputs (strings), so inputs live until compared. */
        data_set_release(&ds);
        if (rc < 0) {
            if (n_sets > 1) {
                size_t len = strlen(v->reason);
                snprintf(v->reason + len, sizeof v->reason - len, " [%s]", sets[k]);
            }
            goto out;
        }
    }
    res = CASE_PASS;
out:
    free_names(sets, n_sets);
    vg_session_free(s);
    vg_model_free(m);
    onnx__model_proto__free_unpacked(mp, NULL);
    return res;
}

static enum outcome run_bad_case(const char *case_dir, struct verdict *v)
{
    char path[4096], set_dir[4096];
    unsigned char *want_bytes = NULL;
    size_t want_len = 0;
    char *want = NULL;
    struct vg_model *m = NULL;
    struct vg_session *s = NULL;
    Onnx__ModelProto *mp = NULL;
    struct vg_error err = {0};
    struct data_set ds = {0};
    enum outcome res = CASE_FAIL;
    int rc;

    if (path_join(path, sizeof path, case_dir, "expected_error.txt") < 0)
        return fail(v, "path too long");
    if (read_file(path, 1 << 16, &want_bytes, &want_len) < 0)
        return fail(v, "expected_error.txt: %s", strerror(errno));
    want = calloc(1, want_len + 1);
    if (!want) {
        fail(v, "out of memory");
        goto out;
    }
    memcpy(want, want_bytes, want_len);
    {
        char *t = trim(want);
        memmove(want, t, strlen(t) + 1);
    }

    if (path_join(path, sizeof path, case_dir, "model.onnx") < 0) {
        fail(v, "path too long");
        goto out;
    }
    /* Bad models may well not parse; the listing only names the operators in the report. */
    {
        struct verdict listing;
        memset(&listing, 0, sizeof listing);
        mp = parse_model(path, &listing);
        if (mp) {
            check_graph_ops(mp, mp->graph, &listing, 0);
            memcpy(v->ops, listing.ops, sizeof v->ops);
        }
    }
    rc = vg_engine_load_file(path, &m, &err);
    if (rc < 0)
        goto check;

    /* Loaded: the error may only show with data, if the case provides some. */
    if (path_join(set_dir, sizeof set_dir, case_dir, "test_data_set_0") < 0 || !is_dir(set_dir)) {
        fail(v, "model loaded; expected an error containing \"%s\"", want);
        goto out;
    }
    if (!mp) {
        fail(v, "model loaded but is not a ModelProto protobuf-c can parse");
        goto out;
    }
    s = vg_session_new(m);
    if (!s) {
        fail(v, "vg_session_new failed");
        goto out;
    }
    rc = bind_inputs(mp->graph, m, s, set_dir, &ds, v, &err);
    if (rc < 0)
        goto out;
    if (rc == 0 && vg_session_run(s, &err) == 0) {
        fail(v, "model loaded and ran; expected an error containing \"%s\"", want);
        goto out;
    }
check:
    if (!strstr(err.msg, want)) {
        fail(v, "error \"%s\" does not contain \"%s\"", err.msg, want);
        goto out;
    }
    res = CASE_PASS;
out:
    data_set_release(&ds);
    vg_session_free(s);
    vg_model_free(m);
    if (mp)
        onnx__model_proto__free_unpacked(mp, NULL);
    free(want);
    free(want_bytes);
    return res;
}

/* ---- Driver ---------------------------------------------------------------------------------- */

static void run_case(const struct options *o, struct exclusions *ex, const char *case_dir,
                     const char *name, struct tally *t)
{
    struct verdict v;
    struct exclusion *e = exclusions_find(ex, name);
    enum outcome res;

    memset(&v, 0, sizeof v);
    if (o->filter && !strstr(name, o->filter))
        return;
    if (e)
        e->seen = 1;
    res = strncmp(name, "bad_", 4) == 0 ? run_bad_case(case_dir, &v) : run_test_case(o, case_dir, &v);

    if (e) {
        t->skipped++;
        t->excluded++;
        if (res == CASE_PASS) {
            t->stale++;
            printf("warning: stale exclusion %s: the case passes now\n", name);
        } else if (o->verbose) {
            printf("EXCL %s: %s\n", name, e->reason[0] ? e->reason : "(no reason given)");
        }
        return;
    }
    switch (res) {
    case CASE_PASS:
        t->passed++;
        if (o->verbose)
            printf("PASS %s\n", name);
        break;
    case CASE_SKIP:
        t->skipped++;
        if (o->verbose)
            printf("SKIP %s: %s\n", name, v.reason);
        break;
    case CASE_FAIL:
        t->failed++;
        if (v.ops[0])
            printf("FAIL %s [%s]: %s\n", name, v.ops, v.reason);
        else
            printf("FAIL %s: %s\n", name, v.reason);
        break;
    }
    fflush(stdout);
}

static int run_dir(const struct options *o, struct exclusions *ex, const char *dir, struct tally *t)
{
    char path[4096];
    char **cases = NULL;
    int n = 0;

    if (path_join(path, sizeof path, dir, "model.onnx") == 0 && is_file(path)) {
        const char *base = strrchr(dir, '/');
        char name[1024];
        snprintf(name, sizeof name, "%s", base && base[1] ? base + 1 : dir);
        run_case(o, ex, dir, name, t);
        return 0;
    }
    for (int pass = 0; pass < 2; pass++) {
        const char *prefix = pass == 0 ? "test_" : "bad_";
        if (list_subdirs(dir, prefix, &cases, &n) < 0) {
            fprintf(stderr, "onnx_conformance: cannot read %s: %s\n", dir, strerror(errno));
            return -1;
        }
        for (int i = 0; i < n; i++) {
            char case_dir[4096];
            if (path_join(case_dir, sizeof case_dir, dir, cases[i]) == 0)
                run_case(o, ex, case_dir, cases[i], t);
        }
        free_names(cases, n);
    }
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: onnx_conformance DIR... [--filter SUBSTR] [--exclusions FILE] "
                    "[--rtol R] [--atol A] [--int-atol N] [-v]\n");
    return 2;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return errno || end == s || *end || *out < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    struct options o = {.rtol = 1e-3, .atol = 1e-7};
    struct exclusions ex = {0};
    struct tally t = {0};
    const char **dirs = calloc((size_t)argc, sizeof *dirs);
    int n_dirs = 0, status = 2;

    if (!dirs)
        return 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            o.verbose = 1;
        } else if (strcmp(a, "--filter") == 0 && i + 1 < argc) {
            o.filter = argv[++i];
        } else if (strcmp(a, "--exclusions") == 0 && i + 1 < argc) {
            o.exclusions_path = argv[++i];
        } else if (strcmp(a, "--rtol") == 0 && i + 1 < argc) {
            if (parse_double(argv[++i], &o.rtol) < 0)
                goto usage;
        } else if (strcmp(a, "--atol") == 0 && i + 1 < argc) {
            if (parse_double(argv[++i], &o.atol) < 0)
                goto usage;
        } else if (strcmp(a, "--int-atol") == 0 && i + 1 < argc) {
            double d;
            if (parse_double(argv[++i], &d) < 0 || d != floor(d) || d > 255)
                goto usage;
            o.int_atol = (int64_t)d;
        } else if (a[0] == '-') {
            goto usage;
        } else {
            dirs[n_dirs++] = a;
        }
    }
    if (n_dirs == 0)
        goto usage;
    if (o.exclusions_path && exclusions_load(&ex, o.exclusions_path) < 0)
        goto out;
    for (int i = 0; i < n_dirs; i++)
        if (run_dir(&o, &ex, dirs[i], &t) < 0)
            goto out;

    for (size_t i = 0; i < ex.n; i++) {
        if (ex.v[i].seen || (o.filter && !strstr(ex.v[i].name, o.filter)))
            continue;
        t.stale++;
        printf("warning: stale exclusion %s: no such case\n", ex.v[i].name);
    }
    if (t.excluded || t.stale)
        printf("%d excluded, %d stale exclusions\n", t.excluded, t.stale);
    printf("%d passed, %d failed, %d skipped\n", t.passed, t.failed, t.skipped);
    status = t.failed ? 1 : 0;
    goto out;
usage:
    status = usage();
out:
    exclusions_release(&ex);
    free(dirs);
    return status;
}
