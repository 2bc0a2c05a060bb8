/* Q propagation (issue 5), as TensorRT does it: a QuantizeLinear after an
 * op that commutes with a per-tensor quantization moves above that op, so
 * the op runs on int8 and the producer before it can write int8 itself
 * (ResNet's Conv+Relu -> MaxPool -> Q -> DQ -> Conv: the conv then writes
 * the int8 tensor the pool reads).
 *
 *   x -> OP -> Q(s, zp) -> z    becomes    x -> Q(s, zp) -> OP -> z
 *
 * Exact, not approximate: Q is monotone non-decreasing and acts on each
 * element alone, so it commutes with taking a max over a window (MaxPool),
 * with moving or selecting elements (Reshape, Flatten, Squeeze, Unsqueeze,
 * Transpose, Slice, Concat) and, for int8 with zero point 0, with Relu
 * (Q(x) <= 0 = Q(0) for every x <= 0). AveragePool averages: it does not
 * commute. A Relu right after a Conv/MatMul/Gemm/Add keeps its Q below it:
 * the engine fuses that Relu into the kernel, which then writes int8.
 * A Q that lands right after a DQ of the same scale, zero point and type
 * (onnxruntime puts Q -> DQ around a MaxPool too) cancels with it. */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "ir/graph.h"
#include "passes/passes.h"

static int64_t konst_numel(const qd_value *v)
{
    return v && v->konst ? qd_numel(v->konst->rank, v->konst->dims) : -1;
}

/* 1 when Q node q quantizes per tensor to int8/uint8 with constant scale
 * and zero point (one value each); *zp_zero tells whether zp == 0. */
static int per_tensor_quantize(const qd_node *q, int *zp_zero)
{
    if (q->op != QD_OP_QUANTIZE_LINEAR || q->n_inputs < 2 || q->n_inputs > 3 || !q->inputs[0] ||
        q->n_outputs != 1 || !q->outputs[0] || qd_node_attr(q, "block_size"))
        return 0;
    const qd_value *s = q->inputs[1], *z = q->n_inputs > 2 ? q->inputs[2] : NULL;
    qd_dtype dt = q->outputs[0]->dtype;
    if ((dt != QD_DT_INT8 && dt != QD_DT_UINT8) || !s || konst_numel(s) != 1 ||
        !qd_dtype_is_float(s->konst->dtype) || !(qd_tensor_get_f64(s->konst, 0) > 0.0))
        return 0;
    *zp_zero = 1;
    if (z) {
        if (konst_numel(z) != 1 || z->konst->dtype != dt)
            return 0;
        *zp_zero = qd_tensor_get_f64(z->konst, 0) == 0.0;
    }
    return 1;
}

/* Ops the engine fuses a following Relu into (a oneDNN post-op): moving a
 * Q above that Relu would split it off into a step of its own. */
static int fuses_relu(const qd_value *x)
{
    const qd_node *p = x ? x->producer : NULL;
    return p && (p->op == QD_OP_CONV || p->op == QD_OP_CONV_TRANSPOSE || p->op == QD_OP_MATMUL ||
                 p->op == QD_OP_GEMM || p->op == QD_OP_ADD);
}

/* 1 when op node n (whose output 0 Q node q alone reads) commutes with q. */
static int commutes(const qd_node *n, const qd_node *q, int zp_zero)
{
    const qd_value *y = n->outputs[0];
    if (!y || y->is_output || y->n_uses != 1 || y->uses[0].node != q || q->inputs[0] != y ||
        y->dtype != QD_DT_FLOAT || n->n_inputs < 1)
        return 0;
    for (int o = 1; o < n->n_outputs; o++) /* MaxPool's Indices: must be unread */
        if (n->outputs[o] && (n->outputs[o]->n_uses || n->outputs[o]->is_output))
            return 0;
    int data_inputs = 1; /* inputs that carry the activation; the rest constants */
    switch (n->op) {
    case QD_OP_MAX_POOL:
    case QD_OP_RESHAPE:
    case QD_OP_FLATTEN:
    case QD_OP_SQUEEZE:
    case QD_OP_UNSQUEEZE:
    case QD_OP_TRANSPOSE:
    case QD_OP_SLICE: break;
    case QD_OP_RELU:
        if (!zp_zero || q->outputs[0]->dtype != QD_DT_INT8 || fuses_relu(n->inputs[0]))
            return 0;
        break;
    case QD_OP_CONCAT: data_inputs = n->n_inputs; break;
    default: return 0;
    }
    if (n->op != QD_OP_CONCAT && n->n_outputs != 1 && n->op != QD_OP_MAX_POOL)
        return 0;
    for (int j = 0; j < n->n_inputs; j++) {
        const qd_value *v = n->inputs[j];
        if (j < data_inputs ? !v || v->dtype != QD_DT_FLOAT : v && !v->konst)
            return 0;
    }
    return 1;
}

/* A new value: x's shape, dtype dt. */
static qd_value *quantized_like(qd_graph *g, const qd_value *x, qd_dtype dt)
{
    char hint[256];
    snprintf(hint, sizeof hint, "%s_quantized", x->name);
    qd_value *t = qd_graph_new_value(g, NULL, hint);
    if (!t)
        return NULL;
    qd_value_set_shape(t, dt, x->rank, x->dims);
    /* Symbolic dims (batch) keep their names: the engine binds them. */
    for (int d = 0; d < x->rank && d < QD_MAX_RANK; d++)
        if (x->dim_params[d] && !(t->dim_params[d] = qd_strdup(x->dim_params[d]))) {
            qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "out of memory");
            return NULL;
        }
    return t;
}

/* Moves Q node q above op node n (see the file comment). 1 when done, 0
 * when out of memory (g->err set). */
static int move_above(qd_graph *g, qd_node *n, qd_node *q)
{
    qd_value *y = n->outputs[0], *z = q->outputs[0];
    qd_dtype dt = z->dtype;
    if (n->op != QD_OP_CONCAT) {
        /* Reuse q: it now reads x and writes t; n reads t and writes z. */
        qd_value *x = n->inputs[0], *t = quantized_like(g, x, dt);
        if (!t)
            return 0;
        qd_node_set_input(q, 0, x);
        q->outputs[0] = t;
        t->producer = q;
        t->producer_output = 0;
        qd_node_set_input(n, 0, t);
    } else {
        /* One Q per Concat input, with q's scale and zero point. */
        for (int j = 0; j < n->n_inputs; j++) {
            qd_value *x = n->inputs[j], *t = quantized_like(g, x, dt);
            if (!t)
                return 0;
            char name[512];
            snprintf(name, sizeof name, "%s_in%d", q->name, j);
            qd_value *ins[3] = {x, q->inputs[1], q->n_inputs > 2 ? q->inputs[2] : NULL};
            if (!qd_graph_add_node(g, "QuantizeLinear", q->domain, name, ins, q->n_inputs, &t, 1))
                return 0;
            qd_node_set_input(n, j, t);
        }
        q->outputs[0] = NULL; /* z is n's now */
        qd_graph_remove_node(g, q);
    }
    n->outputs[0] = z;
    z->producer = n;
    z->producer_output = 0;
    y->producer = NULL; /* read by nobody now: pruned by the caller */
    return 1;
}

/* The scale and zero point of a per-tensor Q or DQ node as numbers; 0
 * when either is not one constant value. */
static int scale_zp(const qd_node *n, double *scale, double *zp)
{
    const qd_value *s = n->n_inputs > 1 ? n->inputs[1] : NULL;
    const qd_value *z = n->n_inputs > 2 ? n->inputs[2] : NULL;
    if (!s || konst_numel(s) != 1 || !qd_dtype_is_float(s->konst->dtype) || (z && konst_numel(z) != 1))
        return 0;
    *scale = qd_tensor_get_f64(s->konst, 0);
    *zp = z ? qd_tensor_get_f64(z->konst, 0) : 0.0;
    return 1;
}

/* Q node q reading DQ(v) with the same scale, zero point and 8-bit type
 * (onnxruntime's Conv -> Q -> DQ -> MaxPool -> Q once that Q moved up):
 * Q(DQ(v)) is v exactly ((v - zp) * s / s rounds back to v - zp), so q's
 * readers read v. 1 when done. */
static int fold_round_trip(qd_graph *g, qd_node *q)
{
    qd_value *x = q->inputs[0], *z = q->outputs[0];
    qd_node *dq = x->producer;
    double s0, z0, s1, z1;
    if (!dq || dq->op != QD_OP_DEQUANTIZE_LINEAR || dq->n_inputs < 2 || !dq->inputs[0] ||
        dq->inputs[0]->dtype != z->dtype || z->is_output || qd_node_attr(dq, "block_size") ||
        !scale_zp(dq, &s0, &z0) || !scale_zp(q, &s1, &z1) || s0 != s1 || z0 != z1)
        return 0;
    qd_value *v = dq->inputs[0];
    qd_graph_replace_uses(g, z, v);
    qd_graph_remove_node(g, q);
    if (!x->n_uses && !x->is_output)
        qd_graph_remove_node(g, dq);
    return 1;
}

qd_status qd_graph_propagate_quantize(qd_graph *g, int *count)
{
    if (count)
        *count = 0;
    if (!g)
        return QD_STATUS_INVALID_ARGUMENT;
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t i = 0; i < g->n_nodes; i++) {
            qd_node *q = g->nodes[i];
            int zp_zero;
            if (!per_tensor_quantize(q, &zp_zero))
                continue;
            qd_node *n = q->inputs[0]->producer;
            if (n && n->op == QD_OP_DEQUANTIZE_LINEAR) {
                if (!fold_round_trip(g, q))
                    continue;
            } else if (!n || !commutes(n, q, zp_zero)) {
                continue;
            } else if (!move_above(g, n, q)) {
                return g->err.status ? g->err.status : QD_STATUS_OUT_OF_MEMORY;
            }
            if (count)
                (*count)++;
            changed = 1; /* removed nodes shift indices: the next pass catches up */
        }
    }
    return QD_OK;
}
