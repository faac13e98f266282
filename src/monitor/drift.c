/*
 * Feature and prediction drift over a sliding window (include/vigil/drift.h).
 *
 * The window. Time is cut into slots of window / VG_DRIFT_SLOTS seconds; slot number
 * t = floor(now / slot length), from a monotonic clock (CLOCK_MONOTONIC_COARSE: a few ms of
 * resolution for ~20 ns a read, far finer than a slot). A ring of VG_DRIFT_SLOTS + 1 slots holds
 * the counts; each slot carries the number of the time slot its counts belong to (its epoch,
 * stored as t + 1 so that 0 means never used). A scrape at slot t_now sums the slots whose epoch
 * is in [t_now - VG_DRIFT_SLOTS, t_now]: VG_DRIFT_SLOTS + 1 slots, the current one partly
 * filled, so a value counts for between `window` and `window + one slot` seconds after it was
 * seen. The slot a writer reuses held time t_now - VG_DRIFT_SLOTS - 1, already out of the window.
 *
 * Writers. vg_drift_observe reads the clock once per call, finds its slot, and if the slot's
 * epoch is stale claims its reset with a compare-and-swap of the epoch to RESETTING, zeroes the
 * counts and publishes the new epoch with a release store; then it adds with relaxed atomics. A
 * writer that finds another one clearing the slot waits for that clear (it only happens when two
 * threads share a shard and cross a slot boundary together; it is a memset of one slot). A
 * single row costs one atomic add per feature, one for its class and one for the row count; a
 * batch is tallied on the stack first and costs one add per bin that got values.
 *
 * Sharding. Each thread writes its own shard: a whole ring of slots, every slot on its own cache
 * lines, picked by a thread-local index assigned round-robin on the thread's first call. With at
 * most `shards` observing threads (the server uses one shard per worker thread, up to 16) no two
 * threads write the same line. More threads share shards, which stays exact (the adds are
 * atomic) and only costs contention.
 *
 * Counts are 32-bit: one slot of one shard is at most 1440 s (a 1-day window), far too short for
 * a thread to count 2^32 values in one bin.
 *
 * Scrapes. vg_drift_collect reads each slot's epoch (acquire), sums its counts, and reads the
 * epoch again; a slot reset in between is left out (its counts belonged to an expired time
 * anyway). The sums and the PSIs go into a snapshot that the gauge callbacks read; collect and
 * the callbacks run under the registry lock, so the snapshot needs no lock of its own.
 * Cumulative values (values seen, missing, out of range) are ordinary sharded counters.
 */
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "vigil/drift.h"

#define RING (VG_DRIFT_SLOTS + 1)
#define RESETTING UINT64_MAX
#define DEFAULT_SHARDS 16
#define MAX_WINDOW_SECONDS 86400.0
/* Stack cells for tallying a batch before adding it to the window: models up to 78 features
 * (12 bins + 1 missing each, plus classes) tally batches locally. */
#define TALLY_CELLS 1024

/* One feature's label values, the argument of its PSI gauge callback. */
struct feature_gauge {
    struct vg_drift *d;
    int j;
};

struct vg_drift {
    int n_features, n_classes;
    int n_counts; /* per slot: n_features * VG_DRIFT_BINS bins, n_classes, 1 row count */
    int n_shards;
    uint64_t slot_ns;
    size_t slot_stride;   /* bytes per slot: the epoch then n_counts uint32, whole cache lines */
    unsigned char *slots; /* n_shards * RING slots, cache-line aligned */
    double (*edges)[VG_DRIFT_REF_BINS + 1];
    double *feature_ref; /* n_features * VG_DRIFT_BINS: below, 10 shares, above */
    double *class_ref;   /* n_classes */
    uint64_t (*clock_ns)(void *arg);
    void *clock_arg;
    /* cumulative counters, per feature */
    struct vg_counter **values, **missing, **below, **above;
    /* the snapshot of the last collect */
    uint64_t *snap_counts; /* n_counts */
    uint32_t *scratch;     /* n_counts: one slot as read by collect */
    double *snap_psi;      /* n_features */
    double snap_prediction_psi;
    struct feature_gauge *gauges; /* n_features */
};

/* ---- PSI ------------------------------------------------------------------------------------- */

double vg_drift_psi(const uint64_t *counts, const double *ref, int n)
{
    double total = 0, ref_total = 0;
    for (int i = 0; i < n; i++) {
        total += (double)counts[i];
        ref_total += ref[i] > VG_DRIFT_SHARE_FLOOR ? ref[i] : VG_DRIFT_SHARE_FLOOR;
    }
    if (n <= 0 || total == 0)
        return NAN;
    double denom = total + VG_DRIFT_PSEUDO_COUNT * n, psi = 0;
    for (int i = 0; i < n; i++) {
        double a = ((double)counts[i] + VG_DRIFT_PSEUDO_COUNT) / denom;
        double e = (ref[i] > VG_DRIFT_SHARE_FLOOR ? ref[i] : VG_DRIFT_SHARE_FLOOR) / ref_total;
        psi += (a - e) * log(a / e);
    }
    return psi;
}

/* ---- Time and shards ------------------------------------------------------------------------- */

static uint64_t coarse_clock_ns(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static atomic_uint next_thread;
static _Thread_local unsigned my_thread = UINT_MAX;

static unsigned thread_index(void)
{
    if (my_thread == UINT_MAX)
        my_thread = atomic_fetch_add_explicit(&next_thread, 1, memory_order_relaxed);
    return my_thread;
}

static atomic_uint_least64_t *slot_epoch(const struct vg_drift *d, int shard, int k)
{
    return (atomic_uint_least64_t *)(d->slots +
                                     ((size_t)shard * RING + (size_t)k) * d->slot_stride);
}

static atomic_uint_least32_t *slot_counts(const struct vg_drift *d, int shard, int k)
{
    return (atomic_uint_least32_t *)((unsigned char *)slot_epoch(d, shard, k) +
                                     sizeof(atomic_uint_least64_t));
}

/* The counts of time slot `epoch` in `shard`, reset first when they belong to an older time. */
static atomic_uint_least32_t *claim_slot(struct vg_drift *d, int shard, uint64_t epoch)
{
    int k = (int)(epoch % RING);
    atomic_uint_least64_t *ep = slot_epoch(d, shard, k);
    atomic_uint_least32_t *counts = slot_counts(d, shard, k);
    uint64_t seen = atomic_load_explicit(ep, memory_order_acquire);
    unsigned spins = 0;
    /* A slot already at a later time (this thread's clock read is a ring behind): count there. */
    while (seen < epoch || seen == RESETTING) {
        if (seen == RESETTING) {
            if (++spins % 64 == 0)
                sched_yield();
            seen = atomic_load_explicit(ep, memory_order_acquire);
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(ep, &seen, RESETTING, memory_order_acquire,
                                                  memory_order_acquire)) {
            for (int i = 0; i < d->n_counts; i++)
                atomic_store_explicit(&counts[i], 0, memory_order_relaxed);
            atomic_store_explicit(ep, epoch, memory_order_release);
            break;
        }
    }
    return counts;
}

/* ---- The request path ------------------------------------------------------------------------ */

static void add(atomic_uint_least32_t *c, uint32_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* One row at a time straight into the slot: for single rows, and models too wide for a local
 * tally. */
static void observe_direct(struct vg_drift *d, atomic_uint_least32_t *counts, const float *x,
                           int64_t rows, const int32_t *classes)
{
    int nf = d->n_features;
    for (int64_t i = 0; i < rows; i++) {
        const float *row = x + i * nf;
        for (int j = 0; j < nf; j++) {
            int b = vg_drift_bin(d->edges[j], row[j]);
            if (b == -2) {
                vg_counter_inc(d->missing[j]);
                continue;
            }
            add(&counts[j * VG_DRIFT_BINS + b + 1], 1);
            if (b == -1)
                vg_counter_inc(d->below[j]);
            else if (b == VG_DRIFT_REF_BINS)
                vg_counter_inc(d->above[j]);
        }
        if (classes && classes[i] >= 0 && classes[i] < d->n_classes)
            add(&counts[nf * VG_DRIFT_BINS + classes[i]], 1);
    }
}

/* A batch: tallied on the stack first, then one atomic add per bin that got values, so a batch
 * of any size costs at most n_counts atomic adds. `tally` has n_counts + n_features cells (the
 * last n_features count missing values). */
static void observe_batch(struct vg_drift *d, atomic_uint_least32_t *counts, const float *x,
                          int64_t rows, const int32_t *classes, uint32_t *tally)
{
    int nf = d->n_features, nc = d->n_classes;
    uint32_t *missing = tally + d->n_counts;
    memset(tally, 0, (size_t)(d->n_counts + nf) * sizeof *tally);
    for (int64_t i = 0; i < rows; i++) {
        const float *row = x + i * nf;
        for (int j = 0; j < nf; j++) {
            int b = vg_drift_bin(d->edges[j], row[j]);
            if (b == -2)
                missing[j]++;
            else
                tally[j * VG_DRIFT_BINS + b + 1]++;
        }
        if (classes && classes[i] >= 0 && classes[i] < nc)
            tally[nf * VG_DRIFT_BINS + classes[i]]++;
    }
    for (int k = 0; k < d->n_counts - 1; k++)
        if (tally[k])
            add(&counts[k], tally[k]);
    for (int j = 0; j < nf; j++) {
        if (missing[j])
            vg_counter_add(d->missing[j], missing[j]);
        if (tally[j * VG_DRIFT_BINS])
            vg_counter_add(d->below[j], tally[j * VG_DRIFT_BINS]);
        if (tally[j * VG_DRIFT_BINS + VG_DRIFT_BINS - 1])
            vg_counter_add(d->above[j], tally[j * VG_DRIFT_BINS + VG_DRIFT_BINS - 1]);
    }
}

void vg_drift_observe(struct vg_drift *d, const float *x, int64_t rows, const int32_t *classes)
{
    if (!d || rows <= 0)
        return;
    uint64_t epoch = d->clock_ns(d->clock_arg) / d->slot_ns + 1;
    int shard = (int)(thread_index() % (unsigned)d->n_shards);
    atomic_uint_least32_t *counts = claim_slot(d, shard, epoch);
    uint32_t tally[TALLY_CELLS];
    if (rows > 1 && d->n_counts + d->n_features <= TALLY_CELLS)
        observe_batch(d, counts, x, rows, classes, tally);
    else
        observe_direct(d, counts, x, rows, classes);
    add(&counts[d->n_counts - 1], (uint32_t)rows);
    for (int j = 0; j < d->n_features; j++)
        vg_counter_add(d->values[j], (uint64_t)rows);
}

/* ---- Scrapes --------------------------------------------------------------------------------- */

void vg_drift_collect(struct vg_drift *d)
{
    uint64_t now = d->clock_ns(d->clock_arg) / d->slot_ns + 1;
    memset(d->snap_counts, 0, (size_t)d->n_counts * sizeof *d->snap_counts);
    for (int s = 0; s < d->n_shards; s++)
        for (int k = 0; k < RING; k++) {
            atomic_uint_least64_t *ep = slot_epoch(d, s, k);
            uint64_t epoch = atomic_load_explicit(ep, memory_order_acquire);
            if (epoch == 0 || epoch == RESETTING || epoch > now || now - epoch > VG_DRIFT_SLOTS)
                continue;
            const atomic_uint_least32_t *counts = slot_counts(d, s, k);
            for (int i = 0; i < d->n_counts; i++)
                d->scratch[i] = atomic_load_explicit(&counts[i], memory_order_relaxed);
            /* Claimed for a newer time while we read: its counts are no longer this window's. */
            if (atomic_load_explicit(ep, memory_order_acquire) != epoch)
                continue;
            for (int i = 0; i < d->n_counts; i++)
                d->snap_counts[i] += d->scratch[i];
        }
    for (int j = 0; j < d->n_features; j++)
        d->snap_psi[j] = vg_drift_psi(d->snap_counts + j * VG_DRIFT_BINS,
                                      d->feature_ref + j * VG_DRIFT_BINS, VG_DRIFT_BINS);
    d->snap_prediction_psi = d->n_classes > 0
                                 ? vg_drift_psi(d->snap_counts + d->n_features * VG_DRIFT_BINS,
                                                d->class_ref, d->n_classes)
                                 : NAN;
}

double vg_drift_feature_psi(const struct vg_drift *d, int feature)
{
    return feature >= 0 && feature < d->n_features ? d->snap_psi[feature] : NAN;
}

double vg_drift_prediction_psi(const struct vg_drift *d)
{
    return d->snap_prediction_psi;
}

uint64_t vg_drift_window_rows(const struct vg_drift *d)
{
    return d->snap_counts[d->n_counts - 1];
}

void vg_drift_window_counts(const struct vg_drift *d, int feature, uint64_t counts[VG_DRIFT_BINS])
{
    for (int b = 0; b < VG_DRIFT_BINS; b++)
        counts[b] = feature >= 0 && feature < d->n_features
                        ? d->snap_counts[feature * VG_DRIFT_BINS + b]
                        : 0;
}

uint64_t vg_drift_window_class(const struct vg_drift *d, int k)
{
    return k >= 0 && k < d->n_classes ? d->snap_counts[d->n_features * VG_DRIFT_BINS + k] : 0;
}

double vg_drift_slot_seconds(const struct vg_drift *d)
{
    return (double)d->slot_ns * 1e-9;
}

static double feature_psi_fn(void *arg)
{
    const struct feature_gauge *g = arg;
    return g->d->snap_psi[g->j];
}

static double prediction_psi_fn(void *arg)
{
    return ((const struct vg_drift *)arg)->snap_prediction_psi;
}

static double window_rows_fn(void *arg)
{
    return (double)vg_drift_window_rows(arg);
}

static void collect_fn(void *arg)
{
    vg_drift_collect(arg);
}

/* ---- Making one ------------------------------------------------------------------------------ */

static void drift_free(void *arg)
{
    struct vg_drift *d = arg;
    if (!d)
        return;
    free(d->slots);
    free(d->edges);
    free(d->feature_ref);
    free(d->class_ref);
    free(d->values);
    free(d->missing);
    free(d->below);
    free(d->above);
    free(d->snap_counts);
    free(d->scratch);
    free(d->snap_psi);
    free(d->gauges);
    free(d);
}

int vg_drift_register(struct vg_registry *r, struct vg_drift_families *fam, struct vg_error *err)
{
    static const char *const mv[] = {"model", "version", NULL};
    static const char *const mvf[] = {"model", "version", "feature", NULL};
    static const char *const mvfs[] = {"model", "version", "feature", "side", NULL};
    int rc;
    memset(fam, 0, sizeof *fam);
    if ((rc = vg_gauge_register(r, "vigil_feature_psi",
                                "Population stability index of the feature's values in the drift "
                                "window against its training reference, over 12 bins (below the "
                                "training range, its 10 decile bins, above); NaN when the window "
                                "holds no value. Under 0.1 stable, over 0.25 a significant shift.",
                                mvf, &fam->feature_psi, err)) ||
        (rc = vg_counter_register(r, "vigil_feature_values_total",
                                  "Feature values seen in predicted rows (missing ones included).",
                                  mvf, &fam->feature_values, err)) ||
        (rc = vg_counter_register(r, "vigil_feature_missing_total",
                                  "Feature values that were missing or NaN.", mvf,
                                  &fam->feature_missing, err)) ||
        (rc = vg_counter_register(r, "vigil_feature_out_of_range_total",
                                  "Feature values outside the training range [min, max], by side "
                                  "(below or above).",
                                  mvfs, &fam->feature_out_of_range, err)) ||
        (rc = vg_gauge_register(r, "vigil_prediction_psi",
                                "Population stability index of the predicted classes in the drift "
                                "window against the training class distribution; NaN when the "
                                "window holds no prediction.",
                                mv, &fam->prediction_psi, err)) ||
        (rc = vg_gauge_register(r, "vigil_drift_window_rows",
                                "Rows counted in the current drift window.", mv, &fam->window_rows,
                                err)))
        return rc;
    return 0;
}

static int invalid(struct vg_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int invalid(struct vg_error *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = VG_EINVAL;
    }
    return -VG_EINVAL;
}

static int valid_share(double s)
{
    return isfinite(s) && s >= 0 && s <= 1;
}

static int check_config(const struct vg_drift_config *c, struct vg_error *err)
{
    if (!c->model || !c->version || c->n_features < 1 || !c->features)
        return invalid(err, "drift: need a model, a version and at least one feature");
    if (!(c->window_seconds > 0 && c->window_seconds <= MAX_WINDOW_SECONDS))
        return invalid(err, "drift: the window must be in (0, %.0f] seconds, got %g",
                       MAX_WINDOW_SECONDS, c->window_seconds);
    if (c->shards < 0 || c->shards > VG_DRIFT_MAX_SHARDS)
        return invalid(err, "drift: shards must be in [0, %d], got %d", VG_DRIFT_MAX_SHARDS,
                       c->shards);
    for (int j = 0; j < c->n_features; j++) {
        const struct vg_drift_feature_ref *f = &c->features[j];
        if (!f->name)
            return invalid(err, "drift: feature %d has no name", j);
        for (int b = 0; b <= VG_DRIFT_REF_BINS; b++)
            if (!isfinite(f->edges[b]) || (b > 0 && f->edges[b] < f->edges[b - 1]))
                return invalid(err,
                               "reference of feature '%s': bin_edges must be finite and "
                               "non-decreasing (edge %d is %g)",
                               f->name, b, f->edges[b]);
        for (int b = 0; b < VG_DRIFT_REF_BINS; b++)
            if (!valid_share(f->shares[b]))
                return invalid(err,
                               "reference of feature '%s': bin_shares[%d] = %g is not in [0, 1]",
                               f->name, b, f->shares[b]);
        if (!valid_share(f->below) || !valid_share(f->above))
            return invalid(err, "reference of feature '%s': below and above must be in [0, 1]",
                           f->name);
    }
    if (c->n_classes < 0 || (c->n_classes > 0 && !c->class_shares))
        return invalid(err, "drift: %d classes without their shares", c->n_classes);
    for (int k = 0; k < c->n_classes; k++)
        if (!valid_share(c->class_shares[k]))
            return invalid(err, "class distribution: share %d = %g is not in [0, 1]", k,
                           c->class_shares[k]);
    return 0;
}

static int bind_series(struct vg_drift *d, const struct vg_drift_config *c,
                       const struct vg_drift_families *fam)
{
    const char *mv[] = {c->model, c->version};
    int rc = 0;
    for (int j = 0; j < d->n_features && !rc; j++) {
        const char *mvf[] = {c->model, c->version, c->features[j].name};
        const char *below[] = {c->model, c->version, c->features[j].name, "below"};
        const char *above[] = {c->model, c->version, c->features[j].name, "above"};
        d->gauges[j] = (struct feature_gauge){d, j};
        if ((rc = vg_gauge_func(fam->feature_psi, mvf, feature_psi_fn, &d->gauges[j])) ||
            (rc = vg_counter_bind(fam->feature_values, mvf, &d->values[j])) ||
            (rc = vg_counter_bind(fam->feature_missing, mvf, &d->missing[j])) ||
            (rc = vg_counter_bind(fam->feature_out_of_range, below, &d->below[j])))
            break;
        rc = vg_counter_bind(fam->feature_out_of_range, above, &d->above[j]);
    }
    if (!rc && d->n_classes > 0)
        rc = vg_gauge_func(fam->prediction_psi, mv, prediction_psi_fn, d);
    if (!rc)
        rc = vg_gauge_func(fam->window_rows, mv, window_rows_fn, d);
    return rc;
}

int vg_drift_new(const struct vg_drift_config *c, const struct vg_drift_families *fam,
                 struct vg_drift **out, struct vg_error *err)
{
    int rc = check_config(c, err);
    if (rc)
        return rc;
    if (!fam || !fam->feature_psi)
        return invalid(err, "drift: the families are not registered");
    struct vg_drift *d = calloc(1, sizeof *d);
    if (!d)
        goto oom;
    int nf = c->n_features, nc = c->n_classes;
    d->n_features = nf;
    d->n_classes = nc;
    d->n_counts = nf * VG_DRIFT_BINS + nc + 1;
    d->n_shards = c->shards ? c->shards : DEFAULT_SHARDS;
    double slot_s = c->window_seconds / VG_DRIFT_SLOTS;
    d->slot_ns = (uint64_t)(slot_s * 1e9);
    if (d->slot_ns == 0)
        d->slot_ns = 1;
    d->clock_ns = c->clock_ns ? c->clock_ns : coarse_clock_ns;
    d->clock_arg = c->clock_arg;
    size_t bytes =
        sizeof(atomic_uint_least64_t) + (size_t)d->n_counts * sizeof(atomic_uint_least32_t);
    d->slot_stride = (bytes + VG__CACHE_LINE - 1) / VG__CACHE_LINE * VG__CACHE_LINE;
    size_t total = (size_t)d->n_shards * RING * d->slot_stride;
    d->slots = aligned_alloc(VG__CACHE_LINE, total);
    d->edges = calloc((size_t)nf, sizeof *d->edges);
    d->feature_ref = calloc((size_t)nf * VG_DRIFT_BINS, sizeof *d->feature_ref);
    d->class_ref = calloc(nc > 0 ? (size_t)nc : 1, sizeof *d->class_ref);
    d->values = calloc((size_t)nf, sizeof *d->values);
    d->missing = calloc((size_t)nf, sizeof *d->missing);
    d->below = calloc((size_t)nf, sizeof *d->below);
    d->above = calloc((size_t)nf, sizeof *d->above);
    d->snap_counts = calloc((size_t)d->n_counts, sizeof *d->snap_counts);
    d->scratch = calloc((size_t)d->n_counts, sizeof *d->scratch);
    d->snap_psi = calloc((size_t)nf, sizeof *d->snap_psi);
    d->gauges = calloc((size_t)nf, sizeof *d->gauges);
    if (!d->slots || !d->edges || !d->feature_ref || !d->class_ref || !d->values || !d->missing ||
        !d->below || !d->above || !d->snap_counts || !d->scratch || !d->snap_psi || !d->gauges)
        goto oom;
    memset(d->slots, 0, total); /* epoch 0: never used */
    for (int j = 0; j < nf; j++) {
        const struct vg_drift_feature_ref *f = &c->features[j];
        memcpy(d->edges[j], f->edges, sizeof d->edges[j]);
        double *ref = d->feature_ref + j * VG_DRIFT_BINS;
        ref[0] = f->below;
        memcpy(ref + 1, f->shares, sizeof f->shares);
        ref[VG_DRIFT_BINS - 1] = f->above;
        d->snap_psi[j] = NAN;
    }
    for (int k = 0; k < nc; k++)
        d->class_ref[k] = c->class_shares[k];
    d->snap_prediction_psi = NAN;
    /* From here the registry holds d (collector first, so a failure below still frees it). */
    rc = vg_registry_add_collector(fam->feature_psi->registry, collect_fn, drift_free, d);
    if (rc) {
        drift_free(d);
        return rc;
    }
    rc = bind_series(d, c, fam);
    if (rc) {
        if (err) {
            err->code = -rc;
            snprintf(err->msg, sizeof err->msg, "drift: cannot bind the series (%s)",
                     rc == -VG_ENOMEM ? "out of memory" : "invalid labels");
        }
        return rc;
    }
    *out = d;
    return 0;
oom:
    drift_free(d);
    if (err) {
        err->code = VG_ENOMEM;
        snprintf(err->msg, sizeof err->msg, "drift: out of memory");
    }
    return -VG_ENOMEM;
}
