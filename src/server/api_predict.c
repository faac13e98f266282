/*
 * POST /predict (the default model) and POST /models/{model}/predict: vigil's own JSON API.
 * docs/predict-api.md is the reference: the two body forms, the answers, every error.
 *
 * Request: one row as an object of named features {"sepal_length": 5.1, ...}, or a batch
 * {"instances": [{...}, {...}]}. Every feature of the model must be present exactly once, as a
 * JSON number finite in float32; any other key is refused, by name. (A model with a feature
 * called "instances" reads a one-row body, so its rows stay expressible.)
 *
 * Answer: {"id", "model", "version", "prediction", "probabilities"} for one row,
 * {"id", "model", "version", "predictions": [{"prediction", "probabilities"}, ...]} for a batch.
 * A classifier's prediction is its label output (a JSON string for BYTES labels, a number for
 * INT64 ones; the class with the highest probability when the model has no label output) and
 * its probabilities an object {class: probability} in class order; a regressor's is a number and
 * has no probabilities.
 *
 * Speed: the request is parsed with cJSON, but the answer is written straight into one malloc'd
 * buffer by the JSON writer (jsonw.h: no cJSON tree, floats in their shortest form that reads
 * back as the same float32, capped at VG_JW_MAX_RESPONSE_BYTES), and a batch of up to
 * STACK_VALUES feature values is staged on the stack.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/jsonw.h"
#include "server/server.h"
#include "vigil/drift.h"

#define DEFAULT_MAX_BATCH_ROWS 10000
/* Feature values (rows x features) and features staged on the stack before falling back to
 * malloc. */
#define STACK_VALUES 512
/* Names quoted in one error message before "and N more". */
#define MAX_NAMES_LISTED 8

/* ---- Error messages -------------------------------------------------------------------------- */

struct msg {
    char text[1024];
    size_t len;
};

static void msg_add(struct msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg_add(struct msg *m, const char *fmt, ...)
{
    if (m->len >= sizeof m->text - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m->text + m->len, sizeof m->text - m->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        m->len += (size_t)n < sizeof m->text - m->len ? (size_t)n : sizeof m->text - m->len - 1;
}

/* A client's string as it may appear in a message: at most 64 bytes, control characters as '?'. */
static void msg_quote(struct msg *m, const char *s)
{
    char q[72];
    size_t n = 0;
    for (; n < 64 && s[n]; n++)
        q[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
    q[n] = 0;
    msg_add(m, "'%s%s'", q, s[n] ? "..." : "");
}

/* ---- Reading rows ---------------------------------------------------------------------------- */

/* Lists up to MAX_NAMES_LISTED of names[0..n), leaving out those with skip[j] set (skip may be
 * NULL), then how many more there are. */
static void msg_names(struct msg *msg, const char *const *names, int n, const unsigned char *skip)
{
    int listed = 0, total = 0;
    for (int j = 0; j < n; j++) {
        if (skip && skip[j])
            continue;
        if (listed < MAX_NAMES_LISTED) {
            msg_add(msg, listed ? ", " : "");
            msg_quote(msg, names[j]);
            listed++;
        }
        total++;
    }
    if (total > listed)
        msg_add(msg, " and %d more", total - listed);
}

/*
 * Copies the features of the object `row` into x[0..n_features). `seen` has n_features bytes of
 * scratch. Returns 0, or -1 with the problem in msg (prefixed with `where`, e.g. "instances[3]: ").
 */
static int read_row(const struct vg_served *m, const cJSON *row, float *x, unsigned char *seen,
                    const char *where, struct msg *msg)
{
    int n = m->n_features, n_seen = 0, n_unknown = 0, pos = 0;
    memset(seen, 0, (size_t)n);
    for (const cJSON *it = row->child; it; it = it->next, pos++) {
        const char *key = it->string;
        /* Clients usually send the features in column order: try that column first. */
        int j = pos < n && !strcmp(m->features[pos], key) ? pos : vg_served_feature_index(m, key);
        if (j < 0) {
            n_unknown++;
            continue;
        }
        if (seen[j]) {
            msg_add(msg, "%sfeature ", where);
            msg_quote(msg, key);
            msg_add(msg, " appears more than once");
            return -1;
        }
        seen[j] = 1;
        n_seen++;
        if (!cJSON_IsNumber(it)) {
            msg_add(msg, "%sfeature ", where);
            msg_quote(msg, key);
            msg_add(msg, " must be a number, got %s", vg_json_kind(it));
            if (cJSON_IsString(it)) {
                msg_add(msg, " ");
                msg_quote(msg, it->valuestring);
            }
            return -1;
        }
        float f = (float)it->valuedouble;
        if (!isfinite(f)) {
            msg_add(msg, "%sfeature ", where);
            msg_quote(msg, key);
            msg_add(msg, " = %g is out of the float32 range (largest magnitude 3.40282347e+38)",
                    it->valuedouble);
            return -1;
        }
        x[j] = f;
    }
    if (n_seen == n && n_unknown == 0)
        return 0;
    msg_add(msg, "%s", where);
    if (n_seen < n) {
        msg_add(msg, "missing feature%s ", n - n_seen == 1 ? "" : "s");
        msg_names(msg, m->features, n, seen);
    }
    if (n_unknown) {
        msg_add(msg, "%sunknown key%s ", n_seen < n ? "; " : "", n_unknown == 1 ? "" : "s");
        int listed = 0;
        for (const cJSON *it = row->child; it; it = it->next) {
            if (vg_served_feature_index(m, it->string) >= 0)
                continue;
            if (listed == MAX_NAMES_LISTED) {
                msg_add(msg, " and %d more", n_unknown - listed);
                break;
            }
            msg_add(msg, listed ? ", " : "");
            msg_quote(msg, it->string);
            listed++;
        }
    }
    if (n_unknown) {
        msg_add(msg, " (the model's features: ");
        msg_names(msg, m->features, n, NULL);
        msg_add(msg, ")");
        if (cJSON_GetObjectItemCaseSensitive(row, "image_url") ||
            cJSON_GetObjectItemCaseSensitive(row, "image_b64"))
            msg_add(msg, "; model '%s' is not an image model: it takes features, not images",
                    m->name);
    }
    return -1;
}

/* Text of a parse error position, for "malformed JSON" messages; NaN/Infinity get a hint. */
static void msg_parse_error(struct msg *msg, const char *body, size_t len, const char *at)
{
    size_t pos = at && at >= body && at <= body + len ? (size_t)(at - body) : 0;
    if (len == 0) {
        msg_add(msg, "the request body is empty: send a JSON object of features");
        return;
    }
    char near[24];
    size_t n = 0;
    for (; pos + n < len && n < 20; n++) {
        unsigned char c = (unsigned char)body[pos + n];
        near[n] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
    }
    near[n] = 0;
    msg_add(msg, "malformed JSON at byte %zu", pos);
    if (n)
        msg_add(msg, " near '%s'", near);
    const char *p = body + pos;
    size_t rest = len - pos;
    if (rest && (*p == '-' || *p == '+'))
        p++, rest--;
    if ((rest >= 3 && !strncasecmp(p, "nan", 3)) || (rest >= 3 && !strncasecmp(p, "inf", 3)))
        msg_add(msg, ": NaN and Infinity are not JSON numbers (every feature must be a finite "
                     "number)");
}

/* ---- Writing the answer ---------------------------------------------------------------------- */

struct outputs {
    const float *proba; /* [rows, n_classes] or NULL */
    const struct vg_tensor *label;
    const float *value; /* regression: one per row */
};

static int find_class(const struct vg_served *m, const char *name)
{
    for (int k = 0; k < m->n_classes; k++)
        if (!strcmp(m->classes[k], name))
            return k;
    return -1;
}

/* Writes "prediction": ...[, "probabilities": {...}] for row i and counts its class. Returns the
 * class index (-1 for a regression or a label that names no class). */
static int write_row(struct vg_jw *jw, struct vg_served *m, const struct outputs *y, int64_t i)
{
    vg_jw_lit(jw, "\"prediction\":");
    if (m->task == VG_TASK_REGRESSION) {
        vg_jw_f32(jw, y->value[i]);
        return -1;
    }
    int nc = m->n_classes, k = -1;
    const float *pr = y->proba ? y->proba + i * nc : NULL;
    if (pr) {
        k = 0;
        for (int c = 1; c < nc; c++)
            if (pr[c] > pr[k])
                k = c;
    }
    /* The label names the class; the argmax is only the likely guess of which one it is. */
    if (y->label && y->label->dtype == VG_DT_STRING) {
        const char *label = ((const char *const *)y->label->data)[i];
        if (!label)
            label = "";
        if (k < 0 || strcmp(label, m->classes[k]))
            k = find_class(m, label);
        vg_jw_str(jw, label);
    } else if (y->label) {
        char num[24];
        int n = snprintf(num, sizeof num, "%" PRId64, ((const int64_t *)y->label->data)[i]);
        if (k < 0 || strcmp(num, m->classes[k]))
            k = find_class(m, num);
        vg_jw_mem(jw, num, (size_t)n);
    } else {
        vg_jw_str(jw, m->classes[k]);
    }
    vg_served_count_class(m, k);
    if (!pr)
        return k;
    vg_jw_lit(jw, ",\"probabilities\":{");
    for (int c = 0; c < nc; c++) {
        if (c)
            vg_jw_char(jw, ',');
        vg_jw_str(jw, m->classes[c]);
        vg_jw_char(jw, ':');
        vg_jw_f32(jw, pr[c]);
    }
    vg_jw_char(jw, '}');
    return k;
}

/* Checks the run's outputs have one prediction per row and points y at them. */
static int get_outputs(const struct vg_served *m, const struct vg_session *s, int64_t rows,
                       struct outputs *y, struct msg *msg)
{
    memset(y, 0, sizeof *y);
    if (m->out_proba >= 0) {
        const struct vg_tensor *t = vg_session_output(s, m->out_proba);
        if (!t || t->dtype != VG_DT_FLOAT || t->rank != 2 || t->dims[0] != rows ||
            t->dims[1] != m->n_classes)
            goto bad;
        y->proba = t->data;
    }
    if (m->out_label >= 0) {
        const struct vg_tensor *t = vg_session_output(s, m->out_label);
        if (!t || (t->dtype != VG_DT_STRING && t->dtype != VG_DT_INT64) ||
            vg_tensor_numel(t) != rows)
            goto bad;
        y->label = t;
    }
    if (m->out_value >= 0) {
        const struct vg_tensor *t = vg_session_output(s, m->out_value);
        if (!t || t->dtype != VG_DT_FLOAT || vg_tensor_numel(t) != rows)
            goto bad;
        y->value = t->data;
    }
    if (m->task == VG_TASK_CLASSIFICATION ? !y->proba : !y->value)
        goto bad;
    return 0;
bad:
    msg_add(msg, "model '%s' returned outputs of an unexpected shape for %" PRId64 " rows", m->name,
            rows);
    return -1;
}

/* ---- The handler ----------------------------------------------------------------------------- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void vg_api_predict(struct vg_req *r)
{
    struct vg_store *st = r->store;
    const char *name = r->n_params > 0 ? r->params[0] : st->default_model;
    if (!name) {
        vg_reply_error(r, 503,
                       "no model is loaded, so /predict has no default model (see "
                       "GET /models)");
        return;
    }
    const struct vg_store_entry *e = vg_store_find(st, name);
    if (!e) {
        struct msg msg = {.len = 0};
        msg_add(&msg, "model ");
        msg_quote(&msg, name);
        msg_add(&msg, " not found (see GET /models)");
        vg_reply_error(r, 404, "%s", msg.text);
        return;
    }
    r->log_model = e->name;
    if (!e->loaded) {
        vg_reply_error(r, 503, "model '%s' is not available: it failed to load: %s", e->name,
                       e->reason);
        return;
    }
    struct vg_served *m = e->served;
    r->log_version = m->version_str;
    if (m->image) {
        vg_api_predict_image(r, m);
        return;
    }
    /* http.c lets images through to the prediction routes; a tabular model takes JSON only. */
    if (r->content_type && !vg_media_type_is(r->content_type, "application/json")) {
        vg_served_count(m, VG_OUTCOME_BAD_INPUT, 0);
        vg_reply_error(r, 415,
                       "model '%s' takes a JSON object of features (Content-Type "
                       "application/json), not '%.64s': images are for image classification "
                       "models",
                       m->name, r->content_type);
        return;
    }

    int status = 400;
    enum vg_outcome outcome = VG_OUTCOME_BAD_INPUT;
    struct msg msg = {.len = 0};
    cJSON *doc = NULL;
    struct vg_session *session = NULL;
    float stack_x[STACK_VALUES];
    unsigned char stack_seen[STACK_VALUES];
    int32_t stack_classes[STACK_VALUES];
    float *x = stack_x;
    unsigned char *seen = stack_seen;
    int32_t *classes = NULL; /* each row's predicted class, for the drift monitor */
    struct vg_jw jw;
    vg_jw_init(&jw, VG_JW_MAX_RESPONSE_BYTES);

    const char *end = NULL;
    doc = r->body_len ? cJSON_ParseWithLengthOpts(r->body, r->body_len, &end, 0) : NULL;
    if (!doc) {
        msg_parse_error(&msg, r->body, r->body_len, end);
        goto fail;
    }
    size_t tail = end && end >= r->body ? (size_t)(end - r->body) : r->body_len;
    while (tail < r->body_len && is_space(r->body[tail]))
        tail++;
    if (tail < r->body_len) {
        msg_add(&msg, "malformed JSON: unexpected data after the JSON value at byte %zu", tail);
        goto fail;
    }
    if (!cJSON_IsObject(doc)) {
        msg_add(&msg,
                "the body must be a JSON object of features or {\"instances\": [...]}, "
                "got %s",
                vg_json_kind(doc));
        goto fail;
    }

    /* One row, or a batch: the first row and the row count. */
    const cJSON *instances = cJSON_GetObjectItemCaseSensitive(doc, "instances");
    const cJSON *first = doc;
    int64_t rows = 1;
    int batch = instances && vg_served_feature_index(m, "instances") < 0;
    if (batch) {
        for (const cJSON *it = doc->child; it; it = it->next)
            if (it != instances) {
                msg_add(&msg, "unexpected key ");
                msg_quote(&msg, it->string);
                msg_add(&msg, " beside 'instances' (a batch body is {\"instances\": [...]})");
                goto fail;
            }
        if (!cJSON_IsArray(instances)) {
            msg_add(&msg, "'instances' must be an array of objects, got %s",
                    vg_json_kind(instances));
            goto fail;
        }
        int64_t limit = st->max_batch_rows > 0 ? st->max_batch_rows : DEFAULT_MAX_BATCH_ROWS;
        rows = 0;
        for (const cJSON *it = instances->child; it; it = it->next) {
            if (!cJSON_IsObject(it)) {
                msg_add(&msg, "instances[%" PRId64 "] must be an object of features, got %s", rows,
                        vg_json_kind(it));
                goto fail;
            }
            rows++;
        }
        if (rows == 0) {
            msg_add(&msg, "'instances' is empty: send at least one row");
            goto fail;
        }
        if (rows > limit) {
            status = 413;
            msg_add(&msg,
                    "'instances' has %" PRId64 " rows; the limit is %" PRId64
                    " per request (max_batch_rows)",
                    rows, limit);
            goto fail;
        }
        first = instances->child;
    }
    const struct vg_io_info *in = vg_model_input(m->model, m->input);
    if (in->rank == 2 && in->dims[0] > 0 && in->dims[0] != rows) {
        msg_add(&msg, "model '%s' takes exactly %" PRId64 " row%s per request, got %" PRId64,
                m->name, in->dims[0], in->dims[0] == 1 ? "" : "s", rows);
        goto fail;
    }

    size_t nf = (size_t)m->n_features;
    if ((size_t)rows * nf > STACK_VALUES && !(x = malloc((size_t)rows * nf * sizeof *x)))
        goto oom;
    if (nf > STACK_VALUES && !(seen = malloc(nf)))
        goto oom;
    if (m->drift && m->n_classes > 0 &&
        !(classes = rows <= STACK_VALUES ? stack_classes : malloc((size_t)rows * sizeof *classes)))
        goto oom;
    int64_t i = 0;
    for (const cJSON *row = first; row; row = batch ? row->next : NULL, i++) {
        char where[40] = "";
        if (batch)
            snprintf(where, sizeof where, "instances[%" PRId64 "]: ", i);
        if (read_row(m, row, x + (size_t)i * nf, seen, where, &msg))
            goto fail;
    }

    /* Run. */
    status = 500;
    outcome = VG_OUTCOME_INTERNAL;
    session = vg_served_acquire(m);
    if (!session)
        goto oom;
    struct vg_tensor t = {.dtype = VG_DT_FLOAT, .rank = 2, .dims = {rows, (int64_t)nf}, .data = x};
    struct vg_error err = {0};
    if (vg_session_set_input(session, m->input, &t, &err) || vg_served_run(m, session, &err)) {
        msg_add(&msg, "model '%s' failed: %s", m->name, err.msg[0] ? err.msg : "run failed");
        goto fail;
    }
    struct outputs y;
    if (get_outputs(m, session, rows, &y, &msg))
        goto fail;

    /* Answer. */
    size_t per_row = 32 + (size_t)m->n_classes * 24;
    for (int k = 0; k < m->n_classes; k++)
        per_row += strlen(m->classes[k]);
    size_t estimate = 128 + strlen(r->request_id) + strlen(m->name) + (size_t)rows * per_row;
    vg_jw_reserve(&jw, estimate < jw.max ? estimate : jw.max);
    vg_jw_lit(&jw, "{\"id\":");
    vg_jw_str(&jw, r->request_id);
    vg_jw_lit(&jw, ",\"model\":");
    vg_jw_str(&jw, m->name);
    vg_jw_lit(&jw, ",\"version\":");
    vg_jw_mem(&jw, m->version_str, strlen(m->version_str));
    if (batch) {
        vg_jw_lit(&jw, ",\"predictions\":[");
        for (i = 0; i < rows; i++) {
            if (i)
                vg_jw_char(&jw, ',');
            vg_jw_char(&jw, '{');
            int k = write_row(&jw, m, &y, i);
            if (classes)
                classes[i] = k;
            vg_jw_char(&jw, '}');
        }
        vg_jw_char(&jw, ']');
    } else {
        vg_jw_char(&jw, ',');
        int k = write_row(&jw, m, &y, 0);
        if (classes)
            classes[0] = k;
    }
    vg_jw_char(&jw, '}');
    size_t len;
    char *body = vg_jw_take(&jw, &len);
    if (!body) {
        msg_add(&msg, "the response is larger than %zu MiB or memory ran out",
                VG_JW_MAX_RESPONSE_BYTES >> 20);
        goto fail;
    }
    vg_feedback_record(r, m, session, r->request_id, rows, batch); /* while outputs are valid */
    vg_served_release(m, session);
    session = NULL;
    vg_served_count(m, VG_OUTCOME_SUCCESS, rows);
    if (m->drift)
        vg_drift_observe(m->drift, x, rows, classes);
    vg_reply_raw(r, 200, "application/json", body, len);
    goto out;

oom:
    status = 500;
    outcome = VG_OUTCOME_INTERNAL;
    msg.len = 0;
    msg_add(&msg, "out of memory");
fail:
    vg_served_release(m, session);
    session = NULL;
    vg_served_count(m, outcome, 0);
    vg_reply_error(r, status, "%s", msg.text);
out:
    vg_jw_release(&jw);
    if (x != stack_x)
        free(x);
    if (seen != stack_seen)
        free(seen);
    if (classes != stack_classes)
        free(classes);
    cJSON_Delete(doc);
}
