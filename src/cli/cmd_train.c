/*
 * `vigil train`: a random forest from a CSV file, written as the next version in a model
 * repository (docs/training.md, docs/model-repository.md).
 *
 * Order of work, and why:
 * 1. Read and check the whole CSV, split it, grow the forest, serialise it, evaluate it and
 *    compute the drift reference, all in memory. Any failure up to here writes nothing, not even
 *    the model directory; an interrupt here simply ends the process.
 * 2. The holdout is predicted by loading the ONNX bytes into our own engine, not by walking the
 *    trees in memory: the metrics are then those of the model the server will serve.
 * 3. Only then is the repository touched, through the vg_repo transaction (include/vigil/repo.h):
 *    temporary directory, fsync'd files, one rename. Termination signals are deferred meanwhile:
 * one that arrives before the rename cancels the version, one after it ends the process once the
 * report is printed.
 *
 * config.json is built with cJSON, whose number printing tries 15 significant digits and falls
 * back to 17 when that would not read back as the same double, so every number round-trips.
 */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "vigil/repo.h"
#include "vigil/train.h"

static const char train_usage[] =
    "Usage: vigil train --data FILE.csv --target COLUMN --name NAME [options]\n"
    "\n"
    "Grows a random forest (CART trees) on a CSV file and writes it as the next version of model\n"
    "NAME in a model repository: DIR/NAME/<version>/model.onnx and config.json, with\n"
    "DIR/NAME/config.json a copy of the newest version's config. The CSV has a header row,\n"
    "numeric feature columns and a target column (text or numbers). A stratified share of the\n"
    "rows is held out; the model is evaluated on it through vigil's ONNX engine.\n"
    "\n"
    "Options:\n"
    "  --data FILE           training data (CSV with a header row)\n"
    "  --target COLUMN       the column to predict\n"
    "  --features A,B,...    the feature columns, in this order (default: every column but the\n"
    "                        target, in file order); other columns are ignored\n"
    "  --name NAME           model name: letters, digits, '.', '-', '_' (not starting with '.')\n"
    "  --repo DIR            model repository (default: models); created if missing\n"
    "  --task T              classification or regression (default: inferred: a text target,\n"
    "                        or integers with at most 20 distinct values, is classification)\n"
    "  --trees N             number of trees (default: 100)\n"
    "  --max-depth N         maximum tree depth; 0 = unlimited (default: 0)\n"
    "  --min-samples-leaf N  minimum training rows in a leaf (default: 1)\n"
    "  --max-features M      features tried per split: sqrt, log2, all, a fraction F in (0, 1]\n"
    "                        written with a decimal point (0.5, 1.0), or a count (3) (default:\n"
    "                        sqrt for classification, all for regression)\n"
    "  --criterion C         gini or entropy (classification, default gini); squared_error\n"
    "                        (regression, the only one)\n"
    "  --bootstrap on|off    sample rows with replacement for each tree (default: on)\n"
    "  --test-size F         share of rows held out for evaluation, in [0, 1) (default: 0.2;\n"
    "                        0 trains on every row and reports no metrics)\n"
    "  --seed N              random seed, 0 to 2^53-1 (default: 42)\n"
    "  --threads N           training threads; 0 = one per CPU (default: 0). The model does not\n"
    "                        depend on it: same data, options and seed give the same bytes.\n"
    "  --impute mean|median  fill empty and NaN feature cells with the column's mean or median\n"
    "                        (default: such cells are an error)\n"
    "  --description TEXT    free text stored in config.json\n"
    "  --json                print one JSON object instead of the tables\n"
    "  -h, --help            show this help\n"
    "\n"
    "Output: the holdout metrics (accuracy, per-class precision/recall/F1/support and the\n"
    "confusion matrix; or R^2, MAE and RMSE) and the version directory written. A progress bar\n"
    "is drawn on stderr while training when stderr is a terminal.\n"
    "\n"
    "Exit status: 0 success; 1 bad data (the message names file, line and column) or a write\n"
    "failure, and nothing is written to the repository; 2 usage error.\n";

#define CMD "train"
/* JSON numbers are doubles: larger seeds would not read back exactly from config.json. */
#define MAX_SEED (((uint64_t)1 << 53) - 1)
#define MAX_THREADS 1024
#define MAX_TREES 100000
#define MAX_FEATURES 10000

struct train_opts {
    const char *data, *target, *name, *repo, *description;
    char *features_arg;    /* --features, split in place at the commas */
    const char **features; /* NULL: every column but the target */
    int n_features;
    enum vg_task task;
    enum vg_impute impute;
    int n_trees, max_depth, min_samples_leaf, threads, bootstrap;
    int max_features_set, criterion_set;
    enum vg_max_features max_features;
    double max_features_value;
    enum vg_criterion criterion;
    double test_size;
    uint64_t seed;
    int json;
};

/* ---- option parsing ------------------------------------------------------------------------ */

static int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    if (!s[0] || s[0] == ' ' || s[0] == '+')
        return -1;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_int_opt(const char *opt, const char *s, long min, long max, int *out)
{
    long v;
    if (parse_long(s, min, max, &v))
        return vg_cli_usage_error(CMD, "%s: '%s' is not a whole number in [%ld, %ld]", opt, s, min,
                                  max);
    *out = (int)v;
    return 0;
}

static int parse_max_features(const char *s, struct train_opts *o)
{
    o->max_features_set = 1;
    if (!strcmp(s, "sqrt")) {
        o->max_features = VG_MAXF_SQRT;
        return 0;
    }
    if (!strcmp(s, "log2")) {
        o->max_features = VG_MAXF_LOG2;
        return 0;
    }
    if (!strcmp(s, "all")) {
        o->max_features = VG_MAXF_ALL;
        return 0;
    }
    long count;
    if (parse_long(s, 1, 1000000, &count) == 0) {
        o->max_features = VG_MAXF_COUNT;
        o->max_features_value = (double)count;
        return 0;
    }
    char *end;
    errno = 0;
    double f = strtod(s, &end);
    if (s[0] && !*end && !errno && f > 0.0 && f <= 1.0 && strpbrk(s, ".eE")) {
        o->max_features = VG_MAXF_FRACTION;
        o->max_features_value = f;
        return 0;
    }
    return vg_cli_usage_error(CMD,
                              "--max-features: '%s' is not sqrt, log2, all, a fraction in (0, 1] "
                              "or a whole count >= 1",
                              s);
}

/* Splits "a,b,c" (a private copy) into o->features. */
static int parse_features(const char *s, struct train_opts *o)
{
    free(o->features_arg);
    free(o->features);
    o->features = NULL;
    o->n_features = 0;
    o->features_arg = strdup(s);
    size_t n = 1;
    for (const char *c = s; *c; c++)
        n += *c == ',';
    if (n > MAX_FEATURES)
        return vg_cli_usage_error(CMD, "--features: more than %d columns", MAX_FEATURES);
    o->features = calloc(n, sizeof *o->features);
    if (!o->features_arg || !o->features)
        return vg_cli_fail(CMD, "out of memory");
    char *save = o->features_arg;
    for (size_t i = 0; i < n; i++) {
        char *comma = strchr(save, ',');
        if (comma)
            *comma = '\0';
        if (!save[0])
            return vg_cli_usage_error(CMD, "--features: empty column name in '%s'", s);
        o->features[o->n_features++] = save;
        save = comma ? comma + 1 : save + strlen(save);
    }
    return 0;
}

static void release_opts(struct train_opts *o)
{
    free(o->features_arg);
    free(o->features);
}

/* One of a fixed set of words, e.g. --criterion gini|entropy|squared_error. */
struct choice {
    const char *word;
    int value;
};

static int parse_choice(const char *opt, const char *v, const struct choice *choices, int *out)
{
    char words[128] = "";
    for (const struct choice *c = choices; c->word; c++) {
        if (!strcmp(v, c->word)) {
            *out = c->value;
            return 0;
        }
        size_t len = strlen(words);
        snprintf(words + len, sizeof words - len, "%s%s", len ? (c[1].word ? ", " : " or ") : "",
                 c->word);
    }
    return vg_cli_usage_error(CMD, "%s: '%s' is not %s", opt, v, words);
}

static const struct choice task_choices[] = {
    {"classification", VG_TASK_CLASSIFICATION}, {"regression", VG_TASK_REGRESSION}, {NULL, 0}};
static const struct choice criterion_choices[] = {{"gini", VG_CRIT_GINI},
                                                  {"entropy", VG_CRIT_ENTROPY},
                                                  {"squared_error", VG_CRIT_SQUARED_ERROR},
                                                  {NULL, 0}};
static const struct choice bootstrap_choices[] = {{"on", 1}, {"off", 0}, {NULL, 0}};
static const struct choice impute_choices[] = {
    {"mean", VG_IMPUTE_MEAN}, {"median", VG_IMPUTE_MEDIAN}, {NULL, 0}};

static int parse_args(int argc, char **argv, struct train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->repo = "models";
    o->description = "";
    o->n_trees = 100;
    o->min_samples_leaf = 1;
    o->bootstrap = 1;
    o->test_size = 0.2;
    o->seed = 42;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m;
#define OPT(name) ((m = vg_cli_opt_value(argc, argv, &i, name, &v)) != 0)
        if (!strcmp(argv[i], "--json")) {
            o->json = 1;
            continue;
        }
        if (OPT("--data")) {
            o->data = v;
        } else if (OPT("--target")) {
            o->target = v;
        } else if (OPT("--features")) {
            int rc = m > 0 ? parse_features(v, o) : 0;
            if (rc)
                return rc;
        } else if (OPT("--name")) {
            o->name = v;
        } else if (OPT("--repo")) {
            o->repo = v;
        } else if (OPT("--description")) {
            o->description = v;
        } else if (OPT("--task")) {
            int t;
            if (m > 0 && parse_choice("--task", v, task_choices, &t))
                return VG_CLI_USAGE;
            if (m > 0)
                o->task = (enum vg_task)t;
        } else if (OPT("--trees")) {
            if (m > 0 && parse_int_opt("--trees", v, 1, MAX_TREES, &o->n_trees))
                return VG_CLI_USAGE;
        } else if (OPT("--max-depth")) {
            if (m > 0 && parse_int_opt("--max-depth", v, 0, 1000000, &o->max_depth))
                return VG_CLI_USAGE;
        } else if (OPT("--min-samples-leaf")) {
            if (m > 0 && parse_int_opt("--min-samples-leaf", v, 1, INT32_MAX, &o->min_samples_leaf))
                return VG_CLI_USAGE;
        } else if (OPT("--threads")) {
            if (m > 0 && parse_int_opt("--threads", v, 0, MAX_THREADS, &o->threads))
                return VG_CLI_USAGE;
        } else if (OPT("--max-features")) {
            if (m > 0 && parse_max_features(v, o))
                return VG_CLI_USAGE;
        } else if (OPT("--criterion")) {
            int crit;
            o->criterion_set = 1;
            if (m > 0 && parse_choice("--criterion", v, criterion_choices, &crit))
                return VG_CLI_USAGE;
            if (m > 0)
                o->criterion = (enum vg_criterion)crit;
        } else if (OPT("--bootstrap")) {
            if (m > 0 && parse_choice("--bootstrap", v, bootstrap_choices, &o->bootstrap))
                return VG_CLI_USAGE;
        } else if (OPT("--impute")) {
            int imp;
            if (m > 0 && parse_choice("--impute", v, impute_choices, &imp))
                return VG_CLI_USAGE;
            if (m > 0)
                o->impute = (enum vg_impute)imp;
        } else if (OPT("--test-size")) {
            if (m > 0) {
                char *end;
                errno = 0;
                o->test_size = strtod(v, &end);
                if (!v[0] || *end || errno || !(o->test_size >= 0.0 && o->test_size < 1.0))
                    return vg_cli_usage_error(CMD, "--test-size: '%s' is not a number in [0, 1)",
                                              v);
            }
        } else if (OPT("--seed")) {
            if (m > 0) {
                char *end;
                errno = 0;
                unsigned long long s = strtoull(v, &end, 10);
                if (v[0] < '0' || v[0] > '9' || *end || errno || s > MAX_SEED)
                    return vg_cli_usage_error(CMD,
                                              "--seed: '%s' is not a whole number in "
                                              "[0, 2^53-1]",
                                              v);
                o->seed = s;
            }
        } else if (argv[i][0] == '-') {
            return vg_cli_usage_error(CMD, "unknown option '%s'", argv[i]);
        } else {
            return vg_cli_usage_error(CMD, "unexpected argument '%s'", argv[i]);
        }
#undef OPT
        if (m < 0)
            return vg_cli_usage_error(CMD, "option '%s' needs a value", argv[i]);
    }
    if (!o->data || !o->target || !o->name)
        return vg_cli_usage_error(CMD, "--data, --target and --name are required");
    if (!vg_repo_valid_name(o->name))
        return vg_cli_usage_error(CMD,
                                  "--name: '%s' is not a model name (1 to %d letters, digits, '.', "
                                  "'-' or '_', not starting with '.')",
                                  o->name, VG_REPO_MAX_NAME);
    if (!o->repo[0])
        return vg_cli_usage_error(CMD, "--repo: empty directory name");
    if (o->task == VG_TASK_CLASSIFICATION && o->criterion_set &&
        o->criterion == VG_CRIT_SQUARED_ERROR)
        return vg_cli_usage_error(CMD, "--criterion squared_error is for regression");
    if (o->task == VG_TASK_REGRESSION && o->criterion_set && o->criterion != VG_CRIT_SQUARED_ERROR)
        return vg_cli_usage_error(CMD, "--criterion %s is for classification",
                                  o->criterion == VG_CRIT_GINI ? "gini" : "entropy");
    return 0;
}

/* ---- progress bar -------------------------------------------------------------------------- */

struct progress {
    int enabled;
    double start, last_draw;
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void format_duration(char *buf, size_t len, double s)
{
    if (s < 60)
        snprintf(buf, len, "%.1fs", s);
    else if (s < 3600)
        snprintf(buf, len, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, len, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

/* Called by the trainer after each tree, serialised; redraws at most ten times a second. */
static void on_progress(void *ctx, int done, int total)
{
    struct progress *p = ctx;
    double now = now_seconds();
    if (done < total && now - p->last_draw < 0.1)
        return;
    p->last_draw = now;
    enum { WIDTH = 30 };
    char bar[WIDTH + 1];
    int filled = total > 0 ? (int)((int64_t)done * WIDTH / total) : WIDTH;
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < filled ? '#' : '-';
    bar[WIDTH] = '\0';
    double elapsed = now - p->start;
    char el[32], eta[32] = "?";
    format_duration(el, sizeof el, elapsed);
    if (done > 0)
        format_duration(eta, sizeof eta, elapsed / done * (total - done));
    /* \033[K clears what a longer previous line left at the end. */
    fprintf(stderr, "\rtraining [%s] %d/%d trees  elapsed %s  ETA %s\033[K", bar, done, total, el,
            eta);
    if (done == total)
        fputc('\n', stderr);
    fflush(stderr);
}

/* ---- evaluation through the engine --------------------------------------------------------- */

struct class_key {
    const char *name;
    int64_t num;
    int index;
};

static int cmp_key_name(const void *a, const void *b)
{
    return strcmp(((const struct class_key *)a)->name, ((const struct class_key *)b)->name);
}

static int cmp_key_num(const void *a, const void *b)
{
    int64_t x = ((const struct class_key *)a)->num, y = ((const struct class_key *)b)->num;
    return (x > y) - (x < y);
}

/* Maps the model's label output (int64 or string class labels) back to class indices. */
static int labels_to_classes(const struct vg_tensor *label, const struct vg_dataset *ds,
                             int32_t *pred, int n)
{
    int rc = 0;
    struct class_key *keys = calloc((size_t)ds->n_classes, sizeof *keys);
    if (!keys)
        return vg_cli_fail(CMD, "out of memory");
    int numeric = label->dtype == VG_DT_INT64;
    if (!numeric && label->dtype != VG_DT_STRING) {
        rc = vg_cli_fail(CMD, "internal error: the model's label output is %s",
                         vg_dtype_name(label->dtype));
        goto out;
    }
    for (int c = 0; c < ds->n_classes; c++) {
        keys[c].name = ds->class_names[c];
        keys[c].index = c;
        if (numeric) {
            char *end;
            errno = 0;
            keys[c].num = strtoll(keys[c].name, &end, 10);
            if (errno || *end) {
                rc = vg_cli_fail(CMD, "internal error: class '%s' has an integer label",
                                 keys[c].name);
                goto out;
            }
        }
    }
    qsort(keys, (size_t)ds->n_classes, sizeof *keys, numeric ? cmp_key_num : cmp_key_name);
    for (int i = 0; i < n; i++) {
        struct class_key probe = {0};
        if (numeric)
            probe.num = ((const int64_t *)label->data)[i];
        else
            probe.name = ((const char *const *)label->data)[i];
        const struct class_key *hit = bsearch(&probe, keys, (size_t)ds->n_classes, sizeof *keys,
                                              numeric ? cmp_key_num : cmp_key_name);
        if (!hit) {
            rc = vg_cli_fail(CMD, "internal error: the model predicted an unknown class");
            goto out;
        }
        pred[i] = hit->index;
    }
out:
    free(keys);
    return rc;
}

/*
 * Predicts rows `rows` with the serialised model through the engine, as the server would:
 * classification fills pred_class from the "label" output, regression fills pred_value from
 * "variable".
 */
static int predict_holdout(const struct vg_model *model, const struct vg_dataset *ds,
                           const int32_t *rows, int n, int32_t *pred_class, double *pred_value)
{
    int rc = 0;
    struct vg_session *session = NULL;
    struct vg_error err = {0};
    int nf = ds->n_features;
    float *x = malloc((size_t)n * nf * sizeof *x);
    if (!x) {
        rc = vg_cli_fail(CMD, "out of memory for %d holdout rows", n);
        goto out;
    }
    for (int i = 0; i < n; i++)
        memcpy(x + (size_t)i * nf, ds->x + (size_t)rows[i] * nf, (size_t)nf * sizeof *x);
    session = vg_session_new(model);
    if (!session) {
        rc = vg_cli_fail(CMD, "out of memory");
        goto out;
    }
    int in = vg_model_input_index(model, "input");
    const char *out_name = ds->task == VG_TASK_CLASSIFICATION ? "label" : "variable";
    int out_idx = vg_model_output_index(model, out_name);
    if (in < 0 || out_idx < 0) {
        rc = vg_cli_fail(CMD, "internal error: the trained model lacks 'input' or '%s'", out_name);
        goto out;
    }
    struct vg_tensor t = {.dtype = VG_DT_FLOAT, .rank = 2, .dims = {n, nf}, .data = x};
    if (vg_session_set_input(session, in, &t, &err) || vg_session_run(session, &err)) {
        rc = vg_cli_fail(CMD, "internal error: running the trained model: %s", err.msg);
        goto out;
    }
    const struct vg_tensor *o = vg_session_output(session, out_idx);
    if (!o || vg_tensor_numel(o) != n) {
        rc = vg_cli_fail(CMD, "internal error: output '%s' does not hold %d values", out_name, n);
        goto out;
    }
    if (ds->task == VG_TASK_CLASSIFICATION) {
        rc = labels_to_classes(o, ds, pred_class, n);
    } else if (o->dtype != VG_DT_FLOAT) {
        rc = vg_cli_fail(CMD, "internal error: output 'variable' is %s", vg_dtype_name(o->dtype));
    } else {
        for (int i = 0; i < n; i++)
            pred_value[i] = ((const float *)o->data)[i];
    }
out:
    vg_session_free(session);
    free(x);
    return rc;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

/* Builds a cJSON tree, remembering any allocation failure instead of checking every call. */
struct jb {
    int oom;
};

static cJSON *jadd(struct jb *j, cJSON *parent, const char *key, cJSON *item)
{
    if (!item || !parent) {
        cJSON_Delete(item);
        j->oom = 1;
        return NULL;
    }
    int ok = key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item);
    if (!ok) {
        cJSON_Delete(item);
        j->oom = 1;
        return NULL;
    }
    return item;
}

static void jnum(struct jb *j, cJSON *parent, const char *key, double v)
{
    jadd(j, parent, key, cJSON_CreateNumber(v));
}

static void jstr(struct jb *j, cJSON *parent, const char *key, const char *v)
{
    jadd(j, parent, key, cJSON_CreateString(v));
}

static const char *task_name(enum vg_task t)
{
    return t == VG_TASK_REGRESSION ? "regression" : "classification";
}

static const char *criterion_name(enum vg_criterion c)
{
    return c == VG_CRIT_ENTROPY ? "entropy" : c == VG_CRIT_GINI ? "gini" : "squared_error";
}

static const char *max_features_name(enum vg_max_features m)
{
    switch (m) {
    case VG_MAXF_SQRT: return "sqrt";
    case VG_MAXF_LOG2: return "log2";
    case VG_MAXF_ALL: return "all";
    case VG_MAXF_FRACTION: return "fraction";
    case VG_MAXF_COUNT: return "count";
    }
    return "?";
}

/* The metrics object shared by config.json and --json; NULL-valued when there is no holdout. */
static cJSON *metrics_json(struct jb *j, const struct vg_metrics *m, const struct vg_dataset *ds,
                           int have)
{
    if (!have)
        return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    jnum(j, o, "holdout_rows", m->n_rows);
    if (ds->task == VG_TASK_REGRESSION) {
        jnum(j, o, "r2", m->r2);
        jnum(j, o, "mae", m->mae);
        jnum(j, o, "rmse", m->rmse);
        return o;
    }
    jnum(j, o, "accuracy", m->accuracy);
    cJSON *per = jadd(j, o, "per_class", cJSON_CreateObject());
    for (int c = 0; c < m->n_classes; c++) {
        cJSON *pc = jadd(j, per, ds->class_names[c], cJSON_CreateObject());
        jnum(j, pc, "precision", m->per_class[c].precision);
        jnum(j, pc, "recall", m->per_class[c].recall);
        jnum(j, pc, "f1", m->per_class[c].f1);
        jnum(j, pc, "support", m->per_class[c].support);
    }
    cJSON *cm = jadd(j, o, "confusion_matrix", cJSON_CreateArray());
    for (int r = 0; r < m->n_classes; r++) {
        cJSON *row = jadd(j, cm, NULL, cJSON_CreateArray());
        for (int c = 0; c < m->n_classes; c++)
            jnum(j, row, NULL, (double)m->confusion[(size_t)r * m->n_classes + c]);
    }
    return o;
}

struct run_facts {
    const struct train_opts *o;
    const struct vg_dataset *ds;
    const struct vg_forest_params *p;
    int n_train, n_test;
    double train_seconds;
    const struct vg_metrics *metrics;
    int have_metrics;
    const struct vg_reference *ref;
    int label_is_int;
};

static cJSON *io_json(struct jb *j, const char *name, const char *dtype, int rank, int64_t dim1)
{
    cJSON *o = cJSON_CreateObject();
    jstr(j, o, "name", name);
    jstr(j, o, "datatype", dtype);
    cJSON *shape = jadd(j, o, "shape", cJSON_CreateArray());
    jnum(j, shape, NULL, -1);
    if (rank == 2)
        jnum(j, shape, NULL, (double)dim1);
    return o;
}

/* config.json of one version: see docs/model-repository.md for every field. */
static cJSON *config_json(struct jb *j, const struct run_facts *r, int64_t version)
{
    const struct vg_dataset *ds = r->ds;
    const struct train_opts *o = r->o;
    int cls = ds->task == VG_TASK_CLASSIFICATION;
    cJSON *c = cJSON_CreateObject();
    if (!c) {
        j->oom = 1;
        return NULL;
    }
    jnum(j, c, "schema_version", 1);
    jstr(j, c, "name", o->name);
    jnum(j, c, "version", (double)version);
    jstr(j, c, "description", o->description);
    jstr(j, c, "task", task_name(ds->task));
    jstr(j, c, "platform", "onnx");
    jstr(j, c, "model_file", "model.onnx");
    jadd(j, c, "input", io_json(j, "input", "FP32", 2, ds->n_features));
    cJSON *feats = jadd(j, c, "features", cJSON_CreateArray());
    for (int f = 0; f < ds->n_features; f++)
        jstr(j, feats, NULL, ds->feature_names[f]);
    cJSON *outs = jadd(j, c, "outputs", cJSON_CreateObject());
    if (cls) {
        jadd(j, outs, "label", io_json(j, "label", r->label_is_int ? "INT64" : "BYTES", 1, 0));
        jadd(j, outs, "probabilities", io_json(j, "probabilities", "FP32", 2, ds->n_classes));
    } else {
        jadd(j, outs, "value", io_json(j, "variable", "FP32", 2, 1));
    }
    cJSON *classes = jadd(j, c, "classes", cJSON_CreateArray());
    for (int k = 0; cls && k < ds->n_classes; k++)
        jstr(j, classes, NULL, ds->class_names[k]);

    cJSON *t = jadd(j, c, "training", cJSON_CreateObject());
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    jstr(j, t, "created", created);
    jstr(j, t, "data_file", o->data);
    jstr(j, t, "target", ds->target_name);
    jnum(j, t, "rows", ds->n_rows);
    jnum(j, t, "training_rows", r->n_train);
    jnum(j, t, "holdout_rows", r->n_test);
    jnum(j, t, "test_size", o->test_size);
    jnum(j, t, "seed", (double)o->seed);
    jstr(j, t, "impute",
         o->impute == VG_IMPUTE_MEAN     ? "mean"
         : o->impute == VG_IMPUTE_MEDIAN ? "median"
                                         : "none");
    jnum(j, t, "training_seconds", r->train_seconds);
    cJSON *h = jadd(j, t, "hyperparameters", cJSON_CreateObject());
    jnum(j, h, "trees", r->p->n_trees);
    jadd(j, h, "max_depth",
         r->p->max_depth ? cJSON_CreateNumber(r->p->max_depth) : cJSON_CreateNull());
    jnum(j, h, "min_samples_leaf", r->p->min_samples_leaf);
    jstr(j, h, "max_features", max_features_name(r->p->max_features));
    if (r->p->max_features == VG_MAXF_FRACTION || r->p->max_features == VG_MAXF_COUNT)
        jnum(j, h, "max_features_value", r->p->max_features_value);
    jstr(j, h, "criterion", criterion_name(r->p->criterion));
    jadd(j, h, "bootstrap", cJSON_CreateBool(r->p->bootstrap));

    jadd(j, c, "metrics", metrics_json(j, r->metrics, ds, r->have_metrics));

    /* A regression reference has no class shares: its class_distribution is {}. */
    jadd(j, c, "reference",
         vg_cli_reference_json(r->ref, r->n_train, (const char *const *)ds->feature_names,
                               (const char *const *)ds->class_names));
    return c;
}

/* ---- human-readable report ----------------------------------------------------------------- */

#define NAME_COL_MAX 32
/* Beyond this many classes the confusion matrix is unreadable in a terminal: config.json has it. */
#define CONFUSION_TABLE_MAX 20

/* The matrix with class names as row and column headings, `w` characters per column. */
static void print_confusion(const struct vg_dataset *ds, const struct vg_metrics *m, int w)
{
    printf("\nConfusion matrix (rows: true class, columns: predicted)\n  %*s", w, "");
    for (int c = 0; c < m->n_classes; c++)
        printf("  %*.*s", w, w, ds->class_names[c]);
    putchar('\n');
    for (int t = 0; t < m->n_classes; t++) {
        printf("  %-*.*s", w, w, ds->class_names[t]);
        for (int c = 0; c < m->n_classes; c++)
            printf("  %*lld", w, (long long)m->confusion[(size_t)t * m->n_classes + c]);
        putchar('\n');
    }
}

static void print_tables(const struct run_facts *r, const char *dir, int64_t version)
{
    const struct vg_dataset *ds = r->ds;
    const struct vg_metrics *m = r->metrics;
    printf("Trained '%s' (%s): %d trees on %d rows in %.2fs; %d rows held out\n", r->o->name,
           task_name(ds->task), r->p->n_trees, r->n_train, r->train_seconds, r->n_test);
    if (!r->have_metrics) {
        printf("\nNo holdout rows: no metrics (use a larger --test-size or more data).\n");
    } else if (ds->task == VG_TASK_REGRESSION) {
        printf("\nHoldout (%d rows)\n  R2    %.4f\n  MAE   %.6g\n  RMSE  %.6g\n", m->n_rows, m->r2,
               m->mae, m->rmse);
    } else {
        int w = 5; /* "class" */
        for (int c = 0; c < ds->n_classes; c++) {
            int len = (int)strlen(ds->class_names[c]);
            if (len > w)
                w = len < NAME_COL_MAX ? len : NAME_COL_MAX;
        }
        int64_t correct = 0;
        for (int c = 0; c < m->n_classes; c++)
            correct += m->confusion[(size_t)c * m->n_classes + c];
        printf("\nHoldout accuracy: %.4f (%lld of %d rows)\n\n", m->accuracy, (long long)correct,
               m->n_rows);
        printf("  %-*s  precision  recall     f1  support\n", w, "class");
        for (int c = 0; c < m->n_classes; c++)
            printf("  %-*.*s  %9.4f  %6.4f  %6.4f  %7d\n", w, w, ds->class_names[c],
                   m->per_class[c].precision, m->per_class[c].recall, m->per_class[c].f1,
                   m->per_class[c].support);
        if (m->n_classes > CONFUSION_TABLE_MAX)
            printf("\nConfusion matrix: %d classes, see \"confusion_matrix\" in config.json\n",
                   m->n_classes);
        else
            print_confusion(ds, m, w);
    }
    printf("\nWrote version %lld: %s/model.onnx, %s/config.json\n", (long long)version, dir, dir);
}

static int print_json(const struct run_facts *r, const char *dir, int64_t version)
{
    struct jb j = {0};
    const struct vg_dataset *ds = r->ds;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return vg_cli_fail(CMD, "out of memory");
    jstr(&j, o, "name", r->o->name);
    jnum(&j, o, "version", (double)version);
    jstr(&j, o, "path", dir);
    jstr(&j, o, "task", task_name(ds->task));
    cJSON *classes = jadd(&j, o, "classes", cJSON_CreateArray());
    for (int k = 0; ds->task == VG_TASK_CLASSIFICATION && k < ds->n_classes; k++)
        jstr(&j, classes, NULL, ds->class_names[k]);
    jnum(&j, o, "training_rows", r->n_train);
    jnum(&j, o, "holdout_rows", r->n_test);
    jnum(&j, o, "training_seconds", r->train_seconds);
    jadd(&j, o, "metrics", metrics_json(&j, r->metrics, ds, r->have_metrics));
    char *text = j.oom ? NULL : cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        return vg_cli_fail(CMD, "out of memory");
    puts(text);
    cJSON_free(text);
    return 0;
}

/* ---- the command --------------------------------------------------------------------------- */

/* Fails early (before hours of training) when the repository path cannot be a directory. */
static int check_repo_path(const char *repo, const char *name)
{
    struct stat st;
    if (stat(repo, &st) == 0 && !S_ISDIR(st.st_mode))
        return vg_cli_fail(CMD, "--repo %s exists and is not a directory", repo);
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", repo, name) >= (int)sizeof path)
        return vg_cli_fail(CMD, "--repo path too long");
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode))
        return vg_cli_fail(CMD, "%s exists and is not a directory", path);
    return 0;
}

static int write_version(const struct run_facts *r, const void *onnx, size_t onnx_len)
{
    int rc = 0;
    struct jb j = {0};
    struct vg_repo_txn txn;
    struct vg_error err = {0};
    cJSON *config = NULL;
    char *text = NULL;
    if (vg_repo_begin(&txn, r->o->repo, r->o->name, &err)) {
        rc = vg_cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    config = config_json(&j, r, txn.version);
    text = j.oom || !config ? NULL : cJSON_Print(config);
    if (!text) {
        rc = vg_cli_fail(CMD, "out of memory building config.json");
        goto out;
    }
    size_t text_len = strlen(text);
    text[text_len++] = '\n'; /* replaces the NUL: files end with a newline */
    if (vg_repo_put(&txn, "model.onnx", onnx, onnx_len, &err) ||
        vg_repo_put(&txn, "config.json", text, text_len, &err) || vg_repo_commit(&txn, &err)) {
        rc = vg_cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    rc = r->o->json ? print_json(r, txn.final_dir, txn.version)
                    : (print_tables(r, txn.final_dir, txn.version), 0);
out:
    /* Printing happens before vg_repo_end so a deferred SIGINT cannot cut the report short. */
    if (fflush(stdout))
        rc = VG_CLI_FAIL;
    vg_repo_end(&txn);
    cJSON_Delete(config);
    cJSON_free(text);
    return rc;
}

static int train_run(int argc, char **argv)
{
    struct train_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc) {
        release_opts(&o);
        return rc;
    }
    struct vg_dataset ds = {0};
    struct vg_forest forest = {0};
    struct vg_metrics metrics = {0};
    struct vg_reference ref = {0};
    struct vg_error err = {0};
    int32_t *train = NULL, *test = NULL, *pred_class = NULL;
    double *pred_value = NULL, *truth_value = NULL;
    int32_t *truth_class = NULL;
    void *onnx = NULL;
    size_t onnx_len = 0;
    struct vg_model *trained = NULL;
    int n_train = 0, n_test = 0, have_metrics = 0;

    rc = check_repo_path(o.repo, o.name);
    if (rc)
        goto out;
    if (vg_dataset_read_csv_select(o.data, o.target, o.features, o.n_features, o.task, o.impute,
                                   &ds, &err)) {
        rc = vg_cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    int cls = ds.task == VG_TASK_CLASSIFICATION;
    if (o.criterion_set && cls != (o.criterion != VG_CRIT_SQUARED_ERROR)) {
        rc = vg_cli_usage_error(CMD, "--criterion %s does not fit the %s target '%s'",
                                criterion_name(o.criterion), task_name(ds.task), o.target);
        goto out;
    }

    struct vg_forest_params p;
    vg_forest_params_default(&p, ds.task);
    p.n_trees = o.n_trees;
    p.max_depth = o.max_depth;
    p.min_samples_leaf = o.min_samples_leaf;
    if (o.max_features_set) {
        p.max_features = o.max_features;
        p.max_features_value = o.max_features_value;
    }
    if (o.criterion_set)
        p.criterion = o.criterion;
    p.bootstrap = o.bootstrap;
    p.seed = o.seed;
    p.threads = o.threads;
    struct progress prog = {.enabled = isatty(STDERR_FILENO)};
    if (prog.enabled) {
        p.progress = on_progress;
        p.progress_ctx = &prog;
    }

    if (vg_split(&ds, o.test_size, o.seed, &train, &n_train, &test, &n_test, &err)) {
        rc = vg_cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    prog.start = now_seconds();
    prog.last_draw = -1.0;
    double t0 = now_seconds();
    if (vg_forest_train(&ds, train, n_train, &p, &forest, &err)) {
        if (prog.enabled && prog.last_draw >= 0)
            fputc('\n', stderr); /* the message must not continue the progress line */
        rc = vg_cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    double train_seconds = now_seconds() - t0;
    if (vg_forest_to_onnx(&forest, &ds, o.name, &onnx, &onnx_len, &err)) {
        rc = vg_cli_fail(CMD, "%s", err.msg);
        goto out;
    }

    /* The trained model as the server will run it: the holdout is predicted through it and the
       label type in config.json is read from it, so neither can disagree with the file. */
    if (vg_engine_load_bytes(onnx, onnx_len, NULL, &trained, &err)) {
        rc = vg_cli_fail(CMD, "internal error: the engine cannot load the trained model: %s",
                         err.msg);
        goto out;
    }

    if (n_test > 0) {
        if (cls) {
            pred_class = malloc((size_t)n_test * sizeof *pred_class);
            truth_class = malloc((size_t)n_test * sizeof *truth_class);
        } else {
            pred_value = malloc((size_t)n_test * sizeof *pred_value);
            truth_value = malloc((size_t)n_test * sizeof *truth_value);
        }
        if (cls ? !pred_class || !truth_class : !pred_value || !truth_value) {
            rc = vg_cli_fail(CMD, "out of memory");
            goto out;
        }
        rc = predict_holdout(trained, &ds, test, n_test, pred_class, pred_value);
        if (rc)
            goto out;
        for (int i = 0; i < n_test; i++) {
            if (cls)
                truth_class[i] = ds.y_class[test[i]];
            else
                truth_value[i] = ds.y_value[test[i]];
        }
        int mrc = cls ? vg_metrics_classification(truth_class, pred_class, n_test, ds.n_classes,
                                                  &metrics, &err)
                      : vg_metrics_regression(truth_value, pred_value, n_test, &metrics, &err);
        if (mrc) {
            rc = vg_cli_fail(CMD, "%s", err.msg);
            goto out;
        }
        have_metrics = 1;
    }
    if (vg_reference_compute(&ds, train, n_train, &ref, &err)) {
        rc = vg_cli_fail(CMD, "%s", err.msg);
        goto out;
    }

    /* The ONNX writer's rule for label types (include/vigil/train.h): int64 when every class
     * name is an integer. */
    int label_is_int = 0;
    if (cls) {
        int li = vg_model_output_index(trained, "label");
        label_is_int = li >= 0 && vg_model_output(trained, li)->dtype == VG_DT_INT64;
    }

    struct run_facts facts = {
        .o = &o,
        .ds = &ds,
        .p = &p,
        .n_train = n_train,
        .n_test = n_test,
        .train_seconds = train_seconds,
        .metrics = &metrics,
        .have_metrics = have_metrics,
        .ref = &ref,
        .label_is_int = label_is_int,
    };
    rc = write_version(&facts, onnx, onnx_len);
out:
    vg_model_free(trained);
    free(onnx);
    free(train);
    free(test);
    free(pred_class);
    free(truth_class);
    free(pred_value);
    free(truth_value);
    vg_reference_release(&ref);
    vg_metrics_release(&metrics);
    vg_forest_release(&forest);
    vg_dataset_release(&ds);
    release_opts(&o);
    return rc;
}

const struct vg_cli_command vg_cli_cmd_train = {
    .name = "train",
    .summary = "train a random forest from a CSV file into a model repository",
    .usage = train_usage,
    .run = train_run,
};
