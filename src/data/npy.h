/* NumPy .npy files (format versions 1-3, little-endian, C order). */
#ifndef QD_DATA_NPY_H
#define QD_DATA_NPY_H

#include "base/status.h"
#include "ir/tensor.h"

/* Reads a .npy file into a new tensor. Errors name the file. */
qd_status qd_npy_read(const char *path, qd_tensor **out, qd_error *err);
/* Parses .npy bytes (as found in a file or an .npz member). */
qd_status qd_npy_parse(const void *data, size_t size, const char *what, qd_tensor **out,
                       qd_error *err);
/* Writes a tensor as .npy (version 1), atomically. */
qd_status qd_npy_write(const char *path, const qd_tensor *t, qd_error *err);

#endif
