/*
 * Load-time fusion into Conv (ops/conv.c, the absorb protocol in src/engine/op.h), on models built
 * in memory: each fusable chain must load as fewer executed nodes (vg_model_n_exec_nodes) and give
 * the outputs of the same graph with fusion blocked. Fusion is blocked, without any switch in the
 * engine, by also listing the Conv's output as a graph output, which the core never fuses away;
 * the cases that must not fuse (a second reader, a non-constant W) are checked by their counts.
 * SiLU (Sigmoid then Mul of the Conv's output by it) is the one two-reader pattern that fuses.
 * The ONNX-level cases (numpy references) are in tests/fixtures/gen_conv_cases.py.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model_builder.h"
#include "vigil/engine.h"

#define C_IN 4
#define C_OUT 6
#define H 9
#define W 11

/* An INTS attribute on the node created last. */
static void attr_ints(struct mb *b, Onnx__NodeProto *n, const char *name, const int64_t *v,
                      size_t count)
{
    Onnx__AttributeProto *a = &b->attrs[b->n_attrs];
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    a->n_ints = count;
    a->ints = mb_keep(b, calloc(count + 1, sizeof(int64_t)));
    memcpy(a->ints, v, count * sizeof(int64_t));
    b->attr_ptrs[b->n_attrs++] = a;
    n->n_attribute++;
}

static void attr_float(struct mb *b, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = &b->attrs[b->n_attrs];
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = 1;
    a->f = v;
    b->attr_ptrs[b->n_attrs++] = a;
    n->n_attribute++;
}

enum act { ACT_NONE, ACT_RELU, ACT_CLIP6, ACT_HARDSWISH, ACT_LEAKY, ACT_SILU };

struct chain {
    int depthwise;    /* group = C_IN, C_OUT = C_IN */
    int bn;           /* BatchNormalization after the Conv */
    enum act act;     /* then this activation */
    int conv_output;  /* the Conv's output is also a graph output: blocks fusion */
    int second_reader; /* an Add also reads the Conv's output */
    int w_input;      /* W is a graph input (not a constant) */
};

static float frand(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (float)((*seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* Builds the chain; returns the packed model bytes. Output 0 is always "y". */
static unsigned char *build(const struct chain *ch, size_t *len, struct mb *b, float *w_data)
{
    static const char *conv_in[] = {"x", "w", "b", NULL}, *conv_out[] = {"c", NULL};
    static const char *bn_in[] = {"c", "s", "bb", "mu", "var", NULL}, *bn_out[] = {"t", NULL};
    static const char *clip_in_c[] = {"c", "lo", "hi", NULL}, *clip_in_t[] = {"t", "lo", "hi", NULL};
    static const char *act_in_c[] = {"c", NULL}, *act_in_t[] = {"t", NULL};
    static const char *y_out[] = {"y", NULL}, *a_out[] = {"a", NULL};
    static const char *add_in[] = {"a", "c", NULL};
    int64_t m = ch->depthwise ? C_IN : C_OUT, cg = ch->depthwise ? 1 : C_IN;
    unsigned seed = 7;
    mb_init(b, 14);
    int64_t xd[4] = {1, C_IN, H, W}, wd[4] = {m, cg, 3, 3}, bd[1] = {m};
    mb_input(b, "x", 1, 4, xd);
    size_t nw = (size_t)(m * cg * 9);
    for (size_t i = 0; i < nw; i++)
        w_data[i] = frand(&seed);
    if (ch->w_input)
        mb_input(b, "w", 1, 4, wd);
    else
        mb_init_float(b, "w", 4, wd, w_data, nw);
    float bias[C_OUT], s[C_OUT], bb[C_OUT], mu[C_OUT], var[C_OUT];
    for (int i = 0; i < m; i++) {
        bias[i] = frand(&seed);
        s[i] = 1.0f + 0.5f * frand(&seed);
        bb[i] = frand(&seed);
        mu[i] = 0.5f * frand(&seed);
        var[i] = 1.0f + 0.8f * frand(&seed);
    }
    mb_init_float(b, "b", 1, bd, bias, (size_t)m);
    Onnx__NodeProto *n = mb_node(b, "Conv", conv_in, conv_out);
    static const int64_t pads[4] = {1, 1, 1, 1}, strides[2] = {1, 2};
    attr_ints(b, n, "pads", pads, 4);
    attr_ints(b, n, "strides", strides, 2);
    if (ch->depthwise)
        mb_attr_int(b, n, "group", C_IN);
    const char **act_in = act_in_c, **clip_in = clip_in_c;
    if (ch->bn) {
        mb_init_float(b, "s", 1, bd, s, (size_t)m);
        mb_init_float(b, "bb", 1, bd, bb, (size_t)m);
        mb_init_float(b, "mu", 1, bd, mu, (size_t)m);
        mb_init_float(b, "var", 1, bd, var, (size_t)m);
        n = mb_node(b, "BatchNormalization", bn_in, ch->act == ACT_NONE ? y_out : bn_out);
        attr_float(b, n, "epsilon", 1e-3f);
        act_in = act_in_t;
        clip_in = clip_in_t;
    }
    const char **last_out = ch->second_reader ? a_out : y_out;
    switch (ch->act) {
    case ACT_RELU: mb_node(b, "Relu", act_in, last_out); break;
    case ACT_HARDSWISH: mb_node(b, "HardSwish", act_in, last_out); break;
    case ACT_LEAKY:
        n = mb_node(b, "LeakyRelu", act_in, last_out);
        attr_float(b, n, "alpha", 0.2f);
        break;
    case ACT_SILU: { /* x * Sigmoid(x), the operands of the Mul in either order */
        static const char *sg_out[] = {"sg", NULL}, *mul_c[] = {"sg", "c", NULL};
        static const char *mul_t[] = {"t", "sg", NULL};
        mb_node(b, "Sigmoid", act_in, sg_out);
        mb_node(b, "Mul", act_in == act_in_c ? mul_c : mul_t, last_out);
        break;
    }
    case ACT_CLIP6: {
        static const float lo = 0.0f, hi = 6.0f;
        mb_init_float(b, "lo", 0, NULL, &lo, 1);
        mb_init_float(b, "hi", 0, NULL, &hi, 1);
        mb_node(b, "Clip", clip_in, last_out);
        break;
    }
    default: break;
    }
    if (ch->second_reader)
        mb_node(b, "Add", add_in, y_out);
    mb_output(b, "y", 1, -1, NULL);
    if (ch->conv_output)
        mb_output(b, "c", 1, -1, NULL);
    return mb_pack(b, len);
}

/* Loads the chain, checks the executed node count, runs it, copies output 0 into y. */
static void load_run(const struct chain *ch, int want_nodes, float *y, size_t *ny)
{
    struct mb b;
    size_t len;
    float w_data[C_OUT * C_IN * 9];
    unsigned char *bytes = build(ch, &len, &b, w_data);
    struct vg_model *m = NULL;
    struct vg_error err = {0};
    int rc = vg_engine_load_bytes(bytes, len, NULL, &m, &err);
    free(bytes);
    mb_release(&b);
    if (rc)
        fail_msg("load: %s", err.msg);
    assert_int_equal(vg_model_n_exec_nodes(m), want_nodes);

    float x[C_IN * H * W];
    unsigned seed = 99;
    for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++)
        x[i] = 3.0f * frand(&seed);
    struct vg_tensor tx = {.dtype = VG_DT_FLOAT, .rank = 4, .dims = {1, C_IN, H, W}, .data = x};
    int64_t mo = ch->depthwise ? C_IN : C_OUT, cg = ch->depthwise ? 1 : C_IN;
    struct vg_tensor tw = {.dtype = VG_DT_FLOAT, .rank = 4, .dims = {mo, cg, 3, 3},
                           .data = w_data};
    struct vg_session *s = vg_session_new(m);
    assert_non_null(s);
    assert_int_equal(vg_session_set_input(s, 0, &tx, &err), 0);
    if (ch->w_input)
        assert_int_equal(vg_session_set_input(s, 1, &tw, &err), 0);
    if (vg_session_run(s, &err))
        fail_msg("run: %s", err.msg);
    const struct vg_tensor *out = vg_session_output(s, 0);
    assert_non_null(out);
    *ny = (size_t)vg_tensor_numel(out);
    memcpy(y, out->data, *ny * sizeof(float));
    vg_session_free(s);
    vg_model_free(m);
}

/* Fused (one node) against the same graph with fusion blocked (`unfused_nodes` nodes). */
static void check_fused(struct chain ch, int unfused_nodes)
{
    static float y1[C_OUT * H * W], y2[C_OUT * H * W];
    size_t n1, n2;
    ch.conv_output = 0;
    load_run(&ch, 1, y1, &n1);
    ch.conv_output = 1;
    load_run(&ch, unfused_nodes, y2, &n2);
    assert_int_equal(n1, n2);
    int nonzero = 0;
    for (size_t i = 0; i < n1; i++) {
        if (fabsf(y1[i] - y2[i]) > 1e-5f + 1e-5f * fabsf(y2[i]))
            fail_msg("output %zu: fused %.9g, unfused %.9g", i, (double)y1[i], (double)y2[i]);
        nonzero += y2[i] != 0.0f;
    }
    assert_true(nonzero > 0);
}

static void test_conv_bn(void **state)
{
    (void)state;
    check_fused((struct chain){.bn = 1}, 2);
}

static void test_conv_bn_relu(void **state)
{
    (void)state;
    check_fused((struct chain){.bn = 1, .act = ACT_RELU}, 3);
}

static void test_conv_clip6(void **state)
{
    (void)state;
    check_fused((struct chain){.act = ACT_CLIP6}, 2);
}

static void test_conv_hardswish(void **state)
{
    (void)state;
    check_fused((struct chain){.act = ACT_HARDSWISH}, 2);
}

static void test_conv_leakyrelu(void **state)
{
    (void)state;
    check_fused((struct chain){.act = ACT_LEAKY}, 2);
}

static void test_conv_silu(void **state)
{
    (void)state;
    check_fused((struct chain){.act = ACT_SILU}, 3);
}

static void test_depthwise_bn_silu(void **state)
{
    (void)state;
    check_fused((struct chain){.depthwise = 1, .bn = 1, .act = ACT_SILU}, 4);
}

static void test_depthwise_bn_clip6(void **state)
{
    (void)state;
    check_fused((struct chain){.depthwise = 1, .bn = 1, .act = ACT_CLIP6}, 3);
}

static void test_depthwise_bn_hardswish(void **state)
{
    (void)state;
    check_fused((struct chain){.depthwise = 1, .bn = 1, .act = ACT_HARDSWISH}, 3);
}

/* An Add reads the Conv's output besides the Relu: nothing fuses (Conv, Relu, Add). */
static void test_second_reader_blocks(void **state)
{
    (void)state;
    static float y[C_OUT * H * W];
    size_t n;
    load_run(&(struct chain){.act = ACT_RELU, .second_reader = 1}, 3, y, &n);
    /* BN and the Add both read the Conv's output: Conv, BN, Relu, Add */
    load_run(&(struct chain){.bn = 1, .act = ACT_RELU, .second_reader = 1}, 4, y, &n);
}

/* The Conv's output is a graph output: Conv and Relu both run. */
static void test_graph_output_blocks(void **state)
{
    (void)state;
    static float y[C_OUT * H * W];
    size_t n;
    load_run(&(struct chain){.act = ACT_RELU, .conv_output = 1}, 2, y, &n);
}

/* W fed as an input: no packed weights, nothing fused, same results. */
static void test_input_w_not_fused(void **state)
{
    (void)state;
    static float y1[C_OUT * H * W], y2[C_OUT * H * W];
    size_t n1, n2;
    load_run(&(struct chain){.bn = 1, .act = ACT_RELU, .w_input = 1}, 3, y1, &n1);
    load_run(&(struct chain){.bn = 1, .act = ACT_RELU}, 1, y2, &n2);
    assert_int_equal(n1, n2);
    for (size_t i = 0; i < n1; i++)
        if (fabsf(y1[i] - y2[i]) > 1e-5f + 1e-5f * fabsf(y2[i]))
            fail_msg("output %zu: input W %.9g, fused %.9g", i, (double)y1[i], (double)y2[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_bn),
        cmocka_unit_test(test_conv_bn_relu),
        cmocka_unit_test(test_conv_clip6),
        cmocka_unit_test(test_conv_hardswish),
        cmocka_unit_test(test_conv_leakyrelu),
        cmocka_unit_test(test_conv_silu),
        cmocka_unit_test(test_depthwise_bn_silu),
        cmocka_unit_test(test_depthwise_bn_clip6),
        cmocka_unit_test(test_depthwise_bn_hardswish),
        cmocka_unit_test(test_second_reader_blocks),
        cmocka_unit_test(test_graph_output_blocks),
        cmocka_unit_test(test_input_w_not_fused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
