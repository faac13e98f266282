/*
 * conv_backends: one convolution layer at a time, single-threaded, on three implementations:
 *
 *   vigil      the engine's Conv (with its activation as a separate Relu / Clip / Sigmoid+Mul
 *              node, which the engine may fuse) or QLinearConv, as a one-node ONNX model built
 *              here in memory and run through the public API (include/vigil/engine.h), exactly
 *              as a model would run: vg_session_set_input + vg_session_run;
 *   oneDNN     dnnl_convolution_forward (Debian libdnnl-dev 2.x, C API), weights reordered once
 *              to the layout the primitive wants (not timed: a backend would pack them at load),
 *              activation as an eltwise post-op; three figures:
 *                any      src/dst in the layout oneDNN picks (format_tag_any, nChw16c-like): what a
 *                         whole network would pay per layer if activations stayed in that layout;
 *                any+io   the same plus the reorders nchw -> its layout -> nchw around it: what one
 *                         layer costs dropped into an NCHW engine;
 *                nchw     src/dst forced to plain NCHW (weights still any);
 *              int8: u8 src, s8 weights, s32 bias, u8 dst, per-channel output scales
 *              (x_scale * w_scale[k] / y_scale), src and dst zero points given at run time;
 *   im2col     a plain reference: per group, im2col of the whole input (1x1 stride-1 convs use
 *              the input as it is) and one cblas_sgemm, then bias and activation. Float only
 *              (OpenBLAS has no int8 GEMM).
 *
 * Every backend's output is checked (a benchmark that verifies what it measures): float against
 * im2col (max |diff| relative to the output's max |value|, must be <= 1e-4), int8 vigil against
 * oneDNN (every element within one quantization step).
 *
 *   conv_backends [--layers FILE] [--only SUBSTR] [--rounds N] [--min-ms MS] [--json FILE]
 *
 * Without --layers a built-in set of the layers that dominate resnet18, mobilenet_v2,
 * efficientnet_b0 and an int8 efficientnet-lite graph is timed. FILE has one layer a line:
 *   model name C H W K KH KW STRIDE PAD GROUP ACT Q COUNT
 * (ACT: none relu relu6 silu; Q: 0 float, 1 int8 QLinearConv; COUNT: how many layers of the model
 * have this shape, for the per-model totals; bench/engine/vision_models.py writes it from the
 * exported models). Each figure is the median of one round's timed runs (each run timed alone,
 * runs per round chosen to take --min-ms, at least 5), best of --rounds rounds with the backends
 * alternating (other processes on the machine only ever slow a round down).
 * OpenBLAS and oneDNN's OpenMP are pinned to one thread. Output: a markdown table on stdout;
 * with --json, one JSON object per layer in FILE.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>

#include "onnx.pb-c.h"
#include "vigil/engine.h"

#include "../bench_clock.h"

enum act { ACT_NONE, ACT_RELU, ACT_RELU6, ACT_SILU };
static const char *const act_names[] = {"none", "relu", "relu6", "silu"};

struct layer {
    char model[32], name[64];
    int c, h, w, k, kh, kw, s, p, g;
    enum act act;
    int q;     /* int8 QLinearConv (u8 activations, s8 weights, per-channel weight scales) */
    int count; /* layers of this shape in the model */
};

/* The layers that matter (batch 1, 224x224 input). */
static const struct layer builtin[] = {
    {"resnet18", "conv1 7x7/2 3->64 @224", 3, 224, 224, 64, 7, 7, 2, 3, 1, ACT_RELU, 0, 1},
    {"resnet18", "3x3 64->64 @56", 64, 56, 56, 64, 3, 3, 1, 1, 1, ACT_RELU, 0, 1},
    {"resnet18", "3x3/2 64->128 @56", 64, 56, 56, 128, 3, 3, 2, 1, 1, ACT_RELU, 0, 1},
    {"resnet18", "3x3 128->128 @28", 128, 28, 28, 128, 3, 3, 1, 1, 1, ACT_RELU, 0, 1},
    {"resnet18", "1x1/2 64->128 @56 (proj)", 64, 56, 56, 128, 1, 1, 2, 0, 1, ACT_NONE, 0, 1},
    {"resnet18", "3x3 256->256 @14", 256, 14, 14, 256, 3, 3, 1, 1, 1, ACT_RELU, 0, 1},
    {"resnet18", "1x1/2 128->256 @28 (proj)", 128, 28, 28, 256, 1, 1, 2, 0, 1, ACT_NONE, 0, 1},
    {"resnet18", "3x3 512->512 @7", 512, 7, 7, 512, 3, 3, 1, 1, 1, ACT_RELU, 0, 1},
    {"resnet18", "1x1/2 256->512 @14 (proj)", 256, 14, 14, 512, 1, 1, 2, 0, 1, ACT_NONE, 0, 1},
    {"mobilenet_v2", "1x1 24->144 @56 (expand)", 24, 56, 56, 144, 1, 1, 1, 0, 1, ACT_RELU6, 0, 1},
    {"mobilenet_v2", "dw3x3 144 @56", 144, 56, 56, 144, 3, 3, 1, 1, 144, ACT_RELU6, 0, 1},
    {"mobilenet_v2", "1x1 144->24 @56 (project)", 144, 56, 56, 24, 1, 1, 1, 0, 1, ACT_NONE, 0, 1},
    {"mobilenet_v2", "dw3x3/2 144 @56", 144, 56, 56, 144, 3, 3, 2, 1, 144, ACT_RELU6, 0, 1},
    {"mobilenet_v2", "1x1 96->576 @14 (expand)", 96, 14, 14, 576, 1, 1, 1, 0, 1, ACT_RELU6, 0, 1},
    {"mobilenet_v2", "dw3x3 576 @14", 576, 14, 14, 576, 3, 3, 1, 1, 576, ACT_RELU6, 0, 1},
    {"mobilenet_v2", "1x1 576->96 @14 (project)", 576, 14, 14, 96, 1, 1, 1, 0, 1, ACT_NONE, 0, 1},
    {"efficientnet_b0", "dw5x5/2 144 @56", 144, 56, 56, 144, 5, 5, 2, 2, 144, ACT_SILU, 0, 1},
    {"efficientnet_b0", "dw5x5 240 @28", 240, 28, 28, 240, 5, 5, 1, 2, 240, ACT_SILU, 0, 1},
    {"efficientnet_b0", "dw5x5 672 @14", 672, 14, 14, 672, 5, 5, 1, 2, 672, ACT_SILU, 0, 1},
    {"efficientnet_b0", "dw5x5 1152 @7", 1152, 7, 7, 1152, 5, 5, 1, 2, 1152, ACT_SILU, 0, 1},
    {"int8", "q 1x1 24->144 @56 (expand)", 24, 56, 56, 144, 1, 1, 1, 0, 1, ACT_NONE, 1, 1},
    {"int8", "q 1x1 144->24 @56 (project)", 144, 56, 56, 24, 1, 1, 1, 0, 1, ACT_NONE, 1, 1},
    {"int8", "q 1x1 96->576 @14 (expand)", 96, 14, 14, 576, 1, 1, 1, 0, 1, ACT_NONE, 1, 1},
    {"int8", "q dw3x3 144 @56", 144, 56, 56, 144, 3, 3, 1, 1, 144, ACT_NONE, 1, 1},
    {"int8", "q dw3x3/2 144 @56", 144, 56, 56, 144, 3, 3, 2, 1, 144, ACT_NONE, 1, 1},
    {"int8", "q dw3x3 576 @14", 576, 14, 14, 576, 3, 3, 1, 1, 576, ACT_NONE, 1, 1},
    {"int8", "q 3x3 64->64 @56", 64, 56, 56, 64, 3, 3, 1, 1, 1, ACT_NONE, 1, 1},
};

/* ---- data ----------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rng_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static float rng_unit(void) /* [-1, 1) */
{
    return (float)((double)rng_u32() / 2147483648.0 - 1.0);
}

/* One layer's tensors, shared by every backend. */
struct data {
    int oh, ow, cg, kg, kk; /* output size, channels per group, K per group, Cg*KH*KW */
    size_t n_x, n_w, n_y;
    float *x, *w, *b;                   /* float */
    uint8_t *xq;                        /* int8 path */
    int8_t *wq;
    int32_t *bq;
    float x_scale, y_scale, *w_scale, *out_scale;
    int32_t x_zp, y_zp;
};

static void data_free(struct data *d)
{
    free(d->x);
    free(d->w);
    free(d->b);
    free(d->xq);
    free(d->wq);
    free(d->bq);
    free(d->w_scale);
    free(d->out_scale);
}

static int data_make(const struct layer *L, struct data *d)
{
    memset(d, 0, sizeof(*d));
    d->oh = (L->h + 2 * L->p - L->kh) / L->s + 1;
    d->ow = (L->w + 2 * L->p - L->kw) / L->s + 1;
    d->cg = L->c / L->g;
    d->kg = L->k / L->g;
    d->kk = d->cg * L->kh * L->kw;
    d->n_x = (size_t)L->c * L->h * L->w;
    d->n_w = (size_t)L->k * d->kk;
    d->n_y = (size_t)L->k * d->oh * d->ow;
    float wscale = 1.0f / sqrtf((float)d->kk);
    if (!L->q) {
        d->x = malloc(d->n_x * sizeof(float));
        d->w = malloc(d->n_w * sizeof(float));
        d->b = malloc((size_t)L->k * sizeof(float));
        if (!d->x || !d->w || !d->b)
            return -1;
        for (size_t i = 0; i < d->n_x; i++)
            d->x[i] = rng_unit();
        for (size_t i = 0; i < d->n_w; i++)
            d->w[i] = rng_unit() * wscale;
        for (int i = 0; i < L->k; i++)
            d->b[i] = 0.1f * rng_unit();
        return 0;
    }
    d->xq = malloc(d->n_x);
    d->wq = malloc(d->n_w);
    d->bq = malloc((size_t)L->k * sizeof(int32_t));
    d->w_scale = malloc((size_t)L->k * sizeof(float));
    d->out_scale = malloc((size_t)L->k * sizeof(float));
    if (!d->xq || !d->wq || !d->bq || !d->w_scale || !d->out_scale)
        return -1;
    /* Activations u8 with a zero point (as after a quantized ReLU6 / SiLU); symmetric s8
     * weights with per-channel scales, as ONNX Runtime's static quantizer writes them. */
    d->x_scale = 0.02f;
    d->x_zp = 3;
    for (size_t i = 0; i < d->n_x; i++)
        d->xq[i] = (uint8_t)(rng_u32() % 256);
    for (size_t i = 0; i < d->n_w; i++)
        d->wq[i] = (int8_t)((int)(rng_u32() % 255) - 127);
    for (int i = 0; i < L->k; i++) {
        d->w_scale[i] = (0.5f + 0.5f * (rng_unit() + 1.0f)) * wscale / 127.0f;
        d->bq[i] = (int32_t)(rng_unit() * 2000.0f);
    }
    /* y_scale so that the accumulator spread (about 128 * 73 * sqrt(kk) * w_scale/127 ...)
     * fills u8 without saturating everywhere: real output standard deviation / 40. */
    double sd = 0.0;
    for (int i = 0; i < L->k; i++)
        sd += d->w_scale[i];
    sd = sd / L->k * 73.0 * sqrt((double)d->kk) * 74.0 * d->x_scale;
    d->y_scale = (float)(sd / 40.0);
    d->y_zp = 128;
    for (int i = 0; i < L->k; i++)
        d->out_scale[i] = d->x_scale * d->w_scale[i] / d->y_scale;
    return 0;
}

/* ---- vigil: a one-node ONNX model built in memory ------------------------------------------ */

/* Everything a ModelProto under construction points to, freed in one go after packing. */
struct arena {
    void *p[256];
    int n;
};

static void *ar_alloc(struct arena *a, size_t bytes)
{
    if (a->n == (int)(sizeof(a->p) / sizeof(a->p[0])))
        return NULL;
    void *p = calloc(1, bytes ? bytes : 1);
    if (p)
        a->p[a->n++] = p;
    return p;
}

static void ar_free(struct arena *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->p[i]);
    a->n = 0;
}

static char *ar_str(struct arena *a, const char *s)
{
    char *p = ar_alloc(a, strlen(s) + 1);
    if (p)
        strcpy(p, s);
    return p;
}

static Onnx__TensorProto *mk_tensor(struct arena *a, const char *name, int dtype, int rank,
                                    const int64_t *dims, const void *data, size_t bytes)
{
    Onnx__TensorProto *t = ar_alloc(a, sizeof(*t));
    int64_t *d = ar_alloc(a, sizeof(int64_t) * (size_t)(rank ? rank : 1));
    if (!t || !d)
        return NULL;
    onnx__tensor_proto__init(t);
    memcpy(d, dims, sizeof(int64_t) * (size_t)rank);
    t->n_dims = (size_t)rank;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = dtype;
    t->name = ar_str(a, name);
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = (uint8_t *)data; /* borrowed: packed before the data is freed */
    return t->name ? t : NULL;
}

static Onnx__ValueInfoProto *mk_io(struct arena *a, const char *name, int dtype, int rank,
                                   const int64_t *dims)
{
    Onnx__ValueInfoProto *v = ar_alloc(a, sizeof(*v));
    Onnx__TypeProto *tp = ar_alloc(a, sizeof(*tp));
    Onnx__TypeProto__Tensor *tt = ar_alloc(a, sizeof(*tt));
    Onnx__TensorShapeProto *sh = ar_alloc(a, sizeof(*sh));
    Onnx__TensorShapeProto__Dimension **dp = ar_alloc(a, sizeof(*dp) * (size_t)rank);
    if (!v || !tp || !tt || !sh || !dp)
        return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < rank; i++) {
        dp[i] = ar_alloc(a, sizeof(**dp));
        if (!dp[i])
            return NULL;
        onnx__tensor_shape_proto__dimension__init(dp[i]);
        dp[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        dp[i]->dim_value = dims[i];
    }
    sh->n_dim = (size_t)rank;
    sh->dim = dp;
    tt->has_elem_type = 1;
    tt->elem_type = dtype;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    v->name = ar_str(a, name);
    v->type = tp;
    return v->name ? v : NULL;
}

static Onnx__AttributeProto *mk_ints(struct arena *a, const char *name, int n, int64_t v0,
                                     int64_t v1, int64_t v2, int64_t v3)
{
    Onnx__AttributeProto *at = ar_alloc(a, sizeof(*at));
    int64_t *v = ar_alloc(a, sizeof(int64_t) * 4);
    if (!at || !v)
        return NULL;
    onnx__attribute_proto__init(at);
    v[0] = v0, v[1] = v1, v[2] = v2, v[3] = v3;
    at->name = ar_str(a, name);
    at->has_type = 1;
    at->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    at->n_ints = (size_t)n;
    at->ints = v;
    return at->name ? at : NULL;
}

static Onnx__AttributeProto *mk_int(struct arena *a, const char *name, int64_t v)
{
    Onnx__AttributeProto *at = ar_alloc(a, sizeof(*at));
    if (!at)
        return NULL;
    onnx__attribute_proto__init(at);
    at->name = ar_str(a, name);
    at->has_type = 1;
    at->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    at->has_i = 1;
    at->i = v;
    return at->name ? at : NULL;
}

static Onnx__NodeProto *mk_node(struct arena *a, const char *op, int n_in, const char *const *in,
                                const char *out)
{
    Onnx__NodeProto *n = ar_alloc(a, sizeof(*n));
    char **iv = ar_alloc(a, sizeof(char *) * (size_t)n_in);
    char **ov = ar_alloc(a, sizeof(char *));
    if (!n || !iv || !ov)
        return NULL;
    onnx__node_proto__init(n);
    for (int i = 0; i < n_in; i++)
        if (!(iv[i] = ar_str(a, in[i])))
            return NULL;
    ov[0] = ar_str(a, out);
    n->op_type = ar_str(a, op);
    n->n_input = (size_t)n_in;
    n->input = iv;
    n->n_output = 1;
    n->output = ov;
    return ov[0] && n->op_type ? n : NULL;
}

/* Packs the one-conv model for L into *bytes (malloc'd). */
static int conv_model(const struct layer *L, const struct data *d, uint8_t **bytes, size_t *len)
{
    struct arena a = {0};
    int rc = -1;
    Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
    Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};
    Onnx__NodeProto *nodes[3];
    Onnx__TensorProto *inits[9];
    Onnx__ValueInfoProto *ins[1], *outs[1];
    int n_nodes = 0, n_inits = 0;
    const int F = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, U8 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT8,
              I8 = ONNX__TENSOR_PROTO__DATA_TYPE__INT8, I32 = ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
    int64_t xd[4] = {1, L->c, L->h, L->w}, yd[4] = {1, L->k, d->oh, d->ow};
    int64_t wd[4] = {L->k, d->cg, L->kh, L->kw}, kd[1] = {L->k};
    static const float relu6_lo = 0.0f, relu6_hi = 6.0f;
    uint8_t xzp = (uint8_t)d->x_zp, yzp = (uint8_t)d->y_zp;
    int8_t *wzp = NULL;
    Onnx__AttributeProto *attrs[5];
    const char *conv_out = L->act == ACT_NONE ? "y" : "c";

    attrs[0] = mk_ints(&a, "kernel_shape", 2, L->kh, L->kw, 0, 0);
    attrs[1] = mk_ints(&a, "strides", 2, L->s, L->s, 0, 0);
    attrs[2] = mk_ints(&a, "pads", 4, L->p, L->p, L->p, L->p);
    attrs[3] = mk_ints(&a, "dilations", 2, 1, 1, 0, 0);
    attrs[4] = mk_int(&a, "group", L->g);
    for (int i = 0; i < 5; i++)
        if (!attrs[i])
            goto out;
    if (!L->q) {
        const char *in[3] = {"x", "w", "b"};
        inits[n_inits++] = mk_tensor(&a, "w", F, 4, wd, d->w, d->n_w * sizeof(float));
        inits[n_inits++] = mk_tensor(&a, "b", F, 1, kd, d->b, (size_t)L->k * sizeof(float));
        nodes[n_nodes++] = mk_node(&a, "Conv", 3, in, conv_out);
        ins[0] = mk_io(&a, "x", F, 4, xd);
        outs[0] = mk_io(&a, "y", F, 4, yd);
    } else {
        const char *in[9] = {"x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"};
        wzp = ar_alloc(&a, (size_t)L->k); /* symmetric weights: zero points all 0 */
        if (!wzp)
            goto out;
        inits[n_inits++] = mk_tensor(&a, "xs", F, 0, kd, &d->x_scale, sizeof(float));
        inits[n_inits++] = mk_tensor(&a, "xz", U8, 0, kd, &xzp, 1);
        inits[n_inits++] = mk_tensor(&a, "w", I8, 4, wd, d->wq, d->n_w);
        inits[n_inits++] = mk_tensor(&a, "ws", F, 1, kd, d->w_scale, (size_t)L->k * sizeof(float));
        inits[n_inits++] = mk_tensor(&a, "wz", I8, 1, kd, wzp, (size_t)L->k);
        inits[n_inits++] = mk_tensor(&a, "ys", F, 0, kd, &d->y_scale, sizeof(float));
        inits[n_inits++] = mk_tensor(&a, "yz", U8, 0, kd, &yzp, 1);
        inits[n_inits++] = mk_tensor(&a, "b", I32, 1, kd, d->bq, (size_t)L->k * sizeof(int32_t));
        nodes[n_nodes++] = mk_node(&a, "QLinearConv", 9, in, "y");
        ins[0] = mk_io(&a, "x", U8, 4, xd);
        outs[0] = mk_io(&a, "y", U8, 4, yd);
    }
    if (!nodes[0])
        goto out;
    nodes[0]->n_attribute = 5;
    nodes[0]->attribute = attrs;
    if (L->act == ACT_RELU) {
        const char *in[1] = {"c"};
        nodes[n_nodes++] = mk_node(&a, "Relu", 1, in, "y");
    } else if (L->act == ACT_RELU6) {
        const char *in[3] = {"c", "lo", "hi"};
        inits[n_inits++] = mk_tensor(&a, "lo", F, 0, kd, &relu6_lo, sizeof(float));
        inits[n_inits++] = mk_tensor(&a, "hi", F, 0, kd, &relu6_hi, sizeof(float));
        nodes[n_nodes++] = mk_node(&a, "Clip", 3, in, "y");
    } else if (L->act == ACT_SILU) {
        const char *in1[1] = {"c"}, *in2[2] = {"c", "sg"};
        nodes[n_nodes++] = mk_node(&a, "Sigmoid", 1, in1, "sg");
        nodes[n_nodes++] = mk_node(&a, "Mul", 2, in2, "y");
    }
    for (int i = 0; i < n_nodes; i++)
        if (!nodes[i])
            goto out;
    for (int i = 0; i < n_inits; i++)
        if (!inits[i])
            goto out;
    if (!ins[0] || !outs[0])
        goto out;
    graph.name = "conv";
    graph.n_node = (size_t)n_nodes;
    graph.node = nodes;
    graph.n_initializer = (size_t)n_inits;
    graph.initializer = inits;
    graph.n_input = 1;
    graph.input = ins;
    graph.n_output = 1;
    graph.output = outs;
    opset.domain = "";
    opset.has_version = 1;
    opset.version = 13;
    model.has_ir_version = 1;
    model.ir_version = 8;
    model.n_opset_import = 1;
    model.opset_import = opsets;
    model.producer_name = "conv_backends";
    model.graph = &graph;
    *len = onnx__model_proto__get_packed_size(&model);
    *bytes = malloc(*len);
    if (*bytes) {
        onnx__model_proto__pack(&model, *bytes);
        rc = 0;
    }
out:
    ar_free(&a);
    return rc;
}

struct vigil_ctx {
    struct vg_model *m;
    struct vg_session *s;
    struct vg_tensor x;
    char err[600];
};

static int vigil_init(struct vigil_ctx *v, const struct layer *L, struct data *d)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    struct vg_error err = {0};
    memset(v, 0, sizeof(*v));
    if (conv_model(L, d, &bytes, &len)) {
        snprintf(v->err, sizeof(v->err), "could not build the model");
        return -1;
    }
    int rc = vg_engine_load_bytes(bytes, len, NULL, &v->m, &err);
    free(bytes);
    if (rc) {
        snprintf(v->err, sizeof(v->err), "%s", err.msg[0] ? err.msg : vg_strerror(rc));
        return -1;
    }
    v->s = vg_session_new(v->m);
    if (!v->s) {
        snprintf(v->err, sizeof(v->err), "out of memory");
        return -1;
    }
    v->x.dtype = L->q ? VG_DT_UINT8 : VG_DT_FLOAT;
    v->x.rank = 4;
    v->x.dims[0] = 1, v->x.dims[1] = L->c, v->x.dims[2] = L->h, v->x.dims[3] = L->w;
    v->x.data = L->q ? (void *)d->xq : (void *)d->x;
    return 0;
}

static int vigil_run(void *ctx)
{
    struct vigil_ctx *v = ctx;
    struct vg_error err = {0};
    int rc = vg_session_set_input(v->s, 0, &v->x, &err);
    if (!rc)
        rc = vg_session_run(v->s, &err);
    if (rc)
        snprintf(v->err, sizeof(v->err), "%s", err.msg[0] ? err.msg : vg_strerror(rc));
    return rc;
}

static void vigil_free(struct vigil_ctx *v)
{
    vg_session_free(v->s);
    vg_model_free(v->m);
}

/* ---- oneDNN -------------------------------------------------------------------------------- */

static dnnl_engine_t eng;
static dnnl_stream_t strm;

#define DN(call)                                                                                  \
    do {                                                                                          \
        dnnl_status_t st_ = (call);                                                               \
        if (st_ != dnnl_success) {                                                                \
            snprintf(o->err, sizeof(o->err), "%s: status %d", #call, (int)st_);                    \
            return -1;                                                                            \
        }                                                                                         \
    } while (0)

enum dn_mode { DN_ANY, DN_ANY_IO, DN_NCHW };

struct dnnl_ctx {
    dnnl_primitive_t conv, reorder_in, reorder_out;
    dnnl_memory_t src, wei, bias, dst, user_src, user_dst, scratch, zp_src, zp_dst;
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t po;
    const char *impl;
    char impl_name[96];
    int io; /* run the reorders too */
    char err[600];
};

static int reorder_pd(struct dnnl_ctx *o, const dnnl_memory_desc_t *from,
                      const dnnl_memory_desc_t *to, dnnl_primitive_t *out)
{
    dnnl_primitive_desc_t pd;
    DN(dnnl_reorder_primitive_desc_create(&pd, from, eng, to, eng, NULL));
    DN(dnnl_primitive_create(out, pd));
    dnnl_primitive_desc_destroy(pd);
    return 0;
}

/* Reorders `from` into `to` once (weights packing, output read-back). */
static int reorder_once(struct dnnl_ctx *o, dnnl_memory_t from, dnnl_memory_t to)
{
    const dnnl_memory_desc_t *fd, *td;
    dnnl_primitive_t r;
    DN(dnnl_memory_get_memory_desc(from, &fd));
    DN(dnnl_memory_get_memory_desc(to, &td));
    if (reorder_pd(o, fd, td, &r))
        return -1;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    DN(dnnl_primitive_execute(r, strm, 2, args));
    DN(dnnl_stream_wait(strm));
    dnnl_primitive_destroy(r);
    return 0;
}

static int dnnl_init(struct dnnl_ctx *o, const struct layer *L, const struct data *d,
                     enum dn_mode mode)
{
    memset(o, 0, sizeof(*o));
    dnnl_dims_t src_dims = {1, L->c, L->h, L->w}, dst_dims = {1, L->k, d->oh, d->ow};
    dnnl_dims_t wei_dims = {L->k, L->c, L->kh, L->kw}, gwei_dims = {L->g, d->kg, d->cg, L->kh, L->kw};
    dnnl_dims_t bias_dims = {L->k}, strides = {L->s, L->s}, pad = {L->p, L->p};
    dnnl_data_type_t st = L->q ? dnnl_u8 : dnnl_f32, wt = L->q ? dnnl_s8 : dnnl_f32,
                     bt = L->q ? dnnl_s32 : dnnl_f32, dt = L->q ? dnnl_u8 : dnnl_f32;
    dnnl_format_tag_t io_tag = mode == DN_NCHW ? dnnl_nchw : dnnl_format_tag_any;
    int grouped = L->g > 1;
    dnnl_memory_desc_t src_md, wei_md, bias_md, dst_md, user_src_md, user_wei_md, user_dst_md;
    DN(dnnl_memory_desc_init_by_tag(&src_md, 4, src_dims, st, io_tag));
    DN(dnnl_memory_desc_init_by_tag(&dst_md, 4, dst_dims, dt, io_tag));
    DN(dnnl_memory_desc_init_by_tag(&wei_md, grouped ? 5 : 4, grouped ? gwei_dims : wei_dims, wt,
                                    dnnl_format_tag_any));
    DN(dnnl_memory_desc_init_by_tag(&bias_md, 1, bias_dims, bt, dnnl_x));
    DN(dnnl_memory_desc_init_by_tag(&user_src_md, 4, src_dims, st, dnnl_nchw));
    DN(dnnl_memory_desc_init_by_tag(&user_dst_md, 4, dst_dims, dt, dnnl_nchw));
    DN(dnnl_memory_desc_init_by_tag(&user_wei_md, grouped ? 5 : 4, grouped ? gwei_dims : wei_dims,
                                    wt, grouped ? dnnl_goihw : dnnl_oihw));

    dnnl_convolution_desc_t cd;
    DN(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct,
                                          &src_md, &wei_md, &bias_md, &dst_md, strides, pad, pad));
    DN(dnnl_primitive_attr_create(&o->attr));
    DN(dnnl_primitive_attr_set_scratchpad_mode(o->attr, dnnl_scratchpad_mode_user));
    DN(dnnl_post_ops_create(&o->po));
    if (L->act == ACT_RELU)
        DN(dnnl_post_ops_append_eltwise(o->po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f));
    else if (L->act == ACT_RELU6)
        DN(dnnl_post_ops_append_eltwise(o->po, 1.0f, dnnl_eltwise_clip, 0.0f, 6.0f));
    else if (L->act == ACT_SILU)
        DN(dnnl_post_ops_append_eltwise(o->po, 1.0f, dnnl_eltwise_swish, 1.0f, 0.0f));
    DN(dnnl_primitive_attr_set_post_ops(o->attr, o->po));
    if (L->q) {
        /* mask 1 << 1: one scale per output channel (dst dim 1), grouped or not. */
        DN(dnnl_primitive_attr_set_output_scales(o->attr, L->k, 1 << 1, d->out_scale));
        int32_t rt = DNNL_RUNTIME_S32_VAL;
        DN(dnnl_primitive_attr_set_zero_points(o->attr, DNNL_ARG_SRC, 1, 0, &rt));
        DN(dnnl_primitive_attr_set_zero_points(o->attr, DNNL_ARG_DST, 1, 0, &rt));
    }
    dnnl_primitive_desc_t pd;
    DN(dnnl_primitive_desc_create(&pd, &cd, o->attr, eng, NULL));
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &o->impl) == dnnl_success)
        snprintf(o->impl_name, sizeof(o->impl_name), "%s", o->impl);
    const dnnl_memory_desc_t *psrc = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *pwei = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *pdst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    const dnnl_memory_desc_t *pscr = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    DN(dnnl_memory_create(&o->src, psrc, eng, DNNL_MEMORY_ALLOCATE));
    DN(dnnl_memory_create(&o->wei, pwei, eng, DNNL_MEMORY_ALLOCATE));
    DN(dnnl_memory_create(&o->dst, pdst, eng, DNNL_MEMORY_ALLOCATE));
    DN(dnnl_memory_create(&o->bias, &bias_md, eng, L->q ? (void *)d->bq : (void *)d->b));
    DN(dnnl_memory_create(&o->scratch, pscr, eng, DNNL_MEMORY_ALLOCATE));
    DN(dnnl_memory_create(&o->user_src, &user_src_md, eng, L->q ? (void *)d->xq : (void *)d->x));
    DN(dnnl_memory_create(&o->user_dst, &user_dst_md, eng, DNNL_MEMORY_ALLOCATE));
    dnnl_memory_t user_wei;
    DN(dnnl_memory_create(&user_wei, &user_wei_md, eng, L->q ? (void *)d->wq : (void *)d->w));
    if (reorder_once(o, user_wei, o->wei) || reorder_once(o, o->user_src, o->src))
        return -1;
    dnnl_memory_destroy(user_wei);
    if (L->q) {
        dnnl_dims_t one = {1};
        dnnl_memory_desc_t zmd;
        DN(dnnl_memory_desc_init_by_tag(&zmd, 1, one, dnnl_s32, dnnl_x));
        DN(dnnl_memory_create(&o->zp_src, &zmd, eng, DNNL_MEMORY_ALLOCATE));
        DN(dnnl_memory_create(&o->zp_dst, &zmd, eng, DNNL_MEMORY_ALLOCATE));
        void *h;
        DN(dnnl_memory_get_data_handle(o->zp_src, &h));
        *(int32_t *)h = d->x_zp;
        DN(dnnl_memory_get_data_handle(o->zp_dst, &h));
        *(int32_t *)h = d->y_zp;
    }
    DN(dnnl_primitive_create(&o->conv, pd));
    o->io = mode == DN_ANY_IO;
    if (o->io && (reorder_pd(o, &user_src_md, psrc, &o->reorder_in) ||
                  reorder_pd(o, pdst, &user_dst_md, &o->reorder_out)))
        return -1;
    dnnl_primitive_desc_destroy(pd);
    return 0;
}

static int dnnl_run(void *ctx)
{
    struct dnnl_ctx *o = ctx;
    if (o->io) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, o->user_src}, {DNNL_ARG_TO, o->src}};
        DN(dnnl_primitive_execute(o->reorder_in, strm, 2, a));
    }
    dnnl_exec_arg_t args[8] = {{DNNL_ARG_SRC, o->src},         {DNNL_ARG_WEIGHTS, o->wei},
                               {DNNL_ARG_BIAS, o->bias},       {DNNL_ARG_DST, o->dst},
                               {DNNL_ARG_SCRATCHPAD, o->scratch}};
    int n = 5;
    if (o->zp_src) {
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, o->zp_src};
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_DST, o->zp_dst};
    }
    DN(dnnl_primitive_execute(o->conv, strm, n, args));
    if (o->io) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, o->dst}, {DNNL_ARG_TO, o->user_dst}};
        DN(dnnl_primitive_execute(o->reorder_out, strm, 2, a));
    }
    DN(dnnl_stream_wait(strm));
    return 0;
}

/* The last output in NCHW (copied into user_dst; a no-op copy when already NCHW). */
static const void *dnnl_output(struct dnnl_ctx *o)
{
    void *h = NULL;
    if (!o->io && reorder_once(o, o->dst, o->user_dst))
        return NULL;
    dnnl_memory_get_data_handle(o->user_dst, &h);
    return h;
}

static void dnnl_free(struct dnnl_ctx *o)
{
    dnnl_primitive_t prims[3] = {o->conv, o->reorder_in, o->reorder_out};
    dnnl_memory_t mems[9] = {o->src, o->wei, o->bias, o->dst, o->user_src, o->user_dst, o->scratch,
                             o->zp_src, o->zp_dst};
    for (int i = 0; i < 3; i++)
        if (prims[i])
            dnnl_primitive_destroy(prims[i]);
    for (int i = 0; i < 9; i++)
        if (mems[i])
            dnnl_memory_destroy(mems[i]);
    if (o->po)
        dnnl_post_ops_destroy(o->po);
    if (o->attr)
        dnnl_primitive_attr_destroy(o->attr);
}

#undef DN

/* ---- im2col + cblas_sgemm ------------------------------------------------------------------- */

struct im2col_ctx {
    const struct layer *L;
    const struct data *d;
    float *col, *y;
};

static int im2col_run(void *ctx)
{

    struct im2col_ctx *c = ctx;
    const struct layer *L = c->L;
    const struct data *d = c->d;
    int P = d->oh * d->ow, direct = L->kh == 1 && L->kw == 1 && L->s == 1 && L->p == 0;
    for (int g = 0; g < L->g; g++) {
        const float *in = d->x + (size_t)g * d->cg * L->h * L->w;
        const float *col = in;
        if (!direct) {
            float *cp = c->col;
            for (int ci = 0; ci < d->cg; ci++)
                for (int ky = 0; ky < L->kh; ky++)
                    for (int kx = 0; kx < L->kw; kx++) {
                        const float *plane = in + (size_t)ci * L->h * L->w;
                        for (int oy = 0; oy < d->oh; oy++) {
                            int iy = oy * L->s - L->p + ky;
                            for (int ox = 0; ox < d->ow; ox++) {
                                int ix = ox * L->s - L->p + kx;
                                *cp++ = iy >= 0 && iy < L->h && ix >= 0 && ix < L->w
                                            ? plane[iy * L->w + ix]
                                            : 0.0f;
                            }
                        }
                    }
            col = c->col;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->kg, P, d->kk, 1.0f,
                    d->w + (size_t)g * d->kg * d->kk, d->kk, col, P, 0.0f,
                    c->y + (size_t)g * d->kg * P, P);
    }
    /* Bias and activation in one pass, the activation chosen outside the loop. */
    for (int k = 0; k < L->k; k++) {
        float *yk = c->y + (size_t)k * P, b = d->b[k];
        switch (L->act) {
        case ACT_NONE:
            for (int i = 0; i < P; i++)
                yk[i] += b;
            break;
        case ACT_RELU:
            for (int i = 0; i < P; i++)
                yk[i] = fmaxf(yk[i] + b, 0.0f);
            break;
        case ACT_RELU6:
            for (int i = 0; i < P; i++)
                yk[i] = fminf(fmaxf(yk[i] + b, 0.0f), 6.0f);
            break;
        case ACT_SILU:
            for (int i = 0; i < P; i++) {
                float v = yk[i] + b;
                yk[i] = v / (1.0f + expf(-v));
            }
            break;
        }
    }
    return 0;
}

/* ---- driver ---------------------------------------------------------------------------------- */

enum { B_VIGIL, B_DNNL_ANY, B_DNNL_ANY_IO, B_DNNL_NCHW, B_IM2COL, N_BACKENDS };
static const char *const backend_names[N_BACKENDS] = {"vigil", "onednn_any", "onednn_any_io",
                                                      "onednn_nchw", "im2col_sgemm"};

/* Median of one round: runs timed alone; as many as fit in min_us (at least 5, at most 2000). */
static double time_round(int (*run)(void *), void *ctx, double min_us)
{
    double t0 = now_us();
    if (run(ctx))
        return -1.0;
    double once = now_us() - t0;
    int n = once > 0 ? (int)(min_us / once) : 2000;
    n = n < 5 ? 5 : n > 2000 ? 2000 : n;
    double *t = malloc(sizeof(double) * (size_t)n);
    if (!t)
        return -1.0;
    for (int i = 0; i < n; i++) {
        double a = now_us();
        if (run(ctx)) {
            free(t);
            return -1.0;
        }
        t[i] = now_us() - a;
    }
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    double med = t[n / 2];
    free(t);
    return med;
}

static enum act parse_act(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, act_names[i]))
            return (enum act)i;
    return (enum act)-1;
}

static int read_layers(const char *path, struct layer **out, int *n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    char line[512], act[16];
    int cap = 0;
    *n = 0;
    *out = NULL;
    while (fgets(line, sizeof(line), f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        struct layer L;
        memset(&L, 0, sizeof(L));
        if (sscanf(line, "%31s %63s %d %d %d %d %d %d %d %d %d %15s %d %d", L.model, L.name, &L.c,
                   &L.h, &L.w, &L.k, &L.kh, &L.kw, &L.s, &L.p, &L.g, act, &L.q, &L.count) != 14 ||
            (int)(L.act = parse_act(act)) < 0 || L.g < 1 || L.c % L.g || L.k % L.g) {
            fprintf(stderr, "%s: bad line: %s", path, line);
            fclose(f);
            return -1;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            struct layer *p = realloc(*out, sizeof(**out) * (size_t)cap);
            if (!p) {
                fclose(f);
                return -1;
            }
            *out = p;
        }
        (*out)[(*n)++] = L;
    }
    fclose(f);
    return 0;
}

struct result {
    double us[N_BACKENDS];   /* best round's median, -1 = not available */
    char note[N_BACKENDS][640];
    char impl_any[96], impl_nchw[96];
    double diff[N_BACKENDS]; /* max |diff| vs the reference (relative for float), -1 = n/a */
};

static double max_rel_diff(const float *a, const float *ref, size_t n)
{
    double m = 0.0, scale = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - ref[i]);
        m = e > m ? e : m;
        scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
    }
    return m / scale;
}

static double max_q_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        int e = abs((int)a[i] - (int)b[i]);
        m = e > m ? e : m;
    }
    return m;
}

static int bench_layer(const struct layer *L, int rounds, double min_us, struct result *r)
{
    struct data d;
    struct vigil_ctx v;
    struct dnnl_ctx o[3];
    struct im2col_ctx c = {L, NULL, NULL, NULL};
    int ok[N_BACKENDS] = {0};
    void *ctx[N_BACKENDS] = {&v, &o[0], &o[1], &o[2], &c};
    int (*run[N_BACKENDS])(void *) = {vigil_run, dnnl_run, dnnl_run, dnnl_run, im2col_run};
    memset(r, 0, sizeof(*r));
    for (int b = 0; b < N_BACKENDS; b++)
        r->us[b] = r->diff[b] = -1.0;
    if (data_make(L, &d)) {
        data_free(&d);
        return -1;
    }
    c.d = &d;
    ok[B_VIGIL] = vigil_init(&v, L, &d) == 0;
    if (!ok[B_VIGIL])
        snprintf(r->note[B_VIGIL], sizeof(r->note[0]), "%s", v.err);
    for (int i = 0; i < 3; i++) {
        ok[B_DNNL_ANY + i] = dnnl_init(&o[i], L, &d, (enum dn_mode)i) == 0;
        if (!ok[B_DNNL_ANY + i])
            snprintf(r->note[B_DNNL_ANY + i], sizeof(r->note[0]), "%s", o[i].err);
    }
    /* oneDNN's reference kernels (int8 in plain NCHW) take seconds per layer: not timed. */
    for (int i = 0; i < 3; i++)
        if (ok[B_DNNL_ANY + i] && !strncmp(o[i].impl_name, "ref", 3)) {
            ok[B_DNNL_ANY + i] = 0;
            snprintf(r->note[B_DNNL_ANY + i], sizeof(r->note[0]), "reference kernel %s, not timed",
                     o[i].impl_name);
        }
    snprintf(r->impl_any, sizeof(r->impl_any), "%s", o[0].impl_name);
    snprintf(r->impl_nchw, sizeof(r->impl_nchw), "%s", o[2].impl_name);
    if (!L->q) {
        int direct = L->kh == 1 && L->kw == 1 && L->s == 1 && L->p == 0;
        c.col = direct ? NULL : malloc(sizeof(float) * (size_t)d.kk * d.oh * d.ow);
        c.y = malloc(sizeof(float) * d.n_y);
        ok[B_IM2COL] = c.y && (direct || c.col);
    } else {
        snprintf(r->note[B_IM2COL], sizeof(r->note[0]), "float only");
    }

    /* Verify: one run of each, outputs compared with the reference. */
    for (int b = 0; b < N_BACKENDS; b++) {
        if (ok[b] && run[b](ctx[b])) {
            ok[b] = 0;
            snprintf(r->note[b], sizeof(r->note[0]), "run failed: %.600s",
                     b == B_VIGIL ? v.err : b == B_IM2COL ? "" : o[b - 1].err);
        }
    }
    const void *ref = L->q ? (ok[B_DNNL_ANY] ? dnnl_output(&o[0]) : NULL) : (ok[B_IM2COL] ? c.y : NULL);
    int bad = 0;
    for (int b = 0; b < N_BACKENDS && ref; b++) {
        if (!ok[b])
            continue;
        const void *out = b == B_VIGIL ? vg_session_output(v.s, 0)->data
                          : b == B_IM2COL ? c.y
                                          : dnnl_output(&o[b - 1]);
        if (!out)
            continue;
        r->diff[b] = L->q ? max_q_diff(out, ref, d.n_y) : max_rel_diff(out, ref, d.n_y);
        if (r->diff[b] > (L->q ? 1.0 : 1e-4)) {
            bad = 1;
            fprintf(stderr, "conv_backends: %s %s: %s differs from the reference by %g\n",
                    L->model, L->name, backend_names[b], r->diff[b]);
        }
    }

    for (int round = 0; round < rounds; round++)
        for (int b = 0; b < N_BACKENDS; b++) {
            if (!ok[b])
                continue;
            double t = time_round(run[b], ctx[b], min_us);
            if (t < 0) {
                ok[b] = 0;
                r->us[b] = -1;
                continue;
            }
            if (r->us[b] < 0 || t < r->us[b])
                r->us[b] = t;
        }

    if (v.s || v.m)
        vigil_free(&v);
    for (int i = 0; i < 3; i++)
        dnnl_free(&o[i]);
    free(c.col);
    free(c.y);
    data_free(&d);
    return bad ? 1 : 0;
}

static void fmt_us(char *buf, size_t n, double us)
{
    if (us < 0)
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.1f", us);
}

static void fmt_ratio(char *buf, size_t n, double a, double b)
{
    if (a < 0 || b <= 0)
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.2fx", a / b);
}

int main(int argc, char **argv)
{
    const char *layers_file = NULL, *only = NULL, *json_path = NULL;
    int rounds = 3;
    double min_ms = 200.0;
    for (int i = 1; i < argc; i++) {
        int has = i + 1 < argc;
        if (!strcmp(argv[i], "--layers") && has)
            layers_file = argv[++i];
        else if (!strcmp(argv[i], "--only") && has)
            only = argv[++i];
        else if (!strcmp(argv[i], "--rounds") && has)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-ms") && has)
            min_ms = atof(argv[++i]);
        else if (!strcmp(argv[i], "--json") && has)
            json_path = argv[++i];
        else {
            fprintf(stderr, "usage: conv_backends [--layers FILE] [--only SUBSTR] [--rounds N] "
                            "[--min-ms MS] [--json FILE]\n");
            return 2;
        }
    }
    if (rounds < 1)
        rounds = 1;

    /* One thread everywhere: OpenBLAS, and oneDNN's OpenMP runtime (its Debian build has no
     * dnnl_set_max_threads; the OpenMP ICV of the calling thread decides its team size). */
    openblas_set_num_threads(1);
    omp_set_num_threads(1);
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&strm, eng, dnnl_stream_default_flags) != dnnl_success) {
        fprintf(stderr, "conv_backends: cannot create a oneDNN CPU engine\n");
        return 1;
    }

    struct layer *layers = (struct layer *)builtin;
    int n = (int)(sizeof(builtin) / sizeof(builtin[0]));
    if (layers_file && read_layers(layers_file, &layers, &n))
        return 1;
    FILE *json = json_path ? fopen(json_path, "w") : NULL;
    if (json_path && !json) {
        perror(json_path);
        return 1;
    }
    const dnnl_version_t *ver = dnnl_version();
    printf("oneDNN %d.%d.%d (effective ISA code %d), OpenMP threads %d, OpenBLAS %s threads %d; "
           "µs per layer, median of a round's runs, best of %d rounds\n\n",
           ver->major, ver->minor, ver->patch, (int)dnnl_get_effective_cpu_isa(),
           omp_get_max_threads(), openblas_get_corename(), openblas_get_num_threads(), rounds);
    printf("| model | layer | act | vigil | oneDNN any | oneDNN any+io | oneDNN nchw | im2col+sgemm "
           "| vigil/oneDNN any | vigil/oneDNN any+io | vigil/im2col | oneDNN impl (any / nchw) |\n");
    printf("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    fflush(stdout);

    /* Per-model totals (COUNT-weighted), only over layers every summed backend ran. */
    struct total {
        char model[32];
        double us[N_BACKENDS];
        int missing[N_BACKENDS];
    } totals[16];
    int n_totals = 0, failures = 0;
    for (int i = 0; i < n; i++) {
        const struct layer *L = &layers[i];
        if (only && !strstr(L->model, only) && !strstr(L->name, only))
            continue;
        struct result r;
        int rc = bench_layer(L, rounds, min_ms * 1000.0, &r);
        if (rc < 0) {
            fprintf(stderr, "conv_backends: out of memory\n");
            return 1;
        }
        failures += rc;
        char f[N_BACKENDS][32], q1[16], q2[16], q3[16];
        for (int b = 0; b < N_BACKENDS; b++)
            fmt_us(f[b], sizeof(f[b]), r.us[b]);
        fmt_ratio(q1, sizeof(q1), r.us[B_VIGIL], r.us[B_DNNL_ANY]);
        fmt_ratio(q2, sizeof(q2), r.us[B_VIGIL], r.us[B_DNNL_ANY_IO]);
        fmt_ratio(q3, sizeof(q3), r.us[B_VIGIL], r.us[B_IM2COL]);
        char name[96];
        if (L->count > 1)
            snprintf(name, sizeof(name), "%s (x%d)", L->name, L->count);
        else
            snprintf(name, sizeof(name), "%s", L->name);
        printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n", L->model,
               name, act_names[L->act], f[0], f[1], f[2], f[3], f[4], q1, q2, q3, r.impl_any,
               r.impl_nchw);
        for (int b = 0; b < N_BACKENDS; b++)
            if (r.us[b] < 0 && r.note[b][0] && !(b == B_IM2COL && L->q))
                fprintf(stderr, "conv_backends: %s %s: %s: %s\n", L->model, L->name,
                        backend_names[b], r.note[b]);
        fflush(stdout);
        if (json) {
            fprintf(json,
                    "{\"model\": \"%s\", \"layer\": \"%s\", \"c\": %d, \"h\": %d, \"w\": %d, "
                    "\"k\": %d, \"kh\": %d, \"kw\": %d, \"stride\": %d, \"pad\": %d, \"group\": %d, "
                    "\"act\": \"%s\", \"int8\": %d, \"count\": %d, \"impl_any\": \"%s\", "
                    "\"impl_nchw\": \"%s\"",
                    L->model, L->name, L->c, L->h, L->w, L->k, L->kh, L->kw, L->s, L->p, L->g,
                    act_names[L->act], L->q, L->count, r.impl_any, r.impl_nchw);
            for (int b = 0; b < N_BACKENDS; b++) {
                if (r.us[b] >= 0)
                    fprintf(json, ", \"%s_us\": %.3f", backend_names[b], r.us[b]);
                if (r.diff[b] >= 0)
                    fprintf(json, ", \"%s_diff\": %.3g", backend_names[b], r.diff[b]);
            }
            fprintf(json, "}\n");
            fflush(json);
        }
        int t = 0;
        while (t < n_totals && strcmp(totals[t].model, L->model))
            t++;
        if (t == n_totals && n_totals < 16) {
            memset(&totals[t], 0, sizeof(totals[t]));
            snprintf(totals[t].model, sizeof(totals[t].model), "%.31s", L->model);
            n_totals++;
        }
        if (t < n_totals)
            for (int b = 0; b < N_BACKENDS; b++) {
                if (r.us[b] < 0)
                    totals[t].missing[b]++;
                else
                    totals[t].us[b] += r.us[b] * L->count;
            }
    }
    printf("\nSums over the layers above (x count), per model; a sum with missing layers is "
           "marked *:\n\n| model | vigil | oneDNN any | oneDNN any+io | oneDNN nchw | "
           "im2col+sgemm | vigil/oneDNN any | im2col/oneDNN any |\n|---|---:|---:|---:|---:|---:|"
           "---:|---:|\n");
    for (int t = 0; t < n_totals; t++) {
        char f[N_BACKENDS][32], q1[16], q2[16];
        for (int b = 0; b < N_BACKENDS; b++) {
            double us = totals[t].us[b];
            if (totals[t].missing[b] && us == 0)
                snprintf(f[b], sizeof(f[b]), "-");
            else
                snprintf(f[b], sizeof(f[b]), "%.0f%s", us, totals[t].missing[b] ? "*" : "");
        }
        int full_v = !totals[t].missing[B_VIGIL], full_d = !totals[t].missing[B_DNNL_ANY],
            full_i = !totals[t].missing[B_IM2COL];
        fmt_ratio(q1, sizeof(q1), full_v && full_d ? totals[t].us[B_VIGIL] : -1,
                  totals[t].us[B_DNNL_ANY]);
        fmt_ratio(q2, sizeof(q2), full_i && full_d ? totals[t].us[B_IM2COL] : -1,
                  totals[t].us[B_DNNL_ANY]);
        printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", totals[t].model, f[0], f[1], f[2],
               f[3], f[4], q1, q2);
    }
    if (json)
        fclose(json);
    if (layers != builtin)
        free(layers);
    dnnl_stream_destroy(strm);
    dnnl_engine_destroy(eng);
    if (failures)
        fprintf(stderr, "conv_backends: %d layer(s) with outputs that disagree\n", failures);
    return failures ? 1 : 0;
}
