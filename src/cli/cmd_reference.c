/*
 * `vigil reference`: computes the drift reference of a model in a repository from a CSV file and
 * writes it into that version's config.json (docs/reference.md), for models `vigil train` did not
 * write (imported ones) or to move a reference to other data.
 *
 * The reference has the format `vigil train` writes (docs/model-repository.md): per feature the
 * decile edges, bin shares, moments and range of the rows (vg_reference_features, the same code
 * as training), and for a classifier the class distribution of the model's *predictions* on those
 * rows, not of labels: live traffic has no labels, so the server compares its predicted classes
 * with this. The model runs through vigil's engine exactly as the server runs it: the output
 * config.json names as "label" gives the class; without one, the most probable class of
 * "probabilities" (the first on a tie).
 *
 * Order of work: read config.json, load the model, read the whole CSV, predict every row and
 * compute the reference, all in memory; only then is config.json replaced (vg_repo_set_config:
 * temporary file, fsync, rename, and the model-level copy when this is the newest version). Any
 * failure before that leaves the repository byte for byte as it was. Every other key of
 * config.json keeps its value: the tree is parsed, only "reference" is replaced (or appended), and
 * it is printed again by cJSON as `vigil train` prints it, so a file vigil wrote keeps its bytes
 * outside "reference" (a hand-written one keeps its values, not its layout).
 */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "vigil/repo.h"
#include "vigil/train.h"

#define CMD "reference"
/* config.json holds a reference of a few KiB per feature: far below this. */
#define MAX_CONFIG_BYTES ((long)64 << 20)
#define MAX_VERSION 999999999999999LL
/* Rows per engine run: bounded memory for the input and output tensors whatever the file. */
#define CHUNK_ROWS 4096

static const char reference_usage[] =
    "Usage: vigil reference --model NAME --data FILE.csv [--repo DIR] [--version V]\n"
    "                       [--target COLUMN] [--impute mean|median] [--json]\n"
    "\n"
    "Computes the drift reference of model NAME in a model repository from a CSV file and\n"
    "writes it into DIR/NAME/<version>/config.json (and DIR/NAME/config.json, its copy, when\n"
    "that version is the newest), in the format `vigil train` writes: per feature the decile bin\n"
    "edges, the share of rows per bin, mean, std, min and max; for a classifier the class\n"
    "distribution of the model's predictions on those rows. Use it for models trained elsewhere\n"
    "(imported ONNX files with a hand-written config.json), or to base a model's reference on\n"
    "other data than its training rows.\n"
    "\n"
    "The features are config.json's \"features\": the CSV columns of those names, in any order;\n"
    "other columns are ignored. The model runs through vigil's engine as the server runs it: the\n"
    "class is its \"label\" output, or without one the most probable class of \"probabilities\"\n"
    "(class names from config.json's \"classes\"). A regressor gets no class distribution.\n"
    "\n"
    "Options:\n"
    "  --model NAME          the model (a directory of the repository) (required)\n"
    "  --data FILE           the rows: CSV with a header row, like `vigil train` reads (required)\n"
    "  --repo DIR            the model repository (default: models)\n"
    "  --version V           the version to update (default: the newest)\n"
    "  --target COLUMN       a column of true labels (or values): only to report the model's\n"
    "                        accuracy (regression: MAE) on the rows; not written anywhere\n"
    "  --impute mean|median  fill empty and NaN feature cells with the column's mean or median\n"
    "                        (default: such cells are an error), as `vigil train --impute`\n"
    "  --json                print one JSON object instead of the text report\n"
    "  -h, --help            show this help\n"
    "\n"
    "Only the \"reference\" key of config.json changes; every other key keeps its value. The\n"
    "file is replaced atomically (temporary file, fsync, rename). A model, configuration or data\n"
    "error (a missing feature column, a model that does not run, a class the config does not\n"
    "list) writes nothing.\n"
    "\n"
    "Exit status: 0 success; 1 an unknown model or version, a bad config.json, model or CSV\n"
    "(the message names file, line and column), or a write failure; 2 usage error.\n";

struct reference_opts {
    const char *repo, *model, *data, *target;
    int64_t version; /* 0: the newest */
    enum vg_impute impute;
    int json;
};

/* What config.json says about the model, pointing into the parsed tree. */
struct model_config {
    cJSON *root;
    char *path; /* REPO/NAME/V/config.json, for messages */
    enum vg_task task;
    int n_features, n_classes;
    const char **features, **classes;
    const char *model_file, *input, *label, *probabilities, *value; /* graph names, or NULL */
};

/* ---- options ------------------------------------------------------------------------------- */

static int parse_args(int argc, char **argv, struct reference_opts *o)
{
    memset(o, 0, sizeof *o);
    o->repo = "models";
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m;
#define OPT(name) ((m = vg_cli_opt_value(argc, argv, &i, name, &v)) != 0)
        if (!strcmp(argv[i], "--json")) {
            o->json = 1;
            continue;
        }
        if (OPT("--model")) {
            o->model = v;
        } else if (OPT("--data")) {
            o->data = v;
        } else if (OPT("--repo")) {
            o->repo = v;
        } else if (OPT("--target")) {
            o->target = v;
        } else if (OPT("--version")) {
            if (m > 0) {
                char *end;
                errno = 0;
                long long n = strtoll(v, &end, 10);
                if (v[0] < '1' || v[0] > '9' || *end || errno || n < 1 || n > MAX_VERSION)
                    return vg_cli_usage_error(CMD, "--version: '%s' is not a version number >= 1",
                                              v);
                o->version = n;
            }
        } else if (OPT("--impute")) {
            if (m > 0 && !strcmp(v, "mean"))
                o->impute = VG_IMPUTE_MEAN;
            else if (m > 0 && !strcmp(v, "median"))
                o->impute = VG_IMPUTE_MEDIAN;
            else if (m > 0)
                return vg_cli_usage_error(CMD, "--impute: '%s' is not mean or median", v);
        } else if (argv[i][0] == '-') {
            return vg_cli_usage_error(CMD, "unknown option '%s'", argv[i]);
        } else {
            return vg_cli_usage_error(CMD, "unexpected argument '%s'", argv[i]);
        }
#undef OPT
        if (m < 0)
            return vg_cli_usage_error(CMD, "option '%s' needs a value", argv[i]);
    }
    if (!o->model || !o->data)
        return vg_cli_usage_error(CMD, "--model and --data are required");
    if (!vg_repo_valid_name(o->model))
        return vg_cli_usage_error(CMD,
                                  "--model: '%s' is not a model name (1 to %d letters, digits, "
                                  "'.', '-' or '_', not starting with '.')",
                                  o->model, VG_REPO_MAX_NAME);
    if (!o->repo[0])
        return vg_cli_usage_error(CMD, "--repo: empty directory name");
    if (o->target && !o->target[0])
        return vg_cli_usage_error(CMD, "--target: empty column name");
    return 0;
}

/* ---- config.json --------------------------------------------------------------------------- */

static void config_release(struct model_config *mc)
{
    cJSON_Delete(mc->root);
    free(mc->path);
    free(mc->features);
    free(mc->classes);
    memset(mc, 0, sizeof *mc);
}

/* The whole file, NUL-terminated, at most MAX_CONFIG_BYTES. */
static char *read_text(const char *path, long *len)
{
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        vg_cli_fail(CMD, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) || (*len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        vg_cli_fail(CMD, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (*len > MAX_CONFIG_BYTES) {
        vg_cli_fail(CMD, "%s: larger than %ld bytes; not a config.json", path, MAX_CONFIG_BYTES);
        goto out;
    }
    buf = malloc((size_t)*len + 1);
    if (!buf) {
        vg_cli_fail(CMD, "out of memory");
        goto out;
    }
    if (fread(buf, 1, (size_t)*len, f) != (size_t)*len) {
        vg_cli_fail(CMD, "cannot read %s", path);
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[*len] = '\0';
out:
    fclose(f);
    return buf;
}

/* A JSON array of distinct non-empty strings; *out points into the tree. */
static int name_list(const struct model_config *mc, const char *field, const char ***out, int *n)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(mc->root, field);
    int count = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    if (count < 1)
        return vg_cli_fail(CMD, "%s: '%s' must be a non-empty array of names", mc->path, field);
    *out = calloc((size_t)count, sizeof **out);
    if (!*out)
        return vg_cli_fail(CMD, "out of memory");
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it) || !it->valuestring[0])
            return vg_cli_fail(CMD, "%s: %s[%d] must be a non-empty string", mc->path, field, i);
        for (int k = 0; k < i; k++)
            if (!strcmp((*out)[k], it->valuestring))
                return vg_cli_fail(CMD, "%s: '%s' is listed twice in '%s'", mc->path,
                                   it->valuestring, field);
        (*out)[i++] = it->valuestring;
    }
    *n = count;
    return 0;
}

/* The "name" of a tensor object (config.json's "input" or outputs.<role>); NULL when absent. */
static const char *tensor_name(const cJSON *parent, const char *role)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(parent, role);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "name");
    return cJSON_IsString(name) && name->valuestring[0] ? name->valuestring : NULL;
}

static int read_config(const char *version_dir, struct model_config *mc)
{
    int rc = VG_CLI_FAIL;
    long len = 0;
    char *text = NULL;
    mc->path = vg_repo_path(version_dir, "config.json");
    if (!mc->path)
        return vg_cli_fail(CMD, "out of memory");
    text = read_text(mc->path, &len);
    if (!text)
        goto out;
    const char *end = NULL;
    mc->root = strlen(text) == (size_t)len ? cJSON_ParseWithOpts(text, &end, 1) : NULL;
    if (!cJSON_IsObject(mc->root)) {
        vg_cli_fail(CMD, "%s: not a JSON object%s", mc->path, mc->root ? "" : " (malformed JSON)");
        goto out;
    }
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(mc->root, "task");
    if (cJSON_IsString(task) && !strcmp(task->valuestring, "classification")) {
        mc->task = VG_TASK_CLASSIFICATION;
    } else if (cJSON_IsString(task) && !strcmp(task->valuestring, "regression")) {
        mc->task = VG_TASK_REGRESSION;
    } else {
        vg_cli_fail(CMD, "%s: 'task' must be \"classification\" or \"regression\"", mc->path);
        goto out;
    }
    if (name_list(mc, "features", &mc->features, &mc->n_features))
        goto out;
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(mc->root, "model_file");
    mc->model_file = cJSON_IsString(file) ? file->valuestring : "model.onnx";
    if (!vg_repo_valid_name(mc->model_file)) {
        vg_cli_fail(CMD, "%s: 'model_file' must be a file name in the version directory", mc->path);
        goto out;
    }
    mc->input = tensor_name(mc->root, "input");
    if (!mc->input) {
        vg_cli_fail(CMD, "%s: no input tensor {\"name\": ...} under 'input'", mc->path);
        goto out;
    }
    const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(mc->root, "outputs");
    if (mc->task == VG_TASK_CLASSIFICATION) {
        if (name_list(mc, "classes", &mc->classes, &mc->n_classes))
            goto out;
        mc->label = tensor_name(outputs, "label");
        mc->probabilities = tensor_name(outputs, "probabilities");
        if (!mc->label && !mc->probabilities) {
            vg_cli_fail(CMD, "%s: a classifier needs outputs.label or outputs.probabilities",
                        mc->path);
            goto out;
        }
    } else {
        mc->value = tensor_name(outputs, "value");
        if (!mc->value) {
            vg_cli_fail(CMD, "%s: a regressor needs outputs.value", mc->path);
            goto out;
        }
    }
    rc = 0;
out:
    free(text);
    return rc;
}

/* ---- predictions --------------------------------------------------------------------------- */

static int class_of_name(const struct model_config *mc, const char *name)
{
    for (int k = 0; k < mc->n_classes; k++)
        if (!strcmp(mc->classes[k], name))
            return k;
    return -1;
}

/* The class index of each of n labels (string or int64 class names). */
static int label_classes(const struct model_config *mc, const struct vg_tensor *t, int64_t n,
                         int32_t *out)
{
    for (int64_t i = 0; i < n; i++) {
        char num[32];
        const char *name;
        if (t->dtype == VG_DT_STRING) {
            name = ((const char *const *)t->data)[i];
            name = name ? name : "";
        } else {
            snprintf(num, sizeof num, "%lld", (long long)((const int64_t *)t->data)[i]);
            name = num;
        }
        int k = class_of_name(mc, name);
        if (k < 0)
            return vg_cli_fail(CMD,
                               "the model predicted class '%.200s', which is not one of the "
                               "\"classes\" of %s",
                               name, mc->path);
        out[i] = k;
    }
    return 0;
}

/* The most probable class of each row of probabilities [n, C] (a ZipMap's columns are its keys:
 * matched to the classes by name). */
static int argmax_classes(const struct model_config *mc, const struct vg_tensor *t, int64_t n,
                          int32_t *out)
{
    int64_t nc = t->rank == 2 ? t->dims[1] : -1;
    if (t->dtype != VG_DT_FLOAT || t->rank != 2 || t->dims[0] != n || nc != mc->n_classes)
        return vg_cli_fail(CMD,
                           "output '%s' is not FP32 [rows, %d] for the %d classes of %s (got "
                           "%s, rank %d)",
                           mc->probabilities, mc->n_classes, mc->n_classes, mc->path,
                           vg_dtype_name(t->dtype), t->rank);
    int rc = VG_CLI_FAIL;
    int32_t *column_class = malloc((size_t)nc * sizeof *column_class);
    if (!column_class)
        return vg_cli_fail(CMD, "out of memory");
    for (int64_t c = 0; c < nc; c++) {
        column_class[c] = (int32_t)c;
        if (!t->map_keys)
            continue;
        char num[32];
        const char *key;
        if (t->map_keys->dtype == VG_DT_STRING) {
            key = ((const char *const *)t->map_keys->data)[c];
        } else {
            snprintf(num, sizeof num, "%lld", (long long)vg_tensor_get_i64(t->map_keys, c));
            key = num;
        }
        column_class[c] = class_of_name(mc, key ? key : "");
        if (column_class[c] < 0) {
            vg_cli_fail(CMD, "output '%s' has a key '%.200s' that is not a class of %s",
                        mc->probabilities, key ? key : "", mc->path);
            goto out;
        }
    }
    const float *p = t->data;
    for (int64_t i = 0; i < n; i++) {
        int64_t best = 0;
        for (int64_t c = 1; c < nc; c++)
            if (p[i * nc + c] > p[i * nc + best])
                best = c;
        out[i] = column_class[best];
    }
    rc = 0;
out:
    free(column_class);
    return rc;
}

/*
 * Runs the model on every row of ds, CHUNK_ROWS at a time (or the input's fixed batch size, the
 * last batch padded with zero rows whose outputs are ignored). Fills pred_class (classification)
 * or pred_value (regression).
 */
static int predict_all(const struct model_config *mc, const struct vg_model *model,
                       const struct vg_dataset *ds, int32_t *pred_class, double *pred_value)
{
    int rc = VG_CLI_FAIL;
    struct vg_error err = {0};
    struct vg_session *session = NULL;
    float *x = NULL;
    int nf = ds->n_features;
    int in = vg_model_input_index(model, mc->input);
    if (in < 0 || vg_model_n_inputs(model) != 1)
        return vg_cli_fail(CMD, "%s names input '%s', but the model's %s", mc->path, mc->input,
                           in < 0 ? "graph has no such input" : "graph has several inputs");
    const struct vg_io_info *io = vg_model_input(model, in);
    if (io->dtype != VG_DT_FLOAT || (io->rank != -1 && io->rank != 2) ||
        (io->rank == 2 && io->dims[1] >= 0 && io->dims[1] != nf))
        return vg_cli_fail(CMD, "graph input '%s' is not FP32 [rows, %d] for the %d features of %s",
                           mc->input, nf, nf, mc->path);
    int64_t batch = io->rank == 2 && io->dims[0] > 0 ? io->dims[0] : CHUNK_ROWS;
    const char *out_name = mc->task == VG_TASK_REGRESSION ? mc->value
                           : mc->label                    ? mc->label
                                                          : mc->probabilities;
    int out_idx = vg_model_output_index(model, out_name);
    if (out_idx < 0)
        return vg_cli_fail(CMD, "%s names output '%s', which the model's graph does not have",
                           mc->path, out_name);
    x = calloc((size_t)(batch * nf), sizeof *x);
    int32_t *chunk_class = calloc((size_t)batch, sizeof *chunk_class);
    session = vg_session_new(model);
    if (!x || !chunk_class || !session) {
        vg_cli_fail(CMD, "out of memory");
        goto out;
    }
    int fixed = io->rank == 2 && io->dims[0] > 0;
    for (int64_t start = 0; start < ds->n_rows; start += batch) {
        int64_t n = ds->n_rows - start < batch ? ds->n_rows - start : batch;
        int64_t run_rows = fixed ? batch : n;
        memset(x, 0, (size_t)(run_rows * nf) * sizeof *x);
        memcpy(x, ds->x + start * nf, (size_t)(n * nf) * sizeof *x);
        struct vg_tensor t = {.dtype = VG_DT_FLOAT, .rank = 2, .dims = {run_rows, nf}, .data = x};
        if (vg_session_set_input(session, in, &t, &err) || vg_session_run(session, &err)) {
            vg_cli_fail(CMD, "the model failed on data rows %lld to %lld: %s", (long long)start + 1,
                        (long long)(start + n), err.msg[0] ? err.msg : vg_strerror(err.code));
            goto out;
        }
        const struct vg_tensor *o = vg_session_output(session, out_idx);
        if (!o || vg_tensor_numel(o) < run_rows || (o->rank >= 1 && o->dims[0] != run_rows)) {
            vg_cli_fail(CMD, "output '%s' does not have one value per row", out_name);
            goto out;
        }
        if (mc->task == VG_TASK_REGRESSION) {
            if (o->dtype != VG_DT_FLOAT || vg_tensor_numel(o) != run_rows) {
                vg_cli_fail(CMD, "output '%s' is not FP32 [rows] or [rows, 1]", out_name);
                goto out;
            }
            for (int64_t i = 0; i < n; i++)
                pred_value[start + i] = ((const float *)o->data)[i];
            continue;
        }
        if (mc->label && o->dtype != VG_DT_STRING && o->dtype != VG_DT_INT64) {
            vg_cli_fail(CMD, "output '%s' (label) is %s; vigil needs INT64 or BYTES", out_name,
                        vg_dtype_name(o->dtype));
            goto out;
        }
        if (mc->label ? label_classes(mc, o, run_rows, chunk_class)
                      : argmax_classes(mc, o, run_rows, chunk_class))
            goto out;
        memcpy(pred_class + start, chunk_class, (size_t)n * sizeof *chunk_class);
    }
    rc = 0;
out:
    vg_session_free(session);
    free(chunk_class);
    free(x);
    return rc;
}

/* ---- report -------------------------------------------------------------------------------- */

struct facts {
    const struct reference_opts *o;
    const struct model_config *mc;
    const struct vg_dataset *ds;
    const struct vg_reference *ref;
    const int32_t *pred_class;
    int64_t version;
    const char *version_dir;
    int wrote_top;
    /* with --target */
    int have_accuracy;
    int64_t n_right;
    double mae;
};

/* Counts of each predicted class. */
static void class_counts(const struct facts *f, int64_t *counts)
{
    for (int k = 0; k < f->mc->n_classes; k++)
        counts[k] = 0;
    for (int i = 0; i < f->ds->n_rows; i++)
        counts[f->pred_class[i]]++;
}

static void print_text(const struct facts *f)
{
    const struct model_config *mc = f->mc;
    printf("Reference of '%s' version %lld from %s: %d rows, %d features\n", f->o->model,
           (long long)f->version, f->o->data, f->ds->n_rows, f->ds->n_features);
    if (mc->task == VG_TASK_CLASSIFICATION) {
        int64_t *counts = calloc((size_t)mc->n_classes, sizeof *counts);
        if (counts) {
            class_counts(f, counts);
            printf("\nPredicted classes (the class distribution)\n");
            for (int k = 0; k < mc->n_classes; k++)
                printf("  %-24.24s %8.4f  %lld rows\n", mc->classes[k], f->ref->class_shares[k],
                       (long long)counts[k]);
        }
        free(counts);
        if (f->have_accuracy)
            printf("\nAccuracy on column '%s': %.4f (%lld of %d rows)\n", f->o->target,
                   (double)f->n_right / f->ds->n_rows, (long long)f->n_right, f->ds->n_rows);
    } else if (f->have_accuracy) {
        printf("\nMAE on column '%s': %.6g\n", f->o->target, f->mae);
    }
    printf("\nWrote the reference into %s/config.json%s\n", f->version_dir,
           f->wrote_top ? " and its copy, the model's config.json" : "");
}

static void print_json(const struct facts *f)
{
    const struct model_config *mc = f->mc;
    printf("{\"name\":");
    vg_json_str(stdout, f->o->model);
    printf(",\"version\":%lld,\"path\":", (long long)f->version);
    vg_json_str(stdout, f->version_dir);
    printf(",\"data_file\":");
    vg_json_str(stdout, f->o->data);
    printf(",\"rows\":%d,\"features\":%d,\"task\":\"%s\",\"class_distribution\":{", f->ds->n_rows,
           f->ds->n_features, mc->task == VG_TASK_CLASSIFICATION ? "classification" : "regression");
    for (int k = 0; mc->task == VG_TASK_CLASSIFICATION && k < mc->n_classes; k++) {
        printf("%s", k ? "," : "");
        vg_json_str(stdout, mc->classes[k]);
        printf(":");
        vg_json_f64(stdout, f->ref->class_shares[k]);
    }
    printf("},\"accuracy\":");
    if (f->have_accuracy && mc->task == VG_TASK_CLASSIFICATION)
        vg_json_f64(stdout, (double)f->n_right / f->ds->n_rows);
    else
        printf("null");
    printf(",\"mae\":");
    if (f->have_accuracy && mc->task == VG_TASK_REGRESSION)
        vg_json_f64(stdout, f->mae);
    else
        printf("null");
    printf(",\"wrote_model_config\":%s}\n", f->wrote_top ? "true" : "false");
}

/* ---- the command --------------------------------------------------------------------------- */

/* Accuracy (classification) or MAE (regression) of the predictions against the --target column. */
static void score(struct facts *f, const double *pred_value)
{
    const struct vg_dataset *ds = f->ds;
    f->have_accuracy = 1;
    if (ds->task == VG_TASK_CLASSIFICATION) {
        for (int i = 0; i < ds->n_rows; i++)
            f->n_right +=
                !strcmp(ds->class_names[ds->y_class[i]], f->mc->classes[f->pred_class[i]]);
        return;
    }
    double sum = 0;
    for (int i = 0; i < ds->n_rows; i++)
        sum += fabs(ds->y_value[i] - pred_value[i]);
    f->mae = sum / ds->n_rows;
}

static int reference_run(int argc, char **argv)
{
    struct reference_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    struct model_config mc = {0};
    struct vg_dataset ds = {0};
    struct vg_reference ref = {0};
    struct vg_error err = {0};
    struct vg_model *model = NULL;
    char *model_dir = NULL, *version_dir = NULL, *model_path = NULL, *text = NULL;
    int32_t *pred_class = NULL;
    double *pred_value = NULL;
    cJSON *ref_json = NULL;
    rc = VG_CLI_FAIL;

    int64_t version = o.version;
    if (!version && vg_repo_latest_version(o.repo, o.model, &version, &err)) {
        vg_cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    model_dir = vg_repo_path(o.repo, o.model);
    char leaf[32];
    snprintf(leaf, sizeof leaf, "%lld", (long long)version);
    version_dir = model_dir ? vg_repo_path(model_dir, leaf) : NULL;
    if (!version_dir) {
        vg_cli_fail(CMD, "out of memory");
        goto out;
    }
    struct stat st;
    if (!version) {
        vg_cli_fail(CMD, "no model '%s' in %s: no version directory %s/<version>/", o.model, o.repo,
                    model_dir);
        goto out;
    }
    if (stat(version_dir, &st) || !S_ISDIR(st.st_mode)) {
        vg_cli_fail(CMD, "model '%s' has no version %lld: %s is not a directory", o.model,
                    (long long)version, version_dir);
        goto out;
    }
    if (read_config(version_dir, &mc))
        goto out;
    model_path = vg_repo_path(version_dir, mc.model_file);
    if (!model_path) {
        vg_cli_fail(CMD, "out of memory");
        goto out;
    }
    if (vg_cli_load_model(CMD, model_path, &model))
        goto out;
    if (vg_dataset_read_csv_select(o.data, o.target, mc.features, mc.n_features, mc.task, o.impute,
                                   &ds, &err)) {
        vg_cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    int cls = mc.task == VG_TASK_CLASSIFICATION;
    pred_class = calloc((size_t)ds.n_rows, sizeof *pred_class);
    pred_value = calloc((size_t)ds.n_rows, sizeof *pred_value);
    if (!pred_class || !pred_value) {
        vg_cli_fail(CMD, "out of memory for %d rows", ds.n_rows);
        goto out;
    }
    if (predict_all(&mc, model, &ds, pred_class, pred_value))
        goto out;
    int32_t *all = malloc((size_t)ds.n_rows * sizeof *all);
    if (!all) {
        vg_cli_fail(CMD, "out of memory");
        goto out;
    }
    for (int i = 0; i < ds.n_rows; i++)
        all[i] = i;
    int ref_rc = vg_reference_features(&ds, all, ds.n_rows, &ref, &err);
    free(all);
    if (ref_rc == 0 && cls)
        ref_rc = vg_reference_class_shares(&ref, pred_class, NULL, ds.n_rows, mc.n_classes, &err);
    if (ref_rc) {
        vg_cli_fail(CMD, "%s", err.msg);
        goto out;
    }

    ref_json = vg_cli_reference_json(&ref, ds.n_rows, mc.features, mc.classes);
    if (!ref_json) {
        vg_cli_fail(CMD, "out of memory");
        goto out;
    }
    int replaced = cJSON_HasObjectItem(mc.root, "reference")
                       ? cJSON_ReplaceItemInObjectCaseSensitive(mc.root, "reference", ref_json)
                       : cJSON_AddItemToObject(mc.root, "reference", ref_json);
    if (!replaced) {
        vg_cli_fail(CMD, "out of memory");
        goto out;
    }
    ref_json = NULL; /* the tree owns it now */
    text = cJSON_Print(mc.root);
    if (!text) {
        vg_cli_fail(CMD, "out of memory");
        goto out;
    }
    size_t text_len = strlen(text);
    text[text_len++] = '\n'; /* replaces the NUL: files end with a newline, as vigil train's */

    struct facts facts = {
        .o = &o,
        .mc = &mc,
        .ds = &ds,
        .ref = &ref,
        .pred_class = pred_class,
        .version = version,
        .version_dir = version_dir,
    };
    if (o.target)
        score(&facts, pred_value);
    if (vg_repo_set_config(o.repo, o.model, version, text, text_len, &facts.wrote_top, &err)) {
        vg_cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    if (o.json)
        print_json(&facts);
    else
        print_text(&facts);
    rc = 0;
out:
    cJSON_Delete(ref_json);
    cJSON_free(text);
    vg_reference_release(&ref);
    vg_dataset_release(&ds);
    vg_model_free(model);
    config_release(&mc);
    free(pred_class);
    free(pred_value);
    free(model_path);
    free(version_dir);
    free(model_dir);
    return rc;
}

const struct vg_cli_command vg_cli_cmd_reference = {
    .name = CMD,
    .summary = "compute a model's drift reference from a CSV file into its config.json",
    .usage = reference_usage,
    .run = reference_run,
};
