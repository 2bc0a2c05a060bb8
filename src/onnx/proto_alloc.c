#include "base/alloc.h"
#include "onnx/onnx_io.h"

/* allocator_data, when set, points at an int that records a failed
 * allocation: protobuf-c reports out of memory and corrupt input alike (NULL),
 * and the loader must tell them apart. */
static void *proto_alloc(void *data, size_t size)
{
    void *p = qd_malloc(size);
    if (!p && data)
        *(int *)data = 1;
    return p;
}

static void proto_free(void *data, void *ptr)
{
    (void)data;
    qd_free(ptr);
}

ProtobufCAllocator qd_protobuf_allocator = {proto_alloc, proto_free, NULL};

ProtobufCAllocator qd_protobuf_allocator_tracking(int *failed)
{
    *failed = 0;
    return (ProtobufCAllocator){proto_alloc, proto_free, failed};
}
