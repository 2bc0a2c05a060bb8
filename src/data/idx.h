/* IDX files (the MNIST / Fashion-MNIST format): magic 0x00 0x00 TYPE RANK,
 * RANK big-endian uint32 dims, then the data. Only unsigned bytes (TYPE
 * 0x08) are read: images (magic 0x00000803) and labels (0x00000801). A
 * gzip-compressed file (.gz) is read through zlib; a plain one as well. */
#ifndef QD_DATA_IDX_H
#define QD_DATA_IDX_H

#include "base/status.h"
#include "ir/tensor.h"

/* Reads an IDX file of unsigned bytes with the given rank into a new uint8
 * tensor. Wrong magic, a truncated file (or gzip stream), trailing bytes
 * (dims that do not match the data) and gzip corruption are errors naming
 * the file. Memory grows with the data actually read, never with the
 * header's claims alone. */
qd_status qd_idx_read(const char *path, int rank, qd_tensor **out, qd_error *err);

/* 1 when the first bytes of path (decompressed if gzip) are an IDX magic
 * of unsigned bytes; *rank receives its rank. */
int qd_idx_sniff(const char *path, int *rank);

#endif
