/*
 * Engine core tests: the bad-model table (each broken model gets its own error code and a message
 * naming what is wrong), the planner (arena reuse by lifetime, plan cache per input shape,
 * symbolic dims, value-dependent shapes), constant folding, external data, and sessions on one
 * model from several threads.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"
#include "model_builder.h"
#include "vigil/engine.h"

#define FLOAT_T 1
#define INT64_T 7

static int load(struct mb *b, struct vg_model **m, struct vg_error *err)
{
    size_t len;
    unsigned char *bytes = mb_pack(b, &len);
    int rc = vg_engine_load_bytes(bytes, len, NULL, m, err);
    free(bytes);
    return rc;
}

/* x[N,4] -> Relu -> Relu -> Relu -> Relu -> y */
static void build_relu_chain(struct mb *b, int64_t width)
{
    static const char *n0i[] = {"x", NULL}, *n0o[] = {"a", NULL};
    static const char *n1i[] = {"a", NULL}, *n1o[] = {"b", NULL};
    static const char *n2i[] = {"b", NULL}, *n2o[] = {"c", NULL};
    static const char *n3i[] = {"c", NULL}, *n3o[] = {"y", NULL};
    int64_t dims[2] = {-1, width};
    mb_init(b, 13);
    mb_input(b, "x", FLOAT_T, 2, dims);
    mb_output(b, "y", FLOAT_T, 2, dims);
    mb_node(b, "Relu", n0i, n0o);
    mb_node(b, "Relu", n1i, n1o);
    mb_node(b, "Relu", n2i, n2o);
    mb_node(b, "Relu", n3i, n3o);
}

/* ---- bad models ------------------------------------------------------------------------------ */

static void test_not_protobuf(void **state)
{
    (void)state;
    struct vg_model *m = NULL;
    struct vg_error err = {0};
    const char *text = "this is a text file, not an ONNX model\n";
    int rc = vg_engine_load_bytes(text, strlen(text), NULL, &m, &err);
    assert_int_equal(rc, -VG_EPARSE);
    assert_null(m);
    assert_non_null(strstr(err.msg, "not a valid ONNX model"));
    rc = vg_engine_load_bytes("", 0, NULL, &m, &err);
    assert_int_equal(rc, -VG_EPARSE);
}

static void test_truncated(void **state)
{
    (void)state;
    struct mb b;
    build_relu_chain(&b, 4);
    size_t len;
    unsigned char *bytes = mb_pack(&b, &len);
    struct vg_model *m = NULL;
    struct vg_error err = {0};
    /* every cut inside the graph message must fail cleanly, never crash */
    int failures = 0;
    for (size_t cut = 1; cut < len; cut++) {
        int rc = vg_engine_load_bytes(bytes, cut, NULL, &m, &err);
        if (rc) {
            failures++;
            assert_null(m);
            assert_true(err.msg[0] != 0);
        } else {
            vg_model_free(m);
            m = NULL;
        }
    }
    assert_true(failures > 0);
    /* half a model is always refused */
    assert_int_not_equal(vg_engine_load_bytes(bytes, len / 2, NULL, &m, &err), 0);
    free(bytes);
    mb_release(&b);
}

struct bad_case {
    const char *name;
    void (*build)(struct mb *b);
    int code;
    const char *needle1, *needle2;
};

static void bad_unknown_op(struct mb *b)
{
    static const char *in[] = {"x", NULL}, *out[] = {"y", NULL};
    int64_t d[1] = {3};
    mb_init(b, 13);
    mb_input(b, "x", FLOAT_T, 1, d);
    mb_output(b, "y", FLOAT_T, 1, d);
    mb_node(b, "FrobnicateAll", in, out);
}

static void bad_cycle(struct mb *b)
{
    static const char *i0[] = {"x", "q", NULL}, *o0[] = {"p", NULL};
    static const char *i1[] = {"p", NULL}, *o1[] = {"q", NULL};
    int64_t d[1] = {3};
    mb_init(b, 13);
    mb_input(b, "x", FLOAT_T, 1, d);
    mb_output(b, "q", FLOAT_T, 1, d);
    mb_node(b, "Add", i0, o0);
    mb_node(b, "Relu", i1, o1);
}

static void bad_missing_initializer(struct mb *b)
{
    static const char *in[] = {"x", "W", NULL}, *out[] = {"y", NULL};
    int64_t d[1] = {3};
    mb_init(b, 13);
    mb_input(b, "x", FLOAT_T, 1, d);
    mb_output(b, "y", FLOAT_T, 1, d);
    mb_node(b, "Add", in, out);
}

static void bad_matmul_shapes(struct mb *b)
{
    static const char *in[] = {"x", "W", NULL}, *out[] = {"y", NULL};
    int64_t dx[2] = {-1, 3}, dw[2] = {4, 5}, dy[2] = {-1, 5};
    float w[20] = {0};
    mb_init(b, 13);
    mb_input(b, "x", FLOAT_T, 2, dx);
    mb_init_float(b, "W", 2, dw, w, 20);
    mb_output(b, "y", FLOAT_T, 2, dy);
    mb_node(b, "MatMul", in, out);
}

static void bad_broadcast_shapes(struct mb *b)
{
    static const char *in[] = {"x", "W", NULL}, *out[] = {"y", NULL};
    int64_t dx[2] = {2, 3}, dw[1] = {4};
    float w[4] = {0};
    mb_init(b, 13);
    mb_input(b, "x", FLOAT_T, 2, dx);
    mb_init_float(b, "W", 1, dw, w, 4);
    mb_output(b, "y", FLOAT_T, 2, dx);
    mb_node(b, "Add", in, out);
}

static void bad_absurd_dims(struct mb *b)
{
    static const char *in[] = {"x", NULL}, *out[] = {"y", NULL};
    int64_t d[3] = {1000000, 1000000, 1000000};
    mb_init(b, 13);
    mb_input(b, "x", FLOAT_T, 3, d);
    mb_output(b, "y", FLOAT_T, 3, d);
    mb_node(b, "Relu", in, out);
}

static void bad_absurd_initializer(struct mb *b)
{
    static const char *in[] = {"x", "W", NULL}, *out[] = {"y", NULL};
    int64_t d[1] = {3}, dw[2] = {(int64_t)1 << 40, 1 << 20};
    mb_init(b, 13);
    mb_input(b, "x", FLOAT_T, 1, d);
    mb_init_float(b, "W", 2, dw, NULL, 0);
    mb_output(b, "y", FLOAT_T, 1, d);
    mb_node(b, "Add", in, out);
}

static void bad_initializer_size(struct mb *b)
{
    static const char *in[] = {"x", "W", NULL}, *out[] = {"y", NULL};
    int64_t d[1] = {3};
    float w[2] = {1, 2};
    mb_init(b, 13);
    mb_input(b, "x", FLOAT_T, 1, d);
    mb_init_float(b, "W", 1, d, w, 2); /* 2 values for 3 elements */
    mb_output(b, "y", FLOAT_T, 1, d);
    mb_node(b, "Add", in, out);
}

static void bad_opset(struct mb *b)
{
    bad_unknown_op(b);
    b->opsets[0].version = 99;
}

static void bad_domain_not_imported(struct mb *b)
{
    static const char *in[] = {"x", NULL}, *out[] = {"y", NULL};
    int64_t d[1] = {3};
    mb_init(b, 13);
    mb_input(b, "x", FLOAT_T, 1, d);
    mb_output(b, "y", FLOAT_T, 1, d);
    Onnx__NodeProto *n = mb_node(b, "Scaler", in, out);
    n->domain = "ai.onnx.ml";
}

static void bad_duplicate_output(struct mb *b)
{
    static const char *in[] = {"x", NULL}, *out[] = {"y", NULL};
    int64_t d[1] = {3};
    mb_init(b, 13);
    mb_input(b, "x", FLOAT_T, 1, d);
    mb_output(b, "y", FLOAT_T, 1, d);
    mb_node(b, "Relu", in, out);
    mb_node(b, "Abs", in, out);
}

static void bad_output_undefined(struct mb *b)
{
    static const char *in[] = {"x", NULL}, *out[] = {"y", NULL};
    int64_t d[1] = {3};
    mb_init(b, 13);
    mb_input(b, "x", FLOAT_T, 1, d);
    mb_output(b, "z", FLOAT_T, 1, d);
    mb_node(b, "Relu", in, out);
}

static void bad_output_type(struct mb *b)
{
    static const char *in[] = {"x", NULL}, *out[] = {"y", NULL};
    int64_t d[1] = {3};
    mb_init(b, 13);
    mb_input(b, "x", FLOAT_T, 1, d);
    mb_output(b, "y", INT64_T, 1, d);
    mb_node(b, "Relu", in, out);
}

static void bad_input_type(struct mb *b)
{
    static const char *in[] = {"x", NULL}, *out[] = {"y", NULL};
    int64_t d[1] = {3};
    mb_init(b, 13);
    mb_input(b, "x", 10 /* FLOAT16 */, 1, d);
    mb_output(b, "y", 10, 1, d);
    mb_node(b, "Relu", in, out);
}

static void bad_reshape_static(struct mb *b)
{
    static const char *in[] = {"x", "s", NULL}, *out[] = {"y", NULL};
    int64_t dx[2] = {2, 3}, ds[1] = {2}, dy[2] = {4, 2};
    mb_init(b, 13);
    mb_input(b, "x", FLOAT_T, 2, dx);
    int64_t target[2] = {4, 2};
    mb_init_int64(b, "s", 1, ds, target, 2);
    mb_output(b, "y", FLOAT_T, 2, dy);
    mb_node(b, "Reshape", in, out);
}

static void bad_missing_input(struct mb *b)
{
    static const char *in[] = {"x", NULL}, *out[] = {"y", NULL};
    int64_t d[2] = {3, 3};
    mb_init(b, 13);
    mb_input(b, "x", FLOAT_T, 2, d);
    mb_output(b, "y", FLOAT_T, 2, d);
    mb_node(b, "MatMul", in, out);
}

static const struct bad_case bad_cases[] = {
    {"unknown operator", bad_unknown_op, VG_EUNSUPPORTED, "FrobnicateAll", "not supported"},
    {"missing required input", bad_missing_input, VG_EGRAPH, "MatMul", "required input 1"},
    {"cycle", bad_cycle, VG_EGRAPH, "cycle", "node '"},
    {"missing initializer", bad_missing_initializer, VG_EGRAPH, "'W'", "not defined"},
    {"MatMul shapes", bad_matmul_shapes, VG_ESHAPE, "MatMul", "inner dimensions"},
    {"broadcast shapes", bad_broadcast_shapes, VG_ESHAPE, "Add", "broadcast"},
    {"absurd input dims", bad_absurd_dims, VG_ENOMEM, "input 'x'", "limit"},
    {"absurd initializer dims", bad_absurd_initializer, VG_ENOMEM, "'W'", "limit"},
    {"initializer data size", bad_initializer_size, VG_EINVAL, "'W'", "2 values stored for 3"},
    {"opset version", bad_opset, VG_EUNSUPPORTED, "ai.onnx version 99", "not supported"},
    {"domain not imported", bad_domain_not_imported, VG_EGRAPH, "Scaler", "does not import"},
    {"duplicate output", bad_duplicate_output, VG_EGRAPH, "'y'", "already defined"},
    {"undefined graph output", bad_output_undefined, VG_EGRAPH, "'z'", "not produced"},
    {"graph output type", bad_output_type, VG_ETYPE, "INT64", "FP32"},
    {"unsupported input type", bad_input_type, VG_EUNSUPPORTED, "input 'x'", "element type 10"},
    {"reshape to an impossible shape", bad_reshape_static, VG_ESHAPE, "Reshape", "6"},
};

static void test_bad_models(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *bc = &bad_cases[i];
        struct mb b;
        bc->build(&b);
        struct vg_model *m = NULL;
        struct vg_error err = {0};
        int rc = load(&b, &m, &err);
        mb_release(&b);
        if (rc != -bc->code || !strstr(err.msg, bc->needle1) || !strstr(err.msg, bc->needle2)) {
            print_error("case '%s': rc %d (want %d), message: %s\n", bc->name, rc, -bc->code,
                        err.msg);
            fail();
        }
        assert_null(m);
    }
}

/* ---- planner ---------------------------------------------------------------------------------- */

static void test_arena_reuse(void **state)
{
    (void)state;
    const int64_t width = 10000;
    struct mb b;
    build_relu_chain(&b, width);
    struct vg_model *m;
    struct vg_error err = {0};
    assert_int_equal(load(&b, &m, &err), 0);
    mb_release(&b);
    struct vg_session *s = vg_session_new(m);
    float *x = malloc(sizeof(float) * (size_t)width);
    for (int64_t i = 0; i < width; i++)
        x[i] = (float)(i % 7) - 3.0f;
    struct vg_tensor in = {.dtype = VG_DT_FLOAT, .rank = 2, .dims = {1, width}, .data = x};
    assert_int_equal(vg_session_set_input(s, 0, &in, &err), 0);
    assert_int_equal(vg_session_run(s, &err), 0);
    const struct vg_tensor *y = vg_session_output(s, 0);
    for (int64_t i = 0; i < width; i++)
        assert_true(((float *)y->data)[i] == (x[i] > 0 ? x[i] : 0));
    /* 4 tensors of 40 kB with disjoint lifetimes pairwise: two buffers suffice */
    size_t one = (size_t)width * sizeof(float);
    size_t arena = vg_session_arena_bytes(s);
    assert_true(arena >= 2 * one);
    assert_true(arena < 3 * one);
    /* the same shape again reuses the plan and the arena: output at the same address */
    const void *first = y->data;
    assert_int_equal(vg_session_run(s, &err), 0);
    assert_ptr_equal(vg_session_output(s, 0)->data, first);
    assert_int_equal(vg_session_arena_bytes(s), arena);
    free(x);
    vg_session_free(s);
    vg_model_free(m);
}

static void test_lifetimes(void **state)
{
    (void)state;
    /* y = (x + a) * (a = relu(x)): `a` is read by the last node, so it must not be overwritten
       by the intermediate sum even though a naive in-order reuse would place them together. */
    static const char *i0[] = {"x", NULL}, *o0[] = {"a", NULL};
    static const char *i1[] = {"x", "a", NULL}, *o1[] = {"s", NULL};
    static const char *i2[] = {"s", NULL}, *o2[] = {"t", NULL};
    static const char *i3[] = {"t", "a", NULL}, *o3[] = {"y", NULL};
    int64_t d[1] = {-1};
    struct mb b;
    mb_init(&b, 13);
    mb_input(&b, "x", FLOAT_T, 1, d);
    mb_output(&b, "y", FLOAT_T, 1, d);
    mb_node(&b, "Relu", i0, o0);
    mb_node(&b, "Add", i1, o1);
    mb_node(&b, "Neg", i2, o2);
    mb_node(&b, "Mul", i3, o3);
    struct vg_model *m;
    struct vg_error err = {0};
    assert_int_equal(load(&b, &m, &err), 0);
    mb_release(&b);
    struct vg_session *s = vg_session_new(m);
    for (int64_t n = 1; n <= 3000; n = n * 3 + 1) {
        float *x = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)((i * 37) % 11) - 5.0f;
        struct vg_tensor in = {.dtype = VG_DT_FLOAT, .rank = 1, .dims = {n}, .data = x};
        assert_int_equal(vg_session_set_input(s, 0, &in, &err), 0);
        assert_int_equal(vg_session_run(s, &err), 0);
        const struct vg_tensor *y = vg_session_output(s, 0);
        assert_int_equal(y->dims[0], n);
        for (int64_t i = 0; i < n; i++) {
            float a = x[i] > 0 ? x[i] : 0;
            assert_true(((float *)y->data)[i] == -(x[i] + a) * a);
        }
        free(x);
    }
    vg_session_free(s);
    vg_model_free(m);
}

static void test_symbolic_dims(void **state)
{
    (void)state;
    static const char *in[] = {"x", "z", NULL}, *out[] = {"y", NULL};
    int64_t d[2] = {-1, 2};
    struct mb b;
    mb_init(&b, 13);
    mb_input(&b, "x", FLOAT_T, 2, d);
    mb_input(&b, "z", FLOAT_T, 2, d);
    mb_output(&b, "y", FLOAT_T, 2, d);
    mb_node(&b, "Add", in, out);
    struct vg_model *m;
    struct vg_error err = {0};
    assert_int_equal(load(&b, &m, &err), 0);
    mb_release(&b);
    const struct vg_io_info *io = vg_model_input(m, 0);
    assert_int_equal(io->dims[0], -1);
    assert_string_equal(io->dim_names[0], "N");
    struct vg_session *s = vg_session_new(m);
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    /* batch sizes 1, 4, 1 again: each gets (or reuses) its plan */
    int64_t ns[3] = {1, 4, 1};
    for (int k = 0; k < 3; k++) {
        struct vg_tensor tx = {.dtype = VG_DT_FLOAT, .rank = 2, .dims = {ns[k], 2}, .data = x};
        assert_int_equal(vg_session_set_input(s, 0, &tx, &err), 0);
        assert_int_equal(vg_session_set_input(s, 1, &tx, &err), 0);
        assert_int_equal(vg_session_run(s, &err), 0);
        const struct vg_tensor *y = vg_session_output(s, 0);
        assert_int_equal(y->dims[0], ns[k]);
        for (int64_t i = 0; i < ns[k] * 2; i++)
            assert_true(((float *)y->data)[i] == 2 * x[i]);
    }
    /* N must bind to one value across inputs */
    struct vg_tensor t1 = {.dtype = VG_DT_FLOAT, .rank = 2, .dims = {1, 2}, .data = x};
    struct vg_tensor t4 = {.dtype = VG_DT_FLOAT, .rank = 2, .dims = {4, 2}, .data = x};
    assert_int_equal(vg_session_set_input(s, 0, &t1, &err), 0);
    assert_int_equal(vg_session_set_input(s, 1, &t4, &err), 0);
    assert_int_equal(vg_session_run(s, &err), -VG_ESHAPE);
    assert_non_null(strstr(err.msg, "'N'"));
    /* fixed dims and dtypes are checked when binding */
    struct vg_tensor bad = {.dtype = VG_DT_FLOAT, .rank = 2, .dims = {1, 3}, .data = x};
    assert_int_equal(vg_session_set_input(s, 0, &bad, &err), -VG_ESHAPE);
    bad.dtype = VG_DT_DOUBLE;
    bad.dims[1] = 2;
    assert_int_equal(vg_session_set_input(s, 0, &bad, &err), -VG_ETYPE);
    assert_non_null(strstr(err.msg, "FP32"));
    bad.dtype = VG_DT_FLOAT;
    bad.rank = 1;
    assert_int_equal(vg_session_set_input(s, 0, &bad, &err), -VG_ESHAPE);
    /* an unbound input is an error, not a crash */
    struct vg_session *s2 = vg_session_new(m);
    assert_int_equal(vg_session_run(s2, &err), -VG_EINVAL);
    assert_non_null(strstr(err.msg, "not bound"));
    vg_session_free(s2);
    vg_session_free(s);
    vg_model_free(m);
}

static void test_symbolic_feature_dim(void **state)
{
    (void)state;
    /* x[N, F] with F symbolic: the probe cannot guess F, so the model loads and a wrong F is a
       shape error when planning that run */
    struct mb b;
    mb_init(&b, 13);
    static const char *in[] = {"x", "W", NULL}, *out[] = {"y", NULL};
    int64_t dx[2] = {-1, -1}, dw[2] = {3, 2}, dy[2] = {-1, 2};
    float w[6] = {1, 0, 0, 1, 1, 1};
    mb_input(&b, "x", FLOAT_T, 2, dx);
    b.dims[0][1].dim_param = "F";
    mb_init_float(&b, "W", 2, dw, w, 6);
    mb_output(&b, "y", FLOAT_T, 2, dy);
    mb_node(&b, "MatMul", in, out);
    struct vg_model *m;
    struct vg_error err = {0};
    assert_int_equal(load(&b, &m, &err), 0);
    mb_release(&b);
    struct vg_session *s = vg_session_new(m);
    float x[4] = {1, 2, 3, 4};
    struct vg_tensor t3 = {.dtype = VG_DT_FLOAT, .rank = 2, .dims = {1, 3}, .data = x};
    assert_int_equal(vg_session_set_input(s, 0, &t3, &err), 0);
    assert_int_equal(vg_session_run(s, &err), 0);
    const float *y = vg_session_output(s, 0)->data;
    assert_true(y[0] == 4 && y[1] == 5);
    struct vg_tensor t4 = {.dtype = VG_DT_FLOAT, .rank = 2, .dims = {1, 4}, .data = x};
    assert_int_equal(vg_session_set_input(s, 0, &t4, &err), 0);
    assert_int_equal(vg_session_run(s, &err), -VG_ESHAPE);
    assert_non_null(strstr(err.msg, "MatMul"));
    vg_session_free(s);
    vg_model_free(m);
}

static void test_constant_folding(void **state)
{
    (void)state;
    /* c = w1 + w2 (initializers only) folds at load; y = x * c runs */
    static const char *i0[] = {"w1", "w2", NULL}, *o0[] = {"c", NULL};
    static const char *i1[] = {"x", "c", NULL}, *o1[] = {"y", NULL};
    int64_t d[1] = {3};
    float w1[3] = {1, 2, 3}, w2[3] = {10, 20, 30};
    struct mb b;
    mb_init(&b, 13);
    mb_input(&b, "x", FLOAT_T, 1, d);
    mb_init_float(&b, "w1", 1, d, w1, 3);
    mb_init_float(&b, "w2", 1, d, w2, 3);
    mb_output(&b, "y", FLOAT_T, 1, d);
    mb_node(&b, "Add", i0, o0);
    mb_node(&b, "Mul", i1, o1);
    struct vg_model *m;
    struct vg_error err = {0};
    assert_int_equal(load(&b, &m, &err), 0);
    mb_release(&b);
    assert_int_equal(vg_model_n_nodes(m), 2);
    assert_int_equal(vg_model_n_exec_nodes(m), 1);
    struct vg_session *s = vg_session_new(m);
    float x[3] = {1, 2, 3};
    struct vg_tensor tx = {.dtype = VG_DT_FLOAT, .rank = 1, .dims = {3}, .data = x};
    assert_int_equal(vg_session_set_input(s, 0, &tx, &err), 0);
    assert_int_equal(vg_session_run(s, &err), 0);
    const float *y = vg_session_output(s, 0)->data;
    assert_true(y[0] == 11 && y[1] == 44 && y[2] == 99);
    vg_session_free(s);
    vg_model_free(m);
}

static void test_value_dependent_shape(void **state)
{
    (void)state;
    /* Reshape whose target shape is a graph input: the plan reads the input's values */
    static const char *in[] = {"x", "shape", NULL}, *out[] = {"y", NULL};
    int64_t dx[1] = {6}, ds[1] = {2};
    struct mb b;
    mb_init(&b, 14);
    mb_input(&b, "x", FLOAT_T, 1, dx);
    mb_input(&b, "shape", INT64_T, 1, ds);
    mb_output(&b, "y", FLOAT_T, -1, NULL);
    mb_node(&b, "Reshape", in, out);
    struct vg_model *m;
    struct vg_error err = {0};
    assert_int_equal(load(&b, &m, &err), 0);
    mb_release(&b);
    struct vg_session *s = vg_session_new(m);
    float x[6] = {0, 1, 2, 3, 4, 5};
    int64_t shapes[3][2] = {{2, 3}, {3, 2}, {6, -1}};
    for (int k = 0; k < 3; k++) {
        struct vg_tensor tx = {.dtype = VG_DT_FLOAT, .rank = 1, .dims = {6}, .data = x};
        struct vg_tensor ts = {.dtype = VG_DT_INT64, .rank = 1, .dims = {2}, .data = shapes[k]};
        assert_int_equal(vg_session_set_input(s, 0, &tx, &err), 0);
        assert_int_equal(vg_session_set_input(s, 1, &ts, &err), 0);
        assert_int_equal(vg_session_run(s, &err), 0);
        const struct vg_tensor *y = vg_session_output(s, 0);
        assert_int_equal(y->rank, 2);
        assert_int_equal(y->dims[0], shapes[k][0]);
        assert_int_equal(y->dims[1], k == 2 ? 1 : shapes[k][1]);
        for (int i = 0; i < 6; i++)
            assert_true(((float *)y->data)[i] == x[i]);
    }
    /* an impossible target is a shape error at run time, with the node named */
    int64_t badshape[2] = {4, 4};
    struct vg_tensor tx = {.dtype = VG_DT_FLOAT, .rank = 1, .dims = {6}, .data = x};
    struct vg_tensor ts = {.dtype = VG_DT_INT64, .rank = 1, .dims = {2}, .data = badshape};
    assert_int_equal(vg_session_set_input(s, 0, &tx, &err), 0);
    assert_int_equal(vg_session_set_input(s, 1, &ts, &err), 0);
    assert_int_equal(vg_session_run(s, &err), -VG_ESHAPE);
    assert_non_null(strstr(err.msg, "Reshape"));
    vg_session_free(s);
    vg_model_free(m);
}

static void test_shape_chain_static(void **state)
{
    (void)state;
    /* y = Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [6])): the exporters' flatten
       pattern. The chain is evaluated while planning, so the plan is static and uses the arena
       (the dynamic fallback would not). */
    static const char *i0[] = {"x", NULL}, *o0[] = {"s", NULL};
    static const char *i1[] = {"s", "zero", NULL}, *o1[] = {"n", NULL};
    static const char *i2[] = {"n", "axes", NULL}, *o2[] = {"n1", NULL};
    static const char *i3[] = {"n1", "six", NULL}, *o3[] = {"shape", NULL};
    static const char *i4[] = {"x", "shape", NULL}, *o4[] = {"y", NULL};
    int64_t dx[3] = {-1, 2, 3}, dy[2] = {-1, 6}, d1[1] = {1};
    int64_t zero = 0, axes = 0, six = 6;
    struct mb b;
    mb_init(&b, 13);
    mb_input(&b, "x", FLOAT_T, 3, dx);
    mb_init_int64(&b, "zero", 0, NULL, &zero, 1);
    mb_init_int64(&b, "axes", 1, d1, &axes, 1);
    mb_init_int64(&b, "six", 1, d1, &six, 1);
    mb_output(&b, "y", FLOAT_T, 2, dy);
    mb_node(&b, "Shape", i0, o0);
    Onnx__NodeProto *g = mb_node(&b, "Gather", i1, o1);
    mb_attr_int(&b, g, "axis", 0);
    mb_node(&b, "Unsqueeze", i2, o2);
    Onnx__NodeProto *c = mb_node(&b, "Concat", i3, o3);
    mb_attr_int(&b, c, "axis", 0);
    mb_node(&b, "Reshape", i4, o4);
    struct vg_model *m;
    struct vg_error err = {0};
    assert_int_equal(load(&b, &m, &err), 0);
    mb_release(&b);
    struct vg_session *s = vg_session_new(m);
    float x[5 * 6];
    for (int i = 0; i < 30; i++)
        x[i] = (float)i;
    for (int64_t n = 1; n <= 5; n += 4) {
        struct vg_tensor tx = {.dtype = VG_DT_FLOAT, .rank = 3, .dims = {n, 2, 3}, .data = x};
        assert_int_equal(vg_session_set_input(s, 0, &tx, &err), 0);
        assert_int_equal(vg_session_run(s, &err), 0);
        const struct vg_tensor *y = vg_session_output(s, 0);
        assert_int_equal(y->rank, 2);
        assert_int_equal(y->dims[0], n);
        assert_int_equal(y->dims[1], 6);
        for (int64_t i = 0; i < n * 6; i++)
            assert_true(((float *)y->data)[i] == x[i]);
        assert_true(vg_session_arena_bytes(s) > 0);
    }
    vg_session_free(s);
    vg_model_free(m);
}

static void test_external_data(void **state)
{
    (void)state;
    char dir[] = "/tmp/vg_ext_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    float w[3] = {0.5f, -1.5f, 2.0f};
    snprintf(path, sizeof(path), "%s/weights.bin", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    float pad = 0;
    fwrite(&pad, sizeof(pad), 1, f); /* data starts at offset 4 */
    fwrite(w, sizeof(float), 3, f);
    fclose(f);

    static const char *in[] = {"x", "W", NULL}, *out[] = {"y", NULL};
    int64_t d[1] = {3};
    Onnx__StringStringEntryProto kv[3], *kvp[3];
    const char *locs[2] = {"weights.bin", "../etc/passwd"};
    for (int variant = 0; variant < 2; variant++) {
        struct mb b;
        mb_init(&b, 13);
        mb_input(&b, "x", FLOAT_T, 1, d);
        mb_init_float(&b, "W", 1, d, NULL, 0);
        Onnx__TensorProto *t = &b.inits[0];
        const char *keys[3] = {"location", "offset", "length"};
        const char *vals[3] = {locs[variant], "4", "12"};
        for (int i = 0; i < 3; i++) {
            onnx__string_string_entry_proto__init(&kv[i]);
            kv[i].key = (char *)keys[i];
            kv[i].value = (char *)vals[i];
            kvp[i] = &kv[i];
        }
        t->n_external_data = 3;
        t->external_data = kvp;
        t->has_data_location = 1;
        t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
        mb_output(&b, "y", FLOAT_T, 1, d);
        mb_node(&b, "Add", in, out);
        size_t len;
        unsigned char *bytes = mb_pack(&b, &len);
        mb_release(&b);
        snprintf(path, sizeof(path), "%s/model.onnx", dir);
        f = fopen(path, "wb");
        fwrite(bytes, 1, len, f);
        fclose(f);
        free(bytes);
        struct vg_model *m = NULL;
        struct vg_error err = {0};
        int rc = vg_engine_load_file(path, &m, &err);
        if (variant == 1) {
            assert_int_equal(rc, -VG_EINVAL);
            assert_non_null(strstr(err.msg, "relative path"));
            continue;
        }
        assert_int_equal(rc, 0);
        struct vg_session *s = vg_session_new(m);
        float x[3] = {1, 1, 1};
        struct vg_tensor tx = {.dtype = VG_DT_FLOAT, .rank = 1, .dims = {3}, .data = x};
        assert_int_equal(vg_session_set_input(s, 0, &tx, &err), 0);
        assert_int_equal(vg_session_run(s, &err), 0);
        const float *y = vg_session_output(s, 0)->data;
        assert_true(y[0] == 1.5f && y[1] == -0.5f && y[2] == 3.0f);
        vg_session_free(s);
        vg_model_free(m);
        /* from memory, external data is refused */
        bytes = NULL;
        unsigned char *file;
        size_t flen;
        assert_int_equal(vg__read_file(path, 1 << 20, &file, &flen, &err), 0);
        assert_int_equal(vg_engine_load_bytes(file, flen, NULL, &m, &err), -VG_EINVAL);
        assert_non_null(strstr(err.msg, "loaded from memory"));
        free(file);
    }
    snprintf(path, sizeof(path), "rm -rf %s", dir);
    assert_int_equal(system(path), 0);
}

struct thread_arg {
    const struct vg_model *m;
    int seed, ok;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    struct vg_session *s = vg_session_new(a->m);
    struct vg_error err;
    a->ok = 1;
    for (int iter = 0; iter < 200 && a->ok; iter++) {
        int64_t n = 1 + (a->seed * 7 + iter) % 50;
        float x[50 * 16];
        for (int64_t i = 0; i < n * 16; i++)
            x[i] = (float)((i + a->seed) % 9) - 4.0f;
        struct vg_tensor tx = {.dtype = VG_DT_FLOAT, .rank = 2, .dims = {n, 16}, .data = x};
        if (vg_session_set_input(s, 0, &tx, &err) || vg_session_run(s, &err)) {
            a->ok = 0;
            break;
        }
        const float *y = vg_session_output(s, 0)->data;
        for (int64_t i = 0; i < n * 16; i++)
            if (y[i] != (x[i] > 0 ? x[i] : 0))
                a->ok = 0;
    }
    vg_session_free(s);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct mb b;
    build_relu_chain(&b, 16);
    struct vg_model *m;
    struct vg_error err = {0};
    assert_int_equal(load(&b, &m, &err), 0);
    mb_release(&b);
    pthread_t t[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){m, i, 0};
        assert_int_equal(pthread_create(&t[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_true(args[i].ok);
    }
    vg_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_protobuf),    cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bad_models),      cmocka_unit_test(test_arena_reuse),
        cmocka_unit_test(test_lifetimes),       cmocka_unit_test(test_symbolic_dims),
        cmocka_unit_test(test_constant_folding),
        cmocka_unit_test(test_symbolic_feature_dim), cmocka_unit_test(test_value_dependent_shape),
        cmocka_unit_test(test_shape_chain_static),
        cmocka_unit_test(test_external_data),   cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
