#include "base/alloc.h"
#include "onnx/onnx_io.h"

static void *proto_alloc(void *data, size_t size)
{
    (void)data;
    return qd_malloc(size);
}

static void proto_free(void *data, void *ptr)
{
    (void)data;
    qd_free(ptr);
}

ProtobufCAllocator qd_protobuf_allocator = {proto_alloc, proto_free, NULL};
