/*
 * POST /predict and POST /models/{model}/predict for an image classifier (docs/image-models.md).
 *
 * The image comes as one of:
 *   - a raw body, Content-Type image/jpeg or image/png;
 *   - multipart/form-data with the image in field "file" (and optional text fields "id",
 *     "top_k");
 *   - JSON {"image_b64": "<base64>"} (standard or URL-safe alphabet, padding optional, a
 *     "data:image/...;base64," prefix allowed) or {"image_url": "http(s)://..."}, with optional
 *     "id" (a string used as the answer's id and the feedback key) and "top_k".
 * The format is found from the bytes (JPEG or PNG signature), not from the declared type.
 *
 * Answer: {"predicted_label", "confidence", "top_k": [{"label", "confidence"}...], "id",
 * "model", "version"}. Confidences are probabilities: the model's own when its "output" is
 * "probabilities", else the softmax of its logits. top_k: the request's (?top_k=N, or "top_k" in
 * the JSON or the form), else the model's config, at most the number of classes; ties keep the
 * class order.
 *
 * Each refusal is a 4xx (502/504 when the image_url server fails or is too slow), logged by
 * vg_reply_error, counted once in vigil_image_rejected_total{reason} and as bad_input in
 * vigil_model_requests_total. The fetch of an image_url blocks this worker thread (at most
 * --image-url-timeout-ms).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <microhttpd.h>

#include "server/jsonw.h"
#include "server/server.h"

#define MSG_MAX 1024

const char *vg_req_query(const struct vg_req *r, const char *key)
{
    return r->conn ? MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key) : NULL;
}

/* The image options of the configuration, or their defaults (no server: the unit tests). */
static const struct vg_server_config *image_cfg(const struct vg_req *r)
{
    static const struct vg_server_config defaults = {
        .image_max_pixels = 40000000,
        .image_url = 1,
        .image_url_timeout_ms = 10000,
        .image_url_connect_timeout_ms = 3000,
        .image_url_max_bytes = (size_t)16 << 20,
        .image_url_max_redirects = 3,
    };
    return r->store && r->store->cfg ? r->store->cfg : &defaults;
}

struct ireq {
    struct vg_req *r;
    struct vg_served *m;
    int status;
    enum vg_image_reject reject;
    char msg[MSG_MAX];
};

static int refuse(struct ireq *q, int status, enum vg_image_reject reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(struct ireq *q, int status, enum vg_image_reject reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->msg, sizeof q->msg, fmt, ap);
    va_end(ap);
    q->status = status;
    q->reject = reason;
    return -1;
}

static double seconds_since(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) + (double)(b.tv_nsec - a->tv_nsec) * 1e-9;
}

/* The rules of X-Request-Id: 1 to 64 printable ASCII characters, no '"' or '\\'. */
static int valid_id(const char *s, size_t n)
{
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            return 0;
    return 1;
}

/* A top_k given as text (query string, form field): a whole number >= 1. */
static int parse_top_k_text(const char *s, size_t n, int *out)
{
    if (n == 0 || n > 9)
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1)
        return -1;
    *out = v;
    return 0;
}

/* ---- base64 ---------------------------------------------------------------------------------- */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Decodes standard or URL-safe base64 (whitespace ignored, '=' padding optional). Returns the
 * malloc'd bytes or NULL; *bad_at is the offending offset when malformed (SIZE_MAX on OOM). */
static unsigned char *b64_decode(const char *s, size_t n, size_t *out_len, size_t *bad_at)
{
    unsigned char *out = malloc(n / 4 * 3 + 3);
    if (!out) {
        *bad_at = (size_t)-1;
        return NULL;
    }
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad) {
            free(out);
            *bad_at = i;
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits >= 6 || pad > 2) { /* a lone 6-bit group cannot end a valid encoding */
        free(out);
        *bad_at = n;
        return NULL;
    }
    *out_len = o;
    return out;
}

/* ---- Getting the image bytes ----------------------------------------------------------------- */

struct source {
    const unsigned char *data;
    size_t len;
    unsigned char *owned; /* base64-decoded or fetched bytes */
    const char *via;      /* "upload", "multipart", "image_b64", "image_url" */
    char id[72];          /* the client's id, "" when none */
    int top_k;            /* 0 when the request gives none */
};

static int from_base64(struct ireq *q, const char *b64, struct source *src)
{
    size_t n = strlen(b64);
    if (!strncmp(b64, "data:", 5)) {
        const char *comma = strchr(b64, ',');
        if (!comma || !strstr(b64, ";base64,") || strstr(b64, ";base64,") + 7 != comma)
            return refuse(q, 400, VG_REJECT_BAD_REQUEST,
                          "'image_b64' is a data: URL without ';base64,'");
        n -= (size_t)(comma + 1 - b64);
        b64 = comma + 1;
    }
    size_t bad = 0;
    src->owned = b64_decode(b64, n, &src->len, &bad);
    if (!src->owned) {
        if (bad == (size_t)-1)
            return refuse(q, 500, VG_REJECT_BAD_REQUEST, "out of memory");
        return refuse(q, 400, VG_REJECT_BAD_REQUEST,
                      "'image_b64' is not valid base64 (at character %zu)", bad);
    }
    src->data = src->owned;
    src->via = "image_b64";
    return 0;
}

static int from_url(struct ireq *q, const char *url, struct source *src)
{
    const struct vg_server_config *cfg = image_cfg(q->r);
    if (!cfg->image_url)
        return refuse(q, 403, VG_REJECT_URL_DISABLED,
                      "image_url is disabled on this server (--image-url off): send the image "
                      "itself (upload, multipart or image_b64)");
    struct vg_fetch_opts o = {
        .connect_timeout_ms = cfg->image_url_connect_timeout_ms,
        .timeout_ms = cfg->image_url_timeout_ms,
        .max_bytes = cfg->image_url_max_bytes,
        .max_redirects = (int)cfg->image_url_max_redirects,
        .allow = cfg->image_url_allow_list,
        .n_allow = cfg->image_url_allow_n,
    };
    char why[768];
    int st = vg_fetch(url, &o, &src->owned, &src->len, why, sizeof why);
    switch (st) {
    case VG_FETCH_OK: break;
    case VG_FETCH_BAD_URL: return refuse(q, 400, VG_REJECT_URL_INVALID, "%s", why);
    case VG_FETCH_FORBIDDEN: return refuse(q, 403, VG_REJECT_URL_FORBIDDEN, "%s", why);
    case VG_FETCH_TOO_LARGE: return refuse(q, 413, VG_REJECT_URL_TOO_LARGE, "%s", why);
    case VG_FETCH_TIMEOUT: return refuse(q, 504, VG_REJECT_URL_TIMEOUT, "%s", why);
    case VG_FETCH_NOMEM: return refuse(q, 500, VG_REJECT_URL_FAILED, "out of memory");
    default: return refuse(q, 502, VG_REJECT_URL_FAILED, "%s", why);
    }
    src->data = src->owned;
    src->via = "image_url";
    return 0;
}

static int from_json(struct ireq *q, struct source *src)
{
    const struct vg_req *r = q->r;
    int rc = -1;
    if (r->body_len == 0)
        return refuse(q, 400, VG_REJECT_BAD_REQUEST,
                      "the request body is empty: model '%s' is an image model; send an image "
                      "(image/jpeg or image/png body, multipart field 'file', or JSON "
                      "{\"image_url\": ...} or {\"image_b64\": ...})",
                      q->m->name);
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(r->body, r->body_len, &end, 0);
    if (!doc) {
        size_t at = end && end >= r->body ? (size_t)(end - r->body) : 0;
        return refuse(q, 400, VG_REJECT_BAD_REQUEST, "malformed JSON at byte %zu", at);
    }
    size_t tail = end ? (size_t)(end - r->body) : r->body_len;
    while (tail < r->body_len && strchr(" \t\r\n", r->body[tail]))
        tail++;
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(doc, "image_url");
    const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(doc, "image_b64");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    const cJSON *top_k = cJSON_GetObjectItemCaseSensitive(doc, "top_k");
    if (tail < r->body_len) {
        refuse(q, 400, VG_REJECT_BAD_REQUEST,
               "malformed JSON: unexpected data after the JSON value at byte %zu", tail);
        goto out;
    }
    if (!cJSON_IsObject(doc)) {
        refuse(q, 400, VG_REJECT_BAD_REQUEST,
               "the body must be a JSON object {\"image_url\": ...} or {\"image_b64\": ...}, "
               "got %s",
               vg_json_kind(doc));
        goto out;
    }
    for (const cJSON *it = doc->child; it; it = it->next)
        if (strcmp(it->string, "image_url") && strcmp(it->string, "image_b64") &&
            strcmp(it->string, "id") && strcmp(it->string, "top_k")) {
            refuse(q, 400, VG_REJECT_BAD_REQUEST,
                   "unknown key '%.64s' (an image request is {\"image_url\" or \"image_b64\", "
                   "and optionally \"id\" and \"top_k\"}; model '%s' is an image model)",
                   it->string, q->m->name);
            goto out;
        }
    if (!url == !b64) {
        refuse(q, 400, VG_REJECT_BAD_REQUEST,
               url ? "send either 'image_url' or 'image_b64', not both"
                   : "missing 'image_url' or 'image_b64': model '%s' is an image model",
               q->m->name);
        goto out;
    }
    if (id) {
        if (!cJSON_IsString(id) || !valid_id(id->valuestring, strlen(id->valuestring))) {
            refuse(q, 400, VG_REJECT_BAD_REQUEST,
                   "'id' must be a string of 1 to 64 printable characters (no '\"' or '\\'), "
                   "got %s",
                   cJSON_IsString(id) ? "another string" : vg_json_kind(id));
            goto out;
        }
        snprintf(src->id, sizeof src->id, "%s", id->valuestring);
    }
    if (top_k) {
        if (!cJSON_IsNumber(top_k) || top_k->valuedouble < 1 || top_k->valuedouble > 1e6 ||
            top_k->valuedouble != floor(top_k->valuedouble)) {
            refuse(q, 400, VG_REJECT_BAD_REQUEST, "'top_k' must be a whole number >= 1");
            goto out;
        }
        src->top_k = (int)top_k->valuedouble;
    }
    const cJSON *v = url ? url : b64;
    if (!cJSON_IsString(v)) {
        refuse(q, 400, VG_REJECT_BAD_REQUEST, "'%s' must be a string, got %s",
               url ? "image_url" : "image_b64", vg_json_kind(v));
        goto out;
    }
    rc = url ? from_url(q, v->valuestring, src) : from_base64(q, v->valuestring, src);
out:
    cJSON_Delete(doc);
    return rc;
}

static int from_multipart(struct ireq *q, struct source *src)
{
    const struct vg_req *r = q->r;
    const char *data, *pt;
    size_t len, ptl;
    char why[256];
    int found = vg_multipart_field(r->content_type, r->body, r->body_len, "file", &data, &len, &pt,
                                   &ptl, why, sizeof why);
    if (found < 0)
        return refuse(q, 400, VG_REJECT_BAD_REQUEST, "%s", why);
    if (!found)
        return refuse(q, 400, VG_REJECT_BAD_REQUEST,
                      "the multipart/form-data body has no field 'file' (send the image as "
                      "file=@photo.jpg)");
    src->data = (const unsigned char *)data;
    src->len = len;
    src->via = "multipart";
    const char *v;
    size_t vl;
    if (vg_multipart_field(r->content_type, r->body, r->body_len, "id", &v, &vl, &pt, &ptl, why,
                           sizeof why) == 1) {
        if (!valid_id(v, vl))
            return refuse(q, 400, VG_REJECT_BAD_REQUEST,
                          "field 'id' must be 1 to 64 printable characters (no '\"' or '\\')");
        memcpy(src->id, v, vl);
        src->id[vl] = 0;
    }
    if (vg_multipart_field(r->content_type, r->body, r->body_len, "top_k", &v, &vl, &pt, &ptl, why,
                           sizeof why) == 1 &&
        parse_top_k_text(v, vl, &src->top_k))
        return refuse(q, 400, VG_REJECT_BAD_REQUEST, "field 'top_k' must be a whole number >= 1");
    return 0;
}

/* ---- The answer ------------------------------------------------------------------------------ */

/* Probabilities of the scores: softmax of logits (in double, max subtracted), or as given. */
static void probabilities(const float *scores, int n, int softmax, float *p)
{
    if (!softmax) {
        memcpy(p, scores, (size_t)n * sizeof *p);
        return;
    }
    double mx = -INFINITY, sum = 0;
    for (int k = 0; k < n; k++)
        if (scores[k] > mx)
            mx = scores[k];
    for (int k = 0; k < n; k++)
        sum += exp((double)scores[k] - mx);
    for (int k = 0; k < n; k++)
        p[k] = (float)(exp((double)scores[k] - mx) / sum);
}

/* The k best classes by probability, ties in class order (NaN last). */
static void best_k(const float *p, int n, int k, int *idx)
{
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int c = 0; c < n; c++) {
            int taken = 0;
            for (int t = 0; t < j && !taken; t++)
                taken = idx[t] == c;
            if (taken)
                continue;
            if (best < 0 || p[c] > p[best] || (isnan(p[best]) && !isnan(p[c])))
                best = c;
        }
        idx[j] = best;
    }
}

void vg_api_predict_image(struct vg_req *r, struct vg_served *m)
{
    const struct vg_server_config *cfg = image_cfg(r);
    const struct vg_image_spec *sp = m->image;
    struct vg_image_metrics *im = m->image_metrics;
    struct ireq q = {.r = r, .m = m, .status = 400, .reject = VG_REJECT_BAD_REQUEST};
    struct source src = {.via = "upload"};
    struct vg_image img = {0};
    void *input = NULL;
    float *proba = NULL;
    int *idx = NULL;
    struct vg_session *session = NULL;
    enum vg_outcome outcome = VG_OUTCOME_BAD_INPUT;
    struct vg_jw jw;
    vg_jw_init(&jw, VG_JW_MAX_RESPONSE_BYTES);

    const char *ct = r->content_type;
    const char *qk = vg_req_query(r, "top_k");
    if (qk && parse_top_k_text(qk, strlen(qk), &src.top_k)) {
        refuse(&q, 400, VG_REJECT_BAD_REQUEST, "query parameter top_k must be a whole number >= 1");
        goto fail;
    }
    int rc;
    if (!ct || vg_media_type_is(ct, "application/json")) {
        rc = from_json(&q, &src);
    } else if (vg_media_type_is(ct, "multipart/form-data")) {
        rc = from_multipart(&q, &src);
    } else if (vg_media_type_is(ct, "image/jpeg") || vg_media_type_is(ct, "image/png")) {
        src.data = (const unsigned char *)r->body;
        src.len = r->body_len;
        rc = 0;
    } else {
        rc = refuse(&q, 415, VG_REJECT_BAD_REQUEST,
                    "Content-Type '%.64s' is not accepted by image model '%s' (image/jpeg, "
                    "image/png, multipart/form-data or application/json)",
                    ct, m->name);
    }
    if (rc)
        goto fail;
    if (src.len == 0) {
        refuse(&q, 400, VG_REJECT_BAD_REQUEST, "the image (%s) is empty", src.via);
        goto fail;
    }

    /* Decode. */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char why[512];
    int st = vg_image_decode(src.data, src.len, sp->channels, sp->resize_short_side,
                             cfg->image_max_pixels, &img, why, sizeof why);
    vg_histogram_observe(im->decode, seconds_since(&t0));
    switch (st) {
    case VG_IMAGE_OK: break;
    case VG_IMAGE_NOT_IMAGE:
        refuse(&q, 415, VG_REJECT_UNSUPPORTED, "%s: %s (send a JPEG or PNG)", src.via, why);
        goto fail;
    case VG_IMAGE_CORRUPT: refuse(&q, 400, VG_REJECT_CORRUPT, "%s: %s", src.via, why); goto fail;
    case VG_IMAGE_TOO_LARGE:
        refuse(&q, 413, VG_REJECT_TOO_MANY_PIXELS, "%s: %s", src.via, why);
        goto fail;
    default: goto oom;
    }
    free(src.owned); /* the compressed bytes are not needed any more */
    src.owned = NULL;

    /* Preprocess. */
    size_t n_in = (size_t)sp->crop_h * sp->crop_w * (size_t)sp->channels;
    input = malloc(n_in * vg_dtype_size(sp->dtype));
    if (!input)
        goto oom;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int prc = vg_image_preprocess(sp, &img, input);
    vg_histogram_observe(im->preprocess, seconds_since(&t0));
    if (prc)
        goto oom;
    vg_image_free(&img);

    /* Run. */
    outcome = VG_OUTCOME_INTERNAL;
    q.status = 500;
    session = vg_served_acquire(m);
    if (!session)
        goto oom;
    struct vg_tensor t = {.dtype = sp->dtype, .rank = 4, .data = input};
    if (sp->layout == VG_IMAGE_NCHW) {
        int64_t d[4] = {1, sp->channels, sp->crop_h, sp->crop_w};
        memcpy(t.dims, d, sizeof d);
    } else {
        int64_t d[4] = {1, sp->crop_h, sp->crop_w, sp->channels};
        memcpy(t.dims, d, sizeof d);
    }
    struct vg_error err = {0};
    if (vg_session_set_input(session, m->input, &t, &err) || vg_served_run(m, session, &err)) {
        snprintf(q.msg, sizeof q.msg, "model '%s' failed: %s", m->name,
                 err.msg[0] ? err.msg : "run failed");
        goto fail_internal;
    }
    const struct vg_tensor *out = vg_session_output(session, m->out_proba);
    int nc = m->n_classes;
    if (!out || out->dtype != VG_DT_FLOAT || vg_tensor_numel(out) != nc) {
        snprintf(q.msg, sizeof q.msg, "model '%s' returned scores of an unexpected shape", m->name);
        goto fail_internal;
    }
    int k = src.top_k ? src.top_k : sp->top_k;
    if (k > nc)
        k = nc;
    proba = malloc((size_t)nc * sizeof *proba);
    idx = malloc((size_t)k * sizeof *idx);
    if (!proba || !idx)
        goto oom;
    probabilities(out->data, nc, sp->softmax, proba);
    best_k(proba, nc, k, idx);

    const char *id = src.id[0] ? src.id : r->request_id;
    vg_jw_lit(&jw, "{\"predicted_label\":");
    vg_jw_str(&jw, m->classes[idx[0]]);
    vg_jw_lit(&jw, ",\"confidence\":");
    vg_jw_f32(&jw, proba[idx[0]]);
    vg_jw_lit(&jw, ",\"top_k\":[");
    for (int j = 0; j < k; j++) {
        if (j)
            vg_jw_char(&jw, ',');
        vg_jw_lit(&jw, "{\"label\":");
        vg_jw_str(&jw, m->classes[idx[j]]);
        vg_jw_lit(&jw, ",\"confidence\":");
        vg_jw_f32(&jw, proba[idx[j]]);
        vg_jw_char(&jw, '}');
    }
    vg_jw_lit(&jw, "],\"id\":");
    vg_jw_str(&jw, id);
    vg_jw_lit(&jw, ",\"model\":");
    vg_jw_str(&jw, m->name);
    vg_jw_lit(&jw, ",\"version\":");
    vg_jw_mem(&jw, m->version_str, strlen(m->version_str));
    vg_jw_char(&jw, '}');
    size_t len;
    char *body = vg_jw_take(&jw, &len);
    if (!body)
        goto oom;
    vg_feedback_record(r, m, session, id, 1, 0); /* while the outputs are valid */
    vg_served_release(m, session);
    session = NULL;
    vg_served_count(m, VG_OUTCOME_SUCCESS, 1);
    vg_served_count_class(m, idx[0]);
    vg_reply_raw(r, 200, "application/json", body, len);
    goto out;

oom:
    snprintf(q.msg, sizeof q.msg, "out of memory");
    q.status = 500;
fail_internal:
    outcome = VG_OUTCOME_INTERNAL;
    q.status = 500;
fail:
    if (q.status >= 500 && q.status < 502)
        outcome = VG_OUTCOME_INTERNAL;
    else if (im)
        vg_counter_inc(im->rejected[q.reject]);
    vg_served_release(m, session);
    vg_served_count(m, outcome, 0);
    vg_reply_error(r, q.status, "%s", q.msg);
out:
    vg_jw_release(&jw);
    vg_image_free(&img);
    free(src.owned);
    free(input);
    free(proba);
    free(idx);
}
