/* INT8 MatMul / Gemm with a constant int8 weight on oneDNN (s8 x s8, int32
 * accumulation), the kernel of a lowered Linear (engine/lower_qdq.h).
 *
 * The activation [..., M, K] is one [rows, K] matrix (the weight is shared
 * by every row); the weight is [K, N] (MatMul, Gemm transB = 0) or [N, K]
 * (Gemm transB = 1), reordered once. Scales as in conv2d_s8_dnnl.c:
 * oscale[j] = s_x * s_w[j] (/ s_y for an int8 output), a Gemm's C is the
 * bias in accumulator units (an int32 C, onnxruntime's, is so already);
 * uint8 activations' zero points are oneDNN's runtime zero points; the
 * fused chain (bias Add, GELU, residual) is the float chain's post-ops. */
#include <string.h>

#include "base/alloc.h"
#include "engine/kernels/dnnl/dnnl_common.h"

typedef struct matmul_s8_state {
    qd_dnnl_state_head head;
    qd_dnnl_s8_prim p;
    int64_t rows, k, n; /* batched: the element counts of A, B and Y */
    int batched;        /* B is an int8 activation, set at run time */
} matmul_s8_state;

static void matmul_s8_release(void *p)
{
    matmul_s8_state *s = p;
    if (!s)
        return;
    qd_dnnl_s8_destroy(&s->p);
    qd_free(s);
}

static int64_t attr_int(const qd_node *n, const char *name, int64_t def)
{
    const qd_attr *a = qd_node_attr(n, name);
    return a && a->type == QD_ATTR_INT ? a->i : def;
}

/* Plain row-major tag for rank 2..4. */
static dnnl_format_tag_t plain_tag(int rank)
{
    return rank == 2 ? dnnl_ab : rank == 3 ? dnnl_abc : dnnl_abcd;
}

/* Two int8 activations (attention's QK^T and AV): a batched s8 x s8 matmul
 * with one output scale s_a * s_b (/ s_y), nothing packed. */
static qd_status batched_prepare(const qd_kernel_args *a, void **state)
{
    qd_status st = QD_OK;
    qd_graph *g = a->graph;
    const qd_node *n = a->node;
    const qd_quant_params *q = a->quant;
    matmul_s8_state *s = NULL;
    *state = NULL;
    const qd_tensor *x = a->inputs[0], *w = a->inputs[1], *y = a->outputs[0];
    int int8_out = q->dst_scale > 0.0f, r = x->rank;
    if (x->dtype != QD_DT_INT8 || w->dtype != QD_DT_INT8 || r < 2 || r > 4 || w->rank != r ||
        y->rank != r || y->dtype != (int8_out ? QD_DT_INT8 : QD_DT_FLOAT) ||
        x->layout != QD_LAYOUT_PLAIN || w->layout != QD_LAYOUT_PLAIN ||
        y->layout != QD_LAYOUT_PLAIN)
        return qd_graph_fail(g, QD_STATUS_UNSUPPORTED,
                             "node '%s' (%s): the INT8 batched matmul needs plain int8 A and B "
                             "of one rank (2..4)",
                             n->name, n->op_type);
    s = qd_calloc(1, sizeof *s);
    if (!s)
        return qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "node '%s' (%s): out of memory", n->name,
                             n->op_type);
    s->rows = qd_numel(r, x->dims);
    s->k = qd_numel(r, w->dims);
    s->n = qd_numel(r, y->dims);
    s->batched = 1;
    dnnl_memory_desc_t src_md, wei_md, dst_md;
    dnnl_dims_t xd, wd, yd;
    for (int i = 0; i < r; i++) {
        xd[i] = x->dims[i];
        wd[i] = w->dims[i];
        yd[i] = y->dims[i];
    }
    QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&src_md, r, xd, dnnl_s8, plain_tag(r)));
    QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&wei_md, r, wd, dnnl_s8, plain_tag(r)));
    QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&dst_md, r, yd, int8_out ? dnnl_s8 : dnnl_f32,
                                                   plain_tag(r)));
    dnnl_matmul_desc_t md;
    QD_DNNL_TRY(g, n, dnnl_matmul_desc_init(&md, &src_md, &wei_md, NULL, &dst_md));
    float oscale = q->src_scale * q->w_scale[0];
    if (int8_out && !q->requant_post_op)
        oscale /= q->dst_scale;
    if ((st = qd_dnnl_s8_build(a, &md, &src_md, &dst_md, &wei_md, 1, 0, &oscale, &s->p,
                               &s->head)) != QD_OK)
        goto fail;
    *state = s;
    s = NULL;
fail:
    matmul_s8_release(s);
    return st;
}

static qd_status matmul_s8_prepare(const qd_kernel_args *a, void **state)
{
    if (a->quant && a->quant->runtime_b)
        return batched_prepare(a, state);
    qd_status st = QD_OK;
    qd_graph *g = a->graph;
    const qd_node *n = a->node;
    const qd_quant_params *q = a->quant;
    float *oscale = NULL, *bias_acc = NULL;
    matmul_s8_state *s = NULL;
    *state = NULL;
    const qd_tensor *x = a->inputs[0], *w = a->inputs[1];
    const qd_tensor *c = n->op == QD_OP_GEMM && n->n_inputs > 2 ? a->inputs[2] : NULL;
    const qd_tensor *y = a->outputs[0];
    int int8_out = q && q->dst_scale > 0.0f;
    int trans_b = n->op == QD_OP_GEMM && attr_int(n, "transB", 0);
    if (!q || (x->dtype != QD_DT_INT8 && x->dtype != QD_DT_UINT8) || w->dtype != QD_DT_INT8 ||
        !w->data || w->rank != 2 || x->rank < 1 ||
        (int8_out ? y->dtype != QD_DT_INT8 && y->dtype != QD_DT_UINT8 : y->dtype != QD_DT_FLOAT) ||
        x->layout != QD_LAYOUT_PLAIN || y->layout != QD_LAYOUT_PLAIN)
        return qd_graph_fail(g, QD_STATUS_UNSUPPORTED,
                             "node '%s' (%s): the INT8 matmul needs plain int8 A, a constant 2-D "
                             "int8 B and a float32 or int8 Y",
                             n->name, n->op_type);
    int64_t k = x->dims[x->rank - 1], nn = trans_b ? w->dims[0] : w->dims[1];
    int64_t wk = trans_b ? w->dims[1] : w->dims[0];
    int64_t rows = k ? qd_numel(x->rank, x->dims) / k : 0;
    int64_t c_n = c ? qd_numel(c->rank, c->dims) : 0;
    if (wk != k || rows <= 0 || qd_numel(y->rank, y->dims) != rows * nn ||
        (q->n_w_scale != 1 && q->n_w_scale != nn) ||
        (c && ((c->dtype != QD_DT_FLOAT && c->dtype != QD_DT_INT32) || (c_n != nn && c_n != 1) ||
               (qd_node_attr(n, "beta") && qd_node_attr(n, "beta")->f != 1.0f))))
        return qd_graph_fail(g, QD_STATUS_SHAPE_ERROR,
                             "node '%s' (%s): shapes do not fit an INT8 matmul", n->name,
                             n->op_type);
    s = qd_calloc(1, sizeof *s);
    oscale = qd_malloc((size_t)nn * sizeof *oscale);
    bias_acc = c ? qd_malloc((size_t)nn * sizeof *bias_acc) : NULL;
    if (!s || !oscale || (c && !bias_acc)) {
        st = qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "node '%s' (%s): out of memory", n->name,
                           n->op_type);
        goto fail;
    }
    s->rows = rows;
    s->k = k;
    s->n = nn;
    for (int64_t j = 0; j < nn; j++) {
        float acc_scale = q->src_scale * q->w_scale[q->n_w_scale == 1 ? 0 : j];
        oscale[j] = int8_out && !q->requant_post_op ? acc_scale / q->dst_scale : acc_scale;
        if (c) /* an int32 C is in accumulator units already */
            bias_acc[j] = c->dtype == QD_DT_INT32
                              ? (float)((const int32_t *)c->data)[c_n == 1 ? 0 : j]
                              : ((const float *)c->data)[c_n == 1 ? 0 : j] / acc_scale;
    }
    dnnl_memory_desc_t src_md, dst_md, wei_user, wei_any, bias_md;
    dnnl_dims_t sd = {rows, k}, dd = {rows, nn}, wd = {k, nn}, bd = {1, nn};
    dnnl_data_type_t y_dt = !int8_out ? dnnl_f32 : y->dtype == QD_DT_UINT8 ? dnnl_u8 : dnnl_s8;
    QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(
                          &src_md, 2, sd, x->dtype == QD_DT_UINT8 ? dnnl_u8 : dnnl_s8, dnnl_ab));
    QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, y_dt, dnnl_ab));
    QD_DNNL_TRY(g, n,
                dnnl_memory_desc_init_by_tag(&wei_user, 2, wd, dnnl_s8, trans_b ? dnnl_ba : dnnl_ab));
    QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&wei_any, 2, wd, dnnl_s8, dnnl_format_tag_any));
    QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&bias_md, 2, bd, dnnl_f32, dnnl_ab));
    dnnl_matmul_desc_t md;
    QD_DNNL_TRY(g, n, dnnl_matmul_desc_init(&md, &src_md, &wei_any, c ? &bias_md : NULL, &dst_md));
    /* The chain sees the output as the 2-D [rows, N] matrix it is. */
    qd_tensor y2 = *y;
    y2.rank = 2;
    y2.dims[0] = rows;
    y2.dims[1] = nn;
    const qd_tensor *ins[QD_STEP_MAX_INPUTS];
    qd_tensor flat[QD_STEP_MAX_INPUTS];
    for (int i = 0; i < a->n_inputs && i < QD_STEP_MAX_INPUTS; i++) {
        ins[i] = a->inputs[i];
        /* Full-shape operands (residuals) flattened like the output. */
        if (i >= n->n_inputs && ins[i] && ins[i]->rank == y->rank &&
            !memcmp(ins[i]->dims, y->dims, (size_t)y->rank * sizeof *y->dims)) {
            flat[i] = *ins[i];
            flat[i].rank = 2;
            flat[i].dims[0] = rows;
            flat[i].dims[1] = nn;
            ins[i] = &flat[i];
        }
    }
    qd_tensor *outs[1] = {&y2};
    qd_kernel_args a2 = *a;
    a2.inputs = ins;
    a2.outputs = outs;
    if ((st = qd_dnnl_s8_build(&a2, &md, &src_md, &dst_md, NULL, q->n_w_scale == 1 ? 1 : (int)nn,
                               q->n_w_scale == 1 ? 0 : 1 << 1, oscale, &s->p, &s->head)) != QD_OK ||
        (st = qd_dnnl_reorder_const(g, n, &wei_user, w->data, qd_dnnl_s8_weights_md(&s->p),
                                    &s->p.wei)) != QD_OK ||
        (c && (st = qd_dnnl_reorder_const(g, n, &bias_md, bias_acc, &bias_md, &s->p.bias)) != QD_OK))
        goto fail;
    *state = s;
    s = NULL;
fail:
    qd_free(oscale);
    qd_free(bias_acc);
    matmul_s8_release(s);
    return st;
}

static qd_status matmul_s8_execute(const qd_kernel_args *a, matmul_s8_state *s)
{
    const qd_tensor *x = a->inputs[0], *w = a->inputs[1], *y = a->outputs[0];
    int64_t want_x = s->batched ? s->rows : s->rows * s->k;
    int64_t want_y = s->batched ? s->n : s->rows * s->n;
    if (qd_numel(x->rank, x->dims) != want_x || qd_numel(y->rank, y->dims) != want_y ||
        (s->batched && qd_numel(w->rank, w->dims) != s->k))
        return qd_graph_fail(a->graph, QD_STATUS_SHAPE_ERROR,
                             "node '%s' (%s): shapes changed since the INT8 matmul was prepared",
                             a->node->name, a->node->op_type);
    return qd_dnnl_s8_execute(a, &s->p, s->batched ? w->data : NULL);
}

static qd_status matmul_s8_run(const qd_kernel_args *a)
{
    return a->state ? matmul_s8_execute(a, a->state)
                    : qd_dnnl_run_unprepared(a, matmul_s8_prepare, matmul_s8_release);
}

qd_kernel_impl qd_dnnl_matmul_s8_impl(void)
{
    return (qd_kernel_impl){"dnnl-s8", matmul_s8_run, matmul_s8_prepare, matmul_s8_release,
                            qd_dnnl_in_place_ok};
}
