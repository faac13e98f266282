/*
 * Execution planning: once per distinct set of input shapes, the planner runs every operator's
 * shape inference, then lays out all intermediate tensors and per-node scratch in one arena.
 *
 * Values known at planning time (constants, the inputs' own data when given, and the outputs of
 * small integer-valued nodes whose inputs are all known, or of shape-only operators such as Shape)
 * are evaluated during planning so that shape-computing subgraphs (Shape -> Gather -> Concat -> Reshape) resolve
 * to static shapes. A plan that read the inputs' data is marked value_dependent and rebuilt on
 * every run; a plan that met a value it could not know is marked dynamic and executed node by
 * node (vg__run_dynamic in session.c).
 *
 * Layout: each arena value lives from the node that produces it to the last node that reads it
 * (graph outputs to the end). Items are placed largest first at the lowest offset that does not
 * overlap any placed item whose lifetime intersects, which lets tensors of disjoint lifetimes
 * share memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Plan-time evaluation is limited to small outputs: it exists to resolve shapes, not compute. */
#define VG_PLAN_EVAL_MAX_ELEMS 4096
#define VG_ALIGN(x) (((x) + 63) & ~(size_t)63)

struct item {
    int64_t size;
    int def, last;
    int64_t *offset;
};

static int cmp_item(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    if (x->size != y->size)
        return x->size > y->size ? -1 : 1;
    return x->def - y->def;
}

static int cmp_off(const void *a, const void *b)
{
    const struct item *x = *(const struct item *const *)a, *y = *(const struct item *const *)b;
    return *x->offset < *y->offset ? -1 : *x->offset > *y->offset;
}

/* Greedy by size: returns the arena size. */
static int64_t layout(struct item *items, int n, int *err_oom)
{
    qsort(items, (size_t)n, sizeof(*items), cmp_item);
    struct item **live = calloc((size_t)n + 1, sizeof(*live));
    if (!live) {
        *err_oom = 1;
        return 0;
    }
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        int nl = 0;
        for (int j = 0; j < i; j++)
            if (items[j].def <= items[i].last && items[i].def <= items[j].last)
                live[nl++] = &items[j];
        qsort(live, (size_t)nl, sizeof(*live), cmp_off);
        int64_t off = 0;
        for (int j = 0; j < nl; j++) {
            int64_t o = *live[j]->offset;
            if (o - off >= items[i].size)
                break;
            if (o + live[j]->size > off)
                off = o + live[j]->size;
        }
        *items[i].offset = off;
        if (off + items[i].size > total)
            total = off + items[i].size;
    }
    free(live);
    return total;
}

static int out_check(const struct vg_node *n, int i, const struct vg_tensor *t,
                     struct vg_error *err)
{
    char where[400];
    vg__node_desc(n, where, sizeof(where));
    size_t o = strlen(where);
    snprintf(where + o, sizeof(where) - o, ": output #%d", i);
    if (t->rank < 0 || t->rank > VG_MAX_RANK)
        return vg__err(err, VG_ESHAPE, "%s: rank %d not inferred or above %d", where, t->rank,
                       VG_MAX_RANK);
    return vg__check_dims(t, where, err);
}

int vg__node_exec(const struct vg_node *n, struct vg_tensor *const *in, struct vg_tensor *const *out,
                  struct vg_pool *pool, struct vg_strpool *strings, struct vg_error *err)
{
    /* infer sees shapes only; values through vg_kctx_value */
    struct vg_tensor *shapes = vg__pool_alloc(pool, sizeof(*shapes) * ((size_t)n->n_in + 1));
    struct vg_tensor **pshapes = vg__pool_alloc(pool, sizeof(*pshapes) * ((size_t)n->n_in + 1));
    if (!shapes || !pshapes)
        return vg__err(err, VG_ENOMEM, "out of memory");
    for (int i = 0; i < n->n_in; i++) {
        pshapes[i] = NULL;
        if (!in[i])
            continue;
        shapes[i] = *in[i];
        shapes[i].data = NULL;
        pshapes[i] = &shapes[i];
    }
    struct vg_kctx c;
    vg__kctx_setup(&c, VG_PHASE_INFER, n, pshapes, out, err);
    c.values = (const struct vg_tensor *const *)in;
    int rc = n->op->infer(&c);
    if (rc)
        return rc > 0 ? -rc : rc;
    for (int i = 0; i < n->n_out; i++) {
        if (!out[i])
            continue;
        if ((rc = out_check(n, i, out[i], err)))
            return rc;
        int64_t bytes = vg__tensor_bytes(out[i]);
        out[i]->data = vg__pool_alloc(pool, (size_t)bytes + 1);
        if (!out[i]->data)
            return vg__err(err, VG_ENOMEM, "out of memory (%lld bytes)", (long long)bytes);
    }
    size_t scratch = c.scratch_bytes;
    vg__kctx_setup(&c, VG_PHASE_RUN, n, in, out, err);
    c.strings = strings;
    c.scratch_bytes = scratch;
    if (scratch && !(c.scratch = vg__pool_alloc(pool, scratch)))
        return vg__err(err, VG_ENOMEM, "out of memory (scratch of %zu bytes)", scratch);
    rc = n->op->run(&c);
    return rc > 0 ? -rc : rc;
}

void vg__plan_free(struct vg_plan *p)
{
    if (!p)
        return;
    vg__pool_release(&p->pool);
    free(p);
}

int vg__plan_build(const struct vg_model *m, const struct vg_tensor *const *inputs,
                   struct vg_plan **out, struct vg_error *err)
{
    *out = NULL;
    struct vg_plan *p = calloc(1, sizeof(*p));
    if (!p)
        return vg__err(err, VG_ENOMEM, "out of memory");
    struct vg_pool *pool = &p->pool;
    struct vg_pool scratch_pool = {0}; /* plan-time evaluation buffers */
    struct vg_strpool eval_strings = {{0}};
    struct item *items = NULL;
    int rc = 0, nv = m->n_values, nn = m->n_nodes, used_input_data = 0;

    p->n_inputs = m->n_inputs;
    p->key = vg__pool_alloc(pool, sizeof(*p->key) * ((size_t)m->n_inputs + 1));
    p->vals = vg__pool_alloc(pool, sizeof(*p->vals) * ((size_t)nv + 1));
    p->offsets = vg__pool_alloc(pool, sizeof(*p->offsets) * ((size_t)nv + 1));
    p->kctx = vg__pool_alloc(pool, sizeof(*p->kctx) * ((size_t)nn + 1));
    p->scratch_off = vg__pool_alloc(pool, sizeof(*p->scratch_off) * ((size_t)nn + 1));
    const struct vg_tensor **known = calloc((size_t)nv + 1, sizeof(*known));
    unsigned char *from_input = calloc((size_t)nv + 1, 1);
    int *def = calloc((size_t)nv + 1, sizeof(int)), *last = calloc((size_t)nv + 1, sizeof(int));
    size_t *scratch = calloc((size_t)nn + 1, sizeof(size_t));
    if (!p->key || !p->vals || !p->offsets || !p->kctx || !p->scratch_off || !known ||
        !from_input || !def || !last || !scratch) {
        rc = vg__err(err, VG_ENOMEM, "out of memory");
        goto out;
    }

    for (int v = 0; v < nv; v++) {
        const struct vg_value *val = &m->values[v];
        p->offsets[v] = -1;
        p->vals[v].dtype = val->dtype;
        p->vals[v].map_keys = val->map_keys;
        def[v] = -1;
        if (val->constant) {
            p->vals[v].rank = val->constant->rank;
            memcpy(p->vals[v].dims, val->constant->dims, sizeof(p->vals[v].dims));
            known[v] = val->constant;
        }
    }
    for (int i = 0; i < m->n_inputs; i++) {
        int id = m->input_ids[i];
        p->key[i] = *inputs[i];
        p->key[i].data = NULL;
        p->vals[id].rank = inputs[i]->rank;
        memcpy(p->vals[id].dims, inputs[i]->dims, sizeof(p->vals[id].dims));
        if (inputs[i]->data) {
            known[id] = inputs[i];
            from_input[id] = 1;
        }
    }

    for (int k = 0; k < nn && !p->dynamic; k++) {
        const struct vg_node *n = m->nodes[k];
        struct vg_tensor **pin = vg__pool_alloc(pool, sizeof(*pin) * ((size_t)n->n_in + 1));
        struct vg_tensor **pout = vg__pool_alloc(pool, sizeof(*pout) * ((size_t)n->n_out + 1));
        const struct vg_tensor **kv = calloc((size_t)n->n_in + 1, sizeof(*kv));
        unsigned char *kfi = calloc((size_t)n->n_in + 1, 1);
        if (!pin || !pout || !kv || !kfi) {
            free(kv);
            free(kfi);
            rc = vg__err(err, VG_ENOMEM, "out of memory");
            goto out;
        }
        int all_known = 1, any_from_input = 0;
        for (int i = 0; i < n->n_in; i++) {
            int id = n->in[i];
            pin[i] = id >= 0 ? &p->vals[id] : NULL;
            if (id < 0)
                continue;
            kv[i] = known[id];
            kfi[i] = from_input[id];
            all_known &= known[id] != NULL;
            any_from_input |= from_input[id];
            if (k > last[id])
                last[id] = k;
        }
        for (int i = 0; i < n->n_out; i++) {
            int id = n->out[i];
            pout[i] = id >= 0 ? &p->vals[id] : NULL;
            if (id >= 0) {
                p->vals[id].rank = -1;
                def[id] = last[id] = k;
            }
        }
        struct vg_kctx *c = &p->kctx[k];
        vg__kctx_setup(c, VG_PHASE_INFER, n, pin, pout, err);
        c->values = kv;
        c->value_from_input = kfi;
        c->used_input_data = &used_input_data;
        rc = n->op->infer(c);
        if (rc > 0)
            rc = -rc;
        scratch[k] = c->scratch_bytes;
        if (rc == -VG_EDYNAMIC) {
            p->dynamic = 1;
            rc = 0;
        }
        int64_t out_elems = 0;
        int shape_like = 1;
        for (int i = 0; i < n->n_out && !rc && !p->dynamic; i++) {
            if (!pout[i])
                continue;
            if ((rc = out_check(n, i, pout[i], err)))
                break;
            out_elems += vg_tensor_numel(pout[i]);
            shape_like &= pout[i]->dtype == VG_DT_INT64 || pout[i]->dtype == VG_DT_INT32;
        }
        /* Evaluate small, fully known integer nodes now (shapes, axes, indices) so later shape
           inference can read them; float results are never shapes, so they are left to run. */
        int shape_only = (n->op->flags & VG_OPF_SHAPE_ONLY) != 0;
        if (!rc && !p->dynamic && (all_known || shape_only) && shape_like &&
            out_elems <= VG_PLAN_EVAL_MAX_ELEMS) {
            struct vg_tensor **ein = vg__pool_alloc(&scratch_pool, sizeof(*ein) * ((size_t)n->n_in + 1));
            struct vg_tensor *eout = vg__pool_alloc(&scratch_pool, sizeof(*eout) * ((size_t)n->n_out + 1));
            struct vg_tensor **peout = vg__pool_alloc(&scratch_pool, sizeof(*peout) * ((size_t)n->n_out + 1));
            void *sbuf = scratch[k] ? vg__pool_alloc(&scratch_pool, scratch[k]) : NULL;
            int ok = ein && eout && peout && (!scratch[k] || sbuf);
            for (int i = 0; ok && i < n->n_in; i++)
                ein[i] = n->in[i] < 0 ? NULL
                         : kv[i]      ? (struct vg_tensor *)kv[i]
                                      : &p->vals[n->in[i]];
            for (int i = 0; ok && i < n->n_out; i++) {
                peout[i] = NULL;
                if (!pout[i])
                    continue;
                eout[i] = *pout[i];
                eout[i].data = vg__pool_alloc(&scratch_pool, (size_t)vg__tensor_bytes(pout[i]) + 1);
                ok = eout[i].data != NULL;
                peout[i] = &eout[i];
            }
            if (ok) {
                struct vg_kctx ec;
                struct vg_error eerr;
                vg__kctx_setup(&ec, VG_PHASE_RUN, n, ein, peout, &eerr);
                ec.scratch = sbuf;
                ec.scratch_bytes = scratch[k];
                ec.strings = &eval_strings;
                if (n->op->run(&ec) == 0)
                    for (int i = 0; i < n->n_out; i++)
                        if (peout[i]) {
                            known[n->out[i]] = peout[i];
                            from_input[n->out[i]] = shape_only ? 0 : (unsigned char)any_from_input;
                        }
            }
        }
        free(kv);
        free(kfi);
        c->values = NULL;
        c->value_from_input = NULL;
        c->used_input_data = NULL;
        if (rc)
            goto out;
    }
    p->value_dependent = used_input_data;
    if (p->dynamic)
        goto out;

    /* Lifetimes: graph outputs live to the end. */
    for (int i = 0; i < m->n_outputs; i++)
        if (def[m->output_ids[i]] >= 0)
            last[m->output_ids[i]] = nn;
    int n_items = 0;
    items = calloc((size_t)nv + (size_t)nn + 1, sizeof(*items));
    if (!items) {
        rc = vg__err(err, VG_ENOMEM, "out of memory");
        goto out;
    }
    for (int v = 0; v < nv; v++)
        if (def[v] >= 0)
            items[n_items++] = (struct item){(int64_t)VG_ALIGN((size_t)vg__tensor_bytes(&p->vals[v])),
                                             def[v], last[v], &p->offsets[v]};
    for (int k = 0; k < nn; k++) {
        p->scratch_off[k] = -1;
        if (scratch[k])
            items[n_items++] = (struct item){(int64_t)VG_ALIGN(scratch[k]), k, k, &p->scratch_off[k]};
    }
    int oom = 0;
    int64_t total = layout(items, n_items, &oom);
    if (oom) {
        rc = vg__err(err, VG_ENOMEM, "out of memory");
        goto out;
    }
    if (total > VG_MAX_TENSOR_BYTES) {
        rc = vg__err(err, VG_ENOMEM, "the plan needs %lld bytes of intermediate memory, above "
                     "the limit of %lld", (long long)total, (long long)VG_MAX_TENSOR_BYTES);
        goto out;
    }
    p->arena_bytes = (size_t)total + 64;
    for (int v = 0; v < nv; v++)
        if (m->values[v].constant)
            p->vals[v].data = m->values[v].constant->data;
    for (int k = 0; k < nn; k++) {
        struct vg_kctx *c = &p->kctx[k];
        c->phase = VG_PHASE_RUN;
        c->scratch_bytes = scratch[k];
    }
out:
    free(known);
    free(from_input);
    free(def);
    free(last);
    free(scratch);
    free(items);
    vg__pool_release(&scratch_pool);
    vg__pool_release(&eval_strings.pool);
    if (rc) {
        vg__plan_free(p);
        return rc;
    }
    *out = p;
    return 0;
}
