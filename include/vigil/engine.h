/*
 * vigil engine: a pure-C ONNX runtime.
 *
 * Ownership and thread-safety rules
 * ---------------------------------
 * - A `struct vg_model` is created by vg_engine_load_*() and freed by vg_model_free(). Once loaded
 *   it is immutable: any number of threads may read it and run it at the same time, each through
 *   its own session. The model must outlive every session made from it.
 * - A `struct vg_session` is the per-thread workspace: execution plans (one per input shape seen,
 *   a small cache), the arena that holds every intermediate tensor, and the outputs of the last
 *   run. A session is used by one thread at a time; it is not locked.
 * - Inputs given to vg_session_set_input() are borrowed, not copied: they must stay valid and
 *   unchanged until vg_session_run() returns.
 * - Outputs returned by vg_session_output() belong to the session. They stay valid until the next
 *   vg_session_run() or vg_session_free() on that session. Copy what must live longer.
 * - Strings in VG_DT_STRING tensors are arrays of `const char *` (NUL-terminated UTF-8). Output
 *   strings point into the model (attribute strings), into the inputs, or into the session's
 *   string pool; all follow the output lifetime rule above.
 * - Every function that can fail returns 0 or a negative VG_E* code. Where a `struct vg_error *`
 *   is passed (it may be NULL), it receives a message naming where the failure happened (the node,
 *   operator, domain and opset for graph errors).
 */
#ifndef VIGIL_ENGINE_H
#define VIGIL_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes (negative when returned). */
enum {
    VG_OK = 0,
    VG_EINVAL = 1,       /* bad argument or bad input data */
    VG_ENOMEM = 2,       /* allocation failed or a size cap was exceeded */
    VG_EIO = 3,          /* file could not be read */
    VG_EPARSE = 4,       /* bytes are not a valid ONNX protobuf */
    VG_EUNSUPPORTED = 5, /* operator, opset, attribute value or data type not supported */
    VG_EGRAPH = 6,       /* malformed graph: undefined input, cycle, duplicate output... */
    VG_ETYPE = 7,        /* data types do not match */
    VG_ESHAPE = 8,       /* shapes do not match */
    VG_ERANGE = 9,       /* value out of range at run time (index, ...) */
    VG_EDYNAMIC = 10,    /* internal: shape needs a value unknown at planning time */
};

/* Element types, numbered as ONNX TensorProto.DataType. Bool is stored as one byte, 0 or 1. */
enum vg_dtype {
    VG_DT_UNDEFINED = 0,
    VG_DT_FLOAT = 1,
    VG_DT_UINT8 = 2,
    VG_DT_INT8 = 3,
    VG_DT_INT32 = 6,
    VG_DT_INT64 = 7,
    VG_DT_STRING = 8,
    VG_DT_BOOL = 9,
    VG_DT_DOUBLE = 11,
};

#define VG_MAX_RANK 8
/* No tensor may hold more than this many bytes (guards against absurd declared sizes). */
#define VG_MAX_TENSOR_BYTES ((int64_t)1 << 33)

struct vg_error {
    int code;       /* VG_E* (positive), 0 when no error */
    char msg[512];  /* human-readable, names the node/operator/file */
};

/*
 * A tensor: row-major N-d array. A tensor struct never owns its data; see the rules above for
 * who does. rank 0 is a scalar (one element).
 *
 * `map_keys`, when non-NULL, marks a sequence of maps as ai.onnx.ml ZipMap produces: the value
 * has shape [N, C] of float, and row i is the map {map_keys[j] -> data[i*C + j]}. The keys tensor
 * (rank 1, C elements, int64 or string) belongs to the model.
 */
struct vg_tensor {
    enum vg_dtype dtype;
    int rank;
    int64_t dims[VG_MAX_RANK];
    void *data;
    const struct vg_tensor *map_keys;
};

/* Number of elements (product of dims; 1 for a scalar). */
int64_t vg_tensor_numel(const struct vg_tensor *t);
/* Element value as double / int64 (for int, float, bool dtypes; strings give 0). */
double vg_tensor_get_f64(const struct vg_tensor *t, int64_t i);
int64_t vg_tensor_get_i64(const struct vg_tensor *t, int64_t i);
/* Bytes per element; sizeof(char *) for strings; 0 for VG_DT_UNDEFINED. */
size_t vg_dtype_size(enum vg_dtype dt);
/* Open Inference Protocol datatype name ("FP32", "INT64", "BYTES", "BOOL", ...), "UNDEFINED". */
const char *vg_dtype_name(enum vg_dtype dt);
/* Parses an Open Inference Protocol datatype name; VG_DT_UNDEFINED if unknown. */
enum vg_dtype vg_dtype_from_name(const char *name);
/* Short message for a VG_E* code (sign ignored). */
const char *vg_strerror(int code);

/* ---- Models ---------------------------------------------------------------------------------- */

struct vg_model;

/*
 * Loads an ONNX ModelProto from a file. External-data initializers are read relative to the
 * file's directory. All checks that can be made without input data are made here: opsets,
 * operators, attributes, types, graph structure and (where input shapes allow) shapes.
 * On success *out owns a new model; free it with vg_model_free().
 */
int vg_engine_load_file(const char *path, struct vg_model **out, struct vg_error *err);

/*
 * Same from bytes (copied as needed; `bytes` may be freed after the call). `base_dir` is where
 * external data files are looked up; NULL forbids external data.
 */
int vg_engine_load_bytes(const void *bytes, size_t len, const char *base_dir,
                         struct vg_model **out, struct vg_error *err);

void vg_model_free(struct vg_model *m);

/* Description of a graph input or output. Symbolic dims have dims[i] == -1 and a name. */
struct vg_io_info {
    const char *name;
    enum vg_dtype dtype;
    int is_map;                 /* sequence of maps (ZipMap output) */
    int rank;                   /* -1 when the model does not declare a shape */
    int64_t dims[VG_MAX_RANK];  /* -1 = symbolic or unknown */
    const char *dim_names[VG_MAX_RANK]; /* symbolic name or NULL */
};

int vg_model_n_inputs(const struct vg_model *m);
int vg_model_n_outputs(const struct vg_model *m);
const struct vg_io_info *vg_model_input(const struct vg_model *m, int i);
const struct vg_io_info *vg_model_output(const struct vg_model *m, int i);
/* Index of the named input/output, or -1. */
int vg_model_input_index(const struct vg_model *m, const char *name);
int vg_model_output_index(const struct vg_model *m, const char *name);

/* Opset imports: domain ("" for ai.onnx) and version. */
int vg_model_n_opsets(const struct vg_model *m);
void vg_model_opset(const struct vg_model *m, int i, const char **domain, int64_t *version);
/* Nodes as loaded (before constant folding), in topological order. */
int vg_model_n_nodes(const struct vg_model *m);
void vg_model_node(const struct vg_model *m, int i, const char **op_type, const char **domain);
/* Nodes left to execute after constant folding and dead-node removal. */
int vg_model_n_exec_nodes(const struct vg_model *m);
/* Producer metadata (never NULL; may be ""). */
const char *vg_model_producer(const struct vg_model *m);

/* ---- Sessions -------------------------------------------------------------------------------- */

struct vg_session;

/* Creates a per-thread workspace for `m`. Returns NULL on allocation failure. */
struct vg_session *vg_session_new(const struct vg_model *m);
void vg_session_free(struct vg_session *s);

/*
 * Binds graph input `i` for the next run (borrowed, see the rules above). The dtype must equal the
 * declared one and the shape must match the declared dims (symbolic dims bind per run, one value
 * per name).
 */
int vg_session_set_input(struct vg_session *s, int i, const struct vg_tensor *t,
                         struct vg_error *err);

/* Runs the model on the bound inputs. Plans once per distinct set of input shapes. */
int vg_session_run(struct vg_session *s, struct vg_error *err);

/* Output `i` of the last successful run (owned by the session), or NULL. */
const struct vg_tensor *vg_session_output(const struct vg_session *s, int i);

/* Bytes held by the session's arena (for tests and benchmarks). */
size_t vg_session_arena_bytes(const struct vg_session *s);

#ifdef __cplusplus
}
#endif

#endif
