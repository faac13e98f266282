/*
 * Feedback tests (src/monitor/feedback.c): SipHash-2-4 against its published vectors; the
 * prediction store's put and find, first-in first-out eviction, evicted told apart from never
 * seen (and forgotten after long enough), ids put twice, id lengths; claims: exactly one winner
 * among 8 threads for every prediction, claims of evicted predictions; puts from 8 threads at
 * once, with and without eviction; the live-accuracy window's arithmetic, its roll-over (against
 * a brute-force recount) and its gauges.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vigil/feedback.h"

#define THREADS 8

static size_t id_of(char *buf, size_t size, const char *prefix, long i)
{
    int n = snprintf(buf, size, "%s%ld", prefix, i);
    return (size_t)n;
}

static enum vg_feedback_status find(struct vg_feedback_store *s, const char *id,
                                    struct vg_feedback_record *rec)
{
    struct vg_feedback_record local;
    return vg_feedback_store_find(s, id, strlen(id), rec ? rec : &local);
}

static void put(struct vg_feedback_store *s, const char *id, uint32_t owner, float pred)
{
    assert_int_equal(vg_feedback_store_put(s, id, strlen(id), owner, pred, 1700000000u), 0);
}

/* ---- SipHash --------------------------------------------------------------------------------- */

static void test_siphash_vectors(void **state)
{
    (void)state;
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    /* The reference implementation's vectors.h, entry 0 (empty message), and the example of the
     * paper's appendix A (15 bytes 00..0e). */
    assert_true(vg_feedback_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ULL);
    assert_true(vg_feedback_siphash(key, msg, 15) == 0xa129ca6149be45e5ULL);
    /* Every length hashes differently, and the key matters. */
    uint64_t seen[64];
    for (int n = 0; n < 64; n++) {
        seen[n] = vg_feedback_siphash(key, msg, (size_t)n);
        for (int m = 0; m < n; m++)
            assert_true(seen[m] != seen[n]);
    }
    key[0] ^= 1;
    assert_true(vg_feedback_siphash(key, msg, 15) != 0xa129ca6149be45e5ULL);
}

/* ---- Put, find, evict ------------------------------------------------------------------------ */

static void test_put_find(void **state)
{
    (void)state;
    struct vg_feedback_store *s;
    const uint32_t owner_a = 3, owner_b = 70000;
    assert_int_equal(vg_feedback_store_new(0, &s), -VG_EINVAL);
    assert_null(s);
    assert_int_equal(vg_feedback_store_new(VG_FEEDBACK_MAX_CAPACITY + 1, &s), -VG_EINVAL);
    assert_int_equal(vg_feedback_store_new(100, &s), 0);
    assert_int_equal(vg_feedback_store_capacity(s), 100);
    put(s, "req-1", owner_a, 2);
    put(s, "req-2", owner_b, 0);
    put(s, "req-2/0", owner_b, 1.25f);
    assert_int_equal(vg_feedback_store_count(s), 3);

    struct vg_feedback_record rec;
    assert_int_equal(find(s, "req-1", &rec), VG_FEEDBACK_FOUND);
    assert_int_equal(rec.owner, owner_a);
    assert_true(rec.prediction == 2 && rec.time == 1700000000u && rec.seq == 1 &&
                !rec.has_feedback);
    assert_int_equal(find(s, "req-2/0", &rec), VG_FEEDBACK_FOUND);
    assert_int_equal(rec.owner, owner_b);
    assert_true(rec.prediction == 1.25f && rec.seq == 3);
    assert_int_equal(find(s, "req-2", &rec), VG_FEEDBACK_FOUND);
    assert_true(rec.prediction == 0);
    /* Prefixes, extensions and case are other ids. */
    assert_int_equal(find(s, "req-", NULL), VG_FEEDBACK_UNKNOWN);
    assert_int_equal(find(s, "req-11", NULL), VG_FEEDBACK_UNKNOWN);
    assert_int_equal(find(s, "REQ-1", NULL), VG_FEEDBACK_UNKNOWN);
    assert_int_equal(find(s, "", NULL), VG_FEEDBACK_UNKNOWN);

    /* An id put again: the newest prediction answers. */
    put(s, "req-1", owner_b, 7);
    assert_int_equal(find(s, "req-1", &rec), VG_FEEDBACK_FOUND);
    assert_int_equal(rec.owner, owner_b);
    assert_true(rec.prediction == 7 && rec.seq == 4);

    /* Id lengths: 1 to VG_FEEDBACK_MAX_ID bytes; ids need not be NUL-terminated. */
    char longest[VG_FEEDBACK_MAX_ID + 2];
    memset(longest, 'x', sizeof longest);
    assert_int_equal(vg_feedback_store_put(s, longest, VG_FEEDBACK_MAX_ID, 0, 1, 0), 0);
    assert_int_equal(vg_feedback_store_put(s, longest, VG_FEEDBACK_MAX_ID + 1, 0, 1, 0),
                     -VG_EINVAL);
    assert_int_equal(vg_feedback_store_put(s, longest, 0, 0, 1, 0), -VG_EINVAL);
    assert_int_equal(vg_feedback_store_find(s, longest, VG_FEEDBACK_MAX_ID, &rec),
                     VG_FEEDBACK_FOUND);
    assert_int_equal(vg_feedback_store_find(s, longest, VG_FEEDBACK_MAX_ID - 1, &rec),
                     VG_FEEDBACK_UNKNOWN);
    assert_int_equal(vg_feedback_store_find(s, longest, VG_FEEDBACK_MAX_ID + 1, &rec),
                     VG_FEEDBACK_UNKNOWN);
    assert_int_equal(vg_feedback_store_count(s), 5);
    vg_feedback_store_free(s);
}

static void test_eviction_order(void **state)
{
    (void)state;
    struct vg_feedback_store *s;
    char id[32];
    assert_int_equal(vg_feedback_store_new(5, &s), 0);
    for (long i = 0; i < 10; i++) {
        id_of(id, sizeof id, "p", i);
        put(s, id, 0, (float)i);
    }
    /* Exactly the last five are kept, each with its own prediction. */
    for (long i = 0; i < 10; i++) {
        struct vg_feedback_record rec;
        id_of(id, sizeof id, "p", i);
        enum vg_feedback_status st = find(s, id, &rec);
        assert_int_equal(st, i < 5 ? VG_FEEDBACK_EVICTED : VG_FEEDBACK_FOUND);
        if (st == VG_FEEDBACK_FOUND)
            assert_true(rec.prediction == (float)i);
    }
    /* One more evicts the oldest kept one, p5, and only it. */
    put(s, "p10", 0, 10);
    assert_int_equal(find(s, "p5", NULL), VG_FEEDBACK_EVICTED);
    for (long i = 6; i <= 10; i++) {
        id_of(id, sizeof id, "p", i);
        assert_int_equal(find(s, id, NULL), VG_FEEDBACK_FOUND);
    }
    /* Never seen is unknown, not evicted. */
    for (long i = 0; i < 10000; i++) {
        id_of(id, sizeof id, "never-", i);
        assert_int_equal(find(s, id, NULL), VG_FEEDBACK_UNKNOWN);
    }
    vg_feedback_store_free(s);
}

/* Evicted ids are remembered for about `capacity` puts more (at least 64 per shard), then
 * forgotten; kept ones are always found, whatever the store's size. The check covers the last
 * capacity / 2 + 100 evicted ids, which every shard remembers with many sigmas to spare. */
static void test_evicted_memory(void **state)
{
    (void)state;
    static const long capacities[] = {1, 5, 1000, 20000};
    char id[32];
    for (size_t c = 0; c < sizeof capacities / sizeof capacities[0]; c++) {
        long cap = capacities[c], total = 3 * cap + 200;
        struct vg_feedback_store *s;
        assert_int_equal(vg_feedback_store_new((size_t)cap, &s), 0);
        for (long i = 0; i < total; i++) {
            id_of(id, sizeof id, "q", i);
            put(s, id, 0, 0);
        }
        long found = 0, evicted = 0;
        for (long i = 0; i < total; i++) {
            id_of(id, sizeof id, "q", i);
            enum vg_feedback_status st = find(s, id, NULL);
            if (i >= total - cap) {
                assert_int_equal(st, VG_FEEDBACK_FOUND);
                found++;
            } else if (i >= total - cap - cap / 2 - 100) {
                /* the last capacity / 2 + 100 evicted ones: all remembered */
                assert_int_equal(st, VG_FEEDBACK_EVICTED);
                evicted++;
            } else {
                assert_int_not_equal(st, VG_FEEDBACK_FOUND);
            }
        }
        assert_int_equal(found, cap);
        assert_int_equal(evicted, cap / 2 + 100);
        for (long i = 0; i < 20000; i++) {
            id_of(id, sizeof id, "never-", i);
            assert_int_equal(find(s, id, NULL), VG_FEEDBACK_UNKNOWN);
        }
        vg_feedback_store_free(s);
    }

    /* Long after its eviction an id is forgotten: "unknown" (a shard remembers 65 ids for a
     * store of 5; the first id's shard receives about 1,500 of the next 100,000). */
    struct vg_feedback_store *s;
    assert_int_equal(vg_feedback_store_new(5, &s), 0);
    for (long i = 0; i < 100000; i++) {
        id_of(id, sizeof id, "r", i);
        put(s, id, 0, 0);
    }
    assert_int_equal(find(s, "r0", NULL), VG_FEEDBACK_UNKNOWN);
    assert_int_equal(find(s, "r99990", NULL), VG_FEEDBACK_EVICTED);
    assert_int_equal(find(s, "r99999", NULL), VG_FEEDBACK_FOUND);
    vg_feedback_store_free(s);
}

/* ---- Claims ---------------------------------------------------------------------------------- */

static void test_claim(void **state)
{
    (void)state;
    struct vg_feedback_store *s;
    struct vg_feedback_record rec, again;
    assert_int_equal(vg_feedback_store_new(3, &s), 0);
    put(s, "a", 0, 1);
    assert_int_equal(find(s, "a", &rec), VG_FEEDBACK_FOUND);
    assert_int_equal(vg_feedback_store_claim(s, &rec), VG_FEEDBACK_CLAIMED);
    assert_int_equal(vg_feedback_store_claim(s, &rec), VG_FEEDBACK_DUPLICATE);
    assert_int_equal(find(s, "a", &again), VG_FEEDBACK_FOUND);
    assert_true(again.has_feedback);
    assert_int_equal(vg_feedback_store_claim(s, &again), VG_FEEDBACK_DUPLICATE);

    /* Evicted between find and claim. */
    put(s, "b", 0, 1);
    assert_int_equal(find(s, "b", &rec), VG_FEEDBACK_FOUND);
    put(s, "c", 0, 1);
    put(s, "d", 0, 1);
    put(s, "e", 0, 1);
    assert_int_equal(vg_feedback_store_claim(s, &rec), VG_FEEDBACK_EVICTED);
    assert_int_equal(find(s, "b", NULL), VG_FEEDBACK_EVICTED);

    /* The same id predicted again is a new prediction: feedback again is allowed. */
    put(s, "a", 0, 2);
    assert_int_equal(find(s, "a", &rec), VG_FEEDBACK_FOUND);
    assert_false(rec.has_feedback);
    assert_int_equal(vg_feedback_store_claim(s, &rec), VG_FEEDBACK_CLAIMED);
    vg_feedback_store_free(s);
}

#define RACE_IDS 2000

struct race {
    struct vg_feedback_store *s;
    pthread_barrier_t *start;
    atomic_int *wins;      /* per id */
    atomic_int duplicates; /* over all ids and threads */
};

static void *claim_all(void *arg)
{
    struct race *r = arg;
    char id[32];
    pthread_barrier_wait(r->start);
    for (long i = 0; i < RACE_IDS; i++) {
        struct vg_feedback_record rec;
        id_of(id, sizeof id, "race-", i);
        if (vg_feedback_store_find(r->s, id, strlen(id), &rec) != VG_FEEDBACK_FOUND)
            continue;
        enum vg_feedback_status st = vg_feedback_store_claim(r->s, &rec);
        if (st == VG_FEEDBACK_CLAIMED)
            atomic_fetch_add(&r->wins[i], 1);
        else if (st == VG_FEEDBACK_DUPLICATE)
            atomic_fetch_add(&r->duplicates, 1);
    }
    return NULL;
}

/* 8 threads claim every one of 2,000 predictions at once: exactly one wins each. */
static void test_claim_race(void **state)
{
    (void)state;
    struct vg_feedback_store *s;
    char id[32];
    assert_int_equal(vg_feedback_store_new(RACE_IDS, &s), 0);
    for (long i = 0; i < RACE_IDS; i++) {
        id_of(id, sizeof id, "race-", i);
        put(s, id, 0, 0);
    }
    static atomic_int wins[RACE_IDS];
    for (long i = 0; i < RACE_IDS; i++)
        atomic_init(&wins[i], 0);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    struct race r = {.s = s, .start = &start, .wins = wins};
    atomic_init(&r.duplicates, 0);
    pthread_t tid[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&tid[t], NULL, claim_all, &r), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&start);
    for (long i = 0; i < RACE_IDS; i++)
        assert_int_equal(atomic_load(&wins[i]), 1);
    assert_int_equal(atomic_load(&r.duplicates), (THREADS - 1) * RACE_IDS);
    vg_feedback_store_free(s);
}

/* ---- Concurrent puts ------------------------------------------------------------------------- */

#define PUTS_PER_THREAD 20000

struct putter {
    struct vg_feedback_store *s;
    pthread_barrier_t *start;
    int thread;
};

static void *put_many(void *arg)
{
    struct putter *p = arg;
    char id[48];
    pthread_barrier_wait(p->start);
    for (long i = 0; i < PUTS_PER_THREAD; i++) {
        size_t n = (size_t)snprintf(id, sizeof id, "t%d/%ld", p->thread, i);
        vg_feedback_store_put(p->s, id, n, (uint32_t)p->thread, (float)i, 0);
        /* Lookups and claims run beside the puts (the sanitizer build checks the locking). */
        if (i % 16 == 0) {
            struct vg_feedback_record rec;
            if (vg_feedback_store_find(p->s, id, n, &rec) == VG_FEEDBACK_FOUND)
                vg_feedback_store_claim(p->s, &rec);
        }
    }
    return NULL;
}

static void run_putters(struct vg_feedback_store *s, struct putter *p)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    pthread_t tid[THREADS];
    for (int t = 0; t < THREADS; t++) {
        p[t] = (struct putter){.s = s, .start = &start, .thread = t};
        assert_int_equal(pthread_create(&tid[t], NULL, put_many, &p[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&start);
}

/* Count the ids found, checking each found record is the one put under that id. */
static long count_found(struct vg_feedback_store *s, struct putter *p, long *evicted)
{
    char id[48];
    long found = 0;
    *evicted = 0;
    for (int t = 0; t < THREADS; t++)
        for (long i = 0; i < PUTS_PER_THREAD; i++) {
            struct vg_feedback_record rec;
            size_t n = (size_t)snprintf(id, sizeof id, "t%d/%ld", t, i);
            enum vg_feedback_status st = vg_feedback_store_find(s, id, n, &rec);
            if (st == VG_FEEDBACK_FOUND) {
                assert_int_equal(rec.owner, (uint32_t)p[t].thread);
                assert_true(rec.prediction == (float)i);
                found++;
            } else {
                assert_int_equal(st, VG_FEEDBACK_EVICTED);
                (*evicted)++;
            }
        }
    return found;
}

static void test_concurrent_puts(void **state)
{
    (void)state;
    struct putter p[THREADS];
    long evicted;
    /* Room for everything: every prediction is found. */
    struct vg_feedback_store *s;
    assert_int_equal(vg_feedback_store_new(THREADS * PUTS_PER_THREAD, &s), 0);
    run_putters(s, p);
    assert_int_equal(count_found(s, p, &evicted), THREADS * PUTS_PER_THREAD);
    assert_int_equal(evicted, 0);
    vg_feedback_store_free(s);
    /* A store of 1,000 under 160,000 racing puts: exactly the last 1,000 numbers are kept (every
     * entry holds the highest number that maps to it), all the others read as evicted (the last
     * 2,000 + 4,096 at least are remembered; the rest may be forgotten, hence the check on
     * found only). */
    assert_int_equal(vg_feedback_store_new(1000, &s), 0);
    run_putters(s, p);
    assert_int_equal(vg_feedback_store_count(s), THREADS * PUTS_PER_THREAD);
    char id[48];
    long found = 0;
    for (int t = 0; t < THREADS; t++)
        for (long i = 0; i < PUTS_PER_THREAD; i++) {
            struct vg_feedback_record rec;
            size_t n = (size_t)snprintf(id, sizeof id, "t%d/%ld", t, i);
            if (vg_feedback_store_find(s, id, n, &rec) == VG_FEEDBACK_FOUND) {
                assert_true(rec.seq > THREADS * PUTS_PER_THREAD - 1000);
                found++;
            }
        }
    assert_int_equal(found, 1000);
    vg_feedback_store_free(s);
}

/* ---- Live accuracy --------------------------------------------------------------------------- */

static void test_live_accuracy(void **state)
{
    (void)state;
    struct vg_registry reg;
    static const char *const labels[] = {"model", NULL};
    const char *values[] = {"m"};
    struct vg_family *fa, *fn;
    struct vg_gauge *ga, *gn;
    assert_int_equal(vg_registry_init(&reg), 0);
    assert_int_equal(vg_gauge_register(&reg, "acc", "", labels, &fa, NULL), 0);
    assert_int_equal(vg_gauge_register(&reg, "acc_n", "", labels, &fn, NULL), 0);
    assert_int_equal(vg_gauge_bind(fa, values, &ga), 0);
    assert_int_equal(vg_gauge_bind(fn, values, &gn), 0);

    struct vg_live_accuracy w;
    assert_int_equal(vg_live_accuracy_init(&w, 0, NULL, NULL), -VG_EINVAL);
    assert_int_equal(vg_live_accuracy_init(&w, 4, ga, gn), 0);
    uint32_t n = 99;
    assert_true(isnan(vg_live_accuracy_value(&w, &n)));
    assert_int_equal(n, 0);
    assert_true(isnan(vg_gauge_value(ga)));
    assert_true(vg_gauge_value(gn) == 0);

    /* Window of 4: outcome, expected accuracy, expected count. */
    static const struct {
        int correct;
        double acc;
        uint32_t n;
    } steps[] = {
        {1, 1.0, 1},  {0, 0.5, 2}, {1, 2.0 / 3, 3}, {1, 0.75, 4}, /* 1 0 1 1 */
        {0, 0.5, 4},                                              /* 0 1 1 0: the first 1 left */
        {0, 0.5, 4},                                              /* 1 1 0 0 */
        {0, 0.25, 4},                                             /* 1 0 0 0 */
        {0, 0.0, 4},                                              /* 0 0 0 0 */
        {1, 0.25, 4}, {1, 0.5, 4}, {1, 0.75, 4},    {1, 1.0, 4},  {1, 1.0, 4},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        double acc = vg_live_accuracy_add(&w, steps[i].correct, &n);
        assert_true(fabs(acc - steps[i].acc) < 1e-15);
        assert_int_equal(n, steps[i].n);
        assert_true(fabs(vg_live_accuracy_value(&w, &n) - steps[i].acc) < 1e-15);
        assert_true(fabs(vg_gauge_value(ga) - steps[i].acc) < 1e-15);
        assert_true(vg_gauge_value(gn) == (double)steps[i].n);
    }
    vg_live_accuracy_release(&w);

    /* Windows across several 64-bit words, rolled over many times: against a recount. */
    static const uint32_t sizes[] = {1, 63, 64, 65, 130, 1000};
    unsigned seed = 12345;
    static int history[20000];
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
        uint32_t size = sizes[z];
        assert_int_equal(vg_live_accuracy_init(&w, size, NULL, NULL), 0);
        for (int i = 0; i < 20000; i++) {
            seed = seed * 1103515245u + 12345u;
            history[i] = (seed >> 16) % 10 < 7; /* about 70 % correct */
            double acc = vg_live_accuracy_add(&w, history[i], &n);
            int from = i + 1 > (int)size ? i + 1 - (int)size : 0, correct = 0;
            for (int j = from; j <= i; j++)
                correct += history[j];
            assert_int_equal(n, (uint32_t)(i + 1 - from));
            assert_true(acc == (double)correct / (double)(i + 1 - from));
        }
        vg_live_accuracy_release(&w);
    }
    vg_registry_release(&reg);
}

struct adder {
    struct vg_live_accuracy *w;
    pthread_barrier_t *start;
    int correct;
};

static void *add_many(void *arg)
{
    struct adder *a = arg;
    pthread_barrier_wait(a->start);
    for (int i = 0; i < 10000; i++)
        vg_live_accuracy_add(a->w, a->correct, NULL);
    return NULL;
}

/* 8 threads add at once: the window holds exactly `size` outcomes and the count matches them. */
static void test_live_accuracy_threads(void **state)
{
    (void)state;
    struct vg_live_accuracy w;
    assert_int_equal(vg_live_accuracy_init(&w, 1000, NULL, NULL), 0);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    pthread_t tid[THREADS];
    struct adder a[THREADS];
    for (int t = 0; t < THREADS; t++) {
        a[t] = (struct adder){.w = &w, .start = &start, .correct = t % 2};
        assert_int_equal(pthread_create(&tid[t], NULL, add_many, &a[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&start);
    uint32_t n, set = 0;
    double acc = vg_live_accuracy_value(&w, &n);
    assert_int_equal(n, 1000);
    for (uint32_t i = 0; i < 1000; i++)
        set += (uint32_t)((w.bits[i / 64] >> (i % 64)) & 1);
    assert_int_equal(set, w.correct);
    assert_true(acc == (double)set / 1000);
    vg_live_accuracy_release(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siphash_vectors),
        cmocka_unit_test(test_put_find),
        cmocka_unit_test(test_eviction_order),
        cmocka_unit_test(test_evicted_memory),
        cmocka_unit_test(test_claim),
        cmocka_unit_test(test_claim_race),
        cmocka_unit_test(test_concurrent_puts),
        cmocka_unit_test(test_live_accuracy),
        cmocka_unit_test(test_live_accuracy_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
