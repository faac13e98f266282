/*
 * Model store tests (src/server/store.c), and the /predict handler on top of it
 * (src/server/api_predict.c), without the HTTP layer.
 *
 * The group setup builds a repository in a temporary directory from models/iris (ctest runs from
 * the source root; `make build` trains it): a table of models, each a copy of iris with one thing
 * broken (or nothing), plus a model with several versions, entries the scan must skip and, when
 * the vigil binary is in $VG_BUILD_DIR, a regressor and a classifier with integer labels trained
 * by `vigil train`. Tests then check each entry's state and reason, the default model, the
 * SHA-256 (against sha256sum), the session pool under threads, the metrics text, and every
 * /predict answer and error.
 *
 * This file stands in for http.c: vg_log records lines for the tests to inspect, and the
 * vg_reply_* helpers store the reply in the request. (The linker then never pulls http.c out of
 * libvg_server.a.)
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/server.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static char repo[64];
static char *iris_config;
static char *iris_onnx;
static size_t iris_onnx_len;
static int have_trained; /* x-digits and x-reg were trained */

/* ---- Stand-ins for http.c -------------------------------------------------------------------- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[1 << 16];
static size_t log_len;

void vg_log(const char *level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(line, sizeof line, "%s ", level);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    size_t len = strlen(line);
    if (log_len + len + 2 < sizeof log_text) {
        memcpy(log_text + log_len, line, len);
        log_len += len;
        log_text[log_len++] = '\n';
        log_text[log_len] = 0;
    }
    pthread_mutex_unlock(&log_lock);
}

void vg_reply_raw(struct vg_req *r, int status, const char *content_type, char *body, size_t len)
{
    free(r->resp_body);
    r->status = status;
    r->resp_type = content_type;
    r->resp_body = body;
    r->resp_len = len;
}

void vg_reply_json(struct vg_req *r, int status, cJSON *obj)
{
    char *text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    vg_reply_raw(r, status, "application/json", text, text ? strlen(text) : 0);
}

void vg_reply_error(struct vg_req *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "error", msg);
    vg_reply_json(r, status, obj);
}

/* ---- Helpers --------------------------------------------------------------------------------- */

static void assert_contains(const char *text, const char *want)
{
    if (!text || !strstr(text, want)) {
        fprintf(stderr, "expected to find:\n%s\nin:\n%s\n", want, text ? text : "(null)");
        fail();
    }
}

static void assert_lacks(const char *text, const char *unwanted)
{
    if (strstr(text, unwanted)) {
        fprintf(stderr, "did not expect:\n%s\nin:\n%s\n", unwanted, text);
        fail();
    }
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

static void write_at(const char *rel, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", repo, rel);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void mkdir_at(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", repo, rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

/* iris' config.json with its name set to `name` and `key` replaced by the JSON `value` (removed
 * when value is NULL). The text is malloc'd. */
static char *edited_config(const char *name, const char *key, const char *value)
{
    cJSON *cfg = cJSON_Parse(iris_config);
    assert_non_null(cfg);
    cJSON_ReplaceItemInObjectCaseSensitive(cfg, "name", cJSON_CreateString(name));
    if (key) {
        cJSON_DeleteItemFromObjectCaseSensitive(cfg, key);
        if (value) {
            cJSON *v = cJSON_Parse(value);
            assert_non_null(v);
            cJSON_AddItemToObject(cfg, key, v);
        }
    }
    char *text = cJSON_Print(cfg);
    cJSON_Delete(cfg);
    return text;
}

/* One version directory of `name`: config.json and model.onnx as the flags say. */
enum onnx_kind { ONNX_IRIS, ONNX_GARBAGE, ONNX_NONE };

static void write_version(const char *name, int version, const char *config, enum onnx_kind onnx)
{
    char rel[256];
    snprintf(rel, sizeof rel, "%s/%d", name, version);
    mkdir_at(rel);
    if (config) {
        snprintf(rel, sizeof rel, "%s/%d/config.json", name, version);
        write_at(rel, config, strlen(config));
    }
    snprintf(rel, sizeof rel, "%s/%d/model.onnx", name, version);
    if (onnx == ONNX_IRIS)
        write_at(rel, iris_onnx, iris_onnx_len);
    else if (onnx == ONNX_GARBAGE)
        write_at(rel, "this is not an ONNX model", 25);
}

/* ---- The repository -------------------------------------------------------------------------- */

static const char label_int64_outputs[] =
    "{\"label\":{\"name\":\"label\",\"datatype\":\"INT64\",\"shape\":[-1]},"
    "\"probabilities\":{\"name\":\"probabilities\",\"datatype\":\"FP32\",\"shape\":[-1,3]}}";

static const struct repo_case {
    const char *name;
    int version;             /* its version directory; 0: none */
    const char *key, *value; /* config.json edit (see edited_config) */
    const char *raw_config;  /* this text as config.json instead */
    int no_config;
    enum onnx_kind onnx;
    const char *reason; /* expected in the entry's reason; NULL: loads */
} repo_cases[] = {
    {"iris", 1, NULL, NULL, NULL, 0, ONNX_IRIS, NULL},
    {"nometrics", 3, "metrics", "null", NULL, 0, ONNX_IRIS, NULL},
    {"nolabel", 1, "outputs",
     "{\"probabilities\":{\"name\":\"probabilities\",\"datatype\":\"FP32\",\"shape\":[-1,3]}}",
     NULL, 0, ONNX_IRIS, NULL},
    {"a-noversion", 0, NULL, NULL, NULL, 0, ONNX_NONE, "no version directory in "},
    {"badjson", 1, NULL, NULL, "{\"schema_version\": 1,\n\"name\": }", 0, ONNX_IRIS,
     "badjson/1/config.json: invalid JSON at byte 30 (line 2)"},
    {"notobject", 1, NULL, NULL, "[1, 2]", 0, ONNX_IRIS,
     "notobject/1/config.json: must hold a JSON object, got an array"},
    {"noconfig", 1, NULL, NULL, NULL, 1, ONNX_IRIS, "cannot read",
     /* and the path, checked below */},
    {"noonnx", 1, NULL, NULL, NULL, 0, ONNX_NONE, "noonnx/1/model.onnx: No such file or directory"},
    {"corrupt", 1, NULL, NULL, NULL, 0, ONNX_GARBAGE, "corrupt/1/model.onnx"},
    {"features3", 1, "features", "[\"sepal_length\",\"sepal_width\",\"petal_length\"]", NULL, 0,
     ONNX_IRIS, "lists 3 features but graph input 'input' has 4 columns"},
    {"schema2", 1, "schema_version", "2", NULL, 0, ONNX_IRIS,
     "schema_version 2 is newer than this server understands (1)"},
    {"noschema", 1, "schema_version", NULL, NULL, 0, ONNX_IRIS,
     "'schema_version' must be an integer, got nothing"},
    {"classes2", 1, "classes", "[\"setosa\",\"versicolor\"]", NULL, 0, ONNX_IRIS,
     "lists 2 classes but graph output 'probabilities' has 3 columns"},
    {"badinput", 1, "input", "{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1,4]}", NULL, 0,
     ONNX_IRIS, "input 'x' is not a graph input of model.onnx"},
    {"badtask", 1, "task", "\"clustering\"", NULL, 0, ONNX_IRIS,
     "'task' must be \"classification\" or \"regression\""},
    {"dupfeature", 1, "features", "[\"a\",\"b\",\"a\",\"c\"]", NULL, 0, ONNX_IRIS,
     "feature 'a' is listed twice"},
    {"labeltype", 1, "outputs", label_int64_outputs, NULL, 0, ONNX_IRIS,
     "outputs.label 'label' is declared INT64 but model.onnx has BYTES"},
    {"noproba", 1, "outputs", "{\"label\":{\"name\":\"label\",\"datatype\":\"BYTES\"}}", NULL, 0,
     ONNX_IRIS, "a classifier needs outputs.probabilities"},
    {"badfeatures", 1, "features", "\"sepal_length\"", NULL, 0, ONNX_IRIS,
     "'features' must be an array of strings, got a string"},
};

/* Loaded models: the table's, "multi", and the trained ones when present. */
static int n_expected_entries(void)
{
    return (int)N_ELEMS(repo_cases) + 1 + (have_trained ? 2 : 0);
}

/* Trains x-reg (regression, no holdout) and x-digits (integer classes) with the vigil binary. */
static void train_models(void)
{
    const char *build = getenv("VG_BUILD_DIR");
    char vigil[512], cmd[2048];
    snprintf(vigil, sizeof vigil, "%s/vigil", build ? build : "build");
    if (access(vigil, X_OK) != 0) {
        fprintf(stderr, "test_store: %s not found: skipping the trained models\n", vigil);
        return;
    }
    char csv[256], data[4096];
    size_t n = (size_t)snprintf(data, sizeof data, "a,b,y\n");
    for (int i = 0; i < 60; i++)
        n += (size_t)snprintf(data + n, sizeof data - n, "%d,%d,%g\n", i % 10, i / 10,
                              3.0 * (i % 10) - i / 10 + 0.5);
    snprintf(csv, sizeof csv, "%s/.reg.csv", repo);
    write_at(".reg.csv", data, n);
    snprintf(cmd, sizeof cmd,
             "'%s' train --data '%s' --target y --name x-reg --repo '%s' --task regression "
             "--trees 5 --test-size 0 --seed 1 --threads 1 >/dev/null",
             vigil, csv, repo);
    assert_int_equal(system(cmd), 0);
    n = (size_t)snprintf(data, sizeof data, "a,b,cls\n");
    for (int i = 0; i < 60; i++)
        n += (size_t)snprintf(data + n, sizeof data - n, "%d,%d,%d\n", i % 10, i / 10,
                              i % 10 < 3   ? 0
                              : i % 10 < 6 ? 1
                                           : 2);
    snprintf(csv, sizeof csv, "%s/.digits.csv", repo);
    write_at(".digits.csv", data, n);
    snprintf(cmd, sizeof cmd,
             "'%s' train --data '%s' --target cls --name x-digits --repo '%s' --trees 5 "
             "--seed 1 --threads 1 >/dev/null",
             vigil, csv, repo);
    assert_int_equal(system(cmd), 0);
    have_trained = 1;
}

static int setup(void **state)
{
    (void)state;
    iris_config = read_all("models/iris/1/config.json", NULL);
    iris_onnx = read_all("models/iris/1/model.onnx", &iris_onnx_len);
    if (!iris_config || !iris_onnx) {
        fprintf(stderr, "test_store: models/iris/1 is missing; create it with\n"
                        "  ./build/vigil train --data data/iris.csv --target species --name "
                        "iris --repo models --seed 42\n");
        return -1;
    }
    snprintf(repo, sizeof repo, "/tmp/vg_storeXXXXXX");
    if (!mkdtemp(repo))
        return -1;

    for (size_t i = 0; i < N_ELEMS(repo_cases); i++) {
        const struct repo_case *c = &repo_cases[i];
        mkdir_at(c->name);
        if (!c->version)
            continue;
        char *cfg =
            c->raw_config ? strdup(c->raw_config) : edited_config(c->name, c->key, c->value);
        write_version(c->name, c->version, c->no_config ? NULL : cfg, c->onnx);
        free(cfg);
    }

    /* Versions 1, 2 and 10 (numeric order, not text order), and entries that are not versions. */
    mkdir_at("multi");
    const char *const descriptions[] = {"v1", "v2", "v10"};
    const int versions[] = {1, 2, 10};
    for (int i = 0; i < 3; i++) {
        char *cfg = edited_config("multi", "description", NULL);
        cJSON *obj = cJSON_Parse(cfg);
        cJSON_AddStringToObject(obj, "description", descriptions[i]);
        free(cfg);
        cfg = cJSON_Print(obj);
        cJSON_Delete(obj);
        write_version("multi", versions[i], cfg, ONNX_IRIS);
        free(cfg);
    }
    mkdir_at("multi/.tmp-11-99999");
    mkdir_at("multi/011");
    write_at("multi/12", "not a directory", 15);

    /* Skipped by the scan: hidden, an invalid name, a plain file. */
    char *cfg = edited_config(".hidden", NULL, NULL);
    mkdir_at(".hidden");
    write_version(".hidden", 1, cfg, ONNX_IRIS);
    free(cfg);
    mkdir_at("bad name");
    write_at("README.md", "# models\n", 9);

    train_models();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", repo);
    if (repo[0] && system(cmd) != 0)
        fprintf(stderr, "test_store: could not remove %s\n", repo);
    free(iris_config);
    free(iris_onnx);
    return 0;
}

/* Opens the repository into *s with a fresh registry *reg. */
static void open_store(struct vg_store *s, struct vg_registry *reg, const char *default_model)
{
    struct vg_error err = {0};
    assert_int_equal(vg_registry_init(reg), 0);
    int rc = vg_store_open(s, repo, default_model, reg, &err);
    if (rc)
        fprintf(stderr, "vg_store_open: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

static void close_store(struct vg_store *s, struct vg_registry *reg)
{
    vg_store_close(s);
    vg_registry_release(reg);
}

static struct vg_served *served(const struct vg_store *s, const char *name)
{
    const struct vg_store_entry *e = vg_store_find(s, name);
    assert_non_null(e);
    assert_true(e->loaded);
    return e->served;
}

/* ---- Tests ----------------------------------------------------------------------------------- */

static void test_entries(void **state)
{
    (void)state;
    struct vg_store s;
    struct vg_registry reg;
    log_len = 0;
    log_text[0] = 0;
    open_store(&s, &reg, NULL);
    assert_int_equal(s.n, n_expected_entries());
    for (int i = 1; i < s.n; i++)
        assert_true(strcmp(s.entries[i - 1].name, s.entries[i].name) < 0);
    assert_null(vg_store_find(&s, ".hidden"));
    assert_null(vg_store_find(&s, "bad name"));
    assert_null(vg_store_find(&s, "README.md"));
    assert_null(vg_store_find(&s, "zzz"));

    int loaded = 0;
    for (size_t i = 0; i < N_ELEMS(repo_cases); i++) {
        const struct repo_case *c = &repo_cases[i];
        const struct vg_store_entry *e = vg_store_find(&s, c->name);
        assert_non_null(e);
        assert_string_equal(e->name, c->name);
        assert_int_equal(e->version, c->version);
        if (!c->reason) {
            if (!e->loaded)
                fprintf(stderr, "%s did not load: %s\n", c->name, e->reason);
            assert_true(e->loaded);
            assert_null(e->reason);
            assert_non_null(e->served);
            assert_string_equal(e->served->name, c->name);
            loaded++;
            continue;
        }
        assert_false(e->loaded);
        assert_null(e->served);
        assert_contains(e->reason, c->reason);
        char line[256];
        snprintf(line, sizeof line, "error model %s not loaded: ", c->name);
        assert_contains(log_text, line);
    }
    const struct vg_store_entry *e = vg_store_find(&s, "noconfig");
    assert_contains(e->reason, "noconfig/1/config.json: No such file or directory");
    loaded += 1 + (have_trained ? 2 : 0);
    assert_int_equal(vg_store_n_loaded(&s), loaded);
    assert_contains(log_text, "warn model repository ");
    assert_contains(log_text, "skipping directory 'bad name'");

    struct vg_served *m = served(&s, "iris");
    assert_int_equal(m->version, 1);
    assert_string_equal(m->version_str, "1");
    assert_int_equal(m->task, VG_TASK_CLASSIFICATION);
    assert_string_equal(m->description, "Iris species classifier (built-in)");
    assert_int_equal(m->n_features, 4);
    const char *const features[] = {"sepal_length", "sepal_width", "petal_length", "petal_width"};
    for (int j = 0; j < 4; j++) {
        assert_string_equal(m->features[j], features[j]);
        assert_int_equal(vg_served_feature_index(m, features[j]), j);
    }
    assert_int_equal(vg_served_feature_index(m, "sepal"), -1);
    assert_int_equal(vg_served_feature_index(m, ""), -1);
    assert_int_equal(m->n_classes, 3);
    assert_string_equal(m->classes[0], "setosa");
    assert_string_equal(m->classes[2], "virginica");
    assert_true(m->input >= 0 && m->out_label >= 0 && m->out_proba >= 0);
    assert_int_equal(m->out_value, -1);
    assert_false(isnan(m->holdout_accuracy));
    assert_true(m->load_seconds > 0);
    assert_non_null(m->config);

    m = served(&s, "nometrics");
    assert_int_equal(m->version, 3);
    assert_string_equal(m->version_str, "3");
    assert_true(isnan(m->holdout_accuracy));
    assert_int_equal(served(&s, "nolabel")->out_label, -1);

    m = served(&s, "multi");
    assert_int_equal(m->version, 10);
    assert_string_equal(m->description, "v10");

    if (have_trained) {
        m = served(&s, "x-reg");
        assert_int_equal(m->task, VG_TASK_REGRESSION);
        assert_int_equal(m->n_classes, 0);
        assert_true(m->out_value >= 0 && m->out_proba == -1 && m->out_label == -1);
        assert_true(isnan(m->holdout_accuracy));
        m = served(&s, "x-digits");
        assert_int_equal(m->n_classes, 3);
        assert_string_equal(m->classes[1], "1");
    }
    close_store(&s, &reg);
}

static void test_default_model(void **state)
{
    (void)state;
    static const struct {
        const char *configured, *expected;
    } cases[] = {
        {NULL, "iris"}, /* the first loaded model by name ("a-noversion", "bad*" failed) */
        {"multi", "multi"},  {"nometrics", "nometrics"},
        {"nosuch", "iris"},  /* not in the repository */
        {"schema2", "iris"}, /* failed to load */
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct vg_store s;
        struct vg_registry reg;
        log_len = 0;
        open_store(&s, &reg, cases[i].configured);
        assert_string_equal(s.default_model, cases[i].expected);
        if (cases[i].configured && strcmp(cases[i].configured, cases[i].expected)) {
            char want[128];
            snprintf(want, sizeof want, "warn default model '%s'", cases[i].configured);
            assert_contains(log_text, want);
        }
        close_store(&s, &reg);
    }
}

/* A repository with nothing loadable, and one that does not exist. */
static void test_empty_and_missing(void **state)
{
    (void)state;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/a-noversion", repo); /* holds no model directory */
    struct vg_store s;
    struct vg_registry reg;
    struct vg_error err = {0};
    assert_int_equal(vg_registry_init(&reg), 0);
    assert_int_equal(vg_store_open(&s, dir, "iris", &reg, &err), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(vg_store_n_loaded(&s), 0);
    assert_null(s.default_model);
    close_store(&s, &reg);

    snprintf(dir, sizeof dir, "%s/nowhere", repo);
    assert_int_equal(vg_registry_init(&reg), 0);
    assert_int_equal(vg_store_open(&s, dir, NULL, &reg, &err), -VG_EIO);
    assert_contains(err.msg, "cannot read the model repository");
    assert_contains(err.msg, "nowhere");
    vg_store_close(&s); /* safe after a failed open */
    vg_registry_release(&reg);
}

static void test_sha256(void **state)
{
    (void)state;
    struct vg_store s;
    struct vg_registry reg;
    open_store(&s, &reg, NULL);
    char cmd[256], expected[65] = "";
    snprintf(cmd, sizeof cmd, "sha256sum '%s/iris/1/model.onnx'", repo);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_int_equal(fscanf(p, "%64s", expected), 1);
    assert_int_equal(pclose(p), 0);
    assert_int_equal(strlen(expected), 64);
    assert_string_equal(served(&s, "iris")->sha256, expected);
    /* The same bytes in another model give the same digest. */
    assert_string_equal(served(&s, "multi")->sha256, expected);
    close_store(&s, &reg);
}

/* ---- The session pool ------------------------------------------------------------------------ */

#define POOL_THREADS 8
#define POOL_ITERATIONS 400

struct pool_shared {
    struct vg_served *m;
    pthread_mutex_t lock;
    struct vg_session *held[POOL_THREADS];
    atomic_int errors;
};

static void *pool_worker(void *arg)
{
    struct pool_shared *sh = arg;
    for (int it = 0; it < POOL_ITERATIONS; it++) {
        struct vg_session *sess = vg_served_acquire(sh->m);
        if (!sess) {
            atomic_fetch_add(&sh->errors, 1);
            continue;
        }
        int slot = -1;
        pthread_mutex_lock(&sh->lock);
        for (int i = 0; i < POOL_THREADS; i++) {
            if (sh->held[i] == sess)
                atomic_fetch_add(&sh->errors, 1); /* two threads hold one session */
            if (!sh->held[i] && slot < 0)
                slot = i;
        }
        sh->held[slot] = sess;
        pthread_mutex_unlock(&sh->lock);

        float x[2][4] = {{5.1f, 3.5f, 1.4f, 0.2f}, {7.7f, 3.0f, 6.1f, 2.3f + (float)(it % 3)}};
        int64_t rows = 1 + it % 2;
        struct vg_tensor t = {.dtype = VG_DT_FLOAT, .rank = 2, .dims = {rows, 4}, .data = x};
        struct vg_error err = {0};
        if (vg_session_set_input(sess, sh->m->input, &t, &err) ||
            vg_served_run(sh->m, sess, &err)) {
            atomic_fetch_add(&sh->errors, 1);
        } else {
            const struct vg_tensor *p = vg_session_output(sess, sh->m->out_proba);
            for (int64_t r = 0; r < rows; r++) {
                const float *row = (const float *)p->data + r * 3;
                if (fabs(row[0] + row[1] + row[2] - 1.0) > 1e-4)
                    atomic_fetch_add(&sh->errors, 1);
            }
        }

        pthread_mutex_lock(&sh->lock);
        sh->held[slot] = NULL;
        pthread_mutex_unlock(&sh->lock);
        vg_served_release(sh->m, sess);
    }
    return NULL;
}

static void test_pool_threads(void **state)
{
    (void)state;
    struct vg_store s;
    struct vg_registry reg;
    open_store(&s, &reg, NULL);
    struct pool_shared sh = {.m = served(&s, "iris")};
    pthread_mutex_init(&sh.lock, NULL);
    atomic_init(&sh.errors, 0);
    pthread_t th[POOL_THREADS];
    for (int i = 0; i < POOL_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, pool_worker, &sh), 0);
    for (int i = 0; i < POOL_THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&sh.errors), 0);
    pthread_mutex_destroy(&sh.lock);

    /* Every run was observed, and nothing else (the warm-up runs at load are not). */
    char want[160];
    struct vg_expo_buf b;
    vg_expo_buf_init(&b, 1 << 22);
    assert_int_equal(vg_registry_render(&reg, VG_EXPO_PROMETHEUS, &b), 0);
    snprintf(want, sizeof want,
             "vigil_model_inference_duration_seconds_count{model=\"iris\",version=\"1\"} %d\n",
             POOL_THREADS * POOL_ITERATIONS);
    assert_contains(b.data, want);
    vg_expo_buf_release(&b);
    close_store(&s, &reg);
}

/* More sessions than the pool holds: the overflow ones are fresh and freed on release. */
static void test_pool_overflow(void **state)
{
    (void)state;
    struct vg_store s;
    struct vg_registry reg;
    open_store(&s, &reg, NULL);
    struct vg_served *m = served(&s, "iris");
    enum { N = 300 }; /* above the largest pool (256 sessions) */
    struct vg_session **held = calloc(N, sizeof *held);
    assert_non_null(held);
    for (int i = 0; i < N; i++) {
        held[i] = vg_served_acquire(m);
        assert_non_null(held[i]);
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(held[i], held[j]);
    }
    float x[4] = {5.1f, 3.5f, 1.4f, 0.2f};
    struct vg_tensor t = {.dtype = VG_DT_FLOAT, .rank = 2, .dims = {1, 4}, .data = x};
    assert_int_equal(vg_session_set_input(held[N - 1], m->input, &t, NULL), 0);
    assert_int_equal(vg_served_run(m, held[N - 1], NULL), 0);
    for (int i = 0; i < N; i++)
        vg_served_release(m, held[i]);
    /* The pooled sessions come back. */
    struct vg_session *again = vg_served_acquire(m);
    int pooled = 0;
    for (int i = 0; i < N; i++)
        pooled |= again == held[i];
    assert_true(pooled);
    vg_served_release(m, again);
    free(held);
    close_store(&s, &reg);
}

/* ---- Metrics --------------------------------------------------------------------------------- */

static void test_metrics(void **state)
{
    (void)state;
    struct vg_store s;
    struct vg_registry reg;
    open_store(&s, &reg, NULL);
    struct vg_served *m = served(&s, "iris");
    vg_served_count(m, VG_OUTCOME_SUCCESS, 3);
    vg_served_count(m, VG_OUTCOME_SUCCESS, 2);
    vg_served_count(m, VG_OUTCOME_BAD_INPUT, 0);
    vg_served_count(m, VG_OUTCOME_INTERNAL, 4); /* rows count only on success */
    vg_served_count_class(m, 0);
    vg_served_count_class(m, 0);
    vg_served_count_class(m, 2);
    vg_served_count_class(m, 3);  /* out of range: ignored */
    vg_served_count_class(m, -1); /* no class: ignored */

    struct vg_expo_buf b;
    vg_expo_buf_init(&b, 1 << 22);
    assert_int_equal(vg_registry_render(&reg, VG_EXPO_PROMETHEUS, &b), 0);
    const char *text = b.data;

    char accuracy[32], line[256];
    vg_expo_format_double(accuracy, sizeof accuracy, m->holdout_accuracy);
    const char *const want[] = {
        "# TYPE vigil_model_requests_total counter\n",
        "\nvigil_model_requests_total{model=\"iris\",version=\"1\",outcome=\"success\"} 2\n",
        "\nvigil_model_requests_total{model=\"iris\",version=\"1\",outcome=\"bad_input\"} 1\n",
        "\nvigil_model_requests_total{model=\"iris\",version=\"1\",outcome=\"internal\"} 1\n",
        "\nvigil_model_requests_total{model=\"multi\",version=\"10\",outcome=\"success\"} 0\n",
        "\nvigil_model_rows_total{model=\"iris\",version=\"1\"} 5\n",
        "\nvigil_model_predictions_total{model=\"iris\",version=\"1\",class=\"setosa\"} 2\n",
        "\nvigil_model_predictions_total{model=\"iris\",version=\"1\",class=\"versicolor\"} 0\n",
        "\nvigil_model_predictions_total{model=\"iris\",version=\"1\",class=\"virginica\"} 1\n",
        "# TYPE vigil_model_inference_duration_seconds histogram\n",
        "\nvigil_model_inference_duration_seconds_bucket{model=\"iris\",version=\"1\",le=\"1e-06\"}"
        " "
        "0\n",
        "\nvigil_model_inference_duration_seconds_bucket{model=\"iris\",version=\"1\",le=\"0."
        "00025\"}"
        " 0\n",
        "\nvigil_model_inference_duration_seconds_bucket{model=\"iris\",version=\"1\",le=\"1\"} "
        "0\n",
        "\nvigil_model_inference_duration_seconds_count{model=\"iris\",version=\"1\"} 0\n",
        "# TYPE vigil_model_info gauge\n",
        "# TYPE vigil_model_loaded gauge\n",
        "\nvigil_model_loaded{model=\"iris\",version=\"1\"} 1\n",
        "\nvigil_model_loaded{model=\"multi\",version=\"10\"} 1\n",
        "\nvigil_model_loaded{model=\"nometrics\",version=\"3\"} 1\n",
        "\nvigil_model_loaded{model=\"a-noversion\",version=\"\"} 0\n",
        "\nvigil_model_loaded{model=\"schema2\",version=\"1\"} 0\n",
        "\nvigil_model_loaded{model=\"corrupt\",version=\"1\"} 0\n",
        "# HELP vigil_model_holdout_accuracy ",
        "# HELP vigil_model_load_duration_seconds ",
        "\nvigil_model_load_duration_seconds{model=\"iris\",version=\"1\"} ",
        "# HELP vigil_model_load_timestamp_seconds ",
        "\nvigil_model_load_timestamp_seconds{model=\"iris\",version=\"1\"} ",
    };
    for (size_t i = 0; i < N_ELEMS(want); i++)
        assert_contains(text, want[i]);
    snprintf(line, sizeof line,
             "\nvigil_model_info{model=\"iris\",version=\"1\",sha256=\"%s\"} 1\n", m->sha256);
    assert_contains(text, line);
    snprintf(line, sizeof line, "\nvigil_model_holdout_accuracy{model=\"iris\",version=\"1\"} %s\n",
             accuracy);
    assert_contains(text, line);
    /* Unknown accuracy: no series. A failed model: only vigil_model_loaded. */
    assert_lacks(text, "vigil_model_holdout_accuracy{model=\"nometrics\"");
    assert_lacks(text, "vigil_model_requests_total{model=\"schema2\"");
    assert_lacks(text, "vigil_model_info{model=\"schema2\"");
    if (have_trained) {
        assert_contains(text, "\nvigil_model_predictions_total{model=\"x-digits\",version=\"1\","
                              "class=\"1\"} 0\n");
        assert_lacks(text, "vigil_model_predictions_total{model=\"x-reg\"");
    }
    /* A timestamp from this run, in seconds. */
    const char *ts = strstr(text, "\nvigil_model_load_timestamp_seconds{model=\"iris\"");
    ts = strchr(ts + 1, '}') + 2;
    double when = strtod(ts, NULL);
    assert_true(when > 1.6e9 && when < 1e10);
    vg_expo_buf_release(&b);
    close_store(&s, &reg);
}

/* ---- /predict -------------------------------------------------------------------------------- */

#define ROW_SETOSA                                                                                 \
    "{\"sepal_length\":5.1,\"sepal_width\":3.5,\"petal_length\":1.4,\"petal_width\":0.2}"
#define ROW_VIRGINICA                                                                              \
    "{\"sepal_length\":7.7,\"sepal_width\":3.0,\"petal_length\":6.1,\"petal_width\":2.3}"

static const struct predict_case {
    const char *model; /* r->params[0]; NULL: POST /predict */
    const char *body;
    int status;
    const char *want; /* in the answer */
} predict_cases[] = {
    /* answers */
    {NULL, ROW_SETOSA, 200,
     "{\"id\":\"req-1\",\"model\":\"iris\",\"version\":1,\"prediction\":\"setosa\","
     "\"probabilities\":{\"setosa\":"},
    {"iris", ROW_VIRGINICA, 200, "\"prediction\":\"virginica\""},
    {"iris", "{\"petal_width\":0.2,\"petal_length\":1.4,\"sepal_width\":3.5,\"sepal_length\":5.1}",
     200, "\"prediction\":\"setosa\""},
    {"iris", "{\"instances\":[" ROW_SETOSA "," ROW_VIRGINICA "]}", 200,
     "{\"id\":\"req-1\",\"model\":\"iris\",\"version\":1,\"predictions\":[{\"prediction\":"
     "\"setosa\",\"probabilities\":{\"setosa\":"},
    {"iris", "{\"instances\":[" ROW_SETOSA "," ROW_VIRGINICA "]}", 200,
     "},{\"prediction\":\"virginica\",\"probabilities\":{\"setosa\":"},
    {"iris", " \n" ROW_SETOSA "\r\n\t ", 200, "\"prediction\":\"setosa\""},
    {"nolabel", ROW_VIRGINICA, 200,
     "\"model\":\"nolabel\",\"version\":1,\"prediction\":"
     "\"virginica\",\"probabilities\":{"},
    {"multi", ROW_SETOSA, 200, "\"model\":\"multi\",\"version\":10,"},
    /* the request is refused */
    {"iris", "", 400, "the request body is empty"},
    {"iris", "{", 400, "malformed JSON at byte 0"},
    {"iris", "{\"sepal_length\": 5.1,,}", 400, "malformed JSON at byte 22 near '}'"},
    {"iris", "{\"sepal_length\": NaN}", 400,
     "malformed JSON at byte 17 near 'NaN}': NaN and Infinity are not JSON numbers"},
    {"iris", "{\"sepal_length\": -Infinity}", 400, "NaN and Infinity are not JSON numbers"},
    {"iris", ROW_SETOSA " {}", 400, "unexpected data after the JSON value at byte 76"},
    {"iris", "[" ROW_SETOSA "]", 400,
     "the body must be a JSON object of features or {\\\"instances\\\": [...]}, got an array"},
    {"iris", "42", 400, "got a number"},
    {"iris", "{}", 400,
     "missing features 'sepal_length', 'sepal_width', 'petal_length', 'petal_width'\"}"},
    {"iris", "{\"sepal_length\":5.1,\"sepal_width\":3.5,\"petal_length\":1.4}", 400,
     "\"missing feature 'petal_width'\"}"},
    {"iris",
     "{\"sepal_length\":5.1,\"sepal_width\":3.5,\"petal_length\":1.4,\"petal_width\":0.2,"
     "\"colour\":1,\"size\":2}",
     400,
     "\"unknown keys 'colour', 'size' (the model's features: 'sepal_length', 'sepal_width', "
     "'petal_length', 'petal_width')\"}"},
    {"iris", "{\"sepal_lenght\":5.1,\"sepal_width\":3.5,\"petal_length\":1.4,\"petal_width\":0.2}",
     400, "\"missing feature 'sepal_length'; unknown key 'sepal_lenght' (the model's features: "},
    {"iris",
     "{\"sepal_length\":\"5.1\",\"sepal_width\":3.5,\"petal_length\":1.4,\"petal_width\":0.2}", 400,
     "\"feature 'sepal_length' must be a number, got a string '5.1'\"}"},
    {"iris", "{\"sepal_length\":null}", 400, "feature 'sepal_length' must be a number, got null"},
    {"iris", "{\"sepal_length\":true}", 400, "must be a number, got a boolean"},
    {"iris", "{\"sepal_length\":[1]}", 400, "must be a number, got an array"},
    {"iris", "{\"sepal_length\":{}}", 400, "must be a number, got an object"},
    {"iris", "{\"sepal_length\":1e39,\"sepal_width\":3.5,\"petal_length\":1.4,\"petal_width\":0}",
     400, "feature 'sepal_length' = 1e+39 is out of the float32 range"},
    {"iris", "{\"sepal_length\":-1e999,\"sepal_width\":3.5,\"petal_length\":1.4,\"petal_width\":0}",
     400, "feature 'sepal_length' = -inf is out of the float32 range"},
    {"iris", "{\"sepal_length\":1,\"sepal_length\":2}", 400,
     "feature 'sepal_length' appears more than once"},
    {"iris", "{\"instances\":[]}", 400, "'instances' is empty: send at least one row"},
    {"iris", "{\"instances\":{}}", 400, "'instances' must be an array of objects, got an object"},
    {"iris", "{\"instances\":[" ROW_SETOSA ",7]}", 400,
     "instances[1] must be an object of features, got a number"},
    {"iris", "{\"instances\":[" ROW_SETOSA "],\"top\":1}", 400,
     "unexpected key 'top' beside 'instances'"},
    {"iris", "{\"instances\":[" ROW_SETOSA ",{\"sepal_length\":1}]}", 400,
     "\"instances[1]: missing features 'sepal_width', 'petal_length', 'petal_width'\"}"},
    {"iris", "{\"instances\":[" ROW_SETOSA "," ROW_SETOSA "," ROW_SETOSA "]}", 413,
     "'instances' has 3 rows; the limit is 2 per request (max_batch_rows)"},
    /* no such model, or not loaded */
    {"nosuch", ROW_SETOSA, 404, "model 'nosuch' not found"},
    {"schema2", ROW_SETOSA, 503, "model 'schema2' is not available: it failed to load: "},
    {"a-noversion", ROW_SETOSA, 503, "no version directory"},
};

static void predict(struct vg_store *s, struct vg_req *r, const char *model, const char *body)
{
    memset(r, 0, sizeof *r);
    r->method = "POST";
    r->path = model ? "/models/{model}/predict" : "/predict";
    r->body = body;
    r->body_len = strlen(body);
    r->params[0] = model;
    r->n_params = model ? 1 : 0;
    snprintf(r->request_id, sizeof r->request_id, "req-1");
    r->store = s;
    r->registry = s->registry;
    vg_api_predict(r);
}

static void test_predict(void **state)
{
    (void)state;
    struct vg_store s;
    struct vg_registry reg;
    open_store(&s, &reg, NULL);
    s.max_batch_rows = 2;
    int bad_iris = 0, ok_iris = 0;
    for (size_t i = 0; i < N_ELEMS(predict_cases); i++) {
        const struct predict_case *c = &predict_cases[i];
        struct vg_req r;
        predict(&s, &r, c->model, c->body);
        if (r.status != c->status || !r.resp_body || !strstr(r.resp_body, c->want))
            fprintf(stderr, "case %zu: %s -> %d %s\n", i, c->body, r.status,
                    r.resp_body ? r.resp_body : "(no body)");
        assert_int_equal(r.status, c->status);
        assert_string_equal(r.resp_type, "application/json");
        assert_non_null(r.resp_body);
        assert_int_equal(strlen(r.resp_body), r.resp_len);
        assert_contains(r.resp_body, c->want);
        cJSON *doc = cJSON_ParseWithLength(r.resp_body, r.resp_len);
        assert_non_null(doc); /* valid JSON */
        if (c->status == 200) {
            const cJSON *rows = cJSON_GetObjectItem(doc, "predictions");
            const cJSON *row = rows ? rows->child : doc;
            for (; row; row = rows ? row->next : NULL) {
                double total = 0;
                const cJSON *p;
                const cJSON *probabilities = cJSON_GetObjectItem(row, "probabilities");
                for (p = probabilities ? probabilities->child : NULL; p; p = p->next)
                    total += p->valuedouble;
                assert_true(fabs(total - 1) < 1e-4);
            }
            assert_string_equal(r.log_version, served(&s, r.log_model)->version_str);
        } else {
            assert_true(cJSON_IsString(cJSON_GetObjectItem(doc, "error")));
        }
        if (c->status != 404)
            assert_string_equal(r.log_model, c->model ? c->model : "iris");
        if (c->model && !strcmp(c->model, "iris")) {
            bad_iris += c->status == 400 || c->status == 413;
            ok_iris += c->status == 200;
        }
        cJSON_Delete(doc);
        free(r.resp_body);
    }

    /* Requests and rows were counted by outcome. */
    struct vg_expo_buf b;
    char line[256];
    vg_expo_buf_init(&b, 1 << 22);
    assert_int_equal(vg_registry_render(&reg, VG_EXPO_PROMETHEUS, &b), 0);
    snprintf(line, sizeof line,
             "vigil_model_requests_total{model=\"iris\",version=\"1\",outcome=\"bad_input\"} %d\n",
             bad_iris);
    assert_contains(b.data, line);
    snprintf(line, sizeof line,
             "vigil_model_requests_total{model=\"iris\",version=\"1\",outcome=\"success\"} %d\n",
             ok_iris + 1 /* the POST /predict case */);
    assert_contains(b.data, line);
    assert_contains(b.data,
                    "vigil_model_requests_total{model=\"iris\",version=\"1\",outcome=\"internal\"} "
                    "0\n");
    vg_expo_buf_release(&b);
    close_store(&s, &reg);
}

/* The regressor and the integer-label classifier (when vigil could train them). */
static void test_predict_trained(void **state)
{
    (void)state;
    if (!have_trained)
        skip();
    struct vg_store s;
    struct vg_registry reg;
    open_store(&s, &reg, NULL);
    struct vg_req r;

    predict(&s, &r, "x-reg", "{\"a\":2,\"b\":1}");
    assert_int_equal(r.status, 200);
    assert_contains(r.resp_body, "\"model\":\"x-reg\",\"version\":1,\"prediction\":");
    assert_lacks(r.resp_body, "probabilities");
    cJSON *doc = cJSON_Parse(r.resp_body);
    const cJSON *pred = cJSON_GetObjectItem(doc, "prediction");
    assert_true(cJSON_IsNumber(pred));
    assert_true(fabs(pred->valuedouble - 5.5) < 2); /* y = 3a - b + 0.5, five shallow trees */
    cJSON_Delete(doc);
    free(r.resp_body);

    predict(&s, &r, "x-digits", "{\"instances\":[{\"a\":1,\"b\":2},{\"b\":0,\"a\":8}]}");
    assert_int_equal(r.status, 200);
    assert_contains(r.resp_body, "\"predictions\":[{\"prediction\":0,\"probabilities\":{\"0\":");
    assert_contains(r.resp_body, "{\"prediction\":2,\"probabilities\":{\"0\":");
    free(r.resp_body);

    struct vg_expo_buf b;
    vg_expo_buf_init(&b, 1 << 22);
    assert_int_equal(vg_registry_render(&reg, VG_EXPO_PROMETHEUS, &b), 0);
    assert_contains(b.data, "\nvigil_model_predictions_total{model=\"x-digits\",version=\"1\","
                            "class=\"0\"} 1\n");
    assert_contains(b.data, "\nvigil_model_predictions_total{model=\"x-digits\",version=\"1\","
                            "class=\"2\"} 1\n");
    assert_contains(b.data, "\nvigil_model_rows_total{model=\"x-digits\",version=\"1\"} 2\n");
    vg_expo_buf_release(&b);
    close_store(&s, &reg);
}

/* Answers through the default model when none is loaded. */
static void test_predict_no_model(void **state)
{
    (void)state;
    struct vg_store s;
    struct vg_registry reg;
    struct vg_error err = {0};
    char dir[128];
    snprintf(dir, sizeof dir, "%s/a-noversion", repo);
    assert_int_equal(vg_registry_init(&reg), 0);
    assert_int_equal(vg_store_open(&s, dir, NULL, &reg, &err), 0);
    struct vg_req r;
    predict(&s, &r, NULL, ROW_SETOSA);
    assert_int_equal(r.status, 503);
    assert_contains(r.resp_body, "no model is loaded");
    free(r.resp_body);
    close_store(&s, &reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entries),           cmocka_unit_test(test_default_model),
        cmocka_unit_test(test_empty_and_missing), cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_pool_threads),      cmocka_unit_test(test_pool_overflow),
        cmocka_unit_test(test_metrics),           cmocka_unit_test(test_predict),
        cmocka_unit_test(test_predict_trained),   cmocka_unit_test(test_predict_no_model),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
