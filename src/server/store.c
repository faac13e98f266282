/*
 * The model store: the repository (docs/model-repository.md) as the server serves it.
 *
 * Loading. vg_store_open lists the repository once: every subdirectory whose name is a valid
 * model name is a model (entries starting with '.' and anything else are skipped), and its
 * highest numbered version serves. For that version it reads config.json (schema_version 1),
 * hashes model.onnx (SHA-256 through OpenSSL's EVP interface), loads it with the engine and checks
 * that the two agree: the configured input and outputs exist in the graph with the declared
 * datatypes, the input is FP32 [batch, n_features], the probabilities have one column per class,
 * and one run on a zero row succeeds. A model failing any check stays in the store as an entry
 * with a reason (logged, and exported as vigil_model_loaded 0); the others serve. The directory
 * name is the model's name: a different "name" in config.json is only warned about, so a copied
 * model directory still serves.
 *
 * Session pool. Each loaded model has a fixed array of slots (SESSIONS_PER_CPU per online CPU),
 * each holding a session made and warmed (planned for one row) at load. A slot is taken by
 * flipping its atomic flag 0 -> 1 with a compare-and-swap and given back with a release store: no
 * lock. A thread first tries the slot it used last (a thread-local hint), so an uncontended
 * worker keeps finding its own session with its plans and arena hot. When every slot is busy the
 * caller gets a fresh session, freed when it is released.
 *
 * Metrics. The per-model families are registered once here; every series a request can touch
 * (each outcome, each class) is bound at load, so the request path only updates handles.
 *
 * Image models ("task": "image_classification", docs/image-models.md): the "image" object is
 * checked by vg_image_spec_parse, the labels come from labels.txt (or "labels_file") beside
 * model.onnx, the graph's one input must be the [1 or batch, C, H, W] (or NHWC) tensor of the
 * configured dtype and crop, and its scores output [batch, n_classes] with one class per label
 * (the count is taken from the graph, or from the test run when the graph leaves it open). Only
 * the first pooled session is warmed (a CNN's arena is megabytes; the others plan on first use).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "server/jsonw.h"
#include "server/server.h"
#include "vigil/repo.h"

#define SCHEMA_VERSION 1
#define SESSIONS_PER_CPU 4
#define MIN_SESSIONS 4
#define MAX_SESSIONS 256
/* config.json holds the drift reference, a few KiB per feature: 64 MiB is far beyond any. */
#define MAX_CONFIG_BYTES ((size_t)64 << 20)
#define REASON_MAX 1024

static const char oom_reason[] = "out of memory";

static const char *const outcome_names[VG_N_OUTCOMES] = {"success", "bad_input", "internal"};

/* Bucket bounds of vigil_model_inference_duration_seconds: engine time, 1 µs to 1 s. */
static const double inference_bounds[] = {1e-6,   2.5e-6, 5e-6, 1e-5,   2.5e-5, 5e-5, 1e-4,
                                          2.5e-4, 5e-4,   1e-3, 2.5e-3, 5e-3,   0.01, 0.025,
                                          0.05,   0.1,    0.25, 0.5,    1};

struct store_families {
    struct vg_family *requests, *rows, *inference, *predictions, *info, *accuracy, *loaded,
        *load_duration, *load_timestamp, *image_decode, *image_preprocess, *image_rejected;
};

/* Bucket bounds of the image decode and preprocess histograms: 50 µs to 10 s. */
static const double image_bounds[] = {5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025,
                                      0.05, 0.1,  0.25,   0.5,  1,    2.5,    5,    10};

/* One pooled session, alone on its cache line so that flag flips do not false-share. */
struct pool_slot {
    alignas(64) atomic_int busy;
    struct vg_session *session; /* set at load, constant afterwards */
};

struct vg_served_private {
    struct pool_slot *slots;
    int n_slots;
    /* features: open addressing, table_mask + 1 cells holding a column or -1 */
    int *feature_table;
    uint32_t table_mask;
    /* metric handles */
    struct vg_counter *requests[VG_N_OUTCOMES];
    struct vg_counter *rows;
    struct vg_counter **predictions; /* n_classes */
    struct vg_histogram *inference;
    /* image models */
    struct vg_image_spec image;
    struct vg_image_metrics image_metrics;
    char *labels_text;
    /* storage behind the public fields */
    cJSON *config;
    const char **features;
    const char **classes;
    char version_str[24];
    char sha256[65];
};

/* Which pool slot this thread tried first last time; spreads threads over slots initially. */
static _Thread_local unsigned pool_hint;
static _Thread_local int pool_hint_set;
static atomic_uint pool_next_hint;

static double now_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now_realtime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int set_reason(char *reason, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int set_reason(char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, REASON_MAX, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- Files ----------------------------------------------------------------------------------- */

/* Reads a whole file (at most `max` bytes) into a NUL-terminated malloc'd buffer. */
static int read_file(const char *path, size_t max, char **out, size_t *len, char *reason)
{
    int rc = -1;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return set_reason(reason, "cannot read %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        set_reason(reason, "cannot read %s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        set_reason(reason, "%s is larger than %zu bytes", path, max);
        goto out;
    }
    size_t n = (size_t)st.st_size;
    buf = malloc(n + 1);
    if (!buf) {
        set_reason(reason, "out of memory reading %s", path);
        goto out;
    }
    if (fread(buf, 1, n, f) != n || ferror(f)) {
        set_reason(reason, "cannot read %s: short read", path);
        goto out;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    fclose(f);
    return rc;
}

/* SHA-256 of a file as 64 lowercase hex digits. */
static int file_sha256(const char *path, char hex[65], char *reason)
{
    int rc = -1;
    unsigned char chunk[16384];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return set_reason(reason, "cannot read %s: %s", path, strerror(errno));
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        set_reason(reason, "%s: cannot initialize SHA-256", path);
        goto out;
    }
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (EVP_DigestUpdate(ctx, chunk, n) != 1) {
            set_reason(reason, "%s: SHA-256 update failed", path);
            goto out;
        }
    if (ferror(f)) {
        set_reason(reason, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (EVP_DigestFinal_ex(ctx, md, &md_len) != 1 || md_len != 32) {
        set_reason(reason, "%s: SHA-256 finalization failed", path);
        goto out;
    }
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < md_len; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = 0;
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    fclose(f);
    return rc;
}

/* ---- Feature lookup -------------------------------------------------------------------------- */

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* Builds the feature table; fails on a duplicate name (it would make request rows ambiguous). */
static int build_feature_table(struct vg_served *m, const char *cfg_path, char *reason)
{
    struct vg_served_private *p = m->priv;
    uint32_t size = 8;
    while (size < 2u * (uint32_t)m->n_features)
        size <<= 1;
    p->feature_table = malloc(size * sizeof *p->feature_table);
    if (!p->feature_table)
        return set_reason(reason, "out of memory");
    for (uint32_t i = 0; i < size; i++)
        p->feature_table[i] = -1;
    p->table_mask = size - 1;
    for (int j = 0; j < m->n_features; j++) {
        uint32_t h = hash_name(m->features[j]) & p->table_mask;
        while (p->feature_table[h] >= 0) {
            if (!strcmp(m->features[p->feature_table[h]], m->features[j]))
                return set_reason(reason, "%s: feature '%s' is listed twice", cfg_path,
                                  m->features[j]);
            h = (h + 1) & p->table_mask;
        }
        p->feature_table[h] = j;
    }
    return 0;
}

int vg_served_feature_index(const struct vg_served *m, const char *name)
{
    const struct vg_served_private *p = m->priv;
    uint32_t h = hash_name(name) & p->table_mask;
    int j;
    while ((j = p->feature_table[h]) >= 0) {
        if (!strcmp(m->features[j], name))
            return j;
        h = (h + 1) & p->table_mask;
    }
    return -1;
}

/* ---- config.json ----------------------------------------------------------------------------- */

/* A JSON array of non-empty strings as a malloc'd array of pointers into the JSON (callers check
 * for duplicates). */
static int string_array(const cJSON *arr, const char *cfg_path, const char *field, int min_len,
                        const char ***out, int *n, char *reason)
{
    if (!cJSON_IsArray(arr))
        return set_reason(reason, "%s: '%s' must be an array of strings, got %s", cfg_path, field,
                          vg_json_kind(arr));
    int count = cJSON_GetArraySize(arr);
    if (count < min_len)
        return set_reason(reason, "%s: '%s' must hold at least %d name%s", cfg_path, field, min_len,
                          min_len == 1 ? "" : "s");
    const char **v = calloc(count > 0 ? (size_t)count : 1, sizeof *v);
    if (!v)
        return set_reason(reason, "out of memory");
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next) {
        if (!cJSON_IsString(it) || !it->valuestring[0]) {
            free(v);
            return set_reason(reason, "%s: %s[%d] must be a non-empty string, got %s", cfg_path,
                              field, i, cJSON_IsString(it) ? "\"\"" : vg_json_kind(it));
        }
        v[i++] = it->valuestring;
    }
    *out = v;
    *n = count;
    return 0;
}

/* The graph index of a tensor object's "name" in config.json, checking its declared datatype. */
static int config_tensor(const struct vg_model *model, const cJSON *t, int is_input,
                         const char *cfg_path, const char *field, int *index, char *reason)
{
    if (!cJSON_IsObject(t))
        return set_reason(reason,
                          "%s: '%s' must be an object {\"name\", \"datatype\", \"shape\"}, "
                          "got %s",
                          cfg_path, field, vg_json_kind(t));
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "name");
    if (!cJSON_IsString(name))
        return set_reason(reason, "%s: '%s.name' must be a string, got %s", cfg_path, field,
                          vg_json_kind(name));
    int i = is_input ? vg_model_input_index(model, name->valuestring)
                     : vg_model_output_index(model, name->valuestring);
    if (i < 0)
        return set_reason(reason, "%s: %s '%s' is not a graph %s of model.onnx", cfg_path, field,
                          name->valuestring, is_input ? "input" : "output");
    const struct vg_io_info *io = is_input ? vg_model_input(model, i) : vg_model_output(model, i);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "datatype");
    if (dt && !cJSON_IsString(dt))
        return set_reason(reason, "%s: '%s.datatype' must be a string, got %s", cfg_path, field,
                          vg_json_kind(dt));
    if (dt && vg_dtype_from_name(dt->valuestring) != io->dtype)
        return set_reason(reason, "%s: %s '%s' is declared %s but model.onnx has %s", cfg_path,
                          field, io->name, dt->valuestring, vg_dtype_name(io->dtype));
    *index = i;
    return 0;
}

/* An image classifier's "image" and "top_k"; its labels are read later (read_labels). */
static int parse_image_config(struct vg_served *m, const char *cfg_path, char *reason)
{
    struct vg_served_private *p = m->priv;
    char why[512];
    m->task = VG_TASK_CLASSIFICATION;
    if (vg_image_spec_parse(cJSON_GetObjectItemCaseSensitive(p->config, "image"),
                            cJSON_GetObjectItemCaseSensitive(p->config, "top_k"), &p->image, why,
                            sizeof why))
        return set_reason(reason, "%s: %s", cfg_path, why);
    m->image = &p->image;
    m->image_metrics = &p->image_metrics;
    p->features = calloc(1, sizeof *p->features);
    if (!p->features)
        return set_reason(reason, "out of memory");
    m->features = p->features;
    m->n_features = 0;
    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(p->config, "metrics");
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(metrics, "accuracy");
    m->holdout_accuracy = cJSON_IsNumber(acc) ? acc->valuedouble : NAN;
    return 0;
}

/* labels.txt (or config.json's "labels_file") of the version directory: one label per line. */
static int read_labels(struct vg_served *m, const char *version_dir, const char *cfg_path,
                       char *reason)
{
    struct vg_served_private *p = m->priv;
    const cJSON *lf = cJSON_GetObjectItemCaseSensitive(p->config, "labels_file");
    const char *file = "labels.txt";
    if (lf) {
        if (!cJSON_IsString(lf) || !lf->valuestring[0] || lf->valuestring[0] == '.' ||
            strchr(lf->valuestring, '/'))
            return set_reason(
                reason, "%s: 'labels_file' must be a file name in the version directory", cfg_path);
        file = lf->valuestring;
    }
    char *path = vg_repo_path(version_dir, file);
    if (!path)
        return set_reason(reason, "out of memory");
    size_t len = 0;
    int rc = read_file(path, MAX_CONFIG_BYTES, &p->labels_text, &len, reason);
    if (rc) {
        free(path);
        return rc;
    }
    char *t = p->labels_text;
    if (len && t[len - 1] == '\n')
        t[--len] = 0;
    int n = len ? 1 : 0;
    for (size_t i = 0; i < len; i++)
        n += t[i] == '\n';
    const char **labels = calloc(n > 0 ? (size_t)n : 1, sizeof *labels);
    if (!labels) {
        free(path);
        return set_reason(reason, "out of memory");
    }
    p->classes = labels;
    char *line = t;
    for (int k = 0; k < n; k++) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r')
            line[--l] = 0;
        if (!l) {
            set_reason(reason, "%s: line %d is empty (one label per line, none empty)", path,
                       k + 1);
            free(path);
            return -1;
        }
        labels[k] = line;
        line = nl ? nl + 1 : line + l;
    }
    if (n == 0) {
        set_reason(reason, "%s holds no label", path);
        free(path);
        return -1;
    }
    free(path);
    m->classes = labels;
    m->n_classes = n;
    const cJSON *classes = cJSON_GetObjectItemCaseSensitive(p->config, "classes");
    if (classes) {
        int i = 0, same = cJSON_IsArray(classes) && cJSON_GetArraySize(classes) == n;
        for (const cJSON *it = same ? classes->child : NULL; it && same; it = it->next, i++)
            same = cJSON_IsString(it) && !strcmp(it->valuestring, labels[i]);
        if (!same)
            return set_reason(reason, "%s: 'classes' differs from the %d labels of %s", cfg_path, n,
                              file);
    }
    return 0;
}

/* Index of the graph output holding an image classifier's scores. */
static int image_output(const struct vg_served *m, const char *cfg_path, int *index, char *reason)
{
    const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(m->config, "outputs");
    if (!outputs) {
        if (vg_model_n_outputs(m->model) != 1)
            return set_reason(reason,
                              "%s: model.onnx has %d outputs: say which holds the scores in "
                              "\"outputs\": {\"logits\": {\"name\": ...}}",
                              cfg_path, vg_model_n_outputs(m->model));
        *index = 0;
        return 0;
    }
    if (!cJSON_IsObject(outputs) || !outputs->child)
        return set_reason(reason, "%s: 'outputs' must be an object holding the scores tensor",
                          cfg_path);
    static const char *const roles[] = {"probabilities", "logits", "scores"};
    const cJSON *t = NULL;
    for (int i = 0; i < 3 && !t; i++)
        t = cJSON_GetObjectItemCaseSensitive(outputs, roles[i]);
    if (!t && !outputs->child->next)
        t = outputs->child;
    if (!t)
        return set_reason(reason,
                          "%s: 'outputs' of an image classifier needs \"probabilities\", "
                          "\"logits\" or \"scores\"",
                          cfg_path);
    char field[80];
    snprintf(field, sizeof field, "outputs.%s", t->string);
    return config_tensor(m->model, t, 0, cfg_path, field, index, reason);
}

static const char *image_dtype_name(enum vg_dtype dt)
{
    return dt == VG_DT_UINT8 ? "uint8" : dt == VG_DT_INT8 ? "int8" : "float32";
}

/* The graph against the "image" object: one input of the right dtype and shape, a scores
 * output of FP32 [batch, classes]. */
static int check_image_graph(struct vg_served *m, const char *cfg_path, char *reason)
{
    const struct vg_model *model = m->model;
    const struct vg_image_spec *sp = m->image;
    if (vg_model_n_inputs(model) != 1)
        return set_reason(reason, "model.onnx has %d graph inputs; vigil serves models with one",
                          vg_model_n_inputs(model));
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(m->config, "input");
    m->input = 0;
    if (input && config_tensor(model, input, 1, cfg_path, "input", &m->input, reason))
        return -1;
    const struct vg_io_info *in = vg_model_input(model, m->input);
    if (in->dtype != sp->dtype)
        return set_reason(reason, "%s: image.dtype is %s but graph input '%s' is %s", cfg_path,
                          image_dtype_name(sp->dtype), in->name, vg_dtype_name(in->dtype));
    int64_t want[4] = {1, sp->channels, sp->crop_h, sp->crop_w};
    if (sp->layout == VG_IMAGE_NHWC)
        want[1] = sp->crop_h, want[2] = sp->crop_w, want[3] = sp->channels;
    const char *axes = sp->layout == VG_IMAGE_NCHW ? "[N, C, H, W]" : "[N, H, W, C]";
    if (in->rank != -1 && in->rank != 4)
        return set_reason(reason, "graph input '%s' has rank %d; an %s image model needs %s",
                          in->name, in->rank, sp->layout == VG_IMAGE_NCHW ? "NCHW" : "NHWC", axes);
    for (int d = 0; in->rank == 4 && d < 4; d++)
        if (in->dims[d] >= 0 && in->dims[d] != want[d])
            return set_reason(reason,
                              "%s: graph input '%s' is %s = [%" PRId64 ", %" PRId64 ", %" PRId64
                              ", %" PRId64 "] but the image config gives [1, %" PRId64 ", %" PRId64
                              ", %" PRId64 "] (channels %d, crop [%d, %d])",
                              cfg_path, in->name, axes, in->dims[0], in->dims[1], in->dims[2],
                              in->dims[3], want[1], want[2], want[3], sp->channels, sp->crop_h,
                              sp->crop_w);
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(input, "shape");
    if (shape) {
        int ok = cJSON_IsArray(shape) && cJSON_GetArraySize(shape) == 4;
        for (int d = 0; ok && d < 4; d++) {
            const cJSON *v = cJSON_GetArrayItem(shape, d);
            ok = cJSON_IsNumber(v) &&
                 (v->valuedouble == (double)want[d] || (d == 0 && v->valuedouble == -1));
        }
        if (!ok)
            return set_reason(reason,
                              "%s: input.shape must be [-1 or 1, %" PRId64 ", %" PRId64 ", %" PRId64
                              "] for this image config",
                              cfg_path, want[1], want[2], want[3]);
    }
    if (image_output(m, cfg_path, &m->out_proba, reason))
        return -1;
    const struct vg_io_info *o = vg_model_output(model, m->out_proba);
    if (o->dtype != VG_DT_FLOAT || o->is_map)
        return set_reason(reason, "graph output '%s' (scores) is %s; vigil needs FP32", o->name,
                          o->is_map ? "a map" : vg_dtype_name(o->dtype));
    if (o->rank != -1 && o->rank != 2)
        return set_reason(reason,
                          "graph output '%s' (scores) has rank %d; vigil needs "
                          "[batch, classes]",
                          o->name, o->rank);
    if (o->rank == 2 && o->dims[1] >= 0 && o->dims[1] != m->n_classes)
        return set_reason(
            reason, "the labels file lists %d labels but graph output '%s' has %" PRId64 " classes",
            m->n_classes, o->name, o->dims[1]);
    return 0;
}

static int parse_config(struct vg_served *m, const char *dir_name, const char *cfg_path,
                        char *reason)
{
    struct vg_served_private *p = m->priv;
    const cJSON *cfg = p->config;
    if (!cJSON_IsObject(cfg))
        return set_reason(reason, "%s: must hold a JSON object, got %s", cfg_path,
                          vg_json_kind(cfg));

    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(cfg, "schema_version");
    if (!cJSON_IsNumber(sv) || sv->valuedouble != floor(sv->valuedouble))
        return set_reason(reason, "%s: 'schema_version' must be an integer, got %s", cfg_path,
                          vg_json_kind(sv));
    if (sv->valuedouble > SCHEMA_VERSION)
        return set_reason(reason,
                          "%s: schema_version %.0f is newer than this server understands (%d)",
                          cfg_path, sv->valuedouble, SCHEMA_VERSION);
    if (sv->valuedouble < 1)
        return set_reason(reason, "%s: schema_version %.0f is not valid (versions start at 1)",
                          cfg_path, sv->valuedouble);

    const cJSON *name = cJSON_GetObjectItemCaseSensitive(cfg, "name");
    if (!cJSON_IsString(name))
        return set_reason(reason, "%s: 'name' must be a string, got %s", cfg_path,
                          vg_json_kind(name));
    if (strcmp(name->valuestring, dir_name))
        vg_log("warn", "%s: name '%s' differs from the directory name; serving it as '%s'",
               cfg_path, name->valuestring, dir_name);

    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(cfg, "description");
    m->description = cJSON_IsString(desc) ? desc->valuestring : "";

    const cJSON *task = cJSON_GetObjectItemCaseSensitive(cfg, "task");
    if (cJSON_IsString(task) && !strcmp(task->valuestring, "classification"))
        m->task = VG_TASK_CLASSIFICATION;
    else if (cJSON_IsString(task) && !strcmp(task->valuestring, "regression"))
        m->task = VG_TASK_REGRESSION;
    else if (cJSON_IsString(task) && !strcmp(task->valuestring, "image_classification"))
        return parse_image_config(m, cfg_path, reason);
    else
        return set_reason(reason,
                          "%s: 'task' must be \"classification\" or \"regression\" (or "
                          "\"image_classification\" for an image model)",
                          cfg_path);

    if (string_array(cJSON_GetObjectItemCaseSensitive(cfg, "features"), cfg_path, "features", 1,
                     &p->features, &m->n_features, reason))
        return -1;
    m->features = p->features;

    const cJSON *classes = cJSON_GetObjectItemCaseSensitive(cfg, "classes");
    if (m->task == VG_TASK_CLASSIFICATION) {
        if (string_array(classes, cfg_path, "classes", 1, &p->classes, &m->n_classes, reason))
            return -1;
        for (int a = 0; a < m->n_classes; a++)
            for (int b = 0; b < a; b++)
                if (!strcmp(p->classes[a], p->classes[b]))
                    return set_reason(reason, "%s: class '%s' is listed twice", cfg_path,
                                      p->classes[a]);
        m->classes = p->classes;
    } else if (classes && !(cJSON_IsArray(classes) && cJSON_GetArraySize(classes) == 0)) {
        return set_reason(reason, "%s: a regression model's 'classes' must be [] or absent",
                          cfg_path);
    }

    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(cfg, "metrics");
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(metrics, "accuracy");
    m->holdout_accuracy = cJSON_IsNumber(acc) ? acc->valuedouble : NAN;
    return 0;
}

/* Checks the graph against the configuration and sets the input/output indices. */
static int check_graph(struct vg_served *m, const char *cfg_path, char *reason)
{
    const cJSON *cfg = m->config;
    const struct vg_model *model = m->model;

    if (config_tensor(model, cJSON_GetObjectItemCaseSensitive(cfg, "input"), 1, cfg_path, "input",
                      &m->input, reason))
        return -1;
    if (vg_model_n_inputs(model) != 1)
        return set_reason(reason, "model.onnx has %d graph inputs; vigil serves models with one",
                          vg_model_n_inputs(model));
    const struct vg_io_info *in = vg_model_input(model, m->input);
    if (in->dtype != VG_DT_FLOAT)
        return set_reason(reason, "graph input '%s' is %s; vigil needs FP32", in->name,
                          vg_dtype_name(in->dtype));
    if (in->rank != -1 && in->rank != 2)
        return set_reason(reason, "graph input '%s' has rank %d; vigil needs [batch, %d]", in->name,
                          in->rank, m->n_features);
    if (in->rank == 2 && in->dims[1] >= 0 && in->dims[1] != m->n_features)
        return set_reason(reason,
                          "%s lists %d features but graph input '%s' has %" PRId64 " columns",
                          cfg_path, m->n_features, in->name, in->dims[1]);
    const cJSON *shape =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "input"), "shape");
    if (cJSON_IsArray(shape)) {
        const cJSON *last = cJSON_GetArrayItem(shape, cJSON_GetArraySize(shape) - 1);
        if (cJSON_GetArraySize(shape) != 2 || !cJSON_IsNumber(last) ||
            last->valuedouble != (double)m->n_features)
            return set_reason(reason, "%s: input shape must be [-1, %d] for %d features", cfg_path,
                              m->n_features, m->n_features);
    }

    m->out_label = m->out_proba = m->out_value = -1;
    const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(cfg, "outputs");
    if (!cJSON_IsObject(outputs))
        return set_reason(reason, "%s: 'outputs' must be an object, got %s", cfg_path,
                          vg_json_kind(outputs));
    if (m->task == VG_TASK_CLASSIFICATION) {
        const cJSON *proba = cJSON_GetObjectItemCaseSensitive(outputs, "probabilities");
        if (!proba)
            return set_reason(reason, "%s: a classifier needs outputs.probabilities", cfg_path);
        if (config_tensor(model, proba, 0, cfg_path, "outputs.probabilities", &m->out_proba,
                          reason))
            return -1;
        const struct vg_io_info *o = vg_model_output(model, m->out_proba);
        if (o->dtype != VG_DT_FLOAT)
            return set_reason(reason, "graph output '%s' (probabilities) is %s; vigil needs FP32",
                              o->name, vg_dtype_name(o->dtype));
        if (!o->is_map && o->rank == 2 && o->dims[1] >= 0 && o->dims[1] != m->n_classes)
            return set_reason(reason,
                              "%s lists %d classes but graph output '%s' has %" PRId64 " columns",
                              cfg_path, m->n_classes, o->name, o->dims[1]);
        const cJSON *label = cJSON_GetObjectItemCaseSensitive(outputs, "label");
        if (label) {
            if (config_tensor(model, label, 0, cfg_path, "outputs.label", &m->out_label, reason))
                return -1;
            o = vg_model_output(model, m->out_label);
            if (o->dtype != VG_DT_INT64 && o->dtype != VG_DT_STRING)
                return set_reason(reason,
                                  "graph output '%s' (label) is %s; vigil needs INT64 or "
                                  "BYTES",
                                  o->name, vg_dtype_name(o->dtype));
            if (o->dtype == VG_DT_INT64)
                for (int k = 0; k < m->n_classes; k++) {
                    char *end;
                    char canon[32];
                    errno = 0;
                    long long v = strtoll(m->classes[k], &end, 10);
                    snprintf(canon, sizeof canon, "%lld", v);
                    if (errno || *end || strcmp(canon, m->classes[k]))
                        return set_reason(reason,
                                          "%s: the label output is INT64 but class '%s' is not "
                                          "an integer",
                                          cfg_path, m->classes[k]);
                }
        }
    } else {
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(outputs, "value");
        if (!value)
            return set_reason(reason, "%s: a regressor needs outputs.value", cfg_path);
        if (config_tensor(model, value, 0, cfg_path, "outputs.value", &m->out_value, reason))
            return -1;
        const struct vg_io_info *o = vg_model_output(model, m->out_value);
        if (o->dtype != VG_DT_FLOAT)
            return set_reason(reason, "graph output '%s' (value) is %s; vigil needs FP32", o->name,
                              vg_dtype_name(o->dtype));
        if (o->rank > 2 || (o->rank == 2 && o->dims[1] >= 0 && o->dims[1] != 1))
            return set_reason(reason, "graph output '%s' (value) must be [batch] or [batch, 1]",
                              o->name);
    }
    return 0;
}

/* ---- Sessions -------------------------------------------------------------------------------- */

/* One run on zero rows: plans the common one-row shape and checks the output shapes for real. */
/* The image model's test run: a black image's worth of zeros. */
/* Runs s once on t, then frees t->data; a failure sets reason ("a test run on <on> failed"). */
static int test_run(struct vg_served *m, struct vg_session *s, struct vg_tensor *t, const char *on,
                    char *reason)
{
    struct vg_error err = {0};
    int rc = vg_session_set_input(s, m->input, t, &err);
    if (!rc)
        rc = vg_session_run(s, &err);
    free(t->data);
    if (rc)
        return set_reason(reason, "a test run on %s failed: %s", on,
                          err.msg[0] ? err.msg : vg_strerror(rc));
    return 0;
}

static int warm_image_session(struct vg_served *m, struct vg_session *s, char *reason)
{
    const struct vg_image_spec *sp = m->image;
    size_t n = (size_t)sp->crop_h * sp->crop_w * (size_t)sp->channels;
    void *zeros = calloc(n, vg_dtype_size(sp->dtype));
    if (!zeros)
        return set_reason(reason, "out of memory");
    struct vg_tensor t = {.dtype = sp->dtype, .rank = 4, .data = zeros};
    int64_t dims[4] = {1, sp->channels, sp->crop_h, sp->crop_w};
    if (sp->layout == VG_IMAGE_NHWC)
        dims[1] = sp->crop_h, dims[2] = sp->crop_w, dims[3] = sp->channels;
    memcpy(t.dims, dims, sizeof dims);
    if (test_run(m, s, &t, "a black image", reason))
        return -1;
    const struct vg_tensor *o = vg_session_output(s, m->out_proba);
    const char *oname = vg_model_output(m->model, m->out_proba)->name;
    if (!o || o->dtype != VG_DT_FLOAT || o->rank != 2 || o->dims[0] != 1)
        return set_reason(reason,
                          "graph output '%s' (scores) is not [batch, classes] on a "
                          "test run",
                          oname);
    if (o->dims[1] != m->n_classes)
        return set_reason(reason,
                          "the labels file lists %d labels but graph output '%s' gives %" PRId64
                          " scores",
                          m->n_classes, oname, o->dims[1]);
    return 0;
}

static int warm_session(struct vg_served *m, struct vg_session *s, int check, char *reason)
{
    if (m->image)
        return check ? warm_image_session(m, s, reason) : 0;
    const struct vg_io_info *in = vg_model_input(m->model, m->input);
    int64_t rows = in->rank == 2 && in->dims[0] > 0 ? in->dims[0] : 1;
    if (rows > 4096)
        return set_reason(reason, "graph input '%s' has a fixed batch of %" PRId64 " rows",
                          in->name, rows);
    float *zeros = calloc((size_t)(rows * m->n_features), sizeof *zeros);
    if (!zeros)
        return set_reason(reason, "out of memory");
    struct vg_tensor t = {
        .dtype = VG_DT_FLOAT, .rank = 2, .dims = {rows, m->n_features}, .data = zeros};
    if (test_run(m, s, &t, "a row of zeros", reason))
        return -1;
    if (!check)
        return 0;
    if (m->out_proba >= 0) {
        const struct vg_tensor *o = vg_session_output(s, m->out_proba);
        if (!o || o->rank != 2 || o->dims[0] != rows || o->dims[1] != m->n_classes)
            return set_reason(reason,
                              "graph output '%s' (probabilities) is not [batch, %d] for the %d "
                              "classes of config.json",
                              vg_model_output(m->model, m->out_proba)->name, m->n_classes,
                              m->n_classes);
    }
    int one_per_row[] = {m->out_label, m->out_value};
    for (int i = 0; i < 2; i++) {
        if (one_per_row[i] < 0)
            continue;
        const struct vg_tensor *o = vg_session_output(s, one_per_row[i]);
        if (!o || vg_tensor_numel(o) != rows || (o->rank >= 1 && o->dims[0] != rows))
            return set_reason(reason, "graph output '%s' does not have one value per row",
                              vg_model_output(m->model, one_per_row[i])->name);
    }
    return 0;
}

static int pool_size(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long n = (cpus > 0 ? cpus : 1) * SESSIONS_PER_CPU;
    return n < MIN_SESSIONS ? MIN_SESSIONS : n > MAX_SESSIONS ? MAX_SESSIONS : (int)n;
}

static int make_pool(struct vg_served *m, char *reason)
{
    struct vg_served_private *p = m->priv;
    int n = pool_size();
    p->slots = aligned_alloc(alignof(struct pool_slot), (size_t)n * sizeof *p->slots);
    if (!p->slots)
        return set_reason(reason, "out of memory");
    p->n_slots = n;
    for (int i = 0; i < n; i++) {
        atomic_init(&p->slots[i].busy, 0);
        p->slots[i].session = NULL;
    }
    for (int i = 0; i < n; i++) {
        p->slots[i].session = vg_session_new(m->model);
        if (!p->slots[i].session)
            return set_reason(reason, "out of memory creating sessions");
        if (warm_session(m, p->slots[i].session, i == 0, reason))
            return -1;
    }
    return 0;
}

struct vg_session *vg_served_acquire(struct vg_served *m)
{
    struct vg_served_private *p = m->priv;
    if (!pool_hint_set) {
        pool_hint = atomic_fetch_add_explicit(&pool_next_hint, 1, memory_order_relaxed);
        pool_hint_set = 1;
    }
    unsigned start = pool_hint % (unsigned)p->n_slots;
    for (int k = 0; k < p->n_slots; k++) {
        unsigned i = (start + (unsigned)k) % (unsigned)p->n_slots;
        atomic_int *busy = &p->slots[i].busy;
        int expected = 0;
        /* A plain load first: a busy slot costs no cache-line write. */
        if (atomic_load_explicit(busy, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(busy, &expected, 1, memory_order_acquire,
                                                    memory_order_relaxed)) {
            pool_hint = i;
            return p->slots[i].session;
        }
    }
    return vg_session_new(m->model);
}

void vg_served_release(struct vg_served *m, struct vg_session *s)
{
    struct vg_served_private *p = m->priv;
    if (!s)
        return;
    unsigned start = pool_hint % (unsigned)p->n_slots;
    for (int k = 0; k < p->n_slots; k++) {
        unsigned i = (start + (unsigned)k) % (unsigned)p->n_slots;
        if (p->slots[i].session == s) {
            atomic_store_explicit(&p->slots[i].busy, 0, memory_order_release);
            return;
        }
    }
    vg_session_free(s); /* an overflow session made because every slot was busy */
}

int vg_served_run(struct vg_served *m, struct vg_session *s, struct vg_error *err)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = vg_session_run(s, err);
    clock_gettime(CLOCK_MONOTONIC, &b);
    vg_histogram_observe(m->priv->inference,
                         (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9);
    return rc;
}

void vg_served_count(struct vg_served *m, enum vg_outcome outcome, int64_t rows)
{
    if (outcome < 0 || outcome >= VG_N_OUTCOMES)
        return;
    vg_counter_inc(m->priv->requests[outcome]);
    if (outcome == VG_OUTCOME_SUCCESS && rows > 0)
        vg_counter_add(m->priv->rows, (uint64_t)rows);
}

void vg_served_count_class(struct vg_served *m, int k)
{
    if (k >= 0 && k < m->n_classes)
        vg_counter_inc(m->priv->predictions[k]);
}

/* ---- Metrics --------------------------------------------------------------------------------- */

static int register_families(struct vg_registry *reg, struct store_families *f,
                             struct vg_error *err)
{
    static const char *const mv[] = {"model", "version", NULL};
    static const char *const mvo[] = {"model", "version", "outcome", NULL};
    static const char *const mvc[] = {"model", "version", "class", NULL};
    static const char *const mvs[] = {"model", "version", "sha256", NULL};
    static const char *const mvr[] = {"model", "version", "reason", NULL};
    int rc;
    if ((rc = vg_counter_register(reg, "vigil_model_requests_total",
                                  "Prediction requests that reached a loaded model, by outcome: "
                                  "success, bad_input (the request was refused) or internal.",
                                  mvo, &f->requests, err)) ||
        (rc = vg_counter_register(reg, "vigil_model_rows_total",
                                  "Rows (instances) predicted by successful requests.", mv,
                                  &f->rows, err)) ||
        (rc = vg_histogram_register(reg, "vigil_model_inference_duration_seconds",
                                    "Time spent in the engine running the model, per request "
                                    "(parsing and serialization excluded).",
                                    mv, inference_bounds,
                                    sizeof inference_bounds / sizeof inference_bounds[0],
                                    &f->inference, err)) ||
        (rc = vg_counter_register(reg, "vigil_model_predictions_total",
                                  "Rows predicted as each class (classification models).", mvc,
                                  &f->predictions, err)) ||
        (rc = vg_gauge_register(reg, "vigil_model_info",
                                "The model version serving, with the SHA-256 of its model.onnx; "
                                "always 1.",
                                mvs, &f->info, err)) ||
        (rc = vg_gauge_register(reg, "vigil_model_holdout_accuracy",
                                "Accuracy on the holdout rows at training time (config.json "
                                "metrics.accuracy); absent when unknown.",
                                mv, &f->accuracy, err)) ||
        (rc = vg_gauge_register(reg, "vigil_model_loaded",
                                "1 when the model version loaded and serves, 0 when it failed to "
                                "load (version is empty when no version directory was found).",
                                mv, &f->loaded, err)) ||
        (rc = vg_gauge_register(reg, "vigil_model_load_duration_seconds",
                                "Seconds spent loading the model version: reading, hashing, "
                                "checking and warming its sessions.",
                                mv, &f->load_duration, err)) ||
        (rc = vg_gauge_register(reg, "vigil_model_load_timestamp_seconds",
                                "When the model version finished loading, in seconds since the "
                                "Unix epoch.",
                                mv, &f->load_timestamp, err)) ||
        (rc = vg_histogram_register(reg, "vigil_image_decode_seconds",
                                    "Time spent decoding images (JPEG, PNG, EXIF) for an image "
                                    "model, per request.",
                                    mv, image_bounds, sizeof image_bounds / sizeof image_bounds[0],
                                    &f->image_decode, err)) ||
        (rc = vg_histogram_register(reg, "vigil_image_preprocess_seconds",
                                    "Time spent preprocessing decoded images (orientation, "
                                    "resize, crop, normalisation) for an image model, per "
                                    "request.",
                                    mv, image_bounds, sizeof image_bounds / sizeof image_bounds[0],
                                    &f->image_preprocess, err)) ||
        (rc = vg_counter_register(reg, "vigil_image_rejected_total",
                                  "Image prediction requests refused, by reason.", mvr,
                                  &f->image_rejected, err)))
        return rc;
    return 0;
}

static int set_gauge(struct vg_family *f, const char *const *labels, double v)
{
    struct vg_gauge *g;
    int rc = vg_gauge_bind(f, labels, &g);
    if (!rc)
        vg_gauge_set(g, v);
    return rc;
}

/* Binds every series a request may update, and sets the load gauges. */
static int bind_metrics(struct vg_served *m, const struct store_families *f, char *reason)
{
    struct vg_served_private *p = m->priv;
    const char *mv[] = {m->name, m->version_str};
    int rc = 0;
    for (int o = 0; o < VG_N_OUTCOMES && !rc; o++) {
        const char *mvo[] = {m->name, m->version_str, outcome_names[o]};
        rc = vg_counter_bind(f->requests, mvo, &p->requests[o]);
    }
    if (!rc)
        rc = vg_counter_bind(f->rows, mv, &p->rows);
    if (!rc)
        rc = vg_histogram_bind(f->inference, mv, &p->inference);
    if (!rc && m->n_classes > 0) {
        p->predictions = calloc((size_t)m->n_classes, sizeof *p->predictions);
        if (!p->predictions)
            rc = -VG_ENOMEM;
    }
    for (int k = 0; k < m->n_classes && !rc; k++) {
        const char *mvc[] = {m->name, m->version_str, m->classes[k]};
        rc = vg_counter_bind(f->predictions, mvc, &p->predictions[k]);
    }
    if (!rc && m->image) {
        struct vg_image_metrics *im = &p->image_metrics;
        rc = vg_histogram_bind(f->image_decode, mv, &im->decode);
        if (!rc)
            rc = vg_histogram_bind(f->image_preprocess, mv, &im->preprocess);
        for (int k = 0; k < VG_N_IMAGE_REJECTS && !rc; k++) {
            const char *mvr[] = {m->name, m->version_str, vg_image_reject_names[k]};
            rc = vg_counter_bind(f->image_rejected, mvr, &im->rejected[k]);
        }
    }
    if (!rc) {
        const char *mvs[] = {m->name, m->version_str, m->sha256};
        rc = set_gauge(f->info, mvs, 1);
    }
    if (!rc && !isnan(m->holdout_accuracy))
        rc = set_gauge(f->accuracy, mv, m->holdout_accuracy);
    if (!rc)
        rc = set_gauge(f->load_duration, mv, m->load_seconds);
    if (!rc)
        rc = set_gauge(f->load_timestamp, mv, now_realtime());
    if (!rc)
        rc = set_gauge(f->loaded, mv, 1);
    if (rc)
        return set_reason(reason, "cannot bind the model's metric series: %s", vg_strerror(rc));
    return 0;
}

/* ---- Loading --------------------------------------------------------------------------------- */

static void served_free(struct vg_served *m)
{
    if (!m)
        return;
    struct vg_served_private *p = m->priv;
    if (p) {
        for (int i = 0; i < p->n_slots; i++)
            vg_session_free(p->slots[i].session);
        free(p->slots);
        free(p->feature_table);
        free(p->predictions);
        free(p->features);
        free(p->classes);
        free(p->labels_text);
        cJSON_Delete(p->config);
        free(p);
    }
    vg_model_free((struct vg_model *)m->model);
    free(m);
}

/* Loads version `version` of the model in `dir`/`name`; on failure writes why into reason. */
static int load_served(const char *dir, const char *name, int64_t version,
                       const struct store_families *f, struct vg_served **out, char *reason)
{
    int rc = -1;
    double t0 = now_monotonic();
    char *model_dir = NULL, *version_dir = NULL, *cfg_path = NULL, *onnx_path = NULL;
    char *text = NULL;
    size_t text_len = 0;
    struct vg_served *m = calloc(1, sizeof *m);
    struct vg_served_private *p = calloc(1, sizeof *p);
    if (!m || !p) {
        free(p);
        set_reason(reason, "out of memory");
        goto out;
    }
    m->priv = p;
    m->name = name;
    m->version = version;
    snprintf(p->version_str, sizeof p->version_str, "%" PRId64, version);
    m->version_str = p->version_str;
    m->sha256 = p->sha256;
    m->out_label = m->out_proba = m->out_value = -1;

    model_dir = vg_repo_path(dir, name);
    version_dir = model_dir ? vg_repo_path(model_dir, p->version_str) : NULL;
    cfg_path = version_dir ? vg_repo_path(version_dir, "config.json") : NULL;
    if (!cfg_path) {
        set_reason(reason, "out of memory");
        goto out;
    }
    if (read_file(cfg_path, MAX_CONFIG_BYTES, &text, &text_len, reason))
        goto out;
    const char *end = NULL;
    p->config = cJSON_ParseWithLengthOpts(text, text_len, &end, 0);
    if (!p->config) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        int line = 1;
        for (size_t i = 0; i < at && i < text_len; i++)
            line += text[i] == '\n';
        set_reason(reason, "%s: invalid JSON at byte %zu (line %d)", cfg_path, at, line);
        goto out;
    }
    m->config = p->config;
    if (parse_config(m, name, cfg_path, reason))
        goto out;

    const cJSON *file = cJSON_GetObjectItemCaseSensitive(m->config, "model_file");
    const char *file_name = "model.onnx";
    if (file) {
        if (!cJSON_IsString(file) || !file->valuestring[0] || file->valuestring[0] == '.' ||
            strchr(file->valuestring, '/')) {
            set_reason(reason, "%s: 'model_file' must be a file name in the version directory",
                       cfg_path);
            goto out;
        }
        file_name = file->valuestring;
    }
    onnx_path = vg_repo_path(version_dir, file_name);
    if (!onnx_path) {
        set_reason(reason, "out of memory");
        goto out;
    }
    if (file_sha256(onnx_path, p->sha256, reason))
        goto out;
    struct vg_model *model = NULL;
    struct vg_error err = {0};
    int lrc = vg_engine_load_file(onnx_path, &model, &err);
    if (lrc) {
        set_reason(reason, "%s", err.msg[0] ? err.msg : vg_strerror(lrc));
        goto out;
    }
    m->model = model;
    if (m->image ? read_labels(m, version_dir, cfg_path, reason) ||
                       check_image_graph(m, cfg_path, reason)
                 : check_graph(m, cfg_path, reason))
        goto out;
    if (build_feature_table(m, cfg_path, reason) || make_pool(m, reason))
        goto out;
    m->load_seconds = now_monotonic() - t0;
    if (bind_metrics(m, f, reason))
        goto out;
    *out = m;
    m = NULL;
    rc = 0;
out:
    served_free(m);
    free(text);
    free(onnx_path);
    free(cfg_path);
    free(version_dir);
    free(model_dir);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct vg_store_entry *)a)->name,
                  ((const struct vg_store_entry *)b)->name);
}

/* Lists the model directories of the repository as entries (names only), sorted by name. */
static int list_models(struct vg_store *s, struct vg_error *err)
{
    int rc = 0, cap = 0;
    DIR *d = opendir(s->dir);
    if (!d) {
        err->code = VG_EIO;
        snprintf(err->msg, sizeof err->msg, "cannot read the model repository %s: %s", s->dir,
                 strerror(errno));
        return -VG_EIO;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *path = vg_repo_path(s->dir, e->d_name);
        struct stat st;
        int is_dir = path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        free(path);
        if (!is_dir)
            continue;
        if (!vg_repo_valid_name(e->d_name)) {
            vg_log("warn",
                   "model repository %s: skipping directory '%s': not a valid model name "
                   "(1 to %d of A-Z a-z 0-9 . - _)",
                   s->dir, e->d_name, VG_REPO_MAX_NAME);
            continue;
        }
        if (s->n == cap) {
            int ncap = cap ? cap * 2 : 16;
            struct vg_store_entry *ne = realloc(s->entries, (size_t)ncap * sizeof *ne);
            if (!ne)
                goto oom;
            s->entries = ne;
            cap = ncap;
        }
        struct vg_store_entry *en = &s->entries[s->n];
        memset(en, 0, sizeof *en);
        if (!(en->name = strdup(e->d_name)))
            goto oom;
        s->n++;
    }
    if (s->n > 1)
        qsort(s->entries, (size_t)s->n, sizeof *s->entries, by_name);
    goto out;
oom:
    err->code = VG_ENOMEM;
    snprintf(err->msg, sizeof err->msg, "out of memory listing %s", s->dir);
    rc = -VG_ENOMEM;
out:
    closedir(d);
    return rc;
}

int vg_store_open(struct vg_store *s, const char *dir, const char *default_model,
                  struct vg_registry *reg, struct vg_error *err)
{
    struct vg_error local_err = {0};
    if (!err)
        err = &local_err;
    memset(s, 0, sizeof *s);
    struct store_families *f = calloc(1, sizeof *f);
    s->dir = strdup(dir);
    s->registry = reg;
    s->priv = f;
    if (!f || !s->dir) {
        err->code = VG_ENOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory");
        vg_store_close(s);
        return -VG_ENOMEM;
    }
    int rc = register_families(reg, f, err);
    if (!rc)
        rc = list_models(s, err);
    if (rc) {
        vg_store_close(s);
        return rc;
    }

    for (int i = 0; i < s->n; i++) {
        struct vg_store_entry *e = &s->entries[i];
        char reason[REASON_MAX] = "";
        struct vg_error verr = {0};
        if (vg_repo_latest_version(dir, e->name, &e->version, &verr)) {
            snprintf(reason, sizeof reason, "%s", verr.msg);
        } else if (e->version == 0) {
            snprintf(reason, sizeof reason,
                     "no version directory in %s/%s (expected a numbered directory such as "
                     "%s/%s/1 holding model.onnx and config.json)",
                     dir, e->name, dir, e->name);
        } else if (load_served(dir, e->name, e->version, f, &e->served, reason) == 0) {
            e->loaded = 1;
            vg_log("info", "model %s version %" PRId64 " loaded in %.1f ms (sha256 %s)", e->name,
                   e->version, e->served->load_seconds * 1e3, e->served->sha256);
            continue;
        }
        e->reason = strdup(reason);
        if (!e->reason)
            e->reason = oom_reason;
        vg_log("error", "model %s not loaded: %s", e->name, e->reason);
        char version_str[24] = "";
        if (e->version > 0)
            snprintf(version_str, sizeof version_str, "%" PRId64, e->version);
        const char *mv[] = {e->name, version_str};
        set_gauge(f->loaded, mv, 0);
    }

    const struct vg_store_entry *def = default_model ? vg_store_find(s, default_model) : NULL;
    if (default_model && !(def && def->loaded))
        vg_log("warn", "default model '%s' %s; /predict uses the first loaded model instead",
               default_model, def ? "did not load" : "is not in the repository");
    if (def && def->loaded) {
        s->default_model = def->name;
    } else {
        for (int i = 0; i < s->n && !s->default_model; i++)
            if (s->entries[i].loaded)
                s->default_model = s->entries[i].name;
    }
    if (!s->n)
        vg_log("warn", "model repository %s holds no model", dir);
    return 0;
}

void vg_store_close(struct vg_store *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n; i++) {
        struct vg_store_entry *e = &s->entries[i];
        served_free(e->served);
        if (e->reason != oom_reason)
            free((char *)e->reason);
        free((char *)e->name);
    }
    free(s->entries);
    free(s->dir);
    free(s->priv);
    memset(s, 0, sizeof *s);
}

const struct vg_store_entry *vg_store_find(const struct vg_store *s, const char *name)
{
    int lo = 0, hi = s->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, s->entries[mid].name);
        if (c == 0)
            return &s->entries[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

int vg_store_n_loaded(const struct vg_store *s)
{
    int n = 0;
    for (int i = 0; i < s->n; i++)
        n += s->entries[i].loaded;
    return n;
}
