/*
 * ai.onnx.ml operator tests (src/engine/ops/ml.c) on the cases tests/fixtures/gen_ml_cases.py
 * writes: every bad_ml_* model must be refused at load (or, for shape- and data-dependent errors,
 * at bind/run) with a message holding expected_error.txt; ZipMap outputs carry their keys; a run
 * that fails on data leaves the session usable.
 *
 * The cases directory is $VG_ML_CASES; when unset, the generator is run (with /usr/bin/python3,
 * from the source root, which is ctest's working directory) into a temporary directory. Without
 * either, the tests fail (tests/unit/fixture_cases.h).
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

#include "fixture_cases.h"
#include "vigil/engine.h"
#include "vigil/tensor_io.h"

static struct fixture_cases cases = {
    .env = "VG_ML_CASES", .script = "tests/fixtures/gen_ml_cases.py", .name = "ml"};

static void test_bad_models(void **state)
{
    (void)state;
    fixture_check_bad_cases(&cases, "bad_ml_", 30);
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
    snprintf(path, sizeof path, "%s/%s/model.onnx", cases.dir, name);
    assert_int_equal(vg_engine_load_file(path, &l->m, &err), 0);
    l->s = vg_session_new(l->m);
    assert_non_null(l->s);
    snprintf(path, sizeof path, "%s/%s/test_data_set_0", cases.dir, name);
    int n = fixture_bind_inputs(l->m, l->s, path, l->inputs, 4, &err);
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
    fixture_need_cases(&cases);
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
    fixture_need_cases(&cases);
    struct loaded l;
    struct vg_error err = {0};
    char path[1024];

    memset(&l, 0, sizeof l);
    snprintf(path, sizeof path, "%s/bad_ml_one_hot_encoder_zeros0_unknown/model.onnx",
             cases.dir);
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
    fixture_group = &cases;
    return cmocka_run_group_tests(tests, fixture_group_setup, fixture_group_teardown);
}
