/*
 * Random forest trainer and ONNX writer (src/train/forest.c, src/train/onnx_write.c), on small
 * data sets made here:
 *  - determinism: 1, 2 and 4 threads give the same ONNX bytes; another seed gives other bytes;
 *  - the ONNX model loads in our engine and its labels / probabilities / values on the training
 *    rows equal a walk of the forest's own trees (classification with 3 integer-named classes,
 *    2 string-named classes, regression), exactly, given the writer's documented weight grid;
 *  - one unpruned tree without bootstrap fits distinct rows with random labels perfectly, also
 *    when most features are constant and max_features is 1 (constant draws do not end a node);
 *  - regression on y = 3 x0 + noise reaches R^2 > 0.9 on held-out rows;
 *  - adjacent float32 feature values are separated by the model run in the engine;
 *  - min_samples_leaf and max_depth hold in every tree; the trees are in preorder;
 *  - labels are int64 exactly when every class name is a canonical integer;
 *  - bad parameters are refused.
 * With VG_FOREST_DUMP=DIR set, the models are also written to DIR (for onnx.checker by hand).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vigil/engine.h"
#include "vigil/train.h"

/* ---- data sets made by hand --------------------------------------------------------------- */

static uint64_t test_rand_state;

static uint64_t test_rand(void)
{
    uint64_t z = (test_rand_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double test_uniform(void)
{
    return (double)(test_rand() >> 11) * (1.0 / 9007199254740992.0);
}

static char *names3[] = {"0", "1", "2"};
static char *names_str[] = {"cat", "dog"};
static char *feature_names[] = {"f0", "f1", "f2", "f3", "f4", "f5"};

static void ds_alloc(struct vg_dataset *ds, int n_rows, int n_features, enum vg_task task)
{
    memset(ds, 0, sizeof *ds);
    ds->n_rows = n_rows;
    ds->n_features = n_features;
    ds->feature_names = feature_names;
    ds->target_name = "y";
    ds->task = task;
    ds->x = calloc((size_t)n_rows * (size_t)n_features, sizeof *ds->x);
    assert_non_null(ds->x);
    if (task == VG_TASK_CLASSIFICATION) {
        ds->y_class = calloc((size_t)n_rows, sizeof *ds->y_class);
        assert_non_null(ds->y_class);
    } else {
        ds->y_value = calloc((size_t)n_rows, sizeof *ds->y_value);
        assert_non_null(ds->y_value);
    }
}

static void ds_free(struct vg_dataset *ds)
{
    free(ds->x);
    free(ds->y_class);
    free(ds->y_value);
}

/*
 * Classification: class from a noisy linear score of the first features, cut into n_classes
 * bands; f3 holds only a few distinct values (ties); the last feature is constant.
 */
static void make_classification(struct vg_dataset *ds, int n_rows, int n_classes, uint64_t seed)
{
    int nf = 5;
    ds_alloc(ds, n_rows, nf, VG_TASK_CLASSIFICATION);
    ds->n_classes = n_classes;
    ds->class_names = n_classes == 2 ? names_str : names3;
    test_rand_state = seed;
    for (int i = 0; i < n_rows; i++) {
        float *x = ds->x + (size_t)i * nf;
        x[0] = (float)(test_uniform() * 4 - 2);
        x[1] = (float)(test_uniform() * 4 - 2);
        x[2] = (float)(test_uniform() * 10);
        x[3] = (float)(test_rand() % 5);
        x[4] = 1.5f;
        double score = x[0] + 0.5 * x[1] + 0.2 * x[3] + (test_uniform() - 0.5);
        int c = score < -0.5 ? 0 : (score < 0.7 || n_classes == 2 ? 1 : 2);
        if (n_classes == 2)
            c = score < 0.0 ? 0 : 1;
        ds->y_class[i] = c;
    }
}

static void make_regression(struct vg_dataset *ds, int n_rows, uint64_t seed)
{
    int nf = 4;
    ds_alloc(ds, n_rows, nf, VG_TASK_REGRESSION);
    test_rand_state = seed;
    for (int i = 0; i < n_rows; i++) {
        float *x = ds->x + (size_t)i * nf;
        for (int j = 0; j < nf; j++)
            x[j] = (float)(test_uniform() * 2 - 1);
        ds->y_value[i] = 3.0 * x[0] + 0.1 * (test_uniform() - 0.5);
    }
}

static int32_t *all_rows(int n)
{
    int32_t *rows = malloc((size_t)n * sizeof *rows);
    assert_non_null(rows);
    for (int i = 0; i < n; i++)
        rows[i] = i;
    return rows;
}

/* ---- the forest's own predictions ------------------------------------------------------------ */

static int leaf_of(const struct vg_tree *t, const float *x)
{
    int k = 0;
    while (t->nodes[k].feature >= 0)
        k = x[t->nodes[k].feature] <= t->nodes[k].threshold ? t->nodes[k].left : t->nodes[k].right;
    return k;
}

/*
 * The weight the writer stores for a leaf value (its documented grid): value / n_trees rounded
 * down to a multiple of 2^-24 for classifiers, to the nearest multiple of 2^e for regressors.
 */
static int regression_grid(const struct vg_forest *f)
{
    double bound = 0.0;
    for (int t = 0; t < f->n_trees; t++) {
        double largest = 0.0;
        for (int i = 0; i < f->trees[t].n_nodes; i++)
            if (f->trees[t].nodes[i].feature < 0)
                largest = fmax(largest, fabs(f->trees[t].values[f->trees[t].nodes[i].value]));
        bound += largest * (1.0 / f->n_trees);
    }
    int e;
    frexp(bound, &e);
    return e - 23;
}

static double stored_weight(const struct vg_forest *f, double v)
{
    double w = v * (1.0 / f->n_trees);
    if (f->task == VG_TASK_CLASSIFICATION)
        return ldexp(floor(ldexp(w, 24)), -24);
    int e = regression_grid(f);
    return ldexp(round(ldexp(w, -e)), e);
}

/*
 * What the ONNX model must output for row x: the sums of the stored weights (exact in float and
 * double alike, by the grid), as float; two classes output (1 - s, s) from the class-1 sum s with
 * label 1 when s > 0.5; more classes take the first largest sum. Also checks the sums are within
 * the grid's rounding of the forest's plain averages.
 */
static int forest_predict(const struct vg_forest *f, const float *x, float *out)
{
    double sums[8] = {0}, plain[8] = {0};
    int k = f->task == VG_TASK_CLASSIFICATION ? f->n_classes : 1;
    assert_true(k <= 8);
    for (int t = 0; t < f->n_trees; t++) {
        const struct vg_tree *tr = &f->trees[t];
        const double *v = tr->values + tr->nodes[leaf_of(tr, x)].value;
        for (int c = 0; c < k; c++) {
            sums[c] += stored_weight(f, v[c]);
            plain[c] += v[c] / f->n_trees;
        }
    }
    double tolerance = f->task == VG_TASK_CLASSIFICATION
                           ? ldexp(f->n_trees, -24)
                           : ldexp(f->n_trees, regression_grid(f) - 1);
    for (int c = 0; c < k; c++)
        assert_true(fabs(sums[c] - plain[c]) <= tolerance);
    if (f->task == VG_TASK_REGRESSION) {
        out[0] = (float)sums[0];
        return 0;
    }
    if (k == 2) {
        float s = (float)sums[1];
        out[0] = 1.0f - s;
        out[1] = s;
        return sums[1] > 0.5;
    }
    int best = 0;
    for (int c = 0; c < k; c++) {
        out[c] = (float)sums[c];
        if (sums[c] > sums[best])
            best = c;
    }
    return best;
}

/* ---- helpers --------------------------------------------------------------------------------- */

static void train_ok(const struct vg_dataset *ds, const int32_t *rows, int n,
                     const struct vg_forest_params *p, struct vg_forest *f)
{
    struct vg_error err = {0};
    int rc = vg_forest_train(ds, rows, n, p, f, &err);
    if (rc)
        fail_msg("vg_forest_train: %s", err.msg);
}

static void to_onnx_ok(const struct vg_forest *f, const struct vg_dataset *ds, void **bytes,
                       size_t *len)
{
    struct vg_error err = {0};
    int rc = vg_forest_to_onnx(f, ds, "test_model", bytes, len, &err);
    if (rc)
        fail_msg("vg_forest_to_onnx: %s", err.msg);
    assert_non_null(*bytes);
    assert_true(*len > 0);
}

static void maybe_dump(const char *file, const void *bytes, size_t len)
{
    const char *dir = getenv("VG_FOREST_DUMP");
    if (!dir)
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1, len, fp), len);
    fclose(fp);
}

/* Runs the model on rows [0, n) of ds through the engine; checks every output against the walk. */
static void check_engine_matches(const struct vg_forest *f, const struct vg_dataset *ds,
                                 const void *bytes, size_t len)
{
    struct vg_model *m = NULL;
    struct vg_error err = {0};
    int rc = vg_engine_load_bytes(bytes, len, NULL, &m, &err);
    if (rc)
        fail_msg("vg_engine_load_bytes: %s", err.msg);
    struct vg_session *s = vg_session_new(m);
    assert_non_null(s);
    struct vg_tensor in = {
        .dtype = VG_DT_FLOAT, .rank = 2, .dims = {ds->n_rows, ds->n_features}, .data = ds->x};
    assert_int_equal(vg_model_input_index(m, "input"), 0);
    rc = vg_session_set_input(s, 0, &in, &err);
    if (!rc)
        rc = vg_session_run(s, &err);
    if (rc)
        fail_msg("engine run: %s", err.msg);
    float expect[8];
    if (f->task == VG_TASK_REGRESSION) {
        const struct vg_tensor *v = vg_session_output(s, vg_model_output_index(m, "variable"));
        assert_non_null(v);
        assert_int_equal(v->rank, 2);
        assert_int_equal(v->dims[1], 1);
        for (int i = 0; i < ds->n_rows; i++) {
            forest_predict(f, ds->x + (size_t)i * ds->n_features, expect);
            assert_true(((const float *)v->data)[i] == expect[0]);
        }
    } else {
        int c_n = f->n_classes;
        const struct vg_tensor *label = vg_session_output(s, vg_model_output_index(m, "label"));
        const struct vg_tensor *prob =
            vg_session_output(s, vg_model_output_index(m, "probabilities"));
        assert_non_null(label);
        assert_non_null(prob);
        assert_int_equal(prob->dims[0], ds->n_rows);
        assert_int_equal(prob->dims[1], c_n);
        const float *pd = prob->data;
        for (int i = 0; i < ds->n_rows; i++) {
            int want = forest_predict(f, ds->x + (size_t)i * ds->n_features, expect);
            if (label->dtype == VG_DT_STRING)
                assert_string_equal(((const char *const *)label->data)[i], ds->class_names[want]);
            else
                assert_int_equal(((const int64_t *)label->data)[i], atoll(ds->class_names[want]));
            for (int c = 0; c < c_n; c++)
                if (pd[(size_t)i * c_n + c] != expect[c])
                    fail_msg("row %d class %d: engine %.9g, forest %.9g", i, c,
                             pd[(size_t)i * c_n + c], expect[c]);
        }
    }
    vg_session_free(s);
    vg_model_free(m);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_deterministic_across_threads(void **state)
{
    (void)state;
    struct vg_dataset ds;
    make_classification(&ds, 400, 3, 1);
    int32_t *rows = all_rows(ds.n_rows);
    struct vg_forest_params p;
    vg_forest_params_default(&p, VG_TASK_CLASSIFICATION);
    p.n_trees = 12;
    void *ref = NULL;
    size_t ref_len = 0;
    const int threads[] = {1, 2, 4};
    for (int k = 0; k < 3; k++) {
        struct vg_forest f;
        void *bytes;
        size_t len;
        p.threads = threads[k];
        train_ok(&ds, rows, ds.n_rows, &p, &f);
        to_onnx_ok(&f, &ds, &bytes, &len);
        if (!ref) {
            ref = bytes;
            ref_len = len;
        } else {
            assert_int_equal(len, ref_len);
            assert_memory_equal(bytes, ref, len);
            free(bytes);
        }
        vg_forest_release(&f);
    }
    /* Another seed: other trees, other bytes. */
    struct vg_forest f;
    void *bytes;
    size_t len;
    p.seed = 43;
    p.threads = 2;
    train_ok(&ds, rows, ds.n_rows, &p, &f);
    to_onnx_ok(&f, &ds, &bytes, &len);
    assert_true(len != ref_len || memcmp(bytes, ref, len) != 0);
    free(bytes);
    vg_forest_release(&f);
    free(ref);
    free(rows);
    ds_free(&ds);
}

static void check_engine_case(struct vg_dataset *ds, const struct vg_forest_params *p,
                              const char *dump_name)
{
    int32_t *rows = all_rows(ds->n_rows);
    struct vg_forest f;
    void *bytes;
    size_t len;
    train_ok(ds, rows, ds->n_rows, p, &f);
    to_onnx_ok(&f, ds, &bytes, &len);
    maybe_dump(dump_name, bytes, len);
    check_engine_matches(&f, ds, bytes, len);
    free(bytes);
    vg_forest_release(&f);
    free(rows);
}

static void test_engine_matches_three_classes(void **state)
{
    (void)state;
    struct vg_dataset ds;
    struct vg_forest_params p;
    make_classification(&ds, 500, 3, 2);
    vg_forest_params_default(&p, VG_TASK_CLASSIFICATION);
    p.n_trees = 25;
    p.threads = 2;
    check_engine_case(&ds, &p, "forest_3class.onnx");
    p.criterion = VG_CRIT_ENTROPY;
    p.max_depth = 4;
    check_engine_case(&ds, &p, "forest_3class_entropy.onnx");
    ds_free(&ds);
}

static void test_engine_matches_two_string_classes(void **state)
{
    (void)state;
    struct vg_dataset ds;
    struct vg_forest_params p;
    make_classification(&ds, 500, 2, 3);
    vg_forest_params_default(&p, VG_TASK_CLASSIFICATION);
    p.n_trees = 25;
    p.min_samples_leaf = 3;
    check_engine_case(&ds, &p, "forest_2class.onnx");
    ds_free(&ds);
}

static void test_engine_matches_regression(void **state)
{
    (void)state;
    struct vg_dataset ds;
    struct vg_forest_params p;
    make_regression(&ds, 300, 4);
    vg_forest_params_default(&p, VG_TASK_REGRESSION);
    p.n_trees = 20;
    check_engine_case(&ds, &p, "forest_regression.onnx");
    ds_free(&ds);
}

static void test_single_tree_fits_training_data(void **state)
{
    (void)state;
    struct vg_dataset ds;
    make_classification(&ds, 300, 3, 5);
    test_rand_state = 99;
    for (int i = 0; i < ds.n_rows; i++)
        ds.y_class[i] = (int32_t)(test_rand() % 3); /* labels unrelated to the features */
    int32_t *rows = all_rows(ds.n_rows);
    struct vg_forest_params p;
    vg_forest_params_default(&p, VG_TASK_CLASSIFICATION);
    p.n_trees = 1;
    p.bootstrap = 0;
    p.max_features = VG_MAXF_ALL;
    struct vg_forest f;
    train_ok(&ds, rows, ds.n_rows, &p, &f);
    const struct vg_tree *t = &f.trees[0];
    for (int i = 0; i < ds.n_rows; i++) {
        const double *v = t->values + t->nodes[leaf_of(t, ds.x + (size_t)i * ds.n_features)].value;
        assert_true(v[ds.y_class[i]] == 1.0);
    }
    vg_forest_release(&f);
    free(rows);
    ds_free(&ds);
}

/*
 * Four constant features and one informative one, max_features 1: a node that draws a constant
 * feature draws again, so one tree still fits every row and splits only on the informative one.
 */
static void test_constant_features_are_skipped(void **state)
{
    (void)state;
    struct vg_dataset ds;
    ds_alloc(&ds, 200, 5, VG_TASK_CLASSIFICATION);
    ds.n_classes = 3;
    ds.class_names = names3;
    test_rand_state = 11;
    for (int i = 0; i < ds.n_rows; i++) {
        for (int j = 0; j < 4; j++)
            ds.x[i * 5 + j] = (float)j;
        ds.x[i * 5 + 4] = (float)i;
        ds.y_class[i] = (int32_t)(test_rand() % 3);
    }
    int32_t *rows = all_rows(ds.n_rows);
    struct vg_forest_params p;
    vg_forest_params_default(&p, VG_TASK_CLASSIFICATION);
    p.n_trees = 1;
    p.bootstrap = 0;
    p.max_features = VG_MAXF_COUNT;
    p.max_features_value = 1;
    struct vg_forest f;
    train_ok(&ds, rows, ds.n_rows, &p, &f);
    const struct vg_tree *t = &f.trees[0];
    for (int i = 0; i < t->n_nodes; i++)
        assert_true(t->nodes[i].feature == -1 || t->nodes[i].feature == 4);
    for (int i = 0; i < ds.n_rows; i++) {
        const double *v = t->values + t->nodes[leaf_of(t, ds.x + (size_t)i * 5)].value;
        assert_true(v[ds.y_class[i]] == 1.0);
    }
    vg_forest_release(&f);
    free(rows);
    ds_free(&ds);
}

static void test_regression_generalises(void **state)
{
    (void)state;
    struct vg_dataset ds;
    make_regression(&ds, 1000, 6);
    int n_train = 800;
    int32_t *rows = all_rows(n_train);
    struct vg_forest_params p;
    vg_forest_params_default(&p, VG_TASK_REGRESSION);
    p.n_trees = 30;
    struct vg_forest f;
    train_ok(&ds, rows, n_train, &p, &f);
    double mean = 0.0, ss_res = 0.0, ss_tot = 0.0;
    for (int i = n_train; i < ds.n_rows; i++)
        mean += ds.y_value[i];
    mean /= ds.n_rows - n_train;
    for (int i = n_train; i < ds.n_rows; i++) {
        float pred;
        forest_predict(&f, ds.x + (size_t)i * ds.n_features, &pred);
        ss_res += (ds.y_value[i] - pred) * (ds.y_value[i] - pred);
        ss_tot += (ds.y_value[i] - mean) * (ds.y_value[i] - mean);
    }
    double r2 = 1.0 - ss_res / ss_tot;
    print_message("regression holdout R^2 = %.4f\n", r2);
    assert_true(r2 > 0.9);
    vg_forest_release(&f);
    free(rows);
    ds_free(&ds);
}

/*
 * Pairs of adjacent float32 values with different classes. For 1 + 2^-23 and 1 + 2^-22 the
 * midpoint is a tie that rounds to the upper value, the case where the threshold must fall back to
 * the lower one; 2^24 and 2^24 + 2 and a pair around zero are further pairs.
 */
static void test_adjacent_floats_are_separated(void **state)
{
    (void)state;
    const float pairs[][2] = {
        {1.0f, 0x1.000002p+0f}, {0x1.000002p+0f, 0x1.000004p+0f}, {16777216.0f, 16777218.0f},
        {-0x1p-149f, 0.0f},     {-3.0f, -0x1.7ffffep+1f},
    };
    int n_pairs = (int)(sizeof pairs / sizeof pairs[0]);
    for (int k = 0; k < n_pairs; k++) {
        assert_true(nextafterf(pairs[k][0], INFINITY) == pairs[k][1]);
        struct vg_dataset ds;
        ds_alloc(&ds, 8, 1, VG_TASK_CLASSIFICATION);
        ds.n_classes = 3;
        ds.class_names = names3;
        for (int i = 0; i < 8; i++) {
            ds.x[i] = pairs[k][i % 2];
            ds.y_class[i] = i % 2 ? 2 : 0;
        }
        int32_t *rows = all_rows(8);
        struct vg_forest_params p;
        vg_forest_params_default(&p, VG_TASK_CLASSIFICATION);
        p.n_trees = 1;
        p.bootstrap = 0;
        struct vg_forest f;
        void *bytes;
        size_t len;
        train_ok(&ds, rows, 8, &p, &f);
        assert_int_equal(f.trees[0].n_nodes, 3);
        float t = f.trees[0].nodes[0].threshold;
        assert_true(pairs[k][0] <= t && t < pairs[k][1]);
        to_onnx_ok(&f, &ds, &bytes, &len);
        check_engine_matches(&f, &ds, bytes, len);
        /* And the engine's labels are the classes themselves. */
        struct vg_model *m = NULL;
        struct vg_error err = {0};
        assert_int_equal(vg_engine_load_bytes(bytes, len, NULL, &m, &err), 0);
        struct vg_session *s = vg_session_new(m);
        struct vg_tensor in = {.dtype = VG_DT_FLOAT, .rank = 2, .dims = {2, 1}, .data = ds.x};
        assert_int_equal(vg_session_set_input(s, 0, &in, &err), 0);
        assert_int_equal(vg_session_run(s, &err), 0);
        const int64_t *labels = vg_session_output(s, vg_model_output_index(m, "label"))->data;
        assert_int_equal(labels[0], 0);
        assert_int_equal(labels[1], 2);
        vg_session_free(s);
        vg_model_free(m);
        free(bytes);
        vg_forest_release(&f);
        free(rows);
        ds_free(&ds);
    }
}

/* Depth of every node (root 0), checking preorder numbering on the way. */
static void tree_depths(const struct vg_tree *t, int *depth)
{
    depth[0] = 0;
    for (int i = 0; i < t->n_nodes; i++) {
        const struct vg_tree_node *nd = &t->nodes[i];
        if (nd->feature < 0) {
            assert_true(nd->value >= 0);
            continue;
        }
        assert_int_equal(nd->left, i + 1);
        assert_true(nd->right > nd->left && nd->right < t->n_nodes);
        depth[nd->left] = depth[i] + 1;
        depth[nd->right] = depth[i] + 1;
    }
}

static void test_limits_hold(void **state)
{
    (void)state;
    struct vg_dataset ds;
    make_classification(&ds, 600, 3, 7);
    int32_t *rows = all_rows(ds.n_rows);
    const struct {
        int max_depth, min_samples_leaf;
    } cases[] = {{3, 1}, {0, 7}, {5, 20}, {1, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct vg_forest_params p;
        vg_forest_params_default(&p, VG_TASK_CLASSIFICATION);
        p.n_trees = 8;
        p.bootstrap = 0; /* every training row reaches the leaves: counts are checkable */
        p.max_features = VG_MAXF_COUNT;
        p.max_features_value = 2;
        p.max_depth = cases[k].max_depth;
        p.min_samples_leaf = cases[k].min_samples_leaf;
        struct vg_forest f;
        train_ok(&ds, rows, ds.n_rows, &p, &f);
        int deepest = 0, smallest = ds.n_rows;
        for (int t = 0; t < f.n_trees; t++) {
            const struct vg_tree *tr = &f.trees[t];
            int *depth = calloc((size_t)tr->n_nodes, sizeof *depth);
            int *count = calloc((size_t)tr->n_nodes, sizeof *count);
            assert_non_null(depth);
            assert_non_null(count);
            tree_depths(tr, depth);
            for (int i = 0; i < ds.n_rows; i++)
                count[leaf_of(tr, ds.x + (size_t)i * ds.n_features)]++;
            for (int i = 0; i < tr->n_nodes; i++) {
                if (tr->nodes[i].feature >= 0)
                    continue;
                deepest = depth[i] > deepest ? depth[i] : deepest;
                smallest = count[i] < smallest ? count[i] : smallest;
            }
            free(depth);
            free(count);
        }
        if (cases[k].max_depth)
            assert_true(deepest <= cases[k].max_depth);
        else
            assert_true(deepest > 5); /* unlimited really grows */
        assert_true(smallest >= cases[k].min_samples_leaf);
        if (cases[k].min_samples_leaf == 1 && cases[k].max_depth == 0)
            assert_int_equal(smallest, 1);
        vg_forest_release(&f);
    }
    free(rows);
    ds_free(&ds);
}

static void test_bad_parameters(void **state)
{
    (void)state;
    struct vg_dataset ds;
    make_classification(&ds, 50, 3, 8);
    int32_t *rows = all_rows(ds.n_rows);
    struct vg_forest f;
    struct vg_error err = {0};
    struct vg_forest_params p;

    vg_forest_params_default(&p, VG_TASK_CLASSIFICATION);
    p.n_trees = 0;
    assert_int_equal(vg_forest_train(&ds, rows, ds.n_rows, &p, &f, &err), -VG_EINVAL);
    assert_non_null(strstr(err.msg, "n_trees"));

    vg_forest_params_default(&p, VG_TASK_CLASSIFICATION);
    p.criterion = VG_CRIT_SQUARED_ERROR;
    assert_int_equal(vg_forest_train(&ds, rows, ds.n_rows, &p, &f, &err), -VG_EINVAL);

    vg_forest_params_default(&p, VG_TASK_CLASSIFICATION);
    p.max_features = VG_MAXF_FRACTION;
    p.max_features_value = 1.5;
    assert_int_equal(vg_forest_train(&ds, rows, ds.n_rows, &p, &f, &err), -VG_EINVAL);

    vg_forest_params_default(&p, VG_TASK_CLASSIFICATION);
    rows[3] = ds.n_rows;
    assert_int_equal(vg_forest_train(&ds, rows, ds.n_rows, &p, &f, &err), -VG_EINVAL);
    rows[3] = 3;

    ds.x[7] = NAN;
    assert_int_equal(vg_forest_train(&ds, rows, ds.n_rows, &p, &f, &err), -VG_EINVAL);
    assert_non_null(strstr(err.msg, "NaN"));
    free(rows);
    ds_free(&ds);
}

static void test_defaults(void **state)
{
    (void)state;
    struct vg_forest_params p;
    vg_forest_params_default(&p, VG_TASK_CLASSIFICATION);
    assert_int_equal(p.n_trees, 100);
    assert_int_equal(p.max_features, VG_MAXF_SQRT);
    assert_int_equal(p.criterion, VG_CRIT_GINI);
    assert_int_equal(p.bootstrap, 1);
    assert_int_equal(p.min_samples_leaf, 1);
    assert_true(p.seed == 42);
    vg_forest_params_default(&p, VG_TASK_REGRESSION);
    assert_int_equal(p.max_features, VG_MAXF_ALL);
    assert_int_equal(p.criterion, VG_CRIT_SQUARED_ERROR);
}

/* Integer class names written canonically become int64 labels; anything else stays text. */
static void test_label_kinds(void **state)
{
    (void)state;
    static char *int_names[] = {"-1", "7"};
    static char *float_names[] = {"1.5", "2"};
    static char *padded_names[] = {"01", "2"};
    const struct {
        char **names;
        enum vg_dtype dtype;
    } cases[] = {
        {int_names, VG_DT_INT64}, {float_names, VG_DT_STRING}, {padded_names, VG_DT_STRING}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct vg_dataset ds;
        make_classification(&ds, 120, 2, 10);
        ds.class_names = cases[k].names;
        int32_t *rows = all_rows(ds.n_rows);
        struct vg_forest_params p;
        vg_forest_params_default(&p, VG_TASK_CLASSIFICATION);
        p.n_trees = 5;
        struct vg_forest f;
        void *bytes;
        size_t len;
        train_ok(&ds, rows, ds.n_rows, &p, &f);
        to_onnx_ok(&f, &ds, &bytes, &len);
        struct vg_model *m = NULL;
        struct vg_error err = {0};
        assert_int_equal(vg_engine_load_bytes(bytes, len, NULL, &m, &err), 0);
        const struct vg_io_info *label = vg_model_output(m, vg_model_output_index(m, "label"));
        assert_non_null(label);
        assert_int_equal(label->dtype, cases[k].dtype);
        assert_string_equal(vg_model_producer(m), "vigil");
        vg_model_free(m);
        check_engine_matches(&f, &ds, bytes, len);
        free(bytes);
        vg_forest_release(&f);
        free(rows);
        ds_free(&ds);
    }
}

static int progress_calls, progress_last;

static void count_progress(void *ctx, int done, int total)
{
    (void)ctx;
    progress_calls++;
    assert_true(done >= 1 && done <= total);
    progress_last = done > progress_last ? done : progress_last;
}

static void test_progress_reports_every_tree(void **state)
{
    (void)state;
    struct vg_dataset ds;
    make_classification(&ds, 200, 3, 9);
    int32_t *rows = all_rows(ds.n_rows);
    struct vg_forest_params p;
    vg_forest_params_default(&p, VG_TASK_CLASSIFICATION);
    p.n_trees = 17;
    p.threads = 3;
    p.progress = count_progress;
    progress_calls = progress_last = 0;
    struct vg_forest f;
    train_ok(&ds, rows, ds.n_rows, &p, &f);
    assert_int_equal(progress_calls, 17);
    assert_int_equal(progress_last, 17);
    vg_forest_release(&f);
    free(rows);
    ds_free(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_deterministic_across_threads),
        cmocka_unit_test(test_engine_matches_three_classes),
        cmocka_unit_test(test_engine_matches_two_string_classes),
        cmocka_unit_test(test_engine_matches_regression),
        cmocka_unit_test(test_single_tree_fits_training_data),
        cmocka_unit_test(test_constant_features_are_skipped),
        cmocka_unit_test(test_regression_generalises),
        cmocka_unit_test(test_adjacent_floats_are_separated),
        cmocka_unit_test(test_limits_hold),
        cmocka_unit_test(test_bad_parameters),
        cmocka_unit_test(test_label_kinds),
        cmocka_unit_test(test_progress_reports_every_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
