/* A minimal zip reader for .npz files: the central directory (zip64
 * included), stored and deflated members (zlib, raw window), CRC-checked.
 * No encryption, no multi-disk archives. */
#ifndef QD_DATA_ZIP_H
#define QD_DATA_ZIP_H
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct qd_zip qd_zip;

/* Opens path and reads its central directory. Errors name the file. */
qd_status qd_zip_open(const char *path, qd_zip **out, qd_error *err);
void qd_zip_close(qd_zip *zip);

size_t qd_zip_count(const qd_zip *zip);
const char *qd_zip_name(const qd_zip *zip, size_t i);
uint64_t qd_zip_size(const qd_zip *zip, size_t i);
/* Index of the member called name, or called name + ".npy"; -1 if none. */
long qd_zip_find(const qd_zip *zip, const char *name);

/* Reads and decompresses member i into a new qd_malloc'd buffer (freed by
 * the caller with qd_free). Errors name the file and the member. */
qd_status qd_zip_read(qd_zip *zip, size_t i, void **data, size_t *size, qd_error *err);

#endif
