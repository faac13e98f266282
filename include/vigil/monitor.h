/*
 * vigil monitor: a metrics registry with lock-free updates and Prometheus / OpenMetrics exposition.
 *
 * Ownership and thread-safety rules
 * ---------------------------------
 * - A `struct vg_registry` holds metric families (name, help, type, label names, histogram
 *   bounds). Registration and binding lock the registry and allocate: do them at start-up or when
 *   a model loads, never per request.
 * - vg_*_bind(family, label values) returns a handle to one child series. Binding the same label
 *   values again returns the same child. Handles stay valid until vg_registry_release(): removing
 *   a series (vg_*_remove, vg_registry_remove_matching) only hides it from the exposition, and its
 *   memory is freed with the registry. An update through a removed handle is harmless.
 * - Updates through a handle (vg_counter_add, vg_gauge_set, vg_histogram_observe...) take no lock
 *   and allocate nothing; any number of threads may call them at once. Counters and histogram
 *   buckets are sharded per thread (16 cache-line-padded shards picked by a thread-local index)
 *   and summed at scrape time; gauges and histogram sums are atomic doubles.
 * - vg_registry_render() locks the registry: scrapes are serialized with each other and with
 *   registration, never with updates.
 * - Functions that can fail return 0 or a negative VG_E* code (include/vigil/engine.h); where a
 *   `struct vg_error *` is passed (it may be NULL) it receives a message.
 */
#ifndef VIGIL_MONITOR_H
#define VIGIL_MONITOR_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "vigil/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

enum vg_metric_type { VG_METRIC_COUNTER, VG_METRIC_GAUGE, VG_METRIC_HISTOGRAM };

#define VG_MONITOR_MAX_LABELS 8  /* label names per family */
#define VG_MONITOR_MAX_BOUNDS 64 /* histogram bucket bounds, +Inf not counted */
#define VG_MONITOR_MAX_NAME 200  /* bytes in a metric or label name */

/* Prometheus' default buckets (seconds): for request and inference durations. */
#define VG_HISTOGRAM_DEFAULT_BOUNDS                                                                \
    {                                                                                              \
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10                                    \
    }

struct vg_family;    /* one metric family: opaque, owned by its registry */
struct vg_counter;   /* a child series of a counter family */
struct vg_gauge;     /* a child series of a gauge family */
struct vg_histogram; /* a child series of a histogram family */
struct vg__collector;

struct vg_registry {
    pthread_mutex_t lock;
    struct vg_family *families; /* registration order */
    struct vg_family *last;
    struct vg__collector *collectors;
};

/* Initializes an empty registry in caller memory. Returns 0 or -VG_ENOMEM. */
int vg_registry_init(struct vg_registry *r);
/* Frees every family, series and collector. No handle may be used afterwards, and no thread may
 * still be updating one. */
void vg_registry_release(struct vg_registry *r);
/* Heap variants of init/release. */
struct vg_registry *vg_registry_new(void);
void vg_registry_free(struct vg_registry *r);

/*
 * Registration. `name` must match [a-zA-Z_:][a-zA-Z0-9_:]* and be unique in the registry;
 * `label_names` is a NULL-terminated array (or NULL for none), each matching
 * [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", no duplicates (and not "le" for a histogram).
 * `help` may hold any UTF-8 (it is escaped on output). Strings are copied. A counter's name may
 * end in "_total" or not: it is exposed as <base>_total either way (see docs/metrics.md).
 * Histogram `bounds` must be finite and strictly increasing (a trailing +Inf is dropped); the
 * +Inf bucket is implicit. The family belongs to the registry; *out is valid until release.
 */
int vg_counter_register(struct vg_registry *r, const char *name, const char *help,
                        const char *const *label_names, struct vg_family **out,
                        struct vg_error *err);
int vg_gauge_register(struct vg_registry *r, const char *name, const char *help,
                      const char *const *label_names, struct vg_family **out, struct vg_error *err);
int vg_histogram_register(struct vg_registry *r, const char *name, const char *help,
                          const char *const *label_names, const double *bounds, size_t n_bounds,
                          struct vg_family **out, struct vg_error *err);

/*
 * Binding: returns the child for these label values (one per label name, in order; NULL when the
 * family has no labels), creating it on first use. A removed child is never returned: binding its
 * labels again makes a new child that starts from zero. -VG_EINVAL when the family has another
 * type or a value is NULL, -VG_ENOMEM on allocation failure. Locks the registry.
 */
int vg_counter_bind(struct vg_family *f, const char *const *label_values, struct vg_counter **out);
int vg_gauge_bind(struct vg_family *f, const char *const *label_values, struct vg_gauge **out);
int vg_histogram_bind(struct vg_family *f, const char *const *label_values,
                      struct vg_histogram **out);

/*
 * Scrape-time values: a child whose value is fn(arg), called while the registry renders (under
 * its lock, so fn must not call back into the registry). For process metrics and states computed
 * on demand. A counter function must return a non-decreasing value.
 */
typedef double (*vg_value_fn)(void *arg);
int vg_counter_func(struct vg_family *f, const char *const *label_values, vg_value_fn fn,
                    void *arg);
int vg_gauge_func(struct vg_family *f, const char *const *label_values, vg_value_fn fn, void *arg);

/* Lock-free updates (relaxed atomics). */
void vg_counter_inc(struct vg_counter *c);
void vg_counter_add(struct vg_counter *c, uint64_t n);
void vg_gauge_set(struct vg_gauge *g, double v);
void vg_gauge_add(struct vg_gauge *g, double delta);
void vg_gauge_inc(struct vg_gauge *g);
void vg_gauge_dec(struct vg_gauge *g);
/* Counts v in the first bucket whose bound is >= v (le is inclusive; NaN goes to +Inf). */
void vg_histogram_observe(struct vg_histogram *h, double v);

/* Current values, summed over shards (not a consistent snapshot while updates run). */
uint64_t vg_counter_value(const struct vg_counter *c);
double vg_gauge_value(const struct vg_gauge *g);
void vg_histogram_value(const struct vg_histogram *h, uint64_t *count, double *sum);

/* Hide a series from the exposition (memory is kept until vg_registry_release). Thread-safe. */
void vg_counter_remove(struct vg_counter *c);
void vg_gauge_remove(struct vg_gauge *g);
void vg_histogram_remove(struct vg_histogram *h);
/* Hides every series, in every family, whose labels include all `n` name=value pairs (a family
 * lacking one of the names is untouched), e.g. {model, version} when a model version unloads.
 * Returns how many series it hid. Locks the registry. */
int vg_registry_remove_matching(struct vg_registry *r, const char *const *names,
                                const char *const *values, size_t n);

/* A collector runs at the start of every render, under the registry lock, before any value is
 * read: it may refresh gauges or a snapshot that vg_*_func callbacks read. `release` (may be NULL)
 * is called with arg by vg_registry_release. */
int vg_registry_add_collector(struct vg_registry *r, void (*collect)(void *arg),
                              void (*release)(void *arg), void *arg);

/* Registers the process_* metrics (Linux /proc/self, getrlimit): process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds,
 * process_max_fds, process_start_time_seconds. Read once per scrape. */
int vg_registry_add_process_metrics(struct vg_registry *r, struct vg_error *err);
/* Registers vigil_build_info{version[,commit]} 1. `commit` may be NULL (label omitted). */
int vg_registry_add_build_info(struct vg_registry *r, const char *version, const char *commit,
                               struct vg_error *err);

/* ---- Exposition ---- */

enum vg_expo_format {
    VG_EXPO_PROMETHEUS, /* text format 0.0.4 */
    VG_EXPO_OPENMETRICS /* OpenMetrics 1.0.0 text */
};

#define VG_EXPO_CONTENT_TYPE_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"
#define VG_EXPO_CONTENT_TYPE_OPENMETRICS                                                           \
    "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* A growing output buffer with a cap: appending past `max` bytes fails with -VG_ENOMEM and leaves
 * the buffer empty. The caller owns the struct; vg_expo_buf_release frees data. */
struct vg_expo_buf {
    char *data; /* NUL-terminated when non-NULL */
    size_t len;
    size_t alloc;
    size_t max;
};
void vg_expo_buf_init(struct vg_expo_buf *b, size_t max);
void vg_expo_buf_reset(struct vg_expo_buf *b); /* len = 0, keeps the allocation */
void vg_expo_buf_release(struct vg_expo_buf *b);

/* Renders every visible series into `out` (replacing its contents). Returns 0, or -VG_ENOMEM when
 * the text would exceed out->max (out is then empty). Runs collectors first. Locks the registry. */
int vg_registry_render(struct vg_registry *r, enum vg_expo_format fmt, struct vg_expo_buf *out);

/* Chooses the format for an HTTP Accept header value (may be NULL): OpenMetrics when a media
 * range application/openmetrics-text has q > 0 and a q at least that of text/plain or of a
 * wildcard range (text/star, star/star); otherwise 0.0.4. *content_type (may be NULL) receives the matching static string. */
enum vg_expo_format vg_expo_negotiate(const char *accept, const char **content_type);

/* Formats a double as the formats want: shortest round-trip digits, exponent as Go's %g does
 * for shortest precision (1e+06, 0.005), NaN, +Inf, -Inf. Returns the length; buf needs 32 bytes.
 */
int vg_expo_format_double(char *buf, size_t size, double v);

#ifdef __cplusplus
}
#endif

#endif
