/*
 * Writes a registry holding every metric type to files, in both exposition formats:
 *   monitor_expo_demo OUT.prom OUT.om
 * Labels and help need escaping (backslash, double quote, newline, UTF-8), some series are
 * removed, and the process and build metrics are included. tests/cmake/monitor.cmake feeds the
 * 0.0.4 file to `promtool check metrics`.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "vigil/monitor.h"

#define CHECK(call)                                                                                \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != 0) {                                                                            \
            fprintf(stderr, "monitor_expo_demo: %s failed (%d): %s\n", #call, rc_, err.msg);       \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

static int write_file(const char *path, const struct vg_expo_buf *b)
{
    FILE *fp = fopen(path, "w");
    if (!fp)
        return -1;
    size_t n = fwrite(b->data, 1, b->len, fp);
    return fclose(fp) == 0 && n == b->len ? 0 : -1;
}

static double loaded_state(void *arg)
{
    return *(const int *)arg;
}

int main(int argc, char **argv)
{
    struct vg_registry r;
    struct vg_error err = {0};
    struct vg_expo_buf buf;
    int status = 1;
    if (argc != 3) {
        fprintf(stderr, "usage: monitor_expo_demo OUT.prom OUT.om\n");
        return 2;
    }
    if (vg_registry_init(&r) != 0)
        return 1;
    vg_expo_buf_init(&buf, 1 << 20);

    static const char *const http_labels[] = {"method", "route", "code", NULL};
    static const char *const model_labels[] = {"model", "version", NULL};
    static const char *const odd_labels[] = {"path", NULL};
    static const double size_bounds[] = {100, 1000, 10000, 100000, 1e6};
    static const double duration_bounds[] = VG_HISTOGRAM_DEFAULT_BOUNDS;
    struct vg_family *requests, *in_flight, *duration, *sizes, *accuracy, *odd, *loaded;
    struct vg_counter *ok, *bad;
    struct vg_gauge *g, *acc;
    struct vg_histogram *h, *hs;
    static int iris_loaded = 1;

    CHECK(vg_counter_register(&r, "vigil_http_requests_total", "HTTP requests by route and code.",
                              http_labels, &requests, &err));
    CHECK(vg_gauge_register(&r, "vigil_http_requests_in_flight", "Requests being served.", NULL,
                            &in_flight, &err));
    CHECK(vg_histogram_register(
        &r, "vigil_http_request_duration_seconds", "Request duration in seconds.", model_labels,
        duration_bounds, sizeof duration_bounds / sizeof duration_bounds[0], &duration, &err));
    CHECK(vg_histogram_register(&r, "vigil_http_request_size_bytes", "Request body size in bytes.",
                                NULL, size_bounds, 5, &sizes, &err));
    CHECK(vg_gauge_register(&r, "vigil_model_accuracy",
                            "Holdout accuracy from config.json; \"quoted\", back\\slash,\nnewline.",
                            model_labels, &accuracy, &err));
    CHECK(vg_counter_register(&r, "vigil_escape_test", "Label values that need escaping.",
                              odd_labels, &odd, &err));
    CHECK(vg_gauge_register(&r, "vigil_model_loaded", "1 when the model version is loaded.",
                            model_labels, &loaded, &err));

    const char *const get_predict_200[] = {"POST", "/models/{name}/predict", "200"};
    const char *const get_predict_400[] = {"POST", "/models/{name}/predict", "400"};
    CHECK(vg_counter_bind(requests, get_predict_200, &ok));
    CHECK(vg_counter_bind(requests, get_predict_400, &bad));
    vg_counter_add(ok, 41);
    vg_counter_inc(ok);
    vg_counter_inc(bad);
    CHECK(vg_gauge_bind(in_flight, NULL, &g));
    vg_gauge_inc(g);
    const char *const iris1[] = {"iris", "1"};
    const char *const iris2[] = {"iris", "2"};
    CHECK(vg_histogram_bind(duration, iris1, &h));
    vg_histogram_observe(h, 0.003);
    vg_histogram_observe(h, 0.1);
    vg_histogram_observe(h, 42);
    CHECK(vg_histogram_bind(duration, iris2, &h));
    vg_histogram_observe(h, 0.0004);
    CHECK(vg_histogram_bind(sizes, NULL, &hs));
    vg_histogram_observe(hs, 130);
    CHECK(vg_gauge_bind(accuracy, iris1, &acc));
    vg_gauge_set(acc, 0.9666666666666667);
    CHECK(vg_gauge_bind(accuracy, iris2, &acc));
    vg_gauge_set(acc, NAN);
    const char *const odd_values[][1] = {
        {"C:\\models\\iris"}, {"say \"hi\""}, {"two\nlines"}, {"caf\xc3\xa9 \xe2\x9c\x93"}};
    for (size_t i = 0; i < sizeof odd_values / sizeof odd_values[0]; i++) {
        struct vg_counter *c;
        CHECK(vg_counter_bind(odd, odd_values[i], &c));
        vg_counter_add(c, i + 1);
    }
    CHECK(vg_gauge_func(loaded, iris2, loaded_state, &iris_loaded));
    CHECK(vg_gauge_bind(loaded, iris1, &g));
    vg_gauge_set(g, 0);
    /* version 1 unloaded: every series labeled model=iris,version=1 disappears */
    const char *const names[] = {"model", "version"};
    if (vg_registry_remove_matching(&r, names, iris1, 2) != 3) {
        fprintf(stderr, "monitor_expo_demo: remove_matching hid the wrong number of series\n");
        goto out;
    }
    CHECK(vg_registry_add_process_metrics(&r, &err));
    CHECK(vg_registry_add_build_info(&r, "0.1.0", "abc123", &err));

    CHECK(vg_registry_render(&r, VG_EXPO_PROMETHEUS, &buf));
    if (write_file(argv[1], &buf) != 0) {
        perror(argv[1]);
        goto out;
    }
    CHECK(vg_registry_render(&r, VG_EXPO_OPENMETRICS, &buf));
    if (write_file(argv[2], &buf) != 0) {
        perror(argv[2]);
        goto out;
    }
    status = 0;
out:
    vg_expo_buf_release(&buf);
    vg_registry_release(&r);
    return status;
}
