/*
 * What `vigil load` sends: the model's description from GET /models/{model} (features, classes
 * and the training reference of config.json, docs/model-repository.md), feature values drawn
 * from that reference or taken from the rows of a CSV file (--data), and pools of complete HTTP
 * requests built once before the run, so the sending loop only copies bytes and writes the
 * request id.
 *
 * Drawing a value: a bin is picked with probability bin_shares[b], then a value uniformly
 * between bin_edges[b] and bin_edges[b + 1] (a bin whose edges are equal gives that value).
 * The draws thus follow the training deciles, within [min, max]. Drift requests add
 * shift * std (the reference's population standard deviation) to the drift features.
 *
 * With --data, the valid kinds have one request per row of the file, in order (the pool is
 * "cycled": request seq sends row seq % n_rows), so each answer's true label is known; drift
 * requests are the same rows with the drift features shifted as above; the invalid kinds take
 * their rows from the file too. The CSV is read by the training reader (src/train/csv.c), so
 * its rules and messages are those of `vigil train`. Values are the float32 numbers the model
 * sees, printed with 9 significant digits: they read back exactly.
 *
 * Random numbers: splitmix64 (Steele, Lea and Flood's mixing function), seeded by --seed, so the
 * same options give the same bodies.
 */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/load.h"
#include "vigil/train.h"

const struct vg_kind_info vg_load_kinds[VG_KIND_COUNT] = {
    [VG_KIND_NORMAL] = {"normal", 200, 1},
    [VG_KIND_DRIFT] = {"drift", 200, 1},
    [VG_KIND_MALFORMED] = {"malformed_json", 400, 0},
    [VG_KIND_MISSING] = {"missing_feature", 400, 0},
    [VG_KIND_STRING] = {"string_value", 400, 0},
    [VG_KIND_UNKNOWN_MODEL] = {"unknown_model", 404, 0},
    [VG_KIND_WRONG_METHOD] = {"wrong_method", 405, 0},
    [VG_KIND_EMPTY_BODY] = {"empty_body", 400, 0},
    [VG_KIND_UNAVAILABLE] = {"unavailable_model", 503, 0},
    [VG_KIND_RAW] = {"raw", 200, 1},
    [VG_KIND_FEEDBACK] = {"feedback", 200, 0},
};

/* ---- the model ---------------------------------------------------------------------------- */

void vg_load_model_release(struct vg_load_model *m)
{
    for (int i = 0; i < m->n_features && m->features; i++)
        free(m->features[i].name);
    free(m->features);
    for (int i = 0; i < m->n_classes && m->classes; i++)
        free(m->classes[i]);
    free(m->classes);
    free(m->name);
    memset(m, 0, sizeof *m);
}

/* n numbers of a JSON array into out; -1 when it is not exactly that. */
static int numbers(const cJSON *a, double *out, int n)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return -1;
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a)
    {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
            return -1;
        out[i++] = x->valuedouble;
    }
    return 0;
}

static int number_field(const cJSON *o, const char *key, double *out)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
        return -1;
    *out = x->valuedouble;
    return 0;
}

static int feature_dist(const cJSON *ref, struct vg_feature_dist *f, char *msg, size_t cap)
{
    double shares[VG_REF_BINS];
    if (!cJSON_IsObject(ref)) {
        snprintf(msg, cap, "the reference has no entry for feature '%s'", f->name);
        return -1;
    }
    if (numbers(cJSON_GetObjectItemCaseSensitive(ref, "bin_edges"), f->edges, VG_REF_BINS + 1) ||
        numbers(cJSON_GetObjectItemCaseSensitive(ref, "bin_shares"), shares, VG_REF_BINS) ||
        number_field(ref, "mean", &f->mean) || number_field(ref, "std", &f->std) ||
        number_field(ref, "min", &f->min) || number_field(ref, "max", &f->max)) {
        snprintf(msg, cap,
                 "the reference of feature '%s' lacks %d bin_edges, %d bin_shares, mean, std, "
                 "min or max",
                 f->name, VG_REF_BINS + 1, VG_REF_BINS);
        return -1;
    }
    double total = 0;
    for (int b = 0; b < VG_REF_BINS; b++) {
        if (shares[b] < 0 || f->edges[b + 1] < f->edges[b]) {
            snprintf(msg, cap,
                     "the reference of feature '%s' has a negative share or decreasing "
                     "edges",
                     f->name);
            return -1;
        }
        total += shares[b];
    }
    if (!(total > 0)) {
        snprintf(msg, cap, "the reference of feature '%s' has no rows", f->name);
        return -1;
    }
    double run = 0;
    for (int b = 0; b < VG_REF_BINS; b++) {
        run += shares[b];
        f->cum[b] = run / total;
    }
    f->cum[VG_REF_BINS - 1] = 1.0;
    return 0;
}

static char *string_of(const cJSON *x)
{
    return cJSON_IsString(x) && x->valuestring ? strdup(x->valuestring) : NULL;
}

int vg_load_model_parse(const char *json, const char *name, struct vg_load_model *m, char *msg,
                        size_t msg_cap)
{
    return vg_load_model_parse_opt(json, name, 1, m, msg, msg_cap);
}

int vg_load_model_parse_opt(const char *json, const char *name, int need_reference,
                            struct vg_load_model *m, char *msg, size_t msg_cap)
{
    int rc = -1;
    memset(m, 0, sizeof *m);
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        snprintf(msg, msg_cap, "GET /models/%s did not answer a JSON object", name);
        goto out;
    }
    m->name = strdup(name);
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(root, "task");
    const cJSON *features = cJSON_GetObjectItemCaseSensitive(root, "features");
    const cJSON *classes = cJSON_GetObjectItemCaseSensitive(root, "classes");
    if (!cJSON_IsString(task) || !cJSON_IsArray(features) || cJSON_GetArraySize(features) < 1) {
        snprintf(msg, msg_cap, "GET /models/%s: no \"task\" or \"features\" in the answer", name);
        goto out;
    }
    m->classification = !strcmp(task->valuestring, "classification");
    if (!m->classification && strcmp(task->valuestring, "regression")) {
        snprintf(msg, msg_cap, "GET /models/%s: unknown task '%s'", name, task->valuestring);
        goto out;
    }
    const cJSON *reference = cJSON_GetObjectItemCaseSensitive(root, "reference");
    const cJSON *ref_features = cJSON_GetObjectItemCaseSensitive(reference, "features");
    int have_reference = cJSON_IsObject(reference) && cJSON_IsObject(ref_features);
    if (!have_reference && need_reference) {
        snprintf(msg, msg_cap,
                 "model '%s' has no training reference (GET /models/%s has no \"reference\" "
                 "with \"features\"): vigil load draws its feature values from it. Write one "
                 "with `vigil reference` (or train the model with `vigil train`), send rows of a "
                 "CSV file with --data, or a fixed body with --body FILE --path PATH",
                 name, name);
        goto out;
    }
    int nf = cJSON_GetArraySize(features);
    m->features = calloc((size_t)nf, sizeof *m->features);
    if (!m->name || !m->features) {
        snprintf(msg, msg_cap, "out of memory");
        goto out;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, features)
    {
        struct vg_feature_dist *d = &m->features[m->n_features];
        if (!(d->name = string_of(f))) {
            snprintf(msg, msg_cap, "GET /models/%s: a feature name is not a string", name);
            goto out;
        }
        m->n_features++;
        if (have_reference &&
            feature_dist(cJSON_GetObjectItemCaseSensitive(ref_features, d->name), d, msg, msg_cap))
            goto out;
    }
    if (m->classification) {
        int nc = cJSON_IsArray(classes) ? cJSON_GetArraySize(classes) : 0;
        if (nc < 1) {
            snprintf(msg, msg_cap, "GET /models/%s: a classifier without \"classes\"", name);
            goto out;
        }
        m->classes = calloc((size_t)nc, sizeof *m->classes);
        if (!m->classes) {
            snprintf(msg, msg_cap, "out of memory");
            goto out;
        }
        const cJSON *c;
        cJSON_ArrayForEach(c, classes)
        {
            if (!(m->classes[m->n_classes] = string_of(c))) {
                snprintf(msg, msg_cap, "GET /models/%s: a class name is not a string", name);
                goto out;
            }
            m->n_classes++;
        }
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

/* ---- rows of a CSV file (--data) ---------------------------------------------------------- */

void vg_load_data_release(struct vg_load_data *d)
{
    free(d->x);
    free(d->label_class);
    free(d->label_value);
    memset(d, 0, sizeof *d);
}

/* Mean, population std, min and max of column j: a model without a reference shifts drift rows
 * by the data's own std. */
static void data_moments(const struct vg_load_data *d, int j, struct vg_feature_dist *f)
{
    double sum = 0, ss = 0;
    f->min = f->max = d->x[j];
    for (int i = 0; i < d->n_rows; i++) {
        double v = d->x[(size_t)i * d->n_features + j];
        sum += v;
        f->min = v < f->min ? v : f->min;
        f->max = v > f->max ? v : f->max;
    }
    f->mean = sum / d->n_rows;
    for (int i = 0; i < d->n_rows; i++) {
        double v = d->x[(size_t)i * d->n_features + j] - f->mean;
        ss += v * v;
    }
    f->std = sqrt(ss / d->n_rows);
}

int vg_load_data_read(struct vg_load_model *m, const char *path, const char *target,
                      struct vg_load_data *d, char *msg, size_t msg_cap)
{
    int rc = -1;
    struct vg_dataset ds = {0};
    struct vg_error err = {0};
    const char **names = calloc((size_t)m->n_features, sizeof *names);
    memset(d, 0, sizeof *d);
    if (!names) {
        snprintf(msg, msg_cap, "out of memory");
        goto out;
    }
    for (int j = 0; j < m->n_features; j++)
        names[j] = m->features[j].name;
    if (vg_dataset_read_csv_select(path, target, names, m->n_features,
                                   m->classification ? VG_TASK_CLASSIFICATION : VG_TASK_REGRESSION,
                                   VG_IMPUTE_NONE, &ds, &err)) {
        snprintf(msg, msg_cap, "--data: %s", err.msg);
        goto out;
    }
    d->n_rows = ds.n_rows;
    d->n_features = ds.n_features;
    d->x = ds.x;
    ds.x = NULL;
    if (target && m->classification) {
        /* the file's classes by name among the model's */
        int32_t *model_class = calloc((size_t)ds.n_classes, sizeof *model_class);
        d->label_class = calloc((size_t)ds.n_rows, sizeof *d->label_class);
        if (!model_class || !d->label_class) {
            free(model_class);
            snprintf(msg, msg_cap, "out of memory");
            goto out;
        }
        for (int c = 0; c < ds.n_classes; c++) {
            model_class[c] = -1;
            for (int k = 0; k < m->n_classes && model_class[c] < 0; k++)
                if (!strcmp(ds.class_names[c], m->classes[k]))
                    model_class[c] = k;
            if (model_class[c] < 0) {
                snprintf(msg, msg_cap,
                         "--data %s: column '%s' holds '%.100s', which is not a class of model "
                         "'%s'",
                         path, target, ds.class_names[c], m->name);
                free(model_class);
                goto out;
            }
        }
        for (int i = 0; i < ds.n_rows; i++)
            d->label_class[i] = model_class[ds.y_class[i]];
        free(model_class);
        d->has_labels = 1;
    } else if (target) {
        d->label_value = ds.y_value;
        ds.y_value = NULL;
        d->has_labels = 1;
    }
    for (int j = 0; j < m->n_features; j++)
        if (m->features[j].cum[VG_REF_BINS - 1] == 0) /* no reference: the data's moments */
            data_moments(d, j, &m->features[j]);
    rc = 0;
out:
    free(names);
    vg_dataset_release(&ds);
    return rc;
}

/* ---- drawing values ----------------------------------------------------------------------- */

static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *state)
{
    return (double)(next_random(state) >> 11) * 0x1p-53;
}

static double draw(const struct vg_feature_dist *f, uint64_t *state)
{
    double r = uniform(state);
    int b = 0;
    while (b < VG_REF_BINS - 1 && f->cum[b] <= r)
        b++;
    return f->edges[b] + uniform(state) * (f->edges[b + 1] - f->edges[b]);
}

/* ---- building requests -------------------------------------------------------------------- */

struct bytes {
    char *data;
    size_t len, cap;
    int failed;
};

static void put(struct bytes *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void puts_(struct bytes *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_json_str(struct bytes *b, const char *s)
{
    put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(b, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            puts_(b, e);
        } else {
            put(b, (const char *)&c, 1);
        }
    }
    put(b, "\"", 1);
}

static void put_num(struct bytes *b, double v)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%.9g", v);
    puts_(b, tmp);
}

/* How a row body deviates from a valid one. */
enum row_flaw { ROW_OK, ROW_CUT, ROW_NAN, ROW_TRAILING_COMMA, ROW_MISSING, ROW_STRING };

/* A one-row body: every feature drawn (or taken from `row` when not NULL), shifted when drift,
 * with a flaw on feature `which`. */
static void put_row(struct bytes *b, const struct vg_load_model *m, const float *row, int drift,
                    double shift, enum row_flaw flaw, int which, uint64_t *rng)
{
    size_t start = b->len;
    int first = 1;
    put(b, "{", 1);
    for (int j = 0; j < m->n_features; j++) {
        const struct vg_feature_dist *f = &m->features[j];
        double v = row ? row[j] : draw(f, rng);
        if (drift && f->drift)
            v += shift * f->std;
        if (flaw == ROW_MISSING && j == which)
            continue;
        if (!first)
            put(b, ",", 1);
        first = 0;
        put_json_str(b, f->name);
        put(b, ":", 1);
        if (flaw == ROW_NAN && j == which) {
            puts_(b, "NaN");
        } else if (flaw == ROW_STRING && j == which) {
            put(b, "\"", 1);
            put_num(b, v);
            put(b, "\"", 1);
        } else {
            put_num(b, v);
        }
    }
    if (flaw == ROW_TRAILING_COMMA)
        put(b, ",", 1);
    if (flaw != ROW_CUT)
        put(b, "}", 1);
    else if (b->len - start > 2)
        b->len--; /* cut inside the last value, after dropping the brace */
}

struct pool_builder {
    struct bytes bytes;
    struct vg_req_pool *pool;
    int n;
};

static int pool_start(struct pool_builder *pb, struct vg_req_pool *p, int n)
{
    memset(p, 0, sizeof *p);
    memset(pb, 0, sizeof *pb);
    pb->pool = p;
    p->off = calloc((size_t)n, sizeof *p->off);
    p->len = calloc((size_t)n, sizeof *p->len);
    p->id_off = calloc((size_t)n, sizeof *p->id_off);
    return p->off && p->len && p->id_off ? 0 : -1;
}

static const char id_placeholder[] = "load-000000-00000000000";

/* Appends one request: METHOD base+path, body (NULL: none) of the given content type. */
static void pool_add(struct pool_builder *pb, const struct vg_url *u, const char *method,
                     const char *path, const char *body, size_t body_len, const char *ctype)
{
    struct vg_req_pool *p = pb->pool;
    struct bytes *b = &pb->bytes;
    size_t start = b->len;
    puts_(b, method);
    puts_(b, " ");
    puts_(b, u->base);
    puts_(b, path);
    puts_(b, " HTTP/1.1\r\nHost: ");
    puts_(b, u->authority);
    puts_(b, "\r\nX-Request-Id: ");
    size_t id_off = b->len - start;
    puts_(b, id_placeholder);
    puts_(b, "\r\n");
    if (body) {
        char cl[64];
        snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", body_len);
        puts_(b, "Content-Type: ");
        puts_(b, ctype);
        puts_(b, "\r\n");
        puts_(b, cl);
    }
    puts_(b, "\r\n");
    if (body)
        put(b, body, body_len);
    if (b->failed)
        return;
    p->off[p->n] = (uint32_t)start;
    p->len[p->n] = (uint32_t)(b->len - start);
    p->id_off[p->n] = (uint32_t)id_off;
    if (p->len[p->n] > p->max_len)
        p->max_len = p->len[p->n];
    p->n++;
}

/* Hands the bytes to the pool; on failure frees them. Either way pb holds no bytes after. */
static int pool_finish(struct pool_builder *pb, char *msg, size_t cap)
{
    int failed = pb->bytes.failed || pb->bytes.len > UINT32_MAX;
    if (failed) {
        free(pb->bytes.data);
        snprintf(msg, cap, "out of memory building the requests");
    } else {
        pb->pool->bytes = pb->bytes.data;
    }
    pb->bytes.data = NULL;
    return failed ? -1 : 0;
}

void vg_req_pool_release(struct vg_req_pool *p)
{
    free(p->bytes);
    free(p->off);
    free(p->len);
    free(p->id_off);
    free(p->id2_off);
    memset(p, 0, sizeof *p);
}

int vg_req_pool_pick(const struct vg_req_pool *p, uint64_t seq)
{
    if (p->cycle)
        return (int)(seq % (uint64_t)p->n);
    return (int)(((seq * 0x9e3779b97f4a7c15ULL) >> 32) % (uint64_t)p->n);
}

const char *vg_req_pool_body(const struct vg_req_pool *p, int i, size_t *len)
{
    const char *req = p->bytes + p->off[i];
    const char *end = req + p->len[i];
    for (const char *c = req; c + 3 < end; c++)
        if (!memcmp(c, "\r\n\r\n", 4)) {
            *len = (size_t)(end - (c + 4));
            return c + 4;
        }
    *len = 0;
    return end;
}

void vg_load_run_tag(char tag[VG_LOAD_TAG_LEN])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t state = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    state ^= (uint64_t)getpid() << 40;
    uint64_t r = next_random(&state);
    for (int i = 0; i < VG_LOAD_TAG_LEN; i++, r /= 36)
        tag[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[r % 36];
}

void vg_load_format_id(char out[VG_LOAD_ID_LEN], const char *prefix,
                       const char tag[VG_LOAD_TAG_LEN], uint64_t seq)
{
    memcpy(out, prefix, 4);
    out[4] = '-';
    memcpy(out + 5, tag, VG_LOAD_TAG_LEN);
    out[5 + VG_LOAD_TAG_LEN] = '-';
    for (int i = VG_LOAD_ID_LEN - 1; i > 5 + VG_LOAD_TAG_LEN; i--) {
        out[i] = (char)('0' + seq % 10);
        seq /= 10;
    }
}

int vg_load_build_pools(const struct vg_load_model *m, const struct vg_url *u,
                        const struct vg_body_params *bp, struct vg_req_pool pools[VG_KIND_COUNT],
                        char *msg, size_t msg_cap)
{
    static const char json[] = "application/json";
    static const enum row_flaw malformed[] = {ROW_CUT, ROW_NAN, ROW_TRAILING_COMMA};
    uint64_t rng = bp->seed;
    struct bytes row = {0};
    struct pool_builder pb = {0};
    int rc = -1;
    int last = bp->unavailable_path ? VG_KIND_UNAVAILABLE : VG_KIND_EMPTY_BODY;
    const struct vg_load_data *d = bp->data;
    for (int k = VG_KIND_NORMAL; k <= last; k++) {
        int valid = vg_load_kinds[k].valid;
        int n = valid ? bp->pool_valid : bp->pool_error;
        if (d && valid)
            n = d->n_rows; /* one per row, sent in order */
        if (k == VG_KIND_WRONG_METHOD || k == VG_KIND_EMPTY_BODY)
            n = 1;
        if (pool_start(&pb, &pools[k], n)) {
            snprintf(msg, msg_cap, "out of memory building the requests");
            goto out;
        }
        pools[k].cycle = d && valid;
        for (int i = 0; i < n; i++) {
            row.len = 0;
            int which = i % m->n_features;
            const float *x = d ? d->x + (size_t)(i % d->n_rows) * d->n_features : NULL;
            switch ((enum vg_load_kind)k) {
            case VG_KIND_NORMAL:
            case VG_KIND_UNKNOWN_MODEL:
            case VG_KIND_UNAVAILABLE: put_row(&row, m, x, 0, 0, ROW_OK, 0, &rng); break;
            case VG_KIND_DRIFT: put_row(&row, m, x, 1, bp->drift_shift, ROW_OK, 0, &rng); break;
            case VG_KIND_MALFORMED: put_row(&row, m, x, 0, 0, malformed[i % 3], which, &rng); break;
            case VG_KIND_MISSING: put_row(&row, m, x, 0, 0, ROW_MISSING, which, &rng); break;
            case VG_KIND_STRING: put_row(&row, m, x, 0, 0, ROW_STRING, which, &rng); break;
            default: break;
            }
            if (row.failed) {
                snprintf(msg, msg_cap, "out of memory building the requests");
                goto out;
            }
            if (k == VG_KIND_WRONG_METHOD)
                pool_add(&pb, u, "GET", bp->path, NULL, 0, NULL);
            else if (k == VG_KIND_EMPTY_BODY)
                pool_add(&pb, u, "POST", bp->path, "", 0, json);
            else
                pool_add(&pb, u, "POST",
                         k == VG_KIND_UNKNOWN_MODEL ? bp->unknown_path
                         : k == VG_KIND_UNAVAILABLE ? bp->unavailable_path
                                                    : bp->path,
                         row.data, row.len, json);
        }
        if (pool_finish(&pb, msg, msg_cap))
            goto out;
    }
    rc = 0;
out:
    free(pb.bytes.data);
    free(row.data);
    return rc;
}

int vg_load_build_feedback_pool(const struct vg_load_model *m, const struct vg_load_data *d,
                                const struct vg_url *u, const char *path, struct vg_req_pool *pool,
                                char *msg, size_t msg_cap)
{
    struct pool_builder pb;
    struct bytes body = {0};
    int n = m->classification ? m->n_classes : d->n_rows;
    int rc = -1;
    if (pool_start(&pb, pool, n) || !(pool->id2_off = calloc((size_t)n, sizeof *pool->id2_off))) {
        snprintf(msg, msg_cap, "out of memory building the feedback requests");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        body.len = 0;
        puts_(&body, "{\"id\":\"");
        size_t id2 = body.len;
        puts_(&body, id_placeholder);
        puts_(&body, "\",\"label\":");
        if (m->classification) {
            put_json_str(&body, m->classes[i]);
        } else {
            char num[40];
            snprintf(num, sizeof num, "%.17g", d->label_value[i]);
            puts_(&body, num);
        }
        puts_(&body, "}");
        if (body.failed) {
            snprintf(msg, msg_cap, "out of memory building the feedback requests");
            goto out;
        }
        pool_add(&pb, u, "POST", path, body.data, body.len, "application/json");
        if (pool->n == i + 1) /* the body is the end of the request */
            pool->id2_off[i] = pool->len[i] - (uint32_t)(body.len - id2);
    }
    rc = pool_finish(&pb, msg, msg_cap);
out:
    free(pb.bytes.data);
    free(body.data);
    return rc;
}

int vg_load_build_raw_pool(const struct vg_url *u, const char *method, const char *path,
                           const char *body, size_t body_len, const char *content_type,
                           struct vg_req_pool *pool, char *msg, size_t msg_cap)
{
    struct pool_builder pb;
    if (pool_start(&pb, pool, 1)) {
        snprintf(msg, msg_cap, "out of memory building the request");
        return -1;
    }
    if (!body)
        content_type = NULL;
    pool_add(&pb, u, method, path, body, body_len, content_type);
    return pool_finish(&pb, msg, msg_cap);
}
