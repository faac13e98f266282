/*
 * The integer GEMM (src/engine/ops/qgemm.c) and the int8 operators built on it (ops/qconv.c).
 *
 *  - Every kernel path this CPU supports is forced in turn (vg_qgemm_force_path) and checked
 *    against a plain reference on random sizes, signedness, zero points (per tensor, per row,
 *    per column), bias and output kinds; sums at the extremes (255 x -128 over K = 3000) check
 *    that no intermediate sum saturates.
 *  - Requantization against an independent long-double computation of the spec formula.
 *  - The hand-made cases of tests/fixtures/gen_qconv_cases.py run under every path (depthwise,
 *    im2col, 1x1, matmul, weights as constants and as inputs), and its bad_* models must fail.
 *    Cases: $VG_QCONV_CASES, or the generator is run into a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture_cases.h"
#include "ops/qgemm.h"
#include "vigil/engine.h"
#include "vigil/tensor_io.h"

static struct fixture_cases cases = {
    .env = "VG_QCONV_CASES", .script = "tests/fixtures/gen_qconv_cases.py", .name = "qconv"};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static int rnd_in(int lo, int hi)
{
    return lo + (int)(rnd() % (uint32_t)(hi - lo + 1));
}

/* The spec formula, computed independently of qgemm.c's integer rounding. */
static int64_t ref_round(int32_t acc, const struct vg_qgemm_rq *rq)
{
    long double v = ldexpl((long double)((int64_t)acc * rq->mult), -rq->shift);
    return (int64_t)nearbyintl(v); /* default mode: half to even */
}

static int32_t ref_out(int64_t v, enum vg_qgemm_out_kind kind)
{
    int64_t lo = kind == VG_QGEMM_OUT_U8 ? 0 : -128, hi = kind == VG_QGEMM_OUT_U8 ? 255 : 127;
    return (int32_t)(v < lo ? lo : v > hi ? hi : v);
}

static void *amalloc(size_t n)
{
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    assert_non_null(p);
    return p;
}

static int val(const uint8_t *p, size_t i, int sgn)
{
    return sgn ? (int)(int8_t)p[i] : (int)p[i];
}

static void fill(uint8_t *p, size_t n, int extreme, int sgn)
{
    for (size_t i = 0; i < n; i++) {
        if (extreme)
            p[i] = sgn ? (uint8_t)(rnd() & 1 ? 127 : -128) : (uint8_t)(rnd() & 1 ? 255 : 0);
        else
            p[i] = (uint8_t)rnd();
    }
}

/* One random product on `path`; returns the number of mismatches. */
static int one_trial(int path, int m, int k, int n, int extreme)
{
    int a_signed = rnd() & 1, b_signed = rnd() & 1;
    if (extreme) {
        /* The case vpmaddubsw would saturate: u8 255 against s8 -128 / 127. */
        a_signed = 0;
        b_signed = 1;
    }
    int lda = k + (int)(rnd() % 3), ldb = n + (int)(rnd() % 3);
    uint8_t *a = calloc((size_t)m * (size_t)lda, 1), *b = calloc((size_t)k * (size_t)ldb, 1);
    assert_non_null(a);
    assert_non_null(b);
    fill(a, (size_t)m * (size_t)lda, extreme, a_signed);
    fill(b, (size_t)k * (size_t)ldb, extreme, b_signed);
    if (extreme) {
        for (size_t i = 0; i < (size_t)m * (size_t)lda; i++)
            a[i] = 255;
    }
    int za_per_row = rnd() & 1, zb_per_col = rnd() & 1, has_bias = rnd() & 1;
    int32_t *za = malloc((size_t)m * 4), *zb = malloc((size_t)n * 4), *bias = malloc((size_t)m * 4);
    for (int i = 0; i < m; i++) {
        za[i] = a_signed ? rnd_in(-128, 127) : rnd_in(0, 255);
        bias[i] = rnd_in(-100000, 100000);
    }
    for (int i = 0; i < n; i++)
        zb[i] = b_signed ? rnd_in(-128, 127) : rnd_in(0, 255);
    if (extreme) {
        za_per_row = zb_per_col = 0;
        za[0] = zb[0] = 0;
    }
    /* Sometimes zero points that vanish in the packed domains (no column sums needed). */
    if (!extreme && rnd() % 4 == 0) {
        za_per_row = 0;
        za[0] = a_signed ? 0 : 128;
    }
    enum vg_qgemm_out_kind kind = (enum vg_qgemm_out_kind)(rnd() % 3);
    int rq_mode = rnd() % 3; /* 0 single, 1 per row, 2 per column */
    int nrq = rq_mode == 1 ? m : rq_mode == 2 ? n : 1;
    struct vg_qgemm_rq *rq = malloc((size_t)nrq * sizeof(*rq));
    for (int i = 0; i < nrq; i++) {
        double mul;
        switch (rnd() % 6) {
        case 0: mul = 0.5; break;             /* ties */
        case 1: mul = 0.75; break;            /* scalar path (shift < 32) */
        case 2: mul = ldexp(1.0, -40); break; /* tiny */
        case 3: mul = 3.0e9; break;           /* absurdly large: clamped */
        default: mul = ldexp(1.0 + (rnd() % 1000) / 1000.0, -(int)(rnd() % 20) - 2); break;
        }
        vg_qgemm_requant_param(mul, &rq[i]);
    }
    int32_t y_zp = kind == VG_QGEMM_OUT_U8 ? rnd_in(0, 255) : rnd_in(-128, 127);

    void *amem = amalloc(vg_qgemm_pack_a_bytes(path, m, k));
    void *bmem = amalloc(vg_qgemm_pack_b_bytes(path, k, n));
    struct vg_qgemm_pa pa;
    struct vg_qgemm_pb pb;
    vg_qgemm_pack_a(path, a, a_signed, (size_t)lda, m, k, amem, &pa);
    vg_qgemm_pack_b(path, b, b_signed, (size_t)ldb, k, n, 1, bmem, &pb);
    size_t es = kind == VG_QGEMM_OUT_I32 ? 4 : 1;
    size_t ldy = (size_t)n + 5;
    char *y = calloc((size_t)m * ldy, es);
    struct vg_qgemm_out o = {0};
    o.za = za;
    o.za_per_row = za_per_row;
    o.zb = zb;
    o.zb_per_col = zb_per_col;
    o.bias = has_bias ? bias : NULL;
    o.kind = kind;
    o.y = y;
    o.ldy = ldy;
    o.rq = rq;
    o.rq_per_row = rq_mode == 1;
    o.rq_per_col = rq_mode == 2;
    o.y_zp = y_zp;
    vg_qgemm(&pa, &pb, &o);

    int bad = 0;
    for (int i = 0; i < m && bad < 5; i++)
        for (int j = 0; j < n && bad < 5; j++) {
            int64_t s = has_bias ? bias[i] : 0;
            int32_t zai = za[za_per_row ? i : 0], zbj = zb[zb_per_col ? j : 0];
            for (int p = 0; p < k; p++)
                s += (int64_t)(val(a, (size_t)i * (size_t)lda + (size_t)p, a_signed) - zai) *
                     (val(b, (size_t)p * (size_t)ldb + (size_t)j, b_signed) - zbj);
            int32_t acc = (int32_t)(uint32_t)(uint64_t)s;
            int64_t want, got;
            if (kind == VG_QGEMM_OUT_I32) {
                want = acc;
                got = ((int32_t *)y)[(size_t)i * ldy + (size_t)j];
            } else {
                want = ref_out(ref_round(acc, &rq[rq_mode == 1 ? i : rq_mode == 2 ? j : 0]) + y_zp,
                               kind);
                got = kind == VG_QGEMM_OUT_U8 ? ((uint8_t *)y)[(size_t)i * ldy + (size_t)j]
                                              : ((int8_t *)y)[(size_t)i * ldy + (size_t)j];
            }
            if (want != got) {
                print_error("%s m=%d k=%d n=%d as=%d bs=%d kind=%d rq=%d [%d,%d]: want %lld got "
                            "%lld\n",
                            vg_qgemm_path_name(path), m, k, n, a_signed, b_signed, kind, rq_mode,
                            i, j, (long long)want, (long long)got);
                bad++;
            }
        }
    free(a);
    free(b);
    free(za);
    free(zb);
    free(bias);
    free(rq);
    free(amem);
    free(bmem);
    free(y);
    return bad;
}

static void test_gemm_every_path(void **state)
{
    (void)state;
    int tested = 0;
    for (int path = 0; path < VG_QGEMM_NPATHS; path++) {
        if (!vg_qgemm_path_supported(path))
            continue;
        tested++;
        int bad = 0;
        for (int t = 0; t < 150 && !bad; t++) {
            int m = rnd_in(1, 40), k = rnd_in(1, 160), n = rnd_in(1, 90);
            if (t % 10 == 0)
                k = rnd_in(500, 1200);
            bad += one_trial(path, m, k, n, 0);
        }
        bad += one_trial(path, 9, 3000, 37, 1);
        bad += one_trial(path, 1, 1, 1, 0);
        assert_int_equal(bad, 0);
    }
    assert_true(tested >= 1);
}

static void test_requant(void **state)
{
    (void)state;
    /* The multiplier is within 2^-31 relative of the real one. */
    for (int i = 0; i < 2000; i++) {
        double m = ldexp(0.5 + (rnd() % 100000) / 200000.0, -(int)(rnd() % 28));
        struct vg_qgemm_rq rq;
        vg_qgemm_requant_param(m, &rq);
        double got = ldexp((double)rq.mult, -rq.shift);
        assert_true(fabs(got - m) <= m * ldexp(1.0, -31));
    }
    int32_t acc[67];
    uint8_t y[67];
    for (int path = 0; path < VG_QGEMM_NPATHS; path++) {
        if (!vg_qgemm_path_supported(path))
            continue;
        vg_qgemm_force_path(path);
        for (int t = 0; t < 300; t++) {
            struct vg_qgemm_rq rq;
            vg_qgemm_requant_param(t % 7 == 0 ? 0.5 : ldexp(1.0 + (rnd() % 977) / 977.0, -(t % 30)),
                                   &rq);
            for (int i = 0; i < 67; i++)
                acc[i] = (int32_t)(rnd() ^ (rnd() << 1));
            acc[0] = INT32_MIN;
            acc[1] = INT32_MAX;
            acc[2] = 1;
            acc[3] = -1;
            acc[4] = 3;
            enum vg_qgemm_out_kind kind = t & 1 ? VG_QGEMM_OUT_U8 : VG_QGEMM_OUT_S8;
            int32_t zp = kind == VG_QGEMM_OUT_U8 ? 128 : -3;
            vg_qgemm_requant_row(acc, 67, &rq, zp, kind, y);
            for (int i = 0; i < 67; i++) {
                int32_t want = ref_out(ref_round(acc[i], &rq) + zp, kind);
                int32_t got = kind == VG_QGEMM_OUT_U8 ? y[i] : (int8_t)y[i];
                if (want != got)
                    fail_msg("%s acc %d mult %d shift %d: want %d got %d",
                             vg_qgemm_path_name(path), acc[i], rq.mult, rq.shift, want, got);
            }
        }
    }
    vg_qgemm_force_path(-1);
}

/* Runs one test_qc_* case; returns 1 when every output matches exactly. */
static int run_case(const char *dir)
{
    char path[1200], set[1100];
    struct vg_model *m = NULL;
    struct vg_error err = {0};
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    if (vg_engine_load_file(path, &m, &err) < 0) {
        print_error("%s: %s\n", dir, err.msg);
        return 0;
    }
    struct vg_session *s = vg_session_new(m);
    struct vg_tensor inputs[12];
    memset(inputs, 0, sizeof inputs);
    snprintf(set, sizeof set, "%s/test_data_set_0", dir);
    int n = fixture_bind_inputs(m, s, set, inputs, 12, &err);
    int ok = n >= 0 && !err.code && vg_session_run(s, &err) == 0;
    for (int i = 0; ok; i++) {
        snprintf(path, sizeof path, "%s/output_%d.pb", set, i);
        FILE *f = fopen(path, "rb");
        if (!f)
            break;
        fclose(f);
        struct vg_tensor want;
        char *name = NULL;
        if (vg_tensor_read_pb(path, &want, &name, &err) < 0) {
            ok = 0;
            break;
        }
        free(name);
        const struct vg_tensor *got = vg_session_output(s, i);
        size_t bytes = (size_t)vg_tensor_numel(&want) * vg_dtype_size(want.dtype);
        ok = got && got->dtype == want.dtype && vg_tensor_numel(got) == vg_tensor_numel(&want) &&
             memcmp(got->data, want.data, bytes) == 0;
        vg_tensor_free_data(&want);
    }
    if (!ok)
        print_error("%s: mismatch or error %s\n", dir, err.msg);
    for (int i = 0; i < 12; i++)
        vg_tensor_free_data(&inputs[i]);
    vg_session_free(s);
    vg_model_free(m);
    return ok;
}

static void test_cases_every_path(void **state)
{
    (void)state;
    fixture_need_cases(&cases);
    for (int path = 0; path < VG_QGEMM_NPATHS; path++) {
        if (!vg_qgemm_path_supported(path))
            continue;
        vg_qgemm_force_path(path);
        DIR *d = opendir(cases.dir);
        assert_non_null(d);
        int total = 0, passed = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strncmp(e->d_name, "test_qc_", 8))
                continue;
            char dir[1024];
            snprintf(dir, sizeof dir, "%s/%s", cases.dir, e->d_name);
            total++;
            passed += run_case(dir);
        }
        closedir(d);
        if (passed != total)
            fail_msg("path %s: %d of %d cases passed", vg_qgemm_path_name(path), passed, total);
        assert_true(total >= 30);
    }
    vg_qgemm_force_path(-1);
}

static void test_bad_models(void **state)
{
    (void)state;
    fixture_check_bad_cases(&cases, "bad_qc_", 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_every_path),
        cmocka_unit_test(test_requant),
        cmocka_unit_test(test_cases_every_path),
        cmocka_unit_test(test_bad_models),
    };
    fixture_group = &cases;
    return cmocka_run_group_tests(tests, fixture_group_setup, fixture_group_teardown);
}
