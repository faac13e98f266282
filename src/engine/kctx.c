/* Helpers operators call through their context: errors, known values, strings, attributes. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

void vg__node_desc(const struct vg_node *n, char *buf, size_t len)
{
    snprintf(buf, len, "node '%s' (%s, domain %s, opset %lld)", n->name, n->op_type,
             n->domain[0] ? n->domain : "ai.onnx", (long long)n->opset);
}

int vg_kerr(struct vg_kctx *c, int code, const char *fmt, ...)
{
    if (code < 0)
        code = -code;
    if (c->err) {
        char where[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err->msg, sizeof(c->err->msg), fmt, ap);
        va_end(ap);
        vg__node_desc(c->node, where, sizeof(where));
        vg__err_prefix(c->err, where);
        c->err->code = code;
    }
    return -code;
}

int vg_kctx_need_inputs(struct vg_kctx *c, int n)
{
    for (int i = 0; i < n; i++)
        if (i >= c->n_in || !c->in[i])
            return vg_kerr(c, VG_EGRAPH, "input %d is required", i);
    if (c->n_out < 1 || !c->out[0])
        return vg_kerr(c, VG_EGRAPH, "output 0 is required");
    return 0;
}

const struct vg_tensor *vg_kctx_value(struct vg_kctx *c, int i)
{
    if (i < 0 || i >= c->n_in || !c->in[i])
        return NULL;
    if (c->phase == VG_PHASE_RUN)
        return c->in[i];
    if (c->phase == VG_PHASE_INIT)
        return c->in[i]->data ? c->in[i] : NULL;
    if (!c->values || !c->values[i])
        return NULL;
    if (c->value_from_input && c->value_from_input[i] && c->used_input_data)
        *c->used_input_data = 1;
    return c->values[i];
}

const char *vg_kctx_strdup(struct vg_kctx *c, const char *s, size_t len)
{
    if (!c->strings)
        return NULL;
    return vg__pool_strndup(&c->strings->pool, s, len);
}

void vg__kctx_setup(struct vg_kctx *c, enum vg_phase ph, const struct vg_node *n,
                    struct vg_tensor *const *in, struct vg_tensor *const *out,
                    struct vg_error *err)
{
    memset(c, 0, sizeof(*c));
    c->phase = ph;
    c->node = n;
    c->state = n->state;
    c->n_in = n->n_in;
    c->n_out = n->n_out;
    c->in = in;
    c->out = out;
    c->err = err;
}

const struct vg_attr *vg_attr_find(const struct vg_node *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (!strcmp(n->attrs[i].name, name))
            return &n->attrs[i];
    return NULL;
}

int64_t vg_attr_i(const struct vg_node *n, const char *name, int64_t dflt)
{
    const struct vg_attr *a = vg_attr_find(n, name);
    return a && a->type == VG_ATTR_INT ? a->i : dflt;
}

float vg_attr_f(const struct vg_node *n, const char *name, float dflt)
{
    const struct vg_attr *a = vg_attr_find(n, name);
    if (!a)
        return dflt;
    if (a->type == VG_ATTR_FLOAT)
        return a->f;
    if (a->type == VG_ATTR_INT)
        return (float)a->i;
    return dflt;
}

const char *vg_attr_s(const struct vg_node *n, const char *name, const char *dflt)
{
    const struct vg_attr *a = vg_attr_find(n, name);
    return a && a->type == VG_ATTR_STRING ? a->s : dflt;
}

size_t vg_attr_ints(const struct vg_node *n, const char *name, const int64_t **v)
{
    const struct vg_attr *a = vg_attr_find(n, name);
    if (!a || a->type != VG_ATTR_INTS) {
        *v = NULL;
        return 0;
    }
    *v = a->ints;
    return a->n;
}

size_t vg_attr_floats(const struct vg_node *n, const char *name, const float **v)
{
    const struct vg_attr *a = vg_attr_find(n, name);
    if (!a || a->type != VG_ATTR_FLOATS) {
        *v = NULL;
        return 0;
    }
    *v = a->floats;
    return a->n;
}

size_t vg_attr_strings(const struct vg_node *n, const char *name, const char *const **v)
{
    const struct vg_attr *a = vg_attr_find(n, name);
    if (!a || a->type != VG_ATTR_STRINGS) {
        *v = NULL;
        return 0;
    }
    *v = a->strings;
    return a->n;
}

const struct vg_tensor *vg_attr_t(const struct vg_node *n, const char *name)
{
    const struct vg_attr *a = vg_attr_find(n, name);
    return a && a->type == VG_ATTR_TENSOR ? a->t : NULL;
}

/* The typed getters differ only in the attribute type and the field read. */
#define VG_KATTR(fname, T, TYPE, what, field)                                                      \
    int fname(struct vg_kctx *c, const char *name, T dflt, T *v)                                   \
    {                                                                                              \
        const struct vg_attr *a = vg_attr_find(c->node, name);                                     \
        *v = dflt;                                                                                 \
        if (!a)                                                                                    \
            return 0;                                                                              \
        if (a->type != TYPE)                                                                       \
            return vg_kerr(c, VG_EINVAL, "attribute '%s' must be " what, name);                    \
        *v = a->field;                                                                             \
        return 0;                                                                                  \
    }

VG_KATTR(vg_kattr_i, int64_t, VG_ATTR_INT, "an int", i)
VG_KATTR(vg_kattr_f, float, VG_ATTR_FLOAT, "a float", f)
VG_KATTR(vg_kattr_s, const char *, VG_ATTR_STRING, "a string", s)

int vg_kattr_ints(struct vg_kctx *c, const char *name, int64_t *v, int cap, int *n, int *present)
{
    const struct vg_attr *a = vg_attr_find(c->node, name);
    *n = 0;
    if (present)
        *present = a != NULL;
    if (!a)
        return 0;
    if (a->type != VG_ATTR_INTS)
        return vg_kerr(c, VG_EINVAL, "attribute '%s' must be a list of ints", name);
    if (a->n > (size_t)cap)
        return vg_kerr(c, VG_EINVAL, "attribute '%s' has %zu values, at most %d allowed", name,
                       a->n, cap);
    for (size_t i = 0; i < a->n; i++)
        v[i] = a->ints[i];
    *n = (int)a->n;
    return 0;
}

int vg_kread_ints(struct vg_kctx *c, const struct vg_tensor *t, const char *what, int64_t *v,
                  int cap, int *n)
{
    if (t->dtype != VG_DT_INT64 && t->dtype != VG_DT_INT32)
        return vg_kerr(c, VG_ETYPE, "%s must be int64 (or int32), got %s", what,
                       vg_dtype_name(t->dtype));
    if (t->rank > 1)
        return vg_kerr(c, VG_ESHAPE, "%s must be 1-D, got rank %d", what, t->rank);
    int64_t m = vg_tensor_numel(t);
    if (m > cap)
        return vg_kerr(c, VG_ESHAPE, "%s has %lld values, at most %d allowed", what, (long long)m,
                       cap);
    for (int64_t i = 0; i < m; i++)
        v[i] = vg_tensor_get_i64(t, i);
    *n = (int)m;
    return 0;
}

int vg_kattr_auto_pad(struct vg_kctx *c, enum vg_auto_pad *ap)
{
    static const char *const names[] = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"};
    const char *v;
    int rc = vg_kattr_s(c, "auto_pad", "NOTSET", &v);
    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(v, names[i])) {
            *ap = (enum vg_auto_pad)i;
            return 0;
        }
    return vg_kerr(c, VG_EGRAPH, "auto_pad '%s' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID",
                   v);
}
