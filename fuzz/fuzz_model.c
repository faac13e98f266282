/*
 * Fuzz target: ONNX model bytes -> vg_engine_load_bytes, and, for models that load, one run on
 * zero-filled inputs of the declared shapes (symbolic or undeclared dims taken as 1). That covers
 * the protobuf decoding, the model checks (opsets, attributes, types, graph structure), constant
 * folding, the planner and each operator's prepare/run on whatever the fuzzer builds.
 * Errors are expected; crashes, leaks and undefined behaviour are the findings.
 */
#include <stdlib.h>

#include "fuzz.h"
#include "vigil/engine.h"

/* Inputs above this many bytes in total are not bound: the run would only measure memset. */
#define FUZZ_MAX_INPUT_BYTES ((int64_t)1 << 20)

/* Fills `t` for input `info`; returns its byte size, or -1 when it cannot or should not be run. */
static int64_t zero_tensor_shape(const struct vg_io_info *info, struct vg_tensor *t)
{
    if (info->dtype == VG_DT_STRING || info->dtype == VG_DT_UNDEFINED || info->is_map)
        return -1;
    size_t elem = vg_dtype_size(info->dtype);
    if (elem == 0)
        return -1;
    t->dtype = info->dtype;
    t->rank = info->rank < 0 ? 1 : info->rank;
    t->data = NULL;
    t->map_keys = NULL;
    int64_t bytes = (int64_t)elem;
    for (int d = 0; d < t->rank; d++) {
        int64_t n = info->rank < 0 || info->dims[d] < 0 ? 1 : info->dims[d];
        t->dims[d] = n;
        if (n > 0 && bytes > FUZZ_MAX_INPUT_BYTES / n)
            return -1;
        bytes *= n;
    }
    return bytes;
}

static void run_once(const struct vg_model *m)
{
    int n = vg_model_n_inputs(m);
    struct vg_tensor *inputs = calloc(n > 0 ? (size_t)n : 1, sizeof *inputs);
    struct vg_session *s = vg_session_new(m);
    int64_t total = 0;
    int i;
    if (!inputs || !s)
        goto out;
    for (i = 0; i < n; i++) {
        int64_t bytes = zero_tensor_shape(vg_model_input(m, i), &inputs[i]);
        if (bytes < 0 || bytes > FUZZ_MAX_INPUT_BYTES - total)
            goto out;
        total += bytes;
        inputs[i].data = calloc(1, bytes > 0 ? (size_t)bytes : 1);
        if (!inputs[i].data)
            goto out;
        if (vg_session_set_input(s, i, &inputs[i], NULL) < 0)
            goto out;
    }
    if (vg_session_run(s, NULL) == 0) {
        /* Touch every output so a bad shape or dangling pointer shows up under the sanitizers. */
        volatile double sink = 0;
        for (int o = 0; o < vg_model_n_outputs(m); o++) {
            const struct vg_tensor *out = vg_session_output(s, o);
            if (!out || out->dtype == VG_DT_STRING)
                continue;
            int64_t numel = vg_tensor_numel(out);
            for (int64_t k = 0; k < numel; k++)
                sink += vg_tensor_get_f64(out, k);
        }
        (void)sink;
    }
out:
    vg_session_free(s);
    if (inputs)
        for (i = 0; i < n; i++)
            free(inputs[i].data);
    free(inputs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vg_model *m = NULL;
    struct vg_error err;
    if (vg_engine_load_bytes(data, size, NULL, &m, &err) == 0) {
        run_once(m);
        vg_model_free(m);
    }
    return 0;
}
