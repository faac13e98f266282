/*
 * Drift reference: each feature's training distribution (vg_reference_compute, vg_reference_bin).
 *
 * Edges: edges[0] = min, edges[10] = max, edges[k] (k = 1..9) = the k/10 quantile by linear
 * interpolation between order statistics, numpy.quantile's default ("linear", Hyndman & Fan type
 * 7): with the n values sorted as v[0..n-1], h = (n - 1) * k / 10, lo = floor(h), the quantile is
 * v[lo] + (h - lo) * (v[lo + 1] - v[lo]). Values 1..100 give deciles 10.9, 20.8, ..., 90.1.
 *
 * Binning (vg_reference_bin): the bin of v is the largest i in 0..9 with edges[i] <= v. That is
 * the i with edges[i] <= v < edges[i + 1], with v == max in the last bin; when edges repeat (many
 * equal values) the empty intervals are skipped and the value goes to the highest bin whose lower
 * edge it reaches, so a constant feature lands wholly in bin 9. The rule is written once, as
 * vg_drift_bin in include/vigil/drift.h: it bins the training rows here and live traffic in the
 * server's drift monitor, so training shares and live shares are comparable.
 *
 * mean and std are over the rows given, std the population one (ddof = 0, numpy's default);
 * computed in two passes in double. Class shares are the fractions of the rows in each class:
 * the labels' classes for training data (vg_reference_compute), or any per-row class indices a
 * caller gives, such as a model's predictions (vg_reference_class_shares, `vigil reference`).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "vigil/drift.h"
#include "vigil/train.h"

_Static_assert(VG_REF_BINS == VG_DRIFT_REF_BINS, "training and drift must use the same bins");

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int vg_reference_bin(const struct vg_feature_ref *f, double v)
{
    return vg_drift_bin(f->edges, v);
}

void vg_reference_release(struct vg_reference *r)
{
    if (!r)
        return;
    free(r->features);
    free(r->class_shares);
    memset(r, 0, sizeof *r);
}

/* numpy's default ("linear") quantile of sorted v[0..n-1] at q in [0, 1]. */
static double quantile_linear(const double *v, int n, double q)
{
    double h = (n - 1) * q;
    int lo = (int)floor(h);
    if (lo >= n - 1)
        return v[n - 1];
    double frac = h - lo;
    return v[lo] + frac * (v[lo + 1] - v[lo]);
}

int vg_reference_features(const struct vg_dataset *ds, const int32_t *rows, int n_rows,
                          struct vg_reference *r, struct vg_error *err)
{
    int rc = 0;
    double *vals = NULL;
    if (!r)
        return vg__err(err, VG_EINVAL, "vg_reference_features: bad argument");
    memset(r, 0, sizeof *r);
    if (!ds || !rows || n_rows <= 0 || ds->n_features <= 0) {
        rc = vg__err(err, VG_EINVAL, "reference: need rows and features (%d rows)", n_rows);
        goto out;
    }
    for (int i = 0; i < n_rows; i++)
        if (rows[i] < 0 || rows[i] >= ds->n_rows) {
            rc = vg__err(err, VG_EINVAL, "reference: row index %d is not in [0, %d)", rows[i],
                         ds->n_rows);
            goto out;
        }
    int nf = ds->n_features;
    r->features = calloc((size_t)nf, sizeof *r->features);
    vals = malloc((size_t)n_rows * sizeof *vals);
    if (!r->features || !vals) {
        rc = vg__err(err, VG_ENOMEM, "reference: out of memory");
        goto out;
    }
    r->n_features = nf;
    for (int j = 0; j < nf; j++) {
        struct vg_feature_ref *f = &r->features[j];
        double sum = 0;
        for (int i = 0; i < n_rows; i++) {
            vals[i] = ds->x[(size_t)rows[i] * nf + j];
            sum += vals[i];
        }
        f->mean = sum / n_rows;
        double ss = 0;
        for (int i = 0; i < n_rows; i++)
            ss += (vals[i] - f->mean) * (vals[i] - f->mean);
        f->std = sqrt(ss / n_rows);
        qsort(vals, (size_t)n_rows, sizeof *vals, cmp_double);
        f->min = vals[0];
        f->max = vals[n_rows - 1];
        f->edges[0] = f->min;
        for (int k = 1; k < VG_REF_BINS; k++)
            f->edges[k] = quantile_linear(vals, n_rows, (double)k / VG_REF_BINS);
        f->edges[VG_REF_BINS] = f->max;
        int64_t counts[VG_REF_BINS] = {0};
        for (int i = 0; i < n_rows; i++) {
            int b = vg_reference_bin(f, vals[i]);
            if (b >= 0 && b < VG_REF_BINS)
                counts[b]++;
        }
        for (int b = 0; b < VG_REF_BINS; b++)
            f->shares[b] = (double)counts[b] / n_rows;
        f->below = f->above = 0;
    }
out:
    free(vals);
    if (rc < 0)
        vg_reference_release(r);
    return rc;
}

int vg_reference_class_shares(struct vg_reference *r, const int32_t *classes, const int32_t *rows,
                              int n_rows, int n_classes, struct vg_error *err)
{
    if (!r || !classes || n_rows <= 0 || n_classes <= 0)
        return vg__err(err, VG_EINVAL, "vg_reference_class_shares: bad argument");
    free(r->class_shares);
    r->n_classes = 0;
    r->class_shares = calloc((size_t)n_classes, sizeof *r->class_shares);
    if (!r->class_shares)
        return vg__err(err, VG_ENOMEM, "reference: out of memory");
    for (int i = 0; i < n_rows; i++) {
        int row = rows ? rows[i] : i;
        int c = classes[row];
        if (c < 0 || c >= n_classes) {
            free(r->class_shares);
            r->class_shares = NULL;
            return vg__err(err, VG_EINVAL, "reference: row %d: class %d is not in [0, %d)", row, c,
                           n_classes);
        }
        r->class_shares[c] += 1;
    }
    for (int c = 0; c < n_classes; c++)
        r->class_shares[c] /= n_rows;
    r->n_classes = n_classes;
    return 0;
}

int vg_reference_compute(const struct vg_dataset *ds, const int32_t *rows, int n_rows,
                         struct vg_reference *r, struct vg_error *err)
{
    int rc = vg_reference_features(ds, rows, n_rows, r, err);
    if (rc == 0 && ds->task == VG_TASK_CLASSIFICATION && ds->n_classes > 0 && ds->y_class) {
        rc = vg_reference_class_shares(r, ds->y_class, rows, n_rows, ds->n_classes, err);
        if (rc < 0)
            vg_reference_release(r);
    }
    return rc;
}
