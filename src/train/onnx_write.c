/*
 * Forest -> ONNX (vg_forest_to_onnx): one ai.onnx.ml TreeEnsembleClassifier or
 * TreeEnsembleRegressor node, built as protobuf-c structs and packed.
 *
 * What is written
 * ---------------
 *  - ModelProto: ir_version 8, opset imports ai.onnx 15 and ai.onnx.ml 3, producer_name "vigil",
 *    graph named after the model, a fixed doc_string. Nothing depends on time or addresses, so a
 *    forest always gives the same bytes.
 *  - Input "input": float [N, n_features], N symbolic (dim_param "N").
 *  - nodes_*: every tree in order, its nodes in preorder with node id = index in the tree; a branch
 *    is BRANCH_LEQ on its float32 threshold with true = left child, false = right child; a leaf is
 *    LEAF with feature 0, value 0 and children 0 (the fields are required but unused).
 *  - Classifier: outputs "label" ([N], int64 or string) and "probabilities" (float [N, C]),
 *    post_transform NONE. Leaf weights are the leaf's class fractions / n_trees (on the grid
 *    below), so the summed scores are the forest's averaged probabilities. Labels are
 *    classlabels_int64s when every class name is an integer written canonically (what
 *    printf("%lld") prints, so the label printed back is the class name), else
 *    classlabels_strings.
 *      * Three or more classes: only nonzero fractions are written (deep trees have mostly pure
 *        leaves, so this divides the weight lists by about C). The label is the first class with
 *        the highest sum among classes that received a weight; every class with a zero sum has
 *        none, and the maximum is always positive, so this is the plain first-argmax.
 *      * Two classes: the single-column convention (what skl2onnx writes): class id 0 carries
 *        the class-1 fraction of every leaf, and runtimes output (1 - s, s) with label
 *        classlabels[1] when s > 0.5 (a tie goes to class 0, like a first-argmax). Writing both
 *        class ids looks more direct, but ONNX Runtime then labels by "score of class 1 > 0"
 *        (and outputs the raw index 1 / 0 instead of the label): a leaf mix of 0.3 would be
 *        labelled class 1. Checked with onnxruntime-node 1.x; our engine reads both forms the
 *        same way, ORT only this one.
 *      * One class: each leaf gives weight 1 / n_trees to class 0.
 *  - Regressor: output "variable" float [N, 1], n_targets 1, aggregate_function SUM, leaf weight
 *    = leaf mean / n_trees (on the grid below), post_transform NONE.
 *
 * Weights on a grid: summed exactly in float32 as in double
 * ----------------------------------------------------------
 * ONNX Runtime sums leaf weights in float32 (100 trees of 0.01 give 0.99999934), our engine in
 * double, so the same file would give outputs a few ulps apart. Every weight is therefore put on
 * a grid 2^e chosen so that every partial sum of weights is a multiple of 2^e below 2^(e + 24),
 * i.e. exactly representable in float32: then any runtime, summing in float or double and in any
 * order, gets the exact sum and the same output bits (and the same label, even on ties).
 *  - Classifier: fractions / n_trees are rounded down to multiples of 2^-24; a class's sum over
 *    the trees stays <= 1 (floats in [0, 1] hold every multiple of 2^-24). A row every tree
 *    puts in class c scores n_trees * floor(2^24 / n_trees) / 2^24 (0.99999905 for 100 trees):
 *    each weight loses less than 2^-24, the sum less than n_trees * 2^-24.
 *  - Regressor: B = sum over trees of the largest |leaf mean| / n_trees bounds every partial sum;
 *    e is the smallest with B < 2^(e + 23), and weights round to the nearest multiple of 2^e
 *    (the extra bit absorbs the rounding of up to 2^24 trees), an error of at most 2^(e-1), about
 *    B * 2^-24, per weight.
 *  A leaf fraction that is zero is never written for three or more classes; one that rounds to
 *  zero still is (so every class a leaf votes for keeps a score).
 *
 *  The packed model is capped at 2 GiB, the largest protobuf message readers accept.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "onnx.pb-c.h"
#include "vigil/train.h"

#define ONNX_MAX_BYTES ((size_t)INT32_MAX)

/* Attributes of the one node: 8 for the nodes, 4 for the weights, labels or 2 regressor ones. */
#define ONNX_MAX_ATTRS 16

/* Everything the ModelProto points to, freed at once. */
struct onnx_out {
    int64_t *treeids, *nodeids, *featureids, *trueids, *falseids;
    float *thresholds;
    ProtobufCBinaryData *modes;
    int64_t *w_treeids, *w_nodeids, *w_ids;
    float *w_weights;
    int64_t *int_labels;
    ProtobufCBinaryData *str_labels;
};

static void onnx_out_release(struct onnx_out *o)
{
    free(o->treeids);
    free(o->nodeids);
    free(o->featureids);
    free(o->trueids);
    free(o->falseids);
    free(o->thresholds);
    free(o->modes);
    free(o->w_treeids);
    free(o->w_nodeids);
    free(o->w_ids);
    free(o->w_weights);
    free(o->int_labels);
    free(o->str_labels);
}

static void attr_ints(Onnx__AttributeProto *a, const char *name, int64_t *v, size_t n)
{
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    a->n_ints = n;
    a->ints = v;
}

static void attr_floats(Onnx__AttributeProto *a, const char *name, float *v, size_t n)
{
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    a->n_floats = n;
    a->floats = v;
}

static void attr_strings(Onnx__AttributeProto *a, const char *name, ProtobufCBinaryData *v,
                         size_t n)
{
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
    a->n_strings = n;
    a->strings = v;
}

static void attr_string(Onnx__AttributeProto *a, const char *name, const char *s)
{
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    a->has_s = 1;
    a->s.data = (uint8_t *)s;
    a->s.len = strlen(s);
}

static void attr_int(Onnx__AttributeProto *a, const char *name, int64_t v)
{
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1;
    a->i = v;
}

static ProtobufCBinaryData bytes_of(const char *s)
{
    ProtobufCBinaryData b = {strlen(s), (uint8_t *)s};
    return b;
}

/* A graph input/output: tensor of elem_type with dims (-1 = the symbolic "N"). */
struct io_storage {
    Onnx__ValueInfoProto info;
    Onnx__TypeProto type;
    Onnx__TypeProto__Tensor tensor;
    Onnx__TensorShapeProto shape;
    Onnx__TensorShapeProto__Dimension dims[2], *dim_ptrs[2];
};

static Onnx__ValueInfoProto *make_io(struct io_storage *s, const char *name, int elem_type,
                                     int rank, const int64_t *dims)
{
    onnx__value_info_proto__init(&s->info);
    onnx__type_proto__init(&s->type);
    onnx__type_proto__tensor__init(&s->tensor);
    onnx__tensor_shape_proto__init(&s->shape);
    for (int i = 0; i < rank; i++) {
        onnx__tensor_shape_proto__dimension__init(&s->dims[i]);
        if (dims[i] < 0) {
            s->dims[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            s->dims[i].dim_param = "N";
        } else {
            s->dims[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            s->dims[i].dim_value = dims[i];
        }
        s->dim_ptrs[i] = &s->dims[i];
    }
    s->shape.n_dim = (size_t)rank;
    s->shape.dim = s->dim_ptrs;
    s->tensor.has_elem_type = 1;
    s->tensor.elem_type = elem_type;
    s->tensor.shape = &s->shape;
    s->type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    s->type.tensor_type = &s->tensor;
    s->info.name = (char *)name;
    s->info.type = &s->type;
    return &s->info;
}

/*
 * The exponent e of the weight grid (see the design note): classifiers 2^-24; regressors the
 * smallest e with B < 2^(e + 23), B = the sum over trees of the tree's largest |leaf weight|.
 */
static int weight_grid(const struct vg_forest *f, double scale)
{
    if (f->task == VG_TASK_CLASSIFICATION)
        return -24;
    double bound = 0.0;
    for (int t = 0; t < f->n_trees; t++) {
        const struct vg_tree *tr = &f->trees[t];
        double largest = 0.0;
        for (int i = 0; i < tr->n_nodes; i++)
            if (tr->nodes[i].feature < 0 && fabs(tr->values[tr->nodes[i].value]) > largest)
                largest = fabs(tr->values[tr->nodes[i].value]);
        bound += largest * scale;
    }
    int e;
    frexp(bound, &e); /* bound < 2^e */
    return e - 23;
}

/* w rounded to a multiple of 2^e: down for classifiers (sums stay <= 1), else to nearest. */
static float on_grid(double w, int e, int round_down)
{
    double k = ldexp(w, -e);
    k = round_down ? floor(k) : round(k);
    return (float)ldexp(k, e);
}

/* 1 when every class name is an int64 in canonical decimal form; fills labels. */
static int integer_labels(const struct vg_dataset *ds, int64_t *labels)
{
    for (int c = 0; c < ds->n_classes; c++) {
        const char *s = ds->class_names[c];
        char *end;
        char back[32];
        if (!s || !*s)
            return 0;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || *end)
            return 0;
        snprintf(back, sizeof back, "%lld", v);
        if (strcmp(back, s))
            return 0;
        labels[c] = v;
    }
    return 1;
}

int vg_forest_to_onnx(const struct vg_forest *f, const struct vg_dataset *ds, const char *name,
                      void **bytes, size_t *len, struct vg_error *err)
{
    struct onnx_out o;
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__NodeProto node, *node_ptr = &node;
    Onnx__OperatorSetIdProto opsets[2], *opset_ptrs[2] = {&opsets[0], &opsets[1]};
    Onnx__AttributeProto attrs[ONNX_MAX_ATTRS], *attr_ptrs[ONNX_MAX_ATTRS];
    struct io_storage io[3];
    Onnx__ValueInfoProto *inputs[1], *outputs[2];
    char *node_inputs[1] = {"input"};
    char *node_outputs[2];
    void *buf = NULL;
    int rc = 0;
    memset(&o, 0, sizeof o);
    if (bytes)
        *bytes = NULL;
    if (len)
        *len = 0;
    if (!f || !ds || !bytes || !len || !f->trees || f->n_trees < 1) {
        rc = vg__err(err, VG_EINVAL, "onnx: missing forest, dataset or output");
        goto out;
    }
    int is_classifier = f->task == VG_TASK_CLASSIFICATION;
    if (f->n_features != ds->n_features ||
        (is_classifier &&
         (f->n_classes != ds->n_classes || f->n_classes < 1 || !ds->class_names))) {
        rc = vg__err(err, VG_EINVAL, "onnx: the forest does not match the dataset");
        goto out;
    }
    int n_classes = f->n_classes;

    /* Sizes first: every count checked against size_t overflow by the 2 GiB cap later. */
    size_t n_nodes = 0, n_weights = 0;
    for (int t = 0; t < f->n_trees; t++) {
        const struct vg_tree *tr = &f->trees[t];
        n_nodes += (size_t)tr->n_nodes;
        for (int i = 0; i < tr->n_nodes; i++) {
            const struct vg_tree_node *nd = &tr->nodes[i];
            if (nd->feature >= 0)
                continue;
            int k = is_classifier ? n_classes : 1;
            if (nd->value < 0 || nd->value > tr->n_values - k) {
                rc = vg__err(err, VG_EINVAL, "onnx: tree %d node %d has no leaf value", t, i);
                goto out;
            }
            if (is_classifier && n_classes >= 3) {
                for (int c = 0; c < n_classes; c++)
                    n_weights += tr->values[nd->value + c] != 0.0;
            } else {
                n_weights++;
            }
        }
    }
    /* Each node costs well over 8 bytes once packed: a cheap early refusal of absurd forests. */
    if (n_nodes > ONNX_MAX_BYTES / 8 || n_weights > ONNX_MAX_BYTES / 8) {
        rc = vg__err(err, VG_ENOMEM, "onnx: forest of %zu nodes is too large for one ONNX file",
                     n_nodes);
        goto out;
    }
    o.treeids = malloc(n_nodes * sizeof *o.treeids);
    o.nodeids = malloc(n_nodes * sizeof *o.nodeids);
    o.featureids = malloc(n_nodes * sizeof *o.featureids);
    o.trueids = malloc(n_nodes * sizeof *o.trueids);
    o.falseids = malloc(n_nodes * sizeof *o.falseids);
    o.thresholds = malloc(n_nodes * sizeof *o.thresholds);
    o.modes = malloc(n_nodes * sizeof *o.modes);
    o.w_treeids = malloc((n_weights ? n_weights : 1) * sizeof *o.w_treeids);
    o.w_nodeids = malloc((n_weights ? n_weights : 1) * sizeof *o.w_nodeids);
    o.w_ids = malloc((n_weights ? n_weights : 1) * sizeof *o.w_ids);
    o.w_weights = malloc((n_weights ? n_weights : 1) * sizeof *o.w_weights);
    if (!o.treeids || !o.nodeids || !o.featureids || !o.trueids || !o.falseids || !o.thresholds ||
        !o.modes || !o.w_treeids || !o.w_nodeids || !o.w_ids || !o.w_weights) {
        rc = vg__err(err, VG_ENOMEM, "onnx: out of memory for %zu nodes", n_nodes);
        goto out;
    }

    size_t k = 0, w = 0;
    double scale = 1.0 / (double)f->n_trees;
    int grid_exp = weight_grid(f, scale);
    for (int t = 0; t < f->n_trees; t++) {
        const struct vg_tree *tr = &f->trees[t];
        for (int i = 0; i < tr->n_nodes; i++, k++) {
            const struct vg_tree_node *nd = &tr->nodes[i];
            o.treeids[k] = t;
            o.nodeids[k] = i;
            if (nd->feature >= 0) {
                if (nd->feature >= f->n_features || nd->left <= i || nd->left >= tr->n_nodes ||
                    nd->right <= i || nd->right >= tr->n_nodes) {
                    rc = vg__err(err, VG_EINVAL, "onnx: tree %d node %d is malformed", t, i);
                    goto out;
                }
                o.featureids[k] = nd->feature;
                o.thresholds[k] = nd->threshold;
                o.trueids[k] = nd->left;
                o.falseids[k] = nd->right;
                o.modes[k] = bytes_of("BRANCH_LEQ");
                continue;
            }
            o.featureids[k] = 0;
            o.thresholds[k] = 0.0f;
            o.trueids[k] = 0;
            o.falseids[k] = 0;
            o.modes[k] = bytes_of("LEAF");
            const double *v = tr->values + nd->value;
            if (!is_classifier || n_classes <= 2) {
                double x = !is_classifier ? v[0] : n_classes == 2 ? v[1] : 1.0;
                o.w_treeids[w] = t;
                o.w_nodeids[w] = i;
                o.w_ids[w] = 0;
                o.w_weights[w] = on_grid(x * scale, grid_exp, is_classifier);
                w++;
                continue;
            }
            for (int c = 0; c < n_classes; c++) {
                if (v[c] == 0.0)
                    continue;
                o.w_treeids[w] = t;
                o.w_nodeids[w] = i;
                o.w_ids[w] = c;
                o.w_weights[w] = on_grid(v[c] * scale, grid_exp, 1);
                w++;
            }
        }
    }

    int na = 0;
    attr_ints(&attrs[na++], "nodes_treeids", o.treeids, n_nodes);
    attr_ints(&attrs[na++], "nodes_nodeids", o.nodeids, n_nodes);
    attr_ints(&attrs[na++], "nodes_featureids", o.featureids, n_nodes);
    attr_strings(&attrs[na++], "nodes_modes", o.modes, n_nodes);
    attr_floats(&attrs[na++], "nodes_values", o.thresholds, n_nodes);
    attr_ints(&attrs[na++], "nodes_truenodeids", o.trueids, n_nodes);
    attr_ints(&attrs[na++], "nodes_falsenodeids", o.falseids, n_nodes);
    attr_string(&attrs[na++], "post_transform", "NONE");
    int label_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    if (is_classifier) {
        attr_ints(&attrs[na++], "class_treeids", o.w_treeids, w);
        attr_ints(&attrs[na++], "class_nodeids", o.w_nodeids, w);
        attr_ints(&attrs[na++], "class_ids", o.w_ids, w);
        attr_floats(&attrs[na++], "class_weights", o.w_weights, w);
        o.int_labels = malloc((size_t)n_classes * sizeof *o.int_labels);
        o.str_labels = malloc((size_t)n_classes * sizeof *o.str_labels);
        if (!o.int_labels || !o.str_labels) {
            rc = vg__err(err, VG_ENOMEM, "onnx: out of memory for %d labels", n_classes);
            goto out;
        }
        if (integer_labels(ds, o.int_labels)) {
            attr_ints(&attrs[na++], "classlabels_int64s", o.int_labels, (size_t)n_classes);
        } else {
            for (int c = 0; c < n_classes; c++) {
                if (!ds->class_names[c]) {
                    rc = vg__err(err, VG_EINVAL, "onnx: class %d has no name", c);
                    goto out;
                }
                o.str_labels[c] = bytes_of(ds->class_names[c]);
            }
            attr_strings(&attrs[na++], "classlabels_strings", o.str_labels, (size_t)n_classes);
            label_type = ONNX__TENSOR_PROTO__DATA_TYPE__STRING;
        }
    } else {
        attr_ints(&attrs[na++], "target_treeids", o.w_treeids, w);
        attr_ints(&attrs[na++], "target_nodeids", o.w_nodeids, w);
        attr_ints(&attrs[na++], "target_ids", o.w_ids, w);
        attr_floats(&attrs[na++], "target_weights", o.w_weights, w);
        attr_int(&attrs[na++], "n_targets", 1);
        attr_string(&attrs[na++], "aggregate_function", "SUM");
    }
    for (int i = 0; i < na; i++)
        attr_ptrs[i] = &attrs[i];

    onnx__node_proto__init(&node);
    node.name = is_classifier ? "forest_classifier" : "forest_regressor";
    node.op_type = is_classifier ? "TreeEnsembleClassifier" : "TreeEnsembleRegressor";
    node.domain = "ai.onnx.ml";
    node.n_input = 1;
    node.input = node_inputs;
    node.n_attribute = (size_t)na;
    node.attribute = attr_ptrs;

    int64_t in_dims[2] = {-1, f->n_features};
    inputs[0] = make_io(&io[0], "input", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, in_dims);
    size_t n_outputs;
    if (is_classifier) {
        int64_t label_dims[1] = {-1}, prob_dims[2] = {-1, n_classes};
        node_outputs[0] = "label";
        node_outputs[1] = "probabilities";
        outputs[0] = make_io(&io[1], "label", label_type, 1, label_dims);
        outputs[1] =
            make_io(&io[2], "probabilities", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, prob_dims);
        n_outputs = 2;
    } else {
        int64_t var_dims[2] = {-1, 1};
        node_outputs[0] = "variable";
        outputs[0] = make_io(&io[1], "variable", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, var_dims);
        n_outputs = 1;
    }
    node.n_output = n_outputs;
    node.output = node_outputs;

    onnx__graph_proto__init(&graph);
    graph.name = (char *)(name && *name ? name : "model");
    graph.doc_string = is_classifier ? "random forest classifier trained by vigil"
                                     : "random forest regressor trained by vigil";
    graph.n_node = 1;
    graph.node = &node_ptr;
    graph.n_input = 1;
    graph.input = inputs;
    graph.n_output = n_outputs;
    graph.output = outputs;

    onnx__operator_set_id_proto__init(&opsets[0]);
    opsets[0].domain = "";
    opsets[0].has_version = 1;
    opsets[0].version = 15;
    onnx__operator_set_id_proto__init(&opsets[1]);
    opsets[1].domain = "ai.onnx.ml";
    opsets[1].has_version = 1;
    opsets[1].version = 3;

    onnx__model_proto__init(&model);
    model.has_ir_version = 1;
    model.ir_version = 8;
    model.producer_name = "vigil";
    model.n_opset_import = 2;
    model.opset_import = opset_ptrs;
    model.graph = &graph;

    size_t size = onnx__model_proto__get_packed_size(&model);
    if (size > ONNX_MAX_BYTES) {
        rc = vg__err(err, VG_ENOMEM, "onnx: model of %zu bytes exceeds the 2 GiB protobuf limit",
                     size);
        goto out;
    }
    buf = malloc(size ? size : 1);
    if (!buf) {
        rc = vg__err(err, VG_ENOMEM, "onnx: out of memory for %zu bytes", size);
        goto out;
    }
    if (onnx__model_proto__pack(&model, buf) != size) {
        rc = vg__err(err, VG_EINVAL, "onnx: protobuf packing gave an unexpected size");
        goto out;
    }
    *bytes = buf;
    *len = size;
    buf = NULL;
out:
    free(buf);
    onnx_out_release(&o);
    return rc;
}
