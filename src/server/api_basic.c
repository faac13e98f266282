/*
 * The server's own endpoints: GET / (index), /health, /metrics, /models and /models/{model}.
 * Everything here reads the store, which is immutable once the server runs, so no handler locks
 * anything except /metrics, whose render serializes with other scrapes (never with requests).
 *
 * Replies are built with cJSON; a failed allocation anywhere makes the whole reply a 500 rather
 * than a silently incomplete document.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

#define METRICS_MAX_BYTES (16u << 20) /* a scrape larger than this answers 500 */

/* Accumulates allocation failures while building a reply. */
struct builder {
    int failed;
};

static cJSON *check(struct builder *b, cJSON *item)
{
    if (!item)
        b->failed = 1;
    return item;
}

static void add_str(struct builder *b, cJSON *o, const char *key, const char *value)
{
    check(b, value ? cJSON_AddStringToObject(o, key, value) : cJSON_AddNullToObject(o, key));
}

static void add_num(struct builder *b, cJSON *o, const char *key, double value)
{
    check(b,
          isfinite(value) ? cJSON_AddNumberToObject(o, key, value) : cJSON_AddNullToObject(o, key));
}

static void add_bool(struct builder *b, cJSON *o, const char *key, int value)
{
    check(b, cJSON_AddBoolToObject(o, key, value));
}

/* Adds a deep copy of `item` under `key`, or null when item is NULL or JSON null. */
static void add_copy(struct builder *b, cJSON *o, const char *key, const cJSON *item)
{
    cJSON *copy = item && !cJSON_IsNull(item) ? cJSON_Duplicate(item, 1) : cJSON_CreateNull();
    if (!check(b, copy))
        return;
    if (!cJSON_AddItemToObject(o, key, copy)) {
        cJSON_Delete(copy);
        b->failed = 1;
    }
}

static void add_strings(struct builder *b, cJSON *o, const char *key, const char *const *items,
                        int n)
{
    cJSON *a = check(b, cJSON_AddArrayToObject(o, key));
    for (int i = 0; a && i < n; i++) {
        cJSON *s = check(b, cJSON_CreateString(items[i]));
        if (s && !cJSON_AddItemToArray(a, s)) {
            cJSON_Delete(s);
            b->failed = 1;
        }
    }
}

/* Appends a new object to array `a`. */
static cJSON *push_object(struct builder *b, cJSON *a)
{
    cJSON *o = check(b, cJSON_CreateObject());
    if (o && !cJSON_AddItemToArray(a, o)) {
        cJSON_Delete(o);
        b->failed = 1;
        return NULL;
    }
    return o;
}

static void reply(struct vg_req *r, int status, struct builder *b, cJSON *root)
{
    if (b->failed || !root) {
        cJSON_Delete(root);
        vg_reply_error(r, 500, "out of memory while building the response");
        return;
    }
    vg_reply_json(r, status, root);
}

/* Version number of an entry, or null when the model has none. */
static void add_version(struct builder *b, cJSON *o, const struct vg_store_entry *e)
{
    if (e->version > 0)
        add_num(b, o, "version", (double)e->version);
    else
        check(b, cJSON_AddNullToObject(o, "version"));
}

static const char *task_name(const struct vg_served *m)
{
    return m->image                        ? "image_classification"
           : m->task == VG_TASK_REGRESSION ? "regression"
                                           : "classification";
}

void vg_api_index(struct vg_req *r)
{
    struct builder b = {0};
    cJSON *root = check(&b, cJSON_CreateObject());
    if (root) {
        add_str(&b, root, "name", "vigil");
        add_str(&b, root, "version", VG_VERSION);
        cJSON *eps = check(&b, cJSON_AddArrayToObject(root, "endpoints"));
        for (const struct vg_route *rt = vg_routes; eps && rt->method; rt++) {
            cJSON *o = push_object(&b, eps);
            if (!o)
                break;
            add_str(&b, o, "method", rt->method);
            add_str(&b, o, "path", rt->pattern);
        }
    }
    reply(r, 200, &b, root);
}

void vg_api_health(struct vg_req *r)
{
    const struct vg_store *st = r->store;
    int loaded = vg_store_n_loaded(st);
    struct builder b = {0};
    cJSON *root = check(&b, cJSON_CreateObject());
    if (root) {
        add_str(&b, root, "status", loaded ? "healthy" : "unhealthy");
        cJSON *models = check(&b, cJSON_AddArrayToObject(root, "models"));
        for (int i = 0; models && i < st->n; i++) {
            const struct vg_store_entry *e = &st->entries[i];
            cJSON *o = push_object(&b, models);
            if (!o)
                break;
            add_str(&b, o, "name", e->name);
            add_version(&b, o, e);
            add_bool(&b, o, "loaded", e->loaded && e->served);
            if (e->loaded && e->served)
                add_num(&b, o, "accuracy", e->served->holdout_accuracy);
            else
                add_str(&b, o, "error", e->reason ? e->reason : "not loaded");
        }
    }
    reply(r, loaded ? 200 : 503, &b, root);
}

void vg_api_metrics(struct vg_req *r)
{
    const char *content_type;
    enum vg_expo_format fmt = vg_expo_negotiate(r->accept, &content_type);
    struct vg_expo_buf buf;
    vg_expo_buf_init(&buf, METRICS_MAX_BYTES);
    int rc = vg_registry_render(r->registry, fmt, &buf);
    if (rc) {
        vg_expo_buf_release(&buf);
        vg_reply_error(r, 500, "cannot render the metrics: %s", vg_strerror(rc));
        return;
    }
    /* The buffer's data is malloc'd: ownership passes to the reply. */
    vg_reply_raw(r, 200, content_type, buf.data, buf.len);
}

void vg_api_models(struct vg_req *r)
{
    const struct vg_store *st = r->store;
    struct builder b = {0};
    cJSON *root = check(&b, cJSON_CreateObject());
    if (root) {
        cJSON *models = check(&b, cJSON_AddArrayToObject(root, "models"));
        for (int i = 0; models && i < st->n; i++) {
            const struct vg_store_entry *e = &st->entries[i];
            const struct vg_served *m = e->loaded ? e->served : NULL;
            cJSON *o = push_object(&b, models);
            if (!o)
                break;
            add_str(&b, o, "name", e->name);
            add_version(&b, o, e);
            add_bool(&b, o, "loaded", m != NULL);
            add_str(&b, o, "error", m ? NULL : e->reason ? e->reason : "not loaded");
            add_str(&b, o, "task", m ? task_name(m) : NULL);
            add_str(&b, o, "description", m ? m->description : NULL);
        }
    }
    reply(r, 200, &b, root);
}

void vg_api_model_info(struct vg_req *r)
{
    const char *name = r->params[0];
    const struct vg_store_entry *e = vg_store_find(r->store, name);
    if (!e) {
        vg_reply_error(r, 404, "unknown model '%s'", name);
        return;
    }
    r->log_model = e->name;
    const struct vg_served *m = e->loaded ? e->served : NULL;
    if (!m) {
        vg_reply_error(r, 503, "model '%s' is not loaded: %s", e->name,
                       e->reason ? e->reason : "unknown reason");
        return;
    }
    r->log_version = m->version_str;
    struct builder b = {0};
    cJSON *root = check(&b, cJSON_CreateObject());
    if (root) {
        add_str(&b, root, "name", m->name);
        add_num(&b, root, "version", (double)m->version);
        add_bool(&b, root, "loaded", 1);
        add_str(&b, root, "task", task_name(m));
        add_str(&b, root, "description", m->description);
        add_str(&b, root, "sha256", m->sha256);
        add_strings(&b, root, "features", m->features, m->n_features);
        add_strings(&b, root, "classes", m->classes,
                    m->task == VG_TASK_CLASSIFICATION ? m->n_classes : 0);
        const cJSON *cfg = m->config;
        add_copy(&b, root, "input", cJSON_GetObjectItemCaseSensitive(cfg, "input"));
        add_copy(&b, root, "outputs", cJSON_GetObjectItemCaseSensitive(cfg, "outputs"));
        if (m->image) {
            add_copy(&b, root, "image", cJSON_GetObjectItemCaseSensitive(cfg, "image"));
            add_num(&b, root, "top_k", m->image->top_k);
        }
        add_copy(&b, root, "metrics", cJSON_GetObjectItemCaseSensitive(cfg, "metrics"));
        add_copy(&b, root, "reference", cJSON_GetObjectItemCaseSensitive(cfg, "reference"));
        const cJSON *training = cJSON_GetObjectItemCaseSensitive(cfg, "training");
        const cJSON *created = cJSON_GetObjectItemCaseSensitive(training, "created");
        add_str(&b, root, "created", cJSON_IsString(created) ? created->valuestring : NULL);
        add_num(&b, root, "load_seconds", m->load_seconds);
    }
    reply(r, 200, &b, root);
}
