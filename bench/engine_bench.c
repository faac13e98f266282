/*
 * engine_bench: times vigil's engine on one model, the C half of bench/engine/run.sh (whose
 * node script ort_bench.js measures ONNX Runtime the same way).
 *
 *   engine_bench MODEL.onnx BATCH.npy [--single N] [--warmup N] [--batch-runs N]
 *                [--out-dir DIR --name NAME]
 *
 * BATCH.npy is a float32 [rows, ...] tensor bound to the model's only input: [rows, features] for
 * the tabular models, [rows, 3, 224, 224] images for the vision ones (bench/engine/README.md).
 * - batch: the whole tensor in one run; one warm-up run, then --batch-runs timed runs; reports the
 *   median run time divided by the row count (per-row time in a batch). --batch-runs 0 skips it
 *   (the vision models are declared with batch 1).
 * - single row: [1, ...] views of the first 256 rows in turn (so tree ensembles do not see
 *   one path over and over); --warmup untimed runs, then --single timed runs, each timed alone
 *   with CLOCK_MONOTONIC; reports the median, the mean and the 90th percentile. The time covers
 *   binding the input and running, as ONNX Runtime's session.run does.
 * Verification (SQLite speedtest1 --verify's spirit: a benchmark that checks what it measures):
 * each single-row result is compared with the same row of the batch result (the plans differ, the
 * answers must not), and with --out-dir the batch outputs are written to DIR/NAME.ours.<output>.npy
 * so run.sh can compare them with ONNX Runtime's. Without a batch run, the single-row outputs of
 * the first rows (at most 256) are stacked and written there instead.
 * Output: one JSON object on stdout. Exit 1 on any error or mismatch.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "vigil/engine.h"
#include "vigil/tensor_io.h"

#include "bench_clock.h"

#define SINGLE_ROWS 256 /* distinct rows cycled through by the single-row loop */

/* q-quantile of v (sorted in place), nearest rank. */
static double quantile(double *v, int n, double q)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    int k = (int)(q * (n - 1) + 0.5);
    return v[k];
}

static int die(const char *what, int rc, const struct vg_error *err)
{
    fprintf(stderr, "engine_bench: %s: %s\n", what,
            err && err->msg[0] ? err->msg : vg_strerror(rc));
    return 1;
}

/* Writes output j to OUT_DIR/NAME.ours.<output name>.npy (what report.py compares). */
static int write_output(const char *out_dir, const char *name, const struct vg_model *m, int j,
                        const struct vg_tensor *t)
{
    char path[4096];
    struct vg_error err = {0};
    snprintf(path, sizeof(path), "%s/%s.ours.%s.npy", out_dir, name, vg_model_output(m, j)->name);
    int rc = vg_tensor_write_npy(path, t, &err);
    return rc ? die(path, rc, &err) : 0;
}

/* A private copy of an output (the session's is overwritten by the next run). */
static int copy_output(const struct vg_tensor *src, struct vg_tensor *dst)
{
    *dst = *src;
    size_t bytes = (size_t)vg_tensor_numel(src) * vg_dtype_size(src->dtype);
    dst->data = malloc(bytes ? bytes : 1);
    if (!dst->data)
        return -1;
    memcpy(dst->data, src->data, bytes);
    return 0;
}

/* Copies single-row output t into row k of *dst, a stack of n_rows such outputs
 * ([n_rows, ...t's dims after the first]), allocated on the first row. */
static int stack_output(const struct vg_tensor *t, int64_t k, int64_t n_rows,
                        struct vg_tensor *dst)
{
    if (t->dtype == VG_DT_STRING || t->rank < 1)
        return -1;
    size_t bytes = (size_t)vg_tensor_numel(t) * vg_dtype_size(t->dtype);
    if (k == 0) {
        *dst = *t;
        dst->map_keys = NULL;
        dst->dims[0] = t->dims[0] * n_rows;
        dst->data = malloc(bytes * (size_t)n_rows + 1);
        if (!dst->data)
            return -1;
    } else if (dst->dtype != t->dtype || (int64_t)bytes * n_rows !=
               vg_tensor_numel(dst) * (int64_t)vg_dtype_size(dst->dtype)) {
        return -1;
    }
    memcpy((char *)dst->data + bytes * (size_t)k, t->data, bytes);
    return 0;
}

int main(int argc, char **argv)
{
    const char *model_path = NULL, *batch_path = NULL, *out_dir = NULL, *name = "model";
    int n_single = 20000, n_warmup = 2000, n_batch = 5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "--single") && has_value)
            n_single = atoi(argv[++i]);
        else if (!strcmp(a, "--warmup") && has_value)
            n_warmup = atoi(argv[++i]);
        else if (!strcmp(a, "--batch-runs") && has_value)
            n_batch = atoi(argv[++i]);
        else if (!strcmp(a, "--out-dir") && has_value)
            out_dir = argv[++i];
        else if (!strcmp(a, "--name") && has_value)
            name = argv[++i];
        else if (a[0] != '-' && !model_path)
            model_path = a;
        else if (a[0] != '-' && !batch_path)
            batch_path = a;
        else {
            fprintf(stderr, "usage: engine_bench MODEL.onnx BATCH.npy [--single N] [--warmup N] "
                            "[--batch-runs N] [--out-dir DIR --name NAME]\n");
            return 2;
        }
    }
    if (!model_path || !batch_path || n_single < 1 || n_warmup < 0 || n_batch < 0) {
        fprintf(stderr, "engine_bench: need MODEL.onnx BATCH.npy and positive run counts\n");
        return 2;
    }

    struct vg_error err = {0};
    struct vg_model *m = NULL;
    struct vg_tensor batch = {0};
    int rc = vg_engine_load_file(model_path, &m, &err);
    if (rc)
        return die(model_path, rc, &err);
    rc = vg_tensor_read_npy(batch_path, &batch, &err);
    if (rc)
        return die(batch_path, rc, &err);
    if (vg_model_n_inputs(m) != 1 || batch.dtype != VG_DT_FLOAT || batch.rank < 2 ||
        batch.dims[0] < 1) {
        fprintf(stderr, "engine_bench: want a one-input model and a float32 [rows, ...] "
                        "batch\n");
        return 1;
    }
    /* features: elements per row (the row's shape is dims[1..]) */
    int64_t rows = batch.dims[0], features = vg_tensor_numel(&batch) / rows;
    int n_out = vg_model_n_outputs(m);
    struct vg_session *s = vg_session_new(m);
    double *times = malloc(sizeof(double) * (size_t)(n_single > n_batch ? n_single : n_batch));
    int64_t n_rows = rows < SINGLE_ROWS ? rows : SINGLE_ROWS;
    struct vg_tensor *batch_out = calloc((size_t)n_out, sizeof(*batch_out));
    if (!s || !times || !batch_out) {
        fprintf(stderr, "engine_bench: out of memory\n");
        return 1;
    }

    /* ---- batch ---- */
    double batch_row_us = -1.0;
    size_t arena_batch = 0;
    for (int r = n_batch ? -1 : 0; r < n_batch; r++) {
        double t0 = now_us();
        rc = vg_session_set_input(s, 0, &batch, &err);
        if (!rc)
            rc = vg_session_run(s, &err);
        double t1 = now_us();
        if (rc)
            return die("batch run", rc, &err);
        if (r >= 0)
            times[r] = t1 - t0;
    }
    if (n_batch) {
        batch_row_us = quantile(times, n_batch, 0.5) / (double)rows;
        arena_batch = vg_session_arena_bytes(s);
    }
    for (int j = 0; j < n_out && n_batch; j++) {
        const struct vg_tensor *t = vg_session_output(s, j);
        if (!t || t->dtype == VG_DT_STRING || copy_output(t, &batch_out[j])) {
            fprintf(stderr, "engine_bench: output %d missing, a string, or out of memory\n", j);
            return 1;
        }
        batch_out[j].map_keys = NULL;
        if (out_dir && write_output(out_dir, name, m, j, &batch_out[j]))
            return 1;
    }

    /* ---- single row ---- */
    struct vg_tensor row = batch;
    row.dims[0] = 1;
    for (int r = -n_warmup; r < n_single; r++) {
        int64_t k = (r + n_warmup) % n_rows;
        row.data = (float *)batch.data + k * features;
        double t0 = now_us();
        rc = vg_session_set_input(s, 0, &row, &err);
        if (!rc)
            rc = vg_session_run(s, &err);
        double t1 = now_us();
        if (rc)
            return die("single-row run", rc, &err);
        if (r >= 0)
            times[r] = t1 - t0;
    }
    double single_mean = 0.0;
    for (int r = 0; r < n_single; r++)
        single_mean += times[r] / n_single;
    double single_p90 = quantile(times, n_single, 0.9);
    double single_us = quantile(times, n_single, 0.5);

    /* ---- verify: each single-row answer equals its row of the batch answer (or, without a
     * batch run, is collected into the stacked output written for run.sh) ---- */
    int mismatches = 0;
    for (int64_t k = 0; k < n_rows; k++) {
        row.data = (float *)batch.data + k * features;
        rc = vg_session_set_input(s, 0, &row, &err);
        if (!rc)
            rc = vg_session_run(s, &err);
        if (rc)
            return die("verification run", rc, &err);
        for (int j = 0; j < n_out; j++) {
            const struct vg_tensor *t = vg_session_output(s, j);
            int64_t per_row = vg_tensor_numel(t);
            if (!n_batch) {
                if (stack_output(t, k, n_rows, &batch_out[j])) {
                    fprintf(stderr, "engine_bench: output %d: a string, a size change, or out of "
                                    "memory\n", j);
                    return 1;
                }
                continue;
            }
            if (per_row * rows != vg_tensor_numel(&batch_out[j])) {
                fprintf(stderr,
                        "engine_bench: output %d: single-row size %lld does not match "
                        "the batch\n",
                        j, (long long)per_row);
                return 1;
            }
            for (int64_t e = 0; e < per_row; e++) {
                double a = vg_tensor_get_f64(t, e);
                double b = vg_tensor_get_f64(&batch_out[j], k * per_row + e);
                /* Batched and single-row matrix products may sum in different orders. */
                if (fabs(a - b) > 1e-5 * fmax(1.0, fabs(b)) && mismatches++ < 5)
                    fprintf(stderr,
                            "engine_bench: row %lld output %d[%lld]: single %.9g, "
                            "batch %.9g\n",
                            (long long)k, j, (long long)e, a, b);
            }
        }
    }

    if (!n_batch && out_dir) {
        for (int j = 0; j < n_out; j++)
            if (write_output(out_dir, name, m, j, &batch_out[j]))
                return 1;
    }
    if (!n_batch)
        arena_batch = vg_session_arena_bytes(s);

    char batch_field[64] = "null";
    if (n_batch)
        snprintf(batch_field, sizeof(batch_field), "%.5f", batch_row_us);
    printf("{\"engine\": \"vigil\", \"model\": \"%s\", \"rows\": %lld, \"single_us\": %.4f, "
           "\"single_us_p90\": %.4f, \"single_us_mean\": %.4f, \"batch_row_us\": %s, "
           "\"single_runs\": %d, \"warmup\": %d, \"batch_runs\": %d, \"arena_bytes\": %zu, "
           "\"exec_nodes\": %d, \"verify_mismatches\": %d, \"blas_core\": \"%s\"}\n",
           name, (long long)rows, single_us, single_p90, single_mean, batch_field, n_single,
           n_warmup, n_batch, arena_batch, vg_model_n_exec_nodes(m), mismatches,
           openblas_get_corename());

    for (int j = 0; j < n_out; j++)
        free(batch_out[j].data);
    free(batch_out);
    free(times);
    vg_session_free(s);
    vg_tensor_free_data(&batch);
    vg_model_free(m);
    return mismatches ? 1 : 0;
}
