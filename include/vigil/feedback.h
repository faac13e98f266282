/*
 * vigil feedback: the prediction store and the live-accuracy window behind ground-truth feedback
 * (docs/monitoring.md, "Model quality: ground-truth feedback"; the HTTP side is
 * src/server/api_feedback.c).
 *
 * The prediction store keeps the last `capacity` predictions, each under its id (a caller's
 * string of 1 to VG_FEEDBACK_MAX_ID bytes), with an owner number (the server: which model version
 * made it), the prediction (a class index or a value, as float32), a time in whole seconds, and
 * whether feedback arrived.
 * When full, the oldest prediction is evicted. The store also remembers the ids of recently
 * evicted predictions, so a lookup tells three answers apart: kept, evicted, never seen (or
 * evicted so long ago that it was forgotten). The design and its guarantees are in the note at
 * the top of src/monitor/feedback.c.
 *
 * Ownership and thread-safety rules
 * ---------------------------------
 * - vg_feedback_store_new allocates the store; vg_feedback_store_free frees it when no thread
 *   uses it any more. Every other function may be called by any number of threads at once.
 * - No function allocates after vg_feedback_store_new. Locks are per index shard and per entry:
 *   a put holds each for a copy of a few dozen bytes, a lookup holds its shard's for a scan of
 *   at most about 2,100 cells (a couple of microseconds). There is no global lock.
 * - A struct vg_live_accuracy lives in caller memory (init/release); vg_live_accuracy_add and
 *   vg_live_accuracy_value lock the window's own mutex.
 * - Functions that can fail return 0 or a negative VG_E* code (include/vigil/engine.h).
 */
#ifndef VIGIL_FEEDBACK_H
#define VIGIL_FEEDBACK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "vigil/monitor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest id kept, in bytes: what is left of a store entry of two cache lines after its 24-byte
 * header. The first 40 bytes of an id share the header's cache line, so a prediction under a
 * UUID (36 bytes), or row 0 to 999 of a batch under one, writes one line. */
#define VG_FEEDBACK_MAX_ID 104

/* The largest store and window the server accepts (--feedback-store, --live-accuracy-window). */
#define VG_FEEDBACK_MAX_CAPACITY 10000000u

struct vg_feedback_store;

enum vg_feedback_status {
    VG_FEEDBACK_FOUND,     /* find: the prediction is kept */
    VG_FEEDBACK_EVICTED,   /* find, claim: it was made and has been evicted */
    VG_FEEDBACK_UNKNOWN,   /* find: never made, or evicted too long ago to be remembered */
    VG_FEEDBACK_CLAIMED,   /* claim: the caller is the one whose feedback counts */
    VG_FEEDBACK_DUPLICATE, /* claim: feedback for this prediction was given already */
};

/* A copy of one kept prediction. */
struct vg_feedback_record {
    uint64_t seq;     /* the prediction's number in the store's history (1, 2, ...) */
    uint32_t owner;   /* as given to put */
    float prediction; /* as given to put */
    uint32_t time;    /* as given to put */
    int has_feedback; /* 1 once a claim succeeded */
};

/*
 * Makes a store for `capacity` predictions (1 to VG_FEEDBACK_MAX_CAPACITY), keyed with a random
 * SipHash key. Memory: 128 bytes per prediction for the entries plus the index (see
 * src/monitor/feedback.c), allocated zeroed so that pages are touched only as predictions
 * arrive. Returns 0 and *out, -VG_EINVAL for a bad capacity, -VG_ENOMEM.
 */
int vg_feedback_store_new(size_t capacity, struct vg_feedback_store **out);
void vg_feedback_store_free(struct vg_feedback_store *s);
size_t vg_feedback_store_capacity(const struct vg_feedback_store *s);
/* Predictions put so far (kept or evicted). */
uint64_t vg_feedback_store_count(const struct vg_feedback_store *s);

/*
 * Keeps a prediction under `id` (id_len bytes, 1 to VG_FEEDBACK_MAX_ID; need not be
 * NUL-terminated), evicting the oldest when the store is full. An id put again hides its earlier
 * prediction: lookups find the newest. Returns 0, or -VG_EINVAL when the id is empty or too long
 * (nothing is kept). Takes one entry's spinlock and one shard's mutex, one after the other.
 */
int vg_feedback_store_put(struct vg_feedback_store *s, const char *id, size_t id_len,
                          uint32_t owner, float prediction, uint32_t time);

/* Looks `id` up: VG_FEEDBACK_FOUND (and a copy in *out), VG_FEEDBACK_EVICTED or
 * VG_FEEDBACK_UNKNOWN. */
enum vg_feedback_status vg_feedback_store_find(struct vg_feedback_store *s, const char *id,
                                               size_t id_len, struct vg_feedback_record *out);

/*
 * Marks the prediction `rec` (from find) as having received feedback: VG_FEEDBACK_CLAIMED for
 * exactly one caller per prediction, VG_FEEDBACK_DUPLICATE for every other, VG_FEEDBACK_EVICTED
 * when it was evicted since the find.
 */
enum vg_feedback_status vg_feedback_store_claim(struct vg_feedback_store *s,
                                                const struct vg_feedback_record *rec);

/* SipHash-2-4 of data with a 16-byte key (exposed for its test vectors). */
uint64_t vg_feedback_siphash(const uint8_t key[16], const void *data, size_t len);

/* ---- Live accuracy ----------------------------------------------------------------------------
 * The share of correct outcomes among the last `size` feedbacks: a ring of `size` outcome bits
 * and a running count of the correct ones, under a mutex. */
struct vg_live_accuracy {
    pthread_mutex_t lock;
    uint64_t *bits;   /* outcome i of the ring is bit i % 64 of bits[i / 64] */
    uint32_t size;    /* window length */
    uint32_t next;    /* ring position of the next outcome */
    uint32_t filled;  /* outcomes in the window, <= size */
    uint32_t correct; /* set bits in the window */
    /* vigil_live_accuracy and its count, set under the lock after each add; may be NULL */
    struct vg_gauge *accuracy, *feedbacks;
};

/* An empty window of `size` outcomes (1 to VG_FEEDBACK_MAX_CAPACITY). When the gauges are not
 * NULL they are set to NaN and 0 now and after every add. Returns 0, -VG_EINVAL, -VG_ENOMEM. */
int vg_live_accuracy_init(struct vg_live_accuracy *w, uint32_t size, struct vg_gauge *accuracy,
                          struct vg_gauge *feedbacks);
void vg_live_accuracy_release(struct vg_live_accuracy *w);
/* Adds one outcome (the oldest leaves a full window). Returns the accuracy over the window now;
 * *n (may be NULL) receives how many outcomes it covers. */
double vg_live_accuracy_add(struct vg_live_accuracy *w, int correct, uint32_t *n);
/* The accuracy over the window, NaN when it is empty; *n as above. */
double vg_live_accuracy_value(struct vg_live_accuracy *w, uint32_t *n);

#ifdef __cplusplus
}
#endif

#endif
