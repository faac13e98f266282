/*
 * The prediction store and the live-accuracy window (include/vigil/feedback.h).
 *
 * Design of the store
 * -------------------
 * Every successful prediction of the server is put here (one entry per row), so the put path
 * runs on every request and must stay a small fraction of one; feedback lookups are rare next to
 * it. So puts get the cheap path (sequential writes, no random memory access after the hash) and
 * lookups pay a short scan. Three parts:
 *
 * 1. The entries: a ring of `capacity` entries of 128 bytes (two cache lines, aligned; the header
 *    and the first 40 bytes of the id in the first, so that a UUID's entry is one line), written
 *    in put order. A put takes a number from one global atomic counter (a fetch-and-add, never a
 *    lock) and writes entry number % capacity: the entry it overwrites is the oldest one, so
 *    eviction is exactly first-in, first-out. Each entry has its own one-byte spinlock, held for
 *    the copy of one id (tens of nanoseconds); two threads only meet on one when a put wraps
 *    onto an entry being read by a feedback lookup, or when puts lap the whole ring at once (a
 *    tiny store). An entry also keeps its number: a put that finds a higher number already there
 *    (a racing put lapped it) leaves the entry alone, and its prediction is born evicted.
 *
 * 2. The index: the ids split into S shards by the top bits of their 64-bit keyed hash (S a power
 *    of two, about capacity / 1024 and at least 64), each shard a ring of its last R ids as
 *    (hash, entry number) cells, R = ceil(2 * capacity / S) + 64, under its own spinlock. A put
 *    appends one cell to its shard's ring, overwriting the shard's oldest: a sequential write,
 *    where a hash table would cost two cache misses per put (inserting the new id, deleting the
 *    one that leaves). A lookup scans its shard's R cells (about 2,100 at most, 33 KiB, a few
 *    microseconds) and keeps the highest number whose hash matches; the full id is then compared
 *    in the entry. Two puts contend only when their ids fall into the same shard.
 *
 * 3. Remembering evictions: the shard rings hold 2 * capacity + 64 * S ids in all, about twice
 *    what the entries keep, so they remember every kept prediction and about `capacity` evicted
 *    ones more. A lookup whose hash is in its shard while the entry now holds a higher number is
 *    an evicted prediction; a hash not in its shard is a prediction never made (or evicted so
 *    long ago, about `capacity` puts after its eviction, that it was forgotten: the answer is then
 *    "unknown", and the server's message says "never made or not kept").
 *
 * Why these guarantees hold:
 * - A kept prediction is always found: its id is among the last `capacity` puts, of which a
 *   shard receives capacity / S on average; it would leave its shard's ring only after R more
 *   puts into that shard, i.e. a shard would have to receive more than twice its share plus 64.
 *   The keyed hash (SipHash-2-4 with a random key per process) spreads ids evenly whatever the
 *   clients choose, so that is a many-sigma event (for the default 100,000 predictions, 128
 *   shards: R = 1,627 against a mean of 781 and a standard deviation of 28).
 * - A never-seen id reads as "evicted" only if its 64-bit hash equals that of one of the
 *   2 * capacity + 64 * S remembered ids: probability below 2^-64 * (2 * capacity + 64 * S) per
 *   lookup, about 1e-14 at the default size. No other path leads to "evicted".
 * - A kept id is compared byte for byte; a hash collision with a kept entry reads as "unknown".
 *
 * Feedback: find copies the entry (under its spinlock) and returns its number; claim takes the
 * spinlock again and sets the entry's feedback flag only when the number is still the same and
 * the flag is clear: one caller wins per prediction, however many race, and a prediction evicted
 * between find and claim is reported as evicted.
 *
 * Memory: entries 128 bytes each, index rings 16 bytes a cell (2 * capacity + 64 * S cells) and
 * 64 bytes a shard. At the default 100,000 predictions: 12.2 MiB of entries + 3.2 MiB of index,
 * about 160 bytes per prediction. All of it is allocated zeroed up front, so the kernel maps
 * pages only as they are written: an idle server does not pay for it.
 *
 * The live-accuracy window is a ring of outcome bits with a running count under a mutex: one
 * per model version, touched only by feedback requests.
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "vigil/feedback.h"

#define MIN_SHARD_BITS 6 /* at least 64 shards */
#define PER_SHARD 1024   /* predictions kept per shard, about, in a large store */
#define MIN_SHARD_IDS 64 /* ids every shard remembers beyond its share */
#define SPINS_BEFORE_YIELD 64

/* Small fields first, so that a short id's whole entry is one cache line (see
 * VG_FEEDBACK_MAX_ID): each put writes memory that is out of the caches. */
struct entry {
    atomic_uchar lock;
    uint8_t has_feedback;
    uint8_t id_len;
    uint8_t pad;
    float prediction;
    uint64_t seq; /* 0: never written */
    uint32_t owner;
    uint32_t time;
    char id[VG_FEEDBACK_MAX_ID];
};

_Static_assert(sizeof(struct entry) == 128, "an entry is two cache lines");
_Static_assert(offsetof(struct entry, id) == 128 - VG_FEEDBACK_MAX_ID, "the id ends the entry");

struct cell {
    uint64_t hash;
    uint64_t seq; /* 0: empty */
};

struct shard {
    alignas(64) atomic_uchar lock; /* a spinlock, see spin_lock */
    atomic_uint next; /* where the next id goes; written under the lock, read without it only to
                         prefetch the cell */
};

struct vg_feedback_store {
    alignas(64) atomic_uint_least64_t next_seq; /* alone on its line: every put adds to it */
    alignas(64) size_t capacity;
    struct entry *entries; /* 64-byte aligned inside entries_alloc */
    void *entries_alloc;
    uint8_t key[16];
    unsigned shard_bits;
    uint32_t n_shards;
    uint32_t remember;    /* cells of each shard's ring */
    struct shard *shards; /* n_shards, 64-byte aligned */
    struct cell *cells;   /* every shard's ring, one block */
};

/* ---- SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012) ---------- */

static inline uint64_t rotl64(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline void sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = rotl64(v[1], 13) ^ v[0];
    v[0] = rotl64(v[0], 32);
    v[2] += v[3];
    v[3] = rotl64(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = rotl64(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = rotl64(v[1], 17) ^ v[2];
    v[2] = rotl64(v[2], 32);
}

uint64_t vg_feedback_siphash(const uint8_t key[16], const void *data, size_t len)
{
    const uint8_t *in = data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
                     k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL};
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(in + i);
        v[3] ^= m;
        sip_round(v);
        sip_round(v);
        v[0] ^= m;
    }
    uint64_t last = (uint64_t)(len & 0xff) << 56;
    for (size_t i = 0; i < (len & 7); i++)
        last |= (uint64_t)in[whole + i] << (8 * i);
    v[3] ^= last;
    sip_round(v);
    sip_round(v);
    v[0] ^= last;
    v[2] ^= 0xff;
    for (int i = 0; i < 4; i++)
        sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- Entries --------------------------------------------------------------------------------- */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/*
 * The entries' and the shards' locks: one byte, taken with an exchange, given back with a plain
 * release store. Holders copy a few dozen bytes (or, for a lookup, scan one shard: a couple of
 * microseconds), so waiting means spinning briefly, and yielding when the holder seems to have
 * been descheduled. Not a mutex: unlocking a mutex is an atomic read-modify-write, which would
 * make every put wait for its cache-missing stores to complete; a release store does not.
 */
static void spin_lock(atomic_uchar *lock)
{
    unsigned spins = 0;
    while (atomic_exchange_explicit(lock, 1, memory_order_acquire)) {
        while (atomic_load_explicit(lock, memory_order_relaxed)) {
            if (++spins % SPINS_BEFORE_YIELD == 0)
                sched_yield();
            else
                cpu_relax();
        }
    }
}

static void spin_unlock(atomic_uchar *lock)
{
    atomic_store_explicit(lock, 0, memory_order_release);
}

static struct entry *entry_of(const struct vg_feedback_store *s, uint64_t seq)
{
    return &s->entries[seq % s->capacity];
}

/* ---- The index ------------------------------------------------------------------------------ */

static uint64_t hash_id(const struct vg_feedback_store *s, const char *id, size_t len)
{
    return vg_feedback_siphash(s->key, id, len);
}

static struct shard *shard_of(const struct vg_feedback_store *s, uint64_t hash)
{
    return &s->shards[s->shard_bits ? hash >> (64 - s->shard_bits) : 0];
}

static struct cell *ring_of(const struct vg_feedback_store *s, const struct shard *sh)
{
    return s->cells + (size_t)(sh - s->shards) * s->remember;
}

/* The highest entry number the shard remembers for `hash`, 0 when none. Caller holds the lock.
 * Every cell is read: puts racing into one shard may append slightly out of number order, and
 * an id put twice has two cells. */
static uint64_t shard_lookup(const struct vg_feedback_store *s, const struct shard *sh,
                             uint64_t hash)
{
    const struct cell *ring = ring_of(s, sh);
    uint64_t best = 0;
    for (uint32_t i = 0; i < s->remember; i++)
        if (ring[i].hash == hash && ring[i].seq > best)
            best = ring[i].seq;
    return best;
}

/* ---- The store ------------------------------------------------------------------------------- */

static void random_key(uint8_t key[16])
{
    size_t got = 0;
    while (got < 16) {
        ssize_t n = getrandom(key + got, 16 - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got == 16)
        return;
    /* No getrandom (an old kernel): still a per-process key, though a guessable one. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t a = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)getpid() << 48;
    uint64_t b = (uint64_t)(uintptr_t)key ^ (uint64_t)clock();
    memcpy(key, &a, 8);
    memcpy(key + 8, &b, 8);
}

int vg_feedback_store_new(size_t capacity, struct vg_feedback_store **out)
{
    *out = NULL;
    if (capacity < 1 || capacity > VG_FEEDBACK_MAX_CAPACITY)
        return -VG_EINVAL;
    struct vg_feedback_store *s = aligned_alloc(64, sizeof *s);
    if (!s)
        return -VG_ENOMEM;
    memset(s, 0, sizeof *s);
    atomic_init(&s->next_seq, 0);
    s->capacity = capacity;
    random_key(s->key);
    s->shard_bits = MIN_SHARD_BITS;
    while (((size_t)1 << s->shard_bits) * PER_SHARD < capacity)
        s->shard_bits++;
    s->n_shards = (uint32_t)1 << s->shard_bits;
    s->remember = (uint32_t)((2 * capacity + s->n_shards - 1) / s->n_shards) + MIN_SHARD_IDS;
    /* calloc, not memset: large zeroed blocks come from the kernel untouched. */
    s->entries_alloc = calloc(capacity + 1, sizeof(struct entry));
    s->cells = calloc((size_t)s->n_shards * s->remember, sizeof *s->cells);
    s->shards = aligned_alloc(64, (size_t)s->n_shards * sizeof *s->shards);
    if (!s->entries_alloc || !s->cells || !s->shards)
        goto oom;
    uintptr_t base = (uintptr_t)s->entries_alloc;
    s->entries = (struct entry *)((base + 63) & ~(uintptr_t)63);
    memset(s->shards, 0, (size_t)s->n_shards * sizeof *s->shards);
    for (uint32_t k = 0; k < s->n_shards; k++) {
        atomic_init(&s->shards[k].lock, 0);
        atomic_init(&s->shards[k].next, 0);
    }
    *out = s;
    return 0;
oom:
    free(s->shards);
    free(s->cells);
    free(s->entries_alloc);
    free(s);
    return -VG_ENOMEM;
}

void vg_feedback_store_free(struct vg_feedback_store *s)
{
    if (!s)
        return;
    free(s->shards);
    free(s->cells);
    free(s->entries_alloc);
    free(s);
}

size_t vg_feedback_store_capacity(const struct vg_feedback_store *s)
{
    return s->capacity;
}

uint64_t vg_feedback_store_count(const struct vg_feedback_store *s)
{
    return atomic_load_explicit(&s->next_seq, memory_order_relaxed);
}

int vg_feedback_store_put(struct vg_feedback_store *s, const char *id, size_t id_len,
                          uint32_t owner, float prediction, uint32_t time)
{
    if (id_len == 0 || id_len > VG_FEEDBACK_MAX_ID)
        return -VG_EINVAL;
    uint64_t seq = atomic_fetch_add_explicit(&s->next_seq, 1, memory_order_relaxed) + 1;
    struct entry *e = entry_of(s, seq);
    /* The entry and the shard's next cell were last written long ago: a server does much between
     * two puts, so they are out of the caches. Ask for both at once, then hash while they come. */
    __builtin_prefetch(e, 1, 3);
    if (id_len > 64 - offsetof(struct entry, id))
        __builtin_prefetch((const char *)e + 64, 1, 3);
    uint64_t hash = hash_id(s, id, id_len);
    struct shard *sh = shard_of(s, hash);
    struct cell *ring = ring_of(s, sh);
    __builtin_prefetch(&ring[atomic_load_explicit(&sh->next, memory_order_relaxed)], 1, 3);
    spin_lock(&e->lock);
    if (e->seq < seq) {
        e->seq = seq;
        e->has_feedback = 0;
        e->id_len = (uint8_t)id_len;
        memcpy(e->id, id, id_len);
        e->owner = owner;
        e->prediction = prediction;
        e->time = time;
    }
    spin_unlock(&e->lock);
    /* Indexed after the entry is written, so a lookup that finds the number finds the entry. */
    spin_lock(&sh->lock);
    unsigned next = atomic_load_explicit(&sh->next, memory_order_relaxed);
    ring[next] = (struct cell){hash, seq};
    atomic_store_explicit(&sh->next, next + 1 == s->remember ? 0 : next + 1, memory_order_relaxed);
    spin_unlock(&sh->lock);
    return 0;
}

enum vg_feedback_status vg_feedback_store_find(struct vg_feedback_store *s, const char *id,
                                               size_t id_len, struct vg_feedback_record *out)
{
    memset(out, 0, sizeof *out);
    if (id_len == 0 || id_len > VG_FEEDBACK_MAX_ID)
        return VG_FEEDBACK_UNKNOWN;
    uint64_t hash = hash_id(s, id, id_len);
    struct shard *sh = shard_of(s, hash);
    spin_lock(&sh->lock);
    uint64_t seq = shard_lookup(s, sh, hash);
    spin_unlock(&sh->lock);
    if (!seq)
        return VG_FEEDBACK_UNKNOWN;
    enum vg_feedback_status status;
    struct entry *e = entry_of(s, seq);
    spin_lock(&e->lock);
    if (e->seq != seq) {
        status = VG_FEEDBACK_EVICTED; /* a later put overwrote it (e->seq > seq) */
    } else if (e->id_len != id_len || memcmp(e->id, id, id_len)) {
        status = VG_FEEDBACK_UNKNOWN; /* another id with the same 64-bit hash */
    } else {
        status = VG_FEEDBACK_FOUND;
        out->seq = seq;
        out->owner = e->owner;
        out->prediction = e->prediction;
        out->time = e->time;
        out->has_feedback = e->has_feedback;
    }
    spin_unlock(&e->lock);
    return status;
}

enum vg_feedback_status vg_feedback_store_claim(struct vg_feedback_store *s,
                                                const struct vg_feedback_record *rec)
{
    if (!rec->seq)
        return VG_FEEDBACK_EVICTED;
    enum vg_feedback_status status;
    struct entry *e = entry_of(s, rec->seq);
    spin_lock(&e->lock);
    if (e->seq != rec->seq) {
        status = VG_FEEDBACK_EVICTED;
    } else if (e->has_feedback) {
        status = VG_FEEDBACK_DUPLICATE;
    } else {
        e->has_feedback = 1;
        status = VG_FEEDBACK_CLAIMED;
    }
    spin_unlock(&e->lock);
    return status;
}

/* ---- Live accuracy --------------------------------------------------------------------------- */

int vg_live_accuracy_init(struct vg_live_accuracy *w, uint32_t size, struct vg_gauge *accuracy,
                          struct vg_gauge *feedbacks)
{
    memset(w, 0, sizeof *w);
    if (size < 1 || size > VG_FEEDBACK_MAX_CAPACITY)
        return -VG_EINVAL;
    w->bits = calloc(((size_t)size + 63) / 64, sizeof *w->bits);
    if (!w->bits)
        return -VG_ENOMEM;
    if (pthread_mutex_init(&w->lock, NULL)) {
        free(w->bits);
        w->bits = NULL;
        return -VG_ENOMEM;
    }
    w->size = size;
    w->accuracy = accuracy;
    w->feedbacks = feedbacks;
    if (accuracy)
        vg_gauge_set(accuracy, NAN);
    if (feedbacks)
        vg_gauge_set(feedbacks, 0);
    return 0;
}

void vg_live_accuracy_release(struct vg_live_accuracy *w)
{
    if (!w->bits)
        return;
    pthread_mutex_destroy(&w->lock);
    free(w->bits);
    memset(w, 0, sizeof *w);
}

double vg_live_accuracy_add(struct vg_live_accuracy *w, int correct, uint32_t *n)
{
    pthread_mutex_lock(&w->lock);
    uint64_t *word = &w->bits[w->next / 64];
    uint64_t bit = (uint64_t)1 << (w->next % 64);
    if (w->filled == w->size) {
        if (*word & bit) /* the oldest outcome leaves the window */
            w->correct--;
    } else {
        w->filled++;
    }
    if (correct) {
        *word |= bit;
        w->correct++;
    } else {
        *word &= ~bit;
    }
    w->next = w->next + 1 == w->size ? 0 : w->next + 1;
    double acc = (double)w->correct / (double)w->filled;
    uint32_t filled = w->filled;
    /* Under the lock, so that the gauges never go back to an older pair of values. */
    if (w->accuracy)
        vg_gauge_set(w->accuracy, acc);
    if (w->feedbacks)
        vg_gauge_set(w->feedbacks, (double)filled);
    pthread_mutex_unlock(&w->lock);
    if (n)
        *n = filled;
    return acc;
}

double vg_live_accuracy_value(struct vg_live_accuracy *w, uint32_t *n)
{
    pthread_mutex_lock(&w->lock);
    uint32_t filled = w->filled;
    double acc = filled ? (double)w->correct / (double)filled : NAN;
    pthread_mutex_unlock(&w->lock);
    if (n)
        *n = filled;
    return acc;
}
