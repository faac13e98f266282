/*
 * Model quality in the server: the drift monitor of each loaded model version (vigil/drift.h).
 *
 * vg_quality_attach runs once at start-up, after vg_store_open and before the HTTP workers
 * start: with --drift on it registers the drift families, reads each loaded version's training
 * reference from its config.json ("reference": per feature bin_edges, bin_shares, below, above;
 * class_distribution by class name) in the model's feature and class order, and makes its
 * drift object (struct vg_served.drift). A version without a usable reference is served without
 * drift series, and the log says why. The request path then calls vg_drift_observe once per
 * successful prediction, when m->drift is set.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/jsonw.h"
#include "server/server.h"
#include "vigil/drift.h"

/* Window count shards: one per worker thread, up to the metrics library's 16. */
#define MAX_DRIFT_SHARDS 16

/* Reads `n` numbers of the array `arr` into out; -1 when it is not an array of n numbers. */
static int numbers(const cJSON *arr, double *out, int n)
{
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n)
        return -1;
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        if (!cJSON_IsNumber(it))
            return -1;
        out[i] = it->valuedouble;
    }
    return 0;
}

/* A share field of a reference object; absent counts as 0. */
static int share(const cJSON *obj, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        *out = 0;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return -1;
    *out = v->valuedouble;
    return 0;
}

/*
 * Fills the drift configuration of m from config.json's "reference". Returns 0, or -1 with why
 * there is no drift for this model in `why`. A classifier whose class distribution is missing or
 * incomplete gets feature drift only: c->n_classes stays 0 and `why` says why. features and
 * class_shares are the caller's arrays (n_features and n_classes long).
 */
static int read_reference(const struct vg_served *m, struct vg_drift_config *c,
                          struct vg_drift_feature_ref *features, double *class_shares, char *why,
                          size_t why_size)
{
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(m->config, "reference");
    if (!ref) {
        snprintf(why, why_size, "config.json has no \"reference\" (train it with vigil train)");
        return -1;
    }
    const cJSON *bins = cJSON_GetObjectItemCaseSensitive(ref, "bins");
    if (bins && !(cJSON_IsNumber(bins) && bins->valuedouble == VG_DRIFT_REF_BINS)) {
        snprintf(why, why_size, "reference.bins must be %d", VG_DRIFT_REF_BINS);
        return -1;
    }
    const cJSON *feats = cJSON_GetObjectItemCaseSensitive(ref, "features");
    if (!cJSON_IsObject(feats)) {
        snprintf(why, why_size, "reference.features must be an object, got %s",
                 vg_json_kind(feats));
        return -1;
    }
    for (int j = 0; j < m->n_features; j++) {
        struct vg_drift_feature_ref *f = &features[j];
        const cJSON *fr = cJSON_GetObjectItemCaseSensitive(feats, m->features[j]);
        f->name = m->features[j];
        if (!cJSON_IsObject(fr)) {
            snprintf(why, why_size, "reference.features has no object for feature '%s'",
                     m->features[j]);
            return -1;
        }
        if (numbers(cJSON_GetObjectItemCaseSensitive(fr, "bin_edges"), f->edges,
                    VG_DRIFT_REF_BINS + 1) ||
            numbers(cJSON_GetObjectItemCaseSensitive(fr, "bin_shares"), f->shares,
                    VG_DRIFT_REF_BINS) ||
            share(fr, "below", &f->below) || share(fr, "above", &f->above)) {
            snprintf(why, why_size,
                     "the reference of feature '%s' needs %d numbers in bin_edges and %d in "
                     "bin_shares (below and above, when present, numbers)",
                     m->features[j], VG_DRIFT_REF_BINS + 1, VG_DRIFT_REF_BINS);
            return -1;
        }
    }
    c->n_features = m->n_features;
    c->features = features;
    c->n_classes = 0;
    if (m->task != VG_TASK_CLASSIFICATION || m->n_classes <= 0)
        return 0;
    const cJSON *dist = cJSON_GetObjectItemCaseSensitive(ref, "class_distribution");
    for (int k = 0; k < m->n_classes; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(dist, m->classes[k]);
        if (!cJSON_IsObject(dist) || !cJSON_IsNumber(v)) {
            snprintf(why, why_size, "reference.class_distribution has no share for class '%s'",
                     m->classes[k]);
            return 0;
        }
        class_shares[k] = v->valuedouble;
    }
    c->n_classes = m->n_classes;
    c->class_shares = class_shares;
    return 0;
}

/* Makes m's drift object; logs and leaves m->drift NULL when the model has no usable reference. */
static void attach_one(struct vg_served *m, const struct vg_drift_families *fam,
                       const struct vg_server_config *cfg)
{
    char why[512] = "";
    struct vg_drift_feature_ref *features = calloc((size_t)m->n_features, sizeof *features);
    double *class_shares = calloc(m->n_classes > 0 ? (size_t)m->n_classes : 1, sizeof(double));
    struct vg_drift_config c = {
        .model = m->name,
        .version = m->version_str,
        .window_seconds = cfg->drift_window_s,
        .shards = cfg->threads < 1                  ? 1
                  : cfg->threads > MAX_DRIFT_SHARDS ? MAX_DRIFT_SHARDS
                                                    : cfg->threads,
    };
    struct vg_error err = {0};
    if (!features || !class_shares)
        snprintf(why, sizeof why, "out of memory");
    else if (!read_reference(m, &c, features, class_shares, why, sizeof why) &&
             vg_drift_new(&c, fam, &m->drift, &err))
        snprintf(why, sizeof why, "%s", err.msg[0] ? err.msg : vg_strerror(err.code));
    if (m->drift && (c.n_classes || m->task != VG_TASK_CLASSIFICATION))
        vg_log("info", "model %s version %s: drift monitored over %u s (%d features%s)", m->name,
               m->version_str, cfg->drift_window_s, m->n_features,
               c.n_classes ? ", predicted classes" : "");
    else if (m->drift)
        vg_log("warn",
               "model %s version %s: drift monitored over %u s (%d features); no prediction "
               "drift: %s",
               m->name, m->version_str, cfg->drift_window_s, m->n_features, why);
    else
        vg_log("warn", "model %s version %s: no drift monitoring: %s", m->name, m->version_str,
               why);
    free(features);
    free(class_shares);
}

int vg_quality_attach(struct vg_store *s, const struct vg_server_config *cfg,
                      struct vg_registry *reg, struct vg_error *err)
{
    if (!cfg->drift) {
        vg_log("info", "drift monitoring is off (--drift off)");
        return 0;
    }
    struct vg_drift_families fam;
    int rc = vg_drift_register(reg, &fam, err);
    if (rc)
        return rc;
    for (int i = 0; i < s->n; i++) {
        struct vg_served *m = s->entries[i].served;
        if (!s->entries[i].loaded)
            continue;
        if (m->image) /* pixels have no per-feature training distribution to compare with */
            vg_log("info",
                   "model %s version %s: an image model; drift monitoring does not "
                   "apply",
                   m->name, m->version_str);
        else
            attach_one(m, &fam, cfg);
    }
    return 0;
}
