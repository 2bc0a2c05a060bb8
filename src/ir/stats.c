#include "ir/stats.h"

static int64_t prod_from(const qd_value *v, int first)
{
    int64_t p = 1;
    for (int i = first; i < v->rank; i++) {
        if (v->dims[i] < 0)
            return -1;
        p *= v->dims[i];
    }
    return p;
}

int64_t qd_node_macs(const qd_node *n, int *kind)
{
    *kind = 2;
    const qd_value *out = n->n_outputs ? n->outputs[0] : NULL;
    int64_t out_n = out ? qd_value_numel(out) : -1;
    int64_t k;
    switch (n->op) {
    case QD_OP_CONV:
    case QD_OP_QLINEAR_CONV: {
        *kind = 0;
        /* Each output element sums over (C_in/group) x kernel: weight dims 1.. */
        int wi = n->op == QD_OP_CONV ? 1 : 3;
        const qd_value *w = n->n_inputs > wi ? n->inputs[wi] : NULL;
        k = w ? prod_from(w, 1) : -1;
        return (k < 0 || out_n < 0) ? 0 : out_n * k;
    }
    case QD_OP_CONV_TRANSPOSE: {
        *kind = 0;
        const qd_value *x = n->n_inputs ? n->inputs[0] : NULL, *w = n->n_inputs > 1 ? n->inputs[1] : NULL;
        int64_t x_n = x ? qd_value_numel(x) : -1;
        k = w ? prod_from(w, 1) : -1;
        return (k < 0 || x_n < 0) ? 0 : x_n * k;
    }
    case QD_OP_GEMM:
    case QD_OP_MATMUL:
    case QD_OP_QLINEAR_MATMUL: {
        *kind = 1;
        const qd_value *a = n->n_inputs ? n->inputs[0] : NULL;
        if (!a || a->rank < 1 || out_n < 0)
            return 0;
        int64_t trans_a = 0;
        const qd_attr *ta = n->op == QD_OP_GEMM ? qd_node_attr(n, "transA") : NULL;
        if (ta && ta->type == QD_ATTR_INT)
            trans_a = ta->i;
        int kdim = (trans_a && a->rank == 2) ? 0 : a->rank - 1;
        k = a->dims[kdim];
        return k < 0 ? 0 : out_n * k;
    }
    case QD_OP_MAX_POOL:
    case QD_OP_AVERAGE_POOL: {
        const qd_attr *ks = qd_node_attr(n, "kernel_shape");
        int64_t window = 1;
        if (ks && ks->type == QD_ATTR_INTS)
            for (size_t i = 0; i < ks->n; i++)
                window *= ks->ints[i];
        return out_n < 0 ? 0 : out_n * window;
    }
    case QD_OP_GLOBAL_AVERAGE_POOL:
    case QD_OP_GLOBAL_MAX_POOL:
    case QD_OP_REDUCE_MEAN:
    case QD_OP_REDUCE_SUM:
    case QD_OP_REDUCE_MAX:
    case QD_OP_REDUCE_MIN: {
        const qd_value *x = n->n_inputs ? n->inputs[0] : NULL;
        int64_t x_n = x ? qd_value_numel(x) : -1;
        return x_n < 0 ? 0 : x_n;
    }
    case QD_OP_SHAPE: case QD_OP_SIZE: case QD_OP_CONSTANT: case QD_OP_RESHAPE:
    case QD_OP_FLATTEN: case QD_OP_SQUEEZE: case QD_OP_UNSQUEEZE: case QD_OP_IDENTITY:
    case QD_OP_DROPOUT:
        return 0; /* no arithmetic */
    default:
        return out_n < 0 ? 0 : out_n;
    }
}

static int is_bn_running_stat(const qd_value *v)
{
    for (size_t i = 0; i < v->n_uses; i++) {
        const qd_use *u = &v->uses[i];
        if (u->node->op != QD_OP_BATCH_NORMALIZATION || (u->input != 3 && u->input != 4))
            return 0;
    }
    return v->n_uses > 0;
}

void qd_graph_compute_stats(const qd_graph *g, qd_graph_stats *s)
{
    *s = (qd_graph_stats){0};
    for (size_t i = 0; i < g->n_initializers; i++) {
        const qd_value *v = g->initializers[i];
        if (!v->konst)
            continue;
        s->parameter_bytes += (int64_t)v->konst->nbytes;
        if (qd_dtype_is_float(v->konst->dtype) && !is_bn_running_stat(v))
            s->parameters += qd_numel(v->konst->rank, v->konst->dims);
    }
    for (size_t i = 0; i < g->n_nodes; i++) {
        const qd_node *n = g->nodes[i];
        if (n->n_outputs && n->outputs[0] && n->outputs[0]->konst)
            continue; /* folded: computed once, not per inference */
        int kind;
        int64_t m = qd_node_macs(n, &kind);
        if (m == 0 && n->n_outputs && n->outputs[0] && !qd_value_shape_known(n->outputs[0]))
            s->unknown_shapes++;
        if (kind == 0)
            s->macs_conv += m;
        else if (kind == 1)
            s->macs_matmul += m;
        else
            s->macs_other += m;
    }
}
