/* Internal layout of the monitor library's families and series (see docs/metrics.md). */
#ifndef VG_MONITOR_INTERNAL_H
#define VG_MONITOR_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "vigil/monitor.h"

#define VG__SHARDS 16
#define VG__CACHE_LINE 64

/* Common head of every child series. Children are appended under the registry lock and never
 * unlinked before vg_registry_release. */
struct vg__child {
    struct vg__child *next;
    struct vg_family *family;
    char **label_values; /* family->n_labels strings */
    atomic_int removed;
    vg_value_fn fn; /* scrape-time value, or NULL */
    void *fn_arg;
};

/* One padded shard of a counter: each thread writes its own cache line. */
struct vg__counter_shard {
    _Alignas(VG__CACHE_LINE) atomic_uint_least64_t count;
};

struct vg_counter {
    struct vg__child head;
    struct vg__counter_shard shards[VG__SHARDS];
};

struct vg_gauge {
    struct vg__child head;
    atomic_uint_least64_t bits; /* the double's bit pattern */
};

/* Histogram shards: shard s owns words [s*stride, (s+1)*stride) of `cells`: first the n_bounds+1
 * non-cumulative bucket counts, then the sum's bit pattern. stride is rounded up to a cache line.
 */
struct vg_histogram {
    struct vg__child head;
    const double *bounds;
    size_t n_bounds;
    size_t stride;
    atomic_uint_least64_t *cells; /* aligned to a cache line */
};

struct vg_family {
    struct vg_family *next;
    struct vg_registry *registry;
    enum vg_metric_type type;
    char *name; /* as exposed in 0.0.4 (counters end with _total) */
    char *base; /* OpenMetrics family name (counters without _total) */
    char *help;
    size_t n_labels;
    char **label_names;
    double *bounds;
    size_t n_bounds;
    char (*le_text)[32]; /* bounds formatted once, for the le label */
    struct vg__child *children;
    struct vg__child *last_child;
};

struct vg__collector {
    struct vg__collector *next;
    void (*collect)(void *arg);
    void (*release)(void *arg);
    void *arg;
};

/* Shard index of the calling thread (assigned round-robin on first use). */
unsigned vg__shard_index(void);
/* Atomic double helpers on a bit pattern. */
double vg__bits_load(const atomic_uint_least64_t *p);
void vg__bits_add(atomic_uint_least64_t *p, double delta);
/* Frees a child (any type). */
void vg__child_free(struct vg__child *c, enum vg_metric_type type);
/* Allocates a child of the family's type with zeroed values; NULL on failure. */
struct vg__child *vg__child_alloc(struct vg_family *f);

#endif
