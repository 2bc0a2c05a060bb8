/* Internal pieces shared by the ONNX loader and saver. */
#ifndef QD_ONNX_IO_H
#define QD_ONNX_IO_H
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include "ir/graph.h"
#include "onnx/onnx.pb-c.h"

/* protobuf-c allocations go through the library's allocator hook. */
extern ProtobufCAllocator qd_protobuf_allocator;
/* The same, recording in *failed whether an allocation failed. */
ProtobufCAllocator qd_protobuf_allocator_tracking(int *failed);

/* Converts a TensorProto into a tensor. Takes ownership of raw_data (the
 * proto's field is cleared) so initializers are copied only once: by the
 * protobuf parser. External data is resolved against g->base_dir. `what`
 * names the tensor in errors. */
qd_status qd_tensor_from_proto(qd_graph *g, Onnx__TensorProto *tp, const char *what,
                               qd_tensor **out);

/* Fills a TensorProto (initialised by the caller) that borrows t's data as
 * raw_data: no copy. */
void qd_tensor_to_proto(const qd_tensor *t, const char *name, Onnx__TensorProto *tp);

/* Maps `location` (relative to g->base_dir, not escaping it) and returns a
 * pointer to [offset, offset+length). length < 0 means to the end of file.
 * The mapping lives as long as the graph. */
qd_status qd_external_data_map(qd_graph *g, const char *location, int64_t offset, int64_t length,
                               const char *what, void **data, size_t *size);

/* Atomic file writing: write into a temporary file beside `path`, then
 * commit (fsync + rename) or abort (unlink). */
typedef struct qd_atomic_file {
    FILE *fp;
    char *final_path;
    char *temp_path;
} qd_atomic_file;
qd_status qd_atomic_open(qd_graph *g, const char *path, qd_atomic_file *af);
qd_status qd_atomic_commit(qd_graph *g, qd_atomic_file *af);
void qd_atomic_abort(qd_atomic_file *af);

#endif
