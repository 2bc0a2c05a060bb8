/* QLinearConv / QLinearMatMul -> DequantizeLinear -> Conv / MatMul ->
 * QuantizeLinear (see qlinear_to_qdq.h).
 *
 * Why the two agree within one quantization step: QLinearConv computes
 * acc = sum (x - zx)(w - zw) + B in int32 and stores
 * sat(round(acc * sx * sw / sy) + zy). The QDQ form computes the float sum
 * of (sx (x - zx)) (sw (w - zw)) plus (sx sw) B, which is exactly
 * sx sw acc up to float rounding, then sat(round(f / sy) + zy): the same
 * real number, rounded once in both, so they differ only where float
 * rounding moves the value across a rounding boundary (by one step). The
 * bias scale sx * sw is the one the lowering expects of a quantized bias
 * (engine/lower_qdq.h), so the INT8 kernel reads B as it is. */
#include "passes/qlinear_to_qdq.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "ir/ops.h"

/* Element count of v: a constant's, or the known shape's; -1 unknown. */
static int64_t numel_of(const qd_value *v)
{
    if (!v)
        return 1;
    if (v->konst)
        return qd_numel(v->konst->rank, v->konst->dims);
    return qd_value_numel(v);
}

static qd_value *in_at(const qd_node *n, int j)
{
    return j < n->n_inputs ? n->inputs[j] : NULL;
}

/* One new node with one new output value named from hint; NULL on OOM. */
static qd_value *add1(qd_graph *g, const char *op, const char *hint, qd_value **ins, int n_in)
{
    qd_value *y = qd_graph_new_value(g, NULL, hint);
    if (!y || !qd_graph_add_node(g, op, "", NULL, ins, n_in, &y, 1))
        return NULL;
    return y;
}

/* DequantizeLinear(x, s[, z]), per axis when axis >= 0. */
static qd_value *add_dq(qd_graph *g, const char *hint, qd_value *x, qd_value *s, qd_value *z,
                        int axis)
{
    qd_value *ins[3] = {x, s, z};
    qd_value *y = add1(g, "DequantizeLinear", hint, ins, z ? 3 : 2);
    if (y && axis >= 0 && qd_node_set_attr_int(y->producer, "axis", axis) != 0)
        return NULL;
    return y;
}

/* The bias scale sx * sw: a constant when both are, else a Mul node. */
static qd_value *bias_scale(qd_graph *g, const char *hint, qd_value *sx, qd_value *sw)
{
    if (sx->konst && sw->konst && sx->konst->dtype == QD_DT_FLOAT &&
        sw->konst->dtype == QD_DT_FLOAT) {
        int64_t c = numel_of(sw);
        qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, c > 1 ? 1 : 0, &c);
        if (!t)
            return NULL;
        const float *xs = sx->konst->data, *ws = sw->konst->data;
        for (int64_t i = 0; i < c; i++)
            ((float *)t->data)[i] = xs[0] * ws[i];
        return qd_graph_add_initializer(g, hint, t);
    }
    qd_value *ins[2] = {sx, sw};
    return add1(g, "Mul", hint, ins, 2);
}

/* Rewrites one QLinear node; 1 done, 0 left alone, -1 out of memory. */
static int rewrite(qd_graph *g, qd_node *n)
{
    int conv = n->op == QD_OP_QLINEAR_CONV;
    qd_value *x = in_at(n, 0), *sx = in_at(n, 1), *zx = in_at(n, 2);
    qd_value *w = in_at(n, 3), *sw = in_at(n, 4), *zw = in_at(n, 5);
    qd_value *sy = in_at(n, 6), *zy = in_at(n, 7), *b = conv ? in_at(n, 8) : NULL;
    qd_value *y = n->n_outputs >= 1 ? n->outputs[0] : NULL;
    if (!x || !sx || !w || !sw || !sy || !y || n->n_outputs != 1 || w->rank < (conv ? 3 : 1))
        return 0;
    /* Per tensor on x and y (QLinearMatMul's per-row scales have no DQ
     * form on a batched a); w per tensor or per output channel/column. */
    int64_t c = conv ? w->dims[0] : w->dims[w->rank - 1], ns = numel_of(sw);
    if (numel_of(sx) != 1 || numel_of(zx) != 1 || numel_of(sy) != 1 || numel_of(zy) != 1 ||
        c < 1 || (ns != 1 && ns != c) || (ns != 1 && w->rank < 2) ||
        (zw && numel_of(zw) != ns))
        return 0;
    int w_axis = ns == 1 ? -1 : conv ? 0 : w->rank - 1;
    char name[512], hint[600];
    snprintf(name, sizeof name, "%s", n->name);
    snprintf(hint, sizeof hint, "%s.x_dq", name);
    qd_value *xf = add_dq(g, hint, x, sx, zx, -1);
    snprintf(hint, sizeof hint, "%s.w_dq", name);
    qd_value *wf = xf ? add_dq(g, hint, w, sw, zw, w_axis) : NULL;
    qd_value *bf = NULL;
    if (wf && b) {
        snprintf(hint, sizeof hint, "%s.b_scale", name);
        qd_value *sb = bias_scale(g, hint, sx, sw);
        snprintf(hint, sizeof hint, "%s.b_dq", name);
        bf = sb ? add_dq(g, hint, b, sb, NULL, ns == 1 ? -1 : 0) : NULL;
    }
    snprintf(hint, sizeof hint, "%s.f", name);
    qd_value *yf = qd_graph_new_value(g, NULL, hint);
    if (!xf || !wf || (b && !bf) || !yf)
        return -1;
    /* The QLinear node's attributes are the Conv's (QLinearMatMul has
     * none): they move to the new node. */
    qd_attr *attrs = n->attrs;
    int n_attrs = n->n_attrs;
    n->attrs = NULL;
    n->n_attrs = 0;
    qd_graph_remove_node(g, n);
    qd_value *ins[3] = {xf, wf, bf};
    qd_node *op = qd_graph_add_node(g, conv ? "Conv" : "MatMul", "", name, ins, bf ? 3 : 2, &yf, 1);
    if (!op) {
        for (int i = 0; i < n_attrs; i++)
            qd_attr_clear(&attrs[i]);
        qd_free(attrs);
        return -1;
    }
    op->attrs = attrs;
    op->n_attrs = n_attrs;
    qd_value *qin[3] = {yf, sy, zy};
    snprintf(hint, sizeof hint, "%s.q", name);
    return qd_graph_add_node(g, "QuantizeLinear", "", hint, qin, zy ? 3 : 2, &y, 1) ? 1 : -1;
}

qd_status qd_graph_qlinear_to_qdq(qd_graph *g)
{
    for (size_t i = 0; i < g->n_nodes;) {
        qd_node *n = g->nodes[i];
        if (n->op != QD_OP_QLINEAR_CONV && n->op != QD_OP_QLINEAR_MATMUL) {
            i++;
            continue;
        }
        char name[512];
        snprintf(name, sizeof name, "%s", n->name);
        int r = rewrite(g, n);
        if (r < 0)
            return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY,
                                 "node '%s': out of memory rewriting it as QDQ", name);
        if (r == 0)
            i++; /* else n is gone and nodes[i] is the next one */
    }
    return QD_OK;
}
