/*
 * Monitor tests (src/monitor/): registration checks, binding, removal, lock-free updates under
 * contention, histogram bucket edges, the two exposition formats as golden text, escaping,
 * number formatting, the output cap, and Accept negotiation.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vigil/monitor.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* The last rendering; valid until the next render() (freed by the group teardown). */
static struct vg_expo_buf render_buf;

static char *render(struct vg_registry *r, enum vg_expo_format fmt)
{
    vg_expo_buf_release(&render_buf);
    vg_expo_buf_init(&render_buf, 1 << 20);
    assert_int_equal(vg_registry_render(r, fmt, &render_buf), 0);
    assert_non_null(render_buf.data);
    return render_buf.data;
}

static void assert_contains(const char *text, const char *want)
{
    if (!strstr(text, want)) {
        fprintf(stderr, "expected to find:\n%s\nin:\n%s\n", want, text);
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

/* A small registry with each type; the golden texts below are its exposition. */
static void build_small(struct vg_registry *r)
{
    static const char *const labels[] = {"model", "code", NULL};
    static const double bounds[] = {0.005, 0.5, 1, 2.5};
    struct vg_family *req, *temp, *lat;
    struct vg_counter *c;
    struct vg_gauge *g;
    struct vg_histogram *h;
    assert_int_equal(vg_registry_init(r), 0);
    assert_int_equal(
        vg_counter_register(r, "app_requests_total", "Requests served.", labels, &req, NULL), 0);
    assert_int_equal(
        vg_gauge_register(r, "app_temperature_celsius", "Temperature.", NULL, &temp, NULL), 0);
    assert_int_equal(vg_histogram_register(r, "app_latency_seconds", "Latency.", NULL, bounds,
                                           N_ELEMS(bounds), &lat, NULL),
                     0);
    const char *const a[] = {"iris", "200"};
    const char *const b[] = {"wine", "500"};
    assert_int_equal(vg_counter_bind(req, a, &c), 0);
    vg_counter_add(c, 3);
    assert_int_equal(vg_counter_bind(req, b, &c), 0);
    vg_counter_inc(c);
    assert_int_equal(vg_gauge_bind(temp, NULL, &g), 0);
    vg_gauge_set(g, -12.25);
    assert_int_equal(vg_histogram_bind(lat, NULL, &h), 0);
    vg_histogram_observe(h, 0.005);
    vg_histogram_observe(h, 0.75);
    vg_histogram_observe(h, 3);
}

static const char golden_prometheus[] = "# HELP app_requests_total Requests served.\n"
                                        "# TYPE app_requests_total counter\n"
                                        "app_requests_total{model=\"iris\",code=\"200\"} 3\n"
                                        "app_requests_total{model=\"wine\",code=\"500\"} 1\n"
                                        "# HELP app_temperature_celsius Temperature.\n"
                                        "# TYPE app_temperature_celsius gauge\n"
                                        "app_temperature_celsius -12.25\n"
                                        "# HELP app_latency_seconds Latency.\n"
                                        "# TYPE app_latency_seconds histogram\n"
                                        "app_latency_seconds_bucket{le=\"0.005\"} 1\n"
                                        "app_latency_seconds_bucket{le=\"0.5\"} 1\n"
                                        "app_latency_seconds_bucket{le=\"1\"} 2\n"
                                        "app_latency_seconds_bucket{le=\"2.5\"} 2\n"
                                        "app_latency_seconds_bucket{le=\"+Inf\"} 3\n"
                                        "app_latency_seconds_sum 3.755\n"
                                        "app_latency_seconds_count 3\n";

static const char golden_openmetrics[] = "# HELP app_requests Requests served.\n"
                                         "# TYPE app_requests counter\n"
                                         "app_requests_total{model=\"iris\",code=\"200\"} 3\n"
                                         "app_requests_total{model=\"wine\",code=\"500\"} 1\n"
                                         "# HELP app_temperature_celsius Temperature.\n"
                                         "# TYPE app_temperature_celsius gauge\n"
                                         "app_temperature_celsius -12.25\n"
                                         "# HELP app_latency_seconds Latency.\n"
                                         "# TYPE app_latency_seconds histogram\n"
                                         "app_latency_seconds_bucket{le=\"0.005\"} 1\n"
                                         "app_latency_seconds_bucket{le=\"0.5\"} 1\n"
                                         "app_latency_seconds_bucket{le=\"1\"} 2\n"
                                         "app_latency_seconds_bucket{le=\"2.5\"} 2\n"
                                         "app_latency_seconds_bucket{le=\"+Inf\"} 3\n"
                                         "app_latency_seconds_sum 3.755\n"
                                         "app_latency_seconds_count 3\n"
                                         "# EOF\n";

static void test_golden(void **state)
{
    (void)state;
    struct vg_registry r;
    build_small(&r);
    assert_string_equal(render(&r, VG_EXPO_PROMETHEUS), golden_prometheus);
    assert_string_equal(render(&r, VG_EXPO_OPENMETRICS), golden_openmetrics);
    vg_registry_release(&r);
}

/* OpenMetrics structure: every line a descriptor, a sample of the family last described, or the
 * final # EOF; counters' families have no _total and their samples do. */
static void test_openmetrics_structure(void **state)
{
    (void)state;
    struct vg_registry r;
    build_small(&r);
    assert_int_equal(vg_registry_add_process_metrics(&r, NULL), 0);
    assert_int_equal(vg_registry_add_build_info(&r, "1.2.3", NULL, NULL), 0);
    char *text = strdup(render(&r, VG_EXPO_OPENMETRICS));
    size_t len = strlen(text);
    assert_true(len > 6 && strcmp(text + len - 6, "# EOF\n") == 0);
    char family[256] = "", type[32] = "";
    int eof_seen = 0, samples = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        assert_false(eof_seen);
        if (strcmp(line, "# EOF") == 0) {
            eof_seen = 1;
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%255s %31s", family, type), 2);
            if (strcmp(type, "counter") == 0)
                assert_null(strstr(family, "_total"));
        } else if (strncmp(line, "# HELP ", 7) == 0) {
            continue;
        } else {
            size_t n = strlen(family);
            assert_true(n > 0 && strncmp(line, family, n) == 0);
            const char *suffix = line + n;
            if (strcmp(type, "counter") == 0)
                assert_true(strncmp(suffix, "_total", 6) == 0);
            else if (strcmp(type, "histogram") == 0)
                assert_true(strncmp(suffix, "_bucket{", 8) == 0 ||
                            strncmp(suffix, "_sum", 4) == 0 || strncmp(suffix, "_count", 6) == 0);
            else
                assert_true(*suffix == ' ' || *suffix == '{');
            samples++;
        }
    }
    assert_true(eof_seen);
    assert_true(samples >= 10);
    free(text);
    vg_registry_release(&r);
}

static void test_escaping(void **state)
{
    (void)state;
    static const struct {
        const char *raw, *help_prometheus, *help_openmetrics, *label;
    } cases[] = {
        {"plain", "plain", "plain", "plain"},
        {"back\\slash", "back\\\\slash", "back\\\\slash", "back\\\\slash"},
        {"say \"hi\"", "say \"hi\"", "say \\\"hi\\\"", "say \\\"hi\\\""},
        {"two\nlines", "two\\nlines", "two\\nlines", "two\\nlines"},
        {"\\n is not a newline", "\\\\n is not a newline", "\\\\n is not a newline",
         "\\\\n is not a newline"},
        {"all \\ \" \n", "all \\\\ \" \\n", "all \\\\ \\\" \\n", "all \\\\ \\\" \\n"},
        {"caf\xc3\xa9", "caf\xc3\xa9", "caf\xc3\xa9", "caf\xc3\xa9"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct vg_registry r;
        struct vg_family *f;
        struct vg_gauge *g;
        static const char *const labels[] = {"v", NULL};
        char want[256];
        assert_int_equal(vg_registry_init(&r), 0);
        assert_int_equal(vg_gauge_register(&r, "m", cases[i].raw, labels, &f, NULL), 0);
        const char *values[] = {cases[i].raw};
        assert_int_equal(vg_gauge_bind(f, values, &g), 0);
        const char *text = render(&r, VG_EXPO_PROMETHEUS);
        snprintf(want, sizeof want, "# HELP m %s\n", cases[i].help_prometheus);
        assert_contains(text, want);
        snprintf(want, sizeof want, "\nm{v=\"%s\"} 0\n", cases[i].label);
        assert_contains(text, want);
        text = render(&r, VG_EXPO_OPENMETRICS);
        snprintf(want, sizeof want, "# HELP m %s\n", cases[i].help_openmetrics);
        assert_contains(text, want);
        snprintf(want, sizeof want, "\nm{v=\"%s\"} 0\n", cases[i].label);
        assert_contains(text, want);
        vg_registry_release(&r);
    }
}

static void test_format_double(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0, "0"},
        {1, "1"},
        {-1, "-1"},
        {0.005, "0.005"},
        {0.1, "0.1"},
        {2.5, "2.5"},
        {0.1 + 0.2, "0.30000000000000004"},
        {100000, "100000"},
        {123456, "123456"},
        {1e6, "1e+06"},
        {1234567, "1.234567e+06"},
        {0.0001, "0.0001"},
        {0.00001, "1e-05"},
        {1.5e300, "1.5e+300"},
        {-12.25, "-12.25"},
        {5e-324, "5e-324"},
        {NAN, "NaN"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char buf[40];
        vg_expo_format_double(buf, sizeof buf, cases[i].v);
        assert_string_equal(buf, cases[i].want);
        if (isfinite(cases[i].v))
            assert_true(strtod(buf, NULL) == cases[i].v);
    }
}

static void test_names(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *label; /* NULL: no labels */
        int ok;
    } cases[] = {
        {"good_name", NULL, 1},
        {"ns:sub_name", NULL, 1},
        {"_x", "_y", 1},
        {"Name9", "label9", 1},
        {"", NULL, 0},
        {"9starts_with_digit", NULL, 0},
        {"has-dash", NULL, 0},
        {"has space", NULL, 0},
        {"m", "has:colon", 0},
        {"m", "__reserved", 0},
        {"m", "9digit", 0},
        {"m", "", 0},
        {"caf\xc3\xa9", NULL, 0},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct vg_registry r;
        struct vg_family *f;
        struct vg_error err = {0};
        const char *labels[] = {cases[i].label, NULL};
        assert_int_equal(vg_registry_init(&r), 0);
        int rc = vg_gauge_register(&r, cases[i].name, "h", labels, &f, &err);
        if (cases[i].ok) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, -VG_EINVAL);
            assert_true(err.msg[0] != '\0');
        }
        vg_registry_release(&r);
    }

    /* duplicates, reserved le, counter names with and without _total, bounds */
    struct vg_registry r;
    struct vg_family *f;
    static const char *const dup[] = {"a", "a", NULL};
    static const char *const le[] = {"le", NULL};
    static const double unsorted[] = {1, 0.5};
    static const double with_nan[] = {0.5, NAN};
    static const double with_inf[] = {0.5, 1, INFINITY};
    assert_int_equal(vg_registry_init(&r), 0);
    assert_int_equal(vg_gauge_register(&r, "g", "h", dup, &f, NULL), -VG_EINVAL);
    assert_int_equal(vg_histogram_register(&r, "h", "h", le, NULL, 0, &f, NULL), -VG_EINVAL);
    assert_int_equal(vg_gauge_register(&r, "g", "h", le, &f, NULL), 0); /* le is fine on gauges */
    assert_int_equal(vg_gauge_register(&r, "g", "again", NULL, &f, NULL), -VG_EINVAL);
    struct vg_family *fc;
    struct vg_counter *c;
    assert_int_equal(vg_counter_register(&r, "c", "h", NULL, &fc, NULL), 0);
    assert_int_equal(vg_counter_bind(fc, NULL, &c), 0);
    assert_int_equal(vg_counter_register(&r, "c_total", "h", NULL, &f, NULL), -VG_EINVAL);
    assert_int_equal(vg_counter_register(&r, "_total", "h", NULL, &f, NULL), -VG_EINVAL);
    /* refused after the family was half built: its label array did not exist yet */
    static const char *const one_label[] = {"outcome", NULL};
    assert_int_equal(vg_counter_register(&r, "_total", "h", one_label, &f, NULL), -VG_EINVAL);
    assert_int_equal(vg_histogram_register(&r, "h1", "h", NULL, unsorted, 2, &f, NULL), -VG_EINVAL);
    assert_int_equal(vg_histogram_register(&r, "h2", "h", NULL, with_nan, 2, &f, NULL), -VG_EINVAL);
    assert_int_equal(vg_histogram_register(&r, "h3", "h", NULL, with_inf, 3, &f, NULL), 0);
    assert_int_equal(vg_counter_register(&r, "d", "h", NULL, &f, NULL), 0);
    assert_int_equal(vg_counter_bind(f, NULL, &c), 0);
    const char *text = render(&r, VG_EXPO_PROMETHEUS);
    assert_contains(text, "# TYPE c_total counter\n");
    assert_contains(text, "\nd_total 0\n");
    /* +Inf given explicitly is not doubled */
    struct vg_histogram *h;
    vg_registry_release(&r);
    assert_int_equal(vg_registry_init(&r), 0);
    assert_int_equal(vg_histogram_register(&r, "h3", "h", NULL, with_inf, 3, &f, NULL), 0);
    assert_int_equal(vg_histogram_bind(f, NULL, &h), 0);
    text = render(&r, VG_EXPO_PROMETHEUS);
    assert_lacks(text, "le=\"+Inf\"} 0\nh3_bucket{le=\"+Inf\"}");
    assert_contains(text, "h3_bucket{le=\"1\"} 0\nh3_bucket{le=\"+Inf\"} 0\nh3_sum 0\n");
    vg_registry_release(&r);
}

static void test_histogram_edges(void **state)
{
    (void)state;
    static const double bounds[] = {-1, 0, 1, 2.5};
    static const struct {
        double v;
        int bucket; /* index into bounds; 4 is +Inf */
    } cases[] = {
        {-INFINITY, 0}, {-2, 0},       {-1, 0},  {-0.999, 1},          {0, 1},
        {-0.0, 1},      {1e-300, 2},   {1, 2},   {nextafter(1, 2), 3}, {2.5, 3},
        {2.5000001, 4}, {INFINITY, 4}, {NAN, 4},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct vg_registry r;
        struct vg_family *f;
        struct vg_histogram *h;
        assert_int_equal(vg_registry_init(&r), 0);
        assert_int_equal(
            vg_histogram_register(&r, "h", "h", NULL, bounds, N_ELEMS(bounds), &f, NULL), 0);
        assert_int_equal(vg_histogram_bind(f, NULL, &h), 0);
        vg_histogram_observe(h, cases[i].v);
        const char *text = render(&r, VG_EXPO_PROMETHEUS);
        static const char *const le[] = {"-1", "0", "1", "2.5", "+Inf"};
        for (int b = 0; b < 5; b++) {
            char want[64];
            snprintf(want, sizeof want, "h_bucket{le=\"%s\"} %d\n", le[b],
                     b >= cases[i].bucket ? 1 : 0);
            assert_contains(text, want);
        }
        uint64_t count;
        double sum;
        vg_histogram_value(h, &count, &sum);
        assert_int_equal(count, 1);
        /* OpenMetrics: negative bounds, so no _sum / _count */
        text = render(&r, VG_EXPO_OPENMETRICS);
        assert_lacks(text, "h_sum");
        assert_lacks(text, "h_count");
        vg_registry_release(&r);
    }
}

struct worker {
    struct vg_counter *c;
    struct vg_gauge *g;
    struct vg_histogram *h;
    pthread_barrier_t *start;
};

#define THREADS 8
#define PER_THREAD 100000

static void *hammer(void *arg)
{
    struct worker *w = arg;
    pthread_barrier_wait(w->start);
    for (int i = 0; i < PER_THREAD; i++) {
        vg_counter_inc(w->c);
        vg_gauge_inc(w->g);
        vg_histogram_observe(w->h, (i & 1) ? 0.5 : 2); /* exact in binary: the sum is exact */
    }
    return NULL;
}

static void test_concurrent_updates(void **state)
{
    (void)state;
    struct vg_registry r;
    struct vg_family *fc, *fg, *fh;
    static const double bounds[] = {1};
    struct worker w;
    pthread_barrier_t start;
    pthread_t tid[THREADS];
    assert_int_equal(vg_registry_init(&r), 0);
    assert_int_equal(vg_counter_register(&r, "c_total", "c", NULL, &fc, NULL), 0);
    assert_int_equal(vg_gauge_register(&r, "g", "g", NULL, &fg, NULL), 0);
    assert_int_equal(vg_histogram_register(&r, "h", "h", NULL, bounds, 1, &fh, NULL), 0);
    assert_int_equal(vg_counter_bind(fc, NULL, &w.c), 0);
    assert_int_equal(vg_gauge_bind(fg, NULL, &w.g), 0);
    assert_int_equal(vg_histogram_bind(fh, NULL, &w.h), 0);
    pthread_barrier_init(&start, NULL, THREADS);
    w.start = &start;
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&tid[t], NULL, hammer, &w), 0);
    /* scrapes while the workers run: must not disturb the totals */
    for (int i = 0; i < 20; i++)
        render(&r, VG_EXPO_PROMETHEUS);
    for (int t = 0; t < THREADS; t++)
        pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&start);

    const uint64_t n = (uint64_t)THREADS * PER_THREAD;
    assert_int_equal(vg_counter_value(w.c), n);
    assert_true(vg_gauge_value(w.g) == (double)n);
    uint64_t count;
    double sum;
    vg_histogram_value(w.h, &count, &sum);
    assert_int_equal(count, n);
    assert_true(sum == (double)n / 2 * 0.5 + (double)n / 2 * 2);
    const char *text = render(&r, VG_EXPO_PROMETHEUS);
    assert_contains(text, "\nc_total 800000\n");
    assert_contains(text, "\ng 800000\n");
    assert_contains(text, "h_bucket{le=\"1\"} 400000\nh_bucket{le=\"+Inf\"} 800000\n"
                          "h_sum 1e+06\nh_count 800000\n");
    vg_registry_release(&r);
}

static double forty_two(void *arg)
{
    (void)arg;
    return 42;
}

static void test_bind(void **state)
{
    (void)state;
    struct vg_registry r;
    struct vg_family *f, *fg, *fnl;
    static const char *const labels[] = {"model", "version", NULL};
    struct vg_counter *a, *b, *c;
    assert_int_equal(vg_registry_init(&r), 0);
    assert_int_equal(vg_counter_register(&r, "x_total", "x", labels, &f, NULL), 0);
    const char *const v1[] = {"iris", "1"};
    char model[] = "iris", version[] = "1"; /* other storage, same text */
    const char *const v1_copy[] = {model, version};
    const char *const v2[] = {"iris", "2"};
    assert_int_equal(vg_counter_bind(f, v1, &a), 0);
    assert_int_equal(vg_counter_bind(f, v1_copy, &b), 0);
    assert_ptr_equal(a, b);
    assert_int_equal(vg_counter_bind(f, v2, &c), 0);
    assert_ptr_not_equal(a, c);
    /* label values are copied */
    model[0] = 'X';
    assert_int_equal(vg_counter_bind(f, v1, &b), 0);
    assert_ptr_equal(a, b);
    /* wrong type, missing values */
    struct vg_gauge *g;
    assert_int_equal(vg_gauge_bind(f, v1, &g), -VG_EINVAL);
    const char *const missing[] = {"iris", NULL};
    assert_int_equal(vg_counter_bind(f, missing, &b), -VG_EINVAL);
    assert_int_equal(vg_counter_bind(f, NULL, &b), -VG_EINVAL);
    /* callbacks: one per label set, never shared with a plain bind */
    assert_int_equal(vg_gauge_register(&r, "y", "y", labels, &fg, NULL), 0);
    assert_int_equal(vg_gauge_func(fg, v1, forty_two, NULL), 0);
    assert_int_equal(vg_gauge_func(fg, v1, forty_two, NULL), -VG_EINVAL);
    assert_int_equal(vg_gauge_bind(fg, v1, &g), -VG_EINVAL);
    assert_int_equal(vg_gauge_func(fg, v2, NULL, NULL), -VG_EINVAL);
    /* no labels: one child */
    struct vg_gauge *g1, *g2;
    assert_int_equal(vg_gauge_register(&r, "z", "z", NULL, &fnl, NULL), 0);
    assert_int_equal(vg_gauge_bind(fnl, NULL, &g1), 0);
    assert_int_equal(vg_gauge_bind(fnl, NULL, &g2), 0);
    assert_ptr_equal(g1, g2);
    vg_counter_add(a, 7);
    const char *text = render(&r, VG_EXPO_PROMETHEUS);
    assert_contains(text, "x_total{model=\"iris\",version=\"1\"} 7\n");
    assert_contains(text, "x_total{model=\"iris\",version=\"2\"} 0\n");
    assert_contains(text, "y{model=\"iris\",version=\"1\"} 42\n");
    vg_registry_release(&r);
}

static void test_remove(void **state)
{
    (void)state;
    struct vg_registry r;
    struct vg_family *f, *fh, *other;
    static const char *const labels[] = {"model", "version", NULL};
    static const char *const model_only[] = {"model", NULL};
    static const double bounds[] = {1};
    struct vg_counter *a, *b, *again;
    struct vg_histogram *h;
    struct vg_gauge *g;
    assert_int_equal(vg_registry_init(&r), 0);
    assert_int_equal(vg_counter_register(&r, "x_total", "x", labels, &f, NULL), 0);
    assert_int_equal(vg_histogram_register(&r, "h", "h", labels, bounds, 1, &fh, NULL), 0);
    assert_int_equal(vg_gauge_register(&r, "m", "m", model_only, &other, NULL), 0);
    const char *const v1[] = {"iris", "1"};
    const char *const v2[] = {"iris", "2"};
    assert_int_equal(vg_counter_bind(f, v1, &a), 0);
    assert_int_equal(vg_counter_bind(f, v2, &b), 0);
    assert_int_equal(vg_histogram_bind(fh, v1, &h), 0);
    assert_int_equal(vg_gauge_bind(other, v1, &g), 0);
    vg_counter_add(a, 5);
    vg_counter_add(b, 6);

    vg_counter_remove(b);
    vg_counter_inc(b); /* harmless after removal */
    const char *text = render(&r, VG_EXPO_PROMETHEUS);
    assert_contains(text, "x_total{model=\"iris\",version=\"1\"} 5\n");
    assert_lacks(text, "version=\"2\"");
    /* binding removed labels again: a new series from zero */
    assert_int_equal(vg_counter_bind(f, v2, &again), 0);
    assert_ptr_not_equal(again, b);
    assert_contains(render(&r, VG_EXPO_PROMETHEUS), "x_total{model=\"iris\",version=\"2\"} 0\n");

    /* a model version unloads: every series with model=iris,version=1 goes; the gauge family has
     * no version label and is untouched */
    const char *const names[] = {"model", "version"};
    assert_int_equal(vg_registry_remove_matching(&r, names, v1, 2), 2);
    text = render(&r, VG_EXPO_PROMETHEUS);
    assert_lacks(text, "version=\"1\"");
    assert_lacks(text, "# TYPE h histogram"); /* a family with no visible series is omitted */
    assert_contains(text, "m{model=\"iris\"} 0\n");
    assert_contains(text, "x_total{model=\"iris\",version=\"2\"} 0\n");
    assert_int_equal(vg_registry_remove_matching(&r, names, v1, 2), 0);
    vg_histogram_observe(h, 3); /* still a valid handle */
    vg_gauge_remove(g);
    vg_histogram_remove(h);
    assert_lacks(render(&r, VG_EXPO_OPENMETRICS), "# TYPE m gauge");
    vg_registry_release(&r);
}

static void test_buffer_cap(void **state)
{
    (void)state;
    struct vg_registry r;
    struct vg_expo_buf buf;
    build_small(&r);
    size_t need = strlen(golden_prometheus);
    /* exactly enough, then one byte short, then tiny, then enough again */
    vg_expo_buf_init(&buf, need);
    assert_int_equal(vg_registry_render(&r, VG_EXPO_PROMETHEUS, &buf), 0);
    assert_string_equal(buf.data, golden_prometheus);
    assert_true(buf.alloc <= need + 1);
    vg_expo_buf_release(&buf);
    vg_expo_buf_init(&buf, need - 1);
    assert_int_equal(vg_registry_render(&r, VG_EXPO_PROMETHEUS, &buf), -VG_ENOMEM);
    assert_int_equal(buf.len, 0);
    assert_true(buf.data == NULL || buf.data[0] == '\0');
    assert_true(buf.alloc <= need);
    buf.max = 10;
    assert_int_equal(vg_registry_render(&r, VG_EXPO_PROMETHEUS, &buf), -VG_ENOMEM);
    assert_int_equal(buf.len, 0);
    buf.max = 1 << 16;
    assert_int_equal(vg_registry_render(&r, VG_EXPO_PROMETHEUS, &buf), 0);
    assert_string_equal(buf.data, golden_prometheus);
    /* OpenMetrics: the # EOF line counts against the cap */
    buf.max = strlen(golden_openmetrics) - 1;
    assert_int_equal(vg_registry_render(&r, VG_EXPO_OPENMETRICS, &buf), -VG_ENOMEM);
    assert_int_equal(buf.len, 0);
    vg_expo_buf_release(&buf);
    vg_registry_release(&r);
}

static void test_negotiate(void **state)
{
    (void)state;
    static const struct {
        const char *accept;
        enum vg_expo_format want;
    } cases[] = {
        {NULL, VG_EXPO_PROMETHEUS},
        {"", VG_EXPO_PROMETHEUS},
        {"*/*", VG_EXPO_PROMETHEUS},
        {"text/plain", VG_EXPO_PROMETHEUS},
        {"text/plain;version=0.0.4", VG_EXPO_PROMETHEUS},
        {"application/json", VG_EXPO_PROMETHEUS},
        {"application/openmetrics-text", VG_EXPO_OPENMETRICS},
        {"Application/OpenMetrics-Text; version=1.0.0", VG_EXPO_OPENMETRICS},
        /* what Prometheus 2.x sends */
        {"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
         "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
         VG_EXPO_OPENMETRICS},
        {"application/openmetrics-text;q=0", VG_EXPO_PROMETHEUS},
        {"text/plain;q=0.9, application/openmetrics-text;q=0.5", VG_EXPO_PROMETHEUS},
        {"text/plain;q=0.5 , application/openmetrics-text ; q=0.9", VG_EXPO_OPENMETRICS},
        {"text/plain, application/openmetrics-text", VG_EXPO_OPENMETRICS},
        {"application/openmetrics-textile", VG_EXPO_PROMETHEUS},
        {"application/openmetrics-text;q=junk", VG_EXPO_PROMETHEUS},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const char *ct = NULL;
        enum vg_expo_format got = vg_expo_negotiate(cases[i].accept, &ct);
        if (got != cases[i].want)
            fprintf(stderr, "Accept: %s\n", cases[i].accept ? cases[i].accept : "(null)");
        assert_int_equal(got, cases[i].want);
        assert_string_equal(ct, got == VG_EXPO_OPENMETRICS
                                    ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                    : "text/plain; version=0.0.4; charset=utf-8");
    }
}

static void test_process_metrics(void **state)
{
    (void)state;
    struct vg_registry r;
    assert_int_equal(vg_registry_init(&r), 0);
    assert_int_equal(vg_registry_add_process_metrics(&r, NULL), 0);
    assert_int_equal(vg_registry_add_build_info(&r, "1.2.3", "deadbeef", NULL), 0);
    assert_int_equal(vg_registry_add_process_metrics(&r, NULL), -VG_EINVAL); /* names taken */
    const char *text = render(&r, VG_EXPO_PROMETHEUS);
    static const char *const names[] = {
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_virtual_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
    };
    for (size_t i = 0; i < N_ELEMS(names); i++) {
        char want[80];
        snprintf(want, sizeof want, "\n%s", names[i]);
        const char *p = strstr(text, want);
        assert_non_null(p);
        double v = strtod(p + strlen(want), NULL);
        if (strstr(names[i], "cpu"))
            assert_true(v >= 0);
        else
            assert_true(v > 0);
    }
    const char *p = strstr(text, "\nprocess_start_time_seconds ");
    double start = strtod(p + strlen("\nprocess_start_time_seconds "), NULL);
    assert_true(start > 1.6e9 && start < 4e9);
    assert_contains(text, "vigil_build_info{version=\"1.2.3\",commit=\"deadbeef\"} 1\n");
    assert_contains(render(&r, VG_EXPO_OPENMETRICS), "# TYPE process_cpu_seconds counter\n");
    vg_registry_release(&r);
}

static int free_render_buffer(void **state)
{
    (void)state;
    vg_expo_buf_release(&render_buf);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_openmetrics_structure),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_format_double),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_histogram_edges),
        cmocka_unit_test(test_concurrent_updates),
        cmocka_unit_test(test_bind),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_buffer_cap),
        cmocka_unit_test(test_negotiate),
        cmocka_unit_test(test_process_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, free_render_buffer);
}
