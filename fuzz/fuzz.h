/*
 * Shared by the fuzz targets: the libFuzzer entry point each one defines (replay.c calls it when
 * the targets are built without libFuzzer) and a helper that turns the fuzzer's bytes into a path,
 * for the readers that only take paths.
 */
#ifndef VIGIL_FUZZ_H
#define VIGIL_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Writes `data` to an anonymous memory file (memfd_create; a temporary file if that fails) and
 * puts a path that opens it into `path` ("/proc/self/fd/N"). Returns the descriptor to close
 * once the reader is done, or -1 when nothing could be written.
 */
int vg_fuzz_bytes_to_path(const uint8_t *data, size_t size, char *path, size_t path_cap);

#endif
