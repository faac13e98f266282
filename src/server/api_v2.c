/*
 * The Open Inference Protocol (KServe v2) REST/JSON API, as Triton and MLServer serve it.
 * docs/v2-api.md is the user's page; this note names the subset implemented.
 *
 * Implemented: server metadata (GET /v2), liveness and readiness (GET /v2/health/live|ready),
 * model metadata and readiness (GET /v2/models/{m}[/versions/{v}][/ready]), inference (POST
 * .../infer) with JSON tensor data, and the repository index of the model_repository extension
 * (POST /v2/repository/index). Not implemented: the binary tensor data extension (requests that
 * ask for it get 400), shared memory, classification, statistics, trace, logging, model load and
 * unload, gRPC.
 *
 * Versions: one version of each model serves (the highest, see docs/model-repository.md). A path
 * that names a version must name that one (decimal, no leading zeros); any other gets 404 saying
 * which version serves. Status codes follow Triton: a model that failed to load has no available
 * versions, so naming it without a version is 404; naming the failed version explicitly is 503.
 *
 * Inference input: every graph input exactly once; datatype equal to the graph's (names are
 * case-sensitive, as the protocol's strings are); shape of the graph's rank with its fixed dims;
 * `data` either flat row-major or nested exactly as the shape; element count equal to the shape's
 * product, at most V2_MAX_ELEMENTS over all inputs and store->max_batch_rows rows (first dim) of
 * the feature input (413 past either). Values must fit the datatype: integers integral and in
 * range (INT64 within +-(2^53-1), what a JSON number carries exactly), FP32 within float range,
 * BOOL true/false, BYTES strings. The data are converted straight from
 * the cJSON tree into one buffer per input; BYTES inputs borrow the tree's strings.
 *
 * Inference output: the requested outputs in request order, else every graph output in graph
 * order, data flat. Floats are printed with the fewest digits that read back to the same value
 * (at most %.9g for FP32, %.17g for FP64); NaN and infinities, which JSON lacks, as null. A ZipMap
 * output (a sequence of maps) is sent as its FP32 [N, C] tensor, column j being key j. The
 * response is written into one malloc'd buffer by the JSON writer (jsonw.h, capped at
 * VG_JW_MAX_RESPONSE_BYTES) while the session's outputs are still valid; `id` echoes the request's
 * id, or is the request id (X-Request-Id or generated) when the request has none.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/jsonw.h"
#include "server/server.h"
#include "vigil/drift.h"

#ifndef VG_VERSION
#define VG_VERSION "unknown"
#endif

/* Elements over all inputs of one request; JSON that large is ~100 MB, far past sane bodies. */
#define V2_MAX_ELEMENTS 10000000
/* Largest integer a JSON number (an IEEE double) carries exactly. */
#define V2_MAX_SAFE_INT 9007199254740991.0

/* ---- Model lookup ---------------------------------------------------------------------------- */

/* Parses a version path segment: decimal, >= 1, no leading zeros. -1 when it is not one. */
static int64_t parse_version(const char *s)
{
    int64_t v = 0;
    if (!s || s[0] < '1' || s[0] > '9')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/*
 * The store entry the path names ({model}, and {version} when present), checking the version.
 * Sets the access log's model and version. On failure replies 404 and returns NULL.
 */
static const struct vg_store_entry *find_entry(struct vg_req *r)
{
    const char *name = r->n_params > 0 ? r->params[0] : "";
    const struct vg_store_entry *e = vg_store_find(r->store, name);
    if (!e) {
        vg_reply_error(r, 404, "unknown model '%s'", name);
        return NULL;
    }
    r->log_model = e->name;
    if (e->loaded)
        r->log_version = e->served->version_str;
    if (r->n_params < 2)
        return e;
    if (parse_version(r->params[1]) == e->version && e->version > 0)
        return e;
    if (e->version <= 0)
        vg_reply_error(r, 404, "model '%s' has no version '%s': it has no versions", e->name,
                       r->params[1]);
    else
        vg_reply_error(r, 404, "model '%s' has no version '%s': version %" PRId64 " %s", e->name,
                       r->params[1], e->version, e->loaded ? "serves" : "failed to load");
    return NULL;
}

/*
 * The loaded model the path names. A failed model is 404 without a version (it has no available
 * versions, as Triton says) and 503 when the request names the failed version. Replies and
 * returns NULL on failure.
 */
static struct vg_served *find_served(struct vg_req *r)
{
    const struct vg_store_entry *e = find_entry(r);
    if (!e)
        return NULL;
    if (e->loaded)
        return e->served;
    const char *reason = e->reason ? e->reason : "unknown reason";
    if (r->n_params >= 2)
        vg_reply_error(r, 503, "model '%s' version %" PRId64 " is not ready: it failed to load: %s",
                       e->name, e->version, reason);
    else if (e->version > 0)
        vg_reply_error(
            r, 404, "model '%s' has no available versions: version %" PRId64 " failed to load: %s",
            e->name, e->version, reason);
    else
        vg_reply_error(r, 404, "model '%s' has no available versions: %s", e->name, reason);
    return NULL;
}

/* ---- Health and metadata --------------------------------------------------------------------- */

void vg_api_v2_server(struct vg_req *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *ext = cJSON_AddArrayToObject(o, "extensions");
    cJSON_AddStringToObject(o, "name", "vigil");
    cJSON_AddStringToObject(o, "version", VG_VERSION);
    /* Of the model_repository extension, only the index (the repository is read at start-up). */
    cJSON_AddItemToArray(ext, cJSON_CreateString("model_repository"));
    vg_reply_json(r, 200, o);
}

void vg_api_v2_live(struct vg_req *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "live", 1);
    vg_reply_json(r, 200, o);
}

void vg_api_v2_ready(struct vg_req *r)
{
    int ready = vg_store_n_loaded(r->store) > 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ready", ready);
    vg_reply_json(r, ready ? 200 : 503, o);
}

static cJSON *tensor_meta(const struct vg_io_info *io)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", io->name);
    /* A ZipMap output is served as its FP32 [N, C] tensor (see infer). */
    cJSON_AddStringToObject(t, "datatype", vg_dtype_name(io->is_map ? VG_DT_FLOAT : io->dtype));
    cJSON *shape = cJSON_AddArrayToObject(t, "shape");
    for (int d = 0; d < io->rank; d++)
        cJSON_AddItemToArray(shape,
                             cJSON_CreateNumber((double)(io->dims[d] < 0 ? -1 : io->dims[d])));
    /* A map output is sent as [N, C]; an undeclared shape gets one variable dim, the closest
     * the protocol has. */
    for (int d = io->rank < 0 ? (io->is_map ? 2 : 1) : 0; d > 0; d--)
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(-1));
    return t;
}

void vg_api_v2_model(struct vg_req *r)
{
    struct vg_served *m = find_served(r);
    if (!m)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", m->name);
    cJSON *versions = cJSON_AddArrayToObject(o, "versions");
    cJSON_AddItemToArray(versions, cJSON_CreateString(m->version_str));
    cJSON_AddStringToObject(o, "platform", "onnx");
    cJSON *inputs = cJSON_AddArrayToObject(o, "inputs");
    for (int i = 0; i < vg_model_n_inputs(m->model); i++)
        cJSON_AddItemToArray(inputs, tensor_meta(vg_model_input(m->model, i)));
    cJSON *outputs = cJSON_AddArrayToObject(o, "outputs");
    for (int i = 0; i < vg_model_n_outputs(m->model); i++)
        cJSON_AddItemToArray(outputs, tensor_meta(vg_model_output(m->model, i)));
    vg_reply_json(r, 200, o);
}

void vg_api_v2_model_ready(struct vg_req *r)
{
    const struct vg_store_entry *e = find_entry(r);
    if (!e)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", e->name);
    cJSON_AddBoolToObject(o, "ready", e->loaded);
    if (!e->loaded)
        cJSON_AddStringToObject(o, "reason", e->reason ? e->reason : "failed to load");
    vg_reply_json(r, e->loaded ? 200 : 503, o);
}

/* Body: empty, or {"ready": bool}; true lists only the models that serve. */
void vg_api_v2_repository_index(struct vg_req *r)
{
    int only_ready = 0;
    size_t i = 0;
    while (i < r->body_len && strchr(" \t\r\n", r->body[i]))
        i++;
    if (i < r->body_len) {
        cJSON *req = cJSON_ParseWithLengthOpts(r->body, r->body_len + 1, NULL, 1);
        const cJSON *ready = cJSON_GetObjectItemCaseSensitive(req, "ready");
        if (!cJSON_IsObject(req) || (ready && !cJSON_IsBool(ready))) {
            cJSON_Delete(req);
            vg_reply_error(r, 400,
                           "the body must be empty or a JSON object such as "
                           "{\"ready\": true}");
            return;
        }
        only_ready = cJSON_IsTrue(ready);
        cJSON_Delete(req);
    }
    cJSON *list = cJSON_CreateArray();
    for (int k = 0; k < r->store->n; k++) {
        const struct vg_store_entry *e = &r->store->entries[k];
        if (only_ready && !e->loaded)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", e->name);
        if (e->version > 0) {
            char v[24];
            snprintf(v, sizeof v, "%" PRId64, e->version);
            cJSON_AddStringToObject(o, "version", v);
        }
        cJSON_AddStringToObject(o, "state", e->loaded ? "READY" : "UNAVAILABLE");
        if (!e->loaded)
            cJSON_AddStringToObject(o, "reason", e->reason ? e->reason : "failed to load");
        cJSON_AddItemToArray(list, o);
    }
    vg_reply_json(r, 200, list);
}

/* ---- Inference: the request ------------------------------------------------------------------ */

/* One inference request as it goes through parsing, the engine and the response. */
struct v2_infer {
    struct vg_served *m;
    const struct vg_model *model;
    cJSON *root;
    const char *id; /* the request's "id", or NULL */
    int n_in, n_out;
    struct vg_tensor *in; /* per graph input; data malloc'd (BYTES: into root's strings) */
    unsigned char *given; /* per graph input: seen in the request */
    int *sel;             /* graph output indices to return, in response order */
    int n_sel;
    int64_t elements; /* over all inputs so far */
    int max_rows;     /* rows of the feature input per request (--max-batch-rows) */
    int status;       /* HTTP status of the failure */
    char why[640];    /* its message */
};

__attribute__((format(printf, 3, 4))) static int fail(struct v2_infer *q, int status,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->why, sizeof(q->why), fmt, ap);
    va_end(ap);
    q->status = status;
    return -1;
}

/* "a, b, c": the graph's input or output names, for messages. */
static const char *io_names(const struct vg_model *model, int outputs, char *dst, size_t size)
{
    int n = outputs ? vg_model_n_outputs(model) : vg_model_n_inputs(model);
    size_t len = 0;
    dst[0] = 0;
    for (int i = 0; i < n && len < size; i++) {
        const struct vg_io_info *io =
            outputs ? vg_model_output(model, i) : vg_model_input(model, i);
        int k = snprintf(dst + len, size - len, "%s%s", i ? ", " : "", io->name);
        if (k < 0)
            break;
        len += (size_t)k;
    }
    return dst;
}

/* "[2,4]" for messages. */
static const char *shape_str(const int64_t *dims, int rank, char *dst, size_t size)
{
    size_t len = 0;
    len += (size_t)snprintf(dst, size, "[");
    for (int d = 0; d < rank && len < size; d++)
        len += (size_t)snprintf(dst + len, size - len, "%s%" PRId64, d ? "," : "", dims[d]);
    if (len < size)
        snprintf(dst + len, size - len, "]");
    return dst;
}

/*
 * Rejects the parameters of the protocol's extensions we do not implement, in a `parameters`
 * object at `where` ("the request", "input 'x'", ...). Other parameters are ignored, as the
 * protocol lets servers do.
 */
static int check_parameters(struct v2_infer *q, const cJSON *params, const char *where)
{
    static const char *const binary[] = {"binary_data_output", "binary_data", "binary_data_size"};
    static const char *const unsupported[] = {"shared_memory_region", "classification"};
    if (!params || cJSON_IsNull(params))
        return 0;
    if (!cJSON_IsObject(params))
        return fail(q, 400, "%s: 'parameters' must be an object", where);
    for (size_t k = 0; k < sizeof(binary) / sizeof(binary[0]); k++) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(params, binary[k]);
        if (p && !cJSON_IsFalse(p))
            return fail(q, 400,
                        "%s: parameter '%s': the binary tensor data extension is not supported; "
                        "send tensor data as JSON",
                        where, binary[k]);
    }
    for (size_t k = 0; k < sizeof(unsupported) / sizeof(unsupported[0]); k++)
        if (cJSON_GetObjectItemCaseSensitive(params, unsupported[k]))
            return fail(q, 400, "%s: parameter '%s' is not supported", where, unsupported[k]);
    return 0;
}

/* Filling one input tensor from its JSON data. */
struct v2_fill {
    struct v2_infer *q;
    struct vg_tensor *t;
    const char *name;
    int64_t numel;
    int64_t n; /* elements written */
};

/* Stores element f->n from the JSON scalar v, checking it fits the datatype. */
static int put_value(struct v2_fill *f, const cJSON *v)
{
    static const struct {
        double lo, hi;
    } range[] = {
        [VG_DT_UINT8] = {0, 255},
        [VG_DT_INT8] = {-128, 127},
        [VG_DT_INT32] = {-2147483648.0, 2147483647.0},
        [VG_DT_INT64] = {-V2_MAX_SAFE_INT, V2_MAX_SAFE_INT},
    };
    enum vg_dtype dt = f->t->dtype;
    const char *dtn = vg_dtype_name(dt);
    int64_t i = f->n++;
    if (dt == VG_DT_STRING) {
        if (!cJSON_IsString(v))
            return fail(f->q, 400,
                        "input '%s' (BYTES): element %" PRId64 " is %s, expected a string", f->name,
                        i, vg_json_kind(v));
        ((const char **)f->t->data)[i] = v->valuestring;
        return 0;
    }
    if (dt == VG_DT_BOOL) {
        if (!cJSON_IsBool(v))
            return fail(f->q, 400,
                        "input '%s' (BOOL): element %" PRId64 " is %s, expected true or false",
                        f->name, i, vg_json_kind(v));
        ((uint8_t *)f->t->data)[i] = cJSON_IsTrue(v) ? 1 : 0;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return fail(f->q, 400, "input '%s' (%s): element %" PRId64 " is %s, expected a number",
                    f->name, dtn, i, vg_json_kind(v));
    double x = v->valuedouble;
    switch (dt) {
    case VG_DT_FLOAT:
        /* cJSON reads 1e999 as infinity; a finite double past FLT_MAX rounds to one too. */
        if (isinf((float)x))
            return fail(f->q, 400, "input '%s' (FP32): element %" PRId64 " (%g) is out of range",
                        f->name, i, x);
        ((float *)f->t->data)[i] = (float)x;
        return 0;
    case VG_DT_DOUBLE:
        if (!isfinite(x))
            return fail(f->q, 400, "input '%s' (FP64): element %" PRId64 " is out of range",
                        f->name, i);
        ((double *)f->t->data)[i] = x;
        return 0;
    case VG_DT_UINT8:
    case VG_DT_INT8:
    case VG_DT_INT32:
    case VG_DT_INT64: break;
    default: return fail(f->q, 500, "input '%s': datatype %s cannot be filled", f->name, dtn);
    }
    if (x != floor(x))
        return fail(f->q, 400, "input '%s' (%s): element %" PRId64 " (%.17g) is not an integer",
                    f->name, dtn, i, x);
    if (x < range[dt].lo || x > range[dt].hi)
        return fail(f->q, 400,
                    "input '%s' (%s): element %" PRId64 " (%.17g) is out of range [%.17g, %.17g]",
                    f->name, dtn, i, x, range[dt].lo, range[dt].hi);
    switch (dt) {
    case VG_DT_UINT8: ((uint8_t *)f->t->data)[i] = (uint8_t)x; break;
    case VG_DT_INT8: ((int8_t *)f->t->data)[i] = (int8_t)x; break;
    case VG_DT_INT32: ((int32_t *)f->t->data)[i] = (int32_t)x; break;
    default: ((int64_t *)f->t->data)[i] = (int64_t)x; break;
    }
    return 0;
}

/*
 * Nested data: the array at depth d must hold dims[d] arrays, values at the last depth. Walked
 * with one cursor per depth (the rank bounds the depth).
 */
static int fill_nested(struct v2_fill *f, const cJSON *data)
{
    const struct vg_tensor *t = f->t;
    const cJSON *at[VG_MAX_RANK]; /* the element being read at each depth */
    int64_t count[VG_MAX_RANK];   /* elements seen at each depth */
    char shape[160];
    int d = 0, last = t->rank - 1;
    at[0] = data->child;
    count[0] = 0;
    for (;;) {
        const cJSON *c = at[d];
        if (!c) { /* end of an array */
            if (count[d] != t->dims[d])
                return fail(f->q, 400,
                            "input '%s': nested data does not match shape %s: an array at "
                            "depth %d has %" PRId64 " elements, expected %" PRId64,
                            f->name, shape_str(t->dims, t->rank, shape, sizeof(shape)), d, count[d],
                            t->dims[d]);
            if (d == 0)
                return 0;
            d--;
        } else if (count[d] < t->dims[d]) {
            if (cJSON_IsArray(c) != (d < last))
                return fail(f->q, 400,
                            "input '%s': nested data does not match shape %s: %s at depth %d, "
                            "expected %s",
                            f->name, shape_str(t->dims, t->rank, shape, sizeof(shape)),
                            vg_json_kind(c), d + 1, d < last ? "an array" : "a value");
            if (d < last) {
                d++;
                at[d] = c->child;
                count[d] = 0;
                continue;
            }
            if (put_value(f, c))
                return -1;
        } /* else: past the shape, only counted for the message */
        at[d] = at[d]->next;
        count[d]++;
    }
}

/* `data`, flat or nested, into f->t. */
static int fill_data(struct v2_fill *f, const cJSON *data)
{
    char shape[160];
    if (!data)
        return fail(f->q, 400, "input '%s': 'data' is missing", f->name);
    if (!cJSON_IsArray(data))
        return fail(f->q, 400, "input '%s': 'data' must be an array, not %s", f->name,
                    vg_json_kind(data));
    if (data->child && cJSON_IsArray(data->child) && f->t->rank >= 2)
        return fill_nested(f, data);
    int64_t count = 0;
    for (const cJSON *c = data->child; c; c = c->next, count++) {
        if (cJSON_IsArray(c))
            return fail(f->q, 400, "input '%s': 'data' must be flat, or nested exactly as shape %s",
                        f->name, shape_str(f->t->dims, f->t->rank, shape, sizeof(shape)));
        if (count < f->numel && put_value(f, c))
            return -1;
    }
    if (count != f->numel)
        return fail(f->q, 400,
                    "input '%s': shape %s needs %" PRId64 " elements, 'data' has %" PRId64, f->name,
                    shape_str(f->t->dims, f->t->rank, shape, sizeof(shape)), f->numel, count);
    return 0;
}

/* One element of "inputs": checks it against graph input and fills the tensor. */
static int parse_input(struct v2_infer *q, const cJSON *item, int k)
{
    char where[200], names[400], shape[160], want[160];
    if (!cJSON_IsObject(item))
        return fail(q, 400, "inputs[%d] must be an object", k);
    const cJSON *jname = cJSON_GetObjectItemCaseSensitive(item, "name");
    if (!cJSON_IsString(jname))
        return fail(q, 400, "inputs[%d]: 'name' must be a string", k);
    const char *name = jname->valuestring;
    int gi = vg_model_input_index(q->model, name);
    if (gi < 0)
        return fail(q, 400, "unknown input '%s'; the model's inputs are: %s", name,
                    io_names(q->model, 0, names, sizeof(names)));
    if (q->given[gi])
        return fail(q, 400, "input '%s' is given more than once", name);
    q->given[gi] = 1;
    snprintf(where, sizeof(where), "input '%s'", name);
    if (check_parameters(q, cJSON_GetObjectItemCaseSensitive(item, "parameters"), where))
        return -1;

    const struct vg_io_info *io = vg_model_input(q->model, gi);
    const cJSON *jdt = cJSON_GetObjectItemCaseSensitive(item, "datatype");
    if (!cJSON_IsString(jdt))
        return fail(q, 400, "input '%s': 'datatype' must be a string", name);
    enum vg_dtype dt = vg_dtype_from_name(jdt->valuestring);
    if (dt == VG_DT_UNDEFINED || strcmp(vg_dtype_name(dt), jdt->valuestring))
        return fail(q, 400,
                    "input '%s': datatype '%s' is not supported (BOOL, UINT8, INT8, INT32, "
                    "INT64, FP32, FP64, BYTES)",
                    name, jdt->valuestring);
    if (dt != io->dtype)
        return fail(q, 400, "input '%s': datatype %s does not match the model's %s", name,
                    jdt->valuestring, vg_dtype_name(io->dtype));

    struct vg_tensor *t = &q->in[gi];
    t->dtype = dt;
    const cJSON *jshape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    if (!cJSON_IsArray(jshape))
        return fail(q, 400, "input '%s': 'shape' must be an array of dimensions", name);
    int64_t numel = 1;
    for (const cJSON *c = jshape->child; c; c = c->next) {
        if (t->rank == VG_MAX_RANK)
            return fail(q, 400, "input '%s': 'shape' has more than %d dimensions", name,
                        VG_MAX_RANK);
        if (!cJSON_IsNumber(c) || c->valuedouble < 0 || c->valuedouble != floor(c->valuedouble) ||
            c->valuedouble > V2_MAX_ELEMENTS)
            return fail(q, 400, "input '%s': shape dimensions must be integers from 0 to %d", name,
                        V2_MAX_ELEMENTS);
        t->dims[t->rank++] = (int64_t)c->valuedouble;
        numel *= t->dims[t->rank - 1];
        if (numel > V2_MAX_ELEMENTS)
            break; /* reported below, before any product can overflow */
    }
    q->elements += numel;
    if (numel > V2_MAX_ELEMENTS || q->elements > V2_MAX_ELEMENTS)
        return fail(q, 413, "the request's inputs hold more than %d elements", V2_MAX_ELEMENTS);
    if (gi == q->m->input && t->rank > 0 && t->dims[0] > q->max_rows)
        return fail(q, 413, "input '%s' has %" PRId64 " rows; at most %d per request", name,
                    t->dims[0], q->max_rows);
    if (io->rank >= 0) {
        int ok = io->rank == t->rank;
        for (int d = 0; ok && d < t->rank; d++)
            ok = io->dims[d] < 0 || io->dims[d] == t->dims[d];
        if (!ok) {
            int64_t dims[VG_MAX_RANK] = {0};
            for (int d = 0; d < io->rank; d++)
                dims[d] = io->dims[d] < 0 ? -1 : io->dims[d];
            return fail(q, 400, "input '%s': shape %s does not match the model's %s", name,
                        shape_str(t->dims, t->rank, shape, sizeof(shape)),
                        shape_str(dims, io->rank, want, sizeof(want)));
        }
    }

    t->data = malloc(numel > 0 ? (size_t)numel * vg_dtype_size(dt) : 1);
    if (!t->data)
        return fail(q, 500, "out of memory for input '%s'", name);
    struct v2_fill f = {q, t, name, numel, 0};
    return fill_data(&f, cJSON_GetObjectItemCaseSensitive(item, "data"));
}

/* The "outputs" selection: graph output indices into q->sel (all outputs when absent or []). */
static int parse_outputs(struct v2_infer *q, const cJSON *outs)
{
    char names[400], where[200];
    if (outs && !cJSON_IsNull(outs) && !cJSON_IsArray(outs))
        return fail(q, 400, "'outputs' must be an array of {\"name\": ...} objects");
    int k = 0;
    for (const cJSON *c = outs ? outs->child : NULL; c; c = c->next, k++) {
        const cJSON *jname = cJSON_GetObjectItemCaseSensitive(c, "name");
        if (!cJSON_IsObject(c) || !cJSON_IsString(jname))
            return fail(q, 400, "outputs[%d] must be an object with a string 'name'", k);
        int gi = vg_model_output_index(q->model, jname->valuestring);
        if (gi < 0)
            return fail(q, 400, "unknown output '%s'; the model's outputs are: %s",
                        jname->valuestring, io_names(q->model, 1, names, sizeof(names)));
        for (int j = 0; j < q->n_sel; j++)
            if (q->sel[j] == gi)
                return fail(q, 400, "output '%s' is requested more than once", jname->valuestring);
        snprintf(where, sizeof(where), "output '%s'", jname->valuestring);
        if (check_parameters(q, cJSON_GetObjectItemCaseSensitive(c, "parameters"), where))
            return -1;
        q->sel[q->n_sel++] = gi;
    }
    if (q->n_sel == 0)
        for (int i = 0; i < q->n_out; i++)
            q->sel[q->n_sel++] = i;
    return 0;
}

/* The whole request body into q: parsed, checked, every input tensor filled. */
static int parse_request(struct v2_infer *q, const struct vg_req *r)
{
    char names[400];
    const char *end = NULL;
    /* Length + 1 takes in the terminating NUL, so cJSON rejects trailing garbage. */
    q->root = cJSON_ParseWithLengthOpts(r->body, r->body_len + 1, &end, 1);
    if (!q->root)
        return fail(q, 400, "the request body is not valid JSON (at byte %zu)",
                    end && end >= r->body ? (size_t)(end - r->body) : (size_t)0);
    if (!cJSON_IsObject(q->root))
        return fail(q, 400, "the request body must be a JSON object");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(q->root, "id");
    if (id && !cJSON_IsString(id))
        return fail(q, 400, "'id' must be a string");
    q->id = id ? id->valuestring : NULL;
    if (check_parameters(q, cJSON_GetObjectItemCaseSensitive(q->root, "parameters"), "the request"))
        return -1;
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(q->root, "inputs");
    if (!cJSON_IsArray(inputs))
        return fail(q, 400, "'inputs' must be an array of input tensors");
    int k = 0;
    for (const cJSON *c = inputs->child; c; c = c->next, k++)
        if (parse_input(q, c, k))
            return -1;
    for (int i = 0; i < q->n_in; i++)
        if (!q->given[i])
            return fail(q, 400, "missing input '%s'; the model's inputs are: %s",
                        vg_model_input(q->model, i)->name,
                        io_names(q->model, 0, names, sizeof(names)));
    return parse_outputs(q, cJSON_GetObjectItemCaseSensitive(q->root, "outputs"));
}

/* ---- Inference: run and response ------------------------------------------------------------- */

/* Status for an engine failure: the input's fault (400) or ours (500). */
static int engine_status(int code)
{
    switch (code < 0 ? -code : code) {
    case VG_EINVAL:
    case VG_ETYPE:
    case VG_ESHAPE:
    case VG_ERANGE: return 400;
    default: return 500;
    }
}

/* Counts each row's predicted class (argmax of the probabilities, first maximum wins), and
 * stores it in classes[row] (-1 when none) unless classes is NULL. */
static void count_classes(struct vg_served *m, const struct vg_session *s, int32_t *classes)
{
    if (m->out_proba < 0 || m->n_classes <= 0)
        return;
    const struct vg_tensor *t = vg_session_output(s, m->out_proba);
    if (!t || t->rank < 1 || t->dims[0] <= 0)
        return;
    int64_t rows = t->dims[0], cols = vg_tensor_numel(t) / rows;
    for (int64_t i = 0; i < rows; i++) {
        int64_t best = -1;
        double best_p = 0;
        for (int64_t j = 0; j < cols; j++) {
            double p = t->dtype == VG_DT_FLOAT ? ((const float *)t->data)[i * cols + j]
                                               : vg_tensor_get_f64(t, i * cols + j);
            if (p == p && (best < 0 || p > best_p)) {
                best = j;
                best_p = p;
            }
        }
        if (best >= 0 && best < m->n_classes)
            vg_served_count_class(m, (int)best);
        if (classes)
            classes[i] = best >= 0 && best < m->n_classes ? (int32_t)best : -1;
    }
}

/* The flat data of `t` as a JSON array. Returns -1 for a dtype the protocol cannot carry. */
static int write_tensor_data(struct vg_jw *b, const struct vg_tensor *t)
{
    int64_t n = vg_tensor_numel(t);
    vg_jw_char(b, '[');
    for (int64_t i = 0; i < n && !b->failed; i++) {
        if (i)
            vg_jw_char(b, ',');
        switch (t->dtype) {
        case VG_DT_FLOAT: vg_jw_f32(b, ((const float *)t->data)[i]); break;
        case VG_DT_DOUBLE: vg_jw_f64(b, ((const double *)t->data)[i]); break;
        case VG_DT_INT64: vg_jw_i64(b, ((const int64_t *)t->data)[i]); break;
        case VG_DT_INT32: vg_jw_i64(b, ((const int32_t *)t->data)[i]); break;
        case VG_DT_INT8: vg_jw_i64(b, ((const int8_t *)t->data)[i]); break;
        case VG_DT_UINT8: vg_jw_i64(b, ((const uint8_t *)t->data)[i]); break;
        case VG_DT_BOOL:
            if (((const uint8_t *)t->data)[i])
                vg_jw_lit(b, "true");
            else
                vg_jw_lit(b, "false");
            break;
        case VG_DT_STRING: vg_jw_str(b, ((const char *const *)t->data)[i]); break;
        default: return -1;
        }
    }
    vg_jw_char(b, ']');
    return 0;
}

/* The response body for the session's outputs; -1 with q->status/why on failure. */
static int write_response(struct v2_infer *q, const struct vg_req *r, const struct vg_session *s,
                          struct vg_jw *b)
{
    int64_t estimate = 256;
    for (int k = 0; k < q->n_sel; k++) {
        const struct vg_tensor *t = vg_session_output(s, q->sel[k]);
        if (!t)
            return fail(q, 500, "the model produced no output '%s'",
                        vg_model_output(q->model, q->sel[k])->name);
        estimate += 128 + vg_tensor_numel(t) * 12;
    }
    if (estimate > (int64_t)b->max)
        estimate = (int64_t)b->max;
    vg_jw_reserve(b, (size_t)estimate);

    vg_jw_lit(b, "{\"model_name\":");
    vg_jw_str(b, q->m->name);
    vg_jw_lit(b, ",\"model_version\":");
    vg_jw_str(b, q->m->version_str);
    vg_jw_lit(b, ",\"id\":");
    vg_jw_str(b, q->id ? q->id : r->request_id);
    vg_jw_lit(b, ",\"outputs\":[");
    for (int k = 0; k < q->n_sel; k++) {
        const struct vg_tensor *t = vg_session_output(s, q->sel[k]);
        if (t->map_keys && t->dtype != VG_DT_FLOAT)
            return fail(q, 500, "output '%s': a map of %s values cannot be sent",
                        vg_model_output(q->model, q->sel[k])->name, vg_dtype_name(t->dtype));
        if (k)
            vg_jw_char(b, ',');
        vg_jw_lit(b, "{\"name\":");
        vg_jw_str(b, vg_model_output(q->model, q->sel[k])->name);
        vg_jw_lit(b, ",\"datatype\":");
        vg_jw_str(b, vg_dtype_name(t->dtype));
        vg_jw_lit(b, ",\"shape\":[");
        for (int d = 0; d < t->rank; d++) {
            if (d)
                vg_jw_char(b, ',');
            vg_jw_i64(b, t->dims[d]);
        }
        vg_jw_lit(b, "],\"data\":");
        if (write_tensor_data(b, t))
            return fail(q, 500, "output '%s' has datatype %s, which the protocol cannot carry",
                        vg_model_output(q->model, q->sel[k])->name, vg_dtype_name(t->dtype));
        vg_jw_char(b, '}');
    }
    vg_jw_lit(b, "]}");
    if (b->failed)
        return fail(q, 500, "the response is larger than %zu MiB or memory ran out",
                    VG_JW_MAX_RESPONSE_BYTES >> 20);
    return 0;
}

void vg_api_v2_infer(struct vg_req *r)
{
    struct v2_infer q = {0};
    struct vg_jw b;
    struct vg_session *s = NULL;
    struct vg_error err = {0};
    enum vg_outcome outcome = VG_OUTCOME_BAD_INPUT;
    int64_t rows = 0;
    int32_t *classes = NULL; /* each row's predicted class, for the drift monitor */

    vg_jw_init(&b, VG_JW_MAX_RESPONSE_BYTES);

    q.m = find_served(r);
    if (!q.m)
        return;
    q.model = q.m->model;
    q.max_rows = r->store->max_batch_rows > 0 ? r->store->max_batch_rows : 10000;
    q.n_in = vg_model_n_inputs(q.model);
    q.n_out = vg_model_n_outputs(q.model);
    q.in = calloc((size_t)q.n_in + 1, sizeof(*q.in));
    q.given = calloc((size_t)q.n_in + 1, 1);
    q.sel = calloc((size_t)q.n_out + 1, sizeof(*q.sel));
    if (!q.in || !q.given || !q.sel) {
        fail(&q, 500, "out of memory");
        goto out;
    }
    if (parse_request(&q, r))
        goto out;
    const struct vg_tensor *first = &q.in[q.m->input >= 0 && q.m->input < q.n_in ? q.m->input : 0];
    rows = first->rank > 0 ? first->dims[0] : 1;

    s = vg_served_acquire(q.m);
    if (!s) {
        fail(&q, 500, "no inference session available (out of memory)");
        goto out;
    }
    for (int i = 0; i < q.n_in; i++) {
        int rc = vg_session_set_input(s, i, &q.in[i], &err);
        if (rc) {
            fail(&q, engine_status(rc), "input '%s' rejected: %s", vg_model_input(q.model, i)->name,
                 err.msg[0] ? err.msg : vg_strerror(rc));
            goto out;
        }
    }
    int rc = vg_served_run(q.m, s, &err);
    if (rc) {
        fail(&q, engine_status(rc), "inference failed: %s", err.msg[0] ? err.msg : vg_strerror(rc));
        goto out;
    }
    if (write_response(&q, r, s, &b))
        goto out;
    if (q.m->drift && q.m->n_classes > 0) {
        if (!(classes = malloc(rows > 0 ? (size_t)rows * sizeof *classes : 1))) {
            fail(&q, 500, "out of memory");
            goto out;
        }
        memset(classes, 0xff, rows > 0 ? (size_t)rows * sizeof *classes : 0); /* -1: none */
    }
    count_classes(q.m, s, classes);
    /* Stored under the answer's id; "<id>/<i>" for row i of a request with several rows. */
    vg_feedback_record(r, q.m, s, q.id ? q.id : r->request_id, rows, rows > 1);
    outcome = VG_OUTCOME_SUCCESS;
    if (q.m->drift)
        vg_drift_observe(q.m->drift, q.in[q.m->input].data, rows, classes);

out:
    if (s)
        vg_served_release(q.m, s);
    if (outcome == VG_OUTCOME_SUCCESS) {
        size_t len;
        char *body = vg_jw_take(&b, &len); /* not NULL: write_response checked b.failed */
        vg_reply_raw(r, 200, "application/json", body, len);
    } else {
        if (q.status >= 500)
            outcome = VG_OUTCOME_INTERNAL;
        vg_reply_error(r, q.status ? q.status : 500, "%s", q.why[0] ? q.why : "internal error");
    }
    vg_served_count(q.m, outcome, outcome == VG_OUTCOME_SUCCESS ? rows : 0);
    vg_jw_release(&b);
    free(classes);
    for (int i = 0; q.in && i < q.n_in; i++)
        free(q.in[i].data);
    free(q.in);
    free(q.given);
    free(q.sel);
    cJSON_Delete(q.root);
}
