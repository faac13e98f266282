/*
 * Operator interface (internal to the engine).
 *
 * Every operator family lives in one file under src/engine/ops/ and exports one const table of
 * `struct vg_op`, terminated by an all-zero entry, which src/engine/registry.c lists. The core
 * never switches on an operator's name: it finds the entry whose domain and op_type match and
 * whose [since_version, until_version] range contains the opset the model imports for that domain.
 *
 * An operator is called in three phases, all through one context struct, `struct vg_kctx`:
 *
 *  1. init (load time, once per node): parse and validate attributes, check input dtypes, set
 *     every present output's dtype (out[i]->dtype), and optionally allocate `c->state`
 *     (released by `release`). In this phase in[i]->dtype is set for present inputs; in[i]->data
 *     is non-NULL only when the input is a constant (initializer or folded), in which case rank,
 *     dims and data are all valid. Outputs with map_keys (ZipMap) set out[i]->map_keys here, to
 *     memory owned by the state. The state is immutable afterwards and shared by all threads.
 *     Anything that can be checked here must be: after a successful load the model must never fail
 *     at run time for something load could have seen.
 *
 *  2. infer (plan time, once per input shape): in[i] has dtype, rank and dims; in[i]->data is
 *     NULL. To read an input's values (a shape, axes, repeats...), call vg_kctx_value(c, i): it
 *     returns the tensor with data when the value is known at planning time, else NULL, in which
 *     case return VG_EDYNAMIC (negative) and the core falls back to executing node by node. Set
 *     out[i]->rank and out[i]->dims for every present output. Request per-node scratch memory by
 *     setting c->scratch_bytes. Return shape errors with vg_kerr(c, VG_ESHAPE, ...).
 *
 *  3. run (every run): in[i] and out[i] are complete, out[i]->data points to memory of the inferred
 *     size (uninitialised), c->scratch to c->scratch_bytes bytes (64-byte aligned). Must not
 *     allocate with malloc; strings for string outputs come from vg_kctx_strdup(). Return 0, or an
 *     error for data-dependent failures only (an index out of range, ...).
 *
 * Absent optional inputs/outputs (empty name in the model, or fewer listed) are NULL in in[] /
 * out[]; n_in / n_out is the count the node lists.
 *
 * Load-time fusion (optional): an operator's init may set c->absorb to a hook of type
 * vg_absorb_fn for its node (the hook is per node, so init offers it only when fusion is
 * possible at all, e.g. Conv with constant weights). After init, constant folding and before
 * dead-node removal, the core offers such a node P its consumer Q when
 *  - P has exactly one present output, that value is not a graph output and exactly one input
 *    slot of one remaining node (Q) reads it;
 *  - Q has exactly one present output, of the same dtype.
 * The core calls P's hook with c set up as in P's init (in[] carry data for constant inputs,
 * c->state is P's state, which the hook may change or replace) plus Q and Q's inputs (`next_in`,
 * in Q's input order: dtype always, rank/dims/data when the input is a constant, NULL when
 * absent). It returns 1 when P now computes Q's output from P's own inputs (e.g. Conv folding a
 * following BatchNormalization or applying a Relu), 0 to decline (nothing changed), or a negative
 * error (the load fails). On 1 the core makes P write Q's output value, drops Q, and offers P its
 * new consumer again, so chains (Conv -> BatchNormalization -> Relu) fuse one step at a time.
 * One diamond is offered too, for x * f(x) patterns such as SiLU (Sigmoid then Mul): when P's
 * output v has exactly two readers A and B, A reads v once and has one present output read only by
 * B (once), and B reads v once, the core calls the hook with next = B and c->absorb_via = A
 * (c->absorb_via_in = A's inputs, like next_in); on 1 both A and B are dropped. Without a diamond
 * c->absorb_via is NULL.
 * Only the operator names the op types it absorbs; the core never does. The executed node count
 * (vg_model_n_exec_nodes) shows the result. (The hook lives in the node rather than in struct
 * vg_op so that the operator tables keep their short positional initializers.)
 */
#ifndef VIGIL_ENGINE_OP_H
#define VIGIL_ENGINE_OP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "vigil/engine.h"

/* AttributeProto.AttributeType numbering. */
enum vg_attr_type {
    VG_ATTR_FLOAT = 1,
    VG_ATTR_INT = 2,
    VG_ATTR_STRING = 3,
    VG_ATTR_TENSOR = 4,
    VG_ATTR_GRAPH = 5,
    VG_ATTR_FLOATS = 6,
    VG_ATTR_INTS = 7,
    VG_ATTR_STRINGS = 8,
};

struct vg_attr {
    const char *name;
    enum vg_attr_type type;
    float f;
    int64_t i;
    const char *s;             /* NUL-terminated copy */
    size_t n;                  /* element count for FLOATS / INTS / STRINGS */
    const float *floats;
    const int64_t *ints;
    const char *const *strings;
    const struct vg_tensor *t; /* TENSOR */
};

struct vg_op;
struct vg_kctx;

/* A node of the loaded graph. Immutable after load. */
struct vg_node {
    const char *name;     /* may be "" */
    const char *op_type;
    const char *domain;   /* "" for ai.onnx */
    int64_t opset;        /* opset version the model imports for `domain` */
    int n_in, n_out;
    int *in, *out;        /* value ids; -1 for an absent optional input/output */
    int n_attrs;
    struct vg_attr *attrs;
    const struct vg_op *op;
    void *state;          /* from op->init; released with op->release */
    int (*absorb)(struct vg_kctx *c, const struct vg_node *next,
                  const struct vg_tensor *const *next_in); /* from init (c->absorb), or NULL */
};

enum vg_phase { VG_PHASE_INIT, VG_PHASE_INFER, VG_PHASE_RUN };

struct vg_strpool;

struct vg_kctx {
    enum vg_phase phase;
    const struct vg_node *node;
    void *state; /* init sets it; read-only in infer and run */
    int n_in, n_out;
    struct vg_tensor *const *in; /* treat as const in infer and run */
    struct vg_tensor *const *out;
    size_t scratch_bytes; /* infer may set it */
    int (*absorb)(struct vg_kctx *c, const struct vg_node *next,
                  const struct vg_tensor *const *next_in); /* init may set it: fusion hook */
    const struct vg_node *absorb_via;                /* fusion hook: the diamond's middle node */
    const struct vg_tensor *const *absorb_via_in;    /* and its inputs */
    void *scratch;        /* run: c->scratch_bytes bytes, 64-byte aligned */
    struct vg_error *err;
    /* core-private */
    struct vg_strpool *strings;
    const struct vg_tensor *const *values; /* infer: known values per input, or NULL */
    int *used_input_data;                  /* infer: set when a value read came from input data */
    const unsigned char *value_from_input; /* infer: per input, value derives from input data */
};

typedef int (*vg_op_fn)(struct vg_kctx *c);
/* Load-time fusion hook (see the header comment): 1 absorbed, 0 declined, < 0 error. */
typedef int (*vg_absorb_fn)(struct vg_kctx *c, const struct vg_node *next,
                            const struct vg_tensor *const *next_in);

enum {
    /* Output depends only on the input's shape (Shape, Size): evaluable at planning time. */
    VG_OPF_SHAPE_ONLY = 1,
};

struct vg_op {
    const char *domain;  /* "" for ai.onnx, "ai.onnx.ml", "com.microsoft" */
    const char *op_type;
    int since_version;   /* first opset version this entry implements */
    int until_version;   /* last one (inclusive); 0 = up to the newest */
    vg_op_fn init;       /* may be NULL: then every output takes in[0]'s dtype */
    vg_op_fn infer;      /* required */
    vg_op_fn run;        /* required */
    void (*release)(void *state); /* may be NULL */
    unsigned flags;      /* VG_OPF_* */
    int min_inputs;      /* inputs 0..min_inputs-1 must be present: the core checks before init */
};

/* ---- Helpers for operator files (implemented in src/engine/kctx.c, tensor.c) ----------------- */

/*
 * Records an error for this node: the message is prefixed with the node's name, op_type, domain
 * and opset. Returns -code, so `return vg_kerr(c, VG_ESHAPE, "...", ...);` is the idiom.
 */
int vg_kerr(struct vg_kctx *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * init: fails with VG_EGRAPH unless inputs 0..n-1 and output 0 are present. The core already checks
 * op->min_inputs; this is for counts it cannot know (variadic inputs, opset-dependent arity).
 */
int vg_kctx_need_inputs(struct vg_kctx *c, int n);

/* infer: value of input i if known at planning time (constant or computed), else NULL. */
const struct vg_tensor *vg_kctx_value(struct vg_kctx *c, int i);

/* run: a copy of s[0..len) NUL-terminated, valid as long as the outputs of this run. NULL on OOM. */
const char *vg_kctx_strdup(struct vg_kctx *c, const char *s, size_t len);

/* Attributes (absent -> default / 0 count and NULL). */
const struct vg_attr *vg_attr_find(const struct vg_node *n, const char *name);
int64_t vg_attr_i(const struct vg_node *n, const char *name, int64_t dflt);
float vg_attr_f(const struct vg_node *n, const char *name, float dflt);
const char *vg_attr_s(const struct vg_node *n, const char *name, const char *dflt);
size_t vg_attr_ints(const struct vg_node *n, const char *name, const int64_t **v);
size_t vg_attr_floats(const struct vg_node *n, const char *name, const float **v);
size_t vg_attr_strings(const struct vg_node *n, const char *name, const char *const **v);
const struct vg_tensor *vg_attr_t(const struct vg_node *n, const char *name);
/* Typed attribute `name` of c's node into *v (for init): absent gives dflt; an attribute of another
 * type is a load error (VG_EINVAL through vg_kerr). */
int vg_kattr_i(struct vg_kctx *c, const char *name, int64_t dflt, int64_t *v);
int vg_kattr_f(struct vg_kctx *c, const char *name, float dflt, float *v);
int vg_kattr_s(struct vg_kctx *c, const char *name, const char *dflt, const char **v);
/* An INTS attribute into v[0..*n) (at most cap values, else a load error); *n = 0 when absent.
 * *present (when not NULL) tells whether the node has it. */
int vg_kattr_ints(struct vg_kctx *c, const char *name, int64_t *v, int cap, int *n, int *present);
/* auto_pad of the convolution and pooling operators (Conv, ConvTranspose, MaxPool, AveragePool,
 * QLinearConv, ConvInteger, QLinearAveragePool). */
enum vg_auto_pad {
    VG_AUTO_PAD_NOTSET,
    VG_AUTO_PAD_SAME_UPPER,
    VG_AUTO_PAD_SAME_LOWER,
    VG_AUTO_PAD_VALID,
};
/* The node's auto_pad attribute (absent: NOTSET) into *ap; any other string is a load error
 * (VG_EGRAPH through vg_kerr) naming it. */
int vg_kattr_auto_pad(struct vg_kctx *c, enum vg_auto_pad *ap);
/* SAME_UPPER / SAME_LOWER on one spatial axis of length `in`, for a (dilated) kernel extent `ext`
 * and stride `s`: out = ceil(in / s), and the padding that needs, the odd unit at the end (UPPER)
 * or at the beginning (LOWER). */
static inline void vg_same_pads(enum vg_auto_pad ap, int64_t in, int64_t ext, int64_t s,
                                int64_t *out, int64_t *pb, int64_t *pe)
{
    *out = (in + s - 1) / s;
    int64_t total = (*out - 1) * s + ext - in;
    if (total < 0)
        total = 0;
    *pb = ap == VG_AUTO_PAD_SAME_UPPER ? total / 2 : total - total / 2;
    *pe = total - *pb;
}
/* A 0-D or 1-D int32/int64 tensor of at most `cap` values into v[0..*n); `what` names it in the
 * errors (VG_ETYPE, VG_ESHAPE through vg_kerr). */
int vg_kread_ints(struct vg_kctx *c, const struct vg_tensor *t, const char *what, int64_t *v,
                  int cap, int *n);

/* Saturating double -> integer: NaN -> 0, out of range -> the type's limit, else truncation
 * toward zero (a plain C cast of an out-of-range double is undefined). */
int64_t vg_sat_i64(double v);
int32_t vg_sat_i32(double v);
int8_t vg_sat_i8(double v);
uint8_t vg_sat_u8(double v);

/*
 * Multidirectional (numpy) broadcasting of n shapes into out->rank/out->dims.
 * Returns 0, or -VG_ESHAPE via vg_kerr when the shapes cannot broadcast.
 */
int vg_broadcast_shape(struct vg_kctx *c, int n, const struct vg_tensor *const *shapes,
                       struct vg_tensor *out);
/*
 * numpy matmul of A [..., M, K] and B [..., K, N] (rank-1 operands promoted as numpy does): the
 * matrix sizes, the broadcast batch dims with each input's element stride per batch dim (0 where
 * it broadcasts), the batch count and how many matrices each input holds. Checks ranks, K and
 * batch broadcasting (VG_ESHAPE through vg_kerr); size limits are the caller's. c may be NULL at
 * run time, when the shapes were checked at planning: errors are then returned without message.
 */
struct vg_mm_geom {
    int64_t m, k, n;
    int batch_rank;
    int64_t batch[VG_MAX_RANK];
    int64_t a_stride[VG_MAX_RANK];
    int64_t b_stride[VG_MAX_RANK];
    int64_t n_batch;
    int64_t a_batches, b_batches;
};
int vg_mm_geometry(struct vg_kctx *c, const struct vg_tensor *a, const struct vg_tensor *b,
                   struct vg_mm_geom *g);
/* Steps the batch odometer idx[0..g->batch_rank) of a vg_mm_geom walk, moving *a_off and *b_off
 * (element offsets of the current A and B matrices) with it. */
static inline void vg_mm_next_batch(const struct vg_mm_geom *g, int64_t *idx, int64_t *a_off,
                                    int64_t *b_off)
{
    for (int d = g->batch_rank - 1; d >= 0; d--) {
        *a_off += g->a_stride[d];
        *b_off += g->b_stride[d];
        if (++idx[d] < g->batch[d])
            return;
        *a_off -= g->a_stride[d] * g->batch[d];
        *b_off -= g->b_stride[d] * g->batch[d];
        idx[d] = 0;
    }
}
/*
 * Sets out->rank/dims after checking a shape that came from data or attributes: rank cap, no
 * negative dim, and the byte cap (so a shape tensor cannot ask for an absurd allocation).
 * `dims` may point into out->dims.
 */
int vg_set_out_shape(struct vg_kctx *c, struct vg_tensor *out, int rank, const int64_t *dims);
/*
 * Element strides of `in` (in elements) aligned to `out`'s rank: stride 0 on broadcast axes.
 * `strides` has out->rank entries.
 */
void vg_broadcast_strides(const struct vg_tensor *in, const struct vg_tensor *out,
                          int64_t *strides);
/* Contiguous element strides of t (t->rank entries). */
void vg_contig_strides(const struct vg_tensor *t, int64_t *strides);

/*
 * A binary row kernel writes o[0..n) from a and b, each contiguous (step 1) or one repeated value
 * (step 0). `o` may be `a` (variadic ops fold into their output): element i is read before it is
 * written.
 */
typedef void (*vg_bin_fn)(const void *a, int a_step, const void *b, int b_step, void *o, int64_t n);
/*
 * out = fn(a, b), a and b read through element strides aligned to out's rank (0 on broadcast
 * axes; see vg_broadcast_strides), out contiguous. Short rows are batched through `scratch` when
 * it holds vg_binary_tile_bytes() bytes (NULL/0: plain row walk, same results).
 */
void vg_binary_nd(vg_bin_fn fn, const void *a, size_t a_size, const int64_t *a_strides,
                  const void *b, size_t b_size, const int64_t *b_strides, void *o, size_t o_size,
                  const struct vg_tensor *out, void *scratch, size_t scratch_bytes);
/* Scratch bytes vg_binary_nd can use for this walk (0 when it would not tile). */
size_t vg_binary_tile_bytes(const struct vg_tensor *out, const int64_t *a_strides, size_t a_size,
                            const int64_t *b_strides, size_t b_size);
/*
 * Variadic ops folding inputs of out[0]'s dtype pairwise (Max, Min, Sum, Mean): the infer step
 * (same shapes before opset 8, else multidirectional broadcasting; at most 64 inputs; sets
 * scratch_bytes) and the run step (one input is copied; else in0 fn in1 into out, then out fn
 * in_i for each further input).
 */
int vg_variadic_infer(struct vg_kctx *c);
void vg_variadic_run(struct vg_kctx *c, vg_bin_fn fn);
/* Formats t's dims as "[2,3]" into buf (for error messages). */
void vg_shape_str(const struct vg_tensor *t, char *buf, size_t len);
/* Normalises a possibly negative axis for rank r; returns -1 if out of [-r, r-1]. */
int vg_norm_axis(int64_t axis, int rank);

/* Registry (registry.c): the entry for (domain, op_type) valid at `opset`, or NULL. */
const struct vg_op *vg_op_lookup(const char *domain, const char *op_type, int64_t opset);

/* ---- Operator family tables (one per file in src/engine/ops/) -------------------------------- */

extern const struct vg_op vg_ops_tree[];        /* ops/tree.c: TreeEnsemble* */
extern const struct vg_op vg_ops_ml[];          /* ops/ml.c: Linear*, Scaler, ..., ZipMap */
extern const struct vg_op vg_ops_structure[];   /* ops/structure.c */
extern const struct vg_op vg_ops_elementwise[]; /* ops/elementwise.c: arith, activations, logic */
extern const struct vg_op vg_ops_matrix[];      /* ops/matrix.c: MatMul, Gemm, Softmax family */
extern const struct vg_op vg_ops_reduce[];      /* ops/reduce.c */
extern const struct vg_op vg_ops_conv[];        /* ops/conv.c: Conv, ConvTranspose */
extern const struct vg_op vg_ops_pool[];        /* ops/pooling.c: MaxPool, AveragePool, Global*Pool */
extern const struct vg_op vg_ops_norm[];        /* ops/normalization.c: BatchNormalization, ... */
extern const struct vg_op vg_ops_activation[];  /* ops/activation.c: HardSwish, PRelu, Sum, ... */
extern const struct vg_op vg_ops_layout[];      /* ops/layout.c: Pad, Resize, Split, Tile, ... */
extern const struct vg_op vg_ops_quant[];       /* ops/quant.c: Q/DQ, com.microsoft QLinear* */
extern const struct vg_op vg_ops_qconv[];       /* ops/qconv.c: QLinearConv, MatMulInteger, ... */

#endif
