/*
 * Log-linear latency histogram for `vigil load`, on the idea of HdrHistogram (our own code):
 * values below 256 ns have one bucket each; from there every power of two [2^e, 2^(e+1)) is cut
 * into 128 equal buckets of width 2^(e-7). A bucket is thus never wider than 1/128 of its lowest
 * value: any percentile read from it is within 0.8 % of the true sample, from 1 µs to 68 s,
 * in 3,840 fixed counters (30 KiB) and with no allocation when recording.
 *
 * Index of v >= 256: with e = floor(log2 v) and shift = e - 7, the top 8 bits of v (v >> shift,
 * in [128, 256)) plus 128 * shift. The two ranges join: v = 256 lands at 128 + 128 = 256.
 */
#include <math.h>
#include <string.h>

#include "cli/load.h"

int vg_hist_index(uint64_t ns)
{
    if (ns < 2 * VG_HIST_HALF)
        return (int)ns;
    int e = 63 - __builtin_clzll(ns);
    if (e > VG_HIST_TOP_EXP)
        return VG_HIST_BUCKETS - 1;
    int shift = e - VG_HIST_SUB_BITS;
    return shift * VG_HIST_HALF + (int)(ns >> shift);
}

uint64_t vg_hist_bucket_low(int idx)
{
    if (idx < 2 * VG_HIST_HALF)
        return (uint64_t)idx;
    int shift = idx / VG_HIST_HALF - 1;
    uint64_t sub = (uint64_t)(idx - shift * VG_HIST_HALF);
    return sub << shift;
}

uint64_t vg_hist_bucket_high(int idx)
{
    if (idx < 2 * VG_HIST_HALF)
        return (uint64_t)idx;
    int shift = idx / VG_HIST_HALF - 1;
    uint64_t sub = (uint64_t)(idx - shift * VG_HIST_HALF);
    return ((sub + 1) << shift) - 1;
}

void vg_hist_init(struct vg_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min_ns = UINT64_MAX;
}

void vg_hist_record(struct vg_hist *h, uint64_t ns)
{
    h->counts[vg_hist_index(ns)]++;
    h->total++;
    h->sum_ns += ns;
    if (ns < h->min_ns)
        h->min_ns = ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

void vg_hist_merge(struct vg_hist *dst, const struct vg_hist *src)
{
    if (!src->total)
        return;
    for (int i = 0; i < VG_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->sum_ns += src->sum_ns;
    if (src->min_ns < dst->min_ns)
        dst->min_ns = src->min_ns;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
}

uint64_t vg_hist_percentile(const struct vg_hist *h, double p)
{
    if (!h->total)
        return 0;
    if (p >= 100.0)
        return h->max_ns;
    double want = ceil(p / 100.0 * (double)h->total);
    uint64_t rank = want < 1.0 ? 1 : (uint64_t)want;
    uint64_t seen = 0;
    for (int i = 0; i < VG_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = vg_hist_bucket_high(i);
            if (v > h->max_ns)
                v = h->max_ns;
            if (v < h->min_ns)
                v = h->min_ns;
            return v;
        }
    }
    return h->max_ns;
}

uint64_t vg_hist_count_above(const struct vg_hist *h, uint64_t ns)
{
    uint64_t n = 0;
    for (int i = vg_hist_index(ns) + 1; i < VG_HIST_BUCKETS; i++)
        n += h->counts[i];
    return n;
}
