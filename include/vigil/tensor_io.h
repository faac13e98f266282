/*
 * Reading and writing single tensors from files: ONNX TensorProto (.pb, as the ONNX test suites
 * store them) and NumPy .npy (format version 1.0/2.0, little-endian, C order).
 *
 * Ownership: the readers fill a caller-provided struct vg_tensor whose `data` is one heap block
 * (for strings: the pointer array followed by the characters), released with
 * vg_tensor_free_data(). Writers only read the tensor. All functions are thread-safe.
 */
#ifndef VIGIL_TENSOR_IO_H
#define VIGIL_TENSOR_IO_H

#include "vigil/engine.h"

/* Reads a TensorProto file. `name`, if not NULL, receives the proto's name (malloc'd, may be ""). */
int vg_tensor_read_pb(const char *path, struct vg_tensor *t, char **name, struct vg_error *err);
/* Parses TensorProto bytes. */
int vg_tensor_parse_pb(const void *bytes, size_t len, struct vg_tensor *t, char **name,
                       struct vg_error *err);
/* Reads a .npy file (numeric and bool dtypes). */
int vg_tensor_read_npy(const char *path, struct vg_tensor *t, struct vg_error *err);
/* Writes a .npy file (numeric and bool dtypes; strings are refused with VG_EUNSUPPORTED). */
int vg_tensor_write_npy(const char *path, const struct vg_tensor *t, struct vg_error *err);
/* Frees data allocated by a reader and clears the pointer. */
void vg_tensor_free_data(struct vg_tensor *t);

#endif
