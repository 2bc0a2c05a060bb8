/* Shape inference driver: every node in topological order gets its shape
 * function, then constant folding, so a folded shape subgraph feeds the
 * Reshape after it within the same pass. */
#include <string.h>

#include "base/alloc.h"
#include "ir/shape_internal.h"

qd_status qd_graph_infer_shapes(qd_graph *g)
{
    if (!g)
        return QD_STATUS_INVALID_ARGUMENT;
    qd_status st = qd_graph_toposort(g);
    if (st != QD_OK)
        return st;
    int64_t opset = qd_default_opset(g);
    for (size_t i = 0; i < g->n_nodes; i++) {
        qd_node *n = g->nodes[i];
        if (n->op == QD_OP_UNKNOWN)
            return qd_graph_fail(g, QD_STATUS_UNSUPPORTED, "node '%s': unknown op '%s::%s'",
                                 n->name, n->domain && n->domain[0] ? n->domain : "ai.onnx",
                                 n->op_type);
        if (opset < qd_op_since_opset(n->op))
            return qd_graph_fail(g, QD_STATUS_UNSUPPORTED,
                                 "node '%s' (%s): needs opset %d or newer, the model has opset "
                                 "%lld",
                                 n->name, n->op_type, qd_op_since_opset(n->op), (long long)opset);
        st = qd_shape_fn_of(n->op)(g, n);
        if (st != QD_OK)
            return st;
        if (qd_fold_node(g, n) < 0)
            return g->err.status != QD_OK ? g->err.status : QD_STATUS_INVALID_MODEL;
    }
    return QD_OK;
}

/* Forgets what inference derived, so the next run starts from the inputs. */
static void reset_derived(qd_graph *g)
{
    for (size_t i = 0; i < g->n_values; i++) {
        qd_value *v = g->values[i];
        if (v->is_input || v->is_initializer || !v->producer)
            continue;
        v->rank = -1;
        for (int d = 0; d < QD_MAX_RANK; d++) {
            v->dims[d] = -1;
            qd_free(v->dim_params[d]);
            v->dim_params[d] = NULL;
        }
        qd_tensor_delete(v->konst);
        v->konst = NULL;
    }
}

qd_status qd_graph_bind_dim(qd_graph *g, const char *name, int64_t value)
{
    if (!g)
        return QD_STATUS_INVALID_ARGUMENT;
    if (!name || !name[0])
        return qd_graph_fail(g, QD_STATUS_INVALID_ARGUMENT, "bind_dim: no dimension name given");
    if (value < 0)
        return qd_graph_fail(g, QD_STATUS_INVALID_ARGUMENT,
                             "bind_dim: '%s' cannot be bound to %lld", name, (long long)value);
    int any = strcmp(name, "*") == 0, bound = 0;
    for (size_t i = 0; i < g->n_inputs; i++) {
        qd_value *v = g->inputs[i];
        for (int d = 0; d < v->rank && d < QD_MAX_RANK; d++) {
            if (v->dims[d] >= 0)
                continue;
            if (!any && !(v->dim_params[d] && strcmp(v->dim_params[d], name) == 0))
                continue;
            v->dims[d] = value;
            qd_free(v->dim_params[d]);
            v->dim_params[d] = NULL;
            bound++;
        }
    }
    if (!bound && !any)
        return qd_graph_fail(g, QD_STATUS_INVALID_ARGUMENT,
                             "bind_dim: no graph input has a dimension named '%s'", name);
    reset_derived(g);
    return QD_OK;
}
