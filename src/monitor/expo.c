/*
 * Exposition: the registry as Prometheus text format 0.0.4 or OpenMetrics 1.0.0 text.
 *
 * Subset implemented (both formats unless said):
 * - Families in registration order, children in bind order; removed children and families with
 *   no visible child are skipped. `# HELP` (omitted when the help is empty) then `# TYPE`.
 * - Types counter, gauge, histogram. No timestamps, exemplars, units, `_created`, summaries.
 * - Counters: 0.0.4 names the family and the sample <base>_total; OpenMetrics names the family
 *   <base> and the sample <base>_total.
 * - Histograms: cumulative <name>_bucket{...,le="b"} for each bound then le="+Inf", <name>_sum,
 *   <name>_count. OpenMetrics forbids a sum when buckets can be negative: when the first bound is
 *   negative, the OpenMetrics output omits _sum and _count.
 * - Escaping. Label values (both): backslash -> \\, double quote -> \", newline -> \n.
 *   HELP in 0.0.4: backslash -> \\, newline -> \n (quotes stay as they are). HELP in OpenMetrics:
 *   the label value rules (backslash, double quote, newline). Other bytes pass through (UTF-8).
 * - Numbers: integer-valued series (counters, bucket counts, _count) print as exact unsigned
 *   integers; doubles print with the shortest digits that read back to the same double, in
 *   Go's %g layout for shortest precision (exponent form when the exponent is < -4 or >= 6, e.g.
 *   0.005, 2.5, 100000, 1e+06), as client_golang does; NaN, +Inf, -Inf.
 * - OpenMetrics ends with "# EOF\n".
 */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

void vg_expo_buf_init(struct vg_expo_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

void vg_expo_buf_reset(struct vg_expo_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void vg_expo_buf_release(struct vg_expo_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->alloc = 0;
}

/* Render state: the first failure sticks, so the emitters need not check every append. */
struct out {
    struct vg_expo_buf *b;
    int rc;
};

static void put(struct out *o, const char *s, size_t n)
{
    struct vg_expo_buf *b = o->b;
    if (o->rc)
        return;
    if (n > b->max || b->len > b->max - n) {
        o->rc = -VG_ENOMEM;
        return;
    }
    if (b->len + n + 1 > b->alloc) {
        size_t want = b->alloc ? b->alloc : 4096;
        while (want < b->len + n + 1)
            want *= 2;
        if (want > b->max + 1)
            want = b->max + 1;
        char *p = realloc(b->data, want);
        if (!p) {
            o->rc = -VG_ENOMEM;
            return;
        }
        b->data = p;
        b->alloc = want;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* Escapes s: backslash and newline always, double quote when `quote`. */
static void put_escaped(struct out *o, const char *s, int quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        if (*s == '\\')
            rep = "\\\\";
        else if (*s == '\n')
            rep = "\\n";
        else if (*s == '"' && quote)
            rep = "\\\"";
        if (rep) {
            put(o, run, (size_t)(s - run));
            put(o, rep, 2);
            run = s + 1;
        }
    }
    put(o, run, (size_t)(s - run));
}

int vg_expo_format_double(char *buf, size_t size, double v)
{
    if (isnan(v))
        return snprintf(buf, size, "NaN");
    if (isinf(v))
        return snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
    if (v == 0)
        return snprintf(buf, size, "0");
    if (v == floor(v) && fabs(v) < 1e6)
        return snprintf(buf, size, "%.0f", v);
    char e[40];
    int digits = 1;
    for (; digits < 17; digits++) {
        snprintf(e, sizeof e, "%.*e", digits - 1, v);
        if (strtod(e, NULL) == v)
            break;
    }
    snprintf(e, sizeof e, "%.*e", digits - 1, v);
    int exp10 = atoi(strchr(e, 'e') + 1);
    if (exp10 < -4 || exp10 >= 6)
        return snprintf(buf, size, "%s", e);
    int decimals = digits - 1 - exp10;
    return snprintf(buf, size, "%.*f", decimals > 0 ? decimals : 0, v);
}

static void put_double(struct out *o, double v)
{
    char num[40];
    int n = vg_expo_format_double(num, sizeof num, v);
    put(o, num, (size_t)n);
}

static void put_u64(struct out *o, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRIu64, v);
    put(o, num, (size_t)n);
}

/* {a="x",b="y"[,le="..."]} or nothing when there are no labels. */
static void put_labels(struct out *o, const struct vg_family *f, const struct vg__child *c,
                       const char *le)
{
    if (f->n_labels == 0 && !le)
        return;
    put(o, "{", 1);
    for (size_t i = 0; i < f->n_labels; i++) {
        if (i)
            put(o, ",", 1);
        puts_(o, f->label_names[i]);
        put(o, "=\"", 2);
        put_escaped(o, c->label_values[i], 1);
        put(o, "\"", 1);
    }
    if (le) {
        if (f->n_labels)
            put(o, ",", 1);
        put(o, "le=\"", 4);
        puts_(o, le);
        put(o, "\"", 1);
    }
    put(o, "}", 1);
}

static void put_sample_name(struct out *o, const struct vg_family *f, const char *suffix)
{
    puts_(o, f->name);
    if (suffix)
        puts_(o, suffix);
}

static void render_histogram(struct out *o, const struct vg_family *f, const struct vg__child *c,
                             enum vg_expo_format fmt)
{
    const struct vg_histogram *h = (const struct vg_histogram *)c;
    uint64_t cumulative = 0;
    double sum = 0;
    for (size_t b = 0; b <= h->n_bounds; b++) {
        for (size_t k = 0; k < VG__SHARDS; k++)
            cumulative += atomic_load_explicit(&h->cells[k * h->stride + b], memory_order_relaxed);
        put_sample_name(o, f, "_bucket");
        put_labels(o, f, c, f->le_text[b]);
        put(o, " ", 1);
        put_u64(o, cumulative);
        put(o, "\n", 1);
    }
    if (fmt == VG_EXPO_OPENMETRICS && h->n_bounds > 0 && h->bounds[0] < 0)
        return;
    for (size_t k = 0; k < VG__SHARDS; k++)
        sum += vg__bits_load(&h->cells[k * h->stride + h->n_bounds + 1]);
    put_sample_name(o, f, "_sum");
    put_labels(o, f, c, NULL);
    put(o, " ", 1);
    put_double(o, sum);
    put(o, "\n", 1);
    put_sample_name(o, f, "_count");
    put_labels(o, f, c, NULL);
    put(o, " ", 1);
    put_u64(o, cumulative);
    put(o, "\n", 1);
}

static void render_family(struct out *o, const struct vg_family *f, enum vg_expo_format fmt)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    const struct vg__child *c;
    for (c = f->children; c; c = c->next)
        if (!atomic_load(&c->removed))
            break;
    if (!c)
        return;
    const char *meta_name = fmt == VG_EXPO_OPENMETRICS ? f->base : f->name;
    if (f->help[0]) {
        puts_(o, "# HELP ");
        puts_(o, meta_name);
        put(o, " ", 1);
        put_escaped(o, f->help, fmt == VG_EXPO_OPENMETRICS);
        put(o, "\n", 1);
    }
    puts_(o, "# TYPE ");
    puts_(o, meta_name);
    put(o, " ", 1);
    puts_(o, type_names[f->type]);
    put(o, "\n", 1);
    for (; c; c = c->next) {
        if (atomic_load(&c->removed))
            continue;
        if (f->type == VG_METRIC_HISTOGRAM) {
            render_histogram(o, f, c, fmt);
            continue;
        }
        put_sample_name(o, f, NULL);
        put_labels(o, f, c, NULL);
        put(o, " ", 1);
        if (c->fn)
            put_double(o, c->fn(c->fn_arg));
        else if (f->type == VG_METRIC_COUNTER)
            put_u64(o, vg_counter_value((const struct vg_counter *)c));
        else
            put_double(o, vg_gauge_value((const struct vg_gauge *)c));
        put(o, "\n", 1);
    }
}

int vg_registry_render(struct vg_registry *r, enum vg_expo_format fmt, struct vg_expo_buf *out)
{
    struct out o = {out, 0};
    vg_expo_buf_reset(out);
    pthread_mutex_lock(&r->lock);
    for (struct vg__collector *k = r->collectors; k; k = k->next)
        k->collect(k->arg);
    for (const struct vg_family *f = r->families; f && !o.rc; f = f->next)
        render_family(&o, f, fmt);
    pthread_mutex_unlock(&r->lock);
    if (fmt == VG_EXPO_OPENMETRICS)
        puts_(&o, "# EOF\n");
    if (o.rc)
        vg_expo_buf_reset(out);
    return o.rc;
}

/* Case-insensitive match of [s, s+n) against word. */
static int token_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

enum vg_expo_format vg_expo_negotiate(const char *accept, const char **content_type)
{
    double q_openmetrics = 0, q_text = 0;
    const char *p = accept ? accept : "";
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        /* media type: up to ';' or the end of this range, trimmed */
        const char *t = p;
        while (t < end && isspace((unsigned char)*t))
            t++;
        const char *te = t;
        while (te < end && *te != ';')
            te++;
        const char *params = te;
        while (te > t && isspace((unsigned char)te[-1]))
            te--;
        double q = 1;
        while (params < end && *params == ';') {
            const char *k = params + 1;
            while (k < end && isspace((unsigned char)*k))
                k++;
            const char *next = k;
            while (next < end && *next != ';')
                next++;
            if (next - k >= 2 && (k[0] == 'q' || k[0] == 'Q') && k[1] == '=') {
                char num[16];
                size_t n = (size_t)(next - k - 2);
                if (n >= sizeof num)
                    n = sizeof num - 1;
                memcpy(num, k + 2, n);
                num[n] = '\0';
                q = strtod(num, NULL);
                if (!(q >= 0))
                    q = 0;
            }
            params = next;
        }
        size_t tn = (size_t)(te - t);
        if (token_is(t, tn, "application/openmetrics-text")) {
            if (q > q_openmetrics)
                q_openmetrics = q;
        } else if (token_is(t, tn, "text/plain") || token_is(t, tn, "text/*") ||
                   token_is(t, tn, "*/*")) {
            if (q > q_text)
                q_text = q;
        }
        p = *end ? end + 1 : end;
    }
    enum vg_expo_format fmt =
        q_openmetrics > 0 && q_openmetrics >= q_text ? VG_EXPO_OPENMETRICS : VG_EXPO_PROMETHEUS;
    if (content_type)
        *content_type = fmt == VG_EXPO_OPENMETRICS ? VG_EXPO_CONTENT_TYPE_OPENMETRICS
                                                   : VG_EXPO_CONTENT_TYPE_PROMETHEUS;
    return fmt;
}
