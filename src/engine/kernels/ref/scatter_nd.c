/* ScatterND (reduction none, add or mul): output = data with slices replaced at the
 * given index tuples. torchvision's swin_t builds its shifted-window mask
 * with it. */
#include <string.h>

#include "engine/kernels/ref/ref_tensor.h"

qd_status qd_ref_scatter_nd(const qd_kernel_args *a)
{
    const qd_node *n = a->node;
    if (a->n_inputs < 3 || !a->inputs[0] || !a->inputs[1] || !a->inputs[2] || !a->outputs[0])
        return qd_graph_fail(a->graph, QD_STATUS_INVALID_MODEL,
                             "node '%s' (ScatterND): needs data, indices and updates", n->name);
    const char *reduction;
    qd_status st = qd_node_attr_string(a->graph, n, "reduction", "none", &reduction);
    if (st != QD_OK)
        return st;
    int mode = !strcmp(reduction, "none") ? 0 : !strcmp(reduction, "add") ? 1
             : !strcmp(reduction, "mul")  ? 2 : -1;
    if (mode < 0)
        return qd_graph_fail(a->graph, QD_STATUS_UNSUPPORTED,
                             "node '%s' (ScatterND): reduction '%s' is not supported", n->name,
                             reduction);
    const qd_tensor *data = a->inputs[0], *idx = a->inputs[1], *upd = a->inputs[2];
    qd_tensor *out = a->outputs[0];
    if (idx->rank < 1 || out->nbytes != data->nbytes || upd->dtype != data->dtype)
        return qd_graph_fail(a->graph, QD_STATUS_SHAPE_ERROR,
                             "node '%s' (ScatterND): inconsistent inputs", n->name);
    int64_t k = idx->dims[idx->rank - 1];
    if (k < 1 || k > data->rank)
        return qd_graph_fail(a->graph, QD_STATUS_SHAPE_ERROR,
                             "node '%s' (ScatterND): index tuples of length %lld for rank %d",
                             n->name, (long long)k, data->rank);
    if (out->data != data->data)
        memcpy(out->data, data->data, data->nbytes);
    /* Each index tuple addresses a slice of the trailing rank-k dims. */
    int64_t slice = qd_numel(data->rank - (int)k, data->dims + k);
    int64_t tuples = qd_numel(idx->rank - 1, idx->dims);
    size_t es = qd_dtype_size(data->dtype);
    if ((uint64_t)(tuples * slice) * es != upd->nbytes)
        return qd_graph_fail(a->graph, QD_STATUS_SHAPE_ERROR,
                             "node '%s' (ScatterND): updates have the wrong size", n->name);
    for (int64_t t = 0; t < tuples; t++) {
        int64_t offset = 0;
        for (int64_t j = 0; j < k; j++) {
            int64_t i = qd_tensor_get_i64(idx, t * k + j), dim = data->dims[j];
            if (i < 0)
                i += dim;
            if (i < 0 || i >= dim)
                return qd_graph_fail(a->graph, QD_STATUS_INVALID_ARGUMENT,
                                     "node '%s' (ScatterND): index %lld out of range for dim %lld",
                                     n->name, (long long)i, (long long)dim);
            offset = offset * dim + i;
        }
        if (mode == 0) {
            memcpy((char *)out->data + (size_t)(offset * slice) * es,
                   (const char *)upd->data + (size_t)(t * slice) * es, (size_t)slice * es);
            continue;
        }
        for (int64_t e = 0; e < slice; e++) {
            double x = qd_tensor_get_f64(out, offset * slice + e);
            double u = qd_tensor_get_f64(upd, t * slice + e);
            qd_tensor_set_f64(out, offset * slice + e, mode == 1 ? x + u : x * u);
        }
    }
    return QD_OK;
}
