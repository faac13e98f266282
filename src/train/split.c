/*
 * Train/holdout split (vg_split).
 *
 * Classification is stratified: the rows of each class are shuffled and round(n_class * test_size)
 * of them (rounding halves up) go to the holdout, but never the last one, so every class keeps at
 * least one training row. Regression shuffles all rows and holds out round(n * test_size), keeping
 * at least one training row. test_size 0 means no holdout. A tiny data set can give an empty
 * holdout even with test_size > 0; the caller sees n_test == 0.
 *
 * Both index lists are returned in ascending row order: which rows land where is decided by the
 * shuffle, and keeping file order afterwards makes the training input independent of how the
 * shuffle happened to order them.
 *
 * The generator is our own splitmix64 (a fixed, documented sequence) rather than rand(), so a seed
 * gives the same split on every platform and C library.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "vigil/train.h"

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) without modulo bias (rejection of the short last interval). */
static uint64_t uniform_below(uint64_t *state, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t r = splitmix64(state);
        if (r < limit)
            return r % n;
    }
}

static void shuffle(int32_t *a, int n, uint64_t *state)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)uniform_below(state, (uint64_t)i + 1);
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* How many of n rows go to the holdout, keeping at least one for training. */
static int holdout_count(int n, double test_size)
{
    int k = (int)floor(n * test_size + 0.5);
    if (k > n - 1)
        k = n - 1;
    return k < 0 ? 0 : k;
}

int vg_split(const struct vg_dataset *ds, double test_size, uint64_t seed, int32_t **train,
             int *n_train, int32_t **test, int *n_test, struct vg_error *err)
{
    int rc = 0;
    int32_t *tr = NULL, *te = NULL, *order = NULL;
    int32_t *class_start = NULL, *cursor = NULL;
    int ntr = 0, nte = 0;
    uint64_t state = seed;

    if (!ds || !train || !n_train || !test || !n_test) {
        rc = vg__err(err, VG_EINVAL, "vg_split: bad argument");
        goto out;
    }
    *train = *test = NULL;
    *n_train = *n_test = 0;
    if (!(test_size >= 0 && test_size < 1)) {
        rc = vg__err(err, VG_EINVAL, "test size %g is not in [0, 1)", test_size);
        goto out;
    }
    int n = ds->n_rows;
    if (n <= 0) {
        rc = vg__err(err, VG_EINVAL, "no rows to split");
        goto out;
    }
    int classify = ds->task == VG_TASK_CLASSIFICATION;
    if (classify && (ds->n_classes <= 0 || !ds->y_class)) {
        rc = vg__err(err, VG_EINVAL, "vg_split: classification data set without classes");
        goto out;
    }
    tr = malloc((size_t)n * sizeof *tr);
    te = malloc((size_t)n * sizeof *te);
    order = malloc((size_t)n * sizeof *order);
    if (!tr || !te || !order) {
        rc = vg__err(err, VG_ENOMEM, "out of memory splitting %d rows", n);
        goto out;
    }
    if (classify) {
        /* Counting sort of the rows by class, file order within a class. */
        int k = ds->n_classes;
        class_start = calloc((size_t)k + 1, sizeof *class_start);
        if (!class_start) {
            rc = vg__err(err, VG_ENOMEM, "out of memory splitting %d rows", n);
            goto out;
        }
        for (int i = 0; i < n; i++) {
            int c = ds->y_class[i];
            if (c < 0 || c >= k) {
                rc = vg__err(err, VG_EINVAL, "row %d: class index %d is not in [0, %d)", i, c, k);
                goto out;
            }
            class_start[c + 1]++;
        }
        for (int c = 0; c < k; c++)
            class_start[c + 1] += class_start[c];
        cursor = malloc((size_t)k * sizeof *cursor);
        if (!cursor) {
            rc = vg__err(err, VG_ENOMEM, "out of memory splitting %d rows", n);
            goto out;
        }
        memcpy(cursor, class_start, (size_t)k * sizeof *cursor);
        for (int i = 0; i < n; i++)
            order[cursor[ds->y_class[i]]++] = i;
        for (int c = 0; c < k; c++) {
            int32_t *rows = order + class_start[c];
            int nc = class_start[c + 1] - class_start[c];
            shuffle(rows, nc, &state);
            int h = holdout_count(nc, test_size);
            for (int i = 0; i < h; i++)
                te[nte++] = rows[i];
        }
        /* Everything not held out trains. */
        memset(order, 0, (size_t)n * sizeof *order);
        for (int i = 0; i < nte; i++)
            order[te[i]] = 1;
        for (int i = 0; i < n; i++)
            if (!order[i])
                tr[ntr++] = i;
    } else {
        for (int i = 0; i < n; i++)
            order[i] = i;
        shuffle(order, n, &state);
        int h = holdout_count(n, test_size);
        for (int i = 0; i < n; i++) {
            if (i < h)
                te[nte++] = order[i];
            else
                tr[ntr++] = order[i];
        }
    }
    qsort(tr, (size_t)ntr, sizeof *tr, cmp_i32);
    qsort(te, (size_t)nte, sizeof *te, cmp_i32);
    *train = tr;
    *n_train = ntr;
    *test = te;
    *n_test = nte;
    tr = te = NULL;
out:
    free(tr);
    free(te);
    free(order);
    free(class_start);
    free(cursor);
    return rc;
}
