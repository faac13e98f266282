/*
 * Tree ensemble tests (src/engine/ops/tree.c) on the cases tests/fixtures/gen_tree_cases.py
 * writes (their test_tree_* outputs are checked by the conformance runner):
 *  - every bad_tree_* model is refused at load with a message holding expected_error.txt;
 *  - the block path (many rows) gives bit-identical results to one-row runs, over batch sizes
 *    that cross the 64-row block boundary, with NaNs in the input;
 *  - runs are repeatable on one session and across plans for several shapes.
 *
 * The cases directory is $VG_TREE_CASES; when unset, the generator is run (with /usr/bin/python3,
 * from the source root, which is ctest's working directory) into a temporary directory. Without
 * either, the tests fail (tests/unit/fixture_cases.h).
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture_cases.h"
#include "vigil/engine.h"

static struct fixture_cases cases = {
    .env = "VG_TREE_CASES", .script = "tests/fixtures/gen_tree_cases.py", .name = "tree"};

static void test_bad_models(void **state)
{
    (void)state;
    fixture_check_bad_cases(&cases, "bad_tree_", 15);
}

#define N_FEAT 6
#define N_CLASSES 3
#define MAX_ROWS 1000

/* Deterministic pseudo-random rows, about 5% NaN. */
static void fill_rows(float *x, int n)
{
    uint32_t s = 12345;
    for (int i = 0; i < n * N_FEAT; i++) {
        s = s * 1103515245u + 12345u;
        float u = (float)((s >> 8) & 0xffff) / 65536.0f;
        x[i] = (s >> 28) == 0 ? NAN : (u - 0.5f) * 5.0f;
    }
}

/* Runs rows [0, n) of x; copies labels and scores out. */
static void run_rows(struct vg_session *s, const float *x, int n, const char **labels,
                     float *scores)
{
    struct vg_error err = {0};
    struct vg_tensor in = {.dtype = VG_DT_FLOAT, .rank = 2, .dims = {n, N_FEAT}, .data = (void *)x};
    assert_int_equal(vg_session_set_input(s, 0, &in, &err), 0);
    if (vg_session_run(s, &err) != 0)
        fail_msg("run: %s", err.msg);
    const struct vg_tensor *lab = vg_session_output(s, 0);
    const struct vg_tensor *sc = vg_session_output(s, 1);
    assert_non_null(lab);
    assert_non_null(sc);
    assert_int_equal(lab->dtype, VG_DT_STRING);
    assert_int_equal(sc->rank, 2);
    assert_int_equal(sc->dims[0], n);
    assert_int_equal(sc->dims[1], N_CLASSES);
    memcpy(labels, lab->data, (size_t)n * sizeof(char *));
    memcpy(scores, sc->data, (size_t)n * N_CLASSES * sizeof(float));
}

static void test_blocks_match_single_rows(void **state)
{
    (void)state;
    fixture_need_cases(&cases);
    char path[1024];
    struct vg_model *m = NULL;
    struct vg_error err = {0};
    snprintf(path, sizeof path, "%s/test_tree_symbolic_dims/model.onnx", cases.dir);
    if (vg_engine_load_file(path, &m, &err) != 0)
        fail_msg("load: %s", err.msg);
    struct vg_session *s = vg_session_new(m);
    assert_non_null(s);

    float *x = malloc(sizeof(float) * MAX_ROWS * N_FEAT);
    float *batch_scores = malloc(sizeof(float) * MAX_ROWS * N_CLASSES);
    const char **batch_labels = malloc(sizeof(char *) * MAX_ROWS);
    assert_non_null(x);
    assert_non_null(batch_scores);
    assert_non_null(batch_labels);
    fill_rows(x, MAX_ROWS);

    /* one-row reference */
    float *one_scores = malloc(sizeof(float) * MAX_ROWS * N_CLASSES);
    const char **one_labels = malloc(sizeof(char *) * MAX_ROWS);
    assert_non_null(one_scores);
    assert_non_null(one_labels);
    for (int r = 0; r < MAX_ROWS; r++)
        run_rows(s, x + r * N_FEAT, 1, one_labels + r, one_scores + r * N_CLASSES);

    static const int sizes[] = {2, 63, 64, 65, 130, MAX_ROWS};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int n = sizes[k];
        run_rows(s, x, n, batch_labels, batch_scores);
        for (int r = 0; r < n; r++) {
            assert_string_equal(batch_labels[r], one_labels[r]);
            for (int j = 0; j < N_CLASSES; j++) {
                float a = batch_scores[r * N_CLASSES + j], b = one_scores[r * N_CLASSES + j];
                if (memcmp(&a, &b, sizeof a))
                    fail_msg("rows %d, row %d class %d: batch %.9g, single row %.9g", n, r, j,
                             (double)a, (double)b);
            }
        }
    }
    /* the same shape again reuses its plan and gives the same answer */
    run_rows(s, x, 65, batch_labels, batch_scores);
    for (int j = 0; j < 65 * N_CLASSES; j++)
        assert_true(batch_scores[j] == one_scores[j] || isnan(one_scores[j]));

    free(one_scores);
    free(one_labels);
    free(x);
    free(batch_scores);
    free(batch_labels);
    vg_session_free(s);
    vg_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_models),
        cmocka_unit_test(test_blocks_match_single_rows),
    };
    fixture_group = &cases;
    return cmocka_run_group_tests(tests, fixture_group_setup, fixture_group_teardown);
}
