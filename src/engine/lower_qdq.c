/* Which QDQ groups become INT8 kernels (see lower_qdq.h). Pure analysis of
 * the graph: the engine's step planner acts on the answers. */
#include "engine/lower_qdq.h"

#include <math.h>
#include <string.h>

/* Integer attribute without a graph for messages; def when absent. */
static int64_t attr_int(const qd_node *n, const char *name, int64_t def)
{
    const qd_attr *a = qd_node_attr(n, name);
    return a && a->type == QD_ATTR_INT ? a->i : def;
}

static int64_t konst_numel(const qd_value *v)
{
    return v && v->konst ? qd_numel(v->konst->rank, v->konst->dims) : -1;
}

/* Zero point input j of a Q/DQ node: absent, or int8 constant all zero. */
static int zero_point_is_int8_zero(const qd_node *n, int j)
{
    if (j >= n->n_inputs || !n->inputs[j])
        return n->op == QD_OP_DEQUANTIZE_LINEAR; /* Q without zp means uint8 */
    const qd_value *z = n->inputs[j];
    if (!z->konst || z->konst->dtype != QD_DT_INT8)
        return 0;
    const int8_t *d = z->konst->data;
    for (int64_t i = 0, k = konst_numel(z); i < k; i++)
        if (d[i] != 0)
            return 0;
    return 1;
}

/* Zero point input j of a Q/DQ node reading or writing q8 (int8 or
 * uint8): absent (0; a Q without one writes uint8) or one constant of q8's
 * type. Returns 1 and sets *zp, or 0. */
static int zero_point_scalar(const qd_node *n, int j, qd_dtype q8, int32_t *zp)
{
    *zp = 0;
    if (j >= n->n_inputs || !n->inputs[j])
        return n->op == QD_OP_DEQUANTIZE_LINEAR || q8 == QD_DT_UINT8;
    const qd_value *z = n->inputs[j];
    if (!z->konst || z->konst->dtype != q8 || konst_numel(z) != 1)
        return 0;
    *zp = q8 == QD_DT_UINT8 ? ((const uint8_t *)z->konst->data)[0]
                            : ((const int8_t *)z->konst->data)[0];
    return 1;
}

/* The one positive float scale of a Q/DQ node, or 0. */
static float scalar_scale(const qd_node *n)
{
    const qd_value *s = n->n_inputs > 1 ? n->inputs[1] : NULL;
    if (!s || !s->konst || s->konst->dtype != QD_DT_FLOAT || konst_numel(s) != 1)
        return 0.0f;
    float v = ((const float *)s->konst->data)[0];
    return v > 0.0f ? v : 0.0f;
}

qd_value *qd_lower_dq_source_zp(const qd_value *v, float *scale, int32_t *zp)
{
    const qd_node *dq = v ? v->producer : NULL;
    if (!dq || dq->op != QD_OP_DEQUANTIZE_LINEAR || dq->n_inputs < 2 || !dq->inputs[0])
        return NULL;
    qd_value *q = dq->inputs[0];
    if (q->konst || (q->dtype != QD_DT_INT8 && q->dtype != QD_DT_UINT8) ||
        !zero_point_scalar(dq, 2, q->dtype, zp) || qd_node_attr(dq, "block_size"))
        return NULL;
    float s = scalar_scale(dq);
    if (s <= 0.0f)
        return NULL;
    *scale = s;
    return q;
}

qd_value *qd_lower_dq_source(const qd_value *v, float *scale)
{
    int32_t zp;
    float s;
    qd_value *q = qd_lower_dq_source_zp(v, &s, &zp);
    if (!q || q->dtype != QD_DT_INT8 || zp != 0)
        return NULL;
    *scale = s;
    return q;
}

qd_value *qd_lower_bias_source(const qd_node *n)
{
    if ((n->op != QD_OP_CONV && n->op != QD_OP_GEMM) || n->n_inputs < 3 || !n->inputs[2])
        return NULL;
    const qd_node *dq = n->inputs[2]->producer;
    if (!dq || dq->op != QD_OP_DEQUANTIZE_LINEAR || dq->n_inputs < 2 || !dq->inputs[0] ||
        !dq->inputs[1] || qd_node_attr(dq, "block_size"))
        return NULL;
    qd_value *b = dq->inputs[0], *s = dq->inputs[1];
    if (!b->konst || b->konst->dtype != QD_DT_INT32 || b->konst->rank > 1 || !s->konst ||
        s->konst->dtype != QD_DT_FLOAT)
        return NULL;
    if (dq->n_inputs > 2 && dq->inputs[2]) { /* a zero point must be int32 zeros */
        const qd_value *z = dq->inputs[2];
        if (!z->konst || z->konst->dtype != QD_DT_INT32)
            return NULL;
        for (int64_t i = 0, k = konst_numel(z); i < k; i++)
            if (((const int32_t *)z->konst->data)[i] != 0)
                return NULL;
    }
    int64_t ns = konst_numel(s);
    if (ns != 1 && (ns != konst_numel(b) || s->konst->rank != 1 ||
                    (attr_int(dq, "axis", 1) != 0 && attr_int(dq, "axis", 1) != -1)))
        return NULL;
    return b;
}

/* A quantized bias b = DQ(int32, s_b) is the accumulator's units only when
 * s_b[c] = s_x * s_w[c] (as quantizers write it, up to float rounding):
 * then the kernel adds its int32 values to the accumulator as they are. */
static int bias_scale_matches(const qd_node *n, const qd_quant_params *q)
{
    const qd_value *b = qd_lower_bias_source(n);
    if (!b)
        return 0;
    const qd_value *s = n->inputs[2]->producer->inputs[1];
    const float *sb = s->konst->data;
    int64_t nb = konst_numel(b), ns = konst_numel(s);
    if (q->n_w_scale != 1 && nb != q->n_w_scale)
        return 0;
    for (int64_t c = 0; c < nb; c++) {
        double want = (double)q->src_scale * q->w_scale[q->n_w_scale == 1 ? 0 : c];
        double got = sb[ns == 1 ? 0 : c];
        if (!(fabs(got - want) <= 1e-6 * want))
            return 0;
    }
    return 1;
}

/* The output-channel axis of n's weight (input 1), or -1. */
static int weight_axis(const qd_node *n, const qd_value *w)
{
    if (n->op == QD_OP_CONV)
        return 0;
    if (w->rank != 2)
        return -1;
    if (n->op == QD_OP_GEMM)
        return attr_int(n, "transB", 0) ? 0 : 1;
    return 1; /* MatMul: [K, N] */
}

int qd_lower_anchor(const qd_node *n, qd_value **x_q, qd_value **w_q, qd_quant_params *q)
{
    if ((n->op != QD_OP_CONV && n->op != QD_OP_MATMUL && n->op != QD_OP_GEMM) || n->n_inputs < 2 ||
        !n->inputs[0] || !n->inputs[1] || n->n_outputs < 1 || !n->outputs[0] ||
        n->outputs[0]->dtype != QD_DT_FLOAT)
        return 0;
    if (n->op == QD_OP_GEMM && (attr_int(n, "transA", 0) != 0 ||
                                (qd_node_attr(n, "alpha") && qd_node_attr(n, "alpha")->f != 1.0f)))
        return 0;
    memset(q, 0, sizeof *q);
    qd_value *x = qd_lower_dq_source(n->inputs[0], &q->src_scale);
    const qd_node *dqw = n->inputs[1]->producer;
    float b_scale;
    qd_value *b = n->op == QD_OP_MATMUL ? qd_lower_dq_source(n->inputs[1], &b_scale) : NULL;
    if (x && b) {
        /* Two activations: the scale is the DQ's constant scalar. */
        q->w_scale = dqw->inputs[1]->konst->data;
        q->n_w_scale = 1;
        q->runtime_b = 1;
        *x_q = x;
        *w_q = b;
        return 1;
    }
    if (!x) /* a constant weight takes uint8 or zero-pointed activations too */
        x = qd_lower_dq_source_zp(n->inputs[0], &q->src_scale, &q->src_zp);
    if (!x || !dqw || dqw->op != QD_OP_DEQUANTIZE_LINEAR || dqw->n_inputs < 2)
        return 0;
    qd_value *w = dqw->inputs[0], *s = dqw->inputs[1];
    if (!w || !w->konst || w->dtype != QD_DT_INT8 || !s || !s->konst ||
        s->konst->dtype != QD_DT_FLOAT || !zero_point_is_int8_zero(dqw, 2) ||
        qd_node_attr(dqw, "block_size"))
        return 0;
    int axis = weight_axis(n, w);
    if (axis < 0)
        return 0;
    int64_t ns = konst_numel(s);
    if (ns != 1) {
        int64_t dq_axis = attr_int(dqw, "axis", 1);
        if (dq_axis < 0)
            dq_axis += w->rank;
        if (dq_axis != axis || s->konst->rank != 1 || ns != w->dims[axis])
            return 0;
    }
    const float *sc = s->konst->data;
    for (int64_t i = 0; i < ns; i++)
        if (!(sc[i] > 0.0f))
            return 0;
    q->w_scale = sc;
    q->n_w_scale = ns;
    /* A bias that is DequantizeLinear output must be a quantized bias at
     * the accumulator's scale (else the group runs as written). */
    const qd_value *bias = n->op != QD_OP_MATMUL && n->n_inputs > 2 ? n->inputs[2] : NULL;
    if (bias && bias->producer && bias->producer->op == QD_OP_DEQUANTIZE_LINEAR &&
        !bias_scale_matches(n, q))
        return 0;
    *x_q = x;
    *w_q = w;
    return 1;
}

qd_node *qd_lower_requant_target_zp(const qd_value *v, float *scale, int32_t *zp)
{
    if (!v || v->is_output || v->n_uses != 1)
        return NULL;
    qd_node *q = v->uses[0].node;
    if (q->op != QD_OP_QUANTIZE_LINEAR || q->n_inputs < 2 || q->inputs[0] != v ||
        q->n_outputs < 1 || !q->outputs[0] ||
        (q->outputs[0]->dtype != QD_DT_INT8 && q->outputs[0]->dtype != QD_DT_UINT8) ||
        !zero_point_scalar(q, 2, q->outputs[0]->dtype, zp) || qd_node_attr(q, "block_size"))
        return NULL;
    float s = scalar_scale(q);
    if (s <= 0.0f)
        return NULL;
    *scale = s;
    return q;
}

qd_node *qd_lower_requant_target(const qd_value *v, float *scale)
{
    float s;
    int32_t zp;
    qd_node *q = qd_lower_requant_target_zp(v, &s, &zp);
    if (!q || q->outputs[0]->dtype != QD_DT_INT8 || zp != 0)
        return NULL;
    *scale = s;
    return q;
}
