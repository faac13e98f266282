/*
 * Fixture plumbing shared by the unit tests that read ONNX cases written by a generator in
 * tests/fixtures/ (test_ml.c, test_tree.c).
 *
 * The cases directory is $<env>; when unset, the generator is run (with /usr/bin/python3, from the
 * source root, which is ctest's working directory) into a temporary directory that teardown
 * removes. When neither gives cases, every test calling fixture_need_cases() fails with the
 * reason: a test that cannot see its cases must not pass.
 *
 * Include after <cmocka.h> (and its prerequisites <setjmp.h>, <stdarg.h>, <stddef.h>).
 */
#ifndef VG_TESTS_FIXTURE_CASES_H
#define VG_TESTS_FIXTURE_CASES_H

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "vigil/engine.h"
#include "vigil/tensor_io.h"

struct fixture_cases {
    const char *env;    /* e.g. "VG_ML_CASES" */
    const char *script; /* generator, relative to the source root */
    const char *name;   /* short name for temporary files and messages, e.g. "ml" */
    char dir[512];      /* the cases; empty when there are none */
    char tmp_dir[64];   /* our temporary directory, if we made one */
    char why[768];      /* why dir is empty */
};

/* Fills fc->dir from fc->env or by running fc->script; on failure fc->why says what failed. */
static inline void fixture_cases_setup(struct fixture_cases *fc)
{
    const char *env = getenv(fc->env);
    if (env && *env) {
        snprintf(fc->dir, sizeof fc->dir, "%s", env);
        return;
    }
    snprintf(fc->tmp_dir, sizeof fc->tmp_dir, "/tmp/vg_%s_casesXXXXXX", fc->name);
    if (!mkdtemp(fc->tmp_dir)) {
        snprintf(fc->why, sizeof fc->why, "%s unset and mkdtemp(%s) failed: %s", fc->env,
                 fc->tmp_dir, strerror(errno));
        fc->tmp_dir[0] = 0;
        return;
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s >/dev/null 2>&1", fc->script, fc->tmp_dir);
    int rc = system(cmd);
    if (rc == 0) {
        snprintf(fc->dir, sizeof fc->dir, "%s", fc->tmp_dir);
        return;
    }
    snprintf(fc->why, sizeof fc->why,
             "%s unset and the generator failed (exit status %d; python3-onnx missing?): %s",
             fc->env, rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, cmd);
}

/* Removes the temporary directory setup made, if any. */
static inline void fixture_cases_teardown(struct fixture_cases *fc)
{
    if (!fc->tmp_dir[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fc->tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_%s: could not remove %s\n", fc->name, fc->tmp_dir);
    fc->tmp_dir[0] = 0;
}

/* The cases of this test program: main sets it before cmocka_run_group_tests(). */
static struct fixture_cases *fixture_group;

/* cmocka group setup / teardown for fixture_group. */
static inline int fixture_group_setup(void **state)
{
    (void)state;
    fixture_cases_setup(fixture_group);
    return 0;
}

static inline int fixture_group_teardown(void **state)
{
    (void)state;
    fixture_cases_teardown(fixture_group);
    return 0;
}

/* Fails the current test (fail_msg) when there are no cases. */
static inline void fixture_need_cases(const struct fixture_cases *fc)
{
    if (!fc->dir[0])
        fail_msg("no %s cases: %s", fc->name, fc->why);
}

/* path = a + b; -1 when it does not fit (the tests then fail on the missing file). */
static inline int fixture_join(char *path, size_t len, const char *a, const char *b)
{
    int n = snprintf(path, len, "%s%s", a, b);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static inline int fixture_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The first line of path, trailing whitespace removed, into buf. */
static inline int fixture_read_line(const char *path, char *buf, size_t len)
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
static inline int fixture_bind_inputs(const struct vg_model *m, struct vg_session *s,
                                      const char *set_dir, struct vg_tensor *inputs, int cap,
                                      struct vg_error *err)
{
    int n = 0;
    for (; n < cap; n++) {
        char path[1024];
        char *name = NULL;
        char file[32];
        snprintf(file, sizeof file, "/input_%d.pb", n);
        if (fixture_join(path, sizeof path, set_dir, file) < 0)
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

/*
 * Runs one bad_* case: the model must be refused at load or, when the case has a
 * test_data_set_0, at bind/run, with a message holding expected_error.txt. Returns 1 when the
 * failure matched, 0 otherwise (with a message).
 */
static inline int fixture_check_bad_case(const char *dir)
{
    char path[1024], want[512];
    struct vg_model *m = NULL;
    struct vg_error err = {0};
    int ok = 0;

    if (fixture_join(path, sizeof path, dir, "/expected_error.txt") < 0 ||
        fixture_read_line(path, want, sizeof want) < 0) {
        print_error("%s: no expected_error.txt\n", dir);
        return 0;
    }
    if (fixture_join(path, sizeof path, dir, "/model.onnx") < 0)
        return 0;
    if (vg_engine_load_file(path, &m, &err) < 0) {
        ok = strstr(err.msg, want) != NULL;
        if (!ok)
            print_error("%s: load error \"%s\" lacks \"%s\"\n", dir, err.msg, want);
        return ok;
    }
    char set_dir[1024];
    if (fixture_join(set_dir, sizeof set_dir, dir, "/test_data_set_0") < 0 ||
        !fixture_is_dir(set_dir)) {
        print_error("%s: loaded, but should fail with \"%s\"\n", dir, want);
        vg_model_free(m);
        return 0;
    }
    struct vg_session *s = vg_session_new(m);
    struct vg_tensor inputs[8];
    memset(inputs, 0, sizeof inputs);
    int n = s ? fixture_bind_inputs(m, s, set_dir, inputs, 8, &err) : -1;
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

/*
 * Checks every <prefix>* case under fc->dir (failing the test when there are no cases): asserts
 * there are at least `min_cases` and that all of them pass.
 */
static inline void fixture_check_bad_cases(const struct fixture_cases *fc, const char *prefix,
                                           int min_cases)
{
    fixture_need_cases(fc);
    DIR *d = opendir(fc->dir);
    assert_non_null(d);
    int total = 0, passed = 0;
    size_t plen = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, plen))
            continue;
        char dir[1024];
        if (fixture_join(dir, sizeof dir, fc->dir, "/") < 0 ||
            fixture_join(dir + strlen(dir), sizeof dir - strlen(dir), e->d_name, "") < 0)
            continue;
        total++;
        passed += fixture_check_bad_case(dir);
    }
    closedir(d);
    assert_true(total >= min_cases);
    assert_int_equal(passed, total);
}

#endif
