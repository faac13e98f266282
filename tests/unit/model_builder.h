/*
 * A tiny ONNX model builder for unit tests: fills protobuf-c structs and packs them to bytes, so
 * tests can make exactly the (good or broken) graphs they need without Python.
 *
 * Everything lives in one struct mb; mb_pack() returns malloc'd bytes; mb_release() frees all.
 */
#ifndef VIGIL_TEST_MODEL_BUILDER_H
#define VIGIL_TEST_MODEL_BUILDER_H

#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"

#define MB_MAX 64

struct mb {
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__OperatorSetIdProto opsets[4], *opset_ptrs[4];
    Onnx__NodeProto nodes[MB_MAX], *node_ptrs[MB_MAX];
    Onnx__ValueInfoProto ios[MB_MAX], *in_ptrs[MB_MAX], *out_ptrs[MB_MAX];
    Onnx__TypeProto types[MB_MAX];
    Onnx__TypeProto__Tensor ttypes[MB_MAX];
    Onnx__TensorShapeProto shapes[MB_MAX];
    Onnx__TensorShapeProto__Dimension dims[MB_MAX][8], *dim_ptrs[MB_MAX][8];
    Onnx__TensorProto inits[MB_MAX], *init_ptrs[MB_MAX];
    Onnx__AttributeProto attrs[MB_MAX], *attr_ptrs[MB_MAX];
    int n_ios, n_attrs;
    void *allocs[4 * MB_MAX];
    int n_allocs;
};

static inline void *mb_keep(struct mb *b, void *p)
{
    b->allocs[b->n_allocs++] = p;
    return p;
}

static inline void mb_init(struct mb *b, int64_t onnx_opset)
{
    memset(b, 0, sizeof(*b));
    onnx__model_proto__init(&b->model);
    onnx__graph_proto__init(&b->graph);
    b->model.has_ir_version = 1;
    b->model.ir_version = 8;
    b->model.graph = &b->graph;
    b->model.producer_name = "vigil-tests";
    b->graph.name = "g";
    b->graph.node = b->node_ptrs;
    b->graph.input = b->in_ptrs;
    b->graph.output = b->out_ptrs;
    b->graph.initializer = b->init_ptrs;
    b->model.opset_import = b->opset_ptrs;
    onnx__operator_set_id_proto__init(&b->opsets[0]);
    b->opsets[0].domain = "";
    b->opsets[0].has_version = 1;
    b->opsets[0].version = onnx_opset;
    b->opset_ptrs[0] = &b->opsets[0];
    b->model.n_opset_import = 1;
}

static inline void mb_opset(struct mb *b, const char *domain, int64_t version)
{
    size_t i = b->model.n_opset_import++;
    onnx__operator_set_id_proto__init(&b->opsets[i]);
    b->opsets[i].domain = (char *)domain;
    b->opsets[i].has_version = 1;
    b->opsets[i].version = version;
    b->opset_ptrs[i] = &b->opsets[i];
}

/* dims: rank entries; -1 makes a symbolic dim named "N". */
static inline Onnx__ValueInfoProto *mb_io(struct mb *b, const char *name, int elem_type, int rank,
                                          const int64_t *dims)
{
    int k = b->n_ios++;
    Onnx__ValueInfoProto *vi = &b->ios[k];
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(&b->types[k]);
    onnx__type_proto__tensor__init(&b->ttypes[k]);
    vi->name = (char *)name;
    vi->type = &b->types[k];
    b->types[k].value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    b->types[k].tensor_type = &b->ttypes[k];
    b->ttypes[k].has_elem_type = 1;
    b->ttypes[k].elem_type = elem_type;
    if (rank >= 0) {
        onnx__tensor_shape_proto__init(&b->shapes[k]);
        b->ttypes[k].shape = &b->shapes[k];
        b->shapes[k].n_dim = (size_t)rank;
        b->shapes[k].dim = b->dim_ptrs[k];
        for (int d = 0; d < rank; d++) {
            Onnx__TensorShapeProto__Dimension *dim = &b->dims[k][d];
            onnx__tensor_shape_proto__dimension__init(dim);
            if (dims[d] < 0) {
                dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                dim->dim_param = "N";
            } else {
                dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                dim->dim_value = dims[d];
            }
            b->dim_ptrs[k][d] = dim;
        }
    }
    return vi;
}

static inline void mb_input(struct mb *b, const char *name, int elem_type, int rank,
                            const int64_t *dims)
{
    b->in_ptrs[b->graph.n_input++] = mb_io(b, name, elem_type, rank, dims);
}

static inline void mb_output(struct mb *b, const char *name, int elem_type, int rank,
                             const int64_t *dims)
{
    b->out_ptrs[b->graph.n_output++] = mb_io(b, name, elem_type, rank, dims);
}

/* An initializer of float (elem_type 1) or int64 (7) values; data copied. */
static inline void mb_init_values(struct mb *b, const char *name, int elem_type, int rank,
                                  const int64_t *dims, const void *data, size_t n)
{
    Onnx__TensorProto *t = &b->inits[b->graph.n_initializer];
    onnx__tensor_proto__init(t);
    t->name = (char *)name;
    t->has_data_type = 1;
    t->data_type = elem_type;
    t->n_dims = (size_t)rank;
    t->dims = mb_keep(b, calloc((size_t)rank + 1, sizeof(int64_t)));
    if (rank)
        memcpy(t->dims, dims, sizeof(int64_t) * (size_t)rank);
    size_t es = elem_type == 7 ? sizeof(int64_t) : sizeof(float);
    void *copy = mb_keep(b, calloc(n + 1, es));
    if (n)
        memcpy(copy, data, es * n);
    if (elem_type == 7) {
        t->n_int64_data = n;
        t->int64_data = copy;
    } else {
        t->n_float_data = n;
        t->float_data = copy;
    }
    b->init_ptrs[b->graph.n_initializer++] = t;
}

static inline void mb_init_float(struct mb *b, const char *name, int rank, const int64_t *dims,
                                 const float *data, size_t n)
{
    mb_init_values(b, name, 1, rank, dims, data, n);
}

static inline void mb_init_int64(struct mb *b, const char *name, int rank, const int64_t *dims,
                                 const int64_t *data, size_t n)
{
    mb_init_values(b, name, 7, rank, dims, data, n);
}

/* A node with up to 4 inputs/outputs given as NULL-terminated lists. */
static inline Onnx__NodeProto *mb_node(struct mb *b, const char *op, const char *const *in,
                                       const char *const *out)
{
    Onnx__NodeProto *n = &b->nodes[b->graph.n_node];
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = (char *)op;
    n->input = (char **)in;
    while (in && in[n->n_input])
        n->n_input++;
    n->output = (char **)out;
    while (out && out[n->n_output])
        n->n_output++;
    n->attribute = &b->attr_ptrs[b->n_attrs];
    b->node_ptrs[b->graph.n_node++] = n;
    return n;
}

/* Adds an int attribute to the node created last (attributes must follow their node). */
static inline void mb_attr_int(struct mb *b, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = &b->attrs[b->n_attrs];
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1;
    a->i = v;
    b->attr_ptrs[b->n_attrs++] = a;
    n->n_attribute++;
}

static inline unsigned char *mb_pack(struct mb *b, size_t *len)
{
    *len = onnx__model_proto__get_packed_size(&b->model);
    unsigned char *buf = malloc(*len + 1);
    onnx__model_proto__pack(&b->model, buf);
    return buf;
}

static inline void mb_release(struct mb *b)
{
    for (int i = 0; i < b->n_allocs; i++)
        free(b->allocs[i]);
    b->n_allocs = 0;
}

#endif
