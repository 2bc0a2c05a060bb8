#include "quant/placement.h"

#include <string.h>

#include "base/alloc.h"

static int has_point(const qd_qdq_plan *p, const qd_node *n, int input)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->points[i].consumer == n && p->points[i].input == input)
            return 1;
    return 0;
}

static qd_status add_point(qd_graph *g, qd_qdq_plan *p, qd_node *n, int input, qd_plan_kind kind,
                           int axis, const char *module, const char *why)
{
    if (input >= n->n_inputs || !n->inputs[input] || has_point(p, n, input))
        return QD_OK;
    if (qd_grow((void **)&p->points, &p->cap, p->n + 1, sizeof *p->points) != 0)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory planning QDQ");
    p->points[p->n++] = (qd_plan_point){n, input, kind, axis, module, why, 0.0f};
    return QD_OK;
}

/* The output-channel axis of a linear op's weight input. */
static int weight_axis(qd_graph *g, const qd_node *n)
{
    if (n->op == QD_OP_CONV)
        return 0;
    if (n->op == QD_OP_GEMM) {
        int64_t trans_b = 0;
        qd_node_attr_int(g, n, "transB", 0, &trans_b);
        return trans_b ? 0 : 1;
    }
    return 1; /* MatMul [K, N] */
}

double qd_linear_intensity(qd_graph *g, const qd_node *n)
{
    const qd_value *w = n->n_inputs > 1 ? n->inputs[1] : NULL;
    if (n->op == QD_OP_CONV && w && w->konst && w->konst->rank == 4 &&
        w->konst->dims[2] == 1 && w->konst->dims[3] == 1) {
        /* A Linear written as a 1x1 Conv: [N, K, 1, 1] */
        double nn = (double)w->konst->dims[0], k = (double)w->konst->dims[1];
        return nn + k > 0 ? k * nn / (k + nn) : 1e30;
    }
    if (!w || !w->konst || w->konst->rank != 2)
        return 1e30;
    int axis = weight_axis(g, n);
    double nn = (double)w->konst->dims[axis], k = (double)w->konst->dims[1 - axis];
    return k * nn / (k + nn);
}

int qd_plan_linear_stays_high(qd_graph *g, const qd_node *n, const char *target)
{
    /* TensorRT's rule; the x86 target quantizes every Linear. */
    return (!target || !strcmp(target, "tensorrt")) &&
           qd_linear_intensity(g, n) < QD_LINEAR_MIN_INTENSITY;
}

qd_status qd_plan_build(qd_graph *g, const qd_match_list *m, const char *target,
                        qd_qdq_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    int mixed = !target || strcmp(target, "uniform") != 0;
    for (size_t i = 0; i < m->n; i++) {
        const qd_match *mt = &m->items[i];
        unsigned points = qd_pattern_qdq_points(mt->pattern, target ? target : "tensorrt");
        if (!points || mt->n_nodes < 1)
            continue;
        qd_node *anchor = mt->nodes[0];
        const char *name = mt->pattern->name;
        if (mixed && !strcmp(name, "FusedLinear") && qd_plan_linear_stays_high(g, anchor, target)) {
            plan->linear_kept_high++;
            continue;
        }
        qd_status st = QD_OK;
        if (points & QD_QDQ_INPUT) {
            if (!strcmp(name, "Attention")) {
                /* Both operands of each MatMul of the attention core. */
                for (int k = 0; k < mt->n_nodes && st == QD_OK; k++)
                    if (mt->nodes[k]->op == QD_OP_MATMUL)
                        for (int j = 0; j < 2 && st == QD_OK; j++)
                            st = add_point(g, plan, mt->nodes[k], j, QD_PLAN_ACTIVATION, -1, name,
                                           "input");
            } else {
                st = add_point(g, plan, anchor, 0, QD_PLAN_ACTIVATION, -1, name, "input");
            }
        }
        if (st == QD_OK && (points & QD_QDQ_WEIGHT) && anchor->n_inputs > 1 && anchor->inputs[1] &&
            anchor->inputs[1]->konst)
            st = add_point(g, plan, anchor, 1, QD_PLAN_WEIGHT, weight_axis(g, anchor), name,
                           "weight");
        if (st == QD_OK && (points & QD_QDQ_RESIDUAL_INPUT)) {
            /* The Add's operand that does not come from the chain. */
            for (int k = 1; k < mt->n_nodes; k++) {
                qd_node *add = mt->nodes[k];
                if (add->op != QD_OP_ADD || add->n_inputs != 2)
                    continue;
                const qd_node *prev = mt->nodes[k - 1];
                int from_chain = add->inputs[0] && add->inputs[0]->producer == prev ? 0 : 1;
                st = add_point(g, plan, add, 1 - from_chain, QD_PLAN_ACTIVATION, -1, name,
                               "residual input");
                break;
            }
        }
        if (st != QD_OK) {
            qd_plan_free(plan);
            return st;
        }
    }
    return QD_OK;
}

void qd_plan_free(qd_qdq_plan *plan)
{
    if (!plan)
        return;
    qd_free(plan->points);
    memset(plan, 0, sizeof *plan);
}
