/*
 * Training data tests: the CSV reader (src/train/csv.c), the split (split.c), the holdout metrics
 * (metrics.c) and the drift reference (reference.c).
 *
 * - Bad input: a table of CSV contents, each written to a file in a temporary directory, with the
 *   expected error code and substrings the message must hold (the file, the line, the column).
 * - Good input: quotes, "" escapes, CRLF, a BOM, blank lines, no final newline; task inference;
 *   class naming and order; impute by mean and median; data/iris.csv (ctest runs from the source
 *   root; the test fails when the file is missing).
 * - Split: stratified proportions, every row in exactly one side, determinism in the seed.
 * - Metrics and reference against values computed by hand (see each case).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vigil/train.h"

/* Proposed for train.h; defined in src/train/csv.c. */
static char tmp_dir[64];

/* This cmocka has no assert_double_equal; the values are printed when they differ. */
#define assert_near(a, b, tol) check_near((a), (b), (tol), #a, __FILE__, __LINE__)
static void check_near(double a, double b, double tol, const char *what, const char *file, int line)
{
    if (!(fabs(a - b) <= tol)) {
        fprintf(stderr, "%s:%d: %s = %.17g, expected %.17g (within %g)\n", file, line, what, a, b,
                tol);
        _assert_true(0, what, file, line);
    }
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/vg_train_dataXXXXXX");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_train_data: could not remove %s\n", tmp_dir);
    return 0;
}

/* Writes len bytes (strlen when len is 0) to tmp_dir/name; the path goes to out. */
static void write_file(const char *name, const char *content, size_t len, char *out, size_t out_len)
{
    snprintf(out, out_len, "%s/%s", tmp_dir, name);
    FILE *f = fopen(out, "wb");
    assert_non_null(f);
    if (!len)
        len = strlen(content);
    assert_int_equal(fwrite(content, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* ---- bad input --------------------------------------------------------------------------- */

struct bad_case {
    const char *name; /* also the file name, so messages must contain it */
    const char *content;
    size_t len; /* 0: strlen(content) */
    const char *target;
    enum vg_task task;
    enum vg_impute impute;
    int code;
    const char *expect[3]; /* substrings of the message besides the file name */
};

// clang-format off
static const struct bad_case bad_cases[] = {
    {"ragged_short.csv", "a,b,y\n1,2,x\n3,4\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 3", "column 'y' (3)", "2 cells"}},
    {"ragged_long.csv", "a,b,y\n1,2,x\n3,4,x,5\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 3", "column 4", "4 cells"}},
    {"non_numeric.csv", "a,b,y\n1,2,x\n1,abc,z\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 3", "column 'b' (2)", "'abc' is not a number"}},
    {"trailing_junk.csv", "a,b,y\n1,2x,x\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 2", "column 'b' (2)", "'2x' is not a number"}},
    {"missing_target.csv", "a,b,y\n1,2,x\n", 0, "label", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 1", "no column 'label'", "'a', 'b', 'y'"}},
    {"one_class.csv", "a,y\n1,x\n2,x\n3,x\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"column 'y'", "one class ('x')", "3 rows"}},
    {"one_class_numeric.csv", "a,y\n1,4\n2,4.0\n", 0, "y",
        VG_TASK_CLASSIFICATION, VG_IMPUTE_NONE, VG_EINVAL, {"column 'y'", "one class", "2 rows"}},
    {"empty.csv", "", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"empty", NULL, NULL}},
    {"only_bom.csv", "\xEF\xBB\xBF", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"empty", NULL, NULL}},
    {"blank_lines.csv", "\n\r\n\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"empty", NULL, NULL}},
    {"header_only.csv", "a,b,y\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"only a header", "line 1", NULL}},
    {"header_only_nonl.csv", "a,b,y", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"only a header", NULL, NULL}},
    {"nan_cell.csv", "a,b,y\n1,2,x\nNaN,3,z\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 3", "column 'a' (1)", "NaN value"}},
    {"empty_cell.csv", "a,b,y\n1,,x\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 2", "column 'b' (2)", "empty value"}},
    {"blank_quoted_cell.csv", "a,b,y\n1,\" \",x\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 2", "column 'b' (2)", "empty value"}},
    {"duplicate.csv", "a,b,a,y\n1,2,3,x\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 1", "column 'a' (3)", "duplicate column name (also column 1)"}},
    {"duplicate_target.csv", "y,b,y\n1,2,3\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 1", "column 'y' (3)", "duplicate"}},
    {"empty_name.csv", "a,,y\n1,2,x\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 1", "column 2", "empty column name"}},
    {"infinity.csv", "a,y\n1,x\ninf,z\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 3", "column 'a' (1)", "'inf' is infinite"}},
    {"infinity_impute.csv", "a,y\n1,x\n-Infinity,z\n", 0, "y",
        VG_TASK_AUTO, VG_IMPUTE_MEAN, VG_EINVAL, {"line 3", "column 'a' (1)", "infinite"}},
    {"beyond_float.csv", "a,y\n1,x\n1e39,z\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 3", "column 'a' (1)", "beyond float32 range"}},
    {"beyond_double.csv", "a,y\n1,x\n1e400,z\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 3", "column 'a' (1)", "infinite"}},
    {"unclosed_quote.csv", "a,y\n1,x\n2,\"z\n3,w\n", 0, "y",
        VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL, {"line 3", "column 2", "not closed"}},
    {"junk_after_quote.csv", "a,y\n\"1\"2,x\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 2", "column 1", "after a closing quote"}},
    {"target_missing_value.csv", "a,y\n1,x\n2,\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_MEAN, VG_EINVAL,
        {"line 3", "column 'y' (2)", "target value is missing"}},
    {"regression_text.csv", "a,y\n1,1.5\n2,tall\n", 0, "y",
        VG_TASK_REGRESSION, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 3", "column 'y' (2)", "'tall' is not a number"}},
    {"no_values_to_impute.csv", "y,b,a\nx,1,\nz,2,nan\n", 0, "y",
        VG_TASK_AUTO, VG_IMPUTE_MEDIAN, VG_EINVAL, {"column 'a' (3)", "no value in any row", NULL}},
    {"target_only.csv", "y\n1\n2\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 1", "no features", NULL}},
    {"nul_byte.csv", "a,y\n1\0,x\n", 9, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"NUL", NULL, NULL}},
    /* Line numbers count physical lines: CRLF, skipped blank lines and a quoted newline. */
    {"crlf_ragged.csv", "a,y\r\n1,x\r\n\r\n2\r\n", 0, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL,
        {"line 4", "column 'y' (2)", "1 cells"}},
    {"multiline_quote.csv", "a,y\n1,\"x\ny\"\nabc,z\n", 0, "y",
        VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL, {"line 4", "column 'a' (1)", "'abc'"}},
    {"long_cell_quoted.csv", "a,y\n1,x\n"
        "x123456789012345678901234567890123456789012345678901234567890123456789,z\n", 0, "y",
        VG_TASK_AUTO, VG_IMPUTE_NONE, VG_EINVAL, {"line 3", "...' is not a number", NULL}},
};
// clang-format on

static void test_bad_input(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *c = &bad_cases[i];
        char path[256];
        write_file(c->name, c->content, c->len, path, sizeof path);
        struct vg_dataset ds;
        struct vg_error err = {0};
        int rc = vg_dataset_read_csv(path, c->target, c->task, c->impute, &ds, &err);
        int ok = rc == -c->code && err.code == c->code && strstr(err.msg, path) != NULL;
        for (int k = 0; k < 3; k++)
            if (c->expect[k] && !strstr(err.msg, c->expect[k]))
                ok = 0;
        /* Nothing is returned on error. */
        if (ds.x || ds.feature_names || ds.class_names || ds.y_class || ds.y_value || ds.n_rows)
            ok = 0;
        if (!ok) {
            fprintf(stderr, "case %s: rc %d, message: %s\n", c->name, rc, err.msg);
            failures++;
        }
        vg_dataset_release(&ds);
    }
    assert_int_equal(failures, 0);
}

static void test_missing_file(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/does_not_exist.csv", tmp_dir);
    struct vg_dataset ds;
    struct vg_error err = {0};
    assert_int_equal(vg_dataset_read_csv(path, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, &ds, &err),
                     -VG_EIO);
    assert_non_null(strstr(err.msg, path));
}

/* 10,001 columns is over the cap; 10,000 is fine. */
static void test_column_cap(void **state)
{
    (void)state;
    for (int n_cols = 10000; n_cols <= 10001; n_cols++) {
        size_t cap = (size_t)n_cols * 16 + 64;
        char *content = malloc(cap);
        assert_non_null(content);
        size_t used = 0;
        for (int pass = 0; pass < 3; pass++) { /* header, then two rows */
            for (int j = 0; j < n_cols; j++) {
                const char *sep = j + 1 < n_cols ? "," : "\n";
                if (pass == 0)
                    used += (size_t)snprintf(content + used, cap - used, "c%d%s", j, sep);
                else
                    used += (size_t)snprintf(content + used, cap - used, "%d%s", pass, sep);
            }
        }
        char path[256];
        write_file("wide.csv", content, used, path, sizeof path);
        free(content);
        struct vg_dataset ds;
        struct vg_error err = {0};
        int rc = vg_dataset_read_csv(path, "c0", VG_TASK_AUTO, VG_IMPUTE_NONE, &ds, &err);
        if (n_cols == 10000) {
            assert_int_equal(rc, 0);
            assert_int_equal(ds.n_features, 9999);
            assert_int_equal(ds.n_rows, 2);
            assert_string_equal(ds.feature_names[9998], "c9999");
        } else {
            assert_int_equal(rc, -VG_ENOMEM);
            assert_non_null(strstr(err.msg, "more than 10000 columns"));
            assert_non_null(strstr(err.msg, "line 1"));
        }
        vg_dataset_release(&ds);
    }
}

/* ---- good input -------------------------------------------------------------------------- */

static void read_ok(const char *name, const char *content, const char *target, enum vg_task task,
                    enum vg_impute impute, struct vg_dataset *ds)
{
    char path[256];
    write_file(name, content, 0, path, sizeof path);
    struct vg_error err = {0};
    int rc = vg_dataset_read_csv(path, target, task, impute, ds, &err);
    if (rc)
        fprintf(stderr, "%s: %s\n", name, err.msg);
    assert_int_equal(rc, 0);
}

static void test_quotes_crlf_bom(void **state)
{
    (void)state;
    struct vg_dataset ds;
    read_ok("good.csv",
            "\xEF\xBB\xBF\"f 1\", f2 ,\"cls\"\r\n"
            " 1.5 ,\"2\",\"a,b\"\r\n"
            "\r\n"
            "3,-4e0 ,\"say \"\"hi\"\"\"\r\n"
            "5,\t6,\"a,b\"",
            "cls", VG_TASK_AUTO, VG_IMPUTE_NONE, &ds);
    assert_int_equal(ds.n_rows, 3);
    assert_int_equal(ds.n_features, 2);
    assert_string_equal(ds.feature_names[0], "f 1");
    assert_string_equal(ds.feature_names[1], "f2");
    assert_string_equal(ds.target_name, "cls");
    const float x[] = {1.5f, 2, 3, -4, 5, 6};
    for (int i = 0; i < 6; i++)
        assert_true(ds.x[i] == x[i]);
    assert_int_equal(ds.task, VG_TASK_CLASSIFICATION);
    assert_int_equal(ds.n_classes, 2);
    assert_string_equal(ds.class_names[0], "a,b");
    assert_string_equal(ds.class_names[1], "say \"hi\"");
    assert_int_equal(ds.y_class[0], 0);
    assert_int_equal(ds.y_class[1], 1);
    assert_int_equal(ds.y_class[2], 0);
    assert_null(ds.y_value);
    vg_dataset_release(&ds);

    /* The target in the middle; a quoted newline inside a text class; LF without final one. */
    read_ok("middle.csv", "a,y,b\n1,\"two\nlines\",2\n3,b,4\n", "y", VG_TASK_AUTO, VG_IMPUTE_NONE,
            &ds);
    assert_string_equal(ds.feature_names[0], "a");
    assert_string_equal(ds.feature_names[1], "b");
    assert_true(ds.x[0] == 1 && ds.x[1] == 2 && ds.x[2] == 3 && ds.x[3] == 4);
    assert_string_equal(ds.class_names[0], "b");
    assert_string_equal(ds.class_names[1], "two\nlines");
    assert_int_equal(ds.y_class[0], 1);
    vg_dataset_release(&ds);
}

static void test_task_inference(void **state)
{
    (void)state;
    struct vg_dataset ds;
    /* Integers (1 and 1.0 are the same class), sorted numerically, named canonically. */
    read_ok("int_classes.csv", "a,y\n1,10\n2,9\n3,-1\n4,1.0\n5,1\n6,1e1\n", "y", VG_TASK_AUTO,
            VG_IMPUTE_NONE, &ds);
    assert_int_equal(ds.task, VG_TASK_CLASSIFICATION);
    assert_int_equal(ds.n_classes, 4);
    assert_string_equal(ds.class_names[0], "-1");
    assert_string_equal(ds.class_names[1], "1");
    assert_string_equal(ds.class_names[2], "9");
    assert_string_equal(ds.class_names[3], "10");
    const int32_t want[] = {3, 2, 0, 1, 1, 3};
    for (int i = 0; i < 6; i++)
        assert_int_equal(ds.y_class[i], want[i]);
    vg_dataset_release(&ds);

    /* 20 distinct integers: classification; 21: regression. */
    for (int n = 20; n <= 21; n++) {
        char content[1024];
        size_t used = (size_t)snprintf(content, sizeof content, "a,y\n");
        for (int i = 0; i < n; i++)
            used += (size_t)snprintf(content + used, sizeof content - used, "%d,%d\n", i, i * 3);
        read_ok("count.csv", content, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, &ds);
        assert_int_equal(ds.task, n == 20 ? VG_TASK_CLASSIFICATION : VG_TASK_REGRESSION);
        if (n == 21) {
            assert_null(ds.y_class);
            assert_true(ds.y_value[20] == 60.0);
        } else {
            assert_int_equal(ds.n_classes, 20);
            assert_string_equal(ds.class_names[19], "57");
        }
        vg_dataset_release(&ds);
    }

    /* A fraction makes it regression. */
    read_ok("float_target.csv", "a,y\n1,1\n2,2.5\n3,2\n", "y", VG_TASK_AUTO, VG_IMPUTE_NONE, &ds);
    assert_int_equal(ds.task, VG_TASK_REGRESSION);
    assert_true(ds.y_value[1] == 2.5);
    vg_dataset_release(&ds);

    /* Any text makes it classification, ordered bytewise. */
    read_ok("mixed_target.csv", "a,y\n1,10\n2,9\n3,cat\n", "y", VG_TASK_AUTO, VG_IMPUTE_NONE, &ds);
    assert_int_equal(ds.task, VG_TASK_CLASSIFICATION);
    assert_string_equal(ds.class_names[0], "10");
    assert_string_equal(ds.class_names[1], "9");
    assert_string_equal(ds.class_names[2], "cat");
    vg_dataset_release(&ds);

    /* An explicit task wins: fractional classes keep their shortest form. */
    read_ok("forced_class.csv", "a,y\n1,0.5\n2,1.5\n3,0.1\n", "y", VG_TASK_CLASSIFICATION,
            VG_IMPUTE_NONE, &ds);
    assert_int_equal(ds.task, VG_TASK_CLASSIFICATION);
    assert_string_equal(ds.class_names[0], "0.1");
    assert_string_equal(ds.class_names[1], "0.5");
    assert_string_equal(ds.class_names[2], "1.5");
    vg_dataset_release(&ds);

    read_ok("forced_reg.csv", "a,y\n1,0\n2,1\n", "y", VG_TASK_REGRESSION, VG_IMPUTE_NONE, &ds);
    assert_int_equal(ds.task, VG_TASK_REGRESSION);
    assert_int_equal(ds.n_classes, 0);
    assert_true(ds.y_value[1] == 1.0);
    vg_dataset_release(&ds);
}

static void test_impute(void **state)
{
    (void)state;
    struct vg_dataset ds;
    /* Column a: 1, ?, 3, 10 (mean 14/3, median 3). Column b: 1, 2, ?, 4 (mean 7/3, median 2). */
    const char *odd = "a,b,y\n1,1,x\nnan,2,x\n3,,z\n10,4,z\n";
    read_ok("impute_mean.csv", odd, "y", VG_TASK_AUTO, VG_IMPUTE_MEAN, &ds);
    assert_true(ds.x[2] == (float)(14.0 / 3));
    assert_true(ds.x[5] == (float)(7.0 / 3));
    assert_true(ds.x[0] == 1 && ds.x[4] == 3);
    vg_dataset_release(&ds);
    read_ok("impute_median.csv", odd, "y", VG_TASK_AUTO, VG_IMPUTE_MEDIAN, &ds);
    assert_true(ds.x[2] == 3.0f);
    assert_true(ds.x[5] == 2.0f);
    vg_dataset_release(&ds);
    /* An even count of values: the median is the mean of the middle two. */
    read_ok("impute_even.csv", "a,y\n1,x\n2,x\n,z\n4,z\n10,z\n", "y", VG_TASK_AUTO,
            VG_IMPUTE_MEDIAN, &ds);
    assert_true(ds.x[2] == 3.0f);
    vg_dataset_release(&ds);
    read_ok("impute_even_mean.csv", "a,y\n1,x\n2,x\nNAN,z\n4,z\n10,z\n", "y", VG_TASK_AUTO,
            VG_IMPUTE_MEAN, &ds);
    assert_true(ds.x[2] == 4.25f);
    vg_dataset_release(&ds);
}

/* A feature selection: listed order, unlisted columns (text here) skipped, bad lists refused. */
static void test_feature_selection(void **state)
{
    (void)state;
    char path[256];
    write_file("select.csv", "id,a,y,b\nr1,1,x,2\nr2,3,z,4\n", 0, path, sizeof path);
    struct vg_dataset ds;
    struct vg_error err = {0};
    const char *const ba[] = {"b", "a"};
    assert_int_equal(
        vg_dataset_read_csv_select(path, "y", ba, 2, VG_TASK_AUTO, VG_IMPUTE_NONE, &ds, &err), 0);
    assert_int_equal(ds.n_features, 2);
    assert_string_equal(ds.feature_names[0], "b");
    assert_string_equal(ds.feature_names[1], "a");
    assert_true(ds.x[0] == 2 && ds.x[1] == 1 && ds.x[2] == 4 && ds.x[3] == 3);
    assert_int_equal(ds.n_classes, 2);
    vg_dataset_release(&ds);

    /* Without a selection the text column is a feature and fails. */
    assert_int_equal(vg_dataset_read_csv(path, "y", VG_TASK_AUTO, VG_IMPUTE_NONE, &ds, &err),
                     -VG_EINVAL);
    assert_non_null(strstr(err.msg, "column 'id' (1): 'r1' is not a number"));

    const struct {
        const char *features[2];
        const char *expect;
    } bad[] = {
        {{"a", "y"}, "line 1, column 'y' (3): the target is also listed as a feature (feature 2)"},
        {{"a", "nope"}, "line 1: no column 'nope' for feature 2; columns: 'id', 'a', 'y', 'b'"},
        {{"b", "b"}, "line 1, column 'b' (4): listed twice as a feature (features 1 and 2)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        assert_int_equal(vg_dataset_read_csv_select(path, "y", bad[i].features, 2, VG_TASK_AUTO,
                                                    VG_IMPUTE_NONE, &ds, &err),
                         -VG_EINVAL);
        if (!strstr(err.msg, bad[i].expect) || !strstr(err.msg, path))
            fprintf(stderr, "selection case %zu: %s\n", i, err.msg);
        assert_non_null(strstr(err.msg, bad[i].expect));
        assert_null(ds.feature_names);
    }

    /* No target: the listed features alone, whatever the other columns hold; the task as given. */
    assert_int_equal(vg_dataset_read_csv_select(path, NULL, ba, 2, VG_TASK_CLASSIFICATION,
                                                VG_IMPUTE_NONE, &ds, &err),
                     0);
    assert_int_equal(ds.n_rows, 2);
    assert_true(ds.x[0] == 2 && ds.x[1] == 1 && ds.x[2] == 4 && ds.x[3] == 3);
    assert_int_equal(ds.task, VG_TASK_CLASSIFICATION);
    assert_null(ds.target_name);
    assert_null(ds.y_class);
    assert_null(ds.class_names);
    assert_int_equal(ds.n_classes, 0);
    vg_dataset_release(&ds);
    const char *const nope[] = {"a", "nope"};
    assert_int_equal(
        vg_dataset_read_csv_select(path, NULL, nope, 2, VG_TASK_AUTO, VG_IMPUTE_NONE, &ds, &err),
        -VG_EINVAL);
    assert_non_null(strstr(err.msg, "no column 'nope' for feature 2"));
    /* ... but only with a feature list */
    assert_int_equal(
        vg_dataset_read_csv_select(path, NULL, NULL, 0, VG_TASK_AUTO, VG_IMPUTE_NONE, &ds, &err),
        -VG_EINVAL);
}

static void test_iris(void **state)
{
    (void)state;
    struct vg_dataset ds;
    struct vg_error err = {0};
    int rc =
        vg_dataset_read_csv("data/iris.csv", "species", VG_TASK_AUTO, VG_IMPUTE_NONE, &ds, &err);
    if (rc)
        fprintf(stderr, "data/iris.csv (run from the source root): %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(ds.n_rows, 150);
    assert_int_equal(ds.n_features, 4);
    assert_string_equal(ds.feature_names[0], "sepal_length");
    assert_string_equal(ds.feature_names[3], "petal_width");
    assert_int_equal(ds.task, VG_TASK_CLASSIFICATION);
    assert_int_equal(ds.n_classes, 3);
    assert_string_equal(ds.class_names[0], "setosa");
    assert_string_equal(ds.class_names[1], "versicolor");
    assert_string_equal(ds.class_names[2], "virginica");
    assert_true(ds.x[0] == 5.1f && ds.x[1] == 3.5f && ds.x[2] == 1.4f && ds.x[3] == 0.2f);
    int counts[3] = {0};
    for (int i = 0; i < 150; i++)
        counts[ds.y_class[i]]++;
    assert_int_equal(counts[0], 50);
    assert_int_equal(counts[1], 50);
    assert_int_equal(counts[2], 50);
    vg_dataset_release(&ds);
}

/* ---- split ------------------------------------------------------------------------------- */

/* A classification set of 100 rows: class 0 x 50, class 1 x 30, class 2 x 19, class 3 x 1. */
static void make_classes(struct vg_dataset *ds, int32_t *y, float *x)
{
    memset(ds, 0, sizeof *ds);
    for (int i = 0; i < 100; i++) {
        y[i] = i % 2 == 0 ? 0 : i < 60 ? 1 : i == 99 ? 3 : 2;
        x[i] = (float)i;
    }
    ds->n_rows = 100;
    ds->n_features = 1;
    ds->x = x;
    ds->task = VG_TASK_CLASSIFICATION;
    ds->n_classes = 4;
    ds->y_class = y;
}

static void check_partition(int n, const int32_t *tr, int ntr, const int32_t *te, int nte)
{
    assert_int_equal(ntr + nte, n);
    char *seen = calloc((size_t)n, 1);
    assert_non_null(seen);
    for (int i = 0; i < ntr; i++) {
        assert_true(tr[i] >= 0 && tr[i] < n && !seen[tr[i]]);
        seen[tr[i]] = 1;
        if (i)
            assert_true(tr[i] > tr[i - 1]);
    }
    for (int i = 0; i < nte; i++) {
        assert_true(te[i] >= 0 && te[i] < n && !seen[te[i]]);
        seen[te[i]] = 1;
        if (i)
            assert_true(te[i] > te[i - 1]);
    }
    free(seen);
}

static void test_split_stratified(void **state)
{
    (void)state;
    struct vg_dataset ds;
    int32_t y[100];
    float x[100];
    make_classes(&ds, y, x);
    int class_n[4] = {50, 30, 19, 1};
    int32_t *tr, *te, *tr2, *te2;
    int ntr, nte, ntr2, nte2;
    struct vg_error err = {0};
    assert_int_equal(vg_split(&ds, 0.2, 42, &tr, &ntr, &te, &nte, &err), 0);
    check_partition(100, tr, ntr, te, nte);
    /* Per class round(n * 0.2): 10, 6, round(3.8) = 4, and the single row stays in training. */
    int test_counts[4] = {0};
    for (int i = 0; i < nte; i++)
        test_counts[y[te[i]]]++;
    assert_int_equal(test_counts[0], 10);
    assert_int_equal(test_counts[1], 6);
    assert_int_equal(test_counts[2], 4);
    assert_int_equal(test_counts[3], 0);
    assert_int_equal(nte, 20);
    (void)class_n;

    /* Same seed, same split; another seed, another split. */
    assert_int_equal(vg_split(&ds, 0.2, 42, &tr2, &ntr2, &te2, &nte2, &err), 0);
    assert_int_equal(nte2, nte);
    assert_memory_equal(te, te2, (size_t)nte * sizeof *te);
    assert_memory_equal(tr, tr2, (size_t)ntr * sizeof *tr);
    free(tr2);
    free(te2);
    assert_int_equal(vg_split(&ds, 0.2, 43, &tr2, &ntr2, &te2, &nte2, &err), 0);
    assert_int_equal(nte2, nte);
    assert_memory_not_equal(te, te2, (size_t)nte * sizeof *te);
    free(tr2);
    free(te2);
    free(tr);
    free(te);

    /* A large test size still leaves one training row per class. */
    assert_int_equal(vg_split(&ds, 0.99, 1, &tr, &ntr, &te, &nte, &err), 0);
    check_partition(100, tr, ntr, te, nte);
    int train_counts[4] = {0};
    for (int i = 0; i < ntr; i++)
        train_counts[y[tr[i]]]++;
    for (int c = 0; c < 4; c++)
        assert_int_equal(train_counts[c], 1);
    free(tr);
    free(te);

    /* No holdout. */
    assert_int_equal(vg_split(&ds, 0, 1, &tr, &ntr, &te, &nte, &err), 0);
    assert_int_equal(ntr, 100);
    assert_int_equal(nte, 0);
    free(tr);
    free(te);

    const double bad[] = {1.0, -0.1, 1.5, NAN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.code = 0;
        assert_int_equal(vg_split(&ds, bad[i], 1, &tr, &ntr, &te, &nte, &err), -VG_EINVAL);
        assert_int_equal(err.code, VG_EINVAL);
        assert_null(tr);
        assert_null(te);
    }
}

static void test_split_regression(void **state)
{
    (void)state;
    double yv[10];
    float x[10];
    struct vg_dataset ds = {0};
    for (int i = 0; i < 10; i++)
        yv[i] = x[i] = (float)i;
    ds.n_rows = 10;
    ds.n_features = 1;
    ds.x = x;
    ds.task = VG_TASK_REGRESSION;
    ds.y_value = yv;
    int32_t *tr, *te, *tr2, *te2;
    int ntr, nte, ntr2, nte2;
    struct vg_error err = {0};
    /* round(2.5) = 3 rows held out. */
    assert_int_equal(vg_split(&ds, 0.25, 7, &tr, &ntr, &te, &nte, &err), 0);
    check_partition(10, tr, ntr, te, nte);
    assert_int_equal(nte, 3);
    assert_int_equal(vg_split(&ds, 0.25, 7, &tr2, &ntr2, &te2, &nte2, &err), 0);
    assert_memory_equal(te, te2, 3 * sizeof *te);
    /* The holdout is shuffled, not the first or last rows, for this seed. */
    assert_false(te[0] == 0 && te[1] == 1 && te[2] == 2);
    assert_false(te[0] == 7 && te[1] == 8 && te[2] == 9);
    free(tr);
    free(te);
    free(tr2);
    free(te2);
}

/* ---- metrics ----------------------------------------------------------------------------- */

static void test_metrics_classification(void **state)
{
    (void)state;
    /*
     * truth 0 0 0 1 1 2 2 2 2, predicted 0 1 1 1 1 2 2 0 2 -> confusion rows (true):
     * [1 2 0] [0 2 0] [1 0 3]; accuracy 6/9. Class 0: P 1/2, R 1/3, F1 0.4. Class 1: P 2/4,
     * R 1, F1 2/3. Class 2: P 3/3, R 3/4, F1 6/7. Class 3: never seen, all 0.
     */
    const int32_t truth[] = {0, 0, 0, 1, 1, 2, 2, 2, 2};
    const int32_t pred[] = {0, 1, 1, 1, 1, 2, 2, 0, 2};
    struct vg_metrics m;
    struct vg_error err = {0};
    assert_int_equal(vg_metrics_classification(truth, pred, 9, 4, &m, &err), 0);
    assert_int_equal(m.task, VG_TASK_CLASSIFICATION);
    assert_int_equal(m.n_rows, 9);
    assert_int_equal(m.n_classes, 4);
    assert_near(m.accuracy, 6.0 / 9, 1e-12);
    const int64_t conf[16] = {1, 2, 0, 0, 0, 2, 0, 0, 1, 0, 3, 0, 0, 0, 0, 0};
    assert_memory_equal(m.confusion, conf, sizeof conf);
    const double p[] = {0.5, 0.5, 1, 0}, r[] = {1.0 / 3, 1, 0.75, 0},
                 f1[] = {0.4, 2.0 / 3, 6.0 / 7, 0};
    const int support[] = {3, 2, 4, 0};
    for (int c = 0; c < 4; c++) {
        assert_near(m.per_class[c].precision, p[c], 1e-12);
        assert_near(m.per_class[c].recall, r[c], 1e-12);
        assert_near(m.per_class[c].f1, f1[c], 1e-12);
        assert_int_equal(m.per_class[c].support, support[c]);
    }
    vg_metrics_release(&m);

    const int32_t out_of_range[] = {0, 4};
    assert_int_equal(vg_metrics_classification(truth, out_of_range, 2, 4, &m, &err), -VG_EINVAL);
    assert_null(m.confusion);
    assert_int_equal(vg_metrics_classification(truth, pred, 0, 4, &m, &err), -VG_EINVAL);
    assert_int_equal(vg_metrics_classification(truth, pred, 9, 0, &m, &err), -VG_EINVAL);
}

static void test_metrics_regression(void **state)
{
    (void)state;
    /* Errors -0.5 0 1 -1: SS_res 2.25; mean 2.5, SS_tot 5; R^2 0.55, MAE 0.625, RMSE 0.75. */
    const double truth[] = {1, 2, 3, 4}, pred[] = {1.5, 2, 2, 5};
    struct vg_metrics m;
    struct vg_error err = {0};
    assert_int_equal(vg_metrics_regression(truth, pred, 4, &m, &err), 0);
    assert_int_equal(m.task, VG_TASK_REGRESSION);
    assert_int_equal(m.n_rows, 4);
    assert_near(m.r2, 0.55, 1e-12);
    assert_near(m.mae, 0.625, 1e-12);
    assert_near(m.rmse, 0.75, 1e-12);
    vg_metrics_release(&m);

    /* Constant truth: R^2 is 1 when exact, else 0. */
    const double flat[] = {2, 2}, exact[] = {2, 2}, off[] = {2, 3};
    assert_int_equal(vg_metrics_regression(flat, exact, 2, &m, &err), 0);
    assert_near(m.r2, 1, 0);
    assert_near(m.rmse, 0, 0);
    assert_int_equal(vg_metrics_regression(flat, off, 2, &m, &err), 0);
    assert_near(m.r2, 0, 0);
    assert_near(m.mae, 0.5, 1e-12);

    const double with_nan[] = {1, NAN};
    assert_int_equal(vg_metrics_regression(truth, with_nan, 2, &m, &err), -VG_EINVAL);
    assert_int_equal(vg_metrics_regression(truth, pred, 0, &m, &err), -VG_EINVAL);
}

/* ---- reference --------------------------------------------------------------------------- */

static void test_reference_deciles(void **state)
{
    (void)state;
    /* Feature 0: 1..100 in reverse file order. Feature 1: constant 7. Classes: 30 x 0, 70 x 1. */
    float x[200];
    int32_t y[100], rows[100];
    for (int i = 0; i < 100; i++) {
        x[2 * i] = (float)(100 - i);
        x[2 * i + 1] = 7;
        y[i] = i < 30 ? 0 : 1;
        rows[i] = i;
    }
    struct vg_dataset ds = {0};
    ds.n_rows = 100;
    ds.n_features = 2;
    ds.x = x;
    ds.task = VG_TASK_CLASSIFICATION;
    ds.n_classes = 2;
    ds.y_class = y;
    struct vg_reference r;
    struct vg_error err = {0};
    assert_int_equal(vg_reference_compute(&ds, rows, 100, &r, &err), 0);
    assert_int_equal(r.n_features, 2);
    /* numpy.quantile(range(1, 101), k / 10): 1 + 99 k / 10, i.e. 10.9, 20.8, ... 90.1. */
    const struct vg_feature_ref *f = &r.features[0];
    assert_near(f->edges[0], 1, 0);
    assert_near(f->edges[10], 100, 0);
    for (int k = 1; k < 10; k++)
        assert_near(f->edges[k], 1 + 9.9 * k, 1e-9);
    for (int b = 0; b < 10; b++)
        assert_near(f->shares[b], 0.1, 1e-12);
    assert_near(f->below, 0, 0);
    assert_near(f->above, 0, 0);
    assert_near(f->mean, 50.5, 1e-12);
    /* Population std of 1..100: sqrt((100^2 - 1) / 12). */
    assert_near(f->std, sqrt(9999.0 / 12), 1e-9);
    assert_near(f->min, 1, 0);
    assert_near(f->max, 100, 0);

    const struct vg_feature_ref *c = &r.features[1];
    for (int k = 0; k <= 10; k++)
        assert_near(c->edges[k], 7, 0);
    assert_near(c->shares[9], 1, 0);
    assert_near(c->std, 0, 0);
    assert_int_equal(r.n_classes, 2);
    assert_near(r.class_shares[0], 0.3, 1e-12);
    assert_near(r.class_shares[1], 0.7, 1e-12);
    vg_reference_release(&r);

    /* A subset of five rows (values 100, 99, 98, 97, 96): q(0.1) at h = 0.4 -> 96.4. */
    int32_t five[] = {0, 1, 2, 3, 4};
    assert_int_equal(vg_reference_compute(&ds, five, 5, &r, &err), 0);
    assert_near(r.features[0].edges[1], 96.4, 1e-9);
    assert_near(r.features[0].edges[5], 98, 1e-12);
    assert_near(r.features[0].edges[9], 99.6, 1e-9);
    assert_near(r.class_shares[0], 1, 0);
    vg_reference_release(&r);

    int32_t bad_row[] = {100};
    assert_int_equal(vg_reference_compute(&ds, bad_row, 1, &r, &err), -VG_EINVAL);
    assert_null(r.features);
}

/* Class shares from any per-row classes (a model's predictions), and features alone. */
static void test_reference_class_shares(void **state)
{
    (void)state;
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int32_t labels[8] = {0, 0, 0, 0, 1, 1, 1, 1};
    int32_t predicted[8] = {0, 0, 2, 0, 1, 1, 2, 1};
    int32_t rows[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    struct vg_dataset ds = {.n_rows = 8,
                            .n_features = 1,
                            .x = x,
                            .task = VG_TASK_CLASSIFICATION,
                            .n_classes = 2,
                            .y_class = labels};
    struct vg_reference with_labels, r;
    struct vg_error err = {0};
    assert_int_equal(vg_reference_compute(&ds, rows, 8, &with_labels, &err), 0);
    assert_int_equal(vg_reference_features(&ds, rows, 8, &r, &err), 0);
    assert_int_equal(r.n_classes, 0);
    assert_null(r.class_shares);
    /* the features are those vg_reference_compute gives */
    assert_memory_equal(r.features, with_labels.features, sizeof *r.features);
    assert_int_equal(vg_reference_class_shares(&r, predicted, NULL, 8, 3, &err), 0);
    assert_int_equal(r.n_classes, 3);
    assert_near(r.class_shares[0], 3.0 / 8, 0);
    assert_near(r.class_shares[1], 3.0 / 8, 0);
    assert_near(r.class_shares[2], 2.0 / 8, 0);
    /* through row indices, and replacing the shares held */
    int32_t last_two[2] = {6, 7};
    assert_int_equal(vg_reference_class_shares(&r, predicted, last_two, 2, 3, &err), 0);
    assert_near(r.class_shares[1], 0.5, 0);
    assert_near(r.class_shares[2], 0.5, 0);
    /* the labels' shares, as vg_reference_compute has them */
    assert_int_equal(vg_reference_class_shares(&r, labels, rows, 8, 2, &err), 0);
    assert_memory_equal(r.class_shares, with_labels.class_shares, 2 * sizeof(double));
    /* a class out of range */
    assert_int_equal(vg_reference_class_shares(&r, predicted, NULL, 8, 2, &err), -VG_EINVAL);
    assert_null(r.class_shares);
    assert_int_equal(r.n_classes, 0);
    vg_reference_release(&r);
    vg_reference_release(&with_labels);
}

static void test_reference_bin(void **state)
{
    (void)state;
    struct vg_feature_ref f = {0};
    for (int i = 0; i <= 10; i++)
        f.edges[i] = i;
    assert_int_equal(vg_reference_bin(&f, -0.5), -1);
    assert_int_equal(vg_reference_bin(&f, -INFINITY), -1);
    assert_int_equal(vg_reference_bin(&f, 0), 0);
    assert_int_equal(vg_reference_bin(&f, 0.5), 0);
    assert_int_equal(vg_reference_bin(&f, 1), 1); /* on an edge: the upper bin */
    assert_int_equal(vg_reference_bin(&f, 9), 9);
    assert_int_equal(vg_reference_bin(&f, 9.99), 9);
    assert_int_equal(vg_reference_bin(&f, 10), 9); /* max: the last bin */
    assert_int_equal(vg_reference_bin(&f, 10.01), 10);
    assert_int_equal(vg_reference_bin(&f, INFINITY), 10);
    assert_int_equal(vg_reference_bin(&f, NAN), -2);

    /* Repeated edges: the highest bin whose lower edge the value reaches. */
    const double rep[] = {0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2};
    memcpy(f.edges, rep, sizeof rep);
    assert_int_equal(vg_reference_bin(&f, 0), 2);
    assert_int_equal(vg_reference_bin(&f, 0.5), 2);
    assert_int_equal(vg_reference_bin(&f, 1), 8);
    assert_int_equal(vg_reference_bin(&f, 1.5), 8);
    assert_int_equal(vg_reference_bin(&f, 2), 9);
    assert_int_equal(vg_reference_bin(&f, 2.5), 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_column_cap),
        cmocka_unit_test(test_quotes_crlf_bom),
        cmocka_unit_test(test_task_inference),
        cmocka_unit_test(test_impute),
        cmocka_unit_test(test_feature_selection),
        cmocka_unit_test(test_iris),
        cmocka_unit_test(test_split_stratified),
        cmocka_unit_test(test_split_regression),
        cmocka_unit_test(test_metrics_classification),
        cmocka_unit_test(test_metrics_regression),
        cmocka_unit_test(test_reference_deciles),
        cmocka_unit_test(test_reference_class_shares),
        cmocka_unit_test(test_reference_bin),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
