/*
 * Loading an ONNX ModelProto into an immutable struct vg_model.
 *
 * Load-time checks, in order: protobuf parse; opset imports (ai.onnx 1..VG_ONNX_OPSET_MAX,
 * ai.onnx.ml 1..VG_ML_OPSET_MAX (4: LabelEncoder only), com.microsoft 1; other domains may be imported but no node may
 * use them); initializers and graph inputs (tensor types of the engine's dtypes, sane shapes);
 * single assignment of every value; every node input defined; topological order (Kahn; a cycle
 * is an error naming a node on it); operator known for its domain and opset; each operator's init
 * (attributes and types); graph output types against their declarations; constant folding of
 * initializer-only subgraphs; load-time fusion through the operators' `absorb` hooks (op.h);
 * removal of nodes no output needs; and a shape probe (a plan built
 * with leading symbolic dims bound to 1 and to 2: an error under every binding is a load error;
 * models with other symbolic dims are not probed, since no guess for them is meaningful).
 * Not supported: subgraph attributes (If/Loop), sparse initializers, functions, training info.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "onnx.pb-c.h"

#define VG_ONNX_OPSET_MAX 19
#define VG_ML_OPSET_MAX 4
/* ONNX models are protobuf messages, which cannot exceed 2 GiB. */
#define VG_MAX_MODEL_BYTES ((size_t)2 << 30)

/* ---- name -> value id (open addressing) ------------------------------------------------------ */
struct name_map {
    size_t cap;
    const char **keys;
    int *ids;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int map_init(struct name_map *nm, size_t n)
{
    nm->cap = 16;
    while (nm->cap < n * 2)
        nm->cap *= 2;
    nm->keys = calloc(nm->cap, sizeof(*nm->keys));
    nm->ids = calloc(nm->cap, sizeof(*nm->ids));
    return nm->keys && nm->ids ? 0 : -VG_ENOMEM;
}

static void map_release(struct name_map *nm)
{
    free(nm->keys);
    free(nm->ids);
}

/* Returns the slot for `key`: keys[slot] is NULL when absent. */
static size_t map_slot(const struct name_map *nm, const char *key)
{
    size_t i = hash_str(key) & (nm->cap - 1);
    while (nm->keys[i] && strcmp(nm->keys[i], key))
        i = (i + 1) & (nm->cap - 1);
    return i;
}

static int map_get(const struct name_map *nm, const char *key)
{
    size_t i = map_slot(nm, key);
    return nm->keys[i] ? nm->ids[i] : -1;
}

/* ---- building ---------------------------------------------------------------------------------- */
struct loader {
    struct vg_model *m;
    const Onnx__ModelProto *mp;
    const char *base_dir;
    struct name_map names;
    int cap_values;
    struct vg_error *err;
};

static void *pool_alloc_cb(void *ctx, size_t n)
{
    return vg__pool_alloc(ctx, n);
}

static const char *pstr(struct vg_model *m, const char *s)
{
    if (!s)
        s = "";
    return vg__pool_strndup(&m->pool, s, strlen(s));
}

static int oom(struct loader *L)
{
    return vg__err(L->err, VG_ENOMEM, "out of memory while loading the model");
}

static int add_value(struct loader *L, const char *name, int *id)
{
    size_t slot = map_slot(&L->names, name);
    if (L->names.keys[slot]) {
        *id = L->names.ids[slot];
        return 1; /* exists */
    }
    struct vg_model *m = L->m;
    if (m->n_values >= L->cap_values)
        return vg__err(L->err, VG_EGRAPH, "internal: value table full");
    struct vg_value *v = &m->values[m->n_values];
    v->name = pstr(m, name);
    if (!v->name)
        return oom(L);
    v->producer = -1;
    v->input_index = -1;
    L->names.keys[slot] = v->name;
    L->names.ids[slot] = m->n_values;
    *id = m->n_values++;
    return 0;
}

static int domain_ok(const char *d)
{
    return !strcmp(d, "") || !strcmp(d, "ai.onnx.ml") || !strcmp(d, "com.microsoft");
}

static const char *norm_domain(const char *d)
{
    if (!d || !strcmp(d, "ai.onnx"))
        return "";
    return d;
}

static int load_opsets(struct loader *L)
{
    const Onnx__ModelProto *mp = L->mp;
    struct vg_model *m = L->m;
    m->opset_domains = vg__pool_alloc(&m->pool, sizeof(char *) * (mp->n_opset_import + 1));
    m->opset_versions = vg__pool_alloc(&m->pool, sizeof(int64_t) * (mp->n_opset_import + 1));
    if (!m->opset_domains || !m->opset_versions)
        return oom(L);
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        const char *d = norm_domain(o->domain);
        int64_t v = o->version;
        if (!strcmp(d, "") && (v < 1 || v > VG_ONNX_OPSET_MAX))
            return vg__err(L->err, VG_EUNSUPPORTED,
                           "opset import ai.onnx version %lld is not supported (1..%d)",
                           (long long)v, VG_ONNX_OPSET_MAX);
        if (!strcmp(d, "ai.onnx.ml") && (v < 1 || v > VG_ML_OPSET_MAX))
            return vg__err(L->err, VG_EUNSUPPORTED,
                           "opset import ai.onnx.ml version %lld is not supported (1..%d)",
                           (long long)v, VG_ML_OPSET_MAX);
        for (int j = 0; j < m->n_opsets; j++)
            if (!strcmp(m->opset_domains[j], d))
                return vg__err(L->err, VG_EGRAPH, "opset for domain '%s' imported twice",
                               d[0] ? d : "ai.onnx");
        m->opset_domains[m->n_opsets] = pstr(m, d);
        m->opset_versions[m->n_opsets++] = v;
    }
    return 0;
}

static int64_t opset_for(const struct vg_model *m, const char *domain)
{
    for (int i = 0; i < m->n_opsets; i++)
        if (!strcmp(m->opset_domains[i], domain))
            return m->opset_versions[i];
    return -1;
}

/* Declared type of a graph input/output into `io`. Returns 1 when the value is a non-tensor. */
static int load_type(struct loader *L, const Onnx__ValueInfoProto *vi, struct vg_io_info *io,
                     const char *what)
{
    const Onnx__TypeProto *tp = vi->type;
    io->rank = -1;
    io->dtype = VG_DT_UNDEFINED;
    if (!tp || tp->value_case == ONNX__TYPE_PROTO__VALUE__NOT_SET)
        return 0;
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
        return 1;
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (!tt)
        return 0;
    io->dtype = (enum vg_dtype)tt->elem_type;
    if (tt->elem_type && !vg_dtype_size(io->dtype))
        return vg__err(L->err, VG_EUNSUPPORTED, "%s '%s': element type %d is not supported",
                       what, io->name, (int)tt->elem_type);
    if (!tt->shape)
        return 0;
    if (tt->shape->n_dim > VG_MAX_RANK)
        return vg__err(L->err, VG_EUNSUPPORTED, "%s '%s': rank %zu exceeds the limit of %d", what,
                       io->name, tt->shape->n_dim, VG_MAX_RANK);
    io->rank = (int)tt->shape->n_dim;
    struct vg_tensor probe = {.dtype = io->dtype ? io->dtype : VG_DT_FLOAT, .rank = io->rank};
    for (int i = 0; i < io->rank; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        io->dims[i] = -1;
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0)
                return vg__err(L->err, VG_ESHAPE, "%s '%s': negative dimension %lld at axis %d",
                               what, io->name, (long long)d->dim_value, i);
            io->dims[i] = d->dim_value;
        } else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                   d->dim_param && d->dim_param[0]) {
            io->dim_names[i] = pstr(L->m, d->dim_param);
            if (!io->dim_names[i])
                return oom(L);
        }
        probe.dims[i] = io->dims[i] < 0 ? 1 : io->dims[i];
    }
    char desc[300];
    snprintf(desc, sizeof(desc), "%s '%s'", what, io->name);
    return vg__check_dims(&probe, desc, L->err);
}

static int load_values(struct loader *L)
{
    const Onnx__GraphProto *g = L->mp->graph;
    struct vg_model *m = L->m;
    size_t n = g->n_initializer + g->n_input;
    for (size_t i = 0; i < g->n_node; i++)
        n += g->node[i]->n_output;
    L->cap_values = (int)n;
    m->values = vg__pool_alloc(&m->pool, sizeof(*m->values) * (n + 1));
    if (!m->values || map_init(&L->names, n + 1))
        return oom(L);
    if (g->n_sparse_initializer)
        return vg__err(L->err, VG_EUNSUPPORTED, "sparse initializers are not supported");

    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *tp = g->initializer[i];
        int id, rc;
        if (!tp->name || !tp->name[0])
            return vg__err(L->err, VG_EGRAPH, "initializer #%zu has no name", i);
        if ((rc = add_value(L, tp->name, &id)) < 0)
            return rc;
        if (rc == 1)
            return vg__err(L->err, VG_EGRAPH, "initializer '%s' is defined twice", tp->name);
        struct vg_tensor *t = vg__pool_alloc(&m->pool, sizeof(*t));
        if (!t)
            return oom(L);
        if ((rc = vg__tensor_from_proto(tp, L->base_dir, pool_alloc_cb, &m->pool, t, L->err)))
            return rc;
        m->values[id].constant = t;
        m->values[id].dtype = t->dtype;
    }

    /* Inputs that are also initializers are defaults (IR >= 4): treated as constants. */
    m->input_ids = vg__pool_alloc(&m->pool, sizeof(int) * (g->n_input + 1));
    m->input_info = vg__pool_alloc(&m->pool, sizeof(*m->input_info) * (g->n_input + 1));
    if (!m->input_ids || !m->input_info)
        return oom(L);
    for (size_t i = 0; i < g->n_input; i++) {
        const Onnx__ValueInfoProto *vi = g->input[i];
        if (!vi->name || !vi->name[0])
            return vg__err(L->err, VG_EGRAPH, "graph input #%zu has no name", i);
        int id, rc = add_value(L, vi->name, &id);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            if (m->values[id].constant)
                continue;
            return vg__err(L->err, VG_EGRAPH, "graph input '%s' is listed twice", vi->name);
        }
        struct vg_io_info *io = &m->input_info[m->n_inputs];
        io->name = m->values[id].name;
        rc = load_type(L, vi, io, "input");
        if (rc < 0)
            return rc;
        if (rc == 1)
            return vg__err(L->err, VG_EUNSUPPORTED, "input '%s': only tensor inputs are supported",
                           vi->name);
        if (io->dtype == VG_DT_UNDEFINED)
            return vg__err(L->err, VG_ETYPE, "input '%s' does not declare an element type",
                           vi->name);
        m->values[id].dtype = io->dtype;
        m->values[id].input_index = m->n_inputs;
        m->input_ids[m->n_inputs++] = id;
    }
    return 0;
}

static int load_attr(struct loader *L, const Onnx__AttributeProto *ap, struct vg_attr *a,
                     const char *where)
{
    struct vg_model *m = L->m;
    a->name = pstr(m, ap->name);
    if (!a->name)
        return oom(L);
    int type = ap->has_type ? (int)ap->type : 0;
    if (!type) { /* IR < 3 models may omit the discriminator */
        if (ap->n_floats) type = VG_ATTR_FLOATS;
        else if (ap->n_ints) type = VG_ATTR_INTS;
        else if (ap->n_strings) type = VG_ATTR_STRINGS;
        else if (ap->t) type = VG_ATTR_TENSOR;
        else if (ap->g) type = VG_ATTR_GRAPH;
        else if (ap->has_s) type = VG_ATTR_STRING;
        else if (ap->has_f) type = VG_ATTR_FLOAT;
        else if (ap->has_i) type = VG_ATTR_INT;
    }
    a->type = (enum vg_attr_type)type;
    switch (type) {
    case VG_ATTR_FLOAT: a->f = ap->f; break;
    case VG_ATTR_INT: a->i = ap->i; break;
    case VG_ATTR_STRING:
        a->s = vg__pool_strndup(&m->pool, (const char *)ap->s.data, ap->s.len);
        if (!a->s)
            return oom(L);
        break;
    case VG_ATTR_TENSOR: {
        struct vg_tensor *t = vg__pool_alloc(&m->pool, sizeof(*t));
        if (!t || !ap->t)
            return t ? vg__err(L->err, VG_EGRAPH, "%s: attribute '%s' has no tensor", where,
                               a->name)
                     : oom(L);
        int rc = vg__tensor_from_proto(ap->t, L->base_dir, pool_alloc_cb, &m->pool, t, L->err);
        if (rc) {
            char prefix[400];
            snprintf(prefix, sizeof(prefix), "%s: attribute '%s'", where, a->name);
            vg__err_prefix(L->err, prefix);
            return rc;
        }
        a->t = t;
        break;
    }
    case VG_ATTR_FLOATS: {
        float *v = vg__pool_alloc(&m->pool, sizeof(float) * (ap->n_floats + 1));
        if (!v)
            return oom(L);
        if (ap->n_floats)
            memcpy(v, ap->floats, sizeof(float) * ap->n_floats);
        a->floats = v;
        a->n = ap->n_floats;
        break;
    }
    case VG_ATTR_INTS: {
        int64_t *v = vg__pool_alloc(&m->pool, sizeof(int64_t) * (ap->n_ints + 1));
        if (!v)
            return oom(L);
        if (ap->n_ints)
            memcpy(v, ap->ints, sizeof(int64_t) * ap->n_ints);
        a->ints = v;
        a->n = ap->n_ints;
        break;
    }
    case VG_ATTR_STRINGS: {
        const char **v = vg__pool_alloc(&m->pool, sizeof(char *) * (ap->n_strings + 1));
        if (!v)
            return oom(L);
        for (size_t i = 0; i < ap->n_strings; i++)
            if (!(v[i] = vg__pool_strndup(&m->pool, (const char *)ap->strings[i].data,
                                          ap->strings[i].len)))
                return oom(L);
        a->strings = v;
        a->n = ap->n_strings;
        break;
    }
    default:
        break; /* graphs, tensor lists...: kept as a typed marker; operators refuse them */
    }
    return 0;
}

static int load_nodes(struct loader *L)
{
    const Onnx__GraphProto *g = L->mp->graph;
    struct vg_model *m = L->m;
    size_t nn = g->n_node;
    struct vg_node *raw = vg__pool_alloc(&m->pool, sizeof(*raw) * (nn + 1));
    if (!raw)
        return oom(L);
    char where[300];

    /* Pass 1: names, domains, opsets, outputs (single assignment). */
    for (size_t k = 0; k < nn; k++) {
        const Onnx__NodeProto *np = g->node[k];
        struct vg_node *n = &raw[k];
        n->name = pstr(m, np->name);
        n->op_type = pstr(m, np->op_type);
        n->domain = pstr(m, norm_domain(np->domain));
        if (!n->name || !n->op_type || !n->domain)
            return oom(L);
        n->opset = opset_for(m, n->domain);
        vg__node_desc(n, where, sizeof(where));
        if (!n->op_type[0])
            return vg__err(L->err, VG_EGRAPH, "node #%zu has no op_type", k);
        if (n->opset < 0)
            return vg__err(L->err, VG_EGRAPH, "%s: the model does not import domain '%s'", where,
                           n->domain[0] ? n->domain : "ai.onnx");
        if (!domain_ok(n->domain))
            return vg__err(L->err, VG_EUNSUPPORTED, "%s: domain '%s' is not supported", where,
                           n->domain);
        n->n_out = (int)np->n_output;
        n->out = vg__pool_alloc(&m->pool, sizeof(int) * (np->n_output + 1));
        if (!n->out)
            return oom(L);
        for (size_t i = 0; i < np->n_output; i++) {
            const char *name = np->output[i];
            n->out[i] = -1;
            if (!name || !name[0])
                continue;
            int id, rc = add_value(L, name, &id);
            if (rc < 0)
                return rc;
            if (rc == 1)
                return vg__err(L->err, VG_EGRAPH, "%s: output '%s' is already defined%s", where,
                               name,
                               m->values[id].producer >= 0 ? " by another node"
                               : m->values[id].constant ? " as an initializer"
                                                        : " as a graph input");
            m->values[id].producer = (int)k;
            n->out[i] = id;
        }
    }
    /* Pass 2: inputs and attributes. */
    for (size_t k = 0; k < nn; k++) {
        const Onnx__NodeProto *np = g->node[k];
        struct vg_node *n = &raw[k];
        vg__node_desc(n, where, sizeof(where));
        n->n_in = (int)np->n_input;
        n->in = vg__pool_alloc(&m->pool, sizeof(int) * (np->n_input + 1));
        n->attrs = vg__pool_alloc(&m->pool, sizeof(struct vg_attr) * (np->n_attribute + 1));
        if (!n->in || !n->attrs)
            return oom(L);
        for (size_t i = 0; i < np->n_input; i++) {
            const char *name = np->input[i];
            n->in[i] = -1;
            if (!name || !name[0])
                continue;
            int id = map_get(&L->names, name);
            if (id < 0)
                return vg__err(L->err, VG_EGRAPH,
                               "%s: input '%s' is not defined (not a graph input, initializer or "
                               "node output)", where, name);
            n->in[i] = id;
        }
        for (size_t i = 0; i < np->n_attribute; i++) {
            int rc = load_attr(L, np->attribute[i], &n->attrs[i], where);
            if (rc)
                return rc;
        }
        n->n_attrs = (int)np->n_attribute;
    }

    /* Topological order (Kahn), stable with respect to the file's order. */
    int *indeg = calloc(nn + 1, sizeof(int));
    int *order = calloc(nn + 1, sizeof(int));
    int *queue = calloc(nn + 1, sizeof(int));
    int rc = 0;
    if (!indeg || !order || !queue) {
        rc = oom(L);
        goto out;
    }
    for (size_t k = 0; k < nn; k++)
        for (int i = 0; i < raw[k].n_in; i++)
            if (raw[k].in[i] >= 0 && m->values[raw[k].in[i]].producer >= 0)
                indeg[k]++;
    size_t head = 0, tail = 0, done = 0;
    for (size_t k = 0; k < nn; k++)
        if (!indeg[k])
            queue[tail++] = (int)k;
    /* Edge list: for each node, the nodes consuming its outputs. */
    size_t n_edges = 0;
    for (size_t k = 0; k < nn; k++)
        for (int i = 0; i < raw[k].n_in; i++)
            if (raw[k].in[i] >= 0 && m->values[raw[k].in[i]].producer >= 0)
                n_edges++;
    int *edge_start = calloc(nn + 2, sizeof(int)), *edges = calloc(n_edges + 1, sizeof(int));
    if (!edge_start || !edges) {
        free(edge_start);
        free(edges);
        rc = oom(L);
        goto out;
    }
    for (size_t k = 0; k < nn; k++)
        for (int i = 0; i < raw[k].n_in; i++)
            if (raw[k].in[i] >= 0 && m->values[raw[k].in[i]].producer >= 0)
                edge_start[m->values[raw[k].in[i]].producer + 1]++;
    for (size_t k = 0; k < nn; k++)
        edge_start[k + 1] += edge_start[k];
    {
        int *fill = calloc(nn + 1, sizeof(int));
        if (!fill) {
            free(edge_start);
            free(edges);
            rc = oom(L);
            goto out;
        }
        for (size_t k = 0; k < nn; k++)
            for (int i = 0; i < raw[k].n_in; i++)
                if (raw[k].in[i] >= 0 && m->values[raw[k].in[i]].producer >= 0) {
                    int p = m->values[raw[k].in[i]].producer;
                    edges[edge_start[p] + fill[p]++] = (int)k;
                }
        free(fill);
    }
    while (head < tail) {
        int k = queue[head++];
        order[done++] = k;
        for (int e = edge_start[k]; e < edge_start[k + 1]; e++)
            if (--indeg[edges[e]] == 0)
                queue[tail++] = edges[e];
    }
    free(edge_start);
    free(edges);
    if (done != nn) {
        for (size_t k = 0; k < nn; k++)
            if (indeg[k]) {
                vg__node_desc(&raw[k], where, sizeof(where));
                rc = vg__err(L->err, VG_EGRAPH, "%s: the graph has a cycle through this node",
                             where);
                goto out;
            }
    }
    m->all_nodes = vg__pool_alloc(&m->pool, sizeof(*m->all_nodes) * (nn + 1));
    if (!m->all_nodes) {
        rc = oom(L);
        goto out;
    }
    for (size_t k = 0; k < nn; k++) {
        m->all_nodes[k] = raw[order[k]];
        for (int i = 0; i < m->all_nodes[k].n_out; i++)
            if (m->all_nodes[k].out[i] >= 0)
                m->values[m->all_nodes[k].out[i]].producer = (int)k;
    }
    m->n_all_nodes = (int)nn;
out:
    free(indeg);
    free(order);
    free(queue);
    return rc;
}

/* Per-node tensor and pointer arrays for one operator call (inputs first, then outputs). */
struct node_io {
    struct vg_tensor *t;
    struct vg_tensor **pin, **pout;
};

static int node_io_alloc(struct node_io *io, const struct vg_node *n)
{
    size_t k = (size_t)n->n_in + (size_t)n->n_out + 1;
    io->t = calloc(k, sizeof(*io->t));
    io->pin = calloc(k, sizeof(*io->pin));
    io->pout = io->pin ? io->pin + n->n_in : NULL;
    if (!io->t || !io->pin) {
        free(io->t);
        free(io->pin);
        return -VG_ENOMEM;
    }
    return 0;
}

static void node_io_release(struct node_io *io)
{
    free(io->t);
    free(io->pin);
}

/* Operator lookup and init (attribute validation and type inference), in topological order. */
static int init_nodes(struct loader *L)
{
    struct vg_model *m = L->m;
    char where[300];
    for (int k = 0; k < m->n_all_nodes; k++) {
        struct vg_node *n = &m->all_nodes[k];
        vg__node_desc(n, where, sizeof(where));
        n->op = vg_op_lookup(n->domain, n->op_type, n->opset);
        if (!n->op)
            return vg__err(L->err, VG_EUNSUPPORTED, "%s: operator is not supported%s", where,
                           vg_op_lookup(n->domain, n->op_type, 1000) ||
                                   vg_op_lookup(n->domain, n->op_type, 1)
                               ? " at this opset version"
                               : "");
        struct node_io io;
        if (node_io_alloc(&io, n))
            return oom(L);
        struct vg_tensor *tin = io.t, *tout = io.t + n->n_in;
        for (int i = 0; i < n->n_in; i++) {
            if (n->in[i] < 0)
                continue;
            const struct vg_value *v = &m->values[n->in[i]];
            if (v->constant)
                tin[i] = *v->constant;
            tin[i].dtype = v->dtype;
            tin[i].map_keys = v->map_keys;
            io.pin[i] = &tin[i];
        }
        for (int i = 0; i < n->n_out; i++)
            io.pout[i] = n->out[i] >= 0 ? &tout[i] : NULL;
        struct vg_kctx c;
        int rc = 0;
        vg__kctx_setup(&c, VG_PHASE_INIT, n, io.pin, io.pout, L->err);
        for (int i = 0; i < n->op->min_inputs && !rc; i++)
            if (i >= n->n_in || !io.pin[i])
                rc = vg__err(L->err, VG_EGRAPH, "%s: required input %d is missing", where, i);
        if (!rc && (n->n_out < 1 || !io.pout[0]))
            rc = vg__err(L->err, VG_EGRAPH, "%s: required output 0 is missing", where);
        if (rc) {
            node_io_release(&io);
            return rc;
        }
        if (n->op->init) {
            rc = n->op->init(&c);
            n->state = c.state;
            n->absorb = c.absorb;
            if (rc > 0)
                rc = -rc;
        } else {
            for (int i = 0; i < n->n_out; i++)
                if (io.pout[i])
                    tout[i].dtype = n->n_in > 0 && io.pin[0] ? io.pin[0]->dtype : VG_DT_UNDEFINED;
        }
        for (int i = 0; i < n->n_out && !rc; i++) {
            if (!io.pout[i])
                continue;
            if (!vg_dtype_size(tout[i].dtype))
                rc = vg__err(L->err, VG_ETYPE, "%s: output '%s' has no element type", where,
                             m->values[n->out[i]].name);
            m->values[n->out[i]].dtype = tout[i].dtype;
            m->values[n->out[i]].map_keys = tout[i].map_keys;
        }
        node_io_release(&io);
        if (rc)
            return rc;
    }
    return 0;
}

static int load_outputs(struct loader *L)
{
    const Onnx__GraphProto *g = L->mp->graph;
    struct vg_model *m = L->m;
    m->output_ids = vg__pool_alloc(&m->pool, sizeof(int) * (g->n_output + 1));
    m->output_info = vg__pool_alloc(&m->pool, sizeof(*m->output_info) * (g->n_output + 1));
    if (!m->output_ids || !m->output_info)
        return oom(L);
    if (!g->n_output)
        return vg__err(L->err, VG_EGRAPH, "the graph has no outputs");
    for (size_t i = 0; i < g->n_output; i++) {
        const Onnx__ValueInfoProto *vi = g->output[i];
        int id = vi->name ? map_get(&L->names, vi->name) : -1;
        if (id < 0)
            return vg__err(L->err, VG_EGRAPH, "graph output '%s' is not produced by any node",
                           vi->name ? vi->name : "");
        struct vg_io_info *io = &m->output_info[i];
        io->name = m->values[id].name;
        int rc = load_type(L, vi, io, "output");
        if (rc < 0)
            return rc;
        const struct vg_value *v = &m->values[id];
        if (rc == 0 && io->dtype != VG_DT_UNDEFINED && io->dtype != v->dtype && !v->map_keys)
            return vg__err(L->err, VG_ETYPE,
                           "graph output '%s' is declared %s but computed as %s", io->name,
                           vg_dtype_name(io->dtype), vg_dtype_name(v->dtype));
        if (rc == 1 && !v->map_keys)
            return vg__err(L->err, VG_EUNSUPPORTED,
                           "graph output '%s': only tensors and ZipMap's sequence of maps are "
                           "supported", io->name);
        io->dtype = v->dtype;
        io->is_map = v->map_keys != NULL;
        if (io->is_map)
            io->rank = -1;
        m->output_ids[i] = id;
    }
    m->n_outputs = (int)g->n_output;
    return 0;
}

/* Folds every node whose inputs are all constants; the results become model constants. */
static int fold_constants(struct loader *L, unsigned char *folded)
{
    struct vg_model *m = L->m;
    for (int k = 0; k < m->n_all_nodes; k++) {
        const struct vg_node *n = &m->all_nodes[k];
        int all_const = 1;
        for (int i = 0; i < n->n_in && all_const; i++)
            if (n->in[i] >= 0 && !m->values[n->in[i]].constant)
                all_const = 0;
        if (!all_const)
            continue;
        struct node_io io;
        if (node_io_alloc(&io, n))
            return oom(L);
        for (int i = 0; i < n->n_in; i++)
            io.pin[i] = n->in[i] >= 0 ? m->values[n->in[i]].constant : NULL;
        int rc = 0;
        for (int i = 0; i < n->n_out && !rc; i++) {
            if (n->out[i] < 0)
                continue;
            io.pout[i] = vg__pool_alloc(&m->pool, sizeof(struct vg_tensor));
            if (!io.pout[i]) {
                rc = oom(L);
                break;
            }
            io.pout[i]->dtype = m->values[n->out[i]].dtype;
            io.pout[i]->map_keys = m->values[n->out[i]].map_keys;
        }
        if (!rc)
            rc = vg__node_exec(n, io.pin, io.pout, &m->pool, &m->strings, L->err);
        for (int i = 0; i < n->n_out && !rc; i++)
            if (io.pout[i])
                m->values[n->out[i]].constant = io.pout[i];
        node_io_release(&io);
        if (rc)
            return rc;
        folded[k] = 1;
    }
    return 0;
}

/*
 * Load-time fusion through the hooks operators' init set (c->absorb, protocol in op.h): a node whose
 * single output feeds exactly one input slot of one other node, and is not a graph output, may
 * take that consumer over. The consumer is then marked in `folded` (so it is not executed) and the
 * node writes the consumer's output value. Repeats on the same node for chains. Also offers the
 * x * f(x) diamond (two readers, the first feeding only the second) described in op.h.
 */
static int fuse_nodes(struct loader *L, unsigned char *folded)
{
    struct vg_model *m = L->m;
    int *uses = calloc((size_t)m->n_values + 1, sizeof(int));
    int *consumer = calloc((size_t)m->n_values + 1, sizeof(int));
    int *first = calloc((size_t)m->n_values + 1, sizeof(int)); /* first reader */
    int rc = 0;
    if (!uses || !consumer || !first) {
        rc = oom(L);
        goto out;
    }
    for (int k = 0; k < m->n_all_nodes; k++) {
        const struct vg_node *n = &m->all_nodes[k];
        if (folded[k])
            continue;
        for (int i = 0; i < n->n_in; i++)
            if (n->in[i] >= 0) {
                if (!uses[n->in[i]]++)
                    first[n->in[i]] = k;
                consumer[n->in[i]] = k;
            }
    }
    for (int i = 0; i < m->n_outputs; i++)
        uses[m->output_ids[i]] += 2; /* a graph output is never fused away */
    for (int k = 0; k < m->n_all_nodes; k++) {
        struct vg_node *n = &m->all_nodes[k];
        if (folded[k] || !n->absorb)
            continue;
        for (;;) {
            int po = -1, nout = 0;
            for (int i = 0; i < n->n_out; i++)
                if (n->out[i] >= 0) {
                    po = i;
                    nout++;
                }
            if (nout != 1)
                break;
            int v = n->out[po], j = consumer[v], via = -1;
            if (uses[v] == 2) { /* a diamond P -> A -> B, P -> B (see op.h)? */
                int a = first[v];
                const struct vg_node *na = &m->all_nodes[a];
                int ao = -1, aout = 0;
                for (int i = 0; i < na->n_out; i++)
                    if (na->out[i] >= 0) {
                        ao = i;
                        aout++;
                    }
                if (a == j || folded[a] || aout != 1 || uses[na->out[ao]] != 1 ||
                    consumer[na->out[ao]] != j)
                    break;
                via = a;
            } else if (uses[v] != 1) {
                break;
            }
            const struct vg_node *q = &m->all_nodes[j];
            if (folded[j] || j <= k)
                break;
            int qo = -1, qout = 0;
            for (int i = 0; i < q->n_out; i++)
                if (q->out[i] >= 0) {
                    qo = i;
                    qout++;
                }
            if (qout != 1 || m->values[q->out[qo]].dtype != m->values[n->out[po]].dtype)
                break;
            struct node_io io, qio;
            if (node_io_alloc(&io, n)) {
                rc = oom(L);
                goto out;
            }
            if (node_io_alloc(&qio, q)) {
                node_io_release(&io);
                rc = oom(L);
                goto out;
            }
            struct vg_tensor *tin = io.t, *tout = io.t + n->n_in;
            for (int i = 0; i < n->n_in; i++) {
                if (n->in[i] < 0)
                    continue;
                const struct vg_value *vi = &m->values[n->in[i]];
                if (vi->constant)
                    tin[i] = *vi->constant;
                tin[i].dtype = vi->dtype;
                io.pin[i] = &tin[i];
            }
            for (int i = 0; i < n->n_out; i++)
                if (n->out[i] >= 0) {
                    tout[i].dtype = m->values[n->out[i]].dtype;
                    io.pout[i] = &tout[i];
                }
            for (int i = 0; i < q->n_in; i++) {
                if (q->in[i] < 0)
                    continue;
                const struct vg_value *vq = &m->values[q->in[i]];
                if (vq->constant)
                    qio.t[i] = *vq->constant;
                qio.t[i].dtype = vq->dtype;
                qio.pin[i] = &qio.t[i];
            }
            struct node_io vio = {0};
            if (via >= 0) {
                const struct vg_node *na = &m->all_nodes[via];
                if (node_io_alloc(&vio, na)) {
                    node_io_release(&io);
                    node_io_release(&qio);
                    rc = oom(L);
                    goto out;
                }
                for (int i = 0; i < na->n_in; i++) {
                    if (na->in[i] < 0)
                        continue;
                    const struct vg_value *vv = &m->values[na->in[i]];
                    if (vv->constant)
                        vio.t[i] = *vv->constant;
                    vio.t[i].dtype = vv->dtype;
                    vio.pin[i] = &vio.t[i];
                }
            }
            struct vg_kctx c;
            vg__kctx_setup(&c, VG_PHASE_INIT, n, io.pin, io.pout, L->err);
            c.absorb_via = via >= 0 ? &m->all_nodes[via] : NULL;
            c.absorb_via_in = via >= 0 ? (const struct vg_tensor *const *)vio.pin : NULL;
            rc = n->absorb(&c, q, (const struct vg_tensor *const *)qio.pin);
            n->state = c.state;
            node_io_release(&io);
            node_io_release(&qio);
            if (via >= 0)
                node_io_release(&vio);
            if (rc < 0)
                goto out;
            if (rc == 0)
                break;
            rc = 0;
            uses[v] = 0;
            n->out[po] = q->out[qo];
            m->values[q->out[qo]].producer = k;
            folded[j] = 1;
            if (via >= 0)
                folded[via] = 1;
        }
    }
out:
    free(uses);
    free(consumer);
    free(first);
    return rc;
}

/* Keeps the nodes that some graph output needs and that were not folded (nor fused away). */
static int select_exec_nodes(struct loader *L, const unsigned char *folded)
{
    struct vg_model *m = L->m;
    unsigned char *needed = calloc((size_t)m->n_values + 1, 1);
    unsigned char *run = calloc((size_t)m->n_all_nodes + 1, 1);
    int rc = 0;
    if (!needed || !run) {
        rc = oom(L);
        goto out;
    }
    for (int i = 0; i < m->n_outputs; i++)
        needed[m->output_ids[i]] = 1;
    for (int k = m->n_all_nodes - 1; k >= 0; k--) {
        const struct vg_node *n = &m->all_nodes[k];
        if (folded[k])
            continue;
        for (int i = 0; i < n->n_out; i++)
            if (n->out[i] >= 0 && needed[n->out[i]])
                run[k] = 1;
        if (!run[k])
            continue;
        for (int i = 0; i < n->n_in; i++)
            if (n->in[i] >= 0)
                needed[n->in[i]] = 1;
    }
    m->nodes = vg__pool_alloc(&m->pool, sizeof(*m->nodes) * ((size_t)m->n_all_nodes + 1));
    if (!m->nodes) {
        rc = oom(L);
        goto out;
    }
    for (int k = 0; k < m->n_all_nodes; k++)
        if (run[k])
            m->nodes[m->n_nodes++] = &m->all_nodes[k];
out:
    free(needed);
    free(run);
    return rc;
}

/*
 * Shape probe: plans the graph for concrete shapes derived from the declared ones (a leading
 * symbolic dim bound to 1, then to 2). A shape error under every binding can never run, so it fails the load;
 * an error under one binding only depends on the batch size and is left to run time.
 */
static int probe_shapes(struct loader *L)
{
    struct vg_model *m = L->m;
    int symbolic = 0;
    for (int i = 0; i < m->n_inputs; i++) {
        if (m->input_info[i].rank < 0)
            return 0; /* undeclared shape: nothing to probe */
        for (int d = 0; d < m->input_info[i].rank; d++) {
            if (m->input_info[i].dims[d] >= 0)
                continue;
            /* Only a leading (batch) dim can be bound to a guess; any value of a symbolic
               feature count or image size could be the one the model needs. */
            if (d > 0)
                return 0;
            symbolic = 1;
        }
    }
    struct vg_tensor *tin = calloc((size_t)m->n_inputs + 1, sizeof(*tin));
    const struct vg_tensor **pin = calloc((size_t)m->n_inputs + 1, sizeof(*pin));
    int rc = 0;
    if (!tin || !pin) {
        rc = oom(L);
        goto out;
    }
    for (int b = 1; b <= (symbolic ? 2 : 1); b++) {
        for (int i = 0; i < m->n_inputs; i++) {
            const struct vg_io_info *io = &m->input_info[i];
            tin[i].dtype = io->dtype;
            tin[i].rank = io->rank;
            for (int d = 0; d < io->rank; d++)
                tin[i].dims[d] = io->dims[d] < 0 ? b : io->dims[d];
            pin[i] = &tin[i];
        }
        struct vg_plan *p = NULL;
        rc = vg__plan_build(m, pin, &p, L->err);
        vg__plan_free(p);
        if (rc == 0 || rc == -VG_ENOMEM)
            break;
    }
    if (rc == -VG_ENOMEM) /* a probe's plan may be too big to lay out: not the model's fault */
        rc = 0;
out:
    free(tin);
    free(pin);
    return rc;
}

int vg_engine_load_bytes(const void *bytes, size_t len, const char *base_dir,
                         struct vg_model **out, struct vg_error *err)
{
    struct vg_error local;
    if (!err)
        err = &local;
    err->code = 0;
    err->msg[0] = 0;
    *out = NULL;
    if (!bytes || !len)
        return vg__err(err, VG_EPARSE, "not a valid ONNX model: empty input");
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, bytes);
    if (!mp)
        return vg__err(err, VG_EPARSE,
                       "not a valid ONNX model: protobuf parsing failed (truncated or not an "
                       "ONNX file)");
    struct loader L = {.mp = mp, .base_dir = base_dir, .err = err};
    unsigned char *folded = NULL;
    int rc;
    struct vg_model *m = calloc(1, sizeof(*m));
    if (!m) {
        rc = vg__err(err, VG_ENOMEM, "out of memory");
        goto out;
    }
    L.m = m;
    if (!mp->graph) {
        rc = vg__err(err, VG_EPARSE, "not a valid ONNX model: no graph");
        goto out;
    }
    m->producer = pstr(m, mp->producer_name);
    if (!m->producer) {
        rc = oom(&L);
        goto out;
    }
    if ((rc = load_opsets(&L)) || (rc = load_values(&L)) || (rc = load_nodes(&L)) ||
        (rc = init_nodes(&L)) || (rc = load_outputs(&L)))
        goto out;
    folded = calloc((size_t)m->n_all_nodes + 1, 1);
    if (!folded) {
        rc = oom(&L);
        goto out;
    }
    if ((rc = fold_constants(&L, folded)) || (rc = fuse_nodes(&L, folded)) ||
        (rc = select_exec_nodes(&L, folded)) ||
        (rc = probe_shapes(&L)))
        goto out;
out:
    free(folded);
    map_release(&L.names);
    onnx__model_proto__free_unpacked(mp, NULL);
    if (rc) {
        vg_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int vg_engine_load_file(const char *path, struct vg_model **out, struct vg_error *err)
{
    unsigned char *buf;
    size_t len;
    *out = NULL;
    int rc = vg__read_file(path, VG_MAX_MODEL_BYTES, &buf, &len, err);
    if (rc)
        return rc;
    char *dir = strdup(path);
    if (!dir) {
        free(buf);
        return vg__err(err, VG_ENOMEM, "out of memory");
    }
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = 0;
    else
        strcpy(dir, ".");
    rc = vg_engine_load_bytes(buf, len, dir, out, err);
    if (rc)
        vg__err_prefix(err, path);
    free(dir);
    free(buf);
    return rc;
}

void vg_model_free(struct vg_model *m)
{
    if (!m)
        return;
    for (int k = 0; k < m->n_all_nodes; k++)
        if (m->all_nodes[k].op && m->all_nodes[k].op->release && m->all_nodes[k].state)
            m->all_nodes[k].op->release(m->all_nodes[k].state);
    vg__pool_release(&m->strings.pool);
    vg__pool_release(&m->pool);
    free(m);
}

/* ---- accessors ------------------------------------------------------------------------------ */
int vg_model_n_inputs(const struct vg_model *m) { return m->n_inputs; }
int vg_model_n_outputs(const struct vg_model *m) { return m->n_outputs; }

const struct vg_io_info *vg_model_input(const struct vg_model *m, int i)
{
    return i >= 0 && i < m->n_inputs ? &m->input_info[i] : NULL;
}

const struct vg_io_info *vg_model_output(const struct vg_model *m, int i)
{
    return i >= 0 && i < m->n_outputs ? &m->output_info[i] : NULL;
}

int vg_model_input_index(const struct vg_model *m, const char *name)
{
    for (int i = 0; i < m->n_inputs; i++)
        if (!strcmp(m->input_info[i].name, name))
            return i;
    return -1;
}

int vg_model_output_index(const struct vg_model *m, const char *name)
{
    for (int i = 0; i < m->n_outputs; i++)
        if (!strcmp(m->output_info[i].name, name))
            return i;
    return -1;
}

int vg_model_n_opsets(const struct vg_model *m) { return m->n_opsets; }

void vg_model_opset(const struct vg_model *m, int i, const char **domain, int64_t *version)
{
    *domain = m->opset_domains[i];
    *version = m->opset_versions[i];
}

int vg_model_n_nodes(const struct vg_model *m) { return m->n_all_nodes; }

void vg_model_node(const struct vg_model *m, int i, const char **op_type, const char **domain)
{
    *op_type = m->all_nodes[i].op_type;
    *domain = m->all_nodes[i].domain;
}

int vg_model_n_exec_nodes(const struct vg_model *m) { return m->n_nodes; }
const char *vg_model_producer(const struct vg_model *m) { return m->producer; }
