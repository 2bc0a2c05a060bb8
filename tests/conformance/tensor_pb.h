/* Reading the ONNX backend test data (Debian libonnx-testdata): a whole file,
 * and a TensorProto file (input_N.pb / output_N.pb) as a tensor. Shared by
 * the conformance runner and the unit tests that use the QLinear node tests. */
#ifndef QD_TEST_TENSOR_PB_H
#define QD_TEST_TENSOR_PB_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ir/graph.h"
#include "onnx/onnx_io.h"

/* The file's bytes (malloc'd, one spare byte) and their count; NULL when it
 * cannot be opened or read. */
static char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

/* Reads a TensorProto file; NULL when absent or not a TensorProto. */
static qd_tensor *read_pb(qd_graph *g, const char *path)
{
    size_t size;
    char *buf = read_all(path, &size);
    if (!buf)
        return NULL;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(&qd_protobuf_allocator, size,
                                                       (const uint8_t *)buf);
    free(buf);
    if (!tp)
        return NULL;
    qd_tensor *t = NULL;
    qd_tensor_from_proto(g, tp, path, &t);
    onnx__tensor_proto__free_unpacked(tp, &qd_protobuf_allocator);
    return t;
}

#endif
