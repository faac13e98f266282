/*
 * Fuzz target: training CSV files. The bytes are read by vg_dataset_read_csv (from a memory file:
 * the reader takes a path) with the last header cell as the target when one can be picked out,
 * else "y"; once with task AUTO and no imputation, once with AUTO and mean imputation. A table
 * that loads goes through vg_split and vg_reference_compute, the steps `vigil train` takes before
 * growing trees.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "vigil/train.h"

#define FUZZ_MAX_TARGET 256

/*
 * The last cell of the first line, quotes stripped (a doubled quote kept as one). Good enough to
 * hit the reader's real target column on most inputs; the reader itself decides what is valid.
 */
static void last_header_cell(const uint8_t *data, size_t size, char *out, size_t cap)
{
    size_t line_end = 0, start = 0;
    int quoted = 0;
    while (line_end < size) {
        char c = (char)data[line_end];
        if (c == '"')
            quoted = !quoted;
        else if (!quoted && (c == '\n' || c == '\r'))
            break;
        else if (!quoted && c == ',')
            start = line_end + 1;
        line_end++;
    }
    size_t n = 0;
    for (size_t i = start; i < line_end && n + 1 < cap; i++) {
        if (data[i] == '"' && !(i + 1 < line_end && data[i + 1] == '"'))
            continue;
        if (data[i] == '"')
            i++;
        if (data[i] == '\0')
            break;
        out[n++] = (char)data[i];
    }
    out[n] = '\0';
    if (n == 0)
        strcpy(out, "y");
}

static void read_and_use(const char *path, const char *target, enum vg_impute impute)
{
    struct vg_dataset ds;
    struct vg_error err;
    memset(&ds, 0, sizeof ds);
    if (vg_dataset_read_csv(path, target, VG_TASK_AUTO, impute, &ds, &err) != 0)
        return;
    int32_t *train = NULL, *test = NULL;
    int n_train = 0, n_test = 0;
    if (vg_split(&ds, 0.25, 42, &train, &n_train, &test, &n_test, &err) == 0) {
        struct vg_reference ref;
        memset(&ref, 0, sizeof ref);
        if (vg_reference_compute(&ds, train, n_train, &ref, &err) == 0) {
            volatile int sink = 0;
            for (int f = 0; f < ref.n_features; f++)
                sink += vg_reference_bin(&ref.features[f], ref.features[f].mean);
            (void)sink;
            vg_reference_release(&ref);
        }
    }
    free(train);
    free(test);
    vg_dataset_release(&ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char target[FUZZ_MAX_TARGET];
    char path[64];
    last_header_cell(data, size, target, sizeof target);
    int fd = vg_fuzz_bytes_to_path(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    read_and_use(path, target, VG_IMPUTE_NONE);
    read_and_use(path, target, VG_IMPUTE_MEAN);
    close(fd);
    return 0;
}
