/*
 * drift_bench: the cost of the drift hook on the request path, vg_drift_observe, in nanoseconds
 * per call, for the shapes the server sees: one row of 4 features and 3 classes (the iris model,
 * the /predict request of bench/http), and batches. The figure to compare with a request's
 * whole server CPU time (bench/http/quality_cost.sh prints it, ~15-20 us on the reference
 * machine). Threads each observe on their own shard, as the server's workers do; the result is
 * checked (the window holds every row).
 *
 *   drift_bench [--threads N] [--calls N]
 *
 * Output: one line per shape, "rows=R threads=T ns_per_call=X ns_per_row=Y" (CPU time of the
 * calling thread, CLOCK_THREAD_CPUTIME_ID). Exit 1 on a wrong count.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vigil/drift.h"

struct job {
    struct vg_drift *d;
    const float *x;
    const int32_t *classes;
    int rows;
    long calls;
    double cpu_s; /* out: the thread's CPU time for its calls */
};

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *run(void *arg)
{
    struct job *j = arg;
    double t0 = thread_cpu_s();
    for (long i = 0; i < j->calls; i++)
        vg_drift_observe(j->d, j->x + (i % 64) * 4, j->rows, j->classes);
    j->cpu_s = thread_cpu_s() - t0;
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 1;
    long calls = 2000000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--calls"))
            calls = atol(argv[i + 1]);
    }
    if (threads < 1 || threads > 16 || calls < 1) {
        fprintf(stderr, "usage: drift_bench [--threads 1..16] [--calls N]\n");
        return 2;
    }
    /* The iris reference (models/iris/1/config.json), rounded. */
    static const double edges[4][VG_DRIFT_REF_BINS + 1] = {
        {4.3, 4.9, 5.0, 5.27, 5.6, 5.7, 6.0, 6.3, 6.5, 6.91, 7.9},
        {2.2, 2.5, 2.7, 2.8, 3.0, 3.0, 3.1, 3.2, 3.4, 3.7, 4.4},
        {1.1, 1.4, 1.5, 1.7, 3.9, 4.3, 4.6, 5.0, 5.22, 5.81, 6.9},
        {0.1, 0.2, 0.2, 0.4, 1.16, 1.3, 1.5, 1.73, 1.9, 2.21, 2.5},
    };
    static const char *const names[4] = {"sepal_length", "sepal_width", "petal_length",
                                         "petal_width"};
    struct vg_drift_feature_ref feats[4];
    for (int f = 0; f < 4; f++) {
        memset(&feats[f], 0, sizeof feats[f]);
        feats[f].name = names[f];
        memcpy(feats[f].edges, edges[f], sizeof edges[f]);
        for (int b = 0; b < VG_DRIFT_REF_BINS; b++)
            feats[f].shares[b] = 0.1;
    }
    double class_shares[3] = {1 / 3.0, 1 / 3.0, 1 / 3.0};
    /* 64 + 100 rows of values spread over the range, so the binary search takes every path. */
    enum { ROWS = 164 };
    static float x[ROWS * 4];
    static int32_t classes[ROWS];
    unsigned seed = 1;
    for (int i = 0; i < ROWS * 4; i++) {
        seed = seed * 1103515245u + 12345u;
        int f = i % 4;
        x[i] = (float)(edges[f][0] - 0.2 +
                       (edges[f][10] - edges[f][0] + 0.4) * ((seed >> 8) & 0xffff) / 65536.0);
    }
    for (int i = 0; i < ROWS; i++)
        classes[i] = i % 3;

    static const int shapes[] = {1, 10, 100};
    int rc = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int rows = shapes[s];
        long n = calls / rows;
        struct vg_registry reg;
        struct vg_drift_families fam;
        struct vg_drift *d;
        struct vg_error err = {0};
        struct vg_drift_config c = {.model = "iris",
                                    .version = "1",
                                    .n_features = 4,
                                    .features = feats,
                                    .n_classes = 3,
                                    .class_shares = class_shares,
                                    .window_seconds = 600,
                                    .shards = threads};
        if (vg_registry_init(&reg) || vg_drift_register(&reg, &fam, &err) ||
            vg_drift_new(&c, &fam, &d, &err)) {
            fprintf(stderr, "drift_bench: %s\n", err.msg);
            return 1;
        }
        pthread_t tid[16];
        struct job jobs[16];
        double secs = 0;
        for (int t = 0; t < threads; t++) {
            jobs[t] = (struct job){d, x, classes, rows, n, 0};
            pthread_create(&tid[t], NULL, run, &jobs[t]);
        }
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            secs += jobs[t].cpu_s / threads;
        }
        vg_drift_collect(d);
        uint64_t want = (uint64_t)n * rows * threads;
        if (vg_drift_window_rows(d) != want) {
            fprintf(stderr, "drift_bench: window holds %llu rows, expected %llu\n",
                    (unsigned long long)vg_drift_window_rows(d), (unsigned long long)want);
            rc = 1;
        }
        /* CPU time per call (thread CPU clocks, so other processes on the machine matter less),
         * averaged over the threads. */
        printf("rows=%d threads=%d ns_per_call=%.1f ns_per_row=%.1f\n", rows, threads,
               secs * 1e9 / (double)n, secs * 1e9 / ((double)n * rows));
        vg_registry_release(&reg);
    }
    return rc;
}
