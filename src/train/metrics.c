/*
 * Holdout metrics (vg_metrics_classification, vg_metrics_regression).
 *
 * Classification: accuracy; per class precision = TP / predicted as the class, recall = TP /
 * support, F1 = 2PR / (P + R), each 0 when its denominator is 0 (scikit-learn's zero_division=0);
 * the confusion matrix counts rows with row = true class, column = predicted class.
 *
 * Regression: R^2 = 1 - SS_res / SS_tot with SS_tot around the mean of the truth. When the truth
 * is constant (SS_tot == 0), R^2 is 1 for a perfect prediction and 0 otherwise, as scikit-learn's
 * r2_score does (force_finite), so the number stays finite for JSON. MAE = mean |e|, RMSE =
 * sqrt(mean e^2). Sums are accumulated in double.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "vigil/train.h"

/* The confusion matrix is n_classes^2 int64: 4096 classes is 128 MiB, enough for any forest. */
#define VG_METRICS_MAX_CLASSES 4096

void vg_metrics_release(struct vg_metrics *m)
{
    if (!m)
        return;
    free(m->per_class);
    free(m->confusion);
    memset(m, 0, sizeof *m);
}

int vg_metrics_classification(const int32_t *truth, const int32_t *pred, int n, int n_classes,
                              struct vg_metrics *m, struct vg_error *err)
{
    int rc = 0;
    int64_t *predicted = NULL;
    if (!m)
        return vg__err(err, VG_EINVAL, "vg_metrics_classification: bad argument");
    memset(m, 0, sizeof *m);
    if (!truth || !pred || n <= 0) {
        rc = vg__err(err, VG_EINVAL, "metrics need at least one row (got %d)", n);
        goto out;
    }
    if (n_classes < 1 || n_classes > VG_METRICS_MAX_CLASSES) {
        rc = vg__err(err, VG_EINVAL, "metrics: %d classes is not in [1, %d]", n_classes,
                     VG_METRICS_MAX_CLASSES);
        goto out;
    }
    size_t k = (size_t)n_classes;
    m->task = VG_TASK_CLASSIFICATION;
    m->n_rows = n;
    m->n_classes = n_classes;
    m->per_class = calloc(k, sizeof *m->per_class);
    m->confusion = calloc(k * k, sizeof *m->confusion);
    predicted = calloc(k, sizeof *predicted);
    if (!m->per_class || !m->confusion || !predicted) {
        rc = vg__err(err, VG_ENOMEM, "metrics: out of memory for %d classes", n_classes);
        goto out;
    }
    int64_t correct = 0;
    for (int i = 0; i < n; i++) {
        int t = truth[i], p = pred[i];
        if (t < 0 || t >= n_classes || p < 0 || p >= n_classes) {
            rc = vg__err(err, VG_EINVAL,
                         "metrics: row %d: class %d (true) or %d (predicted) is "
                         "not in [0, %d)",
                         i, t, p, n_classes);
            goto out;
        }
        m->confusion[(size_t)t * k + (size_t)p]++;
        m->per_class[t].support++;
        predicted[p]++;
        correct += t == p;
    }
    m->accuracy = (double)correct / n;
    for (size_t c = 0; c < k; c++) {
        struct vg_class_metrics *cm = &m->per_class[c];
        double tp = (double)m->confusion[c * k + c];
        cm->precision = predicted[c] ? tp / (double)predicted[c] : 0;
        cm->recall = cm->support ? tp / cm->support : 0;
        double s = cm->precision + cm->recall;
        cm->f1 = s > 0 ? 2 * cm->precision * cm->recall / s : 0;
    }
out:
    free(predicted);
    if (rc < 0)
        vg_metrics_release(m);
    return rc;
}

int vg_metrics_regression(const double *truth, const double *pred, int n, struct vg_metrics *m,
                          struct vg_error *err)
{
    int rc = 0;
    if (!m)
        return vg__err(err, VG_EINVAL, "vg_metrics_regression: bad argument");
    memset(m, 0, sizeof *m);
    if (!truth || !pred || n <= 0) {
        rc = vg__err(err, VG_EINVAL, "metrics need at least one row (got %d)", n);
        goto out;
    }
    double mean = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(truth[i]) || !isfinite(pred[i])) {
            rc = vg__err(err, VG_EINVAL,
                         "metrics: row %d: value is not finite (truth %g, "
                         "predicted %g)",
                         i, truth[i], pred[i]);
            goto out;
        }
        mean += truth[i];
    }
    mean /= n;
    double ss_res = 0, ss_tot = 0, abs_sum = 0;
    for (int i = 0; i < n; i++) {
        double e = truth[i] - pred[i], d = truth[i] - mean;
        ss_res += e * e;
        ss_tot += d * d;
        abs_sum += fabs(e);
    }
    m->task = VG_TASK_REGRESSION;
    m->n_rows = n;
    m->r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : (ss_res == 0 ? 1 : 0);
    m->mae = abs_sum / n;
    m->rmse = sqrt(ss_res / n);
out:
    if (rc < 0)
        vg_metrics_release(m);
    return rc;
}
