/*
 * Series values and their lock-free updates.
 *
 * Counters and histogram buckets are split into VG__SHARDS shards of relaxed atomic uint64, each
 * on its own cache line; a thread always writes the shard given by a thread-local index assigned
 * round-robin on the thread's first update, so up to 16 threads never share a line. Readers sum
 * the shards. Gauges and histogram sums are doubles stored as bit patterns in an atomic uint64 and
 * updated by compare-and-swap; the histogram sum is sharded too, so the CAS rarely retries.
 * Relaxed ordering is enough: each value is independent, and the scrape only needs every
 * increment to be counted exactly once, which atomic read-modify-write guarantees.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static atomic_uint vg__next_shard;
static _Thread_local unsigned vg__my_shard = UINT_MAX;

unsigned vg__shard_index(void)
{
    if (vg__my_shard == UINT_MAX)
        vg__my_shard =
            atomic_fetch_add_explicit(&vg__next_shard, 1, memory_order_relaxed) % VG__SHARDS;
    return vg__my_shard;
}

static uint64_t double_bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double bits_double(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

double vg__bits_load(const atomic_uint_least64_t *p)
{
    return bits_double(atomic_load_explicit((atomic_uint_least64_t *)p, memory_order_relaxed));
}

void vg__bits_add(atomic_uint_least64_t *p, double delta)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old, double_bits(bits_double(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

struct vg__child *vg__child_alloc(struct vg_family *f)
{
    struct vg__child *c = NULL;
    switch (f->type) {
    case VG_METRIC_COUNTER: {
        struct vg_counter *k = aligned_alloc(VG__CACHE_LINE, sizeof *k);
        if (!k)
            return NULL;
        memset(k, 0, sizeof *k);
        for (int s = 0; s < VG__SHARDS; s++)
            atomic_init(&k->shards[s].count, 0);
        c = &k->head;
        break;
    }
    case VG_METRIC_GAUGE: {
        struct vg_gauge *g = calloc(1, sizeof *g);
        if (!g)
            return NULL;
        atomic_init(&g->bits, double_bits(0.0));
        c = &g->head;
        break;
    }
    case VG_METRIC_HISTOGRAM: {
        struct vg_histogram *h = calloc(1, sizeof *h);
        if (!h)
            return NULL;
        size_t words_per_line = VG__CACHE_LINE / sizeof(uint64_t);
        size_t words = f->n_bounds + 2; /* buckets incl. +Inf, then the sum */
        h->stride = (words + words_per_line - 1) / words_per_line * words_per_line;
        h->bounds = f->bounds;
        h->n_bounds = f->n_bounds;
        size_t bytes = h->stride * VG__SHARDS * sizeof(uint64_t);
        h->cells = aligned_alloc(VG__CACHE_LINE, bytes);
        if (!h->cells) {
            free(h);
            return NULL;
        }
        for (size_t i = 0; i < h->stride * VG__SHARDS; i++)
            atomic_init(&h->cells[i], 0); /* 0 is also the bit pattern of +0.0 */
        c = &h->head;
        break;
    }
    }
    c->family = f;
    atomic_init(&c->removed, 0);
    return c;
}

void vg__child_free(struct vg__child *c, enum vg_metric_type type)
{
    if (c->label_values) {
        for (size_t i = 0; i < c->family->n_labels; i++)
            free(c->label_values[i]);
        free(c->label_values);
    }
    if (type == VG_METRIC_HISTOGRAM)
        free(((struct vg_histogram *)c)->cells);
    free(c);
}

void vg_counter_inc(struct vg_counter *c)
{
    atomic_fetch_add_explicit(&c->shards[vg__shard_index()].count, 1, memory_order_relaxed);
}

void vg_counter_add(struct vg_counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->shards[vg__shard_index()].count, n, memory_order_relaxed);
}

uint64_t vg_counter_value(const struct vg_counter *c)
{
    uint64_t total = 0;
    for (int s = 0; s < VG__SHARDS; s++)
        total += atomic_load_explicit((atomic_uint_least64_t *)&c->shards[s].count,
                                      memory_order_relaxed);
    return total;
}

void vg_gauge_set(struct vg_gauge *g, double v)
{
    atomic_store_explicit(&g->bits, double_bits(v), memory_order_relaxed);
}

void vg_gauge_add(struct vg_gauge *g, double delta)
{
    vg__bits_add(&g->bits, delta);
}

void vg_gauge_inc(struct vg_gauge *g)
{
    vg__bits_add(&g->bits, 1.0);
}

void vg_gauge_dec(struct vg_gauge *g)
{
    vg__bits_add(&g->bits, -1.0);
}

double vg_gauge_value(const struct vg_gauge *g)
{
    return vg__bits_load(&g->bits);
}

void vg_histogram_observe(struct vg_histogram *h, double v)
{
    /* First bucket with v <= bound; written so that NaN falls through to +Inf. */
    size_t lo = 0, hi = h->n_bounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= h->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_uint_least64_t *shard = h->cells + (size_t)vg__shard_index() * h->stride;
    atomic_fetch_add_explicit(&shard[lo], 1, memory_order_relaxed);
    vg__bits_add(&shard[h->n_bounds + 1], v);
}

void vg_histogram_value(const struct vg_histogram *h, uint64_t *count, double *sum)
{
    uint64_t n = 0;
    double s = 0;
    for (size_t k = 0; k < VG__SHARDS; k++) {
        const atomic_uint_least64_t *shard = h->cells + k * h->stride;
        for (size_t b = 0; b <= h->n_bounds; b++)
            n += atomic_load_explicit((atomic_uint_least64_t *)&shard[b], memory_order_relaxed);
        s += vg__bits_load(&shard[h->n_bounds + 1]);
    }
    if (count)
        *count = n;
    if (sum)
        *sum = s;
}

void vg_counter_remove(struct vg_counter *c)
{
    atomic_store(&c->head.removed, 1);
}

void vg_gauge_remove(struct vg_gauge *g)
{
    atomic_store(&g->head.removed, 1);
}

void vg_histogram_remove(struct vg_histogram *h)
{
    atomic_store(&h->head.removed, 1);
}
