/*
 * Unit tests for the numpy (multidirectional) broadcasting helpers declared in src/engine/op.h:
 * vg_broadcast_shape (output shape of n inputs, VG_ESHAPE with both shapes in the message when
 * they cannot broadcast) and vg_broadcast_strides (element strides aligned to the output, 0 on
 * broadcast axes). Table-driven: each case lists its input shapes and the expected result.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "op.h"

#define NONE (-2) /* ends a dims list; -1 would be a valid-looking dim in a bad test */
#define MAXIN 4

struct shape_case {
    const char *what;
    int n;                              /* number of inputs */
    int64_t in[MAXIN][VG_MAX_RANK + 1]; /* dims, ended by NONE; {NONE} is a scalar */
    int ok;                             /* expected to broadcast */
    int64_t out[VG_MAX_RANK + 1];       /* expected output dims, ended by NONE */
};

static const struct shape_case shape_cases[] = {
    {"equal shapes", 2, {{2, 3, 4, NONE}, {2, 3, 4, NONE}}, 1, {2, 3, 4, NONE}},
    {"two scalars", 2, {{NONE}, {NONE}}, 1, {NONE}},
    {"scalar and tensor", 2, {{NONE}, {5, 6, NONE}}, 1, {5, 6, NONE}},
    {"tensor and scalar", 2, {{5, 6, NONE}, {NONE}}, 1, {5, 6, NONE}},
    {"rank promotion", 2, {{2, 3, 4, 5, NONE}, {5, NONE}}, 1, {2, 3, 4, 5, NONE}},
    {"rank promotion, inner 2-d", 2, {{2, 3, 4, 5, NONE}, {4, 5, NONE}}, 1, {2, 3, 4, 5, NONE}},
    {"both sides stretch", 2, {{4, 1, NONE}, {1, 3, NONE}}, 1, {4, 3, NONE}},
    {"ones in the middle", 2, {{2, 1, 4, NONE}, {3, 1, NONE}}, 1, {2, 3, 4, NONE}},
    {"one-element vs vector", 2, {{1, NONE}, {7, NONE}}, 1, {7, NONE}},
    {"1x1 vs scalar", 2, {{1, 1, NONE}, {NONE}}, 1, {1, 1, NONE}},
    {"empty dim with 1", 2, {{0, 3, NONE}, {1, 3, NONE}}, 1, {0, 3, NONE}},
    {"empty dim with scalar", 2, {{0, NONE}, {NONE}}, 1, {0, NONE}},
    {"5-d", 2, {{2, 1, 3, 1, 4, NONE}, {5, 1, NONE}}, 1, {2, 1, 3, 5, 4, NONE}},
    {"three inputs", 3, {{3, 1, NONE}, {1, 4, NONE}, {2, 1, 1, NONE}}, 1, {2, 3, 4, NONE}},
    {"one input", 1, {{6, 7, NONE}}, 1, {6, 7, NONE}},
    {"max rank",
     2,
     {{1, 2, 1, 2, 1, 2, 1, 2, NONE}, {2, 1, 2, 1, 2, 1, 2, 1, NONE}},
     1,
     {2, 2, 2, 2, 2, 2, 2, 2, NONE}},
    {"incompatible last dim", 2, {{2, 3, NONE}, {4, NONE}}, 0, {NONE}},
    {"incompatible inner dim", 2, {{2, 3, 4, NONE}, {2, 4, NONE}}, 0, {NONE}},
    {"empty vs 3", 2, {{0, NONE}, {3, NONE}}, 0, {NONE}},
    {"third input incompatible", 3, {{3, 1, NONE}, {1, 4, NONE}, {5, NONE}}, 0, {NONE}},
};

static void set_dims(struct vg_tensor *t, const int64_t *dims)
{
    memset(t, 0, sizeof(*t));
    t->dtype = VG_DT_FLOAT;
    while (dims[t->rank] != NONE) {
        t->dims[t->rank] = dims[t->rank];
        t->rank++;
    }
}

/* A context as the core builds it, enough for vg_kerr to name the node. */
struct fake_ctx {
    struct vg_node node;
    struct vg_error err;
    struct vg_kctx c;
};

static void fake_ctx_init(struct fake_ctx *f)
{
    memset(f, 0, sizeof(*f));
    f->node.name = "bcast_node";
    f->node.op_type = "Add";
    f->node.domain = "";
    f->node.opset = 14;
    f->c.phase = VG_PHASE_INFER;
    f->c.node = &f->node;
    f->c.err = &f->err;
}

static void test_broadcast_shape_table(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(shape_cases) / sizeof(shape_cases[0]); k++) {
        const struct shape_case *sc = &shape_cases[k];
        struct vg_tensor in[MAXIN], out, want;
        const struct vg_tensor *ptrs[MAXIN];
        struct fake_ctx f;

        print_message("case: %s\n", sc->what);
        fake_ctx_init(&f);
        for (int i = 0; i < sc->n; i++) {
            set_dims(&in[i], sc->in[i]);
            ptrs[i] = &in[i];
        }
        memset(&out, 0, sizeof(out));
        int rc = vg_broadcast_shape(&f.c, sc->n, ptrs, &out);
        if (!sc->ok) {
            assert_int_equal(rc, -VG_ESHAPE);
            assert_int_equal(f.err.code, VG_ESHAPE);
            /* The message names the node and shows the offending shapes. */
            assert_non_null(strstr(f.err.msg, "bcast_node"));
            assert_non_null(strchr(f.err.msg, '['));
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(f.err.code, 0);
        set_dims(&want, sc->out);
        assert_int_equal(out.rank, want.rank);
        for (int i = 0; i < want.rank; i++)
            assert_int_equal(out.dims[i], want.dims[i]);
    }
}

struct stride_case {
    const char *what;
    int64_t in[VG_MAX_RANK + 1];
    int64_t out[VG_MAX_RANK + 1];
    int64_t strides[VG_MAX_RANK]; /* expected, out's rank entries */
};

static const struct stride_case stride_cases[] = {
    {"same shape", {2, 3, 4, NONE}, {2, 3, 4, NONE}, {12, 4, 1}},
    {"scalar", {NONE}, {2, 3, NONE}, {0, 0}},
    {"one-element vector", {1, NONE}, {2, 3, NONE}, {0, 0}},
    {"row vector", {4, NONE}, {3, 4, NONE}, {0, 1}},
    {"column", {3, 1, NONE}, {3, 4, NONE}, {1, 0}},
    {"middle broadcast", {2, 1, 4, NONE}, {2, 3, 4, NONE}, {4, 0, 1}},
    {"rank promotion", {3, 1, NONE}, {2, 3, 4, NONE}, {0, 1, 0}},
    {"5-d", {5, 1, NONE}, {2, 1, 3, 5, 4, NONE}, {0, 0, 0, 1, 0}},
    {"5-d full", {2, 1, 3, 1, 4, NONE}, {2, 1, 3, 5, 4, NONE}, {12, 12, 4, 0, 1}},
};

static void test_broadcast_strides_table(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(stride_cases) / sizeof(stride_cases[0]); k++) {
        const struct stride_case *sc = &stride_cases[k];
        struct vg_tensor in, out;
        int64_t strides[VG_MAX_RANK];

        print_message("case: %s\n", sc->what);
        set_dims(&in, sc->in);
        set_dims(&out, sc->out);
        vg_broadcast_strides(&in, &out, strides);
        for (int i = 0; i < out.rank; i++) {
            /* Size-1 output axes are never stepped, so any stride is correct there. */
            if (out.dims[i] == 1)
                continue;
            assert_int_equal(strides[i], sc->strides[i]);
        }
    }
}

/* Walking the output with the strides must visit the input elements numpy would. */
static void test_broadcast_strides_walk(void **state)
{
    (void)state;
    struct vg_tensor in, out;
    int64_t strides[VG_MAX_RANK], idx[VG_MAX_RANK] = {0};
    static const int64_t in_dims[] = {3, 1, 2, NONE}, out_dims[] = {2, 3, 4, 2, NONE};

    set_dims(&in, in_dims);
    set_dims(&out, out_dims);
    vg_broadcast_strides(&in, &out, strides);
    for (int64_t n = 0; n < 2 * 3 * 4 * 2; n++) {
        int64_t off = 0;
        for (int i = 0; i < out.rank; i++)
            off += idx[i] * strides[i];
        /* in[i1][0][i3] lives at i1 * 2 + i3 */
        assert_int_equal(off, idx[1] * 2 + idx[3]);
        for (int i = out.rank - 1; i >= 0; i--) {
            if (++idx[i] < out.dims[i])
                break;
            idx[i] = 0;
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broadcast_shape_table),
        cmocka_unit_test(test_broadcast_strides_table),
        cmocka_unit_test(test_broadcast_strides_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
