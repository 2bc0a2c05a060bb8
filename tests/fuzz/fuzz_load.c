/* libFuzzer target: any bytes given to the loader, shape inference and
 * verify must give a model or a clean error, never a crash or a leak. */
#include <stddef.h>
#include <stdint.h>

#include "qdeploy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qd_graph *g = NULL;
    qd_status st = qd_graph_load_buffer(data, size, "fuzz.onnx", NULL, &g);
    if (st == QD_OK && qd_graph_infer_shapes(g) == QD_OK)
        qd_graph_verify(g);
    qd_graph_delete(g);
    return 0;
}
