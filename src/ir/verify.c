/* Structural checks of a graph: every error names the node or tensor. */
#include <string.h>

#include "ir/graph.h"
#include "ir/shape.h"

/* Ops whose inputs must all share one element type (the first input's). */
static int same_type_inputs(qd_op op)
{
    switch (op) {
    case QD_OP_ADD: case QD_OP_SUB: case QD_OP_MUL: case QD_OP_DIV:
    case QD_OP_MAX: case QD_OP_MIN: case QD_OP_SUM: case QD_OP_MEAN:
    case QD_OP_EQUAL: case QD_OP_LESS: case QD_OP_GREATER:
    case QD_OP_LESS_OR_EQUAL: case QD_OP_GREATER_OR_EQUAL:
    case QD_OP_CONCAT: case QD_OP_MATMUL:
        return 1;
    default:
        return 0;
    }
}

qd_status qd_graph_verify(qd_graph *g)
{
    if (!g)
        return QD_STATUS_INVALID_ARGUMENT;
    if (g->n_outputs == 0)
        return qd_graph_fail(g, QD_STATUS_INVALID_MODEL, "the graph has no outputs");
    for (size_t i = 0; i < g->n_nodes; i++) {
        const qd_node *n = g->nodes[i];
        if (n->op == QD_OP_UNKNOWN)
            return qd_graph_fail(g, QD_STATUS_UNSUPPORTED, "node '%s': unknown op '%s%s%s'",
                                 n->name, n->domain[0] ? n->domain : "",
                                 n->domain[0] ? "::" : "", n->op_type);
        for (int j = 0; j < n->n_inputs; j++) {
            const qd_value *v = n->inputs[j];
            if (v && !v->producer && !v->is_input && !v->is_initializer && !v->konst)
                return qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                                     "node '%s' (%s): input '%s' is not produced by any node, "
                                     "graph input or initializer",
                                     n->name, n->op_type, v->name);
        }
        if (same_type_inputs(n->op)) {
            const qd_value *first = NULL;
            for (int j = 0; j < n->n_inputs; j++) {
                const qd_value *v = n->inputs[j];
                if (!v || v->dtype == QD_DT_UNDEFINED)
                    continue;
                if (!first)
                    first = v;
                else if (v->dtype != first->dtype)
                    return qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                                         "node '%s' (%s): input '%s' is %s but '%s' is %s",
                                         n->name, n->op_type, v->name, qd_dtype_name(v->dtype),
                                         first->name, qd_dtype_name(first->dtype));
            }
        }
    }
    for (size_t i = 0; i < g->n_outputs; i++) {
        const qd_value *v = g->outputs[i];
        if (!v->producer && !v->is_input && !v->is_initializer)
            return qd_graph_fail(g, QD_STATUS_INVALID_MODEL,
                                 "graph output '%s' is not produced by any node", v->name);
    }
    /* Sorting finds cycles and names a node on one. */
    return qd_graph_toposort(g);
}
