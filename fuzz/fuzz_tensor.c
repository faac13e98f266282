/*
 * Fuzz target: single-tensor files. The same bytes go to vg_tensor_parse_pb (ONNX TensorProto,
 * as the test suites and `vigil run` read inputs) and to vg_tensor_read_npy (NumPy .npy header
 * and data, read from a memory file since the reader takes a path). Each tensor that parses is
 * read back element by element so a size that disagrees with the data shows up under ASan.
 */
#include <stdlib.h>
#include <unistd.h>

#include "fuzz.h"
#include "vigil/tensor_io.h"

static void touch(const struct vg_tensor *t)
{
    volatile double sink = 0;
    int64_t numel = vg_tensor_numel(t);
    if (t->dtype == VG_DT_STRING) {
        const char *const *s = t->data;
        for (int64_t i = 0; i < numel; i++)
            for (const char *c = s[i]; *c; c++)
                sink += *c;
    } else {
        for (int64_t i = 0; i < numel; i++)
            sink += vg_tensor_get_f64(t, i);
    }
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vg_tensor t = {0};
    struct vg_error err;
    char *name = NULL;
    if (vg_tensor_parse_pb(data, size, &t, &name, &err) == 0) {
        touch(&t);
        vg_tensor_free_data(&t);
    }
    free(name);

    char path[64];
    int fd = vg_fuzz_bytes_to_path(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    struct vg_tensor u = {0};
    if (vg_tensor_read_npy(path, &u, &err) == 0) {
        touch(&u);
        vg_tensor_free_data(&u);
    }
    close(fd);
    return 0;
}
