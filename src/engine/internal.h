/*
 * Engine internals shared by the core files (model.c, plan.c, session.c, kctx.c, proto.c).
 * Operator files include op.h only.
 *
 * Memory ownership inside the engine:
 * - struct vg_model owns one pool (`pool`) holding every name, attribute, constant tensor and the
 *   node arrays; it is released at once by vg_model_free(). Operator states are separate and
 *   released through op->release.
 * - struct vg_session owns its plans (each with its own small pool), one arena (intermediate
 *   tensors and scratch, laid out by the plan), a string pool reset at every run, and a dynamic
 *   pool used only by graphs whose shapes depend on computed values.
 */
#ifndef VIGIL_ENGINE_INTERNAL_H
#define VIGIL_ENGINE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "op.h"
#include "vigil/engine.h"

/* ---- pool.c: chunked bump allocator; allocations never move, freed all at once ------------- */
struct vg_pool_chunk;
struct vg_pool {
    struct vg_pool_chunk *head;
    size_t bytes; /* total allocated by chunks */
};
/* 64-byte aligned, zeroed memory; NULL on OOM. */
void *vg__pool_alloc(struct vg_pool *p, size_t n);
char *vg__pool_strndup(struct vg_pool *p, const char *s, size_t len);
/* Forgets all allocations but keeps the largest chunk for reuse. */
void vg__pool_reset(struct vg_pool *p);
void vg__pool_release(struct vg_pool *p);

/* The string pool handed to operators through vg_kctx_strdup(). */
struct vg_strpool {
    struct vg_pool pool;
};

/* ---- error formatting ---------------------------------------------------------------------- */
int vg__err(struct vg_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to err->msg. */
void vg__err_prefix(struct vg_error *err, const char *prefix);
/* "node 'n' (Op, domain ai.onnx, opset 13)" */
void vg__node_desc(const struct vg_node *n, char *buf, size_t len);

/* ---- proto.c: TensorProto conversion ------------------------------------------------------- */
typedef void *(*vg_alloc_fn)(void *ctx, size_t n);
struct Onnx__TensorProto;
/*
 * Converts a TensorProto into `t`, allocating data (and strings) in ONE block from `alloc`.
 * `base_dir` is where external data lives (NULL forbids it). `what` names the tensor in errors.
 */
int vg__tensor_from_proto(const struct Onnx__TensorProto *tp, const char *base_dir,
                          vg_alloc_fn alloc, void *alloc_ctx, struct vg_tensor *t,
                          struct vg_error *err);
/* Bytes needed for t's data (numel * size), or -1 when it overflows the cap. */
int64_t vg__tensor_bytes(const struct vg_tensor *t);
/* Checks dims are non-negative and the byte size fits VG_MAX_TENSOR_BYTES. */
int vg__check_dims(const struct vg_tensor *t, const char *what, struct vg_error *err);

/* Reads a whole file (at most `cap` bytes) into a malloc'd buffer. */
int vg__read_file(const char *path, size_t cap, unsigned char **out, size_t *len,
                  struct vg_error *err);

/* ---- model.c ------------------------------------------------------------------------------- */
struct vg_value {
    const char *name;
    enum vg_dtype dtype;
    const struct vg_tensor *map_keys; /* ZipMap outputs */
    struct vg_tensor *constant;       /* initializer or folded value, model-owned */
    int producer;                     /* index in model->all_nodes, or -1 */
    int input_index;                  /* graph input index, or -1 */
};

struct vg_model {
    struct vg_pool pool;
    struct vg_strpool strings; /* strings made by constant folding */
    int n_values;
    struct vg_value *values;
    int n_all_nodes;                 /* as loaded, topologically sorted */
    struct vg_node *all_nodes;
    int n_nodes;                     /* executed: not folded, needed for an output */
    const struct vg_node **nodes;
    int n_inputs, n_outputs;
    int *input_ids, *output_ids;
    struct vg_io_info *input_info, *output_info;
    int n_opsets;
    const char **opset_domains;
    int64_t *opset_versions;
    const char *producer;
};

/* ---- plan.c -------------------------------------------------------------------------------- */
struct vg_plan {
    struct vg_pool pool;     /* everything below */
    int n_inputs;
    struct vg_tensor *key;   /* input shapes this plan is for (n_inputs) */
    int value_dependent;     /* shapes depend on input values: rebuild every run */
    int dynamic;             /* shapes depend on computed values: run node by node */
    struct vg_tensor *vals;  /* per value id: dtype, shape; data bound per run */
    int64_t *offsets;        /* per value id: arena offset, or -1 */
    struct vg_kctx *kctx;    /* per executed node */
    int64_t *scratch_off;    /* per executed node, or -1 */
    size_t arena_bytes;
    const void *bound_arena; /* arena base the data pointers were set for */
};

/*
 * Builds the plan for the given input tensors (shape and dtype used; data used, when non-NULL,
 * as known values for shape inference, which then marks the plan value_dependent).
 * On success *out is a new plan (free with vg__plan_free). A plan with `dynamic` set has no
 * layout: run it with vg__run_dynamic.
 */
int vg__plan_build(const struct vg_model *m, const struct vg_tensor *const *inputs,
                   struct vg_plan **out, struct vg_error *err);
void vg__plan_free(struct vg_plan *p);

/*
 * Infers, allocates (from `pool`) and runs one node on tensors that all have data.
 * Used by constant folding and by the dynamic executor. `out` tensors get dtype, shape, data.
 */
int vg__node_exec(const struct vg_node *n, struct vg_tensor *const *in, struct vg_tensor *const *out,
                  struct vg_pool *pool, struct vg_strpool *strings, struct vg_error *err);

/* Operator phase driver: builds a kctx and calls fn (init/infer/run). */
void vg__kctx_setup(struct vg_kctx *c, enum vg_phase ph, const struct vg_node *n,
                    struct vg_tensor *const *in, struct vg_tensor *const *out,
                    struct vg_error *err);

#endif
