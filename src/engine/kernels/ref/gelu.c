/* Gelu (ONNX opset 20): x * Phi(x), exactly (erf) or by the tanh formula. */
#include <math.h>
#include <string.h>

#include "engine/kernels/ref/ref_elementwise.h"

qd_status qd_ref_gelu(const qd_kernel_args *a)
{
    const qd_node *n = a->node;
    const qd_tensor *x = a->n_inputs > 0 ? a->inputs[0] : NULL;
    qd_tensor *y = a->n_outputs > 0 ? a->outputs[0] : NULL;
    if (!x || !y || x->dtype != QD_DT_FLOAT || y->dtype != QD_DT_FLOAT || x->nbytes != y->nbytes)
        return qd_graph_fail(a->graph, QD_STATUS_UNSUPPORTED,
                             "node '%s' (Gelu): float32 input and output of one size needed",
                             n->name);
    const char *approx;
    qd_status st = qd_node_attr_string(a->graph, n, "approximate", "none", &approx);
    if (st != QD_OK)
        return st;
    int use_tanh = !strcmp(approx, "tanh");
    if (!use_tanh && strcmp(approx, "none") != 0)
        return qd_graph_fail(a->graph, QD_STATUS_INVALID_MODEL,
                             "node '%s' (Gelu): approximate must be 'none' or 'tanh', not '%s'",
                             n->name, approx);
    const float *xs = x->data;
    float *ys = y->data;
    int64_t count = (int64_t)(x->nbytes / sizeof(float));
#pragma omp parallel for schedule(static) if (count > 32768)
    for (int64_t i = 0; i < count; i++) {
        double v = xs[i];
        double phi = use_tanh ? 0.5 * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))
                              : 0.5 * (1.0 + erf(v * 0.7071067811865476));
        ys[i] = (float)(v * phi);
    }
    return QD_OK;
}
