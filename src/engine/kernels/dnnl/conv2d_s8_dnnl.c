/* INT8 Conv on oneDNN (s8 source, s8 weights, int32 accumulation with VNNI),
 * the kernel of a lowered QDQ group (engine/lower_qdq.h).
 *
 * dst = post_ops(oscale[c] * (acc + bias_acc[c])), oneDNN's order for int8:
 *   oscale[c] = s_x * s_w[c]            float output (real units), or
 *             = s_x * s_w[c] / s_y      int8 output (requantized: rounded
 *                                       half to even and saturated on store);
 *   bias_acc  = bias / (s_x * s_w[c])   the float bias in accumulator units
 *                                       (an int32 bias, onnxruntime's, is so
 *                                       already: DQ(b, s_x * s_w[c])).
 * Source and destination zero points (uint8 activations) are oneDNN's:
 * acc sums (x - zp_x) w, and zp_y is added after the post-ops.
 * The fused chain is the float chain (qd_dnnl_chain_post_ops); for an int8
 * output the engine fuses only what commutes with a positive scale (Relu,
 * one residual Add whose int8 operand is summed at s_r / s_y). Activations
 * come in the engine's layout (channels-last between convs); weights are
 * reordered once to the layout the primitive picks. */
#include <string.h>

#include "base/alloc.h"
#include "engine/kernels/dnnl/dnnl_common.h"

typedef struct conv_s8_state {
    qd_dnnl_state_head head;
    qd_dnnl_s8_prim p;
    int rank;
    int64_t in_dims[5], out_dims[5];
} conv_s8_state;

static void conv_s8_release(void *p)
{
    conv_s8_state *s = p;
    if (!s)
        return;
    qd_dnnl_s8_destroy(&s->p);
    qd_free(s);
}

/* A tensor with one channel or one spatial position has the same bytes in
 * both layouts (the engine calls it plain): described channels-last, as
 * oneDNN's int8 kernels want (on nchw they fall back to the reference). */
static dnnl_format_tag_t act_tag(const qd_tensor *t)
{
    int64_t spatial = 1;
    for (int i = 2; i < t->rank; i++)
        spatial *= t->dims[i];
    int cl = t->layout == QD_LAYOUT_NHWC || spatial == 1 || t->dims[1] == 1;
    return qd_dnnl_act_tag(cl ? QD_DNNL_NHWC : QD_DNNL_NCHW, t->rank);
}

/* Output scales and the bias in accumulator units (bias_acc may be NULL). */
static qd_status scales_and_bias(const qd_kernel_args *a, int64_t oc, const qd_tensor *b,
                                 float *oscale, float *bias_acc)
{
    const qd_quant_params *q = a->quant;
    for (int64_t c = 0; c < oc; c++) {
        float sw = q->w_scale[q->n_w_scale == 1 ? 0 : c];
        float acc_scale = q->src_scale * sw;
        oscale[c] = q->dst_scale > 0.0f && !q->requant_post_op ? acc_scale / q->dst_scale
                                                               : acc_scale;
        if (bias_acc) /* an int32 bias is in accumulator units already */
            bias_acc[c] = b->dtype == QD_DT_INT32 ? (float)((const int32_t *)b->data)[c]
                                                  : ((const float *)b->data)[c] / acc_scale;
    }
    return QD_OK;
}

static qd_status conv_s8_prepare(const qd_kernel_args *a, void **state)
{
    qd_status st = QD_OK;
    qd_graph *g = a->graph;
    const qd_node *n = a->node;
    const qd_quant_params *q = a->quant;
    float *oscale = NULL, *bias_acc = NULL;
    conv_s8_state *s = NULL;
    *state = NULL;
    const qd_tensor *x = a->inputs[0], *w = a->inputs[1];
    const qd_tensor *b = n->n_inputs > 2 ? a->inputs[2] : NULL;
    const qd_tensor *y = a->outputs[0];
    int int8_out = q && q->dst_scale > 0.0f;
    if (!q || (x->dtype != QD_DT_INT8 && x->dtype != QD_DT_UINT8) || w->dtype != QD_DT_INT8 ||
        !w->data ||
        (int8_out ? y->dtype != QD_DT_INT8 && y->dtype != QD_DT_UINT8 : y->dtype != QD_DT_FLOAT) ||
        (b && b->dtype != QD_DT_FLOAT && b->dtype != QD_DT_INT32) || x->rank != w->rank ||
        x->rank != y->rank)
        return qd_graph_fail(g, QD_STATUS_UNSUPPORTED,
                             "node '%s' (%s): the INT8 conv needs int8 or uint8 X, int8 W "
                             "(constant), float32 or int32 bias, float32, int8 or uint8 Y of one "
                             "rank",
                             n->name, n->op_type);
    qd_dnnl_conv_geom gm;
    char err[200];
    if (qd_dnnl_conv_read_geom(n, x->rank, x->dims, w->dims, y->dims, &gm, err, sizeof err) != 0)
        return qd_graph_fail(g, QD_STATUS_SHAPE_ERROR, "node '%s' (%s): %s", n->name, n->op_type,
                             err);
    if ((b && (b->rank != 1 || b->dims[0] != gm.oc)) || (q->n_w_scale != 1 && q->n_w_scale != gm.oc))
        return qd_graph_fail(g, QD_STATUS_SHAPE_ERROR,
                             "node '%s' (%s): bias or weight scales do not match %lld channels",
                             n->name, n->op_type, (long long)gm.oc);
    s = qd_calloc(1, sizeof *s);
    oscale = qd_malloc((size_t)gm.oc * sizeof *oscale);
    bias_acc = b ? qd_malloc((size_t)gm.oc * sizeof *bias_acc) : NULL;
    if (!s || !oscale || (b && !bias_acc)) {
        st = qd_graph_fail(g, QD_STATUS_OUT_OF_MEMORY, "node '%s' (%s): out of memory", n->name,
                           n->op_type);
        goto fail;
    }
    int rank = x->rank;
    s->rank = rank;
    memcpy(s->in_dims, x->dims, (size_t)rank * sizeof *x->dims);
    memcpy(s->out_dims, y->dims, (size_t)rank * sizeof *y->dims);
    scales_and_bias(a, gm.oc, b, oscale, bias_acc);

    dnnl_memory_desc_t src_md, dst_md, wei_user, wei_any, bias_md;
    dnnl_dims_t xd, yd, wd;
    for (int i = 0; i < rank; i++) {
        xd[i] = x->dims[i];
        yd[i] = y->dims[i];
    }
    int wrank = gm.group > 1 ? rank + 1 : rank;
    if (gm.group > 1) {
        wd[0] = gm.group;
        wd[1] = gm.oc / gm.group;
        wd[2] = gm.ic / gm.group;
        for (int i = 0; i < gm.k; i++)
            wd[3 + i] = gm.kernel[i];
    } else {
        for (int i = 0; i < rank; i++)
            wd[i] = w->dims[i];
    }
    dnnl_format_tag_t wtag = wrank == 3 ? dnnl_abc : wrank == 4 ? dnnl_abcd
                                                   : wrank == 5 ? dnnl_abcde : dnnl_abcdef;
    dnnl_data_type_t y_dt = !int8_out ? dnnl_f32 : y->dtype == QD_DT_UINT8 ? dnnl_u8 : dnnl_s8;
    QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&src_md, rank, xd,
                                                   x->dtype == QD_DT_UINT8 ? dnnl_u8 : dnnl_s8,
                                                   act_tag(x)));
    QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&dst_md, rank, yd, y_dt, act_tag(y)));
    QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&wei_user, wrank, wd, dnnl_s8, wtag));
    QD_DNNL_TRY(g, n,
                dnnl_memory_desc_init_by_tag(&wei_any, wrank, wd, dnnl_s8, dnnl_format_tag_any));
    dnnl_dims_t bd = {gm.oc};
    QD_DNNL_TRY(g, n, dnnl_memory_desc_init_by_tag(&bias_md, 1, bd, dnnl_f32, dnnl_a));

    dnnl_dims_t strides, dil, pl, pr;
    for (int i = 0; i < gm.k; i++) {
        strides[i] = gm.stride[i];
        dil[i] = gm.dil[i] - 1;
        pl[i] = gm.pl[i];
        pr[i] = gm.pr[i];
    }
    dnnl_convolution_desc_t cd;
    QD_DNNL_TRY(g, n, dnnl_dilated_convolution_forward_desc_init(
                          &cd, dnnl_forward_inference, dnnl_convolution_direct, &src_md, &wei_any,
                          b ? &bias_md : NULL, &dst_md, strides, dil, pl, pr));
    if ((st = qd_dnnl_s8_build(a, &cd, &src_md, &dst_md, NULL, (int)gm.oc, 1 << 1, oscale, &s->p,
                               &s->head)) != QD_OK ||
        (st = qd_dnnl_reorder_const(g, n, &wei_user, w->data, qd_dnnl_s8_weights_md(&s->p),
                                    &s->p.wei)) != QD_OK ||
        (b && (st = qd_dnnl_reorder_const(g, n, &bias_md, bias_acc, &bias_md, &s->p.bias)) != QD_OK))
        goto fail;
    *state = s;
    s = NULL;
fail:
    qd_free(oscale);
    qd_free(bias_acc);
    conv_s8_release(s);
    return st;
}

static qd_status conv_s8_execute(const qd_kernel_args *a, conv_s8_state *s)
{
    const qd_tensor *x = a->inputs[0], *y = a->outputs[0];
    if (x->rank != s->rank || y->rank != s->rank ||
        memcmp(x->dims, s->in_dims, (size_t)s->rank * sizeof *x->dims) != 0 ||
        memcmp(y->dims, s->out_dims, (size_t)s->rank * sizeof *y->dims) != 0)
        return qd_graph_fail(a->graph, QD_STATUS_SHAPE_ERROR,
                             "node '%s' (%s): shapes changed since the INT8 conv was prepared",
                             a->node->name, a->node->op_type);
    return qd_dnnl_s8_execute(a, &s->p, NULL);
}

static qd_status conv_s8_run(const qd_kernel_args *a)
{
    return a->state ? conv_s8_execute(a, a->state)
                    : qd_dnnl_run_unprepared(a, conv_s8_prepare, conv_s8_release);
}

qd_kernel_impl qd_dnnl_conv_s8_impl(void)
{
    return (qd_kernel_impl){"dnnl-s8", conv_s8_run, conv_s8_prepare, conv_s8_release,
                            qd_dnnl_in_place_ok};
}
