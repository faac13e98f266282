/*
 * vigil drift: how far live traffic has moved from a model's training data, per feature and for
 * the predicted classes, over a sliding time window, exported through a metrics registry
 * (include/vigil/monitor.h). docs/monitoring.md ("Model quality: drift") is the user's page.
 *
 * The reference of a feature is what training stored in config.json "reference": 11 bin edges
 * (min, the 9 deciles, max) and the share of the training rows in each of the 10 bins. A live
 * value falls in one of 12 bins: below the training range, one of the 10 (vg_drift_bin, the rule
 * training used for the shares), above the range; NaN is "missing" and in no bin. The PSI of the
 * window against the reference is vg_drift_psi over those 12 bins (below/above have the training
 * shares `below`/`above`, 0 for the training data itself).
 *
 * Ownership and threads
 * ---------------------
 * - vg_drift_register registers the six families once per registry; vg_drift_new makes one
 *   object per model version, binds its series and a collector into that registry, and from
 *   then on belongs to the registry: vg_registry_release frees it. Handles stay valid until then.
 * - vg_drift_observe takes no lock and allocates nothing; any number of threads may call it at
 *   once. The window counts are sharded per thread; a slot of the window is reset by the first
 *   writer that finds it stale (a compare-and-swap claims the reset).
 * - vg_drift_collect (run by the registry at every render, under its lock) sums the window and
 *   computes the PSIs into a snapshot, which the gauges and the vg_drift_window_* getters read.
 *   Call it yourself only where no render can run at the same time (tests).
 */
#ifndef VIGIL_DRIFT_H
#define VIGIL_DRIFT_H

#include <math.h>
#include <stdint.h>

#include "vigil/monitor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VG_DRIFT_REF_BINS 10                  /* reference bins (deciles) */
#define VG_DRIFT_BINS (VG_DRIFT_REF_BINS + 2) /* below, the 10, above */
#define VG_DRIFT_SLOTS 60                     /* a window is this many time slots (plus one) */
#define VG_DRIFT_MAX_SHARDS 64
#define VG_DRIFT_SHARE_FLOOR 1e-4 /* smallest reference share, see vg_drift_psi */
#define VG_DRIFT_PSEUDO_COUNT 0.5 /* added to every live count, see vg_drift_psi */

/*
 * The bin of v against `edges` (VG_DRIFT_REF_BINS + 1 non-decreasing values: min, deciles, max):
 * -2 when v is NaN, -1 below min, VG_DRIFT_REF_BINS above max, else the largest i in 0..9 with
 * edges[i] <= v (so edges[i] <= v < edges[i + 1], max in the last bin; when edges repeat, the
 * value goes to the highest bin whose lower edge it reaches). The one definition of the rule:
 * training computes the reference shares with it (vg_reference_bin) and the monitor bins live
 * values with it, so the two are comparable.
 */
static inline int vg_drift_bin(const double *edges, double v)
{
    if (isnan(v))
        return -2;
    if (v < edges[0])
        return -1;
    if (v > edges[VG_DRIFT_REF_BINS])
        return VG_DRIFT_REF_BINS;
    /* Binary lifting: i grows by 8, 4, 2, 1 while edges[i + step] <= v (edges[0] <= v holds, so
     * i ends at the largest such index). Fixed compares the compiler turns into conditional
     * moves: no unpredictable branch on the request path. j is clamped to 10, a valid edge. */
    int i = 0;
    for (int step = 8; step; step >>= 1) {
        int j = i + step < VG_DRIFT_REF_BINS ? i + step : VG_DRIFT_REF_BINS;
        i += ((j < VG_DRIFT_REF_BINS) & (edges[j] <= v)) * step;
    }
    return i;
}

/*
 * Population stability index of `n` live counts against `n` reference shares:
 *   PSI = sum_i (a_i - e_i) * ln(a_i / e_i)
 * with a_i = (counts[i] + 0.5) / (N + 0.5 n), N = sum of counts (a pseudo-count of 0.5 in every
 * bin, so an empty live bin is not a log of 0), and e_i = max(ref[i], 1e-4) / sum_k max(ref[k],
 * 1e-4) (a floor, then renormalized, so a bin training never saw is not a division by 0).
 * NaN when N is 0. `ref` need not sum to 1 exactly.
 */
double vg_drift_psi(const uint64_t *counts, const double *ref, int n);

/* One feature's training reference (config.json reference.features.NAME). */
struct vg_drift_feature_ref {
    const char *name;                    /* the feature label value (copied) */
    double edges[VG_DRIFT_REF_BINS + 1]; /* bin_edges: min, 9 deciles, max; non-decreasing */
    double shares[VG_DRIFT_REF_BINS];    /* bin_shares */
    double below, above;                 /* shares below min / above max (0 for training data) */
};

struct vg_drift_config {
    const char *model, *version; /* label values (copied) */
    int n_features;              /* >= 1 */
    const struct vg_drift_feature_ref *features;
    int n_classes;              /* 0: no prediction drift (regression) */
    const double *class_shares; /* n_classes reference shares, class order */
    double window_seconds;      /* > 0: values count for window..window+slot s */
    int shards;                 /* window count shards: 1..64; 0 = 16 */
    /* Monotonic time in nanoseconds; NULL = CLOCK_MONOTONIC_COARSE. For tests. */
    uint64_t (*clock_ns)(void *arg);
    void *clock_arg;
};

/* The metric families, registered once per registry by vg_drift_register. */
struct vg_drift_families {
    struct vg_family *feature_psi;          /* vigil_feature_psi{model,version,feature} */
    struct vg_family *feature_values;       /* vigil_feature_values_total{...,feature} */
    struct vg_family *feature_missing;      /* vigil_feature_missing_total{...,feature} */
    struct vg_family *feature_out_of_range; /* vigil_feature_out_of_range_total{...,side} */
    struct vg_family *prediction_psi;       /* vigil_prediction_psi{model,version} */
    struct vg_family *window_rows;          /* vigil_drift_window_rows{model,version} */
};

struct vg_drift;

/* Registers the six families in `r` (once per registry). 0 or a negative VG_E* code. */
int vg_drift_register(struct vg_registry *r, struct vg_drift_families *fam, struct vg_error *err);

/*
 * Checks `cfg` (edges finite and non-decreasing, shares finite in [0, 1]), allocates the window
 * and binds every series of this model version in fam's registry, plus a collector. The object
 * belongs to that registry (freed by vg_registry_release). Returns 0 and *out, or -VG_EINVAL
 * (with the reason in err) or -VG_ENOMEM. Locks the registry: call at load time.
 */
int vg_drift_new(const struct vg_drift_config *cfg, const struct vg_drift_families *fam,
                 struct vg_drift **out, struct vg_error *err);

/*
 * Counts `rows` rows: x holds rows * n_features floats, row-major, in the reference's feature
 * order; classes (NULL when there is no prediction to count) holds each row's predicted class
 * index (a value outside 0..n_classes-1 is not counted). Lock-free, allocation-free.
 */
void vg_drift_observe(struct vg_drift *d, const float *x, int64_t rows, const int32_t *classes);

/* Sums the current window and computes the PSIs into the snapshot the getters below read. */
void vg_drift_collect(struct vg_drift *d);
/* From the last vg_drift_collect: */
double vg_drift_feature_psi(const struct vg_drift *d, int feature); /* NaN: no value in window */
double vg_drift_prediction_psi(const struct vg_drift *d);           /* NaN: none, or no classes */
uint64_t vg_drift_window_rows(const struct vg_drift *d);
/* counts[0] below, counts[1..10] the reference bins, counts[11] above. */
void vg_drift_window_counts(const struct vg_drift *d, int feature, uint64_t counts[VG_DRIFT_BINS]);
uint64_t vg_drift_window_class(const struct vg_drift *d, int k);

/* Seconds one window slot lasts: window_seconds / VG_DRIFT_SLOTS. */
double vg_drift_slot_seconds(const struct vg_drift *d);

#ifdef __cplusplus
}
#endif

#endif
