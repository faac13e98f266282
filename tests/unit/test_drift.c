/*
 * Drift monitor tests (src/monitor/drift.c, include/vigil/drift.h): the PSI against hand-computed
 * values, the binning rule at its edges (and that training's vg_reference_bin is the same rule),
 * the window and its expiry on an injected clock, the series in the exposition, the reference
 * checks, PSI on rows drawn from the reference and on shifted rows, and 8 threads observing at
 * once (single rows and batches) with exact totals, also while the clock crosses slots and
 * threads share shards.
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

#include <cmocka.h>

#include "vigil/drift.h"
#include "vigil/train.h"

#define NS 1000000000ull

/* ---- helpers --------------------------------------------------------------------------------- */

/* A settable clock for the window tests. */
static uint64_t fake_now;

static uint64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

/* A feature whose edges are 0, 1, ..., 10 and whose bins each hold a tenth of the rows. */
static struct vg_drift_feature_ref unit_feature(const char *name)
{
    struct vg_drift_feature_ref f = {.name = name};
    for (int b = 0; b <= VG_DRIFT_REF_BINS; b++)
        f.edges[b] = b;
    for (int b = 0; b < VG_DRIFT_REF_BINS; b++)
        f.shares[b] = 0.1;
    return f;
}

struct fixture {
    struct vg_registry reg;
    struct vg_drift_families fam;
    struct vg_drift *d;
    struct vg_expo_buf buf;
};

static void make(struct fixture *fx, struct vg_drift_config *c)
{
    assert_int_equal(vg_registry_init(&fx->reg), 0);
    struct vg_error err = {0};
    assert_int_equal(vg_drift_register(&fx->reg, &fx->fam, &err), 0);
    int rc = vg_drift_new(c, &fx->fam, &fx->d, &err);
    if (rc)
        fprintf(stderr, "vg_drift_new: %s\n", err.msg);
    assert_int_equal(rc, 0);
    vg_expo_buf_init(&fx->buf, 1 << 20);
}

static void destroy(struct fixture *fx)
{
    vg_expo_buf_release(&fx->buf);
    vg_registry_release(&fx->reg); /* frees the drift object */
}

static const char *render(struct fixture *fx)
{
    assert_int_equal(vg_registry_render(&fx->reg, VG_EXPO_PROMETHEUS, &fx->buf), 0);
    return fx->buf.data;
}

static void assert_contains(const char *text, const char *want)
{
    if (!strstr(text, want)) {
        fprintf(stderr, "expected to find:\n%s\nin:\n%s\n", want, text);
        fail();
    }
}

/* ---- PSI ------------------------------------------------------------------------------------- */

static void test_psi_hand_computed(void **state)
{
    (void)state;
    /*
     * Two bins, counts {3, 1}, reference {0.5, 0.5}. Live shares with 0.5 added to each count:
     * a = (3.5 / 5, 1.5 / 5) = (0.7, 0.3); the reference has no share under the 1e-4 floor, so
     * e = (0.5, 0.5). PSI = (0.7 - 0.5) ln(0.7 / 0.5) + (0.3 - 0.5) ln(0.3 / 0.5)
     *                     = 0.2 * 0.33647224 + 0.2 * 0.51082562 = 0.16945957.
     */
    uint64_t c1[] = {3, 1};
    double r1[] = {0.5, 0.5};
    assert_float_equal(vg_drift_psi(c1, r1, 2), 0.16945957207744072, 1e-12);

    /*
     * Three bins, counts {2, 2, 0}, reference {0.5, 0.5, 0}: the empty reference bin is floored
     * at 1e-4 and the shares renormalized by 1.0001: e = (0.49995, 0.49995, 0.00009999).
     * a = (2.5 / 5.5, 2.5 / 5.5, 0.5 / 5.5) = (0.454545, 0.454545, 0.090909).
     * PSI = 2 * (0.454545 - 0.49995) ln(0.454545 / 0.49995) + (0.090909 - 0.00009999)
     *       ln(0.090909 / 0.00009999) = 2 * 0.0043230 + 0.090809 * 6.812529 = 0.62728705.
     */
    uint64_t c2[] = {2, 2, 0};
    double r2[] = {0.5, 0.5, 0};
    assert_float_equal(vg_drift_psi(c2, r2, 3), 0.6272870461774872, 1e-12);

    /* No count: no distribution, NaN. */
    uint64_t c3[] = {0, 0, 0};
    assert_true(isnan(vg_drift_psi(c3, r2, 3)));

    /* Live shares equal to the reference: 0 (the pseudo-counts cancel for equal counts). */
    uint64_t c4[] = {5000, 5000};
    assert_float_equal(vg_drift_psi(c4, r1, 2), 0, 1e-15);

    /* Everything in one bin the reference never saw: a large PSI, never Inf or NaN. */
    uint64_t c5[] = {0, 0, 1000};
    double p5 = vg_drift_psi(c5, r2, 3);
    assert_true(isfinite(p5) && p5 > 5);
}

/* ---- binning --------------------------------------------------------------------------------- */

static void test_bin_edges(void **state)
{
    (void)state;
    struct vg_drift_feature_ref f = unit_feature("x");
    static const struct {
        double v;
        int bin;
    } cases[] = {
        {NAN, -2}, {-INFINITY, -1}, {-0.5, -1}, {0, 0},      {0.5, 0},
        {1, 1},    {9.99, 9},       {10, 9},    {10.01, 10}, {INFINITY, 10},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(vg_drift_bin(f.edges, cases[i].v), cases[i].bin);

    /* Repeated edges (a feature with many equal values): the highest bin whose lower edge the
     * value reaches; a value equal to a repeated edge skips the empty bins. */
    double rep[] = {0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 3};
    assert_int_equal(vg_drift_bin(rep, 0), 2);
    assert_int_equal(vg_drift_bin(rep, 0.5), 2);
    assert_int_equal(vg_drift_bin(rep, 1), 7);
    assert_int_equal(vg_drift_bin(rep, 2), 9);
    assert_int_equal(vg_drift_bin(rep, 3), 9);
    assert_int_equal(vg_drift_bin(rep, 3.5), 10);
    /* A constant feature: all in the last bin, anything else out of range. */
    double flat[VG_DRIFT_REF_BINS + 1];
    for (int b = 0; b <= VG_DRIFT_REF_BINS; b++)
        flat[b] = 4;
    assert_int_equal(vg_drift_bin(flat, 4), 9);
    assert_int_equal(vg_drift_bin(flat, 3.9), -1);
    assert_int_equal(vg_drift_bin(flat, 4.1), 10);

    /* Training bins with the same function. */
    struct vg_feature_ref tr = {0};
    memcpy(tr.edges, rep, sizeof rep);
    for (int k = -4; k <= 16; k++) /* -1 to 4 by quarters */
        assert_int_equal(vg_reference_bin(&tr, k / 4.0), vg_drift_bin(rep, k / 4.0));
    assert_int_equal(vg_reference_bin(&tr, NAN), -2);
}

/* ---- counting and the exposition ------------------------------------------------------------ */

static void test_counts_and_series(void **state)
{
    (void)state;
    struct vg_drift_feature_ref feats[2] = {unit_feature("a"), unit_feature("b\"q")};
    double class_shares[3] = {0.5, 0.25, 0.25};
    fake_now = 100 * NS;
    struct vg_drift_config c = {.model = "m",
                                .version = "3",
                                .n_features = 2,
                                .features = feats,
                                .n_classes = 3,
                                .class_shares = class_shares,
                                .window_seconds = 60,
                                .shards = 4,
                                .clock_ns = fake_clock};
    struct fixture fx;
    make(&fx, &c);

    /* Before any row: NaN PSIs and an empty window. */
    const char *text = render(&fx);
    assert_contains(text, "vigil_feature_psi{model=\"m\",version=\"3\",feature=\"a\"} NaN\n");
    assert_contains(text, "vigil_feature_psi{model=\"m\",version=\"3\",feature=\"b\\\"q\"} NaN\n");
    assert_contains(text, "vigil_prediction_psi{model=\"m\",version=\"3\"} NaN\n");
    assert_contains(text, "vigil_drift_window_rows{model=\"m\",version=\"3\"} 0\n");
    assert_contains(text,
                    "vigil_feature_values_total{model=\"m\",version=\"3\",feature=\"a\"} 0\n");

    /* Feature a: NaN (missing), -1 (below), 0 (bin 0), 10 (bin 9), 11 (above), 5.5 (bin 5);
     * feature b: always 2.5 (bin 2). Classes 0, 1, 1, 2, 7 (ignored), -1 (ignored). */
    float x[] = {NAN, 2.5f, -1, 2.5f, 0, 2.5f, 10, 2.5f, 11, 2.5f, 5.5f, 2.5f};
    int32_t classes[] = {0, 1, 1, 2, 7, -1};
    vg_drift_observe(fx.d, x, 2, classes);
    vg_drift_observe(fx.d, x + 4, 4, classes + 2);
    vg_drift_collect(fx.d);
    uint64_t counts[VG_DRIFT_BINS];
    uint64_t want_a[VG_DRIFT_BINS] = {1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1};
    vg_drift_window_counts(fx.d, 0, counts);
    assert_memory_equal(counts, want_a, sizeof want_a);
    uint64_t want_b[VG_DRIFT_BINS] = {0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0};
    vg_drift_window_counts(fx.d, 1, counts);
    assert_memory_equal(counts, want_b, sizeof want_b);
    assert_int_equal(vg_drift_window_rows(fx.d), 6);
    assert_int_equal(vg_drift_window_class(fx.d, 0), 1);
    assert_int_equal(vg_drift_window_class(fx.d, 1), 2);
    assert_int_equal(vg_drift_window_class(fx.d, 2), 1);

    /* The gauges are the PSI of these counts against the reference. */
    double ref_a[VG_DRIFT_BINS] = {0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0};
    uint64_t live_classes[3] = {1, 2, 1};
    assert_float_equal(vg_drift_feature_psi(fx.d, 0), vg_drift_psi(want_a, ref_a, VG_DRIFT_BINS),
                       1e-15);
    assert_float_equal(vg_drift_prediction_psi(fx.d), vg_drift_psi(live_classes, class_shares, 3),
                       1e-15);

    text = render(&fx);
    assert_contains(text,
                    "vigil_feature_values_total{model=\"m\",version=\"3\",feature=\"a\"} 6\n");
    assert_contains(text,
                    "vigil_feature_values_total{model=\"m\",version=\"3\",feature=\"b\\\"q\"} 6\n");
    assert_contains(text,
                    "vigil_feature_missing_total{model=\"m\",version=\"3\",feature=\"a\"} 1\n");
    assert_contains(
        text, "vigil_feature_missing_total{model=\"m\",version=\"3\",feature=\"b\\\"q\"} 0\n");
    assert_contains(text, "vigil_feature_out_of_range_total{model=\"m\",version=\"3\",feature="
                          "\"a\",side=\"below\"} 1\n");
    assert_contains(text, "vigil_feature_out_of_range_total{model=\"m\",version=\"3\",feature="
                          "\"a\",side=\"above\"} 1\n");
    assert_contains(text, "vigil_drift_window_rows{model=\"m\",version=\"3\"} 6\n");
    char line[200];
    snprintf(line, sizeof line, "vigil_feature_psi{model=\"m\",version=\"3\",feature=\"a\"} ");
    const char *at = strstr(text, line);
    assert_non_null(at);
    assert_float_equal(strtod(at + strlen(line), NULL), vg_drift_psi(want_a, ref_a, VG_DRIFT_BINS),
                       1e-12);
    destroy(&fx);
}

/* A regression model: no class counts, no prediction PSI series. */
static void test_no_classes(void **state)
{
    (void)state;
    struct vg_drift_feature_ref f = unit_feature("a");
    struct vg_drift_config c = {
        .model = "r", .version = "1", .n_features = 1, .features = &f, .window_seconds = 10};
    struct fixture fx;
    make(&fx, &c);
    float x[] = {1.5f, 2.5f};
    int32_t classes[] = {0, 0};
    vg_drift_observe(fx.d, x, 2, classes);
    const char *text = render(&fx);
    assert_null(strstr(text, "vigil_prediction_psi{"));
    assert_contains(text, "vigil_drift_window_rows{model=\"r\",version=\"1\"} 2\n");
    assert_true(isnan(vg_drift_prediction_psi(fx.d)));
    assert_int_equal(vg_drift_window_class(fx.d, 0), 0);
    destroy(&fx);
}

/* ---- the window ------------------------------------------------------------------------------ */

static void test_window_expiry(void **state)
{
    (void)state;
    struct vg_drift_feature_ref f = unit_feature("a");
    /* 60 s window: 60 slots of 1 s. */
    struct vg_drift_config c = {.model = "m",
                                .version = "1",
                                .n_features = 1,
                                .features = &f,
                                .window_seconds = 60,
                                .shards = 2,
                                .clock_ns = fake_clock};
    struct fixture fx;
    make(&fx, &c);
    assert_float_equal(vg_drift_slot_seconds(fx.d), 1.0, 1e-12);
    float one = 0.5f, two = 1.5f;

    fake_now = 1000 * NS + NS / 2; /* slot 1000, half way through */
    vg_drift_observe(fx.d, &one, 1, NULL);
    fake_now = 1030 * NS; /* slot 1030 */
    vg_drift_observe(fx.d, &two, 1, NULL);

    /* At slot 1060 (the row of slot 1000 is 59.5 to 60.5 s old) both count... */
    fake_now = 1060 * NS + NS / 2;
    vg_drift_collect(fx.d);
    assert_int_equal(vg_drift_window_rows(fx.d), 2);
    /* ...up to the end of slot 1060: an age between the window and the window plus a slot. */
    fake_now = 1061 * NS - 1;
    vg_drift_collect(fx.d);
    assert_int_equal(vg_drift_window_rows(fx.d), 2);
    /* At slot 1061 the first has expired (60.5 s old), the second has not. */
    fake_now = 1061 * NS;
    vg_drift_collect(fx.d);
    assert_int_equal(vg_drift_window_rows(fx.d), 1);
    uint64_t counts[VG_DRIFT_BINS];
    vg_drift_window_counts(fx.d, 0, counts);
    assert_int_equal(counts[1], 0);
    assert_int_equal(counts[2], 1);

    /* Slot 1061 reuses slot 1000's ring position: a new row resets it first. */
    vg_drift_observe(fx.d, &one, 1, NULL);
    vg_drift_collect(fx.d);
    assert_int_equal(vg_drift_window_rows(fx.d), 2);
    vg_drift_window_counts(fx.d, 0, counts);
    assert_int_equal(counts[1], 1);
    assert_int_equal(counts[2], 1);

    /* Everything gone after a quiet window: 0 rows, NaN. */
    fake_now = 1200 * NS;
    vg_drift_collect(fx.d);
    assert_int_equal(vg_drift_window_rows(fx.d), 0);
    assert_true(isnan(vg_drift_feature_psi(fx.d, 0)));

    /* A writer whose clock read lags a whole ring behind counts into the newer slot. */
    vg_drift_observe(fx.d, &one, 1, NULL); /* slot 1200 */
    fake_now = 1200 * NS - 61 * NS;        /* slot 1139: same ring position, older */
    vg_drift_observe(fx.d, &one, 1, NULL);
    fake_now = 1200 * NS;
    vg_drift_collect(fx.d);
    assert_int_equal(vg_drift_window_rows(fx.d), 2);
    destroy(&fx);
}

/* ---- PSI on realistic data ------------------------------------------------------------------- */

/* A seeded generator (xorshift64*), uniform in [0, 1). */
static double uniform(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static double normal(uint64_t *s)
{
    double u = uniform(s), v = uniform(s);
    return sqrt(-2 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

static void test_psi_reference_and_shift(void **state)
{
    (void)state;
    /* The reference of a standard normal: min -3, deciles, max 3, a tenth of the rows per bin. */
    static const double deciles[] = {-1.2815516, -0.8416212, -0.5244005, -0.2533471, 0,
                                     0.2533471,  0.5244005,  0.8416212,  1.2815516};
    struct vg_drift_feature_ref f = {.name = "z"};
    f.edges[0] = -3;
    for (int k = 0; k < 9; k++)
        f.edges[k + 1] = deciles[k];
    f.edges[VG_DRIFT_REF_BINS] = 3;
    for (int b = 0; b < VG_DRIFT_REF_BINS; b++)
        f.shares[b] = 0.1;
    struct vg_drift_config c = {.model = "m",
                                .version = "1",
                                .n_features = 1,
                                .features = &f,
                                .window_seconds = 60,
                                .clock_ns = fake_clock};
    fake_now = 5 * NS;
    uint64_t seed = 42;
    enum { ROWS = 3000 };
    static float same[ROWS], shifted[ROWS];
    for (int i = 0; i < ROWS; i++) {
        same[i] = (float)normal(&seed);
        shifted[i] = same[i] + 3.0f; /* 3 standard deviations */
    }
    struct fixture fx;
    make(&fx, &c);
    vg_drift_observe(fx.d, same, ROWS, NULL);
    vg_drift_collect(fx.d);
    double psi_same = vg_drift_feature_psi(fx.d, 0);
    destroy(&fx);
    make(&fx, &c);
    vg_drift_observe(fx.d, shifted, ROWS, NULL);
    vg_drift_collect(fx.d);
    double psi_shifted = vg_drift_feature_psi(fx.d, 0);
    destroy(&fx);
    printf("PSI of %d rows from the reference: %.4f; shifted by 3 sd: %.4f\n", ROWS, psi_same,
           psi_shifted);
    assert_true(psi_same < 0.1);
    assert_true(psi_shifted > 1.0);
}

/* ---- reference checks ------------------------------------------------------------------------ */

static void test_invalid_reference(void **state)
{
    (void)state;
    struct vg_registry reg;
    struct vg_drift_families fam;
    struct vg_error err = {0};
    assert_int_equal(vg_registry_init(&reg), 0);
    assert_int_equal(vg_drift_register(&reg, &fam, &err), 0);
    /* Registering twice in one registry is refused (the names are taken). */
    struct vg_drift_families again;
    assert_true(vg_drift_register(&reg, &again, &err) < 0);

    struct vg_drift *d = NULL;
    struct vg_drift_feature_ref f = unit_feature("a");
    struct vg_drift_config c = {
        .model = "m", .version = "1", .n_features = 1, .features = &f, .window_seconds = 60};
    f.edges[4] = 2; /* decreasing */
    assert_int_equal(vg_drift_new(&c, &fam, &d, &err), -VG_EINVAL);
    assert_non_null(strstr(err.msg, "non-decreasing"));
    f = unit_feature("a");
    f.edges[10] = INFINITY;
    assert_int_equal(vg_drift_new(&c, &fam, &d, &err), -VG_EINVAL);
    f = unit_feature("a");
    f.shares[3] = 1.5;
    assert_int_equal(vg_drift_new(&c, &fam, &d, &err), -VG_EINVAL);
    f = unit_feature("a");
    c.window_seconds = 0;
    assert_int_equal(vg_drift_new(&c, &fam, &d, &err), -VG_EINVAL);
    c.window_seconds = 60;
    double bad_class[2] = {0.5, NAN};
    c.n_classes = 2;
    c.class_shares = bad_class;
    assert_int_equal(vg_drift_new(&c, &fam, &d, &err), -VG_EINVAL);
    c.class_shares = NULL;
    assert_int_equal(vg_drift_new(&c, &fam, &d, &err), -VG_EINVAL);
    assert_null(d);
    vg_registry_release(&reg);
}

/* ---- concurrency ----------------------------------------------------------------------------- */

enum { THREADS = 8, PER_THREAD = 100000 };

static atomic_uint_least64_t ticks;
static uint64_t tick_ns;

/* Advances a little with every read, so the writers cross slot boundaries while they race. */
static uint64_t ticking_clock(void *arg)
{
    (void)arg;
    return atomic_fetch_add(&ticks, 1) * tick_ns;
}

struct worker {
    struct vg_drift *d;
    int id;
};

/* Even threads send single rows, odd ones batches of 10 (the two paths of vg_drift_observe). */
static void *observe_rows(void *arg)
{
    const struct worker *w = arg;
    enum { BATCH = 10 };
    int per_call = w->id % 2 ? BATCH : 1;
    float rows[BATCH * 2];
    int32_t k[BATCH];
    for (int i = 0; i < PER_THREAD; i += per_call) {
        for (int r = 0; r < per_call; r++) {
            int n = i + r;
            rows[2 * r] = (float)(n % 12) - 0.5f; /* -0.5 (below), 0.5 .. 9.5, 10.5 (above) */
            rows[2 * r + 1] = n % 5 == 0 ? NAN : (float)w->id;
            k[r] = n % 3;
        }
        vg_drift_observe(w->d, rows, per_call, k);
    }
    return NULL;
}

static void run_threads(int shards, int ticking)
{
    struct vg_drift_feature_ref feats[2] = {unit_feature("a"), unit_feature("b")};
    double class_shares[3] = {0.4, 0.3, 0.3};
    /* 60 s window; the ticking clock spans 40 slots over all the reads, so nothing expires. */
    atomic_store(&ticks, 0);
    tick_ns = NS * 40 / (THREADS * PER_THREAD);
    fake_now = 7 * NS;
    struct vg_drift_config c = {.model = "m",
                                .version = "1",
                                .n_features = 2,
                                .features = feats,
                                .n_classes = 3,
                                .class_shares = class_shares,
                                .window_seconds = 60,
                                .shards = shards,
                                .clock_ns = ticking ? ticking_clock : fake_clock};
    struct fixture fx;
    make(&fx, &c);
    pthread_t tid[THREADS];
    struct worker w[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t] = (struct worker){fx.d, t};
        assert_int_equal(pthread_create(&tid[t], NULL, observe_rows, &w[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(tid[t], NULL);
    vg_drift_collect(fx.d);
    const uint64_t total = (uint64_t)THREADS * PER_THREAD;
    assert_int_equal(vg_drift_window_rows(fx.d), total);
    uint64_t counts[VG_DRIFT_BINS];
    vg_drift_window_counts(fx.d, 0, counts);
    /* PER_THREAD is not a multiple of 12: bins 0..3 get one more round (100000 = 8333 * 12 + 4). */
    for (int b = 0; b < VG_DRIFT_BINS; b++)
        assert_int_equal(counts[b], THREADS * (PER_THREAD / 12 + (b < PER_THREAD % 12)));
    vg_drift_window_counts(fx.d, 1, counts);
    uint64_t in_bins = 0;
    for (int b = 0; b < VG_DRIFT_BINS; b++)
        in_bins += counts[b];
    assert_int_equal(in_bins, total - total / 5);                 /* every fifth is NaN */
    assert_int_equal(counts[1 + 3], PER_THREAD - PER_THREAD / 5); /* thread 3's value 3: bin 3 */
    for (int k = 0; k < 3; k++)
        assert_int_equal(vg_drift_window_class(fx.d, k),
                         THREADS * (PER_THREAD / 3 + (k < PER_THREAD % 3)));
    const char *text = render(&fx);
    assert_contains(text, "vigil_feature_values_total{model=\"m\",version=\"1\",feature=\"a\"} "
                          "800000\n");
    assert_contains(text, "vigil_feature_missing_total{model=\"m\",version=\"1\",feature=\"b\"} "
                          "160000\n");
    char want[256];
    snprintf(want, sizeof want,
             "vigil_feature_out_of_range_total{model=\"m\",version=\"1\",feature=\"a\","
             "side=\"below\"} %d\n",
             THREADS * (PER_THREAD / 12 + 1));
    assert_contains(text, want);
    snprintf(want, sizeof want,
             "vigil_feature_out_of_range_total{model=\"m\",version=\"1\",feature=\"a\","
             "side=\"above\"} %d\n",
             THREADS * (PER_THREAD / 12));
    assert_contains(text, want);
    destroy(&fx);
}

static void test_concurrent_own_shards(void **state)
{
    (void)state;
    run_threads(THREADS, 0);
}

static void test_concurrent_shared_shards_ticking(void **state)
{
    (void)state;
    run_threads(2, 1); /* four threads per shard, racing to reset each new slot */
}

static void test_concurrent_own_shards_ticking(void **state)
{
    (void)state;
    run_threads(16, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_psi_hand_computed),
        cmocka_unit_test(test_bin_edges),
        cmocka_unit_test(test_counts_and_series),
        cmocka_unit_test(test_no_classes),
        cmocka_unit_test(test_window_expiry),
        cmocka_unit_test(test_psi_reference_and_shift),
        cmocka_unit_test(test_invalid_reference),
        cmocka_unit_test(test_concurrent_own_shards),
        cmocka_unit_test(test_concurrent_shared_shards_ticking),
        cmocka_unit_test(test_concurrent_own_shards_ticking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
