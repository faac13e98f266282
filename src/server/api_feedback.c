/*
 * Ground-truth feedback: every successful prediction is kept in the prediction store, and
 * POST /feedback or POST /v2/models/{model}/feedback later says what the truth was. The user's
 * pages are docs/predict-api.md and docs/v2-api.md ("Feedback"); docs/monitoring.md ("Model
 * quality: ground-truth feedback") explains the metrics.
 *
 * State: one struct vg_feedback per server (store->feedback), made by vg_feedback_attach when
 * the server starts with --feedback on and freed by vg_feedback_detach when it has stopped: the
 * prediction store (include/vigil/feedback.h: --feedback-store predictions, a ring with sharded
 * index, no global lock), the rejection counters, and per loaded model version one struct
 * vg_feedback_model (m->feedback) holding its metric handles and its live-accuracy window
 * (--live-accuracy-window feedbacks). Every series is bound there, before the first request, so
 * a request only updates handles.
 *
 * Recording (vg_feedback_record, on the prediction path): after a prediction's answer is built
 * and before its session goes back to the pool, each row's predicted class index (resolved from
 * the label output as /predict does; the highest probability without one) or predicted value is
 * put under the answer's id: the id itself for one row, "<id>/<i>" for row i of a batch. Ids
 * longer than VG_FEEDBACK_MAX_ID bytes are not kept.
 *
 * Feedback: each item {"id", "label"} is looked up (404 unknown or evicted; on the /v2 route, 404
 * when another model made it), its label checked against the model (400), then claimed: one
 * claim per prediction succeeds, every later one is 409, even when they race. Only then is it
 * counted: vigil_feedback_total{outcome}, the live-accuracy window and its gauges (classifiers),
 * the absolute-error histogram (regressors). Refusals count in vigil_feedback_rejected_total.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/jsonw.h"
#include "server/server.h"
#include "vigil/feedback.h"

#define DEFAULT_MAX_BATCH_ROWS 10000
/* Bytes of a client's string quoted in a message. */
#define QUOTE_MAX 96
/* Classes listed in a message before "and N more". */
#define MAX_CLASSES_LISTED 8

enum reason { REASON_UNKNOWN, REASON_EVICTED, REASON_DUPLICATE, REASON_INVALID, N_REASONS };
static const char *const reason_names[N_REASONS] = {"unknown", "evicted", "duplicate", "invalid"};

/* Bounds of vigil_feedback_absolute_error: |label - prediction| in the target's own unit, 1-2.5-5
 * steps from 0.001 to 10,000, so targets from fractions to thousands get a usable resolution. */
static const double abs_error_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5,   1,      2.5,   5,    10,    25,   50,  100,
                                          250,   500,    1000,  2500, 5000,  10000};

struct vg_feedback_model {
    struct vg_served *m;
    uint32_t index; /* in vg_feedback.models: the owner of its predictions */
    struct vg_counter *correct, *incorrect; /* classification */
    struct vg_counter *received;            /* regression */
    struct vg_histogram *abs_error;         /* regression */
    struct vg_live_accuracy window;         /* classification; window.bits NULL otherwise */
};

struct vg_feedback {
    struct vg_feedback_store *store;
    size_t capacity;
    struct vg_counter *rejected[N_REASONS];
    int n_models;
    struct vg_feedback_model *models; /* one per store entry; unused for failed ones */
};

/* ---- Start and stop -------------------------------------------------------------------------- */

static int attach_fail(struct vg_error *err, int rc, const char *what)
{
    if (err) {
        err->code = rc < 0 ? -rc : rc;
        snprintf(err->msg, sizeof err->msg, "feedback: %s: %s", what, vg_strerror(rc));
    }
    return rc;
}

static void feedback_free(struct vg_feedback *fb)
{
    if (!fb)
        return;
    for (int i = 0; i < fb->n_models; i++)
        vg_live_accuracy_release(&fb->models[i].window);
    free(fb->models);
    vg_feedback_store_free(fb->store);
    free(fb);
}

/* Binds the series of one model version. */
static int bind_model(struct vg_feedback_model *fm, struct vg_served *m, struct vg_family *total,
                      struct vg_family *accuracy, struct vg_family *feedbacks,
                      struct vg_family *abs_error, uint32_t window)
{
    const char *mv[] = {m->name, m->version_str};
    int rc;
    fm->m = m;
    if (m->task == VG_TASK_REGRESSION) {
        const char *received[] = {m->name, m->version_str, "received"};
        if ((rc = vg_counter_bind(total, received, &fm->received)) ||
            (rc = vg_histogram_bind(abs_error, mv, &fm->abs_error)))
            return rc;
        return 0;
    }
    const char *correct[] = {m->name, m->version_str, "correct"};
    const char *incorrect[] = {m->name, m->version_str, "incorrect"};
    struct vg_gauge *acc, *n;
    if ((rc = vg_counter_bind(total, correct, &fm->correct)) ||
        (rc = vg_counter_bind(total, incorrect, &fm->incorrect)) ||
        (rc = vg_gauge_bind(accuracy, mv, &acc)) || (rc = vg_gauge_bind(feedbacks, mv, &n)))
        return rc;
    return vg_live_accuracy_init(&fm->window, window, acc, n);
}

int vg_feedback_attach(struct vg_store *st, const struct vg_server_config *cfg,
                       struct vg_registry *reg, struct vg_error *err)
{
    static const char *const mv[] = {"model", "version", NULL};
    static const char *const mvo[] = {"model", "version", "outcome", NULL};
    static const char *const r[] = {"reason", NULL};
    if (!cfg->feedback) {
        vg_log("info", "ground-truth feedback is off (--feedback off)");
        return 0;
    }
    struct vg_family *total, *rejected, *accuracy, *feedbacks, *abs_error;
    int rc;
    if ((rc = vg_counter_register(reg, "vigil_feedback_total",
                                  "Ground-truth feedbacks accepted, by outcome: correct or "
                                  "incorrect (classification), received (regression).",
                                  mvo, &total, err)) ||
        (rc = vg_counter_register(reg, "vigil_feedback_rejected_total",
                                  "Feedbacks refused, by reason: unknown (no such prediction, or "
                                  "another model's on the /v2 route), evicted (no longer in the "
                                  "prediction store), duplicate (feedback given already), invalid "
                                  "(malformed body, bad id or label).",
                                  r, &rejected, err)) ||
        (rc = vg_gauge_register(reg, "vigil_live_accuracy",
                                "Share of correct predictions among the last "
                                "--live-accuracy-window feedbacks (classification); NaN before "
                                "the first.",
                                mv, &accuracy, err)) ||
        (rc = vg_gauge_register(reg, "vigil_live_accuracy_feedbacks",
                                "Feedbacks that vigil_live_accuracy covers (at most "
                                "--live-accuracy-window).",
                                mv, &feedbacks, err)) ||
        (rc = vg_histogram_register(reg, "vigil_feedback_absolute_error",
                                    "Absolute error |label - prediction| of regression "
                                    "predictions that received feedback.",
                                    mv, abs_error_bounds,
                                    sizeof abs_error_bounds / sizeof abs_error_bounds[0],
                                    &abs_error, err)))
        return rc;

    struct vg_feedback *fb = calloc(1, sizeof *fb);
    if (!fb)
        return attach_fail(err, -VG_ENOMEM, "cannot allocate its state");
    fb->models = calloc(st->n > 0 ? (size_t)st->n : 1, sizeof *fb->models);
    fb->n_models = st->n;
    if (!fb->models) {
        feedback_free(fb);
        return attach_fail(err, -VG_ENOMEM, "cannot allocate its state");
    }
    if ((rc = vg_feedback_store_new(cfg->feedback_store, &fb->store))) {
        feedback_free(fb);
        return attach_fail(err, rc, "cannot make the prediction store");
    }
    fb->capacity = cfg->feedback_store;
    for (int k = 0; k < N_REASONS && !rc; k++) {
        const char *labels[] = {reason_names[k]};
        rc = vg_counter_bind(rejected, labels, &fb->rejected[k]);
    }
    for (int i = 0; i < st->n && !rc; i++)
        if (st->entries[i].loaded) {
            fb->models[i].index = (uint32_t)i;
            rc = bind_model(&fb->models[i], st->entries[i].served, total, accuracy, feedbacks,
                            abs_error, (uint32_t)cfg->live_accuracy_window);
        }
    if (rc) {
        feedback_free(fb);
        return attach_fail(err, rc, "cannot bind its metric series");
    }
    for (int i = 0; i < st->n; i++)
        if (st->entries[i].loaded)
            st->entries[i].served->feedback = &fb->models[i];
    st->feedback = fb;
    vg_log("info",
           "ground-truth feedback is on: the last %zu predictions are kept, live accuracy "
           "over the last %d feedbacks",
           fb->capacity, cfg->live_accuracy_window);
    return 0;
}

void vg_feedback_detach(struct vg_store *st)
{
    if (!st || !st->feedback)
        return;
    for (int i = 0; i < st->n; i++)
        if (st->entries[i].loaded)
            st->entries[i].served->feedback = NULL;
    feedback_free(st->feedback);
    st->feedback = NULL;
}

/* ---- Recording predictions ------------------------------------------------------------------- */

static int find_class(const struct vg_served *m, const char *name)
{
    for (int k = 0; k < m->n_classes; k++)
        if (!strcmp(m->classes[k], name))
            return k;
    return -1;
}

/* Row i's class index, as /predict names it: the label output when the model has one (the
 * argmax first, as it is usually the label's class), else the highest probability; -1 when the
 * label is none of the classes. */
static int row_class(const struct vg_served *m, const float *proba, const struct vg_tensor *label,
                     int64_t i)
{
    int nc = m->n_classes, k = -1;
    if (proba) {
        const float *p = proba + i * nc;
        k = 0;
        for (int c = 1; c < nc; c++)
            if (p[c] > p[k])
                k = c;
    }
    if (label && label->dtype == VG_DT_STRING) {
        const char *l = ((const char *const *)label->data)[i];
        if (!l)
            l = "";
        if (k < 0 || strcmp(l, m->classes[k]))
            k = find_class(m, l);
    } else if (label) {
        char num[24];
        num[vg__jw_fmt_i64(num, ((const int64_t *)label->data)[i])] = 0;
        if (k < 0 || strcmp(num, m->classes[k]))
            k = find_class(m, num);
    }
    return k;
}

void vg_feedback_record(struct vg_req *r, struct vg_served *m, const struct vg_session *s,
                        const char *id, int64_t rows, int batch)
{
    struct vg_feedback *fb = r->store->feedback;
    struct vg_feedback_model *fm = m->feedback;
    if (!fb || !fm || rows <= 0 || !id)
        return;
    const float *proba = NULL, *value = NULL;
    const struct vg_tensor *label = NULL, *t;
    if (m->task == VG_TASK_REGRESSION) {
        t = m->out_value >= 0 ? vg_session_output(s, m->out_value) : NULL;
        if (!t || t->dtype != VG_DT_FLOAT || vg_tensor_numel(t) != rows)
            return;
        value = t->data;
    } else {
        t = m->out_proba >= 0 ? vg_session_output(s, m->out_proba) : NULL;
        if (t && t->dtype == VG_DT_FLOAT && vg_tensor_numel(t) == rows * m->n_classes)
            proba = t->data;
        t = m->out_label >= 0 ? vg_session_output(s, m->out_label) : NULL;
        if (t && (t->dtype == VG_DT_STRING || t->dtype == VG_DT_INT64) &&
            vg_tensor_numel(t) == rows)
            label = t;
        if (!proba && !label)
            return;
    }
    struct timespec ts; /* whole seconds: the coarse clock is enough, and 10 times cheaper */
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    uint32_t now = (uint32_t)ts.tv_sec;
    size_t id_len = strlen(id);
    if (!batch) {
        float pred = value ? value[0] : (float)row_class(m, proba, label, 0);
        vg_feedback_store_put(fb->store, id, id_len, fm->index, pred, now);
        return;
    }
    /* "<id>/<i>": the prefix once, then each row number after it. */
    char key[VG_FEEDBACK_MAX_ID + 24];
    if (id_len + 2 > VG_FEEDBACK_MAX_ID)
        return;
    memcpy(key, id, id_len);
    key[id_len] = '/';
    for (int64_t i = 0; i < rows; i++) {
        size_t len = id_len + 1 + vg__jw_fmt_i64(key + id_len + 1, i);
        if (len > VG_FEEDBACK_MAX_ID)
            break;
        float pred = value ? value[i] : (float)row_class(m, proba, label, i);
        vg_feedback_store_put(fb->store, key, len, fm->index, pred, now);
    }
}

/* ---- Feedback requests ----------------------------------------------------------------------- */

/* The outcome of one feedback item. */
struct item {
    int status;                         /* 200, 400, 404, 409 */
    const char *id;                     /* NULL when the item has no string id */
    const struct vg_feedback_model *fm; /* the model that made the prediction (on 200) */
    const char *outcome;                /* on 200 */
    char error[640];                    /* otherwise */
};

static int item_fail(struct item *it, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int item_fail(struct item *it, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->error, sizeof it->error, fmt, ap);
    va_end(ap);
    it->status = status;
    return -1;
}

/* A client's string as it may appear in a message: QUOTE_MAX bytes at most, control characters
 * as '?', "..." when cut. */
static const char *quote(const char *s, char *dst, size_t size)
{
    size_t n = 0;
    for (; n < QUOTE_MAX && n + 4 < size && s[n]; n++)
        dst[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
    if (s[n] && n + 4 <= size)
        memcpy(dst + n, "...", 3), n += 3;
    dst[n] = 0;
    return dst;
}

/* "'a', 'b', 'c'" (up to MAX_CLASSES_LISTED, then "and N more"). */
static const char *class_list(const struct vg_served *m, char *dst, size_t size)
{
    size_t len = 0;
    dst[0] = 0;
    for (int k = 0; k < m->n_classes && len < size; k++) {
        int w = k < MAX_CLASSES_LISTED
                    ? snprintf(dst + len, size - len, "%s'%s'", k ? ", " : "", m->classes[k])
                    : snprintf(dst + len, size - len, " and %d more", m->n_classes - k);
        if (w < 0)
            break;
        len += (size_t)w;
        if (k >= MAX_CLASSES_LISTED)
            break;
    }
    return dst;
}

/* The class a label names: a class name, or for classes that are numbers also a JSON number
 * equal to one (3 and 3.0 name class "3"). -1 with the reason in it->error otherwise. */
static int label_class(const struct vg_served *m, const cJSON *label, struct item *it)
{
    char q[QUOTE_MAX + 8], classes[256];
    if (cJSON_IsString(label)) {
        int k = find_class(m, label->valuestring);
        if (k >= 0)
            return k;
        return item_fail(it, 400, "'label' '%s' is not a class of model '%s' (its classes: %s)",
                         quote(label->valuestring, q, sizeof q), m->name,
                         class_list(m, classes, sizeof classes));
    }
    if (cJSON_IsNumber(label)) {
        for (int k = 0; k < m->n_classes; k++) {
            char *end;
            double v = strtod(m->classes[k], &end);
            if (end != m->classes[k] && !*end && v == label->valuedouble)
                return k;
        }
        /* The number as the client wrote it, near enough: the shortest of %.15g and %.17g. */
        char num[32];
        snprintf(num, sizeof num, "%.15g", label->valuedouble);
        if (strtod(num, NULL) != label->valuedouble)
            snprintf(num, sizeof num, "%.17g", label->valuedouble);
        return item_fail(it, 400, "'label' %s is not a class of model '%s' (its classes: %s)", num,
                         m->name, class_list(m, classes, sizeof classes));
    }
    return item_fail(it, 400,
                     "'label' must be one of the classes of model '%s' (a string, or a number for "
                     "classes that are numbers), got %s",
                     m->name, vg_json_kind(label));
}

/* Checks, looks up, claims and counts one feedback item. `only` is the model of the /v2 route
 * (NULL on /feedback). */
static void process_item(struct vg_feedback *fb, const cJSON *obj, const struct vg_served *only,
                         struct item *it)
{
    char q[QUOTE_MAX + 8];
    memset(it, 0, sizeof *it);
    if (!cJSON_IsObject(obj)) {
        item_fail(it, 400, "a feedback must be an object {\"id\": ..., \"label\": ...}, got %s",
                  vg_json_kind(obj));
        goto rejected;
    }
    const cJSON *jid = NULL, *label = NULL;
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (!strcmp(c->string, "id")) {
            jid = c;
        } else if (!strcmp(c->string, "label")) {
            label = c;
        } else {
            item_fail(it, 400, "unexpected key '%s' (a feedback is {\"id\": ..., \"label\": ...})",
                      quote(c->string, q, sizeof q));
            goto rejected;
        }
    }
    if (cJSON_IsString(jid))
        it->id = jid->valuestring;
    if (!jid) {
        item_fail(it, 400,
                  "missing 'id': the \"id\" of the prediction's answer (\"<id>/<row>\" for a row "
                  "of a batch)");
        goto rejected;
    }
    if (!cJSON_IsString(jid)) {
        item_fail(it, 400, "'id' must be a string, got %s", vg_json_kind(jid));
        goto rejected;
    }
    if (!label) {
        item_fail(it, 400, "missing 'label': the true class (or value) of prediction '%s'",
                  quote(it->id, q, sizeof q));
        goto rejected;
    }

    struct vg_feedback_record rec;
    size_t id_len = strlen(it->id);
    enum vg_feedback_status st = vg_feedback_store_find(fb->store, it->id, id_len, &rec);
    if (st == VG_FEEDBACK_EVICTED)
        goto evicted;
    if (st != VG_FEEDBACK_FOUND) {
        item_fail(it, 404, "no prediction with id '%s': never made or not kept",
                  quote(it->id, q, sizeof q));
        goto rejected;
    }
    struct vg_feedback_model *fm = &fb->models[rec.owner]; /* an index vg_feedback_record put */
    const struct vg_served *m = fm->m;
    if (only && m != only) {
        item_fail(it, 404, "prediction '%s' was not made by model '%s' (model '%s' made it)",
                  quote(it->id, q, sizeof q), only->name, m->name);
        goto rejected;
    }
    int k = -1;
    double truth = 0;
    if (m->task == VG_TASK_REGRESSION) {
        if (!cJSON_IsNumber(label)) {
            item_fail(it, 400, "'label' must be a number for regression model '%s', got %s",
                      m->name, vg_json_kind(label));
            goto rejected;
        }
        truth = label->valuedouble;
        if (!isfinite(truth)) {
            item_fail(it, 400, "'label' must be a finite number, got %g", truth);
            goto rejected;
        }
    } else if ((k = label_class(m, label, it)) < 0) {
        goto rejected;
    }

    st = vg_feedback_store_claim(fb->store, &rec);
    if (st == VG_FEEDBACK_EVICTED)
        goto evicted;
    if (st == VG_FEEDBACK_DUPLICATE) {
        item_fail(it, 409, "prediction '%s' already has feedback", quote(it->id, q, sizeof q));
        vg_counter_inc(fb->rejected[REASON_DUPLICATE]);
        return;
    }
    it->status = 200;
    it->fm = fm;
    if (m->task == VG_TASK_REGRESSION) {
        it->outcome = "received";
        vg_counter_inc(fm->received);
        vg_histogram_observe(fm->abs_error, fabs(truth - rec.prediction));
    } else {
        int correct = k == (int)rec.prediction;
        it->outcome = correct ? "correct" : "incorrect";
        vg_counter_inc(correct ? fm->correct : fm->incorrect);
        vg_live_accuracy_add(&fm->window, correct, NULL);
    }
    return;

evicted:
    item_fail(it, 404,
              "prediction '%s' was evicted from the feedback store (it keeps the last %zu "
              "predictions)",
              quote(it->id, q, sizeof q), fb->capacity);
    vg_counter_inc(fb->rejected[REASON_EVICTED]);
    return;
rejected:
    vg_counter_inc(fb->rejected[it->status == 404 ? REASON_UNKNOWN : REASON_INVALID]);
}

/* The model of the /v2 route, checked; NULL after replying 404 when it is unknown or not loaded. */
static const struct vg_served *route_model(struct vg_req *r)
{
    char q[QUOTE_MAX + 8];
    const struct vg_store_entry *e = vg_store_find(r->store, r->params[0]);
    if (!e) {
        vg_reply_error(r, 404, "unknown model '%s'", quote(r->params[0], q, sizeof q));
        return NULL;
    }
    r->log_model = e->name;
    if (!e->loaded) {
        vg_reply_error(r, 404, "model '%s' has no available versions: it failed to load: %s",
                       e->name, e->reason ? e->reason : "unknown reason");
        return NULL;
    }
    r->log_version = e->served->version_str;
    return e->served;
}

static void write_item(struct vg_jw *jw, const struct item *it)
{
    vg_jw_lit(jw, "{\"id\":");
    if (it->id)
        vg_jw_str(jw, it->id);
    else
        vg_jw_lit(jw, "null");
    vg_jw_lit(jw, ",\"status\":");
    vg_jw_i64(jw, it->status);
    if (it->status == 200) {
        vg_jw_lit(jw, ",\"outcome\":");
        vg_jw_str(jw, it->outcome);
    } else {
        vg_jw_lit(jw, ",\"error\":");
        vg_jw_str(jw, it->error);
    }
    vg_jw_char(jw, '}');
}

void vg_api_feedback(struct vg_req *r)
{
    struct vg_feedback *fb = r->store->feedback;
    if (!fb) {
        vg_reply_error(r, 503, "feedback is disabled (--feedback off)");
        return;
    }
    const struct vg_served *only = NULL;
    if (r->n_params > 0 && !(only = route_model(r)))
        return;

    struct vg_jw jw;
    vg_jw_init(&jw, VG_JW_MAX_RESPONSE_BYTES);
    struct vg_jw results; /* an array's results */
    vg_jw_init(&results, VG_JW_MAX_RESPONSE_BYTES);
    const char *end = NULL;
    /* Length + 1 takes in the terminating NUL, so cJSON refuses anything after the value. */
    cJSON *doc = r->body_len ? cJSON_ParseWithLengthOpts(r->body, r->body_len + 1, &end, 1) : NULL;
    if (!doc) {
        vg_counter_inc(fb->rejected[REASON_INVALID]);
        if (!r->body_len)
            vg_reply_error(r, 400,
                           "the request body is empty: send {\"id\": ..., \"label\": ...} or an "
                           "array of them");
        else
            vg_reply_error(r, 400, "malformed JSON at byte %zu",
                           end && end >= r->body ? (size_t)(end - r->body) : (size_t)0);
        goto out;
    }

    if (cJSON_IsObject(doc)) {
        struct item it;
        process_item(fb, doc, only, &it);
        if (it.status != 200) {
            vg_reply_error(r, it.status, "%s", it.error);
            goto out;
        }
        r->log_model = it.fm->m->name;
        r->log_version = it.fm->m->version_str;
        vg_jw_lit(&jw, "{\"id\":");
        vg_jw_str(&jw, it.id);
        vg_jw_lit(&jw, ",\"model\":");
        vg_jw_str(&jw, it.fm->m->name);
        vg_jw_lit(&jw, ",\"version\":");
        vg_jw_mem(&jw, it.fm->m->version_str, strlen(it.fm->m->version_str));
        vg_jw_lit(&jw, ",\"outcome\":");
        vg_jw_str(&jw, it.outcome);
        vg_jw_char(&jw, '}');
    } else if (cJSON_IsArray(doc)) {
        int64_t limit =
            r->store->max_batch_rows > 0 ? r->store->max_batch_rows : DEFAULT_MAX_BATCH_ROWS;
        int64_t n = 0;
        for (const cJSON *c = doc->child; c; c = c->next)
            n++;
        if (n == 0 || n > limit) {
            vg_counter_inc(fb->rejected[REASON_INVALID]);
            if (n == 0)
                vg_reply_error(r, 400, "the array is empty: send at least one feedback");
            else
                vg_reply_error(r, 413,
                               "the array has %" PRId64 " feedbacks; the limit is %" PRId64
                               " per request (max_batch_rows)",
                               n, limit);
            goto out;
        }
        /* Results are written as the items are handled (memory stays within the writer's cap
         * whatever the item count); the counts that come first in the answer are put in front
         * once known. */
        int64_t accepted = 0;
        for (const cJSON *c = doc->child; c; c = c->next) {
            struct item it;
            process_item(fb, c, only, &it);
            accepted += it.status == 200;
            if (c != doc->child)
                vg_jw_char(&results, ',');
            write_item(&results, &it);
        }
        if (results.failed) {
            vg_reply_error(r, 500, "the response is larger than %zu MiB or memory ran out",
                           VG_JW_MAX_RESPONSE_BYTES >> 20);
            goto out;
        }
        vg_jw_reserve(&jw, results.len + 64);
        vg_jw_lit(&jw, "{\"accepted\":");
        vg_jw_i64(&jw, accepted);
        vg_jw_lit(&jw, ",\"rejected\":");
        vg_jw_i64(&jw, n - accepted);
        vg_jw_lit(&jw, ",\"results\":[");
        vg_jw_mem(&jw, results.data, results.len);
        vg_jw_lit(&jw, "]}");
    } else {
        vg_counter_inc(fb->rejected[REASON_INVALID]);
        vg_reply_error(r, 400,
                       "the body must be a feedback object {\"id\": ..., \"label\": ...} or an "
                       "array of them, got %s",
                       vg_json_kind(doc));
        goto out;
    }
    size_t len;
    char *body = vg_jw_take(&jw, &len);
    if (!body)
        vg_reply_error(r, 500, "the response is larger than %zu MiB or memory ran out",
                       VG_JW_MAX_RESPONSE_BYTES >> 20);
    else
        vg_reply_raw(r, 200, "application/json", body, len);
out:
    vg_jw_release(&jw);
    vg_jw_release(&results);
    cJSON_Delete(doc);
}
