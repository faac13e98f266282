/*
 * Sessions: the per-thread workspace. A run looks up the plan for the bound input shapes (a small
 * most-recently-used cache), binds the arena, and calls each node's run function through the
 * contexts the plan prepared. The steady state allocates nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define VG_PLAN_CACHE 8

struct vg_session {
    const struct vg_model *m;
    const struct vg_tensor **inputs;   /* bound, borrowed */
    const struct vg_tensor **outputs;  /* of the last run */
    struct vg_plan *plans[VG_PLAN_CACHE];
    int n_plans;
    struct vg_plan *transient;         /* value-dependent plan of the last run */
    unsigned char *arena;
    size_t arena_cap;
    struct vg_strpool strings;         /* strings made during a run */
    struct vg_pool dyn;                /* node-by-node execution */
    struct vg_error err;
};

struct vg_session *vg_session_new(const struct vg_model *m)
{
    struct vg_session *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->m = m;
    s->inputs = calloc((size_t)m->n_inputs + 1, sizeof(*s->inputs));
    s->outputs = calloc((size_t)m->n_outputs + 1, sizeof(*s->outputs));
    if (!s->inputs || !s->outputs) {
        vg_session_free(s);
        return NULL;
    }
    return s;
}

void vg_session_free(struct vg_session *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n_plans; i++)
        vg__plan_free(s->plans[i]);
    vg__plan_free(s->transient);
    free(s->arena);
    vg__pool_release(&s->strings.pool);
    vg__pool_release(&s->dyn);
    free(s->inputs);
    free(s->outputs);
    free(s);
}

size_t vg_session_arena_bytes(const struct vg_session *s)
{
    return s->arena_cap;
}

int vg_session_set_input(struct vg_session *s, int i, const struct vg_tensor *t,
                         struct vg_error *err)
{
    const struct vg_model *m = s->m;
    if (i < 0 || i >= m->n_inputs)
        return vg__err(err, VG_EINVAL, "input index %d out of range (model has %d inputs)", i,
                       m->n_inputs);
    const struct vg_io_info *io = &m->input_info[i];
    s->inputs[i] = NULL;
    if (t->dtype != io->dtype)
        return vg__err(err, VG_ETYPE, "input '%s' expects %s, got %s", io->name,
                       vg_dtype_name(io->dtype), vg_dtype_name(t->dtype));
    if (io->rank >= 0 && t->rank != io->rank)
        return vg__err(err, VG_ESHAPE, "input '%s' expects rank %d, got rank %d", io->name,
                       io->rank, t->rank);
    char what[300];
    snprintf(what, sizeof(what), "input '%s'", io->name);
    int rc = vg__check_dims(t, what, err);
    if (rc)
        return rc;
    for (int d = 0; io->rank >= 0 && d < t->rank; d++)
        if (io->dims[d] >= 0 && t->dims[d] != io->dims[d])
            return vg__err(err, VG_ESHAPE, "input '%s' expects dimension %d to be %lld, got %lld",
                           io->name, d, (long long)io->dims[d], (long long)t->dims[d]);
    int64_t n = vg_tensor_numel(t);
    if (n && !t->data)
        return vg__err(err, VG_EINVAL, "input '%s' has no data", io->name);
    if (t->dtype == VG_DT_STRING)
        for (int64_t k = 0; k < n; k++)
            if (!((const char *const *)t->data)[k])
                return vg__err(err, VG_EINVAL, "input '%s': string %lld is NULL", io->name,
                               (long long)k);
    s->inputs[i] = t;
    return 0;
}

/* One value per symbolic dimension name across all inputs. */
static int check_symbols(const struct vg_model *m, const struct vg_tensor *const *in,
                         struct vg_error *err)
{
    for (int i = 0; i < m->n_inputs; i++) {
        const struct vg_io_info *a = &m->input_info[i];
        for (int d = 0; a->rank >= 0 && d < a->rank; d++) {
            if (!a->dim_names[d])
                continue;
            for (int j = 0; j <= i; j++) {
                const struct vg_io_info *b = &m->input_info[j];
                for (int e = 0; b->rank >= 0 && e < (j == i ? d : b->rank); e++)
                    if (b->dim_names[e] && !strcmp(a->dim_names[d], b->dim_names[e]) &&
                        in[j]->dims[e] != in[i]->dims[d])
                        return vg__err(err, VG_ESHAPE,
                                       "dimension '%s' is %lld in input '%s' but %lld in input "
                                       "'%s'", a->dim_names[d], (long long)in[j]->dims[e],
                                       b->name, (long long)in[i]->dims[d], a->name);
            }
        }
    }
    return 0;
}

static int same_shapes(const struct vg_plan *p, const struct vg_tensor *const *in)
{
    for (int i = 0; i < p->n_inputs; i++) {
        if (p->key[i].rank != in[i]->rank)
            return 0;
        for (int d = 0; d < in[i]->rank; d++)
            if (p->key[i].dims[d] != in[i]->dims[d])
                return 0;
    }
    return 1;
}

static int run_dynamic(struct vg_session *s, struct vg_error *err)
{
    const struct vg_model *m = s->m;
    struct vg_pool *pool = &s->dyn;
    vg__pool_reset(pool);
    struct vg_tensor *vals = vg__pool_alloc(pool, sizeof(*vals) * ((size_t)m->n_values + 1));
    if (!vals)
        return vg__err(err, VG_ENOMEM, "out of memory");
    for (int v = 0; v < m->n_values; v++) {
        if (m->values[v].constant)
            vals[v] = *m->values[v].constant;
        vals[v].dtype = m->values[v].dtype;
        vals[v].map_keys = m->values[v].map_keys;
    }
    for (int i = 0; i < m->n_inputs; i++)
        vals[m->input_ids[i]] = *s->inputs[i];
    for (int k = 0; k < m->n_nodes; k++) {
        const struct vg_node *n = m->nodes[k];
        struct vg_tensor **pin = vg__pool_alloc(pool, sizeof(*pin) * ((size_t)n->n_in + 1));
        struct vg_tensor **pout = vg__pool_alloc(pool, sizeof(*pout) * ((size_t)n->n_out + 1));
        if (!pin || !pout)
            return vg__err(err, VG_ENOMEM, "out of memory");
        for (int i = 0; i < n->n_in; i++)
            pin[i] = n->in[i] >= 0 ? &vals[n->in[i]] : NULL;
        for (int i = 0; i < n->n_out; i++)
            pout[i] = n->out[i] >= 0 ? &vals[n->out[i]] : NULL;
        int rc = vg__node_exec(n, pin, pout, pool, &s->strings, err);
        if (rc)
            return rc;
    }
    for (int i = 0; i < m->n_outputs; i++)
        s->outputs[i] = &vals[m->output_ids[i]];
    return 0;
}

static int get_plan(struct vg_session *s, struct vg_plan **out, struct vg_error *err)
{
    const struct vg_tensor *const *in = s->inputs;
    for (int i = 0; i < s->n_plans; i++) {
        struct vg_plan *p = s->plans[i];
        if (!same_shapes(p, in))
            continue;
        if (i) { /* most recently used first */
            memmove(&s->plans[1], &s->plans[0], sizeof(p) * (size_t)i);
            s->plans[0] = p;
        }
        *out = p;
        return 0;
    }
    int rc = check_symbols(s->m, in, err);
    if (rc)
        return rc;
    struct vg_plan *p;
    if ((rc = vg__plan_build(s->m, in, &p, err)))
        return rc;
    if (p->value_dependent) {
        vg__plan_free(s->transient);
        s->transient = p;
    } else {
        if (s->n_plans == VG_PLAN_CACHE)
            vg__plan_free(s->plans[--s->n_plans]);
        memmove(&s->plans[1], &s->plans[0], sizeof(p) * (size_t)s->n_plans);
        s->plans[0] = p;
        s->n_plans++;
    }
    *out = p;
    return 0;
}

static void bind(struct vg_session *s, struct vg_plan *p)
{
    const struct vg_model *m = s->m;
    if (p->bound_arena != s->arena) {
        for (int v = 0; v < m->n_values; v++)
            if (p->offsets[v] >= 0)
                p->vals[v].data = s->arena + p->offsets[v];
        for (int k = 0; k < m->n_nodes; k++) {
            struct vg_kctx *c = &p->kctx[k];
            c->scratch = p->scratch_off[k] >= 0 ? s->arena + p->scratch_off[k] : NULL;
            c->strings = &s->strings;
            c->err = &s->err;
        }
        p->bound_arena = s->arena;
    }
    for (int i = 0; i < m->n_inputs; i++)
        p->vals[m->input_ids[i]].data = s->inputs[i]->data;
}

int vg_session_run(struct vg_session *s, struct vg_error *err)
{
    const struct vg_model *m = s->m;
    struct vg_error local;
    if (!err)
        err = &local;
    for (int i = 0; i < m->n_outputs; i++)
        s->outputs[i] = NULL;
    for (int i = 0; i < m->n_inputs; i++)
        if (!s->inputs[i])
            return vg__err(err, VG_EINVAL, "input '%s' is not bound", m->input_info[i].name);
    if (s->strings.pool.head)
        vg__pool_reset(&s->strings.pool);

    struct vg_plan *p;
    int rc = get_plan(s, &p, err);
    if (rc)
        return rc;
    if (p->dynamic)
        return run_dynamic(s, err);
    if (s->arena_cap < p->arena_bytes) {
        size_t cap = (p->arena_bytes + 4095) & ~(size_t)4095;
        unsigned char *a = aligned_alloc(64, cap);
        if (!a)
            return vg__err(err, VG_ENOMEM, "out of memory (arena of %zu bytes)", cap);
        free(s->arena);
        s->arena = a;
        s->arena_cap = cap;
    }
    bind(s, p);
    for (int k = 0; k < m->n_nodes; k++) {
        struct vg_kctx *c = &p->kctx[k];
        rc = m->nodes[k]->op->run(c);
        if (rc) {
            if (rc > 0)
                rc = -rc;
            if (s->err.code)
                *err = s->err;
            else
                vg__err(err, -rc, "node '%s' (%s) failed: %s", m->nodes[k]->name,
                        m->nodes[k]->op_type, vg_strerror(rc));
            s->err.code = 0;
            return rc;
        }
    }
    for (int i = 0; i < m->n_outputs; i++)
        s->outputs[i] = &p->vals[m->output_ids[i]];
    return 0;
}

const struct vg_tensor *vg_session_output(const struct vg_session *s, int i)
{
    if (i < 0 || i >= s->m->n_outputs)
        return NULL;
    return s->outputs[i];
}
