/*
 * The registry: families, binding label sets to child series, removal, collectors.
 *
 * Everything here runs at start-up, model load or scrape time, under the registry mutex. Binding
 * scans the family's children linearly: it happens once per label set, never per request. Removed
 * children stay linked (flagged) until vg_registry_release, so a handle held by a request in flight
 * never dangles.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int fail(struct vg_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -code;
}

int vg_registry_init(struct vg_registry *r)
{
    memset(r, 0, sizeof *r);
    return pthread_mutex_init(&r->lock, NULL) == 0 ? 0 : -VG_ENOMEM;
}

static void family_free(struct vg_family *f)
{
    struct vg__child *c = f->children;
    while (c) {
        struct vg__child *next = c->next;
        vg__child_free(c, f->type);
        c = next;
    }
    /* A family whose registration failed half-way may have no label array yet. */
    for (size_t i = 0; f->label_names && i < f->n_labels; i++)
        free(f->label_names[i]);
    free(f->label_names);
    free(f->name);
    free(f->base);
    free(f->help);
    free(f->bounds);
    free(f->le_text);
    free(f);
}

void vg_registry_release(struct vg_registry *r)
{
    struct vg__collector *k = r->collectors;
    while (k) {
        struct vg__collector *next = k->next;
        if (k->release)
            k->release(k->arg);
        free(k);
        k = next;
    }
    struct vg_family *f = r->families;
    while (f) {
        struct vg_family *next = f->next;
        family_free(f);
        f = next;
    }
    pthread_mutex_destroy(&r->lock);
    memset(r, 0, sizeof *r);
}

struct vg_registry *vg_registry_new(void)
{
    struct vg_registry *r = malloc(sizeof *r);
    if (r && vg_registry_init(r) != 0) {
        free(r);
        r = NULL;
    }
    return r;
}

void vg_registry_free(struct vg_registry *r)
{
    if (r) {
        vg_registry_release(r);
        free(r);
    }
}

static int valid_name(const char *s, int allow_colon)
{
    size_t n = strlen(s);
    if (n == 0 || n > VG_MONITOR_MAX_NAME)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
                 (allow_colon && ch == ':') || (i > 0 && ch >= '0' && ch <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Is `name` already exposed by a family of the registry (including counters' base names)? */
static int name_taken(struct vg_registry *r, const char *name, const char *base)
{
    for (struct vg_family *f = r->families; f; f = f->next)
        if (strcmp(f->name, name) == 0 || strcmp(f->base, base) == 0)
            return 1;
    return 0;
}

static int family_register(struct vg_registry *r, enum vg_metric_type type, const char *name,
                           const char *help, const char *const *label_names, const double *bounds,
                           size_t n_bounds, struct vg_family **out, struct vg_error *err)
{
    int rc = 0;
    struct vg_family *f = NULL;
    size_t n_labels = 0;
    int locked = 0;

    if (!name || !valid_name(name, 1)) {
        rc = fail(err, VG_EINVAL, "metric name '%s' is not [a-zA-Z_:][a-zA-Z0-9_:]*",
                  name ? name : "(null)");
        goto out;
    }
    while (label_names && label_names[n_labels]) {
        const char *l = label_names[n_labels];
        if (!valid_name(l, 0) || strncmp(l, "__", 2) == 0) {
            rc = fail(err, VG_EINVAL,
                      "metric '%s': label name '%s' is not [a-zA-Z_][a-zA-Z0-9_]* without a "
                      "leading __",
                      name, l);
            goto out;
        }
        if (type == VG_METRIC_HISTOGRAM && strcmp(l, "le") == 0) {
            rc = fail(err, VG_EINVAL, "histogram '%s': label name 'le' is reserved", name);
            goto out;
        }
        for (size_t j = 0; j < n_labels; j++)
            if (strcmp(label_names[j], l) == 0) {
                rc = fail(err, VG_EINVAL, "metric '%s': label '%s' appears twice", name, l);
                goto out;
            }
        if (++n_labels > VG_MONITOR_MAX_LABELS) {
            rc = fail(err, VG_EINVAL, "metric '%s': more than %d labels", name,
                      VG_MONITOR_MAX_LABELS);
            goto out;
        }
    }
    if (type == VG_METRIC_HISTOGRAM) {
        if (n_bounds > 0 && isinf(bounds[n_bounds - 1]) && bounds[n_bounds - 1] > 0)
            n_bounds--;
        if (n_bounds > VG_MONITOR_MAX_BOUNDS) {
            rc = fail(err, VG_EINVAL, "histogram '%s': more than %d bucket bounds", name,
                      VG_MONITOR_MAX_BOUNDS);
            goto out;
        }
        for (size_t i = 0; i < n_bounds; i++)
            if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) {
                rc = fail(err, VG_EINVAL,
                          "histogram '%s': bucket bounds must be finite and strictly increasing",
                          name);
                goto out;
            }
    }

    f = calloc(1, sizeof *f);
    if (!f)
        goto nomem;
    f->registry = r;
    f->type = type;
    f->n_labels = n_labels;
    f->help = strdup(help ? help : "");
    if (!f->help)
        goto nomem;
    if (type == VG_METRIC_COUNTER) {
        size_t n = strlen(name);
        if (ends_with(name, "_total"))
            n -= strlen("_total");
        f->base = strndup(name, n);
        f->name = malloc(n + sizeof "_total");
        if (f->name)
            snprintf(f->name, n + sizeof "_total", "%.*s_total", (int)n, name);
        if (n == 0) {
            rc = fail(err, VG_EINVAL, "counter name '%s' has nothing before _total", name);
            goto out;
        }
    } else {
        f->name = strdup(name);
        f->base = strdup(name);
    }
    if (!f->name || !f->base)
        goto nomem;
    if (n_labels) {
        f->label_names = calloc(n_labels, sizeof *f->label_names);
        if (!f->label_names)
            goto nomem;
        for (size_t i = 0; i < n_labels; i++)
            if (!(f->label_names[i] = strdup(label_names[i])))
                goto nomem;
    }
    if (type == VG_METRIC_HISTOGRAM) {
        f->n_bounds = n_bounds;
        f->bounds = malloc((n_bounds ? n_bounds : 1) * sizeof *f->bounds);
        if (!f->bounds)
            goto nomem;
        f->le_text = calloc(n_bounds + 1, sizeof *f->le_text);
        if (!f->le_text)
            goto nomem;
        if (n_bounds)
            memcpy(f->bounds, bounds, n_bounds * sizeof *bounds);
        for (size_t i = 0; i < n_bounds; i++)
            vg_expo_format_double(f->le_text[i], sizeof f->le_text[i], bounds[i]);
        snprintf(f->le_text[n_bounds], sizeof f->le_text[n_bounds], "+Inf");
    }

    pthread_mutex_lock(&r->lock);
    locked = 1;
    if (name_taken(r, f->name, f->base)) {
        rc = fail(err, VG_EINVAL, "metric '%s' is already registered", name);
        goto out;
    }
    if (r->last)
        r->last->next = f;
    else
        r->families = f;
    r->last = f;
    *out = f;
    f = NULL;
    goto out;
nomem:
    rc = fail(err, VG_ENOMEM, "metric '%s': out of memory", name);
out:
    if (locked)
        pthread_mutex_unlock(&r->lock);
    if (f)
        family_free(f);
    return rc;
}

int vg_counter_register(struct vg_registry *r, const char *name, const char *help,
                        const char *const *label_names, struct vg_family **out,
                        struct vg_error *err)
{
    return family_register(r, VG_METRIC_COUNTER, name, help, label_names, NULL, 0, out, err);
}

int vg_gauge_register(struct vg_registry *r, const char *name, const char *help,
                      const char *const *label_names, struct vg_family **out, struct vg_error *err)
{
    return family_register(r, VG_METRIC_GAUGE, name, help, label_names, NULL, 0, out, err);
}

int vg_histogram_register(struct vg_registry *r, const char *name, const char *help,
                          const char *const *label_names, const double *bounds, size_t n_bounds,
                          struct vg_family **out, struct vg_error *err)
{
    if (n_bounds && !bounds)
        return fail(err, VG_EINVAL, "histogram '%s': no bounds given", name ? name : "(null)");
    return family_register(r, VG_METRIC_HISTOGRAM, name, help, label_names, bounds, n_bounds, out,
                           err);
}

static int same_labels(const struct vg_family *f, const struct vg__child *c,
                       const char *const *values)
{
    for (size_t i = 0; i < f->n_labels; i++)
        if (strcmp(c->label_values[i], values[i]) != 0)
            return 0;
    return 1;
}

/* Finds or makes the visible child with these label values. A child with a callback is never
 * shared with a plain bind (and vice versa): fn says which is wanted. */
static int bind(struct vg_family *f, enum vg_metric_type type, const char *const *values,
                vg_value_fn fn, void *fn_arg, struct vg__child **out)
{
    if (!f || f->type != type)
        return -VG_EINVAL;
    for (size_t i = 0; i < f->n_labels; i++)
        if (!values || !values[i])
            return -VG_EINVAL;

    int rc = 0;
    struct vg__child *c = NULL;
    pthread_mutex_lock(&f->registry->lock);
    for (c = f->children; c; c = c->next)
        if (!atomic_load(&c->removed) && same_labels(f, c, values))
            break;
    if (c) {
        /* A second callback for the same series would expose two samples with one label set. */
        if (fn || c->fn)
            rc = -VG_EINVAL;
        goto out;
    }
    c = vg__child_alloc(f);
    if (!c) {
        rc = -VG_ENOMEM;
        goto out;
    }
    if (f->n_labels) {
        c->label_values = calloc(f->n_labels, sizeof *c->label_values);
        if (!c->label_values) {
            vg__child_free(c, f->type);
            rc = -VG_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < f->n_labels; i++)
            if (!(c->label_values[i] = strdup(values[i]))) {
                vg__child_free(c, f->type);
                rc = -VG_ENOMEM;
                goto out;
            }
    }
    c->fn = fn;
    c->fn_arg = fn_arg;
    if (f->last_child)
        f->last_child->next = c;
    else
        f->children = c;
    f->last_child = c;
out:
    pthread_mutex_unlock(&f->registry->lock);
    if (rc == 0)
        *out = c;
    return rc;
}

int vg_counter_bind(struct vg_family *f, const char *const *label_values, struct vg_counter **out)
{
    struct vg__child *c;
    int rc = bind(f, VG_METRIC_COUNTER, label_values, NULL, NULL, &c);
    if (rc == 0)
        *out = (struct vg_counter *)c;
    return rc;
}

int vg_gauge_bind(struct vg_family *f, const char *const *label_values, struct vg_gauge **out)
{
    struct vg__child *c;
    int rc = bind(f, VG_METRIC_GAUGE, label_values, NULL, NULL, &c);
    if (rc == 0)
        *out = (struct vg_gauge *)c;
    return rc;
}

int vg_histogram_bind(struct vg_family *f, const char *const *label_values,
                      struct vg_histogram **out)
{
    struct vg__child *c;
    int rc = bind(f, VG_METRIC_HISTOGRAM, label_values, NULL, NULL, &c);
    if (rc == 0)
        *out = (struct vg_histogram *)c;
    return rc;
}

int vg_counter_func(struct vg_family *f, const char *const *label_values, vg_value_fn fn, void *arg)
{
    struct vg__child *c;
    if (!fn)
        return -VG_EINVAL;
    return bind(f, VG_METRIC_COUNTER, label_values, fn, arg, &c);
}

int vg_gauge_func(struct vg_family *f, const char *const *label_values, vg_value_fn fn, void *arg)
{
    struct vg__child *c;
    if (!fn)
        return -VG_EINVAL;
    return bind(f, VG_METRIC_GAUGE, label_values, fn, arg, &c);
}

int vg_registry_remove_matching(struct vg_registry *r, const char *const *names,
                                const char *const *values, size_t n)
{
    int hidden = 0;
    size_t idx[VG_MONITOR_MAX_LABELS];
    pthread_mutex_lock(&r->lock);
    for (struct vg_family *f = r->families; f; f = f->next) {
        size_t found = 0;
        for (size_t i = 0; i < n && found == i; i++)
            for (size_t j = 0; j < f->n_labels; j++)
                if (strcmp(f->label_names[j], names[i]) == 0 && found < VG_MONITOR_MAX_LABELS) {
                    idx[found++] = j;
                    break;
                }
        if (n == 0 || found != n)
            continue;
        for (struct vg__child *c = f->children; c; c = c->next) {
            if (atomic_load(&c->removed))
                continue;
            size_t i = 0;
            while (i < n && strcmp(c->label_values[idx[i]], values[i]) == 0)
                i++;
            if (i == n) {
                atomic_store(&c->removed, 1);
                hidden++;
            }
        }
    }
    pthread_mutex_unlock(&r->lock);
    return hidden;
}

int vg_registry_add_collector(struct vg_registry *r, void (*collect)(void *arg),
                              void (*release)(void *arg), void *arg)
{
    struct vg__collector *k = calloc(1, sizeof *k);
    if (!k)
        return -VG_ENOMEM;
    k->collect = collect;
    k->release = release;
    k->arg = arg;
    pthread_mutex_lock(&r->lock);
    struct vg__collector **tail = &r->collectors;
    while (*tail)
        tail = &(*tail)->next;
    *tail = k;
    pthread_mutex_unlock(&r->lock);
    return 0;
}
