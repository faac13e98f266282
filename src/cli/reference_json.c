/*
 * config.json's "reference" object (docs/model-repository.md#reference-drift-monitoring), shared
 * by `vigil train`, which writes it for the training rows, and `vigil reference`, which writes it
 * for any data and the model's predictions on them: one writer, so both give the same bytes for
 * the same reference.
 */
#include <cJSON.h>

#include "cli/cli.h"
#include "vigil/train.h"

/* Adds item to parent (under key, or appended when key is NULL); false when either is NULL. */
static int add(cJSON *parent, const char *key, cJSON *item)
{
    if (!parent || !item) {
        cJSON_Delete(item);
        return 0;
    }
    int ok = key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item);
    if (!ok)
        cJSON_Delete(item);
    return ok;
}

cJSON *vg_cli_reference_json(const struct vg_reference *r, int rows, const char *const *features,
                             const char *const *classes)
{
    int ok = 1;
    cJSON *ref = cJSON_CreateObject();
    if (!ref)
        return NULL;
    ok &= add(ref, "rows", cJSON_CreateNumber(rows));
    ok &= add(ref, "bins", cJSON_CreateNumber(VG_REF_BINS));
    cJSON *by_feature = cJSON_CreateObject();
    ok &= add(ref, "features", by_feature);
    for (int f = 0; ok && f < r->n_features; f++) {
        const struct vg_feature_ref *fr = &r->features[f];
        cJSON *fo = cJSON_CreateObject();
        ok &= add(by_feature, features[f], fo);
        ok &= add(fo, "bin_edges", cJSON_CreateDoubleArray(fr->edges, VG_REF_BINS + 1));
        ok &= add(fo, "bin_shares", cJSON_CreateDoubleArray(fr->shares, VG_REF_BINS));
        ok &= add(fo, "below", cJSON_CreateNumber(fr->below));
        ok &= add(fo, "above", cJSON_CreateNumber(fr->above));
        ok &= add(fo, "mean", cJSON_CreateNumber(fr->mean));
        ok &= add(fo, "std", cJSON_CreateNumber(fr->std));
        ok &= add(fo, "min", cJSON_CreateNumber(fr->min));
        ok &= add(fo, "max", cJSON_CreateNumber(fr->max));
    }
    cJSON *dist = cJSON_CreateObject();
    ok &= add(ref, "class_distribution", dist);
    for (int k = 0; ok && k < r->n_classes; k++)
        ok &= add(dist, classes[k], cJSON_CreateNumber(r->class_shares[k]));
    if (!ok) {
        cJSON_Delete(ref);
        return NULL;
    }
    return ref;
}
