/*
 * ai.onnx.ml operator tests (src/engine/ops/ml.c) on the cases tests/fixtures/gen_ml_cases.py
 * writes: every bad_ml_* model must be refused at load (or, for shape- and data-dependent errors,
 * at bind/run) with a message holding expected_error.txt; ZipMap outputs carry their keys; a run
 * that fails on data leaves the session usable.
 *
 * The cases directory is $VG_ML_CASES; when unset, the generator is run (with /usr/bin/python3,
 * from the source root, which is ctest's working directory) into a temporary directory. Without
 * either, the tests are skipped.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "vigil/engine.h"
#include "vigil/tensor_io.h"

static char cases_dir[512];
static char tmp_dir[64];

static int setup(void **state)
{
    (void)state;
    const char *env = getenv("VG_ML_CASES");
    if (env && *env) {
        snprintf(cases_dir, sizeof cases_dir, "%s", env);
        return 0;
    }
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/vg_ml_casesXXXXXX");
    if (!mkdtemp(tmp_dir)) {
        tmp_dir[0] = 0;
        return 0;
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/fixtures/gen_ml_cases.py %s >/dev/null 2>&1",
             tmp_dir);
    if (system(cmd) == 0)
        snprintf(cases_dir, sizeof cases_dir, "%s", tmp_dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (tmp_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "test_ml: could not remove %s\n", tmp_dir);
    }
    return 0;
}

static int need_cases(void)
{
    if (!cases_dir[0]) {
        print_message("no ML cases: set VG_ML_CASES or install python3-onnx\n");
        return 0;
    }
    return 1;
}

/* path = a + b; -1 when it does not fit (the tests then fail on the missing file). */
static int join(char *path, size_t len, const char *a, const char *b)
{
    int n = snprintf(path, len, "%s%s", a, b);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The first line of path, trailing whitespace removed, into buf. */
static int read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    if (!fgets(buf, (int)len, f))
        buf[0] = 0;
    fclose(f);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\r'))
        buf[--n] = 0;
    return 0;
}

/*
 * Binds set_dir/input_N.pb (by the proto's name) to the session. The tensors are returned in
 * `inputs` (caller frees their data). Returns the count, or -1.
 */
static int bind_inputs(const struct vg_model *m, struct vg_session *s, const char *set_dir,
                       struct vg_tensor *inputs, int cap, struct vg_error *err)
{
    int n = 0;
    for (; n < cap; n++) {
        char path[1024];
        char *name = NULL;
        char file[32];
        snprintf(file, sizeof file, "/input_%d.pb", n);
        if (join(path, sizeof path, set_dir, file) < 0)
            return -1;
        struct stat st;
        if (stat(path, &st) != 0)
            break;
        if (vg_tensor_read_pb(path, &inputs[n], &name, err) < 0)
            return -1;
        int idx = vg_model_input_index(m, name);
        free(name);
        if (idx < 0)
            return -1;
        if (vg_session_set_input(s, idx, &inputs[n], err) < 0)
            return n + 1; /* bound count includes the failed one (its data must be freed) */
    }
    return n;
}

/* Runs one bad_ml_* case; returns 1 when the failure matched, 0 otherwise (with a message). */
static int check_bad_case(const char *dir)
{
    char path[1024], want[512];
    struct vg_model *m = NULL;
    struct vg_error err = {0};
    int ok = 0;

    if (join(path, sizeof path, dir, "/expected_error.txt") < 0 ||
        read_line(path, want, sizeof want) < 0) {
        print_error("%s: no expected_error.txt\n", dir);
        return 0;
    }
    if (join(path, sizeof path, dir, "/model.onnx") < 0)
        return 0;
    if (vg_engine_load_file(path, &m, &err) < 0) {
        ok = strstr(err.msg, want) != NULL;
        if (!ok)
            print_error("%s: load error \"%s\" lacks \"%s\"\n", dir, err.msg, want);
        return ok;
    }
    char set_dir[1024];
    if (join(set_dir, sizeof set_dir, dir, "/test_data_set_0") < 0 || !is_dir(set_dir)) {
        print_error("%s: loaded, but should fail with \"%s\"\n", dir, want);
        vg_model_free(m);
        return 0;
    }
    struct vg_session *s = vg_session_new(m);
    struct vg_tensor inputs[8];
    memset(inputs, 0, sizeof inputs);
    int n = s ? bind_inputs(m, s, set_dir, inputs, 8, &err) : -1;
    if (n >= 0 && !err.code)
        vg_session_run(s, &err);
    ok = err.code != 0 && strstr(err.msg, want) != NULL;
    if (!ok)
        print_error("%s: run error \"%s\" lacks \"%s\"\n", dir, err.msg, want);
    for (int i = 0; i < 8; i++)
        vg_tensor_free_data(&inputs[i]);
    vg_session_free(s);
    vg_model_free(m);
    return ok;
}

static void test_bad_models(void **state)
{
    (void)state;
    if (!need_cases())
        skip();
    DIR *d = opendir(cases_dir);
    assert_non_null(d);
    int total = 0, passed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "bad_ml_", 7))
            continue;
        char dir[1024];
        if (join(dir, sizeof dir, cases_dir, "/") < 0 ||
            join(dir + strlen(dir), sizeof dir - strlen(dir), e->d_name, "") < 0)
            continue;
        total++;
        passed += check_bad_case(dir);
    }
    closedir(d);
    assert_true(total >= 30);
    assert_int_equal(passed, total);
}

/* Loads DIR/<name>/model.onnx and binds its test_data_set_0 inputs. */
struct loaded {
    struct vg_model *m;
    struct vg_session *s;
    struct vg_tensor inputs[4];
};

static void load_case(struct loaded *l, const char *name)
{
    char path[1024];
    struct vg_error err = {0};
    memset(l, 0, sizeof *l);
    snprintf(path, sizeof path, "%s/%s/model.onnx", cases_dir, name);
    assert_int_equal(vg_engine_load_file(path, &l->m, &err), 0);
    l->s = vg_session_new(l->m);
    assert_non_null(l->s);
    snprintf(path, sizeof path, "%s/%s/test_data_set_0", cases_dir, name);
    int n = bind_inputs(l->m, l->s, path, l->inputs, 4, &err);
    assert_true(n >= 1);
    assert_int_equal(err.code, 0);
}

static void unload_case(struct loaded *l)
{
    for (int i = 0; i < 4; i++)
        vg_tensor_free_data(&l->inputs[i]);
    vg_session_free(l->s);
    vg_model_free(l->m);
}

static void test_zipmap_keys(void **state)
{
    (void)state;
    if (!need_cases())
        skip();
    struct loaded l;
    struct vg_error err = {0};

    load_case(&l, "test_ml_zipmap_string_keys");
    assert_true(vg_model_output(l.m, 0)->is_map);
    assert_int_equal(vg_session_run(l.s, &err), 0);
    const struct vg_tensor *z = vg_session_output(l.s, 0);
    assert_non_null(z);
    assert_non_null(z->map_keys);
    assert_int_equal(z->map_keys->dtype, VG_DT_STRING);
    assert_int_equal(z->map_keys->dims[0], 3);
    assert_string_equal(((const char *const *)z->map_keys->data)[2], "c");
    assert_int_equal(z->dims[1], 3);
    assert_memory_equal(z->data, l.inputs[0].data, (size_t)vg_tensor_numel(z) * sizeof(float));
    unload_case(&l);

    load_case(&l, "test_ml_zipmap_int64_keys");
    assert_int_equal(vg_session_run(l.s, &err), 0);
    z = vg_session_output(l.s, 0);
    assert_non_null(z->map_keys);
    assert_int_equal(z->map_keys->dtype, VG_DT_INT64);
    assert_int_equal(((const int64_t *)z->map_keys->data)[1], 20);
    unload_case(&l);
}

/* OneHotEncoder zeros=0: an unknown category fails that run only; the session stays usable. */
static void test_run_error_then_recover(void **state)
{
    (void)state;
    if (!need_cases())
        skip();
    struct loaded l;
    struct vg_error err = {0};
    char path[1024];

    memset(&l, 0, sizeof l);
    snprintf(path, sizeof path, "%s/bad_ml_one_hot_encoder_zeros0_unknown/model.onnx", cases_dir);
    assert_int_equal(vg_engine_load_file(path, &l.m, &err), 0);
    l.s = vg_session_new(l.m);
    assert_non_null(l.s);

    int64_t bad[2] = {1, 7}, good[3] = {3, 1, 2};
    struct vg_tensor x = {.dtype = VG_DT_INT64, .rank = 1, .dims = {2}, .data = bad};
    assert_int_equal(vg_session_set_input(l.s, 0, &x, &err), 0);
    assert_int_equal(vg_session_run(l.s, &err), -VG_ERANGE);
    assert_non_null(strstr(err.msg, "unknown category 7"));

    memset(&err, 0, sizeof err);
    x.dims[0] = 3;
    x.data = good;
    assert_int_equal(vg_session_set_input(l.s, 0, &x, &err), 0);
    assert_int_equal(vg_session_run(l.s, &err), 0);
    const struct vg_tensor *y = vg_session_output(l.s, 0);
    assert_int_equal(y->rank, 2);
    assert_int_equal(y->dims[0], 3);
    assert_int_equal(y->dims[1], 3);
    static const float want[9] = {0, 0, 1, 1, 0, 0, 0, 1, 0};
    assert_memory_equal(y->data, want, sizeof want);
    unload_case(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_models),
        cmocka_unit_test(test_zipmap_keys),
        cmocka_unit_test(test_run_error_then_recover),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
