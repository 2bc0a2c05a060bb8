/* Quantize/DequantizeLinear insertion, TensorRT style (see qdq_insert.h). */
#include "quant/qdq_insert.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "quant/observer.h"

#define QDQ_MIN_OPSET 13

static const char *vname(const qd_value *v)
{
    return v && v->name ? v->name : "?";
}

/* Checks the arguments common to both kinds; *out = the input value. */
static qd_status check_point(qd_graph *g, qd_node *consumer, int input, const char *what,
                             qd_value **out)
{
    if (!g)
        return QD_STATUS_INVALID_ARGUMENT;
    if (!consumer)
        return qd_graph_fail(g, QD_STATUS_INVALID_ARGUMENT, "%s QDQ: no consumer node", what);
    if (input < 0 || input >= consumer->n_inputs || !consumer->inputs[input])
        return qd_graph_fail(g, QD_STATUS_INVALID_ARGUMENT,
                             "%s QDQ on node '%s' (%s): input %d does not exist", what,
                             consumer->name, consumer->op_type, input);
    qd_value *x = consumer->inputs[input];
    if (g->opset < QDQ_MIN_OPSET)
        return qd_graph_fail(g, QD_STATUS_UNSUPPORTED,
                             "%s QDQ on node '%s' (%s) input %d ('%s'): TensorRT QDQ needs "
                             "opset >= %d (per-axis DequantizeLinear), the model has opset %lld",
                             what, consumer->name, consumer->op_type, input, vname(x),
                             QDQ_MIN_OPSET, (long long)g->opset);
    if (x->dtype != QD_DT_UNDEFINED && x->dtype != QD_DT_FLOAT)
        return qd_graph_fail(g, QD_STATUS_UNSUPPORTED,
                             "%s QDQ on node '%s' (%s) input %d ('%s'): tensor is %s, "
                             "only float32 is quantized",
                             what, consumer->name, consumer->op_type, input, vname(x),
                             qd_dtype_name(x->dtype));
    *out = x;
    return QD_OK;
}

/* A value named `hint` if free, else a unique name derived from it. */
static qd_value *new_value(qd_graph *g, const char *hint)
{
    return qd_graph_find_value(g, hint) ? qd_graph_new_value(g, NULL, hint)
                                        : qd_graph_new_value(g, hint, NULL);
}

static int node_name_taken(const qd_graph *g, const char *name)
{
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->name && strcmp(g->nodes[i]->name, name) == 0)
            return 1;
    return 0;
}

/* Writes "<base><suffix>" into buf, with "_<k>" appended while a node of
 * that name exists. */
static const char *node_name(const qd_graph *g, const char *base, const char *suffix, char *buf,
                             size_t size)
{
    snprintf(buf, size, "%s%s", base, suffix);
    for (int k = 1; node_name_taken(g, buf); k++)
        snprintf(buf, size, "%s%s_%d", base, suffix, k);
    return buf;
}

static void hint(char *buf, size_t size, const char *base, const char *suffix)
{
    snprintf(buf, size, "%s%s", base, suffix);
}

/* Initializer holding a float32 scalar. */
static qd_value *scalar_f32(qd_graph *g, const char *name, float v)
{
    qd_tensor *t = qd_tensor_new(QD_DT_FLOAT, 0, NULL);
    if (!t)
        return NULL;
    ((float *)t->data)[0] = v;
    return qd_graph_add_initializer(g, name, t);
}

/* Initializer of int8 zeros: a scalar when n < 0, else [n]. */
static qd_value *zeros_i8(qd_graph *g, const char *name, int64_t n)
{
    qd_tensor *t = n < 0 ? qd_tensor_new(QD_DT_INT8, 0, NULL) : qd_tensor_new(QD_DT_INT8, 1, &n);
    return t ? qd_graph_add_initializer(g, name, t) : NULL;
}

/* 1 when v is a constant float scalar (rank 0 or [1]) equal to s. */
static int const_scale_is(const qd_value *v, float s)
{
    const qd_tensor *t = v ? v->konst : NULL;
    return t && t->dtype == QD_DT_FLOAT && qd_numel(t->rank, t->dims) == 1 && t->rank <= 1 &&
           ((const float *)t->data)[0] == s;
}

/* 1 when v is absent-free and a constant int8 scalar 0. */
static int const_zp_is_int8_zero(const qd_value *v)
{
    const qd_tensor *t = v ? v->konst : NULL;
    return t && t->dtype == QD_DT_INT8 && qd_numel(t->rank, t->dims) == 1 && t->rank <= 1 &&
           ((const int8_t *)t->data)[0] == 0;
}

/* 1 when n is a per-tensor Q or DQ node (op) with scale s and int8 zp 0. */
static int is_qdq_with(const qd_node *n, qd_op op, float s)
{
    return n->op == op && n->n_inputs >= 3 && const_scale_is(n->inputs[1], s) &&
           const_zp_is_int8_zero(n->inputs[2]) && !qd_node_attr(n, "block_size");
}

/* The output of an existing Q -> DQ pair on x with scale s, or NULL. */
static qd_value *find_pair(const qd_value *x, float s)
{
    for (size_t i = 0; i < x->n_uses; i++) {
        const qd_node *q = x->uses[i].node;
        if (x->uses[i].input != 0 || !is_qdq_with(q, QD_OP_QUANTIZE_LINEAR, s) ||
            q->n_outputs < 1 || !q->outputs[0])
            continue;
        const qd_value *qy = q->outputs[0];
        for (size_t j = 0; j < qy->n_uses; j++) {
            const qd_node *dq = qy->uses[j].node;
            if (qy->uses[j].input == 0 && is_qdq_with(dq, QD_OP_DEQUANTIZE_LINEAR, s) &&
                dq->n_outputs >= 1 && dq->outputs[0])
                return dq->outputs[0];
        }
    }
    return NULL;
}

static qd_status oom(qd_graph *g, const qd_node *consumer, const qd_value *x)
{
    return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY,
                         "out of memory inserting QDQ on node '%s' tensor '%s'", consumer->name,
                         vname(x));
}

qd_status qd_qdq_insert_activation(qd_graph *g, qd_node *consumer, int input, float amax)
{
    qd_value *x;
    qd_status st = check_point(g, consumer, input, "activation", &x);
    if (st != QD_OK)
        return st;
    if (!(amax >= 0.0f) || isinf(amax))
        return qd_graph_fail(g, QD_STATUS_INVALID_ARGUMENT,
                             "activation QDQ on node '%s' input %d ('%s'): amax %g must be "
                             "finite and >= 0",
                             consumer->name, input, vname(x), (double)amax);
    float scale = qd_observer_scale(amax);

    /* Already quantized: the input is a DQ output. */
    if (x->producer && x->producer->op == QD_OP_DEQUANTIZE_LINEAR) {
        if (is_qdq_with(x->producer, QD_OP_DEQUANTIZE_LINEAR, scale))
            return QD_OK;
        return qd_graph_fail(g, QD_STATUS_INVALID_ARGUMENT,
                             "activation QDQ on node '%s' input %d: tensor '%s' already comes "
                             "from DequantizeLinear '%s' with another scale",
                             consumer->name, input, vname(x), x->producer->name);
    }

    qd_value *y = find_pair(x, scale);
    if (!y) {
        char h[512], nn[512];
        hint(h, sizeof h, x->name, "_scale");
        qd_value *s = scalar_f32(g, h, scale);
        hint(h, sizeof h, x->name, "_zero_point");
        qd_value *z = s ? zeros_i8(g, h, -1) : NULL;
        hint(h, sizeof h, x->name, "_QuantizeLinear_Output");
        qd_value *qy = z ? new_value(g, h) : NULL;
        hint(h, sizeof h, x->name, "_DequantizeLinear_Output");
        y = qy ? new_value(g, h) : NULL;
        if (!y)
            return oom(g, consumer, x);
        if (x->rank >= 0) {
            qd_value_set_shape(qy, QD_DT_INT8, x->rank, x->dims);
            qd_value_set_shape(y, QD_DT_FLOAT, x->rank, x->dims);
        } else {
            qy->dtype = QD_DT_INT8;
            y->dtype = QD_DT_FLOAT;
        }
        qd_value *qin[3] = {x, s, z}, *dqin[3] = {qy, s, z};
        if (!qd_graph_add_node(g, "QuantizeLinear", "",
                               node_name(g, x->name, "_QuantizeLinear", nn, sizeof nn), qin, 3,
                               &qy, 1) ||
            !qd_graph_add_node(g, "DequantizeLinear", "",
                               node_name(g, x->name, "_DequantizeLinear", nn, sizeof nn), dqin,
                               3, &y, 1))
            return oom(g, consumer, x);
    }
    qd_node_set_input(consumer, input, y);
    return qd_graph_toposort(g);
}

/* Drops v from the model's initializers when nothing reads it any more. */
static void drop_unused_initializer(qd_graph *g, qd_value *v)
{
    if (v->n_uses || v->is_output || v->is_input || !v->is_initializer)
        return;
    size_t w = 0;
    for (size_t i = 0; i < g->n_initializers; i++)
        if (g->initializers[i] != v)
            g->initializers[w++] = g->initializers[i];
    g->n_initializers = w;
    v->is_initializer = 0;
}

qd_status qd_qdq_insert_weight(qd_graph *g, qd_node *consumer, int input, int axis)
{
    qd_value *w;
    qd_status st = check_point(g, consumer, input, "weight", &w);
    if (st != QD_OK)
        return st;
    const qd_tensor *t = w->konst;
    if (!t || w->producer)
        return qd_graph_fail(g, QD_STATUS_INVALID_ARGUMENT,
                             "weight QDQ on node '%s' (%s) input %d: tensor '%s' is not a "
                             "constant initializer",
                             consumer->name, consumer->op_type, input, vname(w));
    if (t->dtype != QD_DT_FLOAT)
        return qd_graph_fail(g, QD_STATUS_UNSUPPORTED,
                             "weight QDQ on node '%s' input %d: tensor '%s' is %s, only float32 "
                             "weights are quantized",
                             consumer->name, input, vname(w), qd_dtype_name(t->dtype));
    if (t->layout != QD_LAYOUT_PLAIN)
        return qd_graph_fail(g, QD_STATUS_UNSUPPORTED,
                             "weight QDQ on node '%s': tensor '%s' is not in plain layout",
                             consumer->name, vname(w));
    if (axis < -1 || axis >= t->rank)
        return qd_graph_fail(g, QD_STATUS_INVALID_ARGUMENT,
                             "weight QDQ on node '%s' input %d ('%s'): axis %d out of range for "
                             "rank %d",
                             consumer->name, input, vname(w), axis, t->rank);

    /* [outer, C, inner] split around the channel axis; C = 1 per tensor. */
    int64_t outer = 1, C = 1, inner = 1;
    for (int d = 0; d < t->rank; d++) {
        if (axis < 0 || d > axis)
            inner *= t->dims[d];
        else if (d < axis)
            outer *= t->dims[d];
        else
            C = t->dims[d];
    }
    int64_t sdim = C;
    qd_tensor *scale = axis < 0 ? qd_tensor_new(QD_DT_FLOAT, 0, NULL)
                                : qd_tensor_new(QD_DT_FLOAT, 1, &sdim);
    qd_tensor *q = qd_tensor_new(QD_DT_INT8, t->rank, t->dims);
    if (!scale || !q) {
        qd_tensor_delete(scale);
        qd_tensor_delete(q);
        return oom(g, consumer, w);
    }
    const float *src = t->data;
    float *sc = scale->data;
    int8_t *dst = q->data;
    for (int64_t c = 0; c < C; c++) {
        float amax = 0.0f;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                float a = fabsf(src[(o * C + c) * inner + i]);
                if (a > amax || isnan(a))
                    amax = a;
            }
        if (isnan(amax) || isinf(amax)) {
            qd_tensor_delete(scale);
            qd_tensor_delete(q);
            return qd_graph_fail(g, QD_STATUS_INVALID_ARGUMENT,
                                 "weight QDQ on node '%s': tensor '%s' channel %lld holds NaN "
                                 "or Inf",
                                 consumer->name, vname(w), (long long)c);
        }
        sc[c] = qd_observer_scale(amax);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t k = (o * C + c) * inner + i;
                /* x / scale in float, round half to even (default rounding
                 * mode), saturate: as QuantizeLinear computes it. */
                float r = nearbyintf(src[k] / sc[c]);
                if (r > 127.0f)
                    r = 127.0f;
                if (r < -127.0f)
                    r = -127.0f;
                dst[k] = (int8_t)r;
            }
    }

    char h[512], nn[512];
    hint(h, sizeof h, w->name, "_int8");
    qd_value *wq = qd_graph_add_initializer(g, h, q); /* takes q */
    hint(h, sizeof h, w->name, "_scale");
    qd_value *s = wq ? qd_graph_add_initializer(g, h, scale) : (qd_tensor_delete(scale), NULL);
    hint(h, sizeof h, w->name, "_zero_point");
    qd_value *z = s ? zeros_i8(g, h, axis < 0 ? -1 : C) : NULL;
    hint(h, sizeof h, w->name, "_DequantizeLinear_Output");
    qd_value *y = z ? new_value(g, h) : NULL;
    if (!y)
        return oom(g, consumer, w);
    qd_value_set_shape(y, QD_DT_FLOAT, t->rank, t->dims);
    qd_value *dqin[3] = {wq, s, z};
    qd_node *dq = qd_graph_add_node(g, "DequantizeLinear", "",
                                    node_name(g, w->name, "_DequantizeLinear", nn, sizeof nn),
                                    dqin, 3, &y, 1);
    if (!dq || (axis >= 0 && qd_node_set_attr_int(dq, "axis", axis) != 0))
        return oom(g, consumer, w);
    qd_node_set_input(consumer, input, y);
    drop_unused_initializer(g, w);
    return qd_graph_toposort(g);
}

qd_status qd_qdq_weight_axis(qd_graph *g, const qd_node *node, int input, int *axis)
{
    if (!g || !node || !axis)
        return g ? qd_graph_fail(g, QD_STATUS_INVALID_ARGUMENT, "weight axis: missing argument")
                 : QD_STATUS_INVALID_ARGUMENT;
    const qd_value *w = input >= 0 && input < node->n_inputs ? node->inputs[input] : NULL;
    int rank = w ? w->rank : -1;
    if (node->op == QD_OP_CONV && input == 1) {
        *axis = 0;
        return QD_OK;
    }
    if (node->op == QD_OP_GEMM && input == 1) {
        int64_t trans_b;
        qd_status st = qd_node_attr_int(g, node, "transB", 0, &trans_b);
        if (st != QD_OK)
            return st;
        *axis = trans_b ? 0 : 1;
        return QD_OK;
    }
    if (node->op == QD_OP_MATMUL && input == 1 && rank >= 2) {
        *axis = rank - 1;
        return QD_OK;
    }
    return qd_graph_fail(g, QD_STATUS_UNSUPPORTED,
                         "no per-channel weight axis for node '%s' (%s) input %d ('%s')",
                         node->name, node->op_type, input, vname(w));
}

qd_status qd_qdq_insert_point(qd_graph *g, const qd_qdq_point_spec *spec, float amax)
{
    if (!g)
        return QD_STATUS_INVALID_ARGUMENT;
    if (!spec || !spec->node)
        return qd_graph_fail(g, QD_STATUS_INVALID_ARGUMENT, "QDQ point: no node");
    const qd_node *n = spec->node;
    const qd_value *v = spec->input >= 0 && spec->input < n->n_inputs ? n->inputs[spec->input]
                                                                      : NULL;
    if (v && v->konst && v->is_initializer && !v->producer)
        return qd_qdq_insert_weight(g, spec->node, spec->input, spec->per_channel_axis);
    return qd_qdq_insert_activation(g, spec->node, spec->input, amax);
}
